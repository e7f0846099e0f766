"""Sweeps: a grid of ICL-vs-finetuning analyses (models x tasks x seeds x learning rates x methods x controls).

    from hf_metaopt import sweep
    summary = sweep.main(["--config", "recipes/configs/sweep_offline.yaml"])

Under ``accelerate launch --num_processes N`` (on one machine or several) the processes share
the jobs, each claimed by locking its run folder; each job writes one run folder, a rerun skips
the finished ones, and the main process writes ``summary.json``, ``summary.md``, ``summary.png``
and ``summary.html`` when every job is done (:mod:`.runner`).
"""

from __future__ import annotations

from pathlib import Path

from .config import GRID_AXES, SharedOptions, SweepArguments, make_parser, parse_args
from .grid import Job, SweepPlan, plan_sweep
from .runner import SUMMARY_FILES, run_sweep, write_summary
from .summary import METRICS, summarize

__all__ = [
    "GRID_AXES", "Job", "METRICS", "SUMMARY_FILES", "SharedOptions", "SweepArguments", "SweepPlan",
    "main", "make_parser", "parse_args", "plan_sweep", "run_sweep", "summarize", "write_summary",
]


def main(argv: list[str] | None = None, *, default_config: str | Path | None = None, parser=None) -> dict | None:
    """Parse the sweep's arguments (YAML ``--config`` + flags; ``parser`` from :func:`make_parser`) and run it;
    the summary on the main process."""
    args, shared = parse_args(argv, default_config=default_config, parser=parser)
    return run_sweep(args, shared)
