"""The verdict: per metric, is the pretrained model's value beyond each of its controls and its baseline?

Definitions, ``docs/analysis.md`` ("Verdict"). One row per metric of :data:`VERDICT_METRICS`: the
pretrained value with its bootstrap interval, and one comparison per control the run holds (the
untrained copy, the shuffled labels) and per baseline the metric has (a random baseline; for SimAM
after finetuning, SimAM before finetuning), each with its value and interval and the paired test
over the same queries (:mod:`.significance`): for a mean, :func:`~.significance.paired_test` of each
query's value (a per-layer metric's mean over layers); for Rec2FTP and ChangeRecall,
:func:`~.significance.paired_ratio_test` of the per-query indicators. Ranking metrics (Kendall,
top-k recall) use the first ``kendall_queries`` queries, as their means do.

"Beyond" means more alike than the control in the metric's direction: above it for the
similarities, below it for the label-distribution distances KL(ICL || FT) and TV(ICL, FT), tested
one-sided in that direction (for those ``difference`` is control minus pretrained). A comparison is
beyond when its p-value is below :data:`ALPHA`; a row is beyond all its controls when every
comparison it has is (an intersection-union test: no correction needed within a row; the rows are
separate tests, uncorrected across metrics).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .change_recall import change_indicators
from .metrics import bootstrap_ci, count_ratio, count_ratio_bootstrap_ci, rec2ftp_indicators, summarize_layers
from .options import CONTROL_NAMES
from .significance import paired_ratio_test, paired_test

__all__ = ["ALPHA", "TEST", "VERDICT_METRICS", "VerdictMetric", "verdict"]

ALPHA = 0.05
TEST = ("one-sided paired test over the same queries: sign-flip permutation p-value of the mean difference (Rec2FTP, "
        "ChangeRecall: swaps of the two arms' query indicators), percentile bootstrap 95% interval of the difference; "
        f"beyond when p < {ALPHA} (above the control, or below it for KL and TV)")


@dataclass(frozen=True)
class VerdictMetric:
    """One verdict row: where its per-query values are among a :class:`~.scores.ScoreCollector`'s rows.

    ``row``: the per-query (``[Q]``) or per-(query, layer) (``[Q, L]``) row; ``ratio``: ``"rec2ftp"`` or
    ``"change_recall"`` (indicators from the predictions instead); ``baseline``: the row of its baseline
    on the same queries; ``alike``: ``"higher"`` or ``"lower"``, the direction that means ICL and FT are
    more alike; ``ranked``: over the first ``kendall_queries`` queries.
    """

    key: str
    name: str
    row: str | None = None
    ratio: str | None = None
    baseline: str | None = None
    baseline_name: str = ""
    alike: str = "higher"
    ranked: bool = False


VERDICT_METRICS = (
    VerdictMetric("rec2ftp", "Rec2FTP", ratio="rec2ftp"),
    VerdictMetric("change_recall", "ChangeRecall", ratio="change_recall"),
    VerdictMetric("simaou", "SimAOU", "simaou", baseline="simaou_random", baseline_name="random vector"),
    VerdictMetric("simaou_unnormalized", "SimAOU unnormalised", "simaou_raw"),
    VerdictMetric("simam_after", "SimAM after finetuning", "simam_after", baseline="simam_before", baseline_name="before finetuning"),
    VerdictMetric("simam_delta", "SimAM delta", "simam_delta"),
    VerdictMetric("kendall_token", "Kendall, token level", "kendall_token_level", baseline="kendall_token_level_random",
                  baseline_name="random scores", ranked=True),
    VerdictMetric("kendall_example", "Kendall, example level", "kendall_example_level",
                  baseline="kendall_example_level_random", baseline_name="random scores", ranked=True),
    VerdictMetric("recall_token", "top-k recall, tokens", "recall_token_level", baseline="recall_token_level_random",
                  baseline_name="random ranking", ranked=True),
    VerdictMetric("recall_example", "top-k recall, demonstrations", "recall_example_level",
                  baseline="recall_example_level_random", baseline_name="random ranking", ranked=True),
    VerdictMetric("kl_icl_ft", "KL(ICL ‖ FT)", "kl_icl_ft", alike="lower"),
    VerdictMetric("tv_icl_ft", "TV(ICL, FT)", "tv_icl_ft", alike="lower"),
)


def _per_query(values: np.ndarray) -> np.ndarray:
    return values.mean(axis=1) if values.ndim == 2 else values


def _mean_arm(values: np.ndarray, n_bootstrap: int, seed: int) -> dict[str, Any]:
    """Value and interval of one arm, computed as the report's summary computes them (bit for bit)."""
    if values.ndim == 2:
        summary = summarize_layers(values, n_resamples=n_bootstrap, seed=seed)
        return {"value": summary["mean"], "ci95": summary["ci95"]}
    return {"value": float(values.mean()), "ci95": bootstrap_ci(values, n_resamples=n_bootstrap, seed=seed)}


def _indicators(metric: VerdictMetric, rows: Mapping[str, np.ndarray], labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    preds = {route: np.asarray(rows[f"pred_{route}"]) for route in ("zsl", "icl", "ft")}
    if metric.ratio == "rec2ftp":
        return rec2ftp_indicators(*(preds[route] == labels for route in ("zsl", "icl", "ft")))
    return change_indicators(preds["zsl"], preds["icl"], preds["ft"])


def _ratio_arm(num: np.ndarray, den: np.ndarray, n_bootstrap: int, seed: int) -> dict[str, Any]:
    return {"value": count_ratio(num, den), "ci95": count_ratio_bootstrap_ci(num, den, n_resamples=n_bootstrap, seed=seed),
            "counts": [int(num.sum()), int(den.sum())]}


def _test(result: Mapping[str, Any]) -> dict[str, Any]:
    p = result["p_value"]
    return {"difference": result["difference"], "difference_ci95": result["interval"], "p_value": p, "exact": result["exact"],
            "beyond": None if p is None else bool(p < ALPHA)}


def _row(metric: VerdictMetric, labels: np.ndarray, rows: Mapping[str, np.ndarray], controls: Mapping[str, Mapping[str, np.ndarray]],
         n: int | None, n_bootstrap: int, seed: int) -> dict[str, Any]:
    boot = dict(n_resamples=n_bootstrap, seed=seed)
    used = slice(None, n if metric.ranked else None)
    arms: dict[str, Any] = {name: control for name, control in controls.items()}
    if metric.baseline:
        arms["baseline"] = {metric.row: rows[metric.baseline]}
    comparisons: dict[str, dict[str, Any]] = {}
    if metric.ratio:
        num, den = _indicators(metric, rows, labels)
        main = _ratio_arm(num, den, n_bootstrap, seed)
        for name, arm in arms.items():
            c_num, c_den = _indicators(metric, arm, labels)
            comparisons[name] = {**_ratio_arm(c_num, c_den, n_bootstrap, seed), **_test(paired_ratio_test(num, den, c_num, c_den, **boot))}
        n_queries = int(den.shape[0])
    else:
        values = np.asarray(rows[metric.row], dtype=np.float64)[used]
        main = _mean_arm(values, n_bootstrap, seed)
        for name, arm in arms.items():
            other = np.asarray(arm[metric.row], dtype=np.float64)[used]
            a, b = _per_query(values), _per_query(other)
            test = paired_test(a, b, **boot) if metric.alike == "higher" else paired_test(b, a, **boot)
            comparisons[name] = {**_mean_arm(other, n_bootstrap, seed), **_test(test)}
        n_queries = int(values.shape[0])
    if "baseline" in comparisons:
        comparisons["baseline"] = {"name": metric.baseline_name, **comparisons["baseline"]}
    beyond = [c["beyond"] for c in comparisons.values()]
    return {
        "metric": metric.key, "name": metric.name, "alike": metric.alike, **main, "n_queries": n_queries,
        "comparisons": comparisons,
        "beyond_all": None if not beyond or (None in beyond and False not in beyond) else all(beyond),
    }


def verdict(labels: Any, rows: Mapping[str, np.ndarray], control_rows: Mapping[str, Mapping[str, np.ndarray]], *,
            kendall_queries: int | None, n_bootstrap: int, seed: int) -> dict[str, Any]:
    """``report["verdict"]``: ``{"alpha", "test", "controls", "rows": [one per metric of VERDICT_METRICS]}``.

    Args:
        labels: ``[Q]`` gold labels.
        rows: the pretrained run's per-query rows (``ScoreCollector.collected()``).
        control_rows: each control's rows on the same queries (``{"untrained": rows, "shuffled_labels": rows}``).
        kendall_queries: the ranking metrics use the first this many queries (``None``: all).
        n_bootstrap, seed: resamples (and sign patterns) and seed of every interval and test.

    Each row: ``{"metric", "name", "alike": "higher" | "lower", "value", "ci95", "n_queries", ("counts":
    [numerator, denominator] for Rec2FTP and ChangeRecall), "comparisons": {control name or "baseline":
    {("name" of a baseline), "value", "ci95", ("counts"), "difference", "difference_ci95", "p_value", "exact",
    "beyond"}}, "beyond_all"}``; ``value`` and ``p_value`` are ``None`` where a ratio is undefined,
    ``beyond_all`` ``None`` when the row has no comparison or one is undefined and none is not beyond.
    """
    labels = np.asarray(labels)
    unknown = sorted(set(control_rows) - set(CONTROL_NAMES))
    if unknown:
        raise ValueError(f"unknown control(s) {unknown}; the verdict compares with {list(CONTROL_NAMES)}.")
    controls = {name: control_rows[name] for name in CONTROL_NAMES if name in control_rows}
    return {
        "alpha": ALPHA,
        "test": TEST,
        "controls": list(controls),
        "rows": [_row(m, labels, rows, controls, kendall_queries, n_bootstrap, seed) for m in VERDICT_METRICS],
    }
