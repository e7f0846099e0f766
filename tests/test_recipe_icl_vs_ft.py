"""recipes/icl_vs_ft.py: a sweep with the paper's settings (YAML defaults, flag overrides, the summary)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "icl_vs_ft.py"


@pytest.fixture(scope="module")
def recipe():
    spec = importlib.util.spec_from_file_location("icl_vs_ft_recipe", RECIPE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory, tiny_tokenizer_dir):
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny_gpt2")
    GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=400, n_positions=1024)).save_pretrained(path)
    AutoTokenizer.from_pretrained(tiny_tokenizer_dir).save_pretrained(path)
    return path


def test_yaml_defaults_are_the_papers_and_flags_override(recipe, tmp_path):
    args, shared = recipe.parse_args([])
    assert args.tasks == ["sst2", "sst5", "mr", "subj", "agnews", "cb"]
    assert args.models == ["KoboldAI/fairseq-dense-1.3B"]
    assert (args.learning_rates, args.methods, args.controls) == ([0.001], ["kv"], [None])
    assert (shared.n_demonstrations, shared.n_queries, shared.position) == (32, 2000, "label")
    args, shared = recipe.parse_args(["--tasks", "rt_sentiment", "bbc_news", "--seeds", "1", "2", "--learning_rates", "0.01"])
    assert args.tasks == ["rt_sentiment", "bbc_news"] and args.seeds == [1, 2] and args.learning_rates == [0.01]
    config = tmp_path / "c.yaml"
    config.write_text("n_queries: 50\nmodels: [my/model]\n")
    args, shared = recipe.parse_args(["--config", str(config), "--n_queries", "60"])
    assert shared.n_queries == 60 and args.models == ["my/model"]
    config.write_text("n_querys: 50\n")
    with pytest.raises(ValueError, match=r"unknown argument\(s\) \['n_querys'\]"):
        recipe.parse_args(["--config", str(config)])


def test_recipe_runs_a_sweep_with_the_papers_table(recipe, tiny_model_dir, tmp_path, monkeypatch):
    out = tmp_path / "out"
    argv = ["--models", str(tiny_model_dir), "--tasks", "rt_sentiment", "--n_demonstrations", "2", "--n_queries", "4",
            "--n_bootstrap", "20", "--output_dir", str(out), "--progress", "false"]
    summary = recipe.main(argv)
    (group,) = summary["groups"]
    assert (group["task"], group["learning_rate"], group["seeds"]) == ("rt_sentiment", 0.001, [1])
    report = json.loads((out / Path(tiny_model_dir).name / "rt_sentiment" / "kv-lr0.001-none" / "seed-1" / "report.json").read_text())
    assert report["config"]["position"] == "label" and len(report["labels"]) == 4
    assert group["pretrained"]["icl"]["mean"] == report["accuracy"]["icl"]
    md = (out / "summary.md").read_text()
    for heading in ("Table 1: accuracy", "Table 2: Rec2FTP", "Table 3: SimAOU", "Table 4: SimAM", "Table 5: Kendall"):
        assert heading in md
    assert "65.9 / 73.0 / 89.0 (MR)" in md  # the paper's MR numbers beside the MR-like offline task


def test_recipe_imports_no_command_module():
    assert "hf_metaopt.commands" not in RECIPE.read_text()


def test_unknown_task_fails_before_loading(recipe, tmp_path):
    with pytest.raises(ValueError, match="unknown task 'nope'"):
        recipe.main(["--tasks", "nope", "--output_dir", str(tmp_path / "x")])
    assert not (tmp_path / "x").exists()
