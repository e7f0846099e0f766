"""The output-distribution shift (Shen et al. 2024) against hand computations of docs/analysis.md's definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hf_metaopt.analysis.label_shift import (
    LABEL_SHIFTS, kl_divergence, label_distribution, label_shift_scores, summarize_label_shift, total_variation,
)

LN = math.log


def test_label_distribution_renormalises_over_the_label_set():
    # Mean log-probabilities log(0.2) and log(0.05): the label set holds 0.25 of the mass, split 0.8 / 0.2.
    p = label_distribution([[LN(0.2), LN(0.05)], [0.0, 0.0]])
    np.testing.assert_allclose(p, [[0.8, 0.2], [0.5, 0.5]], rtol=0, atol=1e-15)
    # Scores far below the float range of exp still give a distribution (normalised in log space).
    np.testing.assert_allclose(label_distribution([[-2000.0, -2000.0 + LN(3.0)]]), [[0.25, 0.75]], atol=1e-12)


def test_kl_and_tv_by_hand():
    p, q = [[LN(0.8), LN(0.2)]], [[LN(0.5), LN(0.5)]]
    kl = 0.8 * LN(0.8 / 0.5) + 0.2 * LN(0.2 / 0.5)
    assert kl_divergence(p, q)[0] == pytest.approx(kl, abs=1e-15)
    assert kl_divergence(q, p)[0] == pytest.approx(0.5 * LN(0.5 / 0.8) + 0.5 * LN(0.5 / 0.2), abs=1e-15)  # not symmetric
    assert total_variation(p, q)[0] == pytest.approx(0.3, abs=1e-15) and total_variation(q, p)[0] == pytest.approx(0.3, abs=1e-15)
    # Three labels: p = (0.7, 0.2, 0.1), q = (0.1, 0.2, 0.7): TV = (0.6 + 0 + 0.6) / 2.
    p3, q3 = np.log([[0.7, 0.2, 0.1]]), np.log([[0.1, 0.2, 0.7]])
    assert total_variation(p3, q3)[0] == pytest.approx(0.6, abs=1e-15)
    assert kl_divergence(p3, q3)[0] == pytest.approx(0.7 * LN(7) + 0.1 * LN(1 / 7), abs=1e-14)


def test_identical_distributions_give_exactly_zero():
    scores = np.log([[0.7, 0.2, 0.1], [0.3, 0.3, 0.4]])
    assert kl_divergence(scores, scores).tolist() == [0.0, 0.0]
    assert total_variation(scores, scores).tolist() == [0.0, 0.0]
    # Scores that differ by a constant per query are the same distribution.
    shifted = scores + np.array([[-3.0], [5.0]])
    np.testing.assert_allclose(kl_divergence(scores, shifted), 0.0, atol=1e-15)
    np.testing.assert_allclose(total_variation(scores, shifted), 0.0, atol=1e-15)
    # Tied scores: the uniform distribution; a single label word: nothing can shift.
    assert kl_divergence([[-1.0, -1.0]], [[-4.0, -4.0]])[0] == 0.0
    assert kl_divergence([[-1.0]], [[-9.0]])[0] == 0.0 and total_variation([[-1.0]], [[-9.0]])[0] == 0.0


def test_label_shift_scores_name_their_direction():
    zsl = np.log([[0.5, 0.5], [0.9, 0.1]])
    icl = np.log([[0.8, 0.2], [0.9, 0.1]])
    ft = np.log([[0.5, 0.5], [0.6, 0.4]])
    out = label_shift_scores(zsl, icl, ft)
    assert list(out) == list(LABEL_SHIFTS)
    kl = lambda a, b: sum(x * LN(x / y) for x, y in zip(a, b))  # noqa: E731
    expected = {
        "kl_icl_ft": [kl([0.8, 0.2], [0.5, 0.5]), kl([0.9, 0.1], [0.6, 0.4])], "tv_icl_ft": [0.3, 0.3],
        "kl_icl_zsl": [kl([0.8, 0.2], [0.5, 0.5]), 0.0], "tv_icl_zsl": [0.3, 0.0],
        "kl_ft_zsl": [0.0, kl([0.6, 0.4], [0.9, 0.1])], "tv_ft_zsl": [0.0, 0.3],
    }
    for key, values in expected.items():
        np.testing.assert_allclose(out[key], values, rtol=0, atol=1e-14, err_msg=key)
    torch_out = label_shift_scores(*(torch.tensor(x) for x in (zsl, icl, ft)))
    np.testing.assert_array_equal(torch_out["kl_icl_ft"], out["kl_icl_ft"])


def test_summary_is_the_mean_with_a_seeded_interval():
    values = {"kl_icl_ft": [0.0, 0.2, 0.4, 1.0], "tv_icl_ft": [0.1, 0.1, 0.1, 0.1]}
    out = summarize_label_shift(values, n_resamples=200, seed=3)
    assert out["kl_icl_ft"]["mean"] == pytest.approx(0.4, abs=1e-15)
    low, high = out["kl_icl_ft"]["ci95"]
    assert 0.0 <= low < 0.4 < high <= 1.0 and out == summarize_label_shift(values, n_resamples=200, seed=3)
    assert out["tv_icl_ft"] == {"mean": pytest.approx(0.1), "ci95": [pytest.approx(0.1), pytest.approx(0.1)]}
    assert summarize_label_shift(values, n_resamples=0)["kl_icl_ft"]["ci95"] is None


def test_bad_input_names_the_argument():
    good = np.zeros((2, 3))
    with pytest.raises(ValueError, match="logprobs_ft.*shape"):
        label_shift_scores(good, good, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="logprobs_icl.*NaN"):
        label_shift_scores(good, np.full((2, 3), np.nan), good)
    with pytest.raises(ValueError, match=r"scores_p.*\[queries, labels\]"):
        kl_divergence([0.0, 1.0], [0.0, 1.0])
    with pytest.raises(ValueError, match="one value per query"):
        summarize_label_shift({"kl_icl_ft": []})
