"""The paired significance test over queries, against cases worked out by hand from docs/analysis.md."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from hf_metaopt.analysis.change_recall import change_indicators
from hf_metaopt.analysis.metrics import rec2ftp_indicators
from hf_metaopt.analysis.significance import paired_ratio_test, paired_test


def test_sign_flip_p_value_by_hand():
    # d = (1, 2, 3), mean 2. Of the 8 sign patterns only (+, +, +) reaches a mean of 2: p = 1/8.
    out = paired_test([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])
    assert out["exact"] and out["n_queries"] == 3
    assert out["difference"] == 2.0 and out["p_value"] == 1 / 8
    # d = (3, -1), mean 1: the patterns give means 1, 2, -1, -2; two of four reach 1.
    assert paired_test([3.0, 0.0], [0.0, 1.0])["p_value"] == 0.5
    # The same by brute force on a random case: p = #{s: mean(s * d) >= mean(d)} / 2^Q.
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=8), rng.normal(size=8)
    d = a - b
    by_hand = np.mean([np.mean(np.array(s) * d) >= d.mean() - 1e-12 for s in itertools.product((1, -1), repeat=8)])
    assert paired_test(a, b)["p_value"] == pytest.approx(by_hand, abs=1e-15)


def test_constant_positive_difference_is_significant_and_identical_values_are_not():
    values = np.linspace(0.2, 0.6, 30)
    drawn = paired_test(values + 0.05, values, n_resamples=1000, seed=1)
    assert not drawn["exact"] and drawn["p_value"] == 1 / 1001 < 0.01  # only the observed pattern reaches it
    assert drawn["difference"] == pytest.approx(0.05) and drawn["interval"] == [pytest.approx(0.05), pytest.approx(0.05)]
    assert paired_test(np.full(7, 0.3), np.full(7, 0.1))["p_value"] == 2**-7  # exact: 128 patterns
    same = paired_test(values, values)
    assert same["difference"] == 0.0 and same["p_value"] == 1.0  # every pattern ties: p = 1 by definition


def test_a_negative_difference_gives_a_large_p_value_and_the_interval_brackets_it():
    rng = np.random.default_rng(2)
    control = rng.random(40)
    out = paired_test(control - 0.1 + rng.normal(0, 0.02, 40), control, seed=3)
    assert out["p_value"] > 0.99 and out["interval"][0] <= out["difference"] <= out["interval"][1] < 0


def test_seeded_and_deterministic():
    rng = np.random.default_rng(4)
    a, b = rng.random(50), rng.random(50)
    assert paired_test(a, b, seed=7) == paired_test(a, b, seed=7)
    assert paired_test(a, b, seed=7)["p_value"] != paired_test(a, b, seed=8)["p_value"]


def test_ratio_test_by_hand():
    # Pretrained: queries 0 and 1 in the denominator, query 0 in the numerator (1/2); control: 0/2.
    # Swapping the arms of query 0 gives -1/2, of query 1 changes nothing: 2 of 4 patterns reach 1/2.
    out = paired_ratio_test([True, False], [True, True], [False, False], [True, True])
    assert out["difference"] == 0.5 and out["p_value"] == 0.5 and out["exact"]
    # Patterns that leave a denominator empty are left out: the control's only query in the denominator
    # is query 1, the pretrained arm's query 0; swapping exactly one of them empties one side.
    # Valid patterns: none swapped (1/1 - 0/1 = 1) and both swapped (0/1 - 1/1 = -1): p = 1/2.
    out = paired_ratio_test([True, False], [True, False], [False, False], [False, True])
    assert out["difference"] == 1.0 and out["p_value"] == 0.5


def test_ratio_test_on_rec2ftp_and_change_recall():
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0] * 2)
    zsl = np.zeros(16, dtype=int)
    icl, ft = labels.copy(), labels.copy()  # the pretrained model: ICL fixes every query FT fixes
    control_icl = np.zeros(16, dtype=int)  # the control's ICL fixes none
    a = rec2ftp_indicators(zsl == labels, icl == labels, ft == labels)
    b = rec2ftp_indicators(zsl == labels, control_icl == labels, ft == labels)
    out = paired_ratio_test(*a, *b, n_resamples=2000, seed=0)
    # 8 queries differ between the arms (1 vs 0 in the numerator); under H0 each swap is a coin flip.
    assert out["difference"] == 1.0 and out["p_value"] < 0.01 and out["interval"] == [1.0, 1.0]
    same = paired_ratio_test(*change_indicators(zsl, icl, ft), *change_indicators(zsl, icl, ft))
    assert same["difference"] == 0.0 and same["p_value"] == 1.0
    undefined = paired_ratio_test(*change_indicators(zsl, zsl, zsl), *change_indicators(zsl, icl, ft))
    assert undefined["difference"] is None and undefined["p_value"] is None and undefined["interval"] is None


def test_bad_input_names_the_problem():
    with pytest.raises(ValueError, match="same queries"):
        paired_test([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="`values`.*NaN"):
        paired_test([1.0, float("nan")], [1.0, 2.0])
    with pytest.raises(ValueError, match="n_resamples"):
        paired_test([1.0], [0.0], n_resamples=0)
    with pytest.raises(ValueError, match="control_numerator.*among"):
        paired_ratio_test([True], [True], [True], [False])
    with pytest.raises(ValueError, match="same queries"):
        paired_ratio_test([True], [True], [True, False], [True, False])
