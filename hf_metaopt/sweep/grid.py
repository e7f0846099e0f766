"""The sweep's jobs: one per grid point, each with its validated options and its run folder.

:func:`plan_sweep` checks everything that can be checked before a model loads (task names
and data sizes, model references, every job's :class:`~hf_metaopt.analysis.AnalysisOptions`,
run folders a previous sweep left) and returns the :class:`SweepPlan` every process
computes alike. A job's folder is
``<output_dir>/<model>/<task>/<method>-lr<learning rate>-<control>[-balanced][-orders<P>]/seed-<seed>``
(``-balanced``: ``balanced_demonstrations``; ``-orders<P>``: ``permutations=P`` above 1; the paper's
unbalanced draw in one order has no suffix, so the folders of earlier sweeps keep their names).
"""

from __future__ import annotations

import itertools
import json
import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .. import tasks
from ..analysis.options import AnalysisOptions
from ..analysis.orders import check_orders
from ..loading import ModelArguments, check_model_reference, model_label
from ..model_sources import local_copy
from .config import GRID_AXES, SweepArguments

__all__ = ["Job", "SweepPlan", "grid_point_name", "plan_sweep"]


def grid_point_name(method: str, learning_rate: float, control: str | None, balanced: bool = False, permutations: int = 1) -> str:
    """``kv-lr0.001-none`` (``kv-lr0.001-none-balanced``, ``kv-lr0.001-shuffled_labels-orders3``): the folder of one
    (method, learning rate, control, balanced draw, number of demonstration orders); ``repr`` keeps distinct rates distinct."""
    return (f"{method}-lr{learning_rate!r}-{control or 'none'}" + ("-balanced" if balanced else "")
            + (f"-orders{permutations}" if permutations != 1 else ""))


@dataclass(frozen=True)
class Job:
    """One analysis of the sweep: a model (as the config names it), a task and the options."""

    model: str
    model_label: str
    task: str
    options: AnalysisOptions

    @property
    def relative_path(self) -> Path:
        """The run folder below the sweep's ``output_dir``."""
        o = self.options
        return Path(self.model_label, self.task,
                    grid_point_name(o.method, o.learning_rate, o.control, o.balanced_demonstrations, o.permutations), f"seed-{o.seed}")

    def record(self, dtype: str) -> dict[str, Any]:
        """What ``report["sweep"]`` holds: the grid point, so a rerun recognises (or refuses) the folder."""
        return {
            "model": self.model, "model_label": self.model_label, "task": self.task, "dtype": dtype,
            "run": self.relative_path.as_posix(), "options": self.options.to_dict(),
        }


@dataclass
class SweepPlan:
    """The validated grid: its jobs in grid order, the tasks' data, the models' folder labels, and notes on
    how the grid was read (e.g. the null control implied by ``untrained``), which the main process prints."""

    args: SweepArguments
    shared: Any
    jobs: list[Job]
    data: dict[str, dict] = field(repr=False)
    labels: dict[str, str]
    notes: list[str] = field(default_factory=list)

    def path(self, job: Job) -> Path:
        return Path(self.args.output_dir) / job.relative_path

    def is_complete(self, job: Job) -> bool:
        """Whether the job's run folder holds its report (saves are atomic: a folder is whole or absent).

        A run made with another batch size counts as this job's: batching never changes a number.

        Raises:
            ValueError: the folder holds another run (other options, model or dtype), or a
                report.json that is empty or no report (the message says to delete the folder).
        """
        report = self.path(job) / "report.json"
        if not report.is_file():
            return False
        try:
            data = json.loads(report.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            problem = "is empty" if report.stat().st_size == 0 else f"is not readable JSON ({' '.join(str(err).split())})"
            raise ValueError(f"{report} {problem}; delete the folder {self.path(job)} to rerun that job.") from None
        if not isinstance(data, dict):
            raise ValueError(f"{report} holds a JSON {type(data).__name__}, not a run report; "
                             f"delete the folder {self.path(job)} to rerun that job.")
        found, wanted = _with_defaults(data.get("sweep")), job.record(self.args.dtype)
        if _without_batch_size(found) != _without_batch_size(wanted):
            raise ValueError(
                f"{self.path(job)} holds a run with other settings than this sweep's grid point ({_differences(found, wanted)}); "
                "choose another output_dir (or move that folder away)."
            )
        return True

    def pending(self) -> list[Job]:
        """The jobs whose run folders are not complete yet, in grid order."""
        return [job for job in self.jobs if not self.is_complete(job)]


def _with_defaults(found: Any) -> Any:
    """A finished run's record with the options it lacks at their defaults: a run made before an option existed
    (``permutations``) ran as its default does."""
    if not isinstance(found, dict) or not isinstance(found.get("options"), dict):
        return found
    defaults = AnalysisOptions().to_dict()
    return {**found, "options": {**{k: v for k, v in defaults.items() if k not in found["options"]}, **found["options"]}}


def _without_batch_size(record: Any) -> Any:
    """A job's record less its batch size, which never changes a number: a run made with another batch size is reused."""
    if not isinstance(record, dict) or not isinstance(record.get("options"), dict):
        return record
    return {**record, "options": {k: v for k, v in record["options"].items() if k != "batch_size"}}


def _differences(found: Any, wanted: dict) -> str:
    """``n_queries 200 in the folder, 100 now, ...``: the settings in which a finished run differs from its job."""
    if not isinstance(found, dict):
        return "it was not made by a sweep"
    flat_found = {**{k: v for k, v in found.items() if k != "options"}, **(found.get("options") or {})}
    flat_wanted = {**{k: v for k, v in wanted.items() if k != "options"}, **wanted["options"]}
    changed = [f"{name} {flat_found.get(name)!r} in the folder, {flat_wanted.get(name)!r} now"
               for name in dict.fromkeys([*flat_wanted, *flat_found]) if flat_found.get(name) != flat_wanted.get(name)]
    return ", ".join(changed) or "its record differs"


def _implied_controls(args: SweepArguments) -> tuple[SweepArguments, list[str]]:
    """Drop the null control where a control is also asked for: a controlled job's report holds the
    pretrained model's analysis too, so the null job would repeat it."""
    if None not in args.controls or all(c is None for c in args.controls):
        return args, []
    named = [c for c in args.controls if c is not None]
    note = (f"controls: [null, {', '.join(map(str, named))}] runs the pretrained analysis once: each controlled job's report "
            "holds it too, so the null jobs are left out (the summary's pretrained rows come from the controlled jobs).")
    return replace(args, controls=named), [note]


def _shared_options(shared: Any) -> AnalysisOptions:
    try:
        return AnalysisOptions(**{f.name: getattr(shared, f.name) for f in fields(shared)})
    except (TypeError, ValueError) as err:
        raise ValueError(f"sweep options: {err}") from None


def _axis_options(base: AnalysisOptions, args: SweepArguments) -> list[AnalysisOptions]:
    """Every (method, learning rate, control, balanced, permutations, seed) as options (seeds innermost); a bad value
    names its list."""
    for option, axis in GRID_AXES.items():
        for value in getattr(args, axis):
            try:
                AnalysisOptions.from_kwargs(base, **{option: value})
            except (TypeError, ValueError) as err:
                raise ValueError(f"`{axis}`: {err}") from None
    product = itertools.product(args.methods, args.learning_rates, args.controls, args.balanced, args.permutations, args.seeds)
    return [AnalysisOptions.from_kwargs(base, method=m, learning_rate=lr, control=c, balanced_demonstrations=b, permutations=p,
                                        seed=s) for m, lr, c, b, p, s in product]


def _check_model(name: str) -> str:
    """Check the reference (and, offline, the Hub cache); return the model's folder label."""
    from huggingface_hub import constants, try_to_load_from_cache

    args = ModelArguments(model=name)
    check_model_reference(args)
    hub_id = not Path(name).expanduser().exists() and local_copy(name) is None
    if hub_id and constants.is_offline_mode() and not isinstance(try_to_load_from_cache(name, "config.json"), str):
        raise ValueError(f"model {name!r} is not in the local Hub cache and HF_HUB_OFFLINE is set; download it first or unset HF_HUB_OFFLINE.")
    return model_label(args)


def _labels(models: list[str]) -> dict[str, str]:
    labels = {name: _check_model(name) for name in models}
    clash = [label for label in set(labels.values()) if list(labels.values()).count(label) > 1]
    if clash:
        same = [name for name, label in labels.items() if label in clash]
        raise ValueError(f"the models {same} would share the run folder name {clash[0]!r}; give their folders distinct names.")
    return labels


def _load_data(spec: tasks.TaskSpec, data_dir: str | None) -> dict:
    local = Path(data_dir) / spec.name if data_dir else None
    if local is not None and spec.loader is None and local.exists():
        return spec.load(local)
    return spec.load()


def plan_sweep(args: SweepArguments, shared: Any) -> SweepPlan:
    """Validate the whole sweep before any model loads and list its jobs in grid order.

    Raises:
        ValueError: an unknown task, a model that cannot be loaded, a bad option value (the
            message names the config key), a task too small for the options, or a run folder
            holding another run (checked by :meth:`SweepPlan.pending`).
        FileNotFoundError: a model's or task's files are missing (the message names the fix).
    """
    args, notes = _implied_controls(args)
    base = _shared_options(shared)
    specs = {name: tasks.get_task(name) for name in args.tasks}
    per_point = _axis_options(base, args)
    for permutations in args.permutations:  # the demonstrations that fit the context may be fewer: the analysis checks again
        try:
            check_orders(base.n_demonstrations, permutations)
        except ValueError as err:
            raise ValueError(f"`permutations`: {err}") from None
    labels = _labels(args.models)
    data = {}
    for name, spec in specs.items():
        data[name] = _load_data(spec, args.data_dir)
        tasks.check_sizes(spec, data[name], base.n_demonstrations, base.n_queries, base.split)
    jobs = [Job(model, labels[model], task, options) for model in args.models for task in args.tasks for options in per_point]
    plan = SweepPlan(args, shared, jobs, data, labels, notes)
    out = Path(os.path.abspath(args.output_dir))
    for job in jobs:
        parts = job.relative_path.parts
        if len(parts) != 4 or any(part in ("", ".", "..") for part in parts) or not Path(os.path.abspath(plan.path(job))).is_relative_to(out):
            raise ValueError(f"the run folder {job.relative_path} of model {job.model!r} would not be a folder of its own below "
                             f"output_dir {args.output_dir}; rename the model's folder.")
    return plan
