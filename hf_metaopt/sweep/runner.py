"""Run a sweep over the processes ``accelerate launch`` (or ``torchrun``) starts, resumably.

Every process validates the whole grid (:func:`~hf_metaopt.sweep.grid.plan_sweep`) and
lists the jobs whose run folders are not complete; once all have listed them, the pending
jobs are split between the processes in grid order (contiguous shares,
``PartialState.split_between_processes``), so each process loads each of its models once, on
the device accelerate gives it, and runs that model's jobs one after another. The processes
are independent workers (:mod:`.processes`, which also gives the launch lines). Each job reserves its run folder (:class:`~hf_metaopt.runs.RunFolder`)
and writes it atomically, so a sweep killed at any point resumes with the jobs it had not
finished. When every process is done, the main process writes ``summary.json``,
``summary.md``, ``summary.png`` and ``summary.html`` into ``output_dir``.
"""

from __future__ import annotations

import gc
import json
import sys
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..analysis.run import analyze_task
from ..fileio import atomic_write_bytes, atomic_write_json, atomic_write_text
from ..loading import ModelArguments, load_model
from ..runs import RunFolder, RunFolderBusy
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


def _log(layout: ProcessLayout, message: str) -> None:
    tqdm.write(f"[process {layout.index}] {message}", file=sys.stderr)


def run_sweep(args: SweepArguments, shared: Any) -> dict | None:
    """Validate the sweep, run this process's share of the pending jobs, and (main process) write the summary.

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
            run_jobs(plan, processes.share(todo), layout, device=_device_name(args.device, processes))
    except KeyboardInterrupt as err:  # Ctrl-C or SIGTERM: the finished run folders stay, a rerun resumes
        err.add_note(_kept(plan))
        raise
    processes.wait_for_everyone()
    return write_summary(plan) if layout.is_main else None


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


def _by_model(jobs: list[Job]) -> dict[str, list[Job]]:
    grouped: dict[str, list[Job]] = {}
    for job in jobs:
        grouped.setdefault(job.model, []).append(job)
    return grouped


def _free_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def run_jobs(plan: SweepPlan, jobs: list[Job], layout: ProcessLayout = ProcessLayout(), *, device: str | None = None) -> None:
    """Run ``jobs`` in this process: each model loaded once (on ``device``, default the sweep's), its jobs one after another."""
    args = plan.args
    with GridProgress(len(jobs), layout.local_index, layout.local_count, enabled=args.progress) as bar:
        for model, model_jobs in _by_model(jobs).items():
            left = _not_taken(plan, model_jobs, layout, bar)  # another sweep on this output_dir may have run some
            if not left:
                continue
            loaded = load_model(ModelArguments(model=model, dtype=args.dtype, device=device or args.device))
            _log(layout, f"loaded {model} on {loaded.model.device} for {len(left)} job(s)")
            for job in left:
                bar.job(job.relative_path.as_posix())
                if _not_taken(plan, [job], layout, bar):
                    try:
                        report = run_job(plan, job, loaded, progress=args.progress)
                    except RunFolderBusy as err:
                        _log(layout, f"{job.relative_path}: skipped, {err}")
                    else:
                        acc = report["accuracy"]
                        _log(layout, f"{job.relative_path}: ZSL {acc['zsl']:.3f}, FT {acc['ft']:.3f}, ICL {acc['icl']:.3f}")
                    bar.done()
            del loaded  # before the next model loads
            _free_memory()


def _not_taken(plan: SweepPlan, jobs: list[Job], layout: ProcessLayout, bar) -> list[Job]:
    """``jobs`` less those whose run folders were completed since the sweep listed them (counted as done)."""
    left = []
    for job in jobs:
        if plan.is_complete(job):
            _log(layout, f"{job.relative_path}: finished meanwhile by another sweep; skipped")
            bar.done()
        else:
            left.append(job)
    return left


def run_job(plan: SweepPlan, job: Job, loaded, *, progress: bool = False):
    """Analyse one grid point and write its run folder (reserved first, saved atomically); return the report."""
    with RunFolder(plan.path(job)) as folder:
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
    grid = {name: getattr(args, name) for name in ("models", "tasks", "seeds", "learning_rates", "methods", "controls", "balanced")}
    grid["model_labels"] = dict(plan.labels)
    settings = {**{f.name: getattr(plan.shared, f.name) for f in fields(plan.shared)}, "dtype": args.dtype}
    summary = summarize(_read_reports(plan), grid, settings)
    summary["arguments"] = asdict(args)
    atomic_write_json(out / SUMMARY_FILES[0], summary)
    atomic_write_text(out / SUMMARY_FILES[1], to_markdown(summary, SUMMARY_FILES[2]))
    atomic_write_bytes(out / SUMMARY_FILES[2], plot(summary))
    atomic_write_text(out / SUMMARY_FILES[3], summary_html(summary, out))
    return summary
