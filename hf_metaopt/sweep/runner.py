"""Run a sweep over the processes ``accelerate launch`` (or ``torchrun``) starts, on one or several machines, resumably.

Every process validates the whole grid (:func:`~hf_metaopt.sweep.grid.plan_sweep`) and
lists the jobs whose run folders are not complete; once all have listed them, each takes
the pending jobs in its own order (:meth:`~.processes.SweepProcesses.order`: its contiguous
share in grid order, so each loads each of its models once, then the others' shares from
their ends). A job is claimed by reserving its run folder (:class:`~hf_metaopt.runs.RunFolder`,
an exclusive lock the operating system drops when its holder dies): a job another process
holds is passed over, a finished one skipped, so a process that finishes early takes what
the others have not reached, and the jobs of a process that died (``kill -9``, a lost machine)
are taken by the others. Each run folder is written atomically, so a sweep killed at any point
resumes with the jobs it had not finished.

The processes never wait for one another after they have listed the jobs. The main process,
its own jobs done, waits for the jobs others still hold (taking any whose holder died) and
writes ``summary.json``, ``summary.md``, ``summary.png`` and ``summary.html`` into ``output_dir``;
the others exit when no job is left for them. If the main process is the one that died, the
others still finish the grid, and a rerun of the same command (nothing left to run) writes the summary.
"""

from __future__ import annotations

import gc
import itertools
import json
import sys
import time
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..analysis.run import analyze_task
from ..fileio import atomic_write_bytes, atomic_write_json, atomic_write_text
from ..loading import ModelArguments, load_model
from ..runs import RunFolder, RunFolderBusy, RunFolderError
from .config import SweepArguments
from .grid import Job, SweepPlan, plan_sweep
from .plot import plot
from .processes import ProcessLayout, SweepProcesses, launched_count, one_process_launch_note
from .progress import GridProgress
from .summary import summarize
from .summary_html import summary_html
from .table import to_markdown

__all__ = ["SUMMARY_FILES", "run_job", "run_jobs", "run_sweep", "write_summary"]

SUMMARY_FILES = ("summary.json", "summary.md", "summary.png", "summary.html")
# How often the main process looks again at the jobs other processes hold (seconds).
POLL_SECONDS = 5.0


def _log(layout: ProcessLayout, message: str) -> None:
    tqdm.write(f"[process {layout.index}] {message}", file=sys.stderr)


def run_sweep(args: SweepArguments, shared: Any) -> dict | None:
    """Validate the sweep, run this process's share of the pending jobs and what the others leave, and (main
    process, once every job is done) write the summary.

    Returns:
        The summary (main process) or ``None`` (the other processes).

    Raises:
        ValueError, FileNotFoundError: the configuration is invalid (before any model loads).
    """
    if launched_count() > 1 and args.device not in ("auto", "cpu"):
        raise ValueError(f"`device` {args.device!r}: with several processes use auto (each process gets its own GPU) or cpu.")
    plan = plan_sweep(args, shared)
    processes = SweepProcesses(args.device)
    layout = processes.layout
    if layout.is_main:
        for note in [*plan.notes, one_process_launch_note()]:
            if note:
                _log(layout, f"note: {note}")
    todo = plan.pending()
    processes.wait_for_everyone()  # every process lists the same finished folders before any job writes one
    if layout.is_main:
        done = len(plan.jobs) - len(todo)
        _log(layout, f"sweep: {len(plan.jobs)} jobs, {done} already done, {len(todo)} to run on {layout.count} process(es)")
    try:
        with processes.jobs():
            run_jobs(plan, processes.order(todo), layout, device=_device_name(args.device, processes),
                     own=len(processes.share(todo)), wait=layout.is_main)
    except KeyboardInterrupt as err:  # Ctrl-C or SIGTERM: the finished run folders stay, a rerun resumes
        err.add_note(_kept(plan))
        raise
    if not layout.is_main:
        _log(layout, "no job left for this process; process 0 writes the summary when every job is done "
                     "(if it stopped, rerun the same command: it runs what is missing and writes the summary)")
        return None
    return write_summary(plan)


def _device_name(requested: str, processes: SweepProcesses) -> str:
    """The device models load on: as requested with one process; with several, the one accelerate gives this process."""
    return requested if processes.layout.count == 1 else str(processes.device)


def _kept(plan: SweepPlan) -> str:
    """What an interrupted sweep leaves: how many finished run folders, and how to resume."""
    finished = 0
    for job in plan.jobs:
        try:
            finished += plan.is_complete(job)
        except ValueError:
            pass
    return (f"{finished} of {len(plan.jobs)} runs are finished and kept in {plan.args.output_dir} "
            "(the unfinished one left nothing); rerun the same command to resume with the others.")


def _free_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class _LoadedModels:
    """The model of the jobs being run, loaded when a job needs it; one at a time (the previous one is freed first)."""

    def __init__(self, args, device: str | None, layout: ProcessLayout):
        self.args, self.device, self.layout = args, device, layout
        self.name, self.loaded = None, None

    def get(self, job: Job, left: int):
        if self.name != job.model:
            self.free()
            self.loaded = load_model(ModelArguments(model=job.model, dtype=self.args.dtype, device=self.device or self.args.device))
            self.name = job.model
            _log(self.layout, f"loaded {job.model} on {self.loaded.model.device} for {left} job(s)")
        return self.loaded

    def free(self) -> None:
        if self.loaded is not None:
            self.name, self.loaded = None, None  # before the next model loads
            _free_memory()


def run_jobs(plan: SweepPlan, jobs: list[Job], layout: ProcessLayout = ProcessLayout(), *, device: str | None = None,
             own: int | None = None, wait: bool = False) -> None:
    """Run those of ``jobs`` that no other process holds or has finished, in order, in this process.

    A model is loaded (on ``device``, default the sweep's) when a job needs it and kept for
    the jobs after it. ``own``: how many of the first jobs are this process's share (default:
    all), the others are counted on the progress bar only when this process runs them.
    ``wait``: afterwards, wait for the jobs that other processes held until each is finished,
    or run it here once its holder has died (the main process does, before the summary).
    """
    args = plan.args
    own = len(jobs) if own is None else own
    models = _LoadedModels(args, device, layout)
    with GridProgress(own, layout.local_index, layout.local_count, enabled=args.progress) as bar:
        held = _run_free(plan, jobs, own, models, layout, bar)
        if wait and held:
            _log(layout, f"waiting for {len(held)} job(s) other processes are running")
        while wait and held:
            time.sleep(POLL_SECONDS)
            held = _run_free(plan, held, 0, models, layout, bar, quiet=True)
        models.free()


def _run_free(plan: SweepPlan, jobs: list[Job], own: int, models: _LoadedModels, layout: ProcessLayout, bar,
              quiet: bool = False) -> list[Job]:
    """Run each of ``jobs`` not finished and not held by another process; return those held (still running elsewhere)."""
    held = []
    for i, job in enumerate(jobs):
        counted = i < own
        if plan.is_complete(job):
            if counted:
                _log(layout, f"{job.relative_path}: finished meanwhile by another process or sweep; skipped")
                bar.done()
            continue
        folder = RunFolder(plan.path(job))
        try:
            folder.reserve()
        except RunFolderBusy as err:
            held.append(job)
            if not quiet:
                _log(layout, f"{job.relative_path}: skipped for now, {err}")
            continue
        except RunFolderError:
            if plan.is_complete(job):  # saved by another process between the check and the lock
                if counted:
                    bar.done()
                continue
            raise
        if not counted:
            bar.grow()
        bar.job(job.relative_path.as_posix())
        try:
            loaded = models.get(job, sum(1 for _ in itertools.takewhile(lambda j: j.model == job.model, jobs[i:])))
            report = _analyze_into(folder, plan, job, loaded, progress=plan.args.progress)
        finally:
            folder.release()
        acc = report["accuracy"]
        _log(layout, f"{job.relative_path}: ZSL {acc['zsl']:.3f}, FT {acc['ft']:.3f}, ICL {acc['icl']:.3f}")
        bar.done()
    return held


def run_job(plan: SweepPlan, job: Job, loaded, *, progress: bool = False):
    """Analyse one grid point and write its run folder (reserved first, saved atomically); return the report."""
    with RunFolder(plan.path(job)) as folder:
        return _analyze_into(folder, plan, job, loaded, progress=progress)


def _analyze_into(folder: RunFolder, plan: SweepPlan, job: Job, loaded, *, progress: bool):
    """The analysis of ``job`` saved into its reserved ``folder``; the report."""
    result = analyze_task(
        loaded.model, loaded.tokenizer, job.task, job.options, data=plan.data[job.task],
        provenance=loaded.provenance, extra={"sweep": job.record(plan.args.dtype)}, progress=progress,
    )
    folder.save(result.report)
    return result.report


def _read_reports(plan: SweepPlan) -> list[tuple[Job, dict]]:
    runs = []
    for job in plan.jobs:
        path = plan.path(job) / "report.json"
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} is missing after every process finished: another sweep on this output_dir may still be "
                "running it (rerun this command when it ends, to write the summary); with several machines, "
                "output_dir must be a folder all of them share."
            )
        runs.append((job, json.loads(path.read_text())))
    return runs


def write_summary(plan: SweepPlan) -> dict:
    """Write summary.json, summary.md, summary.png and summary.html into ``output_dir`` from the finished runs; return the summary."""
    args, out = plan.args, Path(plan.args.output_dir)
    grid = {name: getattr(args, name) for name in ("models", "tasks", "seeds", "learning_rates", "methods", "controls", "balanced",
                                                   "permutations")}
    grid["model_labels"] = dict(plan.labels)
    settings = {**{f.name: getattr(plan.shared, f.name) for f in fields(plan.shared)}, "dtype": args.dtype}
    summary = summarize(_read_reports(plan), grid, settings)
    summary["arguments"] = asdict(args)
    atomic_write_json(out / SUMMARY_FILES[0], summary)
    atomic_write_text(out / SUMMARY_FILES[1], to_markdown(summary, SUMMARY_FILES[2]))
    atomic_write_bytes(out / SUMMARY_FILES[2], plot(summary))
    atomic_write_text(out / SUMMARY_FILES[3], summary_html(summary, out))
    return summary
