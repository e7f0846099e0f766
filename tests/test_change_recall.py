"""ChangeRecall (Deutch et al. 2024) against hand-computed cases of its definition in docs/analysis.md."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hf_metaopt.analysis.change_recall import (
    change_indicators, change_recall, change_recall_bootstrap_ci, change_recall_counts,
)


def test_hand_example_with_three_labels():
    # query:      0  1  2  3  4  5
    zsl = [0, 0, 0, 0, 1, 2]
    icl = [1, 1, 0, 2, 1, 0]
    ft = [1, 0, 1, 1, 1, 0]
    # Changed by ICL or FT: 0 (both -> 1), 1 (ICL), 2 (FT), 3 (ICL -> 2, FT -> 1), 5 (both -> 0); 4 by neither.
    # Both changed, to the same label: 0 and 5. Query 3 is changed by both, to different labels.
    assert change_recall(zsl, icl, ft) == pytest.approx(2 / 5, abs=1e-15)
    assert change_recall_counts(zsl, icl, ft) == {"changed": 5, "same_change": 2, "icl_changed": 4, "ft_changed": 4}
    same, changed = change_indicators(zsl, icl, ft)
    assert changed.tolist() == [True, True, True, True, False, True]
    assert same.tolist() == [True, False, False, False, False, True]


def test_no_query_changed_is_undefined():
    zsl = [1, 0, 1]
    assert change_recall(zsl, zsl, zsl) is None
    assert change_recall_bootstrap_ci(zsl, zsl, zsl) is None
    assert change_recall_counts(zsl, zsl, zsl) == {"changed": 0, "same_change": 0, "icl_changed": 0, "ft_changed": 0}


def test_all_labels_one_class_and_one_route_changing_alone():
    # Every route answers one class: nothing changes.
    assert change_recall([2] * 4, [2] * 4, [2] * 4) is None
    # ZSL always 0, ICL always 1, FT never moves: every change is ICL's alone.
    assert change_recall([0] * 4, [1] * 4, [0] * 4) == 0.0
    # Both move every query to the same class: 1.
    assert change_recall([0] * 4, [1] * 4, [1] * 4) == 1.0


def test_with_two_labels_both_changing_means_the_same_change():
    rng = np.random.default_rng(0)
    zsl, icl, ft = (rng.integers(0, 2, size=50) for _ in range(3))
    both = (icl != zsl) & (ft != zsl)
    assert change_recall(zsl, icl, ft) == pytest.approx(both.sum() / ((icl != zsl) | (ft != zsl)).sum(), abs=1e-15)


def test_bootstrap_interval_contains_the_value_and_is_seeded():
    rng = np.random.default_rng(1)
    zsl, icl, ft = (rng.integers(0, 3, size=60) for _ in range(3))
    value = change_recall(zsl, icl, ft)
    ci = change_recall_bootstrap_ci(zsl, icl, ft, seed=4)
    assert ci[0] <= value <= ci[1] and 0.0 <= ci[0] < ci[1] <= 1.0
    assert ci == change_recall_bootstrap_ci(zsl, icl, ft, seed=4)
    assert change_recall_bootstrap_ci([0, 0], [1, 1], [1, 1], n_resamples=20) == [1.0, 1.0]


def test_tensors_and_integral_floats_are_label_indices():
    assert change_recall(torch.tensor([0, 0]), torch.tensor([1, 0]), torch.tensor([1, 1])) == 0.5
    assert change_recall([0.0, 0.0], [1.0, 0.0], [1.0, 1.0]) == 0.5


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="pred_ft.*shape"):
        change_recall([0, 1], [0, 1], [0])
    with pytest.raises(ValueError, match="pred_icl.*integers"):
        change_recall([0, 1], [0.5, 1], [0, 1])
    with pytest.raises(ValueError, match="pred_zsl.*1 dimension"):
        change_recall([[0, 1]], [0, 1], [0, 1])
