"""README's first command, with small counts, on the real SmolLM2-135M-Instruct (slow)."""

from __future__ import annotations

import json
import sys

import pytest

from hf_metaopt import cli


@pytest.mark.slow
def test_main_job_on_the_real_model(smollm2_path, monkeypatch, tmp_path, capsys):
    out = tmp_path / "run"
    monkeypatch.setattr(sys, "argv", ["hf-metaopt", "analyze", "--n-demonstrations", "4", "--n-queries", "16", "--output-dir", str(out)])
    assert cli.main() == 0
    report = json.loads((out / "report.json").read_text())
    config = report["config"]
    assert config["task"] == "rt_sentiment" and config["method"] == "kv" and config["n_demonstrations"] == 4
    assert config["model"] == "HuggingFaceTB/SmolLM2-135M-Instruct" and config["learning_rate"] == 1e-2
    assert len(report["labels"]) == 16 and all(0.0 <= report["accuracy"][s] <= 1.0 for s in ("zsl", "icl", "ft"))
    # a real pretrained model: 30 layers of per-layer metrics, finite and in range
    assert len(report["simaou"]["per_layer"]) == 30
    assert all(-1.0 <= v <= 1.0 for v in report["simam"]["per_layer_after"])
    # demonstrations in context and finetuning both change the attention outputs
    assert any(abs(v) > 1e-3 for v in report["simaou"]["per_layer"])
    assert report["rec2ftp"] is None or 0.0 <= report["rec2ftp"] <= 1.0
    md = (out / "report.md").read_text()
    assert "## Accuracy" in md and "## ICL vs finetuning metrics" in md
    assert f"wrote {out}/report.md" in capsys.readouterr().out
