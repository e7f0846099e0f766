"""Dev-split grid search: the criterion, ties, and grid parsing."""

from __future__ import annotations

import pytest

from hf_metaopt.analysis.selection import PAPER_LEARNING_RATES, parse_grid, select_on_dev


def test_paper_grid_is_the_papers_36_rates():
    assert len(PAPER_LEARNING_RATES) == 36
    assert PAPER_LEARNING_RATES[0] == 0.0001 and PAPER_LEARNING_RATES[-1] == 0.9
    assert 0.003 in PAPER_LEARNING_RATES and 0.07 in PAPER_LEARNING_RATES
    assert parse_grid("paper") == list(PAPER_LEARNING_RATES)


def test_chooses_by_ft_dev_accuracy_averaged_over_seeds():
    # lr 0.01 has the single best run (seed 2) but the worse mean; lr 0.001 wins on the mean.
    table = {(0.001, 1): 0.70, (0.001, 2): 0.72, (0.01, 1): 0.40, (0.01, 2): 0.80}
    calls = []

    def evaluate(lr, seed):
        calls.append((lr, seed))
        return {"zsl": 0.5, "icl": 0.9, "ft": table[(lr, seed)]}

    result = select_on_dev(evaluate, [0.001, 0.01], [1, 2], progress=False)
    assert calls == list(table)
    assert result["chosen"]["learning_rate"] == 0.001 and result["chosen"]["seed"] == 2
    assert result["chosen"]["ft_mean_over_seeds"] == pytest.approx(0.71)
    assert len(result["rows"]) == 4 and result["split"] == "dev"
    assert "dev" in result["criterion"]


def test_ties_prefer_the_smaller_rate_and_seed():
    result = select_on_dev(lambda lr, s: {"zsl": 0, "icl": 0, "ft": 0.5}, [0.1, 0.01], [3, 2], progress=False)
    assert result["chosen"]["learning_rate"] == 0.01 and result["chosen"]["seed"] == 2


def test_icl_accuracy_does_not_influence_the_choice():
    result = select_on_dev(
        lambda lr, s: {"zsl": 0.5, "icl": 1.0 if lr == 0.1 else 0.0, "ft": 0.6 if lr == 0.01 else 0.5}, [0.01, 0.1], [1], progress=False
    )
    assert result["chosen"]["learning_rate"] == 0.01


@pytest.mark.parametrize("text, match", [("", "empty"), ("1e-3,abc", "comma-separated"), ("0,1e-3", "positive"), ("1e-3,1e-3", "repeated")])
def test_parse_grid_bad_input(text, match):
    with pytest.raises(ValueError, match=match):
        parse_grid(text)


def test_parse_seed_grid():
    assert parse_grid("1, 2,3", "--seed-grid", int) == [1, 2, 3]
    with pytest.raises(ValueError, match="--seed-grid"):
        parse_grid("1.5", "--seed-grid", int)
