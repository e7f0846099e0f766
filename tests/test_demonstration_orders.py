"""Demonstration orders (docs/analysis.md, "Demonstration orders"): the orders, the reordered prefix, the spread and the
agreement from their definitions, and a run in two orders against the same analysis of the permuted demonstrations by hand."""

import copy
import math

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from hf_metaopt.analysis import AnalysisOptions, PromptFormat, run_analysis
from hf_metaopt.analysis.orders import ORDER_VALUES, demonstration_orders, orders_report, prediction_agreement, spread
from hf_metaopt.analysis.prompts import PromptEncoder

from toy_reviews import DEMOS, QUERIES, TEMPLATE, WORDS

PROMPT = PromptFormat(TEMPLATE, tuple(WORDS), "\n")
OPTIONS = dict(learning_rate=0.1, batch_size=2, n_bootstrap=20, seed=3)


def gpt2():
    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=400, n_positions=256, bos_token_id=0,
                                      eos_token_id=0)).eval()


def test_orders_are_distinct_seeded_permutations_with_the_drawn_order_first():
    orders = demonstration_orders(5, 4, seed=7)
    assert orders[0] == [0, 1, 2, 3, 4]
    assert all(sorted(o) == list(range(5)) for o in orders) and len({tuple(o) for o in orders}) == 4
    assert demonstration_orders(5, 4, seed=7) == orders  # the same seed, the same orders
    assert demonstration_orders(5, 4, seed=8)[1:] != orders[1:]  # another seed, others
    assert demonstration_orders(5, 6, seed=7)[:4] == orders  # more orders extend the list
    assert demonstration_orders(3, 6, seed=1)[0] == [0, 1, 2] and len({tuple(o) for o in demonstration_orders(3, 6, seed=1)}) == 6
    assert demonstration_orders(4, 1, seed=7) == [[0, 1, 2, 3]]
    with pytest.raises(ValueError, match=r"permutations=3 asks for more orders than the 2 demonstration\(s\) used have: only 2 distinct"):
        demonstration_orders(2, 3, seed=1)


def test_a_reordered_prefix_is_the_prefix_of_the_permuted_demonstrations(tiny_tokenizer):
    encoder = PromptEncoder(tiny_tokenizer, PROMPT)
    prefix = encoder.prefix(DEMOS)
    order = [2, 0, 3, 1]
    by_hand = encoder.prefix([DEMOS[i] for i in order])  # tokenized afresh
    again = encoder.reordered(prefix, order)  # re-concatenated from the planned segments
    assert (again.ids, again.demo_positions, again.demo_owner, again.demo_ids) == (
        by_hand.ids, by_hand.demo_positions, by_hand.demo_owner, by_hand.demo_ids)
    assert again.ids != prefix.ids and sorted(again.ids) == sorted(prefix.ids)
    with pytest.raises(ValueError, match="must be a permutation of 0..3"):
        encoder.reordered(prefix, [0, 1, 1, 2])


def test_spread_and_agreement_from_their_definitions():
    assert spread([0.5, None, 0.7, 0.6]) == {"mean": pytest.approx(0.6), "std": pytest.approx(0.1), "min": 0.5, "max": 0.7, "n": 3}
    assert spread([0.4]) == {"mean": 0.4, "std": None, "min": 0.4, "max": 0.4, "n": 1}
    assert spread([None]) == {"mean": None, "std": None, "min": None, "max": None, "n": 0}
    # Three orders over four queries: queries 0 and 3 alike everywhere; pairs agree on 3/4, 2/4 and 3/4.
    preds = [[0, 1, 1, 0], [0, 1, 0, 0], [0, 0, 1, 0]]
    assert prediction_agreement(preds) == {"all_orders": 0.5, "pairwise": pytest.approx((0.75 + 0.75 + 0.5) / 3)}
    assert prediction_agreement([[1, 0, 1]]) == {"all_orders": 1.0, "pairwise": None}
    with pytest.raises(ValueError, match=r"\[orders, queries\]"):
        prediction_agreement([0, 1])


def test_orders_report_collects_each_order_and_compares_icl_with_ft():
    def summary(acc_icl, icl, ft):
        return {"accuracy": {"zsl": 0.5, "icl": acc_icl, "ft": 0.5}, "rec2ftp": None, "predictions": {"zsl": [0, 0], "icl": icl, "ft": ft},
                "rec2ftp_counts": {"ft_fixed": 0, "both_fixed": 0}}
    report = orders_report([[0, 1], [1, 0]], [summary(0.5, [0, 1], [0, 1]), summary(1.0, [1, 1], [0, 1])], [[1.0, 2.0], [3.0, None]])
    assert report["n"] == 2 and report["orders"] == [[0, 1], [1, 0]]
    assert [o["values"]["accuracy_icl"] for o in report["per_order"]] == [0.5, 1.0]
    assert report["per_order"][1]["loss_per_step"] == [3.0, None] and set(report["per_order"][0]["values"]) == set(ORDER_VALUES)
    assert report["spread"]["accuracy_icl"]["std"] == pytest.approx(math.sqrt(0.125))
    assert report["spread"]["rec2ftp"] == {"mean": None, "std": None, "min": None, "max": None, "n": 0}
    assert report["agreement"]["icl"] == {"all_orders": 0.5, "pairwise": 0.5}
    assert report["agreement"]["ft"] == {"all_orders": 1.0, "pairwise": 1.0}
    assert report["agreement"]["icl_ft"] == {"per_order": [1.0, 0.5], "mean": 0.75}


@pytest.fixture(scope="module")
def two_orders(tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    one = run_analysis(gpt2(), tokenizer, DEMOS, QUERIES, PROMPT, AnalysisOptions(**OPTIONS)).report.to_dict()
    two = run_analysis(gpt2(), tokenizer, DEMOS, QUERIES, PROMPT, AnalysisOptions(**OPTIONS, permutations=2)).report.to_dict()
    return tokenizer, one, two


def test_one_order_is_the_analysis_as_it_was_and_order_0_is_the_main_body(two_orders):
    _, one, two = copy.deepcopy(two_orders)
    assert "permutations" not in one and one["config"]["permutations"] == 1
    perm = two.pop("permutations")
    assert two.pop("config")["permutations"] == 2
    one.pop("config")
    assert two == one  # the other order leaves the main body, the controls and the verdict as they were, bit for bit
    assert perm["orders"] == demonstration_orders(4, 2, seed=3)
    first = perm["per_order"][0]
    assert first["values"]["simaou"] == one["simaou"]["mean"] and first["loss_per_step"] == one["finetuning"]["loss_per_step"]
    assert first["predictions"] == {"icl": one["predictions"]["icl"], "ft": one["predictions"]["ft"]}


def test_each_order_permutes_the_icl_prompt_and_the_training_order_together(two_orders):
    """Order 1 equals, number for number, the analysis of the demonstrations permuted by hand (prompt and training alike)."""
    tokenizer, _, two = two_orders
    order = two["permutations"]["orders"][1]
    by_hand = run_analysis(gpt2(), tokenizer, [DEMOS[i] for i in order], QUERIES, PROMPT,
                           AnalysisOptions(**OPTIONS, stability_check=False)).report.to_dict()
    second = two["permutations"]["per_order"][1]
    # The training loss of each step is the permuted demonstration's: the finetuning ran in this order.
    assert second["loss_per_step"] == by_hand["finetuning"]["loss_per_step"] != two["finetuning"]["loss_per_step"]
    # ICL (the prompt), FT and the metrics that compare them: the prompt ran in the same order.
    assert second["predictions"] == {"icl": by_hand["predictions"]["icl"], "ft": by_hand["predictions"]["ft"]}
    assert second["values"]["simaou"] == by_hand["simaou"]["mean"] != two["simaou"]["mean"]
    assert second["values"]["kendall_token"] == by_hand["kendall"]["mean"]
    assert second["values"]["kl_icl_zsl"] == by_hand["label_shift"]["kl_icl_zsl"]["mean"]
    assert second["values"]["accuracy_zsl"] == by_hand["accuracy"]["zsl"] == two["accuracy"]["zsl"]  # ZSL reused
    spread_icl = two["permutations"]["spread"]["accuracy_icl"]
    values = [o["values"]["accuracy_icl"] for o in two["permutations"]["per_order"]]
    assert spread_icl["mean"] == pytest.approx(sum(values) / 2) and (spread_icl["min"], spread_icl["max"]) == (min(values), max(values))


def test_more_orders_than_the_demonstrations_have_are_refused_before_any_work(tiny_tokenizer):
    with pytest.raises(ValueError, match="permutations <= 2"):
        run_analysis(gpt2(), tiny_tokenizer, DEMOS[:2], QUERIES, PROMPT, AnalysisOptions(**OPTIONS, permutations=3))
