"""Demonstration orders (Shen, Mishra & Khashabi 2024; Deutch et al. 2024): the same demonstrations in P orders.

Definitions, ``docs/analysis.md`` ("Demonstration orders"): order 0 is the order the analysis
draws (the report's main body), orders ``1..P-1`` are distinct seeded permutations of it; in each
order the ICL prompt and the FT training examples follow the same permutation. This module holds
the pure parts: the orders (:func:`demonstration_orders`), the headline numbers of one order
(:func:`order_values`), their spread over orders (:func:`spread`), the agreement of predictions
across orders (:func:`prediction_agreement`) and ``report["permutations"]`` (:func:`orders_report`).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["ORDER_STREAM", "ORDER_VALUES", "check_orders", "demonstration_orders", "order_values", "orders_report",
           "prediction_agreement", "spread"]

# numpy's default_rng((seed, ORDER_STREAM)) draws the orders: a stream of its own, apart from the other seeded draws.
ORDER_STREAM = 1

# The headline numbers kept per order: name -> where it is in a summary (ScoreCollector.summary, the report's main body).
ORDER_VALUES: dict[str, tuple[str, ...]] = {
    "accuracy_zsl": ("accuracy", "zsl"),
    "accuracy_icl": ("accuracy", "icl"),
    "accuracy_ft": ("accuracy", "ft"),
    "rec2ftp": ("rec2ftp",),
    "change_recall": ("change_recall",),
    "simaou": ("simaou", "mean"),
    "simaou_unnormalized": ("simaou", "unnormalized_mean"),
    "simam_before": ("simam", "before"),
    "simam_after": ("simam", "after"),
    "simam_delta": ("simam", "delta"),
    "kendall_token": ("kendall", "mean"),
    "kendall_example": ("kendall", "example_level", "mean"),
    "recall_token": ("topk_recall", "token_level", "mean"),
    "recall_example": ("topk_recall", "example_level", "mean"),
    **{key: ("label_shift", key, "mean") for key in ("kl_icl_ft", "tv_icl_ft", "kl_icl_zsl", "tv_icl_zsl", "kl_ft_zsl", "tv_ft_zsl")},
}


def check_orders(n_demonstrations: int, permutations: int) -> None:
    """Refuse more orders than ``n_demonstrations!`` distinct ones, naming the largest number that works."""
    if permutations > math.factorial(n_demonstrations):
        raise ValueError(
            f"permutations={permutations} asks for more orders than the {n_demonstrations} demonstration(s) used have: only "
            f"{math.factorial(n_demonstrations)} distinct order(s); use permutations <= {math.factorial(n_demonstrations)} "
            "or more demonstrations."
        )


def demonstration_orders(n_demonstrations: int, permutations: int, seed: int) -> list[list[int]]:
    """The ``permutations`` orders of ``n_demonstrations`` demonstrations, as indices into the drawn order.

    Order 0 is ``[0, 1, ..., n-1]``; each further order is the next permutation drawn by
    ``numpy.random.default_rng((seed, ORDER_STREAM))`` that is not already among them, so the same seed
    gives the same orders and the first ``P`` orders of ``P + 1`` are those of ``P``.

    Raises:
        ValueError: more orders asked for than ``n_demonstrations!`` (:func:`check_orders`).
    """
    check_orders(n_demonstrations, permutations)
    rng = np.random.default_rng((seed, ORDER_STREAM))
    orders, seen = [list(range(n_demonstrations))], {tuple(range(n_demonstrations))}
    while len(orders) < permutations:
        order = tuple(int(i) for i in rng.permutation(n_demonstrations))
        if order not in seen:
            seen.add(order)
            orders.append(list(order))
    return orders


def _at(data: Any, path: Sequence[str]) -> Any:
    for key in path:
        data = data.get(key) if isinstance(data, Mapping) else None
    return data


def order_values(summary: Mapping[str, Any]) -> dict[str, float | None]:
    """The headline numbers of one order (:data:`ORDER_VALUES`) from its summary; ``None`` where undefined (Rec2FTP)."""
    values = {}
    for name, path in ORDER_VALUES.items():
        value = _at(summary, path)
        values[name] = None if value is None else float(value)
    return values


def spread(values: Sequence[float | None]) -> dict[str, float | int | None]:
    """``{"mean", "std", "min", "max", "n"}`` over orders of the values that are defined (``None`` left out).

    ``std`` is the sample standard deviation (n - 1), ``None`` below two values; all are ``None`` with none.
    """
    kept = [float(v) for v in values if v is not None]
    return {
        "mean": statistics.fmean(kept) if kept else None,
        "std": statistics.stdev(kept) if len(kept) > 1 else None,
        "min": min(kept) if kept else None,
        "max": max(kept) if kept else None,
        "n": len(kept),
    }


def prediction_agreement(predictions: Any) -> dict[str, float | None]:
    """How alike one route predicts across orders, from ``[P, Q]`` predicted label indices (one row per order).

    ``all_orders``: the share of queries whose prediction is the same in every order (1.0 with one order);
    ``pairwise``: the mean over pairs of orders ``a < b`` of the share of queries predicted alike in both
    (``None`` with one order).
    """
    preds = np.asarray(predictions)
    if preds.ndim != 2 or preds.shape[0] == 0 or preds.shape[1] == 0:
        raise ValueError(f"`predictions` must be [orders, queries] label indices (at least one of each); got shape {preds.shape}.")
    same = float(np.mean(np.all(preds == preds[0], axis=0)))
    pairs = [float(np.mean(preds[a] == preds[b])) for a in range(len(preds)) for b in range(a + 1, len(preds))]
    return {"all_orders": same, "pairwise": statistics.fmean(pairs) if pairs else None}


def orders_report(orders: Sequence[Sequence[int]], summaries: Sequence[Mapping[str, Any]],
                  losses: Sequence[Sequence[float | None]]) -> dict[str, Any]:
    """``report["permutations"]`` from each order's summary (order 0's is the report's main body) and training losses.

    Returns ``{"n", "orders", "per_order": [{"order", "values", "rec2ftp_counts", "change_recall_counts",
    "predictions": {"icl", "ft"}, "loss_per_step"}], "spread": {name: spread over orders}, "agreement":
    {"icl": {all_orders, pairwise}, "ft": {...}, "icl_ft": {"per_order", "mean"}}}``.
    """
    if not len(orders) == len(summaries) == len(losses):
        raise ValueError(f"one summary and one loss list per order: {len(orders)} orders, {len(summaries)} summaries, "
                         f"{len(losses)} loss lists.")
    per_order = [{
        "order": i,
        "values": order_values(summary),
        "rec2ftp_counts": dict(summary.get("rec2ftp_counts") or {}),
        "change_recall_counts": dict(summary.get("change_recall_counts") or {}),
        "predictions": {route: list(summary["predictions"][route]) for route in ("icl", "ft")},
        "loss_per_step": list(loss),
    } for i, (summary, loss) in enumerate(zip(summaries, losses))]
    predictions = {route: np.array([o["predictions"][route] for o in per_order]) for route in ("icl", "ft")}
    icl_ft = [float(np.mean(i == f)) for i, f in zip(predictions["icl"], predictions["ft"])]
    return {
        "n": len(orders),
        "orders": [list(map(int, order)) for order in orders],
        "per_order": per_order,
        "spread": {name: spread([o["values"][name] for o in per_order]) for name in ORDER_VALUES},
        "agreement": {
            "icl": prediction_agreement(predictions["icl"]),
            "ft": prediction_agreement(predictions["ft"]),
            "icl_ft": {"per_order": icl_ft, "mean": statistics.fmean(icl_ft)},
        },
    }
