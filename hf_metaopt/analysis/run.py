"""Analyze a task with a model: the library function behind the CLI, the recipes, the sweep and the pipeline."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import datasets
from torch import nn

from .. import tasks
from ..torch_utils import context_length
from .engine import AnalysisResult, run_planned
from .inference import check_causal_lm
from .options import AnalysisOptions
from .plan import AnalysisPlan, plan_task, prompt_format

__all__ = ["analyze_task", "prompt_format"]


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
    plan: AnalysisPlan | None = None,
) -> AnalysisResult:
    """One analysis of ``task``: its examples as the reference code picks them (:func:`~.plan.plan_task`), then the engine.

    The report's config names the task, the split and the examples by their row in their split.

    Args:
        task: a registered task name or a :class:`~hf_metaopt.tasks.TaskSpec`.
        data: the task's loaded splits (default: ``spec.load()``).
        provenance: more facts for ``report["config"]`` (where the model came from).
        extra: more top-level report entries (e.g. the dev-split ``selection``).
        plan: the task's plan, made before the weights loaded (``hf-metaopt analyze`` does, to refuse
            a run that cannot work first); default: made here.
    """
    options = options or AnalysisOptions()
    check_causal_lm(model)
    if plan is None:
        plan = plan_task(tokenizer, task, options, max_length=context_length(model), data=data)
    return run_planned(model, plan, options, provenance=provenance, extra=extra, progress=progress)
