"""The shuffled-label control (docs/analysis.md, "Controls"): the labels permuted with their counts kept, and ICL and FT
of the control run on the same relabelled demonstrations (against the analysis of those demonstrations by hand)."""

from collections import Counter

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

from hf_metaopt.analysis import AnalysisOptions, PromptFormat, load_scores, run_analysis
from hf_metaopt.analysis.engine import CONTROL_KEYS
from hf_metaopt.analysis.shuffled_labels import relabelled, shuffle_summary, shuffled_labels

from toy_reviews import DEMOS, QUERIES, TEMPLATE, WORDS


def test_shuffled_labels_keep_the_counts_move_a_label_and_follow_the_seed():
    labels = [0, 0, 1, 2, 1, 0, 2, 2]
    for seed in range(20):
        shuffled = shuffled_labels(labels, seed)
        assert Counter(shuffled) == Counter(labels) and shuffled != labels
        assert shuffled_labels(labels, seed) == shuffled
    assert len({tuple(shuffled_labels(labels, seed)) for seed in range(20)}) > 10  # other seeds, other permutations
    assert shuffled_labels([1, 0], 0) == [0, 1]  # the only permutation that moves a label
    assert shuffled_labels([2, 2, 2], 5) == [2, 2, 2]  # one label: nothing to move
    with pytest.raises(ValueError, match="at least one demonstration"):
        shuffled_labels([], 0)


def test_relabelled_copies_and_the_summary_counts_the_changes():
    demos = [{"text": "a", "label": 0}, {"text": "b", "label": 1}, {"text": "c", "label": 1}]
    assert relabelled(demos, [1, 1, 0]) == [{"text": "a", "label": 1}, {"text": "b", "label": 1}, {"text": "c", "label": 0}]
    assert demos[0]["label"] == 0  # copies
    assert shuffle_summary([0, 1, 1], [1, 1, 0]) == {"labels": [1, 1, 0], "changed": 2, "n_demonstrations": 3}
    with pytest.raises(ValueError, match="3 labels for 2 demonstrations"):
        relabelled(demos[:2], [0, 1, 1])


def test_the_control_reports_its_demonstrations_and_every_control_key(controlled_run):
    run_dir, report, options = controlled_run
    assert list(report["controls"]) == ["untrained", "shuffled_labels"] and options.control == "untrained+shuffled_labels"
    control = report["controls"]["shuffled_labels"]
    assert set(CONTROL_KEYS) | {"label_counts", "finetuning", "shuffle"} == set(control)
    original = [d["label"] for d in DEMOS]
    expected = shuffled_labels(original, options.seed)
    assert control["shuffle"] == {"labels": expected, "changed": sum(a != b for a, b in zip(original, expected)),
                                  "n_demonstrations": 4}
    assert control["shuffle"]["changed"] > 0
    assert control["label_counts"]["demonstrations"] == report["label_counts"]["demonstrations"]  # the counts unchanged
    assert control["finetuning"]["stability"]["checked"] is False
    scores = load_scores(run_dir)
    assert scores.meta["controls"] == ["untrained", "shuffled_labels"]
    assert {"simaou", "kendall_token", "kl_icl_ft"} <= set(scores.metrics("shuffled_labels"))
    # The per-query rows give the control's means, and its ZSL is the pretrained model's (reused, the same model).
    assert scores.per_query("simaou", control="shuffled_labels").mean() == pytest.approx(control["simaou"]["mean"], abs=1e-15)
    assert np.array_equal(scores["control/shuffled_labels/predictions/zsl"], scores["predictions/zsl"])


def test_icl_and_ft_of_the_control_both_use_the_shuffled_demonstrations(controlled_run, tiny_tokenizer_dir):
    """The control equals, number for number, the plain analysis of the relabelled demonstrations: prompt and training alike."""
    run_dir, report, options = controlled_run
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=400, n_positions=256, bos_token_id=0,
                                       eos_token_id=0)).eval()
    demos = relabelled(DEMOS, report["controls"]["shuffled_labels"]["shuffle"]["labels"])
    by_hand = run_analysis(model, AutoTokenizer.from_pretrained(tiny_tokenizer_dir), demos, QUERIES,
                           PromptFormat(TEMPLATE, tuple(WORDS), "\n"), AnalysisOptions.from_kwargs(options, control=None)).report
    control, scores = report["controls"]["shuffled_labels"], load_scores(run_dir)
    assert control["finetuning"]["loss_per_step"] == by_hand["finetuning"]["loss_per_step"] != report["finetuning"]["loss_per_step"]
    for route in ("icl", "ft"):
        assert scores[f"control/shuffled_labels/predictions/{route}"].tolist() == by_hand["predictions"][route]
        assert np.array_equal(scores[f"control/shuffled_labels/logprobs/{route}"], by_hand.scores[f"logprobs/{route}"])
    assert control["accuracy"] == dict(by_hand["accuracy"])
    assert control["simaou"]["mean"] == by_hand["simaou"]["mean"] != report["simaou"]["mean"]
    assert control["kendall"]["mean"] == by_hand["kendall"]["mean"]
    assert control["label_shift"]["kl_icl_ft"]["mean"] == by_hand["label_shift"]["kl_icl_ft"]["mean"]
