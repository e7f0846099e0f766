"""A sweep's summary: per grid point (model, task, method, learning rate, control, balanced draw, demonstration orders),
mean ± std over seeds.

Every metric of the report is summarised with its baseline (``docs/analysis.md``,
"Metrics"): accuracies, Rec2FTP (and its counts), SimAOU (+ random, unnormalised), SimAM (before,
after, delta), Kendall and top-k recall at token and example level (+ random), ChangeRecall (and
its counts) and the label-distribution shifts (KL and TV); runs in several demonstration orders
also each run's standard deviation over its orders and the share of queries predicted alike in
every order ("Demonstration orders"). Runs with a control also summarise its part of
``report["controls"]`` (``untrained``, ``shuffled_labels``). The standard deviation is the sample
one (n - 1), undefined (``None``) for fewer than two values; ``None`` values (Rec2FTP when
finetuning fixes nothing) are left out and ``n`` says how many values remain.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..analysis.options import CONTROL_NAMES, control_names
from .paper import PAPER, PAPER_ANALOGUE

__all__ = ["CONTROL_PARTS", "METRICS", "ORDER_METRICS", "metric_values", "summarize"]

CONTROL_PARTS = CONTROL_NAMES  # each a part of a group beside "pretrained": report["controls"][name] summarised

# name -> (where it is in a report or in report["controls"][<control>], what it is)
METRICS: dict[str, tuple[tuple[str, ...], str]] = {
    "zsl": (("accuracy", "zsl"), "accuracy, zero-shot"),
    "ft": (("accuracy", "ft"), "accuracy, finetuned"),
    "icl": (("accuracy", "icl"), "accuracy, in context"),
    "rec2ftp": (("rec2ftp",), "Rec2FTP"),
    "simaou": (("simaou", "mean"), "SimAOU"),
    "simaou_random": (("simaou", "random_mean"), "SimAOU of a random vector (baseline)"),
    "simaou_unnormalized": (("simaou", "unnormalized_mean"), "SimAOU without L2 normalisation (Deutch et al.)"),
    "simam_before": (("simam", "before"), "SimAM before finetuning"),
    "simam_after": (("simam", "after"), "SimAM after finetuning"),
    "simam_delta": (("simam", "delta"), "SimAM of the updates (Deutch et al.)"),
    "kendall": (("kendall", "mean"), "Kendall, token level"),
    "kendall_random": (("kendall", "random_mean"), "Kendall, token level, random scores (baseline)"),
    "kendall_example": (("kendall", "example_level", "mean"), "Kendall, example level"),
    "kendall_example_random": (("kendall", "example_level", "random_mean"), "Kendall, example level, random scores (baseline)"),
    "recall_token": (("topk_recall", "token_level", "mean"), "top-k recall, token level (k = 100)"),
    "recall_token_random": (("topk_recall", "token_level", "random_mean"), "top-k recall, token level, random ranking (baseline)"),
    "recall_example": (("topk_recall", "example_level", "mean"), "top-k recall, example level (k = 5)"),
    "recall_example_random": (("topk_recall", "example_level", "random_mean"), "top-k recall, example level, random ranking (baseline)"),
    "rec2ftp_ft_fixed": (("rec2ftp_counts", "ft_fixed"), "Rec2FTP's denominator: queries FT fixes"),
    "rec2ftp_both_fixed": (("rec2ftp_counts", "both_fixed"), "Rec2FTP's numerator: of those, queries ICL fixes too"),
    "change_recall": (("change_recall",), "ChangeRecall (Deutch et al.)"),
    "change_recall_changed": (("change_recall_counts", "changed"), "ChangeRecall's denominator: queries ICL or FT changes"),
    "change_recall_same": (("change_recall_counts", "same_change"), "ChangeRecall's numerator: of those, queries both change alike"),
    "kl_icl_ft": (("label_shift", "kl_icl_ft", "mean"), "KL(ICL || FT) of the label distributions (Shen et al.)"),
    "kl_icl_zsl": (("label_shift", "kl_icl_zsl", "mean"), "KL(ICL || ZSL): the label shift ICL makes"),
    "kl_ft_zsl": (("label_shift", "kl_ft_zsl", "mean"), "KL(FT || ZSL): the label shift finetuning makes"),
    "tv_icl_ft": (("label_shift", "tv_icl_ft", "mean"), "TV(ICL, FT) of the label distributions (Shen et al.)"),
    "tv_icl_zsl": (("label_shift", "tv_icl_zsl", "mean"), "TV(ICL, ZSL): the label shift ICL makes"),
    "tv_ft_zsl": (("label_shift", "tv_ft_zsl", "mean"), "TV(FT, ZSL): the label shift finetuning makes"),
}
# Runs in several demonstration orders (report["permutations"]): each run's spread over its orders and agreement across them.
ORDER_METRICS: dict[str, tuple[tuple[str, ...], str]] = {
    "order_std_icl": (("permutations", "spread", "accuracy_icl", "std"), "std over demonstration orders of the ICL accuracy"),
    "order_std_ft": (("permutations", "spread", "accuracy_ft", "std"), "std over demonstration orders of the FT accuracy"),
    "order_std_rec2ftp": (("permutations", "spread", "rec2ftp", "std"), "std over demonstration orders of Rec2FTP"),
    "order_std_simaou": (("permutations", "spread", "simaou", "std"), "std over demonstration orders of SimAOU"),
    "order_std_simam_after": (("permutations", "spread", "simam_after", "std"), "std over demonstration orders of SimAM after"),
    "order_std_kendall": (("permutations", "spread", "kendall_token", "std"), "std over demonstration orders of Kendall (tokens)"),
    "order_same_icl": (("permutations", "agreement", "icl", "all_orders"), "share of queries ICL predicts alike in every order"),
    "order_same_ft": (("permutations", "agreement", "ft", "all_orders"), "share of queries FT predicts alike in every order"),
    "order_icl_ft": (("permutations", "agreement", "icl_ft", "mean"), "share of queries ICL and FT predict alike, mean over orders"),
}
METRICS.update(ORDER_METRICS)


def metric_values(entry: Mapping[str, Any]) -> dict[str, float | None]:
    """Each metric of a report (or of one of its controls), ``None`` where absent or undefined."""
    values = {}
    for name, (path, _) in METRICS.items():
        value: Any = entry
        for key in path:
            value = value.get(key) if isinstance(value, Mapping) else None
        values[name] = None if value is None else float(value)
    return values


def mean_std(values: Iterable[float | None]) -> dict[str, float | int | None]:
    """``{"mean", "std", "n"}`` of the values that are not ``None`` (sample std; ``None`` below two values)."""
    kept = [v for v in values if v is not None]
    return {
        "mean": statistics.fmean(kept) if kept else None,
        "std": statistics.stdev(kept) if len(kept) > 1 else None,
        "n": len(kept),
    }


def _stats(rows: Sequence[Mapping[str, float | None]]) -> dict[str, dict]:
    return {name: mean_std(row[name] for row in rows) for name in METRICS}


def _controls_of(report: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    return (report.get("controls") or {}).get(name)


def _group(key: tuple, runs: list[tuple[Any, dict]]) -> dict[str, Any]:
    model, label, task, method, lr, control, balanced, permutations = key
    group = {
        "model": model, "model_label": label, "task": task, "method": method, "learning_rate": lr, "control": control,
        "balanced_demonstrations": balanced, "permutations": permutations,
        "seeds": [job.options.seed for job, _ in runs],
        "runs": [job.relative_path.as_posix() for job, _ in runs],
        "pretrained": _stats([metric_values(report) for _, report in runs]),
    }
    for name in CONTROL_PARTS:
        parts = [_controls_of(report, name) for _, report in runs]
        group[name] = _stats([metric_values(p) for p in parts]) if name in control_names(control) and all(parts) else None
    return group


def _average(groups: list[dict]) -> dict[str, Any]:
    """The mean over tasks of each task's mean over seeds."""
    first = groups[0]
    average = {k: first[k] for k in ("model", "model_label", "method", "learning_rate", "control", "balanced_demonstrations",
                                     "permutations")}
    average["tasks"] = [g["task"] for g in groups]
    for part in ("pretrained", *CONTROL_PARTS):
        present = [g[part] for g in groups if g[part] is not None]
        average[part] = {m: mean_std(p[m]["mean"] for p in present)["mean"] for m in METRICS} if present else None
    return average


def summarize(runs: Sequence[tuple[Any, dict]], grid: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """The summary of finished ``(job, report dict)`` pairs given in grid order (seeds innermost).

    Args:
        runs: each job (:class:`~hf_metaopt.sweep.grid.Job`) with its report.
        grid: the grid's axes (recorded as is).
        settings: the options every job shares, the dtype, ... (recorded as is).

    Returns:
        ``{"grid", "settings", "metrics", "groups": [per grid point], "averages": [per model,
        method, learning rate, control, balanced draw and number of orders, over tasks], "paper", "paper_analogue"}``.
        A group holds ``pretrained`` and, per control of :data:`CONTROL_PARTS`, its numbers where the
        group's runs have that control (else ``None``).
    """
    grouped: dict[tuple, list] = {}
    for job, report in runs:
        o = job.options
        key = (job.model, job.model_label, job.task, o.method, o.learning_rate, o.control, o.balanced_demonstrations,
               o.permutations)
        grouped.setdefault(key, []).append((job, report))
    groups = [_group(key, members) for key, members in grouped.items()]
    by_setting: dict[tuple, list] = {}
    for g in groups:
        by_setting.setdefault((g["model"], g["method"], g["learning_rate"], g["control"], g["balanced_demonstrations"],
                               g["permutations"]), []).append(g)
    return {
        "grid": dict(grid),
        "settings": dict(settings),
        "metrics": {name: doc for name, (_, doc) in METRICS.items()},
        "groups": groups,
        "averages": [_average(members) for members in by_setting.values()],
        "paper": PAPER,
        "paper_analogue": PAPER_ANALOGUE,
    }
