"""Analyze a task with a model: the library function behind the CLI, the recipes, the sweep and the pipeline."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import datasets
from torch import nn

from .. import tasks
from .engine import AnalysisResult, run_analysis
from .options import AnalysisOptions
from .prompts import PromptFormat

__all__ = ["analyze_task", "prompt_format"]


def prompt_format(spec: tasks.TaskSpec) -> PromptFormat:
    """The task's template, label words and separator."""
    return PromptFormat(spec.template, tuple(spec.label_words), spec.separator)


def analyze_task(
    model: nn.Module,
    tokenizer: Any,
    task: str | tasks.TaskSpec,
    options: AnalysisOptions | None = None,
    *,
    data: Mapping[str, datasets.Dataset] | None = None,
    provenance: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    progress: bool = False,
) -> AnalysisResult:
    """One analysis of ``task``: its examples as the reference code picks them, then :func:`run_analysis`.

    Demonstrations are the train split shuffled with ``options.seed`` (the first
    ``options.n_demonstrations``; with ``options.balanced_demonstrations`` a class-balanced draw
    from it, :func:`~hf_metaopt.tasks.select_examples`); queries come from ``options.split`` (shuffled with seed 1,
    capped at ``options.n_queries``). The report's config names the task, the split and the
    examples by their row in their split.

    Args:
        task: a registered task name or a :class:`~hf_metaopt.tasks.TaskSpec`.
        data: the task's loaded splits (default: ``spec.load()``).
        provenance: more facts for ``report["config"]`` (where the model came from).
        extra: more top-level report entries (e.g. the dev-split ``selection``).
    """
    options = options or AnalysisOptions()
    spec = tasks.get_task(task)
    selection = tasks.select_examples(
        spec, options.n_demonstrations, options.n_queries, options.seed, split=options.split, data=data,
        balanced=options.balanced_demonstrations,
    )
    facts = {
        "task": spec.name,
        "split": options.split,
        "demonstration_ids": [d["idx"] for d in selection.demonstrations],
        "query_ids": [q["idx"] for q in selection.queries],
        **(provenance or {}),
    }
    return run_analysis(
        model, tokenizer, selection.demonstrations, selection.queries, prompt_format(spec), options,
        provenance=facts, notes=selection.notes, extra=extra, progress=progress,
    )
