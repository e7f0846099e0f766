"""Pushes of checkpoints and analysis reports to the Hub: one commit each, retried, token-safe.

Every push first completes a local folder (the checkpoint or the run folder, with its card as
``README.md`` written atomically), then sends it in ONE commit with ``HfApi.create_commit``.
Transient failures (connection errors, 408/429/5xx) are retried with huggingface_hub's own backoff
(the defaults of ``huggingface_hub.utils.http_backoff``: its retried status codes, retries and
waits), applied to the whole commit; 401, 403 and 404 are not. Whatever fails, the local folder stays intact and the error
(:class:`HubPushError`) names the repo and the ``hf-metaopt push`` command that retries later.
The token (``token=``, ``HF_TOKEN`` or the login cache, resolved by huggingface_hub) is scrubbed
from every message we raise or log. Nothing outside the pushed folder is uploaded: a file that is a
link (or lies in a linked folder) resolving outside it is refused with a ``ValueError`` before any
request; links that stay inside the folder are followed.

Where a report goes: its files (card, ``report.json``, ``report.md``, plots) always live under
``icl_analysis/<run_name>/`` in the repo. The repo's root ``README.md``, if it exists, keeps its
body byte for byte and only gains the eval results in its metadata; a repo without one gets the
analysis card as its root card. With ``create_pr=True`` (the default when pushing into the analysed
model's own repo) the commit is a pull request, so the owner's main branch changes only if they
merge it.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huggingface_hub import CommitInfo, CommitOperationAdd, HfApi, ModelCard, get_token, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError, HTTPError, RemoteEntryNotFoundError
from huggingface_hub.utils import http_backoff

from ..cache import cache_dir
from ..fileio import atomic_write_json, atomic_write_text
from ..model_id import hub_model_id
from .cards import eval_results_from_report, merge_eval_results, render_analysis_card, write_model_card

logger = logging.getLogger(__name__)

__all__ = ["HubPushError", "RetryPolicy", "DEFAULT_RETRY", "push_model", "push_report"]

# Serialisation formats that unpickle on load: never uploaded.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
IMAGE_SUFFIXES = (".png", ".svg", ".jpg", ".jpeg")
_HUB_BACKOFF = inspect.signature(http_backoff).parameters
TRANSIENT_STATUS = frozenset(_HUB_BACKOFF["retry_on_status_codes"].default)
REPORT_SUBFOLDER = "icl_analysis"


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff for transient failures: ``attempts`` tries in all, waiting
    ``base_delay * 2**k`` seconds (at most ``max_delay``) before retry ``k + 1``.

    The defaults are huggingface_hub's (``http_backoff``: ``max_retries`` retries after the first
    try, waits from ``base_wait_time`` doubling up to ``max_wait_time``)."""

    attempts: int = 1 + _HUB_BACKOFF["max_retries"].default
    base_delay: float = float(_HUB_BACKOFF["base_wait_time"].default)
    max_delay: float = float(_HUB_BACKOFF["max_wait_time"].default)

    def __post_init__(self):
        if self.attempts < 1:
            raise ValueError(f"RetryPolicy.attempts must be at least 1; got {self.attempts}.")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("RetryPolicy.base_delay and max_delay must be >= 0.")

    def delay(self, retry: int) -> float:
        return min(self.max_delay, self.base_delay * 2**retry)


DEFAULT_RETRY = RetryPolicy()


class HubPushError(RuntimeError):
    """A push failed. The message names the repo, the cause and the local folder to push later."""

    def __init__(self, message: str, *, repo_id: str, local_dir: Path, status_code: int | None = None):
        super().__init__(message)
        self.repo_id = repo_id
        self.local_dir = local_dir
        self.status_code = status_code


# -- secrets ------------------------------------------------------------------------------------

_TOKEN_LIKE = re.compile(r"\b(hf_[A-Za-z0-9]{30,}|api_org_[A-Za-z0-9]{30,})\b")
_BEARER = re.compile(r"(Bearer\s+)\S+", re.IGNORECASE)


def scrub(text: str, token: str | None = None) -> str:
    """``text`` with the token (and anything shaped like a Hub token or a bearer header) masked."""
    if token:
        text = text.replace(token, "***")
    return _BEARER.sub(r"\1***", _TOKEN_LIKE.sub("***", text))


def _resolved_token(token: str | bool | None) -> str | None:
    if isinstance(token, str):
        return token
    if token is False:
        return None
    return get_token()


# -- the one commit -----------------------------------------------------------------------------


def _network_cause(err: BaseException | None) -> BaseException | None:
    """The HTTP error (with a response) or transport error behind ``err``, following its causes.

    huggingface_hub raises :class:`~huggingface_hub.errors.HfHubHTTPError` for an answer with an
    error status, and its HTTP client's ``HTTPError`` (the base class huggingface_hub's errors
    derive from) for a request that got no answer.
    """
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, HfHubHTTPError) or getattr(getattr(err, "response", None), "status_code", None) is not None:
            return err
        if isinstance(err, (HTTPError, ConnectionError, TimeoutError)):
            return err
        err = err.__cause__ or err.__context__
    return None


def _status(err: BaseException | None) -> int | None:
    cause = _network_cause(err)
    return getattr(getattr(cause, "response", None), "status_code", None)


def _is_transient(err: BaseException | None) -> bool:
    cause = _network_cause(err)
    if cause is None:
        return False
    status = _status(cause)
    return status in TRANSIENT_STATUS if status is not None else True


def _reason(err: BaseException, repo_id: str) -> str:
    status = _status(err)
    if status == 401:
        return "the Hub rejected the credentials (401): set HF_TOKEN, run `hf auth login`, or pass a valid --token"
    if status == 403:
        return f"the token has no write access to {repo_id} (403): use a write token, or --create-pr to propose the change"
    if status == 404:
        return f"{repo_id} or the revision does not exist, or is private to another account (404)"
    shown = _network_cause(err) or err
    lines = [line.strip() for line in str(shown).splitlines() if line.strip()]
    return f"{type(shown).__name__}: {lines[0] if lines else 'no details'}"


def _commit(
    *,
    folder: Path,
    repo_id: str,
    files: list[tuple[str, Path | bytes]],
    what: str,
    token: str | bool | None,
    private: bool,
    revision: str | None,
    create_pr: bool,
    commit_message: str,
    retry: RetryPolicy | None,
    prepare: Any = None,
) -> CommitInfo:
    """Create the repo if needed and send ``files`` ([(path in repo, local path or bytes)]) in one commit.

    ``prepare(api)`` (optional) runs before each attempt and returns more files (e.g. a card merged
    with the remote one). Transient errors are retried; every failure becomes a :class:`HubPushError`.
    """
    _check_inside(folder, files)
    retry = retry or DEFAULT_RETRY
    secret = _resolved_token(token)
    api = HfApi(token=token)
    last: BaseException | None = None
    for attempt in range(retry.attempts):
        if attempt:
            wait = retry.delay(attempt - 1)
            logger.warning("Push of %s to %s failed (%s); retry %d/%d in %.1fs.", what, repo_id,
                           scrub(_reason(last, repo_id), secret), attempt, retry.attempts - 1, wait)
            time.sleep(wait)
        try:
            api.create_repo(repo_id, private=private, exist_ok=True)
            if revision and not create_pr:
                api.create_branch(repo_id, branch=revision, exist_ok=True)
            extra = prepare(api) if prepare is not None else []
            operations = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=c if isinstance(c, bytes) else str(c))
                          for p, c in [*files, *extra]]
            info = api.create_commit(
                repo_id,
                operations,
                commit_message=commit_message,
                revision=revision,
                create_pr=create_pr,
            )
        except Exception as err:
            if _network_cause(err) is None and not isinstance(err, OSError):
                raise  # a bug or bad input, not a failed transfer: let it surface unchanged
            last = err
            if _is_transient(err) and attempt + 1 < retry.attempts:
                continue
            break
        else:
            logger.info("Pushed %s to %s: %s", what, repo_id, info.pr_url or info.commit_url)
            return info
    tries = f" after {retry.attempts} attempts" if _is_transient(last) else ""
    message = (
        f"Could not push the {what} to the Hub repo {repo_id}{tries}: {_reason(last, repo_id)}. "
        f"Nothing was lost: the files are in {folder}. Push them later with: "
        f"hf-metaopt push {folder} --repo-id {repo_id}" + (" --create-pr" if create_pr else "")
    )
    raise HubPushError(scrub(message, secret), repo_id=repo_id, local_dir=folder, status_code=_status(last)) from None


def _check_inside(folder: Path, files: list[tuple[str, Path | bytes]]) -> None:
    """Refuse, before any request, a file to upload that is (or lies below) a link resolving outside ``folder``.

    Nothing outside the folder pushed may leave the machine (a ``passwd -> /etc/passwd`` link in
    a checkpoint would upload the system's file); links inside the folder to files inside it are followed.
    """
    root = folder.resolve()
    for _, local in files:
        if isinstance(local, bytes):
            continue
        target = Path(local).resolve()
        if not target.is_relative_to(root):
            link = next((p for p in [Path(local), *Path(local).parents] if p.is_symlink()), Path(local))
            raise ValueError(
                f"{link} is a link to {os.path.realpath(link)}, outside {folder}; nothing was pushed (files outside the pushed "
                f"folder are never uploaded): replace the link with a copy of the file (cp --remove-destination "
                f"{os.path.realpath(link)} {link}) or remove it."
            )


def _check_repo_id(repo_id: Any) -> str:
    if not isinstance(repo_id, str) or not re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", repo_id):
        raise ValueError(f"repo_id must be 'namespace/name' (e.g. 'alice/momentum-gpt-small'); got {repo_id!r}.")
    return repo_id


def _default_local_dir(kind: str, repo_id: str) -> Path:
    return cache_dir() / "push" / kind / repo_id.replace("/", "--")


def _files_under(folder: Path, keep) -> list[tuple[str, Path]]:
    out = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if path.is_file() and not any(part.startswith(".") for part in rel.parts) and keep(rel):
            out.append((rel.as_posix(), path))
    return out


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
        folder = Path(local_dir) if local_dir is not None else _default_local_dir("model", repo_id)
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
    _check_repo_id(repo_id)
    folder = _checkpoint_folder(model_or_dir, repo_id, tokenizer, local_dir)
    keep = lambda rel: rel.suffix not in PICKLE_SUFFIXES and not rel.parts[0].startswith(("checkpoint-", "runs"))  # noqa: E731
    _check_inside(folder, _files_under(folder, keep))  # before the card is written: a refused push changes nothing
    # A folder's existing card (e.g. refreshed by a training callback) is kept unless card fields are given.
    if card_fields or card_data is not None or not (folder / "README.md").is_file() or not isinstance(model_or_dir, (str, os.PathLike)):
        card_fields.setdefault("repo_id", repo_id)
        write_model_card(folder, card_data=card_data, **card_fields)
    files = _files_under(folder, keep)
    return _commit(
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


def _run_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")
    if not cleaned:
        raise ValueError(f"run_name {name!r} has no usable characters; use letters, digits, '.', '_' or '-'.")
    return cleaned


def _materialize_report(report_or_dir: Any, run_name: str | None, local_dir: Any) -> tuple[Path, dict, str]:
    from ..analysis.report import ICLAnalysisReport

    if isinstance(report_or_dir, (str, os.PathLike)):
        folder = Path(report_or_dir)
        if folder.is_file() and folder.name == "report.json":
            folder = folder.parent
        if not (folder / "report.json").is_file():
            raise FileNotFoundError(f"{folder} holds no report.json; pass an analysis run folder or an ICLAnalysisReport.")
        report = ICLAnalysisReport.from_json(folder)
        return folder, report.to_dict(), _run_name(run_name or folder.resolve().name)
    if isinstance(report_or_dir, dict):
        report_or_dir = ICLAnalysisReport.from_dict(report_or_dir)
    if not isinstance(report_or_dir, ICLAnalysisReport):
        raise TypeError(f"report_or_dir must be an ICLAnalysisReport, its dict, or a run folder; got {type(report_or_dir).__name__}.")
    data = report_or_dir.to_dict()
    config = data["config"]
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:8]
    name = _run_name(run_name or f"{config.get('task', 'analysis')}-{config.get('method', 'kv')}-seed{config.get('seed', 0)}-{digest}")
    folder = Path(local_dir) if local_dir is not None else cache_dir() / "push" / "report" / name
    if folder.exists():
        saved = folder / "report.json"
        if not (saved.is_file() and json.loads(saved.read_text()) == data):
            raise FileExistsError(f"local_dir {folder} already holds another run; pass a new local_dir for this report.")
    elif hasattr(report_or_dir, "save"):
        report_or_dir.save(folder)  # report.json, report.md and plots, atomically
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


def _root_card(data: dict, repo_id: str, model_id: str, revision, token, prefix: str, plots: list[str]):
    """``prepare`` for :func:`_commit`: the repo's root card with the eval results merged (or the analysis card)."""
    eval_results = eval_results_from_report(data)

    def root_card(api: HfApi) -> list[tuple[str, bytes]]:
        try:
            existing = hf_hub_download(repo_id, "README.md", revision=revision, token=token, endpoint=api.endpoint)
        except RemoteEntryNotFoundError:
            root = render_analysis_card(
                data, model_id=model_id or None, plots=[f"{prefix}/{rel}" for rel in plots], report_link=f"{prefix}/report.json"
            )
            return [("README.md", str(root).encode())]
        text = Path(existing).read_text(encoding="utf-8")
        _warn_if_another_model(text, repo_id, model_id)
        return [("README.md", merge_eval_results(text, eval_results, model_id or repo_id).encode())]

    return root_card


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
    _check_repo_id(repo_id)
    folder, data, name = _materialize_report(report_or_dir, run_name, local_dir)
    model_id = model_id or hub_model_id(data["config"]) or ""  # never a local model's name or path
    if create_pr is None:
        create_pr = repo_id == model_id
    plots = [p for p in _files_under(folder, lambda rel: rel.suffix.lower() in IMAGE_SUFFIXES)]
    _check_inside(folder, [("", folder / "report.json"), ("", folder / "report.md"), *plots])  # before the card is written
    card = render_analysis_card(data, model_id=model_id or None, plots=[rel for rel, _ in plots])
    atomic_write_text(folder / "README.md", str(card))

    prefix = f"{REPORT_SUBFOLDER}/{name}"
    files: list[tuple[str, Path | bytes]] = [(f"{prefix}/README.md", folder / "README.md"), (f"{prefix}/report.json", folder / "report.json")]
    if (folder / "report.md").is_file():
        files.append((f"{prefix}/report.md", folder / "report.md"))
    files += [(f"{prefix}/{rel}", path) for rel, path in plots]
    root_card = _root_card(data, repo_id, model_id, revision, token, prefix, [rel for rel, _ in plots])
    return _commit(
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
