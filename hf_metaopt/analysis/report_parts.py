"""The typed parts of an :class:`~hf_metaopt.analysis.report.ICLAnalysisReport`.

Each part is a :class:`~hf_metaopt.analysis.report_base.ReportPart`: a read-only mapping whose
keys are the JSON keys of ``report.json`` (the schema is in ``report.py``'s docstring), read as
``part["mean"]`` or ``part.mean``. ``ci95`` values are ``[low, high]`` bootstrap 95% intervals;
per-layer values are lists indexed by layer. A key a report does not hold reads ``None`` as an
attribute and is absent as a key; keys not declared here are kept as given.
"""

from __future__ import annotations

from typing import Any

from .report_base import ReportPart, report_part

__all__ = [
    "AnalysisConfig", "ControlReport", "Environment", "Finetuning", "KendallSummary", "LabelCounts", "LayerSummary",
    "RouteValues", "SimAMSummary", "SimAOUSummary", "Stability", "TopKLevel", "TopKRecall", "Versions",
]

Interval = list[float]  # [low, high]


@report_part
class RouteValues(ReportPart):
    """One value per route: ZSL (zero-shot), ICL (demonstrations in context), FT (finetuned):
    accuracies, their intervals, predictions or prediction counts."""

    zsl: Any
    icl: Any
    ft: Any


@report_part
class LayerSummary(ReportPart):
    """A per-layer metric averaged over layers, with its interval and its random baseline."""

    per_layer: list[float | None]
    mean: float | None
    ci95: Interval | None
    random_mean: float | None
    random_per_layer: list[float | None]


@report_part
class SimAOUSummary(LayerSummary):
    """SimAOU: cos(ICL update, FT update) of the attention output; also unnormalised (Deutch et al.)."""

    unnormalized_per_layer: list[float | None]
    unnormalized_mean: float | None
    unnormalized_ci95: Interval | None


@report_part
class SimAMSummary(ReportPart):
    """SimAM: attention-map similarity before (ICL vs ZSL) and after (ICL vs FT) finetuning, and their delta."""

    per_layer_before: list[float | None]
    per_layer_after: list[float | None]
    per_layer_delta: list[float | None]
    before: float | None
    after: float | None
    delta: float | None
    before_ci95: Interval | None
    after_ci95: Interval | None
    delta_ci95: Interval | None


@report_part
class KendallSummary(LayerSummary):
    """Kendall's tau between ICL attention and FT training attention, token level (the top-level keys) and
    example level. Reports of version 0.1 summed raw scores at the example level; later ones use each
    demonstration's softmax attention mass."""

    n_queries: int | None
    example_level: LayerSummary | None


@report_part
class TopKLevel(LayerSummary):
    """Recall of the ``k`` most-attended ICL items among the ``k`` most-attended FT ones."""

    k: int | None


@report_part
class TopKRecall(ReportPart):
    """Top-k recall at the token and the example level (absent in reports of version 0.1)."""

    token_level: TopKLevel | None
    example_level: TopKLevel | None
    n_queries: int | None


@report_part
class LabelCounts(ReportPart):
    """Counts per label index (lists indexed like ``label_words``): the demonstrations used, the gold
    labels and each route's predictions (the untrained control holds ``predictions`` only)."""

    demonstrations: list[int] | None
    gold: list[int] | None
    predictions: RouteValues | None


@report_part
class Stability(ReportPart):
    """The float64 rerun of finetuning: ``checked`` with agreement and accuracy, or not, with ``reason``."""

    checked: bool | None
    perturbation: str | None
    agreement: float | None
    n_queries: int | None
    accuracy: float | None
    update_relative_difference: float | None
    reason: str | None


@report_part
class Finetuning(ReportPart):
    """The FT route's training: loss per SGD step (``None`` where inf/NaN), mean loss on the demonstrations
    before / after, divergence and the stability check."""

    loss_per_step: list[float | None] | None
    loss_before: float | None
    loss_after: float | None
    learning_rate: float | None
    diverged: bool | None
    divergence: list[str] | None
    stability: Stability | None


@report_part
class ControlReport(ReportPart):
    """The analysis repeated on a control model (``controls["untrained"]``: random weights)."""

    accuracy: RouteValues | None
    rec2ftp: float | None
    simaou: SimAOUSummary | None
    simam: SimAMSummary | None
    kendall: KendallSummary | None
    topk_recall: TopKRecall | None
    label_counts: LabelCounts | None
    finetuning: Finetuning | None


@report_part
class Versions(ReportPart):
    """Library versions of the run."""

    hf_metaopt: str | None
    transformers: str | None
    torch: str | None
    peft: str | None


@report_part
class Environment(ReportPart):
    """Where the run computed (absent in reports of version 0.1)."""

    cpu_capability: str | None
    num_threads: int | None
    device: str | None
    cuda_device: str | None
    deterministic_algorithms: bool | None
    platform: str | None
    python: str | None


@report_part
class AnalysisConfig(ReportPart):
    """Everything needed to rerun: the analysis options (``n_demonstrations`` and ``n_queries`` the numbers
    used), the prompt, the model and data, versions and environment. Options added later are kept as keys."""

    model: str | None
    model_id: str | None
    model_revision: str | None
    task: str | None
    split: str | None
    template: str | None
    label_words: list[str] | None
    separator: str | None
    start_token: str | None
    start_token_used: str | None
    position: str | None
    method: str | None
    learning_rate: float | None
    seed: int | None
    n_demonstrations: int | None
    n_queries: int | None
    control: str | None
    batch_size: int | str | None
    batch_size_used: int | None
    demonstrations_used: list[Any] | None
    query_ids: list[Any] | None
    dtype: str | None
    versions: Versions | None
    environment: Environment | None
