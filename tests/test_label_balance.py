"""Majority-label bias: the balanced demonstration draw, report["label_counts"] and its notes."""

from __future__ import annotations

from collections import Counter

import datasets
import pytest

from hf_metaopt import tasks
from hf_metaopt.analysis.label_balance import (
    count_labels, demonstration_notes, label_balance_notes, majority_notes,
)
from hf_metaopt.tasks.balance import balanced_draw
from hf_metaopt.tasks.spec import TaskSpec

WORDS2 = (" Negative", " Positive")
WORDS3 = (" World", " Sports", " Business")


def _toy_task(n_labels: int, n: int = 90, skew: int = 0) -> tuple[TaskSpec, dict]:
    """A task whose train split holds ``n`` rows, label ``i % n_labels`` (plus ``skew`` extra rows of label 0)."""
    labels = [i % n_labels for i in range(n)] + [0] * skew
    train = datasets.Dataset.from_dict({"text": [f"review {i}" for i in range(len(labels))], "label": labels})
    test = datasets.Dataset.from_dict({"text": ["q0", "q1"], "label": [0, 1]})
    words = WORDS2 if n_labels == 2 else WORDS3
    spec = TaskSpec(name=f"toy{n_labels}", template="Review: {text} Sentiment:", label_words=words, loader=lambda: {})
    return spec, {"train": train, "dev": test, "test": test}


def _counts(demos, n_labels):
    return count_labels([d["label"] for d in demos], n_labels)


@pytest.mark.parametrize("n_labels", [2, 3])
@pytest.mark.parametrize("k", [4, 5, 32])
def test_balanced_draw_counts_differ_by_at_most_one(n_labels, k):
    spec, data = _toy_task(n_labels, skew=60)  # the train split is mostly label 0
    chosen = tasks.select_examples(spec, k, 2, seed=1, data=data, balanced=True)
    counts = _counts(chosen.demonstrations, n_labels)
    assert sum(counts) == k and max(counts) - min(counts) <= 1
    assert not chosen.notes
    # Every prefix stays balanced: dropping demonstrations from the end (context, max_demonstrations) keeps it so.
    for end in range(1, k + 1):
        prefix = _counts(chosen.demonstrations[:end], n_labels)
        assert max(prefix) - min(prefix) <= 1, end
    # Per label, the first examples of the seed-shuffled train split, in that order.
    order = data["train"].shuffle(seed=1)["text"]
    for label in range(n_labels):
        texts = [d["text"] for d in chosen.demonstrations if d["label"] == label]
        assert texts == [t for t, lab in zip(order, data["train"].shuffle(seed=1)["label"]) if lab == label][: len(texts)]


def test_balanced_draw_is_seeded():
    spec, data = _toy_task(3)
    draw = lambda seed: [d["idx"] for d in tasks.select_examples(spec, 12, 2, seed, data=data, balanced=True).demonstrations]  # noqa: E731
    assert draw(1) == draw(1)
    assert draw(1) != draw(2)
    # the labels' order within the rounds is seeded too, not always label 0 first
    labels = [[data["train"][i]["label"] for i in draw(s)] for s in range(1, 6)]
    assert len({tuple(lab[:3]) for lab in labels}) > 1


def test_the_default_draw_is_the_papers():
    spec, data = _toy_task(2, skew=60)
    chosen = tasks.select_examples(spec, 8, 2, seed=1, data=data)
    assert [d["text"] for d in chosen.demonstrations] == data["train"].shuffle(seed=1).select(range(8))["text"]
    assert chosen.demonstrations == tasks.select_examples(spec, 8, 2, seed=1, data=data, balanced=False).demonstrations


def test_a_label_with_too_few_examples_gives_all_it_has_and_says_so():
    labels = [0] * 20 + [1] * 3
    positions, notes = balanced_draw(labels, 10, WORDS2, seed=1)
    assert Counter(labels[p] for p in positions) == {0: 7, 1: 3}
    assert len(notes) == 1 and "' Positive' 3" in notes[0] and "n_demonstrations=6 or fewer" in notes[0]
    positions, notes = balanced_draw([0, 0, 0, 2], 4, WORDS3, seed=1)
    assert sorted(positions) == [0, 1, 2, 3] and "' Sports' 0" in notes[0] and "add examples of it" in notes[0]
    # k = 5 from 2 + many: 2 + 3 is as balanced as it gets, no note
    assert balanced_draw([1, 1] + [0] * 9, 5, WORDS2, seed=1)[1] == []


def test_user_demonstrations_in_the_given_order_per_label():
    labels = [0, 0, 0, 0, 1, 0, 1]
    positions, _ = balanced_draw(labels, 4, WORDS2, seed=3)
    assert sorted(positions) == [0, 1, 4, 6]
    assert [p for p in positions if labels[p] == 0] == [0, 1]


# ------------------------------------------------------------------------ notes


def test_majority_notes_name_the_route_the_label_and_the_share():
    gold = [32, 32]
    notes = majority_notes({"zsl": [30, 34], "icl": [63, 1], "ft": [51, 13]}, gold, WORDS2)  # FT 51 of 64 < 80%
    assert len(notes) == 1
    assert notes[0].startswith("ICL answers ' Negative' for 63 of 64 queries (98%")
    assert "majority-label bias" in notes[0] and "--balanced-demonstrations" in notes[0]
    # just above 80% is noted, exactly 80% is not
    assert majority_notes({"ft": [41, 9]}, [25, 25], WORDS2)[0].startswith("FT answers ' Negative' for 41 of 50")
    assert majority_notes({"ft": [40, 10]}, [25, 25], WORDS2) == []
    zsl = majority_notes({"zsl": [0, 0, 10]}, [4, 3, 3], WORDS3)[0]
    assert zsl.startswith("ZSL answers ' Business'") and "prior" in zsl and "balanced_demonstrations" not in zsl
    assert "even with balanced demonstrations" in majority_notes({"icl": [10, 0]}, [5, 5], WORDS2, balanced=True)[0]


@pytest.mark.parametrize("counts, noted", [
    ([20, 12], True),       # the 32-demonstration draw
    ([16, 16], False),
    ([3, 2], False),        # k = 5: as balanced as it gets
    ([3, 1], True),
    ([18, 14], False),      # 18 <= 1.5 x 14
    ([11, 11, 10], False),
    ([2, 1, 0], True),      # a label absent while another occurs twice
    ([1, 1, 0], False),     # k = 2 < 3 labels: one is necessarily absent
])
def test_demonstration_imbalance_rule(counts, noted):
    words = WORDS2 if len(counts) == 2 else WORDS3
    notes = demonstration_notes(counts, words)
    assert bool(notes) == noted
    if noted:
        assert f"{words[0]!r} {counts[0]}" in notes[0] and "--balanced-demonstrations" in notes[0]


def test_label_balance_notes_cover_demonstrations_then_routes():
    counts = {"demonstrations": [20, 12], "gold": [30, 34],
              "predictions": {"zsl": [40, 24], "icl": [63, 1], "ft": [30, 34]}}
    notes = label_balance_notes(counts, WORDS2)
    assert len(notes) == 2 and "label-imbalanced" in notes[0] and notes[1].startswith("ICL answers")


# ------------------------------------------------------------------------ the report


@pytest.fixture(scope="module")
def analyzer(tiny_tokenizer_dir):
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM, pipeline

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(
        num_hidden_layers=2, hidden_size=32, num_attention_heads=4, num_key_value_heads=2, intermediate_size=64,
        vocab_size=400, max_position_embeddings=2048, bos_token_id=0, eos_token_id=0,
    ))
    return pipeline("icl-analysis", model=model, tokenizer=AutoTokenizer.from_pretrained(tiny_tokenizer_dir))


# Six Negative, then two Positive: the unbalanced draw an imbalanced train split gives.
SKEWED = [{"text": t, "label": 0} for t in ("dull", "badly written", "a tedious mess", "boring", "a waste", "overlong")] + [
    {"text": "a gripping film", "label": 1}, {"text": "the cast is great", "label": 1}]
QUERIES = [{"text": "beautifully acted", "label": 1}, {"text": "nothing to say", "label": 0}, {"text": "clever plot", "label": 1}]
PROMPT = dict(template="Review: {text} Sentiment:", label_words=list(WORDS2), learning_rate=0.1, n_bootstrap=20)


def _expected_counts(report: dict, demonstrations: list[dict]) -> dict:
    used = [demonstrations[i]["label"] for i in report["config"]["demonstrations_used"]]
    return {
        "demonstrations": count_labels(used, 2),
        "predictions": {route: count_labels(report["predictions"][route], 2) for route in ("zsl", "icl", "ft")},
        "gold": count_labels(report["labels"], 2),
    }


def test_report_holds_the_label_counts_and_the_imbalance_note(analyzer):
    result = analyzer(SKEWED, QUERIES, **PROMPT)
    report = result.to_dict()
    assert report["label_counts"] == _expected_counts(report, SKEWED)
    assert report["label_counts"]["demonstrations"] == [6, 2] and not report["config"]["balanced_demonstrations"]
    assert any("label-imbalanced (' Negative' 6, ' Positive' 2)" in n for n in report["notes"])
    md = result.to_markdown(plots_dir=None)
    assert "## Label balance" in md and "| ' Negative' | 6 |" in md


def test_pipeline_balances_given_demonstrations(analyzer):
    report = analyzer(SKEWED, QUERIES, balanced_demonstrations=True, n_demonstrations=4, seed=2, **PROMPT).to_dict()
    assert report["config"]["balanced_demonstrations"] and report["config"]["n_demonstrations"] == 4
    used = report["config"]["demonstrations_used"]
    assert sorted(used) == [0, 1, 6, 7]  # per label the first given
    assert report["label_counts"] == _expected_counts(report, SKEWED)
    assert report["label_counts"]["demonstrations"] == [2, 2]
    assert not any("label-imbalanced" in n for n in report["notes"])
