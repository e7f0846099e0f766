"""benchmarks/gpu_check.py on the CPU: --random_init with --model_files (a config and tokenizer, no weights)."""

from __future__ import annotations

import json

import pytest

from benchmark_scripts import benchmark_module


@pytest.fixture(scope="module")
def gpu_check():
    with benchmark_module("gpu_check") as module:
        yield module


@pytest.fixture(scope="module")
def model_files(tmp_path_factory, tiny_tokenizer_dir):
    """``<folder>/tiny/``: a tiny Llama's config.json and the test tokenizer, without weights."""
    from transformers import AutoTokenizer, LlamaConfig

    folder = tmp_path_factory.mktemp("model_files")
    config = LlamaConfig(
        vocab_size=400, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=1024, bos_token_id=0, eos_token_id=0, pad_token_id=0,
    )
    config.save_pretrained(folder / "tiny")
    AutoTokenizer.from_pretrained(tiny_tokenizer_dir).save_pretrained(folder / "tiny")
    return folder


def _argv(model_files, output, *more):
    return ["--models", "tiny", "--device", "cpu", "--n_queries", "2", "--n_demonstrations", "2",
            "--model_files", str(model_files), "--output", str(output), *more]


def test_random_init_runs_every_route_on_the_same_weights(gpu_check, model_files, tmp_path, capsys):
    output = tmp_path / "gpu_check.json"
    rows = gpu_check.main(_argv(model_files, output, "--random_init"))

    assert [(r["dtype"], r["route"]) for r in rows] == [
        ("float32", "fast"), ("float32", "fast"), ("float32", "per-query"), ("bfloat16", "fast"), ("bfloat16", "per-query"),
    ]
    # The float32 fast run repeats the reference: the same random weights, so the same numbers and loss curve.
    assert rows[1]["prediction_agreement"] == {"zsl": 1.0, "icl": 1.0, "ft": 1.0}
    assert rows[1]["max_metric_difference"] == 0.0
    assert (rows[1]["loss_curve_max_difference"], rows[1]["loss_curve_first_step_apart"]) == (0.0, None)
    for row in rows:  # every run's finetuning: its loss per SGD step (2 demonstrations) and its float64 rerun's agreement
        assert len(row["loss_per_step"]) == 2 and 0.0 <= row["float64_ft_agreement"] <= 1.0
    payload = json.loads(output.read_text())
    assert payload["errors"] == [] and payload["weights"].startswith("RANDOM weights")
    assert payload["settings"]["random_init"] is True
    assert "RANDOM weights" in capsys.readouterr().out


def test_model_files_needs_random_init(gpu_check, model_files, tmp_path):
    with pytest.raises(SystemExit, match="--random_init"):
        gpu_check.main(_argv(model_files, tmp_path / "out.json"))


def test_a_model_missing_from_model_files_is_recorded_not_raised(gpu_check, model_files, tmp_path):
    output = tmp_path / "gpu_check.json"
    argv = _argv(model_files, output, "--random_init")
    argv[argv.index("tiny")] = "absent"
    assert gpu_check.main(argv) == []
    (error,) = json.loads(output.read_text())["errors"]
    assert "absent/config.json" in error


def test_loss_curve_difference_names_the_first_step_apart(gpu_check):
    same = gpu_check.loss_curve_difference([2.0, 1.5, 1.0], [2.0, 1.5, 1.0])
    assert same == {"loss_curve_max_difference": 0.0, "loss_curve_first_step_apart": None}
    # 1.5005 vs 1.5: 3.3e-4 relative, within 1e-3; 1.2 vs 1.0: 0.2 apart, the largest.
    apart = gpu_check.loss_curve_difference([2.0, 1.5005, 1.2], [2.0, 1.5, 1.0])
    assert apart["loss_curve_first_step_apart"] == 2 and apart["loss_curve_max_difference"] == pytest.approx(0.2)
    diverged = gpu_check.loss_curve_difference([2.0, None], [2.0, 1.5])  # an inf/NaN step (None in the report)
    assert diverged == {"loss_curve_max_difference": float("inf"), "loss_curve_first_step_apart": 1}
