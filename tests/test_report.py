"""Report files: report.json (the schema), report.md (its sections), PNGs that open."""

from __future__ import annotations

import json
import random

import pytest

from hf_metaopt.analysis.report import PLOT_FILES, REQUIRED_KEYS, ICLAnalysisReport


def label_shift(kl: float, tv: float) -> dict:
    """A ``label_shift`` entry: KL(ICL || FT) = ``kl``, TV = ``tv``; the shifts from ZSL 2x and 3x those."""
    out = {}
    for pair, factor in (("icl_ft", 1), ("icl_zsl", 2), ("ft_zsl", 3)):
        for name, value in (("kl", kl), ("tv", tv)):
            mean = value * factor
            out[f"{name}_{pair}"] = {"mean": mean, "ci95": [mean / 2, mean * 1.5]}
    return out


def synthetic_report(n_layers: int = 4, n_queries: int = 20, control: bool = True, selection: bool = False) -> dict:
    """A report dict that follows the schema in report.py's docstring, with made-up numbers."""
    rng = random.Random(0)
    layer = lambda lo, hi: [rng.uniform(lo, hi) for _ in range(n_layers)]  # noqa: E731
    labels = [i % 2 for i in range(n_queries)]
    preds = {s: [rng.randint(0, 1) for _ in labels] for s in ("zsl", "icl", "ft")}
    acc = {s: sum(p == y for p, y in zip(preds[s], labels)) / n_queries for s in preds}
    metrics = {
        "rec2ftp": 0.75,
        "simaou": {"per_layer": layer(0.1, 0.3), "mean": 0.2, "random_mean": 0.001, "unnormalized_mean": 0.1},
        "simam": {"per_layer_before": layer(0.3, 0.4), "per_layer_after": layer(0.4, 0.5), "before": 0.35, "after": 0.45, "delta": 0.1},
        "kendall": {"per_layer": layer(0.1, 0.2), "mean": 0.15, "random_mean": 0.0},
    }
    data = {
        "accuracy": acc,
        "accuracy_ci95": {s: [max(0.0, a - 0.1), min(1.0, a + 0.1)] for s, a in acc.items()},
        "predictions": preds,
        "labels": labels,
        "rec2ftp": 0.75,
        "rec2ftp_ci95": [0.5, 0.9],
        "simaou": {
            **metrics["simaou"],
            "ci95": [0.15, 0.25],
            "random_per_layer": layer(-0.01, 0.01),
            "unnormalized_per_layer": layer(0.05, 0.15),
            "unnormalized_ci95": [0.05, 0.15],
        },
        "simam": {**metrics["simam"], "per_layer_delta": layer(0.0, 0.2), "before_ci95": [0.3, 0.4], "after_ci95": [0.4, 0.5], "delta_ci95": [0.05, 0.15]},
        "kendall": {**metrics["kendall"], "ci95": [0.1, 0.2], "random_per_layer": layer(-0.01, 0.01)},
        "rec2ftp_counts": {"ft_fixed": 4, "both_fixed": 3},
        "change_recall": 0.4,
        "change_recall_ci95": [0.2, 0.6],
        "change_recall_counts": {"changed": 10, "same_change": 4, "icl_changed": 8, "ft_changed": 6},
        "label_shift": label_shift(0.25, 0.2),
        "controls": {"untrained": {"accuracy": {"zsl": 0.5, "icl": 0.5, "ft": 0.5}, **metrics, "rec2ftp_counts": {"ft_fixed": 8, "both_fixed": 6},
                                   "change_recall": 0.125, "change_recall_counts": {"changed": 8, "same_change": 1},
                                   "label_shift": label_shift(0.01, 0.02)}} if control else {},
        "config": {
            "model": "tiny-llama",
            "model_revision": None,
            "task": "rt_sentiment",
            "template": "Review: {text} Sentiment:",
            "label_words": [" Negative", " Positive"],
            "separator": "\n",
            "position": "prediction",
            "method": "kv",
            "learning_rate": 0.001,
            "seed": 1,
            "n_demonstrations": 4,
            "n_queries": n_queries,
            "demonstrations_used": [3, 1, 4, 0],
            "control": "untrained" if control else None,
            "versions": {"hf_metaopt": "0.1.0", "transformers": "5.24.0", "torch": "2.13.0", "peft": "0.21.0"},
        },
        "notes": ["kept 4 of 4 demonstrations"],
    }
    if selection:
        data["selection"] = {
            "criterion": "FT accuracy on dev",
            "rows": [{"learning_rate": lr, "seed": 1, "zsl": 0.5, "icl": 0.7, "ft": f} for lr, f in ((1e-3, 0.6), (1e-2, 0.65))],
            "chosen": {"learning_rate": 1e-2, "seed": 1},
        }
    return data


def test_markdown_has_every_section():
    md = ICLAnalysisReport(synthetic_report(selection=True)).to_markdown()
    for heading in ("# ICL vs finetuning: tiny-llama on rt_sentiment", "## Accuracy", "## ICL vs finetuning metrics",
                    "## Untrained control", "## Hyperparameter selection on the dev split", "## Per layer", "## Plots",
                    "## Settings", "## Notes"):
        assert heading in md, heading
    assert "| FT (finetuned on the demonstrations) |" in md
    assert "random vector 0.001" in md and "[0.150, 0.250]" in md
    assert "| SimAM delta cos(ICL-ZSL, FT-ZSL) | 0.100 | [0.050, 0.150] |" in md
    assert "![simaou](simaou.png)" in md
    assert "| learning_rate | 0.001 |" in md
    # The counts beside the ratios, the label shift against the shifts from ZSL; also for the control.
    assert "| Rec2FTP | 0.750 (3 of 4) | [0.500, 0.900] | - |" in md
    assert "| ChangeRecall (Deutch et al.) | 0.400 (4 of 10) | [0.200, 0.600] | - |" in md
    assert "| KL(ICL ‖ FT) of the label distributions | 0.250 | [0.125, 0.375] | shift from ZSL: ICL 0.500, FT 0.750 |" in md
    assert "| TV(ICL, FT) of the label distributions | 0.200 | [0.100, 0.300] | shift from ZSL: ICL 0.400, FT 0.600 |" in md
    assert "| Rec2FTP | 0.750 (3 of 4) | 0.750 (6 of 8) |" in md and "| ChangeRecall | 0.400 (4 of 10) | 0.125 (1 of 8) |" in md
    assert "| KL(ICL ‖ FT) of the label distributions | 0.250 | 0.010 |" in md
    assert "per query, not per layer" in md
    # per-layer table has one row per layer
    assert sum(1 for line in md.splitlines() if line.startswith("| 3 |")) == 1


def test_markdown_without_optional_parts():
    data = synthetic_report(control=False)
    data["rec2ftp"], data["rec2ftp_ci95"] = None, None
    md = ICLAnalysisReport(data).to_markdown(plots_dir=None)
    assert "## Untrained control" not in md and "## Plots" not in md and "## Hyperparameter selection" not in md
    assert "n/a (FT fixes no query)" in md


def test_markdown_of_undefined_ratios_and_reports_without_the_new_metrics():
    data = synthetic_report(control=False)
    data.update(rec2ftp=None, rec2ftp_ci95=None, change_recall=None, change_recall_ci95=None,
                rec2ftp_counts={"ft_fixed": 0, "both_fixed": 0},
                change_recall_counts={"changed": 0, "same_change": 0, "icl_changed": 0, "ft_changed": 0})
    md = ICLAnalysisReport(data).to_markdown(plots_dir=None)
    assert "| Rec2FTP | n/a (FT fixes no query) | n/a | - |" in md
    assert "| ChangeRecall (Deutch et al.) | n/a (no prediction changed) | n/a | - |" in md
    for key in ("rec2ftp_counts", "change_recall", "change_recall_ci95", "change_recall_counts", "label_shift"):
        del data[key]
    md = ICLAnalysisReport({**data, "rec2ftp": 0.5}).to_markdown(plots_dir=None)
    assert "| Rec2FTP | 0.500 | n/a | - |" in md  # no counts recorded: the ratio alone
    assert "ChangeRecall" not in md and "label distributions" not in md and "per query, not per layer" not in md


def test_save_writes_json_markdown_and_pngs(tmp_path):
    import matplotlib.image

    report = ICLAnalysisReport(synthetic_report())
    run = report.save_pretrained(tmp_path / "run")
    assert sorted(p.name for p in run.iterdir()) == sorted(["report.json", "report.md", "report.html", *PLOT_FILES])
    loaded = json.loads((run / "report.json").read_text())
    assert set(REQUIRED_KEYS) <= set(loaded)
    assert loaded == report.to_dict()
    assert ICLAnalysisReport.from_json(run).to_dict() == report.to_dict()
    for name in PLOT_FILES:
        image = matplotlib.image.imread(run / name)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
        assert image.std() > 0  # something was drawn
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_save_never_overwrites_an_existing_run(tmp_path):
    report = ICLAnalysisReport(synthetic_report())
    run = report.save_pretrained(tmp_path / "run")
    before = (run / "report.json").read_bytes()
    with pytest.raises(FileExistsError, match="already exists"):
        ICLAnalysisReport(synthetic_report(control=False)).save_pretrained(run)
    assert (run / "report.json").read_bytes() == before


def test_save_failure_leaves_nothing_behind(tmp_path, monkeypatch):
    report = ICLAnalysisReport(synthetic_report())
    monkeypatch.setattr(ICLAnalysisReport, "plot", lambda self, d: (_ for _ in ()).throw(RuntimeError("disk full")))
    with pytest.raises(RuntimeError, match="disk full"):
        report.save_pretrained(tmp_path / "run")
    assert list(tmp_path.iterdir()) == []


def test_plot_returns_paths(tmp_path):
    paths = ICLAnalysisReport(synthetic_report(control=False)).plot(tmp_path)
    assert [p.name for p in paths] == list(PLOT_FILES) and all(p.stat().st_size > 1000 for p in paths)
