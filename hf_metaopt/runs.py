"""Run folders: reserved before any compute, written atomically, never overwritten, never lost.

:class:`RunFolder` checks the folder can be made (and is not an existing run) and takes a
lock beside it (``.<name>.lock``, created exclusively), so two runs started with the same
folder cannot both write it: the second one fails at once with a clear error. The report
is written into a temporary sibling folder that is renamed into place when complete
(:meth:`~hf_metaopt.analysis.report.ICLAnalysisReport.save`); if that fails anyway (disk
full, permissions changed, folder removed) the report is saved to a fallback folder under
the system's temporary directory and the error says where, and how to move or push it.
"""

from __future__ import annotations

import datetime as _dt
import errno
import os
import tempfile
from pathlib import Path

__all__ = ["RunFolder", "RunFolderError", "default_run_dir"]


class RunFolderError(ValueError):
    """The run folder cannot be used; the message names the folder and the fix."""


def default_run_dir(task: str, model: str) -> Path:
    """``runs/<task>-<model>-<timestamp>``, with a numeric suffix if that exists already."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path("runs") / f"{task}-{model}-{stamp}"
    candidate, i = base, 2
    while candidate.exists() or _lock_path(candidate).exists():
        candidate, i = base.with_name(f"{base.name}-{i}"), i + 1
    return candidate


def _lock_path(run_dir: Path) -> Path:
    return run_dir.parent / f".{run_dir.name}.lock"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunFolder:
    """A run folder reserved for one run: ``with RunFolder(path) as run: ...; run.save(report)``."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.lock = _lock_path(self.path)
        self._held = False

    def __enter__(self) -> "RunFolder":
        self.reserve()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def reserve(self) -> None:
        """Make the parent folder, refuse an existing run, and take the lock (``RunFolderError`` if any fails)."""
        if self.path.exists():
            raise RunFolderError(f"run folder {self.path} already exists (runs are never overwritten); choose another --output-dir.")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise RunFolderError(f"cannot create the folder {self.path.parent} for the run ({err.strerror}); choose another --output-dir.") from None
        for _ in range(2):
            try:
                fd = os.open(self.lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if self._stale():
                    continue
                raise RunFolderError(
                    f"another run is writing {self.path} (lock {self.lock}); choose another --output-dir, "
                    "or delete the lock file if no run is active."
                ) from None
            except OSError as err:
                raise RunFolderError(f"cannot write in {self.path.parent} ({err.strerror}); choose a writable --output-dir.") from None
            with os.fdopen(fd, "w") as fh:
                fh.write(str(os.getpid()))
            self._held = True
            return

    def _stale(self) -> bool:
        """Remove and report a lock whose process is gone (a run killed without cleaning up)."""
        try:
            pid = int(self.lock.read_text().strip() or 0)
        except (OSError, ValueError):
            return False
        if pid and not _pid_alive(pid):
            self.lock.unlink(missing_ok=True)
            return True
        return False

    def release(self) -> None:
        if self._held:
            self.lock.unlink(missing_ok=True)
            self._held = False

    def save(self, report) -> Path:
        """Write ``report`` into the folder atomically; on failure save it to a fallback folder and raise.

        Raises:
            RunFolderError: the folder could not be written; the message says where the report
                was saved instead and how to move or push it.
        """
        try:
            return report.save(self.path)
        except OSError as err:
            fallback = Path(tempfile.mkdtemp(prefix=f"hf-metaopt-{self.path.name}-")) / self.path.name
            report.save(fallback)
            reason = os.strerror(err.errno) if err.errno in errno.errorcode else str(err)
            raise RunFolderError(
                f"could not write the run folder {self.path} ({reason}); the report is saved in {fallback}. "
                f"Move it with: mv {fallback} {self.path}, or push it with: hf-metaopt push {fallback} --repo-id <repo>"
            ) from None
