"""ScoreCollector keeps the route scores and the per-query label shift as collected rows, in query order."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hf_metaopt.analysis.routes import RouteOutput
from hf_metaopt.analysis.scores import ScoreCollector

L, H, DH, T_DEMO, T_OWN = 1, 1, 2, 3, 2


def route(logprobs, rng) -> RouteOutput:
    b = len(logprobs)
    return RouteOutput(
        logprobs=np.log(np.array(logprobs, dtype=np.float64)),
        output=rng.normal(size=(b, L, 4)), query=rng.normal(size=(b, L, H, DH)),
        own=[rng.normal(size=(L, H, T_OWN)) for _ in range(b)], own_visible=[np.ones((L, T_OWN), dtype=bool) for _ in range(b)],
        demo=rng.normal(size=(b, L, T_DEMO)), demo_visible=np.ones((b, L, T_DEMO), dtype=bool), scaling=np.ones(L),
    )


def test_label_distributions_and_shifts_are_collected_per_query_in_query_order():
    rng = np.random.default_rng(0)
    collector = ScoreCollector([torch.from_numpy(rng.normal(size=(H, T_DEMO, DH)))], [0, 0, 1], seed=0, top_k_tokens=2,
                               top_k_examples=1)
    # Label-word probabilities (the label set holds all the mass, so each row is its own distribution).
    zsl = {0: [0.5, 0.5], 1: [0.9, 0.1], 2: [0.2, 0.8]}
    icl = {0: [0.8, 0.2], 1: [0.9, 0.1], 2: [0.7, 0.3]}
    ft = {0: [0.5, 0.5], 1: [0.6, 0.4], 2: [0.7, 0.3]}
    for batch in ([2, 0], [1]):  # batches in another order than the queries
        collector.add(batch, *(route([table[q] for q in batch], rng) for table in (zsl, icl, ft)))
    rows = collector.collected()
    np.testing.assert_allclose(rows["logprobs_icl"], np.log([icl[q] for q in range(3)]), atol=1e-15)
    kl = lambda p, q: sum(x * math.log(x / y) for x, y in zip(p, q))  # noqa: E731
    tv = lambda p, q: sum(abs(x - y) for x, y in zip(p, q)) / 2  # noqa: E731
    expected = {
        "kl_icl_ft": [kl(icl[q], ft[q]) for q in range(3)], "tv_icl_ft": [tv(icl[q], ft[q]) for q in range(3)],
        "kl_icl_zsl": [kl(icl[q], zsl[q]) for q in range(3)], "tv_icl_zsl": [tv(icl[q], zsl[q]) for q in range(3)],
        "kl_ft_zsl": [kl(ft[q], zsl[q]) for q in range(3)], "tv_ft_zsl": [tv(ft[q], zsl[q]) for q in range(3)],
    }
    for key, values in expected.items():
        np.testing.assert_allclose(rows[key], values, rtol=0, atol=1e-14, err_msg=key)
    summary = collector.summary(labels=[0, 0, 1], n_bootstrap=20)
    for key, values in expected.items():
        assert summary["label_shift"][key]["mean"] == pytest.approx(np.mean(values), abs=1e-14), key
    # Predictions: ZSL (0, 0, 1), ICL (0, 0, 0), FT (0, 0, 0): ICL and FT change query 2, the same way.
    assert summary["change_recall"] == 1.0
    assert summary["change_recall_counts"] == {"changed": 1, "same_change": 1, "icl_changed": 1, "ft_changed": 1}
    assert summary["rec2ftp"] is None and summary["rec2ftp_counts"] == {"ft_fixed": 0, "both_fixed": 0}
