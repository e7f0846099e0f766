"""Pushes of checkpoints and analysis reports to the Hub: one commit each, retried, token-safe.

Every push first completes a local folder (the checkpoint or the run folder, with its card as
``README.md`` written atomically), then sends it in ONE commit with
:func:`hf_metaopt.hub.upload.commit_files` (retries with huggingface_hub's backoff, the token
scrubbed from every message, links to outside the folder refused; a failure is a
:class:`~hf_metaopt.hub.upload.HubPushError` naming the ``hf-metaopt push`` command that retries).
A report's files go under ``icl_analysis/<run_name>/`` and its eval results into the repo's root
card (:mod:`hf_metaopt.analysis.report_push` says where and how).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from huggingface_hub import CommitInfo

from ..analysis.report import ICLAnalysisReport
from ..analysis.report_push import clean_run_name, push_analysis, stage_report
from .cards import write_model_card
from .upload import DEFAULT_RETRY, HubPushError, RetryPolicy, check_inside, check_repo_id, commit_files, default_local_dir, files_under

__all__ = ["HubPushError", "RetryPolicy", "DEFAULT_RETRY", "push_model", "push_report"]

# Serialisation formats that unpickle on load: never uploaded.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


# -- checkpoints --------------------------------------------------------------------------------


def _save_model(model: Any, tokenizer: Any, folder: Path) -> None:
    """``save_pretrained`` into a fresh sibling folder, then move each file into ``folder`` (atomic renames)."""
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".saving-", dir=folder.parent))
    try:
        model.save_pretrained(staging)
        if tokenizer is not None:
            tokenizer.save_pretrained(staging)
        for path in sorted(staging.rglob("*")):
            if path.is_file():
                target = folder / path.relative_to(staging)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _checkpoint_folder(model_or_dir: Any, repo_id: str, tokenizer: Any, local_dir) -> Path:
    """The folder to push: the given checkpoint folder, or the model saved (safetensors) into one."""
    if isinstance(model_or_dir, (str, os.PathLike)):
        folder = Path(model_or_dir)
        if not (folder / "config.json").is_file():
            raise ValueError(f"{folder} is not a checkpoint folder (no config.json); pass a model or a save_pretrained folder.")
        if tokenizer is not None:
            tokenizer.save_pretrained(folder)
    elif hasattr(model_or_dir, "save_pretrained"):
        folder = Path(local_dir) if local_dir is not None else default_local_dir("model", repo_id)
        _save_model(model_or_dir, tokenizer, folder)
    else:
        raise TypeError(f"model_or_dir must be a transformers model or a checkpoint folder; got {type(model_or_dir).__name__}.")
    if not any(folder.glob("*.safetensors")):
        pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
        raise ValueError(
            f"{folder} holds no *.safetensors weights{f' (only pickle files {pickles})' if pickles else ''}; "
            "hf-metaopt pushes safetensors only: load the model and save it again with model.save_pretrained(folder)."
        )
    return folder


def push_model(
    model_or_dir: Any,
    repo_id: str,
    *,
    token: str | bool | None = None,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    card_data: Any = None,
    create_pr: bool = False,
    tokenizer: Any = None,
    local_dir: str | os.PathLike | None = None,
    retry: RetryPolicy | None = None,
    **card_fields: Any,
) -> CommitInfo:
    """Push a checkpoint (a model or a ``save_pretrained`` folder) with its card, in one commit.

    A model is first saved (safetensors; with ``tokenizer`` if given) into ``local_dir`` (default:
    ``<hf_metaopt cache>/push/model/<namespace>--<name>``). The checkpoint card
    (``model_cards/momentum_gpt.md``) is rendered from the folder's ``config.json`` and
    ``card_fields`` (see :func:`hf_metaopt.hub.cards.render_model_card`: ``base_model``,
    ``datasets``, ``license``, ``training_data``, ``training_settings``, ``perplexities``, ...;
    ``card_data`` adds metadata) and written as ``README.md``; a folder that already holds a
    ``README.md`` keeps it when no card field is given. Pickle files (``*.bin``, ``*.pt``,
    ...) are never uploaded. Returns the ``CommitInfo`` (``pr_url`` set with ``create_pr=True``).

    Raises:
        ValueError / TypeError: bad arguments or a folder without safetensors weights.
        HubPushError: the push failed; the local folder is intact and the message says how to retry.
    """
    check_repo_id(repo_id)
    folder = _checkpoint_folder(model_or_dir, repo_id, tokenizer, local_dir)
    keep = lambda rel: rel.suffix not in PICKLE_SUFFIXES and not rel.parts[0].startswith(("checkpoint-", "runs"))  # noqa: E731
    check_inside(folder, files_under(folder, keep))  # before the card is written: a refused push changes nothing
    # A folder's existing card (e.g. refreshed by a training callback) is kept unless card fields are given.
    if card_fields or card_data is not None or not (folder / "README.md").is_file() or not isinstance(model_or_dir, (str, os.PathLike)):
        card_fields.setdefault("repo_id", repo_id)
        write_model_card(folder, card_data=card_data, **card_fields)
    files = files_under(folder, keep)
    return commit_files(
        folder=folder,
        repo_id=repo_id,
        files=files,
        what="checkpoint",
        token=token,
        private=private,
        revision=revision,
        create_pr=create_pr,
        commit_message=commit_message or "Upload checkpoint with hf-metaopt",
        retry=retry,
    )


# -- analysis reports ---------------------------------------------------------------------------


def _materialize_report(report_or_dir: Any, run_name: str | None, local_dir: Any) -> tuple[Path, dict, str]:
    """The run folder to push, the report's dict and the run name, for a run folder, a report or its dict."""
    if isinstance(report_or_dir, (str, os.PathLike)):
        folder = Path(report_or_dir)
        if folder.is_file() and folder.name == "report.json":
            folder = folder.parent
        if not (folder / "report.json").is_file():
            raise FileNotFoundError(f"{folder} holds no report.json; pass an analysis run folder or an ICLAnalysisReport.")
        report = ICLAnalysisReport.from_json(folder)
        return folder, report.to_dict(), clean_run_name(run_name or folder.resolve().name)
    if isinstance(report_or_dir, dict):
        report_or_dir = ICLAnalysisReport.from_dict(report_or_dir)
    if not isinstance(report_or_dir, ICLAnalysisReport):
        raise TypeError(f"report_or_dir must be an ICLAnalysisReport, its dict, or a run folder; got {type(report_or_dir).__name__}.")
    return stage_report(report_or_dir, run_name, local_dir)


def push_report(
    report_or_dir: Any,
    repo_id: str,
    *,
    token: str | bool | None = None,
    create_pr: bool | None = None,
    private: bool = False,
    revision: str | None = None,
    model_id: str | None = None,
    run_name: str | None = None,
    local_dir: str | os.PathLike | None = None,
    commit_message: str | None = None,
    retry: RetryPolicy | None = None,
) -> CommitInfo:
    """Push an ICL analysis (report, card, plots) to ``repo_id`` in one commit.

    ``report_or_dir``: a run folder holding ``report.json`` (plus ``report.md`` and plots), or an
    ``ICLAnalysisReport`` (saved first into ``local_dir``). The card (``model_cards/icl_analysis.md``)
    is written as the run folder's ``README.md`` and uploaded with the report under
    ``icl_analysis/<run_name>/``; the eval results go into the repo's root card metadata (its body is
    never changed; a repo without a root card gets the analysis card). ``model_id`` names the
    analysed model (default: the report's ``config["model"]``). ``create_pr=None`` opens a pull
    request exactly when ``repo_id`` is the analysed model's repo.

    Raises:
        ValueError / TypeError / FileNotFoundError: bad arguments or report.
        HubPushError: the push failed; the local folder is intact and the message says how to retry.
    """
    check_repo_id(repo_id)
    folder, data, name = _materialize_report(report_or_dir, run_name, local_dir)
    return push_analysis(folder, data, name, repo_id, token=token, create_pr=create_pr, private=private, revision=revision,
                         model_id=model_id, commit_message=commit_message, retry=retry)
