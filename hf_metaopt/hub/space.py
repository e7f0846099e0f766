"""An analysis run's report.html published as a static Hugging Face Space, so anyone can open it in a browser.

``hf-metaopt push RUN_DIR --space owner/name`` (or :func:`push_space`) creates the Space if needed
(``HfApi.create_repo(repo_type="space", space_sdk="static")``) and sends, in one commit, the run's
``report.html`` as the Space's ``index.html``, its ``report.json``, and a ``README.md`` whose
metadata (``huggingface_hub.SpaceCardData``) makes it a static Space. The page is self-contained, so
the Space serves it as it is. The commit goes through :func:`hf_metaopt.hub.upload.commit_files`
(retries, token scrubbed, nothing from outside the folder).
"""

from __future__ import annotations

import os
from pathlib import Path

from huggingface_hub import CommitInfo, SpaceCard, SpaceCardData

from ..analysis.report import ICLAnalysisReport
from ..analysis.report_push import HTML_FILE
from ..model_id import display_name
from .upload import RetryPolicy, check_repo_id, commit_files

__all__ = ["push_space", "space_card"]

TITLE_LENGTH = 30  # what the Hub shows of a Space's title


def space_card(data: dict) -> SpaceCard:
    """The Space's README.md: static-Space metadata and a short description of the analysis."""
    config = data.get("config") or {}
    model, task = display_name(config), config.get("task") or "custom data"
    title = f"ICL vs FT: {model.rsplit('/', 1)[-1]}"
    card_data = SpaceCardData(
        title=title[:TITLE_LENGTH], sdk="static", app_file="index.html", tags=["hf-metaopt", "icl-analysis"],
        emoji="📈", colorFrom="blue", colorTo="yellow", pinned=False,
        short_description=f"ICL vs finetuning on {task}"[:60],
    )
    body = (
        f"# In-context learning vs finetuning: {model} on {task}\n\n"
        "The interactive report of an analysis in the manner of Dai et al. (2023), made with hf-metaopt: accuracies, "
        "per-layer curves of every metric with their controls, and the per-query explorer. The page is `index.html`, "
        "self-contained; the numbers are in `report.json`.\n"
    )
    return SpaceCard(f"---\n{card_data.to_yaml()}\n---\n\n{body}")


def push_space(
    run_dir: str | os.PathLike,
    space_id: str,
    *,
    token: str | bool | None = None,
    private: bool = False,
    commit_message: str | None = None,
    retry: RetryPolicy | None = None,
) -> CommitInfo:
    """Publish the run folder ``run_dir``'s report.html as the static Space ``space_id`` in one commit.

    A run folder written before report.html existed gets its page rendered from ``report.json`` (and
    ``scores.safetensors`` where the run kept them).
    Returns the ``CommitInfo``; the Space is at ``https://huggingface.co/spaces/<space_id>``.

    Raises:
        ValueError / FileNotFoundError: a bad Space id or a folder without ``report.json``.
        HubPushError: the push failed; the message says how to retry.
    """
    check_repo_id(space_id)
    folder = Path(run_dir)
    if not (folder / "report.json").is_file():
        raise FileNotFoundError(f"{folder} holds no report.json; pass an analysis run folder to publish its report.html as a Space.")
    report = ICLAnalysisReport.from_pretrained(folder)  # with its per-query scores, if the run kept them
    page = folder / HTML_FILE
    files: list[tuple[str, Path | bytes]] = [
        ("index.html", page if page.is_file() else report.to_html().encode("utf-8")),
        ("report.json", folder / "report.json"),
        ("README.md", str(space_card(report.to_dict())).encode("utf-8")),
    ]
    return commit_files(
        folder=folder, repo_id=space_id, files=files, what="analysis page", token=token, private=private, revision=None,
        create_pr=False, commit_message=commit_message or "Publish the ICL analysis page (hf-metaopt)", retry=retry,
        repo_type="space", space_sdk="static",
    )
