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
    "AnalysisConfig", "ChangeRecallCounts", "ControlReport", "Environment", "Finetuning", "KendallSummary", "LabelCounts",
    "LabelShift", "LayerSummary", "MeanInterval", "OrderAgreement", "OrderRun", "Permutations", "Rec2FTPCounts", "RouteValues",
    "Shuffle", "SimAMSummary", "SimAOUSummary", "Spread", "Stability", "TopKLevel", "TopKRecall", "Verdict", "VerdictComparison",
    "VerdictRow", "Versions",
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
class Rec2FTPCounts(ReportPart):
    """Rec2FTP's counts: the queries FT fixes (FT correct, ZSL wrong) and how many of those ICL fixes too."""

    ft_fixed: int | None
    both_fixed: int | None


@report_part
class ChangeRecallCounts(ReportPart):
    """ChangeRecall's counts: queries whose prediction ICL or FT changes from ZSL (``changed``), those both
    change to the same label (``same_change``), and those each route changes."""

    changed: int | None
    same_change: int | None
    icl_changed: int | None
    ft_changed: int | None


@report_part
class MeanInterval(ReportPart):
    """A per-query value's mean over queries and its bootstrap interval."""

    mean: float | None
    ci95: Interval | None


@report_part
class LabelShift(ReportPart):
    """How far the label distributions move, per query, averaged over queries (Shen et al. 2024):
    ``kl_a_b = KL(p_a || p_b)`` and ``tv_a_b = TV(p_a, p_b)`` between ICL and FT, and each from ZSL."""

    kl_icl_ft: MeanInterval | None
    tv_icl_ft: MeanInterval | None
    kl_icl_zsl: MeanInterval | None
    tv_icl_zsl: MeanInterval | None
    kl_ft_zsl: MeanInterval | None
    tv_ft_zsl: MeanInterval | None


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
    before / after, divergence and the stability check. ``objective`` names the loss: ``causal_lm``, or
    ``layer_causal`` (the sum over layers) for the layer-causal methods; absent in reports before it."""

    loss_per_step: list[float | None] | None
    loss_before: float | None
    loss_after: float | None
    learning_rate: float | None
    objective: str | None
    diverged: bool | None
    divergence: list[str] | None
    stability: Stability | None


@report_part
class Shuffle(ReportPart):
    """The shuffled-label control's demonstrations: their shuffled labels, how many got another label, how many there are."""

    labels: list[int] | None
    changed: int | None
    n_demonstrations: int | None


@report_part
class ControlReport(ReportPart):
    """The analysis repeated on a control: ``controls["untrained"]`` (random weights) or ``controls["shuffled_labels"]``
    (the pretrained model on the demonstrations with their labels shuffled; ``shuffle`` says how)."""

    accuracy: RouteValues | None
    rec2ftp: float | None
    rec2ftp_counts: Rec2FTPCounts | None
    change_recall: float | None
    change_recall_ci95: Interval | None
    change_recall_counts: ChangeRecallCounts | None
    simaou: SimAOUSummary | None
    simam: SimAMSummary | None
    kendall: KendallSummary | None
    topk_recall: TopKRecall | None
    label_shift: LabelShift | None
    label_counts: LabelCounts | None
    finetuning: Finetuning | None
    shuffle: Shuffle | None


@report_part
class VerdictComparison(ReportPart):
    """The pretrained value against one control or baseline: its value and interval (``counts`` [numerator,
    denominator] for a ratio), the paired test's difference (beyond the control: pretrained minus control, or
    control minus pretrained where lower means more alike), its interval and p-value, and whether it is beyond."""

    name: str | None
    value: float | None
    ci95: Interval | None
    counts: list[int] | None
    difference: float | None
    difference_ci95: Interval | None
    p_value: float | None
    exact: bool | None
    beyond: bool | None


@report_part
class VerdictRow(ReportPart):
    """One metric of the verdict: its value and interval, the direction that means "alike" (``higher`` or ``lower``),
    one comparison per control and baseline (``comparisons["baseline"]``), and whether it is beyond all of them."""

    metric: str | None
    name: str | None
    alike: str | None
    value: float | None
    ci95: Interval | None
    counts: list[int] | None
    n_queries: int | None
    comparisons: dict[str, VerdictComparison] | None
    beyond_all: bool | None


@report_part
class Verdict(ReportPart):
    """Does ICL behave like finetuning on this model, by each metric, beyond its controls? (absent before it)"""

    alpha: float | None
    test: str | None
    controls: list[str] | None
    rows: list[VerdictRow] | None


@report_part
class Spread(ReportPart):
    """A number's spread over the demonstration orders: mean, sample std, min, max, and over how many orders (defined)."""

    mean: float | None
    std: float | None
    min: float | None
    max: float | None
    n: int | None


@report_part
class OrderRun(ReportPart):
    """One demonstration order's headline numbers (``values``), counts, ICL and FT predictions and training losses."""

    order: int | None
    values: dict[str, float | None] | None
    rec2ftp_counts: Rec2FTPCounts | None
    change_recall_counts: ChangeRecallCounts | None
    predictions: dict[str, list[int]] | None
    loss_per_step: list[float | None] | None


@report_part
class OrderAgreement(ReportPart):
    """A route's predictions across orders: the share of queries alike in every order, the mean pairwise share."""

    all_orders: float | None
    pairwise: float | None


@report_part
class Permutations(ReportPart):
    """The same demonstrations in ``n`` orders (``orders``: indices into the main order, order 0 first)."""

    n: int | None
    orders: list[list[int]] | None
    per_order: list[OrderRun] | None
    spread: dict[str, Spread] | None
    agreement: dict[str, Any] | None


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
    permutations: int | None
    batch_size: int | str | None
    batch_size_used: int | None
    demonstrations_used: list[Any] | None
    query_ids: list[Any] | None
    dtype: str | None
    versions: Versions | None
    environment: Environment | None
