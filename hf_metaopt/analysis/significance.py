"""Is the pretrained model's metric above a control's on the same queries? A paired test over queries.

Both tests compare two arms measured on the same queries: the pretrained model ``a`` and a
control ``b`` (the untrained copy, shuffled labels, or a random baseline). Definitions,
``docs/analysis.md`` ("Significance over queries"):

- **Means** (SimAOU, SimAM, Kendall, top-k recall, the label shift: a per-query value, for the
  per-layer metrics the query's mean over layers) -- :func:`paired_test`. The difference is
  ``mean(a - b)``; its interval is the percentile bootstrap of the mean of ``d = a - b``
  (queries resampled, each keeping its pair); the p-value is a **sign-flip permutation test**:
  under the null hypothesis that the arms are exchangeable within each query, each ``d_q`` is
  as likely to be ``-d_q``, and ``p = #{signs s: mean(s * d) >= mean(d)} / #signs``.
- **Ratios of query counts** (Rec2FTP, ChangeRecall: ``#num / #den``) -- :func:`paired_ratio_test`.
  The difference is ``ratio(a) - ratio(b)``; its interval resamples queries jointly (the same
  queries for both arms; resamples leaving either denominator empty are skipped); the p-value
  swaps the two arms' indicators within each query (the sign flip of the means, for a ratio),
  over the swaps that leave both ratios defined.

The p-value is one-sided (small when ``a`` is above ``b``) and counts ties as at least as
extreme, so identical arms give ``p = 1``. When ``2**Q <= n_resamples`` every one of the
``2**Q`` sign patterns is enumerated and ``p`` is exact (``"exact": True``); otherwise
``n_resamples`` random patterns are drawn (seeded) and ``p = (1 + hits) / (1 + n_resamples)``,
which counts the observed pattern once and is never 0 (Phipson & Smyth 2010). The same seed
gives the same result.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from .metrics import bootstrap_ci, check_bootstrap_args, checked_array, percentile_interval, ratio_indicators

__all__ = ["paired_ratio_test", "paired_test"]

_TIE_RTOL = 1e-12  # a permuted statistic this close (relative) to the observed one is a tie, not float noise


def _values(x: Any, name: str) -> np.ndarray:
    arr = checked_array(x, name)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"`{name}` must be one value per query (1 dimension, at least one query); got shape {arr.shape}.")
    return arr


def _swap_patterns(n_queries: int, n_resamples: int, seed: int) -> tuple[np.ndarray, bool]:
    """``[P, Q]`` booleans (True: swap the arms of that query) and whether they are all ``2**Q`` patterns."""
    if n_queries < 63 and 2**n_queries <= n_resamples:
        return np.array(list(itertools.product((False, True), repeat=n_queries)), dtype=bool), True
    return np.random.default_rng(seed).random((n_resamples, n_queries)) < 0.5, False


def _p_value(permuted: np.ndarray, observed: float, exact: bool) -> float:
    tie = _TIE_RTOL * max(1.0, abs(observed))
    hits = int(np.sum(permuted >= observed - tie))
    return hits / permuted.size if exact else (1 + hits) / (1 + permuted.size)


def _result(difference, interval, p_value, n_queries: int, exact: bool) -> dict[str, Any]:
    return {"difference": difference, "interval": interval, "p_value": p_value, "n_queries": n_queries, "exact": exact}


def paired_test(values: Any, control: Any, n_resamples: int = 1000, seed: int = 0, confidence: float = 0.95) -> dict[str, Any]:
    """One-sided paired test that the mean of ``values`` is above the mean of ``control`` over the same queries.

    Args:
        values: ``[Q]`` per-query values of a metric for the pretrained model (for a per-layer
            metric, each query's mean over layers).
        control: ``[Q]`` the same metric on the same queries for a control or a random baseline.
        n_resamples: bootstrap resamples of the interval, and sign patterns drawn for the p-value
            (all ``2**Q`` are enumerated when that is no more).
        seed: seeds both; the same seed gives the same result.
        confidence: coverage of the interval.

    Returns:
        ``{"difference": mean(values - control), "interval": [low, high] (bootstrap over queries),
        "p_value": sign-flip permutation p-value, "n_queries": Q, "exact": all patterns enumerated}``.
        A constant positive difference over ``Q`` queries gives ``p = 2**-Q`` exactly (or
        ``1 / (1 + n_resamples)`` when drawn); identical arms give ``p = 1``.
    """
    a, b = _values(values, "values"), _values(control, "control")
    if a.shape != b.shape:
        raise ValueError(f"`control` has {b.shape[0]} queries but `values` has {a.shape[0]}; a paired test needs the same queries.")
    check_bootstrap_args(n_resamples, confidence)
    d = a - b
    observed = float(d.mean())
    swaps, exact = _swap_patterns(d.shape[0], n_resamples, seed)
    permuted = (np.where(swaps, -d, d)).mean(axis=1)
    interval = bootstrap_ci(d, n_resamples=n_resamples, seed=seed, confidence=confidence)
    return _result(observed, interval, _p_value(permuted, observed, exact), d.shape[0], exact)


def _ratios(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Row-wise ``num / den`` of count arrays, NaN where ``den`` is 0."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def paired_ratio_test(numerator: Any, denominator: Any, control_numerator: Any, control_denominator: Any,
                      n_resamples: int = 1000, seed: int = 0, confidence: float = 0.95) -> dict[str, Any]:
    """One-sided paired test that a ratio of query counts is higher for the pretrained model than for a control.

    For Rec2FTP pass :func:`~.metrics.rec2ftp_indicators` of each arm, for ChangeRecall
    :func:`~.change_recall.change_indicators`: per query, booleans for the numerator and the
    denominator (the numerator's queries among the denominator's).

    Args:
        numerator, denominator: ``[Q]`` the pretrained model's indicators.
        control_numerator, control_denominator: ``[Q]`` the control's, on the same queries.
        n_resamples, seed, confidence: as :func:`paired_test`.

    Returns:
        ``{"difference": ratio - control ratio, "interval", "p_value", "n_queries", "exact"}`` as
        :func:`paired_test`; ``difference``, ``interval`` and ``p_value`` are ``None`` when either
        ratio is undefined (an empty denominator). The interval resamples queries jointly and skips
        resamples where either denominator is empty; the p-value swaps the arms' indicators within
        queries, over the swaps that leave both denominators non-empty.
    """
    num_a, den_a = ratio_indicators(numerator, denominator, ("numerator", "denominator"))
    num_b, den_b = ratio_indicators(control_numerator, control_denominator, ("control_numerator", "control_denominator"))
    if den_b.shape != den_a.shape:
        raise ValueError(f"the control has {den_b.shape[0]} queries but the pretrained arm has {den_a.shape[0]}; "
                         "a paired test needs the same queries.")
    if den_a.size == 0:
        raise ValueError("`denominator` is empty; a paired test needs at least one query.")
    check_bootstrap_args(n_resamples, confidence)
    n = den_a.shape[0]
    if not den_a.any() or not den_b.any():
        return _result(None, None, None, n, False)
    observed = float(num_a.sum() / den_a.sum() - num_b.sum() / den_b.sum())
    swaps, exact = _swap_patterns(n, n_resamples, seed)
    permuted = (_ratios(np.where(swaps, num_b, num_a).sum(axis=1), np.where(swaps, den_b, den_a).sum(axis=1))
                - _ratios(np.where(swaps, num_a, num_b).sum(axis=1), np.where(swaps, den_a, den_b).sum(axis=1)))
    p_value = _p_value(permuted[~np.isnan(permuted)], observed, exact)  # the identity pattern is always defined
    idx = np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))
    boot = _ratios(num_a[idx].sum(axis=1), den_a[idx].sum(axis=1)) - _ratios(num_b[idx].sum(axis=1), den_b[idx].sum(axis=1))
    boot = boot[~np.isnan(boot)]
    interval = percentile_interval(boot, confidence) if boot.size else None
    return _result(observed, interval, p_value, n, exact)
