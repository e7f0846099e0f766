"""Pushing an analysis run folder to the Hub: its card, report, page, scores and plots in one commit.

Where a report goes: its files (card, ``report.json``, ``report.md``, ``report.html``, ``scores.safetensors``
when the run kept them, plots) always live under
``icl_analysis/<run_name>/`` in the repo. The repo's root ``README.md``, if it exists, keeps its
body byte for byte and only gains the eval results in its metadata; a repo without one gets the
analysis card as its root card. With ``create_pr=True`` (the default when pushing into the analysed
model's own repo) the commit is a pull request, so the owner's main branch changes only if they
merge it. The commit itself (retries, token safety, links refused) is :mod:`hf_metaopt.hub.upload`'s.

:func:`hf_metaopt.hub.push_report` (a run folder, a report or its dict) and
:meth:`~hf_metaopt.analysis.report.ICLAnalysisReport.push_to_hub` both end in :func:`push_analysis`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from huggingface_hub import CommitInfo, HfApi, ModelCard, hf_hub_download
from huggingface_hub.errors import RemoteEntryNotFoundError

from ..fileio import atomic_write_json, atomic_write_text
from ..hub.cards import merge_eval_results
from ..hub.upload import RetryPolicy, check_inside, commit_files, default_local_dir, files_under
from ..model_id import hub_model_id
from .query_scores import SCORES_FILE
from .report_card import eval_results_from_report, render_analysis_card

logger = logging.getLogger(__name__)

__all__ = ["HTML_FILE", "IMAGE_SUFFIXES", "PUSHED_FILES", "REPORT_SUBFOLDER", "SCORES_FILE", "clean_run_name", "push_analysis", "stage_report"]

IMAGE_SUFFIXES = (".png", ".svg", ".jpg", ".jpeg")
REPORT_SUBFOLDER = "icl_analysis"
HTML_FILE = "report.html"
# Files of a run folder pushed when present, besides its card, report.json and plots.
PUSHED_FILES = ("report.md", HTML_FILE, SCORES_FILE)


def clean_run_name(name: str) -> str:
    """``name`` made safe as a folder name in the repo (runs of other characters become ``-``)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")
    if not cleaned:
        raise ValueError(f"run_name {name!r} has no usable characters; use letters, digits, '.', '_' or '-'.")
    return cleaned


def stage_report(report: Any, run_name: str | None, local_dir: str | os.PathLike | None) -> tuple[Path, dict, str]:
    """Save ``report`` (an ``ICLAnalysisReport``) into the run folder to push; return (folder, its dict, run name).

    The run name defaults to ``<task>-<method>-seed<seed>-<digest of the report>``; the folder to
    ``local_dir``, else ``<hf_metaopt cache>/push/report/<run name>``. A folder that already holds
    this very report is reused; one holding another run is refused (``FileExistsError``).
    """
    data = report.to_dict()
    config = data["config"]
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:8]
    name = clean_run_name(run_name or f"{config.get('task', 'analysis')}-{config.get('method', 'kv')}-seed{config.get('seed', 0)}-{digest}")
    folder = Path(local_dir) if local_dir is not None else default_local_dir("report", name)
    if folder.exists():
        saved = folder / "report.json"
        if not (saved.is_file() and json.loads(saved.read_text()) == data):
            raise FileExistsError(f"local_dir {folder} already holds another run; pass a new local_dir for this report.")
    elif hasattr(report, "save"):
        report.save(folder)  # report.json, report.md, report.html and plots (and scores), atomically
    else:
        atomic_write_json(folder / "report.json", data)
    return folder, data, name


def _warn_if_another_model(card_text: str, repo_id: str, model_id: str) -> None:
    """Warn when the repo's card describes a model other than the report's: its model-index would list
    the analysed model's numbers as the repo's own (a repo of analyses, tagged ``icl-analysis``, is fine)."""
    data = ModelCard(card_text, ignore_metadata_errors=True).data
    if not model_id or "icl-analysis" in (data.tags or []):
        return
    described = data.model_name or repo_id
    if model_id not in (repo_id, described):
        logger.warning(
            "warning: pushing the analysis of model %s into %s, whose card describes the model %s: its model-index will "
            "list %s's numbers as %s's; push to a repo of analyses (e.g. your-name/icl-analyses) unless that is meant.",
            model_id, repo_id, described, model_id, described,
        )


def _root_card(data: dict, repo_id: str, model_id: str, revision, token, prefix: str, plots: list[str], extras: dict[str, str | None]):
    """``prepare`` for :func:`~hf_metaopt.hub.upload.commit_files`: the repo's root card with the eval
    results merged (or the analysis card)."""
    eval_results = eval_results_from_report(data)

    def root_card(api: HfApi) -> list[tuple[str, bytes]]:
        try:
            existing = hf_hub_download(repo_id, "README.md", revision=revision, token=token, endpoint=api.endpoint)
        except RemoteEntryNotFoundError:
            links = {key: f"{prefix}/{name}" if name else None for key, name in extras.items()}
            root = render_analysis_card(
                data, model_id=model_id or None, plots=[f"{prefix}/{rel}" for rel in plots], report_link=f"{prefix}/report.json", **links
            )
            return [("README.md", str(root).encode())]
        text = Path(existing).read_text(encoding="utf-8")
        _warn_if_another_model(text, repo_id, model_id)
        return [("README.md", merge_eval_results(text, eval_results, model_id or repo_id).encode())]

    return root_card


def push_analysis(
    folder: Path,
    data: dict,
    name: str,
    repo_id: str,
    *,
    token: str | bool | None = None,
    create_pr: bool | None = None,
    private: bool = False,
    revision: str | None = None,
    model_id: str | None = None,
    commit_message: str | None = None,
    retry: RetryPolicy | None = None,
) -> CommitInfo:
    """Push the run folder ``folder`` (holding ``report.json``, whose dict is ``data``) as ``icl_analysis/<name>/``.

    Writes the analysis card as the folder's ``README.md`` and sends it with ``report.json``,
    ``report.md``, ``report.html``, ``scores.safetensors`` (those the folder holds) and the plots,
    plus the repo's root card, in one commit; the cards link the page and the scores. ``model_id`` names the
    analysed model (default: the report's ``config["model"]``); ``create_pr=None`` opens a pull
    request exactly when ``repo_id`` is that model's repo. The arguments are those of
    :func:`hf_metaopt.hub.push_report`, which documents them.

    Raises:
        ValueError: a file to push is a link to outside the folder (nothing is written or sent).
        HubPushError: the push failed; the local folder is intact and the message says how to retry.
    """
    model_id = model_id or hub_model_id(data["config"]) or ""  # never a local model's name or path
    if create_pr is None:
        create_pr = repo_id == model_id
    plots = [p for p in files_under(folder, lambda rel: rel.suffix.lower() in IMAGE_SUFFIXES)]
    present = [n for n in PUSHED_FILES if (folder / n).is_file()]
    check_inside(folder, [("", folder / "report.json"), *(("", folder / n) for n in present), *plots])  # before the card is written
    extras = {"html_link": HTML_FILE if HTML_FILE in present else None, "scores_link": SCORES_FILE if SCORES_FILE in present else None}
    card = render_analysis_card(data, model_id=model_id or None, plots=[rel for rel, _ in plots], **extras)
    atomic_write_text(folder / "README.md", str(card))

    prefix = f"{REPORT_SUBFOLDER}/{name}"
    files: list[tuple[str, Path | bytes]] = [(f"{prefix}/README.md", folder / "README.md"), (f"{prefix}/report.json", folder / "report.json")]
    files += [(f"{prefix}/{n}", folder / n) for n in present]
    files += [(f"{prefix}/{rel}", path) for rel, path in plots]
    root_card = _root_card(data, repo_id, model_id, revision, token, prefix, [rel for rel, _ in plots],
                           {"html_link": extras["html_link"], "scores_link": extras["scores_link"]})
    return commit_files(
        folder=folder,
        repo_id=repo_id,
        files=files,
        what=f"ICL analysis report {name!r}",
        token=token,
        private=private,
        revision=revision,
        create_pr=create_pr,
        commit_message=commit_message or f"Add ICL analysis {name} (hf-metaopt)",
        retry=retry,
        prepare=root_card,
    )
