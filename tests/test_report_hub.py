"""ICLAnalysisReport.push_to_hub and from_pretrained against the Hub-protocol server on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from huggingface_hub import ModelCard
from hub_server import HUB_TOKEN, hub, make_report  # noqa: F401  (hub is a fixture)

from hf_metaopt import ICLAnalysisReport
from hf_metaopt.analysis.report import PLOT_FILES
from hf_metaopt.hub import HubPushError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def own_tmp(tmp_path, monkeypatch):
    """Temporary folders (the push's staging folder) made under this test's folder, to see what stays."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _report_prefix(hub, repo_id: str, revision: str = "main") -> str:
    found = [f.rsplit("/", 1)[0] for f in hub.files(repo_id, revision) if f.startswith("icl_analysis/") and f.endswith("/report.json")]
    assert len(found) == 1, found
    return found[0]


def test_push_to_hub_uploads_the_run_folder_in_one_commit_and_loads_back(hub, own_tmp):
    report = ICLAnalysisReport(make_report(model="alice/tiny-gpt2"))
    info = report.push_to_hub("alice/icl-analyses", token=HUB_TOKEN, commit_message="my analysis")
    assert info.pr_url is None and hub.commits_on("alice/icl-analyses") == 2  # the repo's first commit + ONE push
    prefix = _report_prefix(hub, "alice/icl-analyses")
    files = set(hub.files("alice/icl-analyses"))
    assert {f"{prefix}/{name}" for name in ("README.md", "report.json", "report.md", *PLOT_FILES)} <= files
    assert json.loads(hub.file("alice/icl-analyses", f"{prefix}/report.json")) == report.to_dict()
    assert ICLAnalysisReport.from_pretrained("alice/icl-analyses", subfolder=prefix) == report
    assert "icl-analysis" in ModelCard.load("alice/icl-analyses").data.tags  # a fresh repo gets the analysis card
    assert list(own_tmp.iterdir()) == []  # the staging folder is gone after a push that worked


def test_push_to_hub_as_a_pull_request_leaves_main_alone(hub, own_tmp):
    report = ICLAnalysisReport(make_report(model="alice/tiny-gpt2"))
    report.push_to_hub("alice/icl-analyses")
    main_files = hub.files("alice/icl-analyses")
    other = ICLAnalysisReport(make_report(task="sst5", model="alice/tiny-gpt2"))
    info = other.push_to_hub("alice/icl-analyses", create_pr=True)
    assert info.pr_url and hub.files("alice/icl-analyses") == main_files
    pr_files = hub.files("alice/icl-analyses", "refs/pr/1")
    assert sum(f.endswith("/report.json") for f in pr_files) == 2
    assert ICLAnalysisReport.from_pretrained(
        "alice/icl-analyses", subfolder=_report_prefix(hub, "alice/icl-analyses", "main"), revision="main") == report


def test_a_failed_push_keeps_the_saved_report_and_says_how_to_push_it(hub, own_tmp):
    report = ICLAnalysisReport(make_report())
    hub.fail("commit", 401, times=1)
    with pytest.raises(HubPushError, match="rejected the credentials") as err:
        report.push_to_hub("alice/icl-analyses")
    kept = err.value.local_dir
    assert kept.is_relative_to(own_tmp) and f"hf-metaopt push {kept} --repo-id alice/icl-analyses" in str(err.value)
    assert ICLAnalysisReport.from_pretrained(kept) == report
    assert HUB_TOKEN not in str(err.value)


def test_from_pretrained_names_what_it_could_not_find(hub):
    with pytest.raises(FileNotFoundError, match=r"alice/nothing/icl_analysis/run/report.json could not be read from the Hub"):
        ICLAnalysisReport.from_pretrained("alice/nothing", subfolder="icl_analysis/run")


def test_bad_repo_id_is_refused_before_anything_is_written(own_tmp):
    with pytest.raises(ValueError, match="repo_id must be 'namespace/name'"):
        ICLAnalysisReport(make_report()).push_to_hub("no-namespace")
    assert list(own_tmp.iterdir()) == []


def test_the_analysis_layer_loads_only_the_generic_hub_modules_below_it():
    # The upload and the card helpers sit below analysis; the pushes that load run folders sit above it.
    code = "import sys, hf_metaopt.analysis.report; print('hf_metaopt.hub.push' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert out.strip() == "False"
