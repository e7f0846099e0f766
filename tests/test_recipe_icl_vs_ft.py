"""recipes/icl_vs_ft.py: YAML defaults with flag overrides, the combined table, resuming."""

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
    args, options, model, _ = recipe.parse_args([])
    assert args.tasks == ["sst2", "sst5", "mr", "subj", "agnews", "cb"]
    assert (options.n_demonstrations, options.n_queries, options.method, options.position) == (32, 2000, "kv", "label")
    args, options, _, _ = recipe.parse_args(["--tasks", "rt_sentiment", "bbc_news", "--seeds", "1", "2", "--learning_rate", "0.01"])
    assert args.tasks == ["rt_sentiment", "bbc_news"] and args.seeds == [1, 2] and options.learning_rate == 0.01
    config = tmp_path / "c.yaml"
    config.write_text("n_queries: 50\nmodel: my/model\n")
    args, options, model, _ = recipe.parse_args(["--config", str(config), "--n_queries", "60"])
    assert options.n_queries == 60 and model.model == "my/model"
    config.write_text("n_querys: 50\n")
    with pytest.raises(ValueError, match=r"unknown argument\(s\) \['n_querys'\]"):
        recipe.parse_args(["--config", str(config)])


def test_recipe_runs_writes_the_combined_table_and_resumes(recipe, tiny_model_dir, tmp_path, monkeypatch):
    out = tmp_path / "out"
    argv = ["--model", str(tiny_model_dir), "--tasks", "rt_sentiment", "--seeds", "1", "2",
            "--n_demonstrations", "2", "--n_queries", "4", "--learning_rate", "0.01", "--output_dir", str(out), "--progress", "false"]
    combined = recipe.main(argv)
    assert set(combined["tasks"]) == {"rt_sentiment"}
    runs = combined["tasks"]["rt_sentiment"]["seeds"]
    assert len(runs) == 2 and all(r["n_queries"] == 4 for r in runs)
    acc = combined["tasks"]["rt_sentiment"]["icl"]
    assert acc["mean"] == pytest.approx((runs[0]["icl"] + runs[1]["icl"]) / 2)
    md = (out / "icl_vs_ft.md").read_text()
    for heading in ("Table 1: accuracy", "Table 2: Rec2FTP", "Table 3: SimAOU", "Table 4: SimAM", "Table 5: Kendall"):
        assert heading in md
    assert "65.9/73.0/89.0 (MR)" in md  # the paper's MR numbers beside the MR-like offline task
    assert json.loads((out / "icl_vs_ft.json").read_text())["average"]["icl"] == pytest.approx(combined["average"]["icl"])
    import matplotlib.image

    assert matplotlib.image.imread(out / "icl_vs_ft.png").ndim == 3
    assert (out / "rt_sentiment" / "seed-2" / "report.md").exists()

    # A rerun reuses the finished runs: no analysis runs again.
    monkeypatch.setattr(recipe, "_run_job", lambda *a, **k: pytest.fail("finished runs must be reused"))
    again = recipe.main(argv)
    assert again["average"] == combined["average"]


def test_unknown_task_fails_before_loading(recipe, tmp_path):
    with pytest.raises(ValueError, match="unknown task 'nope'"):
        recipe.main(["--tasks", "nope", "--output_dir", str(tmp_path / "x")])
    assert not (tmp_path / "x").exists()
