"""The paper's four analysis metrics, the reference code's top-k recall, and their baselines, as pure numpy functions.

Definitions follow ``docs/analysis.md`` (the reference code's reading of Dai et
al. 2023) plus Deutch et al. 2024's variants. Every function takes numpy arrays,
nested lists or CPU torch tensors, computes in float64 and returns numpy arrays
(or plain Python floats for the summaries).

Degenerate inputs are defined, not left to produce NaN:

- the cosine of a zero vector with anything is **0.0** (no direction, so no
  agreement); this happens e.g. when an update ``h_icl - h_zsl`` is exactly zero;
- an update (a difference of two routes' vectors) whose norm is below ``UPDATE_RTOL``
  times the larger of the two vectors' norms is float32 rounding, not an update, and
  counts as zero: e.g. with rotary positions the first layer's scores over the query's
  own tokens are the same with and without demonstrations, and their difference is
  noise whose direction would change from one run to the next;
- Kendall's tau of a constant ranking (scipy returns NaN) is **0.0**;
- shape mismatches raise ``ValueError`` naming the argument and both shapes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

__all__ = [
    "bootstrap_ci",
    "check_bootstrap_args",
    "checked_array",
    "cosine",
    "kendall_random_scores",
    "kendall_scores",
    "example_mass",
    "layer_bootstrap_ci",
    "update",
    "count_ratio",
    "count_ratio_bootstrap_ci",
    "rec2ftp",
    "rec2ftp_bootstrap_ci",
    "rec2ftp_counts",
    "rec2ftp_indicators",
    "percentile_interval",
    "ratio_indicators",
    "simam_scores",
    "simaou_random_scores",
    "simaou_scores",
    "summarize_layers",
    "topk_recall",
    "topk_recall_random",
]


def _array(x: Any, name: str, ndim: int | None = None, dtype=np.float64) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().to("cpu").double().numpy() if dtype is np.float64 else x.detach().to("cpu").numpy()
    try:
        arr = np.asarray(x, dtype=dtype)
    except (TypeError, ValueError) as err:
        raise TypeError(f"`{name}` must be a numeric array (or nested lists of equal length); got {type(x).__name__}: {err}") from err
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"`{name}` must have {ndim} dimensions; got shape {arr.shape}.")
    if dtype is np.float64 and not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` contains NaN or infinite values; remove or fix them before scoring.")
    return arr


def checked_array(x: Any, name: str, ndim: int | None = None) -> np.ndarray:
    """``x`` (array, nested lists or CPU torch tensor) as a finite float64 array; errors name the argument ``name``."""
    return _array(x, name, ndim=ndim)


def _same_shape(ref: np.ndarray, ref_name: str, other: np.ndarray, other_name: str) -> None:
    if ref.shape != other.shape:
        raise ValueError(f"`{other_name}` has shape {other.shape} but `{ref_name}` has shape {ref.shape}; they must match.")


def cosine(a: Any, b: Any) -> np.ndarray:
    """Cosine similarity along the last axis; 0.0 where either vector is zero."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    na = np.linalg.norm(a, axis=-1)
    nb = np.linalg.norm(b, axis=-1)
    denom = na * nb
    dot = np.sum(a * b, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(denom > 0, dot / np.where(denom > 0, denom, 1.0), 0.0)
    # Rounding can push |cos| a hair above 1.
    return np.clip(out, -1.0, 1.0)


UPDATE_RTOL = 1e-5


def update(after: np.ndarray, before: np.ndarray) -> np.ndarray:
    """``after - before`` along the last axis, zeroed where it is rounding noise (see ``UPDATE_RTOL``)."""
    diff = after - before
    scale = np.maximum(np.linalg.norm(after, axis=-1), np.linalg.norm(before, axis=-1))
    return np.where((np.linalg.norm(diff, axis=-1) <= UPDATE_RTOL * scale)[..., None], 0.0, diff)


def _l2_normalize(h: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(h, axis=-1, keepdims=True)
    return np.where(norm > 0, h / np.where(norm > 0, norm, 1.0), 0.0)


# ---------------------------------------------------------------- Rec2FTP

def _bool_vector(x: Any, name: str) -> np.ndarray:
    arr = _array(x, name, ndim=1, dtype=None)
    if arr.dtype != bool:
        if not np.all(np.isin(arr, (0, 1))):
            raise ValueError(f"`{name}` must hold booleans (or 0/1) per query; got values {np.unique(arr)[:5].tolist()}.")
        arr = arr.astype(bool)
    return arr


def _rec2ftp_inputs(zsl_correct, icl_correct, ft_correct):
    zsl = _bool_vector(zsl_correct, "zsl_correct")
    icl = _bool_vector(icl_correct, "icl_correct")
    ft = _bool_vector(ft_correct, "ft_correct")
    _same_shape(zsl, "zsl_correct", icl, "icl_correct")
    _same_shape(zsl, "zsl_correct", ft, "ft_correct")
    return zsl, icl, ft


def rec2ftp_indicators(zsl_correct: Any, icl_correct: Any, ft_correct: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per query, whether it counts in Rec2FTP's numerator and in its denominator.

    ``(both_fixed, ft_fixed)``: boolean ``[Q]`` arrays, ``ft_fixed = FT correct & ZSL wrong`` and
    ``both_fixed = ft_fixed & ICL correct``, so Rec2FTP is ``both_fixed.sum() / ft_fixed.sum()``
    (:func:`count_ratio`); the paired test over queries takes them as they are
    (:func:`~hf_metaopt.analysis.significance.paired_ratio_test`).
    """
    zsl, icl, ft = _rec2ftp_inputs(zsl_correct, icl_correct, ft_correct)
    fixed_by_ft = ft & ~zsl
    return fixed_by_ft & icl, fixed_by_ft


def rec2ftp(zsl_correct: Any, icl_correct: Any, ft_correct: Any) -> float | None:
    """Recall to finetuning predictions.

    ``#(FT correct & ZSL wrong & ICL correct) / #(FT correct & ZSL wrong)``: of the
    queries finetuning fixes relative to zero-shot, the fraction ICL fixes too.

    Args:
        zsl_correct, icl_correct, ft_correct: boolean arrays ``[Q]``, whether each
            route predicted query ``q`` correctly.

    Returns:
        The ratio as a float, or ``None`` when FT fixes no query (empty denominator).
    """
    return count_ratio(*rec2ftp_indicators(zsl_correct, icl_correct, ft_correct))


def rec2ftp_counts(zsl_correct: Any, icl_correct: Any, ft_correct: Any) -> dict[str, int]:
    """Rec2FTP's numerator and denominator: ``{"ft_fixed": #(FT correct & ZSL wrong), "both_fixed": ... & ICL correct}``.

    A ratio of 2 of 3 reads like 67%; the report shows the counts beside it. No query fixed by
    FT gives ``{"ft_fixed": 0, "both_fixed": 0}``.
    """
    both, fixed = rec2ftp_indicators(zsl_correct, icl_correct, ft_correct)
    return {"ft_fixed": int(fixed.sum()), "both_fixed": int(both.sum())}


def rec2ftp_bootstrap_ci(
    zsl_correct: Any,
    icl_correct: Any,
    ft_correct: Any,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> list[float] | None:
    """Percentile bootstrap interval of :func:`rec2ftp` over queries (:func:`count_ratio_bootstrap_ci`).

    Queries are resampled with replacement and the ratio recomputed; resamples in
    which FT fixes nothing (empty denominator) are skipped. Returns ``None`` when
    the full sample's ratio is undefined.
    """
    both, fixed = rec2ftp_indicators(zsl_correct, icl_correct, ft_correct)
    return count_ratio_bootstrap_ci(both, fixed, n_resamples=n_resamples, seed=seed, confidence=confidence)


# ---------------------------------------------------------------- ratios of query counts (Rec2FTP, ChangeRecall)

def ratio_indicators(numerator: Any, denominator: Any, names: tuple[str, str] = ("numerator", "denominator")) -> tuple[np.ndarray, np.ndarray]:
    """Checked boolean ``[Q]`` indicators of a ratio of query counts; the numerator's queries must be among the denominator's."""
    num, den = _bool_vector(numerator, names[0]), _bool_vector(denominator, names[1])
    _same_shape(den, names[1], num, names[0])
    if np.any(num & ~den):
        raise ValueError(f"`{names[0]}` marks queries that `{names[1]}` does not (e.g. query {int(np.argmax(num & ~den))}); "
                         "a ratio of counts needs the numerator's queries among the denominator's.")
    return num, den


def count_ratio(numerator: Any, denominator: Any) -> float | None:
    """``#numerator / #denominator`` of two boolean ``[Q]`` indicators (numerator within denominator); ``None`` for an empty denominator."""
    num, den = ratio_indicators(numerator, denominator)
    total = int(den.sum())
    return None if total == 0 else float(num.sum() / total)


def count_ratio_bootstrap_ci(numerator: Any, denominator: Any, n_resamples: int = 1000, seed: int = 0,
                             confidence: float = 0.95) -> list[float] | None:
    """Percentile bootstrap interval of :func:`count_ratio` over queries.

    Queries are resampled with replacement and the ratio recomputed; resamples with an empty
    denominator are skipped. ``None`` when the full sample's ratio is undefined.
    """
    num, den = ratio_indicators(numerator, denominator)
    check_bootstrap_args(n_resamples, confidence)
    if not den.any():
        return None
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, den.shape[0], size=(n_resamples, den.shape[0]))
    totals = den[idx].sum(axis=1)
    hits = num[idx].sum(axis=1)
    ok = totals > 0
    return percentile_interval(hits[ok] / totals[ok], confidence)


# ---------------------------------------------------------------- SimAOU

def simaou_scores(h_zsl: Any, h_icl: Any, h_ft: Any, normalize: bool = True) -> np.ndarray:
    """Similarity of attention output updates, per (query, layer).

    ``cos(h_icl - h_zsl, h_ft - h_zsl)`` where ``h_*`` are the self-attention outputs
    (after the output projection, before the residual add) at the analysed position.

    Args:
        h_zsl, h_icl, h_ft: arrays ``[Q, L, D]``.
        normalize: L2-normalise each ``h`` before taking differences (the paper);
            ``False`` is Deutch et al.'s unnormalised variant.

    Returns:
        Array ``[Q, L]``; 0.0 where an update is the zero vector.
    """
    zsl = _array(h_zsl, "h_zsl", ndim=3)
    icl = _array(h_icl, "h_icl", ndim=3)
    ft = _array(h_ft, "h_ft", ndim=3)
    _same_shape(zsl, "h_zsl", icl, "h_icl")
    _same_shape(zsl, "h_zsl", ft, "h_ft")
    if normalize:
        zsl, icl, ft = _l2_normalize(zsl), _l2_normalize(icl), _l2_normalize(ft)
    return cosine(update(icl, zsl), update(ft, zsl))


def simaou_random_scores(h_zsl: Any, h_icl: Any, seed: int = 0) -> np.ndarray:
    """SimAOU baseline: ``cos(update_ICL, r)`` per (query, layer).

    ``update_ICL`` uses L2-normalised ``h`` as the paper does; ``r`` is a fresh
    vector per (query, layer) drawn from Uniform[0, 1)^D, not centred, as in the
    reference code (so the baseline is not exactly 0 in expectation).
    """
    zsl = _array(h_zsl, "h_zsl", ndim=3)
    icl = _array(h_icl, "h_icl", ndim=3)
    _same_shape(zsl, "h_zsl", icl, "h_icl")
    r = np.random.default_rng(seed).random(zsl.shape)
    return cosine(update(_l2_normalize(icl), _l2_normalize(zsl)), r)


# ---------------------------------------------------------------- SimAM

def _per_query(seq: Any, name: str, ndim: int) -> list[np.ndarray]:
    if isinstance(seq, np.ndarray) or hasattr(seq, "detach"):
        arr = _array(seq, name, ndim=ndim + 1)
        return list(arr)
    if not isinstance(seq, Sequence) or isinstance(seq, (str, bytes)):
        raise TypeError(f"`{name}` must be a list over queries of arrays; got {type(seq).__name__}.")
    if len(seq) == 0:
        raise ValueError(f"`{name}` is empty; pass at least one query.")
    return [_array(x, f"{name}[{q}]", ndim=ndim) for q, x in enumerate(seq)]


def _check_routes(ref: list[np.ndarray], ref_name: str, other: list[np.ndarray], other_name: str) -> None:
    if len(ref) != len(other):
        raise ValueError(f"`{other_name}` has {len(other)} queries but `{ref_name}` has {len(ref)}; they must match.")
    for q, (a, b) in enumerate(zip(ref, other)):
        _same_shape(a, f"{ref_name}[{q}]", b, f"{other_name}[{q}]")
    layers = {a.shape[0] for a in ref}
    if len(layers) != 1:
        raise ValueError(f"`{ref_name}` has differing numbers of layers across queries ({sorted(layers)}); every query needs the same L.")


def simam_scores(m_zsl: Any, m_icl: Any, m_ft: Any) -> dict[str, np.ndarray]:
    """Similarity of attention maps, per (query, layer), averaged over heads.

    Args:
        m_zsl, m_icl, m_ft: lists over queries of arrays ``[L, H, T_q]``: the
            pre-softmax scores of the analysed position over the query's own tokens
            (``T_q`` may differ between queries, not between routes).

    Returns:
        ``{"before": cos(m_icl, m_zsl), "after": cos(m_icl, m_ft),
        "delta": cos(m_icl - m_zsl, m_ft - m_zsl)}``, each ``[Q, L]``: cosine over
        ``T_q`` per (query, layer, head), then the mean over heads.
    """
    zsl = _per_query(m_zsl, "m_zsl", 3)
    icl = _per_query(m_icl, "m_icl", 3)
    ft = _per_query(m_ft, "m_ft", 3)
    _check_routes(zsl, "m_zsl", icl, "m_icl")
    _check_routes(zsl, "m_zsl", ft, "m_ft")
    before = np.stack([cosine(i, z).mean(axis=-1) for z, i in zip(zsl, icl)])
    after = np.stack([cosine(i, f).mean(axis=-1) for i, f in zip(icl, ft)])
    delta = np.stack([cosine(update(i, z), update(f, z)).mean(axis=-1) for z, i, f in zip(zsl, icl, ft)])
    return {"before": before, "after": after, "delta": delta}


# ---------------------------------------------------------------- Kendall

def _tau(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape[0] < 2:
        return 0.0
    tau = stats.kendalltau(a, b).statistic  # tau-b
    return 0.0 if np.isnan(tau) else float(tau)


def _visibility(visible: Any, icl: list[np.ndarray]) -> list[np.ndarray]:
    """Per query a boolean ``[L, T_demo]`` mask (all True when ``visible`` is None)."""
    if visible is None:
        return [np.ones(a.shape, dtype=bool) for a in icl]
    masks = [np.asarray(v, dtype=bool) for v in (list(visible) if not isinstance(visible, np.ndarray) else visible)]
    if len(masks) != len(icl) or any(m.shape != a.shape for m, a in zip(masks, icl)):
        raise ValueError("`visible` must hold one boolean [L, T_demo] mask per query, shaped like `m_icl_demo`.")
    return masks


def kendall_scores(m_icl_demo: Any, m_ft_demo: Any, visible: Any = None) -> np.ndarray:
    """Kendall's tau-b between ICL attention to and FT training-token attention on demonstrations.

    Args:
        m_icl_demo: list over queries of ``[L, T_demo]``: pre-softmax scores of the
            position over the demonstration tokens, summed over heads.
        m_ft_demo: list over queries of ``[L, T_demo]``: for the FT model, the dot
            product of the position's query vector with each demonstration token's
            query vector during finetuning, summed over heads.
        visible: optional list over queries of boolean ``[L, T_demo]``: which tokens the
            layer attends to (a sliding-window layer sees only the last ones); the others
            are left out of that layer's ranking.

    Returns:
        Array ``[Q, L]``; 0.0 where tau is undefined (a constant ranking or fewer
        than two tokens).
    """
    icl = _per_query(m_icl_demo, "m_icl_demo", 2)
    ft = _per_query(m_ft_demo, "m_ft_demo", 2)
    _check_routes(icl, "m_icl_demo", ft, "m_ft_demo")
    masks = _visibility(visible, icl)
    return np.array(
        [[_tau(a_l[v_l], b_l[v_l]) for a_l, b_l, v_l in zip(a, b, v)] for a, b, v in zip(icl, ft, masks)],
        dtype=np.float64,
    )


def kendall_random_scores(m_icl_demo: Any, seed: int = 0, visible: Any = None) -> np.ndarray:
    """Kendall baseline: tau-b of the ICL scores against Uniform[0, 1) random scores, ``[Q, L]``."""
    icl = _per_query(m_icl_demo, "m_icl_demo", 2)
    _check_routes(icl, "m_icl_demo", icl, "m_icl_demo")
    masks = _visibility(visible, icl)
    rng = np.random.default_rng(seed)
    return np.array(
        [[_tau(a_l[v_l], rng.random(a_l.shape)[v_l]) for a_l, v_l in zip(a, v)] for a, v in zip(icl, masks)],
        dtype=np.float64,
    )


def _softmax(x: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Softmax of ``x`` over the entries where ``keep`` holds (last axis); 0 elsewhere and in an all-False row."""
    masked = np.where(keep, x, -np.inf)
    top = np.max(masked, axis=-1, keepdims=True)
    exp = np.where(keep, np.exp(masked - np.where(np.isfinite(top), top, 0.0)), 0.0)
    total = exp.sum(axis=-1, keepdims=True)
    return np.where(total > 0, exp / np.where(total > 0, total, 1.0), 0.0)


def example_mass(scores: Any, owner: Sequence[int], visible: Any = None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Each demonstration's share of the attention mass, for the example-level metrics.

    The reference code's reading (``compute_training_example_attn.py``): per (query, layer) a
    softmax of the token scores over the demonstration tokens the layer attends to, then that
    mass summed within each demonstration. Summing the raw scores instead would rank
    demonstrations by length times mean score, not by attention.

    Args:
        scores: list over queries of ``[L, T_demo]`` token scores (pre-softmax, on the scale the
            softmax of the reference applies to: ICL the scaled ``q.k`` summed over heads, FT the
            read-out query dotted with the training token's query, both scaled, summed over heads).
        owner: ``[T_demo]`` the demonstration each token belongs to (0..k-1).
        visible: optional list over queries of boolean ``[L, T_demo]`` (see :func:`kendall_scores`);
            invisible tokens get no mass.

    Returns:
        ``(mass, seen)``: per query ``[L, k]`` each demonstration's attention mass (each row sums
        to 1 where any token is visible), and ``[L, k]`` whether the demonstration has a visible token.
    """
    rows = _per_query(scores, "scores", 2)
    owner = np.asarray(owner, dtype=np.int64)
    if owner.ndim != 1 or any(r.shape[1] != owner.shape[0] for r in rows):
        raise ValueError(f"`owner` must give one demonstration per token ({rows[0].shape[1]}); got shape {owner.shape}.")
    one_hot = np.eye(int(owner.max()) + 1 if owner.size else 0)[owner]  # [T_demo, k]
    masks = _visibility(visible, rows)
    mass = [_softmax(r, m) @ one_hot for r, m in zip(rows, masks)]
    seen = [(m.astype(np.float64) @ one_hot) > 0 for m in masks]
    return mass, seen


def _top(values: np.ndarray, k: int) -> set[int]:
    # A stable sort on the negated values: among equal values the earlier index ranks first.
    return set(np.argsort(-values, kind="stable")[:k].tolist())


def _recall(a: np.ndarray, b: np.ndarray, k: int) -> float:
    n = a.shape[0]
    if n == 0:
        return 0.0
    k = min(k, n)
    return len(_top(a, k) & _top(b, k)) / k


def _check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"`k` must be a positive integer (the reference uses 100 tokens, 5 demonstrations); got {k!r}.")
    return int(k)


def topk_recall(m_icl: Any, m_ft: Any, k: int, visible: Any = None) -> np.ndarray:
    """Top-k recall of the reference code: the overlap of the two sides' k highest-scored items.

    Per (query, layer), ``|top_k(ICL) & top_k(FT)| / k`` over the visible items (tokens, or
    demonstrations for the example level). With ``n <= k`` visible items ``k`` becomes ``n``
    (the recall is then 1, as is its random baseline); no visible item gives 0. Ties rank the
    earlier item first.

    Args:
        m_icl, m_ft: lists over queries of ``[L, n]`` scores (see :func:`kendall_scores`).
        k: how many top items (the reference: 100 tokens, 5 demonstrations).
        visible: optional list over queries of boolean ``[L, n]``.

    Returns:
        Array ``[Q, L]`` in [0, 1].
    """
    k = _check_k(k)
    icl = _per_query(m_icl, "m_icl", 2)
    ft = _per_query(m_ft, "m_ft", 2)
    _check_routes(icl, "m_icl", ft, "m_ft")
    masks = _visibility(visible, icl)
    return np.array(
        [[_recall(a_l[v_l], b_l[v_l], k) for a_l, b_l, v_l in zip(a, b, v)] for a, b, v in zip(icl, ft, masks)],
        dtype=np.float64,
    )


def topk_recall_random(m_ft: Any, k: int, seed: int = 0, visible: Any = None) -> np.ndarray:
    """Top-k recall baseline: a Uniform[0, 1) random ranking against the FT side's, ``[Q, L]`` (about ``k / n``)."""
    k = _check_k(k)
    ft = _per_query(m_ft, "m_ft", 2)
    masks = _visibility(visible, ft)
    rng = np.random.default_rng(seed)
    return np.array(
        [[_recall(rng.random(b_l.shape)[v_l], b_l[v_l], k) for b_l, v_l in zip(b, v)] for b, v in zip(ft, masks)],
        dtype=np.float64,
    )

# ---------------------------------------------------------------- summaries

def check_bootstrap_args(n_resamples: int, confidence: float) -> None:
    """Refuse a non-positive number of resamples or a confidence outside (0, 1), naming the argument."""
    if not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise ValueError(f"`n_resamples` must be a positive integer; got {n_resamples!r}.")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"`confidence` must lie strictly between 0 and 1 (e.g. 0.95); got {confidence!r}.")


def percentile_interval(estimates: np.ndarray, confidence: float) -> list[float]:
    """``[low, high]``: the central ``confidence`` quantiles of bootstrap ``estimates``."""
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(estimates, [alpha, 1.0 - alpha])
    return [float(low), float(high)]


def bootstrap_ci(values: Any, n_resamples: int = 1000, seed: int = 0, confidence: float = 0.95) -> list[float]:
    """Percentile bootstrap interval ``[low, high]`` of the mean over queries.

    Args:
        values: ``[Q]`` per-query values (floats, or bools for accuracies).
        n_resamples: bootstrap resamples of the queries (with replacement).
        seed: seeds the resampling; the same seed gives the same interval.
        confidence: coverage of the interval.

    A single query or constant values give the degenerate interval ``[v, v]``.
    """
    arr = _array(values, "values", ndim=1)
    if arr.shape[0] == 0:
        raise ValueError("`values` is empty; a bootstrap interval needs at least one query.")
    check_bootstrap_args(n_resamples, confidence)
    if arr.shape[0] == 1 or np.all(arr == arr[0]):
        v = float(arr.mean())
        return [v, v]
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, arr.shape[0], size=(n_resamples, arr.shape[0]))
    return percentile_interval(arr[idx].mean(axis=1), confidence)


def layer_bootstrap_ci(scores: Any, n_resamples: int = 1000, seed: int = 0, confidence: float = 0.95) -> list[list[float] | None]:
    """Per layer, the percentile bootstrap interval of the mean over queries (:func:`bootstrap_ci` of each column).

    Args:
        scores: ``[Q, L]`` per-query values of one metric; NaN marks a query a layer has no value
            for (it is left out of that layer's resampling).
        n_resamples, seed, confidence: as for :func:`bootstrap_ci` (every layer is seeded with ``seed``).

    Returns:
        ``L`` intervals ``[low, high]``; ``None`` for a layer without any value.
    """
    values = np.asarray(scores.detach().cpu().double() if hasattr(scores, "detach") else scores, dtype=np.float64)
    missing = np.isnan(values)
    arr = _array(np.where(missing, 0.0, values), "scores", ndim=2)  # the shape and finiteness checks, NaN apart
    check_bootstrap_args(n_resamples, confidence)
    out: list[list[float] | None] = []
    for column, gone in zip(arr.T, missing.T):
        kept = column[~gone]
        out.append(bootstrap_ci(kept, n_resamples=n_resamples, seed=seed, confidence=confidence) if kept.size else None)
    return out


def summarize_layers(scores: Any, n_resamples: int | None = None, seed: int = 0) -> dict[str, Any]:
    """``{"per_layer": mean over queries per layer, "mean": mean of those}`` for scores ``[Q, L]``.

    With ``n_resamples`` it also holds ``"ci95"``: the bootstrap interval of the per-query
    layer means (:func:`bootstrap_ci`), or ``None`` when ``n_resamples`` is 0.
    """
    arr = _array(scores, "scores", ndim=2)
    if arr.size == 0:
        raise ValueError(f"`scores` must hold at least one query and one layer; got shape {arr.shape}.")
    per_layer = arr.mean(axis=0)
    summary = {"per_layer": [float(v) for v in per_layer], "mean": float(per_layer.mean())}
    if n_resamples is not None:
        summary["ci95"] = bootstrap_ci(arr.mean(axis=1), n_resamples=n_resamples, seed=seed) if n_resamples else None
    return summary
