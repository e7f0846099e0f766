"""ChangeRecall (Deutch et al. 2024): do ICL and finetuning change the same zero-shot predictions the same way?

Deutch et al.'s ``icl_ft/compute_sim.py`` (GiilDe/ft-vs-icl) is not retrievable here; the
definition is the one their paper gives and ``docs/analysis.md`` ("Metrics") states:
of the queries whose prediction ICL or FT changes relative to ZSL, the share that both change,
to the same label::

    #(icl != zsl & ft != zsl & icl == ft) / #(icl != zsl | ft != zsl)

Degenerate cases: no query changed by either route gives ``None`` (empty denominator); with two
labels every query both routes change is changed the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .metrics import count_ratio, count_ratio_bootstrap_ci

__all__ = ["change_indicators", "change_recall", "change_recall_bootstrap_ci", "change_recall_counts"]


def _labels(x: Any, name: str) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().to("cpu").numpy()
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ValueError(f"`{name}` must be one predicted label index per query (1 dimension); got shape {arr.shape}.")
    if arr.size and not (np.issubdtype(arr.dtype, np.integer) or np.all(np.mod(arr, 1) == 0)):
        raise ValueError(f"`{name}` must hold label indices (integers); got values like {arr[:3].tolist()}.")
    return arr.astype(np.int64)


def change_indicators(pred_zsl: Any, pred_icl: Any, pred_ft: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per query, whether it counts in ChangeRecall's numerator and in its denominator.

    Args:
        pred_zsl, pred_icl, pred_ft: ``[Q]`` predicted label indices of each route.

    Returns:
        ``(same_change, changed)``: boolean ``[Q]`` arrays, ``changed = icl != zsl | ft != zsl``
        and ``same_change = icl != zsl & ft != zsl & icl == ft``.
    """
    zsl, icl, ft = _labels(pred_zsl, "pred_zsl"), _labels(pred_icl, "pred_icl"), _labels(pred_ft, "pred_ft")
    for other, name in ((icl, "pred_icl"), (ft, "pred_ft")):
        if other.shape != zsl.shape:
            raise ValueError(f"`{name}` has shape {other.shape} but `pred_zsl` has shape {zsl.shape}; they must match.")
    icl_changed, ft_changed = icl != zsl, ft != zsl
    return icl_changed & ft_changed & (icl == ft), icl_changed | ft_changed


def change_recall(pred_zsl: Any, pred_icl: Any, pred_ft: Any) -> float | None:
    """ChangeRecall: of the queries ICL or FT changes relative to ZSL, the share both change to the same label.

    ``#(icl != zsl & ft != zsl & icl == ft) / #(icl != zsl | ft != zsl)``; ``None`` when neither
    route changes any prediction. Unlike Rec2FTP it ignores the gold labels: it compares what the
    two kinds of learning do to the zero-shot answers, right or wrong.

    Args:
        pred_zsl, pred_icl, pred_ft: ``[Q]`` predicted label indices of each route.
    """
    return count_ratio(*change_indicators(pred_zsl, pred_icl, pred_ft))


def change_recall_counts(pred_zsl: Any, pred_icl: Any, pred_ft: Any) -> dict[str, int]:
    """The counts behind :func:`change_recall`.

    ``{"changed": #(icl != zsl | ft != zsl), "same_change": #(icl != zsl & ft != zsl & icl == ft),
    "icl_changed": #(icl != zsl), "ft_changed": #(ft != zsl)}``.
    """
    same, changed = change_indicators(pred_zsl, pred_icl, pred_ft)
    zsl, icl, ft = (_labels(p, n) for p, n in ((pred_zsl, "pred_zsl"), (pred_icl, "pred_icl"), (pred_ft, "pred_ft")))
    return {"changed": int(changed.sum()), "same_change": int(same.sum()),
            "icl_changed": int((icl != zsl).sum()), "ft_changed": int((ft != zsl).sum())}


def change_recall_bootstrap_ci(pred_zsl: Any, pred_icl: Any, pred_ft: Any, n_resamples: int = 1000, seed: int = 0,
                               confidence: float = 0.95) -> list[float] | None:
    """Percentile bootstrap interval of :func:`change_recall` over queries, as :func:`~.metrics.rec2ftp_bootstrap_ci`.

    Resamples in which no query changed are skipped; ``None`` when the full sample's ratio is undefined.
    """
    same, changed = change_indicators(pred_zsl, pred_icl, pred_ft)
    return count_ratio_bootstrap_ci(same, changed, n_resamples=n_resamples, seed=seed, confidence=confidence)
