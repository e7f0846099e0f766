"""Output-distribution shift (Shen, Mishra & Khashabi, ICML 2024): how differently ICL and FT move the label distribution.

Per query, a route's **label distribution** is the softmax over the label set of the route's
label-word scores (``RouteOutput.logprobs [Q, n_labels]``: each label word's mean token
log-probability after the prompt, the scores the prediction is the argmax of), so ``p`` is the
share each label word gets when the model must pick one of them. Then per query
(``docs/analysis.md``, "Metrics"):

- ``kl_icl_ft = KL(p_ICL || p_FT)``, ``tv_icl_ft = TV(p_ICL, p_FT)``: how far apart ICL and FT end up;
- ``kl_icl_zsl = KL(p_ICL || p_ZSL)``, ``tv_icl_zsl``: the shift ICL makes from zero-shot;
- ``kl_ft_zsl = KL(p_FT || p_ZSL)``, ``tv_ft_zsl``: the shift finetuning makes.

``kl_a_b`` is always ``KL(p_a || p_b) = sum_j p_a[j] (log p_a[j] - log p_b[j])``, the expectation
under the first route (for the shifts: under the distribution after learning);
``TV(p, q) = 1/2 sum_j |p[j] - q[j]|`` is symmetric and lies in [0, 1].

Degenerate cases: identical distributions (or scores that differ by a constant, which the
softmax removes) give exactly 0 for both; one label word gives 0. Log-probabilities are
normalised in log space, so no probability underflows to 0 and KL is always finite.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .metrics import bootstrap_ci, checked_array

__all__ = ["LABEL_SHIFTS", "kl_divergence", "label_distribution", "label_shift_scores", "summarize_label_shift",
           "total_variation"]

# key -> (route a, route b): KL(p_a || p_b) and TV(p_a, p_b), in the report's order.
LABEL_SHIFTS = {
    "kl_icl_ft": ("icl", "ft"), "tv_icl_ft": ("icl", "ft"),
    "kl_icl_zsl": ("icl", "zsl"), "tv_icl_zsl": ("icl", "zsl"),
    "kl_ft_zsl": ("ft", "zsl"), "tv_ft_zsl": ("ft", "zsl"),
}


def _scores(x: Any, name: str) -> np.ndarray:
    arr = checked_array(x, name)
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise ValueError(f"`{name}` must be label-word scores of shape [queries, labels] (at least one label); got shape {arr.shape}.")
    return arr


def _pair(scores_p: Any, scores_q: Any, names: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    p, q = _scores(scores_p, names[0]), _scores(scores_q, names[1])
    if p.shape != q.shape:
        raise ValueError(f"`{names[1]}` has shape {q.shape} but `{names[0]}` has shape {p.shape}; they must match.")
    return p, q


def _log_softmax(scores: np.ndarray) -> np.ndarray:
    shifted = scores - scores.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def label_distribution(scores: Any) -> np.ndarray:
    """``[Q, n_labels]``: per query the softmax of the label-word scores over the label set (rows sum to 1)."""
    return np.exp(_log_softmax(_scores(scores, "scores")))


def kl_divergence(scores_p: Any, scores_q: Any) -> np.ndarray:
    """``[Q]``: ``KL(p || q) = sum_j p_j (log p_j - log q_j)`` of the label distributions of two routes' scores.

    Args:
        scores_p, scores_q: ``[Q, n_labels]`` label-word scores (log-probabilities) of the two routes.

    Returns:
        Non-negative values, exactly 0 where the two distributions are identical.
    """
    p, q = _pair(scores_p, scores_q, ("scores_p", "scores_q"))
    log_p, log_q = _log_softmax(p), _log_softmax(q)
    return np.maximum(np.sum(np.exp(log_p) * (log_p - log_q), axis=1), 0.0)  # rounding can dip below 0


def total_variation(scores_p: Any, scores_q: Any) -> np.ndarray:
    """``[Q]``: ``TV(p, q) = 1/2 sum_j |p_j - q_j|`` of the label distributions of two routes' scores, in [0, 1]."""
    p, q = _pair(scores_p, scores_q, ("scores_p", "scores_q"))
    return 0.5 * np.abs(np.exp(_log_softmax(p)) - np.exp(_log_softmax(q))).sum(axis=1)


def label_shift_scores(logprobs_zsl: Any, logprobs_icl: Any, logprobs_ft: Any) -> dict[str, np.ndarray]:
    """Every shift of :data:`LABEL_SHIFTS` per query: ``{"kl_icl_ft": [Q], "tv_icl_ft": [Q], ...}``.

    Args:
        logprobs_zsl, logprobs_icl, logprobs_ft: ``[Q, n_labels]`` each route's label-word scores.
    """
    routes = {"zsl": logprobs_zsl, "icl": logprobs_icl, "ft": logprobs_ft}
    checked = {name: _scores(value, f"logprobs_{name}") for name, value in routes.items()}
    for name in ("icl", "ft"):
        _pair(checked["zsl"], checked[name], ("logprobs_zsl", f"logprobs_{name}"))
    measure = {"kl": kl_divergence, "tv": total_variation}
    return {key: measure[key[:2]](checked[a], checked[b]) for key, (a, b) in LABEL_SHIFTS.items()}


def summarize_label_shift(scores: dict[str, Any], n_resamples: int = 1000, seed: int = 0) -> dict[str, dict[str, Any]]:
    """``{key: {"mean", "ci95"}}`` over queries for per-query shifts (:func:`label_shift_scores`).

    ``ci95`` is the percentile bootstrap interval of the mean (:func:`~.metrics.bootstrap_ci`), ``None``
    when ``n_resamples`` is 0.
    """
    out = {}
    for key, values in scores.items():
        arr = np.asarray(values, dtype=np.float64)
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError(f"`scores[{key!r}]` must hold one value per query (at least one); got shape {arr.shape}.")
        out[key] = {"mean": float(arr.mean()),
                    "ci95": bootstrap_ci(arr, n_resamples=n_resamples, seed=seed) if n_resamples else None}
    return out
