"""The typed report: a read-only Mapping with attribute access, JSON round trips, run folders, 0.1 reports."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path

import pytest
from hub_server import make_report

from hf_metaopt import ICLAnalysisReport
from hf_metaopt.analysis.report import PLOT_FILES, REQUIRED_KEYS
from hf_metaopt.analysis.report_base import ReportPart
from hf_metaopt.analysis.report_parts import AnalysisConfig, KendallSummary, RouteValues, SimAOUSummary

# report.json written by hf-metaopt 0.1 (commit 2ebc826, before label_counts, finetuning, topk_recall and the
# config's environment): a seeded 2-layer GPT-2 on the toy reviews with the untrained control; see tests/data/README.md.
V01_REPORT = Path(__file__).parent / "data" / "report_v0.1.json"


def current_report() -> dict:
    """A report with every part of today's schema (numbers made up)."""
    data = make_report()
    level = {"per_layer": [0.1, 0.3], "mean": 0.2, "ci95": [0.1, 0.3], "random_mean": 0.0, "random_per_layer": [0.0, 0.0]}
    data["kendall"].update(n_queries=8, example_level=dict(level))
    data["topk_recall"] = {"token_level": {"k": 100, **level}, "example_level": {"k": 5, **level}, "n_queries": 8}
    data["label_counts"] = {"demonstrations": [2, 2], "gold": [4, 4], "predictions": {"zsl": [5, 3], "icl": [4, 4], "ft": [4, 4]}}
    data["finetuning"] = {"loss_per_step": [1.2, None, 0.9, 0.8], "loss_before": 1.1, "loss_after": 0.7, "learning_rate": 0.001,
                          "diverged": False, "divergence": [],
                          "stability": {"checked": False, "reason": "off (stability_check=False)"}}
    data["controls"] = {"untrained": {"accuracy": {"zsl": 0.5, "icl": 0.5, "ft": 0.5}, "rec2ftp": None,
                                      "simaou": dict(data["simaou"]), "label_counts": {"predictions": {"zsl": [8, 0], "icl": [8, 0], "ft": [8, 0]}}}}
    data["config"]["environment"] = {"cpu_capability": "AVX2", "num_threads": 1, "device": "cpu", "cuda_device": None,
                                     "deterministic_algorithms": False, "platform": "x86_64", "python": "3.11.9"}
    return data


def test_the_report_is_a_mapping_with_key_and_attribute_access():
    data = current_report()
    report = ICLAnalysisReport(data)
    assert isinstance(report, Mapping)
    assert "accuracy" in report and "nothing" not in report
    assert list(report) == list(report.keys()) == list(data) and len(report) == len(data)
    assert dict(report).keys() == data.keys()
    assert report.get("selection") is None and report.get("selection", "none") == "none"
    assert report["simaou"]["mean"] == report.simaou.mean == 0.15
    assert report.accuracy.icl == report["accuracy"]["icl"] == 0.75
    assert report.kendall.example_level.mean == 0.2
    assert report.topk_recall.token_level.k == 100
    assert report.label_counts.predictions.zsl == [5, 3]
    assert report.finetuning.stability.checked is False and report.finetuning.stability.reason.startswith("off")
    assert report.controls["untrained"].simaou.mean == 0.15
    assert report.config.environment.device == "cpu" and report.config.versions.torch == "2.13.0"
    assert isinstance(report.simaou, SimAOUSummary) and isinstance(report.kendall, KendallSummary)
    assert isinstance(report.accuracy, RouteValues) and isinstance(report.simaou, Mapping)
    assert dict(report.accuracy.items()) == {"zsl": 0.5, "icl": 0.75, "ft": 0.625}
    assert dataclasses.is_dataclass(report) and "simaou" in {f.name for f in dataclasses.fields(report)}
    with pytest.raises(KeyError):
        report["selection"]
    assert repr(report) == "ICLAnalysisReport(accuracy={'zsl': 0.5, 'icl': 0.75, 'ft': 0.625}, rec2ftp=0.8)"


def test_a_key_given_as_none_is_present_and_a_key_never_given_is_absent():
    data = make_report(rec2ftp=None)
    report = ICLAnalysisReport(data)
    assert "rec2ftp" in report and report["rec2ftp"] is None and report.rec2ftp_ci95 is None
    assert "topk_recall" not in report and report.topk_recall is None and report.finetuning is None
    assert "example_level" not in report.kendall and report.kendall.example_level is None
    assert report.to_dict() == data


def test_keyword_construction_and_mappings_become_typed_parts():
    data = make_report()
    report = ICLAnalysisReport(**data)
    assert report == ICLAnalysisReport(data) and isinstance(report.simam, Mapping) and report.simam.delta == 0.11
    assert ICLAnalysisReport(data, notes=["changed"]).notes == ["changed"]


def test_json_round_trip_keeps_every_key_including_unknown_ones(tmp_path):
    data = current_report()
    data["selection"] = {"rows": [{"learning_rate": 0.01, "ft": 0.6}], "chosen": {"learning_rate": 0.01, "seed": 1}}
    data["from_a_future_version"] = {"nested": [1, 2, {"x": None}]}
    data["simaou"]["new_statistic"] = 0.5
    data["config"]["a_new_option"] = True
    report = ICLAnalysisReport(data)
    assert report.to_dict() == data and list(report.to_dict()) == list(data)
    again = ICLAnalysisReport.from_json(report.to_json())
    assert again == report and again.to_dict() == data
    assert again["from_a_future_version"] == {"nested": [1, 2, {"x": None}]}
    assert again["simaou"]["new_statistic"] == 0.5 and again.config["a_new_option"] is True
    assert again.selection["chosen"]["learning_rate"] == 0.01
    text = report.to_json(tmp_path / "report.json")
    assert json.loads((tmp_path / "report.json").read_text()) == json.loads(text) == data
    assert ICLAnalysisReport.from_json(tmp_path / "report.json") == ICLAnalysisReport.from_json(tmp_path) == report


def test_equality_follows_the_values():
    assert ICLAnalysisReport(make_report()) == ICLAnalysisReport(make_report())
    assert ICLAnalysisReport(make_report()) == make_report()  # a report equals its dict, as a Mapping does
    other = make_report()
    other["simam"]["delta"] = 0.12
    assert ICLAnalysisReport(make_report()) != ICLAnalysisReport(other)
    assert ICLAnalysisReport(make_report(task="sst2")) != ICLAnalysisReport(make_report(task="sst5"))


def test_to_dict_is_a_deep_copy_in_plain_types():
    report = ICLAnalysisReport(current_report())
    out = report.to_dict()
    assert type(out["simaou"]) is dict and type(out["controls"]["untrained"]["simaou"]) is dict
    out["simaou"]["per_layer"].append(9.0)
    out["accuracy"]["icl"] = 0.0
    assert report.simaou.per_layer == [0.2, 0.1] and report.accuracy.icl == 0.75
    json.dumps(out, allow_nan=False)


def test_the_report_is_read_only():
    report = ICLAnalysisReport(make_report())
    with pytest.raises(AttributeError, match="read-only"):
        report.rec2ftp = 0.5
    with pytest.raises(AttributeError, match="read-only"):
        report.simaou.mean = 0.5
    with pytest.raises(TypeError):
        report["rec2ftp"] = 0.5  # a Mapping, not a dict


def test_missing_required_keys_or_wrong_types_are_refused_clearly():
    data = make_report()
    del data["kendall"], data["labels"]
    with pytest.raises(ValueError, match=r"lacks the keys \['labels', 'kendall'\]; it needs all of") as err:
        ICLAnalysisReport(data)
    assert str(list(REQUIRED_KEYS)) in str(err.value)
    data = make_report()
    data["simaou"] = 0.15
    with pytest.raises(TypeError, match="ICLAnalysisReport key 'simaou' must be a mapping"):
        ICLAnalysisReport(data)
    data = make_report()
    data["controls"] = {"untrained": 0.5}
    with pytest.raises(TypeError, match="key 'controls' must map names to mappings"):
        ICLAnalysisReport(data)
    with pytest.raises(TypeError, match="takes a mapping"):
        ICLAnalysisReport([("accuracy", {})])


def test_save_pretrained_and_from_pretrained(tmp_path):
    report = ICLAnalysisReport(current_report())
    run = report.save_pretrained(tmp_path / "run")
    assert sorted(p.name for p in run.iterdir()) == sorted(["report.json", "report.md", "report.html", *PLOT_FILES])
    assert json.loads((run / "report.json").read_text()) == report.to_dict()
    assert ICLAnalysisReport.from_pretrained(run) == report
    assert ICLAnalysisReport.from_pretrained(run / "report.json") == report
    assert ICLAnalysisReport.from_pretrained(tmp_path, subfolder="run") == report
    assert report.save(tmp_path / "alias") == tmp_path / "alias"  # the 0.1 name still saves
    assert (tmp_path / "alias" / "report.json").read_bytes() == (run / "report.json").read_bytes()
    with pytest.raises(FileExistsError, match="already exists"):
        report.save_pretrained(run)
    with pytest.raises(FileNotFoundError, match="does not exist; pass an analysis run folder"):
        ICLAnalysisReport.from_pretrained(tmp_path / "no" / "such" / "run")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a report object"):
        ICLAnalysisReport.from_json(tmp_path / "list.json")


def test_a_report_written_by_version_0_1_loads_reads_and_saves_with_the_same_keys(tmp_path):
    original = json.loads(V01_REPORT.read_text())
    assert original["config"]["versions"]["hf_metaopt"] == "0.1.0"
    assert not {"topk_recall", "finetuning", "label_counts"} & set(original)  # what 0.1 did not write
    report = ICLAnalysisReport.from_pretrained(V01_REPORT)
    assert report.topk_recall is None and report.finetuning is None and report.label_counts is None
    assert report.config.environment is None and report.kendall.n_queries is None
    assert report.accuracy.zsl == original["accuracy"]["zsl"]
    assert report.kendall.example_level.per_layer == original["kendall"]["example_level"]["per_layer"]
    assert report.simam.delta_ci95 == original["simam"]["delta_ci95"]
    assert report.controls["untrained"].kendall.mean == original["controls"]["untrained"]["kendall"]["mean"]
    assert report.config.start_token_used == "<|endoftext|>" and report.config["max_demonstrations"] == 32
    assert report.config.versions.hf_metaopt == "0.1.0"
    run = report.save_pretrained(tmp_path / "resaved")
    resaved = json.loads((run / "report.json").read_text())
    assert resaved == original and list(resaved) == list(original)
    assert list(resaved["config"]) == list(original["config"])
    md = (run / "report.md").read_text()
    assert "## Accuracy" in md and "## Untrained control" in md


def _parts(part, path="report"):
    """(path, part) for the report and every typed part below it."""
    yield path, part
    for key, value in part.items():
        values = value.items() if key == "controls" and isinstance(value, Mapping) else [(key, value)]
        for name, item in values:
            if isinstance(item, ReportPart):
                yield from _parts(item, f"{path}.{name}")


def test_every_key_the_analysis_writes_is_declared_by_its_part(tiny_tokenizer_dir):
    from tiny_analysis import analyze

    report = ICLAnalysisReport(analyze(str(tiny_tokenizer_dir)))  # a real run, with the untrained control
    assert {"topk_recall", "label_counts", "finetuning", "controls"} <= set(report)
    seen = set()
    for path, part in _parts(report):
        seen.add(type(part).__name__)
        if isinstance(part, AnalysisConfig):
            continue  # open by design: every option, plus provenance facts
        declared = {f.name for f in dataclasses.fields(part)}
        assert set(part) <= declared, f"{path} holds undeclared keys {set(part) - declared}"
    assert {"SimAOUSummary", "KendallSummary", "TopKLevel", "Stability", "ControlReport", "Versions", "Environment"} <= seen


def test_a_report_survives_pickle_and_deepcopy():
    import copy
    import pickle

    report = ICLAnalysisReport(current_report())
    for again in (pickle.loads(pickle.dumps(report)), copy.deepcopy(report)):
        assert again == report and list(again) == list(report) and again.kendall.example_level.mean == 0.2
