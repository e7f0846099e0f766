"""benchmarks/gpu_8b.py: the published configurations, and the whole script path on the CPU with --tiny."""

from __future__ import annotations

import json

import pytest

from benchmark_scripts import benchmark_module


@pytest.fixture(scope="module")
def gpu_8b():
    with benchmark_module("gpu_8b") as module:
        yield module


class _Tokenizer:
    """What model_config reads of a tokenizer: its size and special ids (the offline SmolLM2 tokenizer's)."""

    bos_token_id, eos_token_id, pad_token_id = 1, 2, 2

    def __len__(self) -> int:
        return 49152


def test_the_configurations_are_the_published_models(gpu_8b):
    """Parameter counts as published (Meta-Llama-3-8B: 8,030,261,248; Mistral-7B-v0.1: 7,241,732,096 with its 32000
    ids, 49152 - 32000 more rows of 4096 in its embedding and its head here; Gemma-2-9B: 9,241,705,984), counted on the
    meta device; and the attention features each brings."""
    import torch
    from transformers import AutoModelForCausalLM

    counts = {}
    for name in gpu_8b.CONFIGS:
        config, notes = gpu_8b.model_config(name, _Tokenizer(), tiny=False)
        with torch.device("meta"):
            counts[name] = sum(p.numel() for p in AutoModelForCausalLM.from_config(config).parameters())
        if name == "llama-3-8b":
            assert (config.num_attention_heads, config.num_key_value_heads) == (32, 8)
        if name == "mistral-7b":
            assert config.sliding_window == 4096 and config.vocab_size == 49152 and "vocab_size 32000 raised" in notes[-1]
        if name == "gemma-2-9b":
            assert (config.attn_logit_softcapping, config.final_logit_softcapping) == (50.0, 30.0)
            assert config.layer_types[:2] == ["sliding_attention", "full_attention"] and config.sliding_window == 4096
    assert counts == {"llama-3-8b": 8_030_261_248, "mistral-7b": 7_241_732_096 + (49152 - 32000) * 4096 * 2,
                      "gemma-2-9b": 9_241_705_984}


def test_tiny_runs_every_model_through_the_device_path(gpu_8b, tiny_tokenizer_dir, tmp_path, capsys):
    """--prepare's folder (tokenizer, task splits) read back with --data/--tokenizer, as on the lent machine."""
    bundle = gpu_8b.prepare(tmp_path / "bundle", "rt_sentiment", tokenizer=tiny_tokenizer_dir, check_models=())
    assert sorted(p.name for p in (bundle / "rt_sentiment").iterdir()) == ["dev.jsonl", "test.jsonl", "train.jsonl"]
    rows = gpu_8b.main(["--tiny", "--device", "cpu", "--dtype", "float32", "--n_demonstrations", "3", "--n_queries", "4",
                        "--data", str(bundle), "--tokenizer", str(bundle / "tokenizer"), "--output_dir", str(tmp_path / "out")])

    assert [r["model"] for r in rows] == list(gpu_8b.CONFIGS)
    for row in rows:
        # batch_size "auto" on CPU: at most 8 and at most the number of queries; the JSON holds the one used.
        assert (row["n_queries"], row["n_demonstrations"], row["batch_size"]) == (4, 3, 4)
        assert row["routes"]["prediction_agreement"] == {"zsl": 1.0, "icl": 1.0, "ft": 1.0}
        assert row["routes"]["max_metric_difference"] < 1e-6  # float32: the fast route is the per-query one
        assert len(row["loss_per_step"]) == 3 and row["float64_ft_agreement"] is None  # the float64 rerun is off
        assert row["peak_memory_over_weights"] is None  # no CUDA
    payload = json.loads((tmp_path / "out" / "gpu_8b_cpu_tiny.json").read_text())
    assert payload["device"] == "cpu" and payload["errors"] == [] and len(payload["rows"]) == 3
    assert "| gemma-2-9b |" in capsys.readouterr().out


def test_bad_model_names_and_a_missing_gpu_stop_at_once(gpu_8b, tmp_path):
    with pytest.raises(SystemExit, match="not among"):
        gpu_8b.main(["--models", "llama-2-7b", "--output_dir", str(tmp_path)])
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(SystemExit, match="no CUDA device"):
            gpu_8b.main(["--output_dir", str(tmp_path)])
