"""The generic upload to the Hub: ONE commit, retried, token-safe, nothing from outside the folder.

Used by every push (:func:`hf_metaopt.hub.push_model`, :func:`hf_metaopt.hub.push_report`,
:meth:`hf_metaopt.ICLAnalysisReport.push_to_hub`); it knows nothing of what the files are.
:func:`commit_files` sends a local folder's files in one ``HfApi.create_commit``. Transient failures
(connection errors, 408/429/5xx) are retried with huggingface_hub's own backoff (the defaults of
``huggingface_hub.utils.http_backoff``: its retried status codes, retries and waits), applied to the
whole commit; 401, 403 and 404 are not. Whatever fails, the local folder stays intact and the error
(:class:`HubPushError`) names the repo and the ``hf-metaopt push`` command that retries later.
The token (``token=``, ``HF_TOKEN`` or the login cache, resolved by huggingface_hub) is scrubbed
from every message we raise or log. Nothing outside the pushed folder is uploaded: a file that is a
link (or lies in a linked folder) resolving outside it is refused with a ``ValueError`` before any
request (:func:`check_inside`); links that stay inside the folder are followed.
"""

from __future__ import annotations

import inspect
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huggingface_hub import CommitInfo, CommitOperationAdd, HfApi, get_token
from huggingface_hub.errors import HfHubHTTPError, HTTPError
from huggingface_hub.utils import http_backoff

from ..cache import cache_dir

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_RETRY",
    "TRANSIENT_STATUS",
    "HubPushError",
    "RetryPolicy",
    "check_inside",
    "check_repo_id",
    "commit_files",
    "default_local_dir",
    "files_under",
    "scrub",
]

_HUB_BACKOFF = inspect.signature(http_backoff).parameters
TRANSIENT_STATUS = frozenset(_HUB_BACKOFF["retry_on_status_codes"].default)


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


def commit_files(
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
    prepare: Callable[[HfApi], list[tuple[str, bytes]]] | None = None,
    repo_type: str | None = None,
    space_sdk: str | None = None,
) -> CommitInfo:
    """Create the repo if needed and send ``files`` ([(path in repo, local path or bytes)]) in one commit.

    ``prepare(api)`` (optional) runs before each attempt and returns more files (e.g. a card merged
    with the remote one). ``repo_type`` and ``space_sdk`` are ``HfApi.create_repo``'s (a Space:
    ``"space"`` and its SDK). Transient errors are retried; every failure becomes a :class:`HubPushError`.
    """
    check_inside(folder, files)
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
            api.create_repo(repo_id, private=private, exist_ok=True, repo_type=repo_type, space_sdk=space_sdk)
            if revision and not create_pr:
                api.create_branch(repo_id, branch=revision, exist_ok=True, repo_type=repo_type)
            extra = prepare(api) if prepare is not None else []
            operations = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=c if isinstance(c, bytes) else str(c))
                          for p, c in [*files, *extra]]
            info = api.create_commit(
                repo_id,
                operations,
                commit_message=commit_message,
                revision=revision,
                create_pr=create_pr,
                repo_type=repo_type,
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
        f"hf-metaopt push {folder} {'--space' if repo_type == 'space' else '--repo-id'} {repo_id}" + (" --create-pr" if create_pr else "")
    )
    raise HubPushError(scrub(message, secret), repo_id=repo_id, local_dir=folder, status_code=_status(last)) from None


def check_inside(folder: Path, files: list[tuple[str, Path | bytes]]) -> None:
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


def check_repo_id(repo_id: Any) -> str:
    """``repo_id`` if it reads ``namespace/name``; else a ``ValueError`` saying the expected form."""
    if not isinstance(repo_id, str) or not re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", repo_id):
        raise ValueError(f"repo_id must be 'namespace/name' (e.g. 'alice/momentum-gpt-small'); got {repo_id!r}.")
    return repo_id


def default_local_dir(kind: str, name: str) -> Path:
    """Where a push stages what it sends when no folder is given: ``<hf_metaopt cache>/push/<kind>/<name>``
    (a repo id's ``/`` becomes ``--``)."""
    return cache_dir() / "push" / kind / name.replace("/", "--")


def files_under(folder: Path, keep: Callable[[Path], bool]) -> list[tuple[str, Path]]:
    """``[(relative posix path, path)]`` of the files below ``folder`` that ``keep(relative path)`` accepts,
    sorted; hidden files and folders (``.git``, ``.cache``, ...) are left out."""
    out = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if path.is_file() and not any(part.startswith(".") for part in rel.parts) and keep(rel):
            out.append((rel.as_posix(), path))
    return out
