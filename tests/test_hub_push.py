"""Pushes against a Hub-protocol server on 127.0.0.1, with the real huggingface_hub client."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from huggingface_hub import HfApi, ModelCard, hf_hub_download
from hub_server import HUB_TOKEN, hub, make_report, make_run_dir  # noqa: F401  (hub is a fixture)
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel

import hf_metaopt.hub.upload as upload_module
from hf_metaopt.cli import main
from hf_metaopt.hub import HubPushError, RetryPolicy, eval_results_from_report, push_model, push_report

FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)
INPUT = torch.tensor([[5, 17, 42, 7, 99, 3]])


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    monkeypatch.setattr(upload_module, "DEFAULT_RETRY", FAST)


@pytest.fixture
def tiny_gpt2():
    torch.manual_seed(0)
    config = GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=400, n_positions=64, bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(config).eval()


@pytest.fixture
def tiny_momentum_gpt():
    from hf_metaopt import MomentumGPTConfig, MomentumGPTForCausalLM

    torch.manual_seed(0)
    config = MomentumGPTConfig(vocab_size=400, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                               max_position_embeddings=64, momentum=0.5, bos_token_id=0, eos_token_id=0)
    return MomentumGPTForCausalLM(config).eval()


def snapshot(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder``, to check nothing changed."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_push_gpt2_checkpoint_loads_back_with_the_same_logits(hub, tiny_gpt2, tmp_path):
    info = push_model(tiny_gpt2, "alice/tiny-gpt2", local_dir=tmp_path / "ckpt", perplexities={"valid@64": 350.0})
    assert info.oid in info.commit_url
    assert hub.commits_on("alice/tiny-gpt2") == 2  # the repo's initial commit + ONE push commit
    assert {"README.md", "config.json", "model.safetensors"} <= set(hub.files("alice/tiny-gpt2"))
    assert not [f for f in hub.files("alice/tiny-gpt2") if f.endswith((".bin", ".pt", ".pth", ".pkl"))]
    loaded = AutoModelForCausalLM.from_pretrained("alice/tiny-gpt2")
    with torch.no_grad():
        torch.testing.assert_close(loaded(INPUT).logits, tiny_gpt2(INPUT).logits, rtol=0, atol=0)
    card = ModelCard.load("alice/tiny-gpt2")
    assert card.data.library_name == "transformers" and "hf-metaopt" in card.data.tags
    assert (tmp_path / "ckpt" / "README.md").read_text() == hub.file("alice/tiny-gpt2", "README.md").decode()


def test_push_momentum_gpt_loads_with_plugin_and_with_remote_code_in_a_fresh_python(hub, tiny_momentum_gpt, tmp_path):
    push_model(tiny_momentum_gpt, "alice/momentum-gpt", local_dir=tmp_path / "ckpt", training_data="synthetic")
    assert {"configuration_momentum_gpt.py", "modeling_momentum_gpt.py"} <= set(hub.files("alice/momentum-gpt"))
    card = ModelCard.load("alice/momentum-gpt")
    assert card.data.tags == ["hf-metaopt", "momentum-attention"] and "eta = 0.5" in card.text
    with torch.no_grad():
        expected = tiny_momentum_gpt(INPUT).logits
        loaded = AutoModelForCausalLM.from_pretrained("alice/momentum-gpt")
        torch.testing.assert_close(loaded(INPUT).logits, expected, rtol=0, atol=0)

    script = textwrap.dedent(
        f"""
        import sys, torch
        from transformers import AutoModelForCausalLM
        model = AutoModelForCausalLM.from_pretrained("alice/momentum-gpt", trust_remote_code=True).eval()
        assert "hf_metaopt" not in sys.modules, "the plugin must not be imported"
        with torch.no_grad():
            logits = model(torch.tensor({INPUT.tolist()})).logits
        torch.save(logits, sys.argv[1])
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "PYTHONPATH")}
    env.update(HF_ENDPOINT=hub.url, HF_HUB_DISABLE_XET="1", HF_HOME=str(tmp_path / "fresh-home"))
    out = tmp_path / "logits.pt"
    result = subprocess.run([sys.executable, "-c", script, str(out)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    torch.testing.assert_close(torch.load(out, weights_only=True), expected, rtol=0, atol=0)


def test_push_report_to_own_repo_puts_eval_results_in_the_card(hub, tmp_path):
    run = make_run_dir(tmp_path / "sst2-seed1")
    before = snapshot(run)
    info = push_report(run, "alice/icl-analyses")
    assert info.pr_url is None
    assert hub.commits_on("alice/icl-analyses") == 2
    files = set(hub.files("alice/icl-analyses"))
    prefix = "icl_analysis/sst2-seed1"
    assert {f"{prefix}/{n}" for n in ("README.md", "report.json", "report.md", "simaou_per_layer.png", "kendall_per_layer.png")} <= files
    assert hub.file("alice/icl-analyses", f"{prefix}/report.json") == (run / "report.json").read_bytes()
    card = ModelCard.load("alice/icl-analyses")  # the root card: a fresh repo gets the analysis card
    assert card.data.eval_results == eval_results_from_report(make_report())
    assert card.data.tags == ["hf-metaopt", "icl-analysis"]
    assert f"]({prefix}/simaou_per_layer.png)" in card.text
    sub_card = ModelCard(hub.file("alice/icl-analyses", f"{prefix}/README.md").decode())
    assert "](simaou_per_layer.png)" in sub_card.text
    # The local run folder gained its card and kept everything else byte for byte.
    after = snapshot(run)
    assert after.pop("README.md") and after == before


def test_push_report_as_pull_request_never_touches_the_owners_card(hub, tiny_gpt2, tmp_path):
    push_model(tiny_gpt2, "alice/tiny-gpt2", local_dir=tmp_path / "ckpt", license="mit")
    owner_card = hub.file("alice/tiny-gpt2", "README.md")
    main_files = hub.files("alice/tiny-gpt2")
    run = make_run_dir(tmp_path / "run", make_report(model="alice/tiny-gpt2"))

    info = push_report(run, "alice/tiny-gpt2")  # create_pr=None: the analysed model's own repo -> a PR
    assert info.pr_url and info.pr_url.endswith("/discussions/1")
    assert hub.file("alice/tiny-gpt2", "README.md") == owner_card  # main unchanged
    assert hub.files("alice/tiny-gpt2") == main_files
    assert [d.is_pull_request for d in HfApi().get_repo_discussions("alice/tiny-gpt2")] == [True]

    pr_card_path = hf_hub_download("alice/tiny-gpt2", "README.md", revision="refs/pr/1")
    pr_card = ModelCard.load(pr_card_path)
    original = ModelCard(owner_card.decode())
    assert pr_card.text == original.text  # the body is byte for byte the owner's
    assert pr_card.data.license == "mit" and pr_card.data.tags == original.data.tags
    assert pr_card.data.eval_results == eval_results_from_report(make_report(model="alice/tiny-gpt2"))
    assert "icl_analysis/run/report.json" in hub.files("alice/tiny-gpt2", "refs/pr/1")


def test_a_report_pushed_into_another_models_repo_warns_naming_both(hub, tiny_gpt2, tmp_path, caplog):
    """(Reported: the analysis of one model went silently into another model's model-index.)"""
    push_model(tiny_gpt2, "alice/tiny-gpt2", local_dir=tmp_path / "ckpt")
    run = make_run_dir(tmp_path / "run", make_report(model="google/gemma-3-270m"))
    with caplog.at_level(logging.WARNING, logger="hf_metaopt.hub.push"):
        push_report(run, "alice/tiny-gpt2", create_pr=True)
    warned = [r.getMessage() for r in caplog.records if "whose card describes" in r.getMessage()]
    assert warned == ["warning: pushing the analysis of model google/gemma-3-270m into alice/tiny-gpt2, whose card describes "
                      "the model alice/tiny-gpt2: its model-index will list google/gemma-3-270m's numbers as alice/tiny-gpt2's; "
                      "push to a repo of analyses (e.g. your-name/icl-analyses) unless that is meant."]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hf_metaopt.hub.push"):
        push_report(make_run_dir(tmp_path / "own", make_report(model="alice/tiny-gpt2")), "alice/tiny-gpt2", create_pr=True)
        push_report(run, "alice/icl-analyses")  # a repo of analyses: any model is fine
        push_report(make_run_dir(tmp_path / "other", make_report(model="bob/other")), "alice/icl-analyses")
    assert not [r for r in caplog.records if "whose card describes" in r.getMessage()]


def test_push_to_a_branch(hub, tiny_gpt2, tmp_path):
    push_model(tiny_gpt2, "alice/tiny-gpt2", local_dir=tmp_path / "ckpt", revision="dev")
    assert "config.json" in hub.files("alice/tiny-gpt2", "dev")
    assert hub.files("alice/tiny-gpt2", "main") == [".gitattributes"]


def test_transient_server_error_is_retried(hub, tiny_gpt2, tmp_path):
    hub.fail("commit", 500, times=1)
    info = push_model(tiny_gpt2, "alice/tiny-gpt2", local_dir=tmp_path / "ckpt")
    assert hub.count("commit") == 2
    assert hub.commits_on("alice/tiny-gpt2") == 2  # the failed attempt left no commit
    assert hub.state.repos["alice/tiny-gpt2"].refs["main"] == info.oid


def test_persistent_server_error_ends_in_one_clear_error_and_keeps_files(hub, tmp_path):
    run = make_run_dir(tmp_path / "run")
    push_report(run, "alice/icl-analyses")  # a first push works
    assert push_report(run, "alice/icl-analyses").oid == hub.state.repos["alice/icl-analyses"].refs["main"]
    assert hub.count("commit") == 1  # an unchanged re-push sends no commit
    (run / "report.md").write_text("# ICL analysis\n\nRevised.\n")
    before = snapshot(run)
    hub.fail("commit", 503, times=FAST.attempts)
    with pytest.raises(HubPushError) as caught:
        push_report(run, "alice/icl-analyses", retry=FAST)
    message = str(caught.value)
    assert "alice/icl-analyses" in message and str(run) in message
    assert f"hf-metaopt push {run} --repo-id alice/icl-analyses" in message
    assert f"after {FAST.attempts} attempts" in message and "503" in message
    assert caught.value.status_code == 503 and caught.value.local_dir == run
    assert hub.count("commit") == 1 + FAST.attempts
    assert snapshot(run) == before


def test_rejected_token_is_not_retried_and_never_shown(hub, tiny_gpt2, tmp_path, monkeypatch, capsys, caplog):
    bad_token = "hf_WrongTokenZZZ9876543210zyxwvutsrqponm"
    folder = tmp_path / "ckpt"
    caplog.set_level(logging.DEBUG)
    with pytest.raises(HubPushError) as caught:
        push_model(tiny_gpt2, "alice/tiny-gpt2", token=bad_token, local_dir=folder)
    message = str(caught.value)
    assert "401" in message and "alice/tiny-gpt2" in message and str(folder) in message
    assert hub.count("create") == 1 and hub.count("commit") == 0  # no retry of an auth failure
    assert (folder / "model.safetensors").is_file() and (folder / "README.md").is_file()
    assert bad_token not in message
    seen = capsys.readouterr()
    assert bad_token not in seen.out + seen.err + caplog.text
    assert all(bad_token.encode() not in p.read_bytes() for p in folder.rglob("*") if p.is_file())


def test_token_appears_in_nothing_written_or_printed(hub, tiny_gpt2, tmp_path, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    push_model(tiny_gpt2, "alice/tiny-gpt2", token=HUB_TOKEN, local_dir=tmp_path / "ckpt", notes="trained by alice")
    run = make_run_dir(tmp_path / "run", make_report(model="alice/tiny-gpt2"))
    push_report(run, "alice/tiny-gpt2", token=HUB_TOKEN, create_pr=True)
    hub.fail("commit", 500, times=FAST.attempts)
    with pytest.raises(HubPushError) as caught:
        push_report(run, "alice/reports", token=HUB_TOKEN)
    assert main(["push", str(run), "--repo-id", "alice/reports", "--token", HUB_TOKEN]) == 0
    seen = capsys.readouterr()
    secret = HUB_TOKEN.encode()
    assert HUB_TOKEN not in str(caught.value) + seen.out + seen.err + caplog.text
    written = [p for p in tmp_path.rglob("*") if p.is_file()] + [p for p in hub.state.root.rglob("*") if p.is_file()]
    assert written and not [p for p in written if secret in p.read_bytes()]


def test_cli_pushes_checkpoints_and_reports(hub, tiny_gpt2, tmp_path, capsys):
    ckpt = tmp_path / "ckpt"
    tiny_gpt2.save_pretrained(ckpt)
    torch.save({"step": 1}, ckpt / "optimizer.pt")  # Trainer leftovers are pickles: never uploaded
    assert main(["push", str(ckpt), "--repo-id", "alice/cli-model"]) == 0
    assert "/alice/cli-model/commit/" in capsys.readouterr().out
    assert "optimizer.pt" not in hub.files("alice/cli-model") and "README.md" in hub.files("alice/cli-model")

    run = make_run_dir(tmp_path / "run")
    assert main(["push", str(run), "--repo-id", "alice/cli-model", "--create-pr"]) == 0
    assert capsys.readouterr().out.strip().endswith("/alice/cli-model/discussions/1")

    hub.fail("commit", 401, times=1)
    assert main(["push", str(run), "--repo-id", "alice/cli-model"]) == 1
    last_line = capsys.readouterr().err.strip().splitlines()[-1]
    assert last_line.startswith("hf-metaopt push: error: Could not push") and "(401)" in last_line
    assert last_line.endswith(f"hf-metaopt push {run} --repo-id alice/cli-model")

    assert main(["push", str(tmp_path / "nowhere"), "--repo-id", "alice/x"]) == 2
    (tmp_path / "empty").mkdir()
    assert main(["push", str(tmp_path / "empty"), "--repo-id", "alice/x"]) == 2
    assert "neither config.json" in capsys.readouterr().err


def test_bad_arguments_fail_before_any_request(hub, tiny_gpt2, tmp_path):
    with pytest.raises(ValueError, match="namespace/name"):
        push_model(tiny_gpt2, "no-namespace", local_dir=tmp_path / "a")
    with pytest.raises(TypeError, match="model_or_dir"):
        push_model(42, "alice/x")
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    (pickled / "pytorch_model.bin").write_bytes(b"not really")
    with pytest.raises(ValueError, match="safetensors"):
        push_model(pickled, "alice/x")
    with pytest.raises(FileNotFoundError, match="report.json"):
        push_report(tmp_path, "alice/x")
    assert hub.state.requests == []


def test_pushing_a_folder_keeps_its_card_unless_fields_are_given(hub, tiny_gpt2, tmp_path):
    ckpt = tmp_path / "ckpt"
    tiny_gpt2.save_pretrained(ckpt)
    (ckpt / "README.md").write_text("---\nlicense: mit\n---\n# Written by a training callback\n")
    push_model(ckpt, "alice/kept")
    assert hub.file("alice/kept", "README.md") == (ckpt / "README.md").read_bytes()
    assert b"Written by a training callback" in hub.file("alice/kept", "README.md")
    push_model(ckpt, "alice/kept", training_data="fresh card")
    assert b"fresh card" in hub.file("alice/kept", "README.md")


def test_push_an_in_memory_report_saves_it_first(hub, tmp_path):
    from hf_metaopt import ICLAnalysisReport

    report = ICLAnalysisReport(make_report(model="alice/tiny-gpt2"))
    info = push_report(report, "alice/reports", local_dir=tmp_path / "saved", run_name="first run")
    assert info.pr_url is None
    saved = tmp_path / "saved"
    assert json.loads((saved / "report.json").read_text()) == report.to_dict()
    remote = hub.files("alice/reports")
    assert "icl_analysis/first-run/report.json" in remote and "icl_analysis/first-run/report.md" in remote
    plots = [p.name for p in saved.glob("*.png")]
    assert plots and all(f"icl_analysis/first-run/{p}" in remote for p in plots)
    # Pushing the same report again reuses its folder; another report may not overwrite it.
    push_report(report, "alice/reports", local_dir=saved, run_name="first run")
    with pytest.raises(FileExistsError, match="another run"):
        push_report(ICLAnalysisReport(make_report(task="mr")), "alice/reports", local_dir=saved)


def test_scrub_masks_tokens_but_not_ordinary_text():
    from hf_metaopt.hub.upload import scrub

    text = f"failed with {HUB_TOKEN} and Authorization: Bearer xyz in /home/u/.cache/hf_metaopt/push"
    assert scrub(text, "xyz-custom") == "failed with *** and Authorization: Bearer *** in /home/u/.cache/hf_metaopt/push"
    assert scrub("custom-secret-123 leaked", "custom-secret-123") == "*** leaked"


def test_private_repo_is_created_private(hub, tiny_gpt2, tmp_path, monkeypatch):
    from huggingface_hub.errors import RepositoryNotFoundError

    push_model(tiny_gpt2, "alice/secret-model", private=True, local_dir=tmp_path / "ckpt")
    assert hub.state.repos["alice/secret-model"].private
    assert ModelCard.load("alice/secret-model").data.library_name == "transformers"  # with the token
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("alice/secret-model", "config.json", token=False)
