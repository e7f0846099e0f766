"""report.html on the Hub: pushed with the report and its scores, linked from the card, and published as a static Space."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from huggingface_hub import ModelCard
from hub_server import HUB_TOKEN, hub, make_report, make_run_dir  # noqa: F401  (hub is a fixture)
from safetensors.numpy import save_file

import hf_metaopt.hub.upload as upload_module
from hf_metaopt.cli import main
from hf_metaopt.hub import HubPushError, RetryPolicy, push_report, push_space

PAGE = "<!DOCTYPE html><html><head><title>ICL vs finetuning</title></head><body>the page</body></html>"


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    monkeypatch.setattr(upload_module, "DEFAULT_RETRY", RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.02))


def run_with_page(folder):
    run = make_run_dir(folder)
    (run / "report.html").write_text(PAGE)
    save_file({"labels": np.array([0, 1], dtype=np.int64)}, str(run / "scores.safetensors"))
    return run


def test_push_report_uploads_the_page_and_the_scores_and_the_cards_link_them(hub, tmp_path):
    run = run_with_page(tmp_path / "sst2-seed1")
    push_report(run, "alice/icl-analyses")
    prefix = "icl_analysis/sst2-seed1"
    assert hub.file("alice/icl-analyses", f"{prefix}/report.html") == PAGE.encode()
    assert hub.file("alice/icl-analyses", f"{prefix}/scores.safetensors") == (run / "scores.safetensors").read_bytes()
    run_card = hub.file("alice/icl-analyses", f"{prefix}/README.md").decode()
    assert "[`report.html`](report.html)" in run_card and "[`scores.safetensors`](scores.safetensors)" in run_card
    root = ModelCard.load("alice/icl-analyses").text  # a fresh repo's root card is the analysis card, linking into the run
    assert f"[`report.html`]({prefix}/report.html)" in root and f"[`scores.safetensors`]({prefix}/scores.safetensors)" in root


def test_a_run_without_page_or_scores_links_neither(hub, tmp_path):
    run = make_run_dir(tmp_path / "old-run")
    push_report(run, "alice/icl-analyses")
    card = hub.file("alice/icl-analyses", "icl_analysis/old-run/README.md").decode()
    assert "report.html" not in card and "scores.safetensors" not in card
    assert not [f for f in hub.files("alice/icl-analyses") if f.endswith(("report.html", ".safetensors"))]


def test_push_space_publishes_report_html_as_a_static_space(hub, tmp_path):
    run = run_with_page(tmp_path / "sst2-seed1")
    info = push_space(run, "alice/sst2-page")
    space = hub.state.repos["spaces/alice/sst2-page"]
    assert space.repo_type == "space" and space.sdk == "static"
    assert "/spaces/alice/sst2-page/commit/" in info.commit_url
    assert hub.files("spaces/alice/sst2-page") == [".gitattributes", "README.md", "index.html", "report.json"]
    assert hub.file("spaces/alice/sst2-page", "index.html") == PAGE.encode()
    readme = hub.file("spaces/alice/sst2-page", "README.md").decode()
    meta = yaml.safe_load(readme.split("---")[1])
    assert meta["sdk"] == "static" and meta["app_file"] == "index.html" and len(meta["title"]) <= 30
    assert "alice/tiny-gpt2 on sst2" in readme  # the model id and task of make_report()
    assert "alice/sst2-page" not in hub.state.repos  # no model repo of that name was made


def test_a_run_from_before_report_html_gets_its_page_rendered(hub, tmp_path):
    run = make_run_dir(tmp_path / "old-run")
    push_space(run, "alice/old-page")
    page = hub.file("spaces/alice/old-page", "index.html").decode()
    assert page.startswith("<!DOCTYPE html>") and "ICL vs finetuning: alice/tiny-gpt2 on sst2" in page
    assert 'id="no-scores"' in page  # no per-query scores in that run: the line saying how to get them
    assert not (run / "report.html").exists()  # the run folder is left as it was


def test_cli_push_with_space_and_repo_id(hub, tmp_path, capsys):
    run = run_with_page(tmp_path / "sst2-seed1")
    assert main(["push", str(run), "--repo-id", "alice/icl-analyses", "--space", "alice/sst2-page"]) == 0
    urls = capsys.readouterr().out.split()
    assert len(urls) == 2 and "/alice/icl-analyses/commit/" in urls[0] and "/spaces/alice/sst2-page/commit/" in urls[1]
    assert "icl_analysis/sst2-seed1/report.html" in hub.files("alice/icl-analyses")
    assert hub.file("spaces/alice/sst2-page", "index.html") == PAGE.encode()


@pytest.mark.parametrize("argv, message", [
    (["push", "{run}"], "say where to push: --repo-id"),
    (["push", "{ckpt}", "--space", "alice/x"], "--space publishes an analysis run's report.html"),
    (["push", "{run}", "--space", "not a space id"], "repo_id must be 'namespace/name'"),
])
def test_cli_push_refuses_what_it_cannot_publish(hub, tmp_path, capsys, argv, message):
    run = run_with_page(tmp_path / "run")
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    assert main([a.format(run=run, ckpt=ckpt) for a in argv]) == 2
    assert message in capsys.readouterr().err
    assert hub.count("commit") == 0


def test_a_failed_space_push_names_the_command_that_retries(hub, tmp_path):
    run = run_with_page(tmp_path / "run")
    hub.fail("commit", 500, times=2)
    with pytest.raises(HubPushError) as err:
        push_space(run, "alice/page", token=HUB_TOKEN)
    assert f"hf-metaopt push {run} --space alice/page" in str(err.value) and HUB_TOKEN not in str(err.value)
