"""Run folders: reserved before any compute, written atomically, never overwritten, never lost.

:class:`RunFolder` checks that the folder can be made (and is not an existing run) and
locks it through a lock file beside it (``.<name>.lock``, an exclusive ``flock``), so two
runs started with the same folder cannot both write it: the second one fails at once with a
clear error. The operating system drops the lock of a process that dies, so a lock file
left by a killed run is simply taken over. The report is written into a temporary sibling
folder that is renamed into place when complete
(:meth:`~hf_metaopt.analysis.report.ICLAnalysisReport.save_pretrained`); if that fails anyway (disk
full, permissions changed, folder removed) the report is saved to a fallback folder under
the system's temporary directory and the error says where, and how to move or push it.
A run that ends without saving (an error, Ctrl-C) leaves neither its lock nor the parent
folders it created. A run killed outright while saving (``kill -9``, a power cut) leaves its
temporary folder (``.<name>.<random>.tmp``); the next run reserved in the same parent folder
removes those of runs that are dead (their lock is free, as above), and keeps one that holds
a complete ``report.json`` as a visible ``<name>.unsaved`` folder, saying where it is.
"""

from __future__ import annotations

import datetime as _dt
import errno
import fcntl
import json
import logging
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from .fileio import atomic_write_text, file_mode, folder_mode

if TYPE_CHECKING:
    from .analysis.report import ICLAnalysisReport

logger = logging.getLogger(__name__)

__all__ = ["ReportNotSavedError", "RunFolder", "RunFolderError", "default_run_dir"]


class RunFolderError(ValueError):
    """The run folder cannot be used; the message names the folder and the fix."""

    exit_code = 2


class RunFolderBusy(RunFolderError):
    """Another live process holds the run folder's lock (it is writing that run now)."""


class ReportNotSavedError(RunFolderError):
    """The finished report could not be written to its run folder.

    The message says where it was saved instead. ``unsaved`` holds the report as JSON text
    when it could not be written anywhere (the caller should print it rather than lose it).
    """

    exit_code = 1

    def __init__(self, message: str, unsaved: str | None = None):
        super().__init__(message)
        self.unsaved = unsaved


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


def _reason(err: BaseException) -> str:
    if isinstance(err, OSError) and err.errno in errno.errorcode:
        return os.strerror(err.errno)
    return " ".join(str(err).split()) or type(err).__name__


class RunFolder:
    """A run folder reserved for one run: ``with RunFolder(path) as run: ...; run.save(report)``."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.lock = _lock_path(self.path)
        self.saved = False
        self.recovered: list[Path] = []  # finished reports of killed runs found by reserve(), now <name>.unsaved
        self._fd: int | None = None
        self._made: Path | None = None  # the outermost parent folder this run created

    def __enter__(self) -> "RunFolder":
        self.reserve()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def reserve(self) -> None:
        """Make the parent folder, refuse an existing run, and take the lock (``RunFolderError`` if any fails)."""
        self._refuse_existing()
        self._make_parent()
        try:
            self._take_lock()
            self._refuse_existing()  # made by a run that held the lock until a moment ago
        except BaseException:
            self.release()
            raise
        found = _clean_dead_temporaries(self.path.parent, own=self.path.name)
        self.recovered = [kept for _, kept in found]
        for run, kept in found:
            logger.warning(
                "hf-metaopt: a run of %s was killed while saving its finished report; the report is kept in %s "
                "(move it into place with: mv %s %s, if no run folder is there; or delete it)", run, kept, kept, run,
            )

    def _refuse_existing(self) -> None:
        if self.path.exists() or self.path.is_symlink():
            raise RunFolderError(f"run folder {self.path} already exists (runs are never overwritten); choose another --output-dir.")

    def _make_parent(self) -> None:
        parent, made = self.path.parent, None
        for above in (parent, *parent.parents):
            if above.exists():
                if not above.is_dir():
                    raise RunFolderError(f"cannot make the run folder {self.path}: {above} is not a folder; choose another --output-dir.")
                break
            made = above
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise RunFolderError(f"cannot create the folder {parent} for the run ({_reason(err)}); choose another --output-dir.") from None
        self._made = made

    def _take_lock(self) -> None:
        for _ in range(3):
            try:
                fd = os.open(self.lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
            except OSError as err:
                if isinstance(err, FileNotFoundError) and not self.path.parent.exists():
                    self._make_parent()  # removed by a run that failed just now
                    continue
                raise RunFolderError(f"cannot create files in {self.path.parent} ({_reason(err)}); choose a writable --output-dir.") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as err:
                raise self._busy(fd, err) from None
            if self._is_current(fd):
                os.fchmod(fd, file_mode())
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
                self._fd = fd
                return
            os.close(fd)  # its last holder removed the file while we waited: lock the one at the path now
        raise RunFolderError(f"could not lock {self.lock}: other runs keep taking it; choose another --output-dir.")

    def _busy(self, fd: int, err: OSError) -> RunFolderError:
        """The error for a lock that could not be taken, naming the run that holds it."""
        holder = os.pread(fd, 200, 0).decode(errors="replace").split()
        os.close(fd)
        if err.errno not in (errno.EAGAIN, errno.EACCES):
            return RunFolderError(f"cannot lock {self.lock} ({_reason(err)}); choose an --output-dir on a local disk.")
        who = f" (pid {holder[0]} on {holder[1]})" if len(holder) >= 2 else ""
        return RunFolderBusy(f"another run{who} is writing {self.path} (lock {self.lock}); wait for it or choose another --output-dir.")

    def _is_current(self, fd: int) -> bool:
        """Whether ``fd`` is still the file at the lock's path (not one unlinked by its last holder)."""
        try:
            now = os.stat(self.lock)
        except FileNotFoundError:
            return False
        mine = os.fstat(fd)
        return (mine.st_dev, mine.st_ino) == (now.st_dev, now.st_ino)

    def release(self) -> None:
        """Drop the lock; after a run that saved nothing, also the parent folders it created."""
        if self._fd is not None:
            if self._is_current(self._fd):
                self.lock.unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = None
        if self._made is not None and not self.saved:
            for folder in (self.path.parent, *self.path.parent.parents):
                try:
                    folder.rmdir()  # only empty folders: anything another process put there stays
                except OSError:
                    break
                if folder == self._made:
                    break
        self._made = None

    def save(self, report: ICLAnalysisReport) -> Path:
        """Write ``report`` into the folder atomically; on failure save it to a fallback folder and raise.

        Raises:
            ReportNotSavedError: the folder could not be written; the message says where the
                report was saved instead and how to move or push it.
        """
        try:
            path = report.save_pretrained(self.path)
        except Exception as err:  # disk full, permissions, a report that cannot be rendered
            raise self._save_fallback(report, err) from None
        self.saved = True
        return path

    def _save_fallback(self, report: ICLAnalysisReport, err: Exception) -> ReportNotSavedError:
        failed = f"could not write the run folder {self.path} ({_reason(err)})"
        try:
            fallback = Path(tempfile.mkdtemp(prefix=f"hf-metaopt-{self.path.name}-")) / self.path.name
        except OSError as err2:
            return ReportNotSavedError(
                f"{failed}, nor a fallback folder in {tempfile.gettempdir()} ({_reason(err2)}); the report follows as JSON on stdout.",
                unsaved=_raw_json(report),
            )
        try:
            report.save_pretrained(fallback)
        except Exception:
            # The plots or the Markdown may be what failed: keep at least the numbers.
            try:
                atomic_write_text(fallback / "report.json", _raw_json(report))
            except OSError as err2:
                return ReportNotSavedError(
                    f"{failed}, nor in {fallback} ({_reason(err2)}); the report follows as JSON on stdout.", unsaved=_raw_json(report)
                )
            return ReportNotSavedError(
                f"{failed}; the report's numbers are saved in {fallback / 'report.json'} (the plots and report.md could not be made). "
                f"Move it with: mkdir -p {self.path} && mv {fallback / 'report.json'} {self.path}/"
            )
        return ReportNotSavedError(
            f"{failed}; the report is saved in {fallback}. Move it with: mv {fallback} {self.path}, "
            f"or push it with: hf-metaopt push {fallback} --repo-id <your-name/your-repo>"
        )


# report.save_pretrained's temporary folder: tempfile.mkdtemp(prefix=".<name>.", suffix=".tmp"), 8 random characters.
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp$")
_UNSAVED = ".unsaved"


def _lock_is_free(lock: Path) -> bool:
    """Whether no live process holds ``lock`` (a run writing its folder always does)."""
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return True
    except OSError:
        return False  # cannot tell: leave its files alone
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    finally:
        os.close(fd)  # closing drops the lock we may have taken
    return True


def _holds_a_report(folder: Path) -> bool:
    try:
        return isinstance(json.loads((folder / "report.json").read_text(encoding="utf-8")), dict)
    except (OSError, UnicodeDecodeError, ValueError):
        return False


def _clean_dead_temporaries(parent: Path, own: str) -> list[tuple[Path, Path]]:
    """Remove the temporary folders that dead runs left in ``parent``; return ``(run folder, where its complete
    report was kept)`` for each that held one.

    ``own`` is the run whose lock the caller holds: its temporaries are dead by definition.
    """
    try:
        entries = sorted(parent.iterdir())
    except OSError:
        return []
    kept = []
    for entry in entries:
        found = _TEMPORARY.match(entry.name)
        if not found or entry.is_symlink() or not entry.is_dir():
            continue
        name = found.group("name")
        if name != own and not _lock_is_free(_lock_path(parent / name)):
            continue  # a live run is saving it now
        if _holds_a_report(entry):
            target, i = parent / f"{name}{_UNSAVED}", 2
            while target.exists() or target.is_symlink():
                target, i = parent / f"{name}{_UNSAVED}-{i}", i + 1
            try:
                entry.rename(target)
                os.chmod(target, folder_mode())  # mkdtemp made it private
            except OSError:
                continue
            kept.append((parent / name, target))
        else:
            shutil.rmtree(entry, ignore_errors=True)
    return kept


def _raw_json(report: ICLAnalysisReport) -> str:
    """The report as JSON text, even when it holds NaN or infinities (which its own writer refuses)."""
    return json.dumps(report.to_dict(), indent=2, default=str) + "\n"
