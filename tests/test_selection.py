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


class FakeInference:
    """Stands in for hf_metaopt.analysis.inference: records calls, predicts by rule."""

    def __init__(self):
        self.calls = []

    def predict(self, model, tokenizer, queries, prompt, options=None, demonstrations=None):
        self.calls.append(("predict", "ft" if isinstance(model, dict) else ("icl" if demonstrations else "zsl")))
        if isinstance(model, dict):
            return [0 if model["lr"] >= 0.01 else 1 for _ in queries], []
        return ([q["label"] for q in queries] if demonstrations else [1 for _ in queries]), []

    def finetune(self, model, tokenizer, demonstrations, prompt, options):
        self.calls.append(("finetune", options.learning_rate, options.seed, len(demonstrations)))
        return {"lr": options.learning_rate}


def test_dev_evaluator_scores_dev_queries_and_reuses_zsl_and_icl(monkeypatch):
    from hf_metaopt import tasks
    from hf_metaopt.analysis import AnalysisOptions, inference
    from hf_metaopt.analysis.selection import dev_evaluator

    spec = tasks.get_task("bbc_news")
    data = spec.load()
    fake = FakeInference()
    monkeypatch.setattr(inference, "predict", fake.predict)
    monkeypatch.setattr(inference, "finetune", fake.finetune)
    evaluate = dev_evaluator("model", "tokenizer", spec, AnalysisOptions(n_demonstrations=3, n_queries=50), data=data)
    _, dev_queries, _ = tasks.prepare(spec, 3, 50, seed=1, split="dev", data=data)
    share_0 = sum(q["label"] == 0 for q in dev_queries) / 50
    share_1 = sum(q["label"] == 1 for q in dev_queries) / 50
    assert evaluate(0.001, 1) == {"zsl": share_1, "icl": 1.0, "ft": share_1}
    assert evaluate(0.1, 1) == {"zsl": share_1, "icl": 1.0, "ft": share_0}
    evaluate(0.1, 2)
    kinds = [c[1] for c in fake.calls if c[0] == "predict"]
    assert kinds.count("zsl") == 1 and kinds.count("icl") == 2 and kinds.count("ft") == 3
    assert [c[1:] for c in fake.calls if c[0] == "finetune"] == [(0.001, 1, 3), (0.1, 1, 3), (0.1, 2, 3)]
    result = select_on_dev(evaluate, [0.001, 0.1], [1], progress=False)
    assert result["chosen"]["learning_rate"] == (0.1 if share_0 > share_1 else 0.001)
