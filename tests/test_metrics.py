"""hf_metaopt.analysis.metrics against hand-computed examples, properties and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hf_metaopt.analysis import metrics as M

SQRT2 = math.sqrt(2.0)


# ---------------------------------------------------------------- Rec2FTP

def test_rec2ftp_hand_example():
    # query:        0  1  2  3  4
    zsl = [False, False, False, True, False]
    ft = [True, True, True, True, False]
    icl = [True, False, True, True, True]
    # FT ok & ZSL wrong: queries 0, 1, 2 (3 is ZSL-correct, 4 FT-wrong) -> 3.
    # Of those, ICL ok: 0 and 2 -> 2 / 3.
    assert M.rec2ftp(zsl, icl, ft) == pytest.approx(2 / 3, abs=1e-15)


def test_rec2ftp_accepts_01_ints_and_tensors():
    assert M.rec2ftp([0, 0], [1, 0], [1, 1]) == 0.5
    assert M.rec2ftp(torch.tensor([False, False]), torch.tensor([True, False]), torch.tensor([True, True])) == 0.5


def test_rec2ftp_none_when_ft_fixes_nothing():
    # FT is right only where ZSL already was.
    assert M.rec2ftp([True, False], [True, True], [True, False]) is None
    assert M.rec2ftp_bootstrap_ci([True, False], [True, True], [True, False]) is None


def test_rec2ftp_bad_input():
    with pytest.raises(ValueError, match="icl_correct"):
        M.rec2ftp([True, False], [True], [True, False])
    with pytest.raises(ValueError, match="ft_correct"):
        M.rec2ftp([0, 1], [1, 1], [2, 0])


def test_rec2ftp_bootstrap_contains_point_and_is_deterministic():
    rng = np.random.default_rng(3)
    zsl, icl, ft = (rng.random(60) < p for p in (0.4, 0.7, 0.6))
    point = M.rec2ftp(zsl, icl, ft)
    ci = M.rec2ftp_bootstrap_ci(zsl, icl, ft, seed=5)
    assert ci[0] <= point <= ci[1]
    assert ci == M.rec2ftp_bootstrap_ci(zsl, icl, ft, seed=5)
    assert 0.0 <= ci[0] < ci[1] <= 1.0


def test_rec2ftp_counts_beside_the_ratio():
    # The hand example above: FT fixes queries 0, 1, 2; ICL fixes 0 and 2 of them.
    zsl, ft, icl = [False, False, False, True, False], [True, True, True, True, False], [True, False, True, True, True]
    assert M.rec2ftp_counts(zsl, icl, ft) == {"ft_fixed": 3, "both_fixed": 2}
    both, fixed = M.rec2ftp_indicators(zsl, icl, ft)
    assert fixed.tolist() == [True, True, True, False, False] and both.tolist() == [True, False, True, False, False]
    # Nothing fixed by FT; and every gold label one class, ZSL always right: nothing to fix.
    assert M.rec2ftp_counts([True, False], [True, True], [True, False]) == {"ft_fixed": 0, "both_fixed": 0}
    assert M.rec2ftp_counts([True] * 4, [False] * 4, [True] * 4) == {"ft_fixed": 0, "both_fixed": 0}


def test_count_ratio_and_its_bootstrap():
    assert M.count_ratio([True, False, False], [True, True, False]) == 0.5
    assert M.count_ratio([False, False], [False, False]) is None
    assert M.count_ratio_bootstrap_ci([False, False], [False, False]) is None
    assert M.count_ratio_bootstrap_ci([True, True], [True, True], n_resamples=50) == [1.0, 1.0]
    with pytest.raises(ValueError, match="numerator.*among the denominator"):
        M.count_ratio([True, True], [True, False])
    with pytest.raises(ValueError, match="numerator"):
        M.count_ratio([True], [True, False])


# ---------------------------------------------------------------- SimAOU

def _q1l1(v):
    return np.array(v, dtype=float).reshape(1, 1, -1)


def test_simaou_hand_example_normalized_and_not():
    h_zsl, h_icl, h_ft = _q1l1([1, 0]), _q1l1([0, 2]), _q1l1([3, 3])
    # Normalised: zsl=(1,0), icl=(0,1), ft=(1,1)/sqrt2.
    # u_icl=(-1,1), u_ft=(1/sqrt2-1, 1/sqrt2); dot=1, |u_icl|=sqrt2, |u_ft|=sqrt(2-sqrt2)
    # cos = 1/sqrt(4-2 sqrt2) = cos(pi/8).
    got = M.simaou_scores(h_zsl, h_icl, h_ft)
    assert got.shape == (1, 1)
    assert got[0, 0] == pytest.approx(math.cos(math.pi / 8), abs=1e-14)
    # Unnormalised: u_icl=(-1,2), u_ft=(2,3); dot=4, norms sqrt5, sqrt13 -> 4/sqrt65.
    raw = M.simaou_scores(h_zsl, h_icl, h_ft, normalize=False)
    assert raw[0, 0] == pytest.approx(4 / math.sqrt(65), abs=1e-14)


def test_simaou_identical_updates_give_one_and_zero_update_gives_zero():
    rng = np.random.default_rng(0)
    h_zsl = rng.normal(size=(4, 3, 8))
    h_icl = rng.normal(size=(4, 3, 8))
    np.testing.assert_allclose(M.simaou_scores(h_zsl, h_icl, h_icl), 1.0, atol=1e-12)
    np.testing.assert_allclose(M.simaou_scores(h_zsl, h_icl, h_icl, normalize=False), 1.0, atol=1e-12)
    # ICL changes nothing: the update is the zero vector, cosine defined as 0.
    assert np.all(M.simaou_scores(h_zsl, h_zsl, h_icl) == 0.0)


def test_simaou_shape_mismatch_names_argument():
    with pytest.raises(ValueError, match=r"`h_ft` has shape \(1, 1, 3\)"):
        M.simaou_scores(np.zeros((1, 1, 2)), np.zeros((1, 1, 2)), np.zeros((1, 1, 3)))
    with pytest.raises(ValueError, match="h_icl.*3 dimensions"):
        M.simaou_scores(np.zeros((1, 1, 2)), np.zeros((1, 2)), np.zeros((1, 1, 2)))
    with pytest.raises(ValueError, match="NaN"):
        M.simaou_scores(np.zeros((1, 1, 2)), np.full((1, 1, 2), np.nan), np.zeros((1, 1, 2)))


def test_simaou_random_baseline_hand_example_and_determinism():
    h_zsl, h_icl = _q1l1([1, 0]), _q1l1([0, 2])
    r = np.random.default_rng(7).random((1, 1, 2))[0, 0]
    # u_icl = (-1, 1) after normalisation.
    expected = (r[1] - r[0]) / (SQRT2 * np.linalg.norm(r))
    assert M.simaou_random_scores(h_zsl, h_icl, seed=7)[0, 0] == pytest.approx(expected, abs=1e-14)
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(50, 4, 16)), rng.normal(size=(50, 4, 16))
    s = M.simaou_random_scores(a, b, seed=3)
    assert s.shape == (50, 4)
    np.testing.assert_array_equal(s, M.simaou_random_scores(a, b, seed=3))
    assert not np.array_equal(s, M.simaou_random_scores(a, b, seed=4))
    # Updates with no preferred direction: about 0 on average.
    assert abs(s.mean()) < 0.05


# ---------------------------------------------------------------- SimAM

def test_simam_hand_example():
    # One query, one layer, two heads, T_q = 2.
    m_zsl = [np.array([[[1, 0], [1, 1]]], dtype=float)]
    m_icl = [np.array([[[1, 1], [2, 2]]], dtype=float)]
    m_ft = [np.array([[[0, 1], [1, -1]]], dtype=float)]
    # head 0: before cos((1,1),(1,0)) = 1/sqrt2; after cos((1,1),(0,1)) = 1/sqrt2;
    #         delta cos((0,1),(-1,1)) = 1/sqrt2
    # head 1: before cos((2,2),(1,1)) = 1;  after cos((2,2),(1,-1)) = 0;
    #         delta cos((1,1),(0,-2)) = -1/sqrt2
    got = M.simam_scores(m_zsl, m_icl, m_ft)
    assert set(got) == {"before", "after", "delta"}
    assert got["before"][0, 0] == pytest.approx((1 / SQRT2 + 1) / 2, abs=1e-14)
    assert got["after"][0, 0] == pytest.approx(1 / (2 * SQRT2), abs=1e-14)
    assert got["delta"][0, 0] == pytest.approx(0.0, abs=1e-14)


def test_simam_queries_of_different_lengths():
    rng = np.random.default_rng(0)
    lens = [3, 5, 4]
    m_zsl = [rng.normal(size=(2, 4, t)) for t in lens]
    m_icl = [rng.normal(size=(2, 4, t)) for t in lens]
    got = M.simam_scores(m_zsl, m_icl, m_icl)
    assert got["after"].shape == (3, 2)
    np.testing.assert_allclose(got["after"], 1.0, atol=1e-12)
    np.testing.assert_allclose(got["delta"], 1.0, atol=1e-12)


def test_simam_bad_input():
    a = [np.zeros((2, 4, 3))]
    with pytest.raises(ValueError, match=r"`m_ft\[0\]` has shape \(2, 4, 5\)"):
        M.simam_scores(a, a, [np.zeros((2, 4, 5))])
    with pytest.raises(ValueError, match="m_icl.*2 queries"):
        M.simam_scores(a, a * 2, a)
    with pytest.raises(ValueError, match="empty"):
        M.simam_scores([], [], [])
    with pytest.raises(TypeError, match="m_zsl"):
        M.simam_scores("abc", a, a)


# ---------------------------------------------------------------- Kendall

def test_kendall_hand_example():
    # Layer 0: a = 1,2,3,4 vs b = 1,3,2,4: 6 pairs, only (2nd,3rd) discordant -> (5-1)/6.
    # Layer 1: a = 1,1,2 (one tie) vs b = 1,2,3: C=2, D=0; tau-b = 2/sqrt((3-1)(3-0)).
    # Layer 2: a constant: tau undefined -> 0.
    pairs = [
        ([1.0, 2, 3, 4], [1.0, 3, 2, 4]),
        ([1.0, 1, 2], [1.0, 2, 3]),
        ([5.0, 5, 5], [1.0, 2, 3]),
    ]
    # One query with one layer each (T_demo differs between the three cases).
    got = [M.kendall_scores([np.array([a])], [np.array([b])])[0, 0] for a, b in pairs]
    assert got[0] == pytest.approx(2 / 3, abs=1e-14)
    assert got[1] == pytest.approx(2 / math.sqrt(6), abs=1e-14)
    assert got[2] == 0.0


def test_kendall_identical_is_one_reversed_is_minus_one():
    rng = np.random.default_rng(2)
    m = [rng.normal(size=(3, 10)) for _ in range(4)]
    np.testing.assert_allclose(M.kendall_scores(m, m), 1.0)
    np.testing.assert_allclose(M.kendall_scores(m, [-x for x in m]), -1.0)
    assert M.kendall_scores(m, m).shape == (4, 3)


def test_kendall_random_baseline_near_zero():
    rng = np.random.default_rng(4)
    m = [rng.normal(size=(2, 30)) for _ in range(300)]
    s = M.kendall_random_scores(m, seed=0)
    assert s.shape == (300, 2)
    assert abs(s.mean()) < 0.02
    np.testing.assert_array_equal(s, M.kendall_random_scores(m, seed=0))


def test_kendall_shape_mismatch():
    with pytest.raises(ValueError, match="m_ft_demo"):
        M.kendall_scores([np.zeros((2, 5))], [np.zeros((2, 4))])


# ---------------------------------------------------------------- summaries

def test_summarize_layers_hand_example():
    # per layer: (1+3)/2 = 2, (2+6)/2 = 4; mean 3.
    out = M.summarize_layers([[1.0, 2.0], [3.0, 6.0]])
    assert out == {"per_layer": [2.0, 4.0], "mean": 3.0}
    assert all(type(v) is float for v in out["per_layer"]) and type(out["mean"]) is float
    with pytest.raises(ValueError, match="scores"):
        M.summarize_layers([1.0, 2.0])


def test_bootstrap_ci_contains_mean_and_is_deterministic():
    rng = np.random.default_rng(0)
    x = rng.normal(loc=1.0, scale=2.0, size=400)
    ci = M.bootstrap_ci(x, seed=1)
    assert ci[0] < x.mean() < ci[1]
    assert ci == M.bootstrap_ci(x, seed=1)
    assert ci != M.bootstrap_ci(x, seed=2)
    # Close to the normal-theory interval mean +- 1.96 s/sqrt(n) (half-width about 0.196).
    half = 1.96 * x.std(ddof=1) / math.sqrt(len(x))
    assert (ci[1] - ci[0]) / 2 == pytest.approx(half, rel=0.15)
    # A wider confidence gives a wider interval.
    wide = M.bootstrap_ci(x, seed=1, confidence=0.99)
    assert wide[0] <= ci[0] and wide[1] >= ci[1]


def test_bootstrap_ci_bools_single_and_constant():
    ci = M.bootstrap_ci([True, False, True, True], seed=0)
    assert 0.0 <= ci[0] <= 0.75 <= ci[1] <= 1.0
    assert M.bootstrap_ci([0.3]) == [0.3, 0.3]
    assert M.bootstrap_ci([2.0] * 10) == [2.0, 2.0]


def test_bootstrap_ci_bad_input():
    with pytest.raises(ValueError, match="empty"):
        M.bootstrap_ci([])
    with pytest.raises(ValueError, match="confidence"):
        M.bootstrap_ci([1.0, 2.0], confidence=95)
    with pytest.raises(ValueError, match="n_resamples"):
        M.bootstrap_ci([1.0, 2.0], n_resamples=0)
    with pytest.raises(ValueError, match="NaN"):
        M.bootstrap_ci([1.0, float("nan")])


# ---------------------------------------------------------------- example level and top-k recall

def test_example_mass_is_softmax_mass_per_demonstration():
    """Tokens of demonstrations 0, 0, 1 with scores 0, 0, log 2: softmax 1/4, 1/4, 1/2, so each
    demonstration holds half the mass; raw sums (0 and log 2) would rank them apart."""
    mass, seen = M.example_mass([[[0.0, 0.0, math.log(2.0)]]], owner=[0, 0, 1])
    np.testing.assert_allclose(mass[0], [[0.5, 0.5]])
    assert seen[0].tolist() == [[True, True]]


def test_example_mass_leaves_invisible_tokens_and_demonstrations_out():
    """The softmax runs over the visible tokens only; a demonstration without one gets no mass."""
    visible = [[[False, True, True, True]]]
    mass, seen = M.example_mass([[[5.0, 1.0, 1.0, 1.0]]], owner=[0, 1, 1, 2], visible=visible)
    np.testing.assert_allclose(mass[0], [[0.0, 2 / 3, 1 / 3]])
    assert seen[0].tolist() == [[False, True, True]]
    none, nothing = M.example_mass([[[1.0, 2.0]]], owner=[0, 1], visible=[[[False, False]]])
    assert none[0].tolist() == [[0.0, 0.0]] and nothing[0].tolist() == [[False, False]]


def test_example_level_kendall_on_mass_differs_from_raw_sums():
    """A long demonstration of low scores against a short one of high scores: the mass ranks by
    attention, a raw sum by length."""
    scores = [[[1.0, 1.0, 1.0, 1.0, 3.0, 0.0]]]  # demo 0: four tokens at 1; demo 1: 3; demo 2: 0
    owner = [0, 0, 0, 0, 1, 2]
    mass, seen = M.example_mass(scores, owner)
    e = math.e
    z = 4 * e + e**3 + 1
    np.testing.assert_allclose(mass[0], [[4 * e / z, e**3 / z, 1 / z]])
    assert mass[0][0].argsort().tolist() == [2, 0, 1]  # mass: demo 1 > demo 0 > demo 2 (a raw sum puts demo 0 first)


def test_topk_recall_hand_example_and_degenerate_cases():
    a = [[[3.0, 1.0, 2.0, 0.0]]]
    b = [[[0.0, 1.0, 2.0, 3.0]]]
    assert M.topk_recall(a, b, k=2).tolist() == [[0.5]]  # {0, 2} and {3, 2} share one of two
    assert M.topk_recall(a, a, k=3).tolist() == [[1.0]]
    assert M.topk_recall(a, b, k=10).tolist() == [[1.0]]  # k capped at the 4 items: trivially all
    visible = [[[True, False, False, False]]]
    assert M.topk_recall(a, b, k=2, visible=visible).tolist() == [[1.0]]  # one visible item
    assert M.topk_recall(a, b, k=2, visible=[[[False] * 4]]).tolist() == [[0.0]]  # none visible
    with pytest.raises(ValueError, match="`k` must be a positive integer"):
        M.topk_recall(a, b, k=0)


def test_topk_recall_ties_rank_the_earlier_item_first():
    assert M.topk_recall([[[1.0, 1.0, 0.0]]], [[[0.0, 1.0, 0.0]]], k=1).tolist() == [[0.0]]  # {0} vs {1}


def test_topk_recall_random_baseline_is_about_k_over_n():
    rng = np.random.default_rng(0)
    ft = [rng.random((3, 200)) for _ in range(40)]
    values = np.stack([M.topk_recall_random(ft[q:q + 1], k=20, seed=1000 + q)[0] for q in range(40)])
    assert abs(values.mean() - 20 / 200) < 0.03
    again = np.stack([M.topk_recall_random(ft[q:q + 1], k=20, seed=1000 + q)[0] for q in range(40)])
    assert np.array_equal(values, again)
