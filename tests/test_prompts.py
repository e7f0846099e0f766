"""Prompt construction: segments, special tokens, the ICL prefix and every bad-input check."""

import pytest

from hf_metaopt.analysis.prompts import PromptEncoder, PromptFormat, validate_examples
from hf_metaopt.tasks.spec import template_fields

TEMPLATE = "Review: {text} Sentiment:"
WORDS = [" Negative", " Positive"]
PROMPT = PromptFormat(TEMPLATE, tuple(WORDS))
DEMOS = [{"text": "a gripping film", "label": 1}, {"text": "dull and overlong", "label": 0}]


@pytest.fixture
def encoder(tiny_tokenizer):
    return PromptEncoder(tiny_tokenizer, PROMPT, start_token=None)


def test_segments_concatenate_to_the_contract_strings(encoder, tiny_tokenizer):
    prefix = encoder.prefix(DEMOS)
    query = {"text": "badly written", "label": 0}
    ids = prefix.ids + encoder.query_ids(query)
    text = "\n".join([TEMPLATE.format(**d) + WORDS[d["label"]] for d in DEMOS] + [TEMPLATE.format(**query)])
    assert tiny_tokenizer.decode(ids) == text
    # the demonstration tokens sit where the prefix says, in finetuning order
    demo_tokens = [prefix.ids[i] for i in prefix.demo_positions]
    assert demo_tokens == sum((encoder.training_ids(d) for d in DEMOS), [])
    assert prefix.demo_owner == sum(([i] * len(encoder.demonstration_ids(d)) for i, d in enumerate(DEMOS)), [])


@pytest.mark.parametrize("start_token, expected", [("auto", "<|endoftext|>"), ("<|endoftext|>", "<|endoftext|>"), (None, None)])
def test_start_token_starts_every_sequence_and_is_never_a_demonstration_token(tiny_tokenizer, start_token, expected):
    enc = PromptEncoder(tiny_tokenizer, PROMPT, start_token=start_token)
    assert enc.start_token == expected
    start = [tiny_tokenizer.convert_tokens_to_ids(expected)] if expected else []
    prefix = enc.prefix(DEMOS)
    assert prefix.ids[: len(start)] == start and enc.training_ids(DEMOS[0])[: len(start)] == start
    assert all(p >= len(start) for p in prefix.demo_positions)


def test_start_token_auto_falls_back_to_eos_and_an_unknown_token_is_refused(tiny_tokenizer):
    tiny_tokenizer.bos_token = None
    assert PromptEncoder(tiny_tokenizer, PROMPT).start_token == tiny_tokenizer.eos_token
    with pytest.raises(ValueError, match="not a token of this tokenizer"):
        PromptEncoder(tiny_tokenizer, PROMPT, start_token="<s>")


def test_template_fields():
    assert template_fields("{premise} Question: {hypothesis}. Answer:") == ["premise", "hypothesis"]
    with pytest.raises(ValueError, match="plain names"):
        template_fields("Review: {} Sentiment:")


@pytest.mark.parametrize(
    "examples, message",
    [
        ([], "is empty"),
        ([{"text": "x", "label": 2}], "outside label_words"),
        ([{"body": "x", "label": 0}], "lacks the template field"),
        ([{"text": "x", "label": "pos"}], "must be an int"),
        ("not a list", "must be a list"),
    ],
)
def test_bad_examples(examples, message):
    with pytest.raises((ValueError, TypeError), match=message):
        validate_examples(examples, "demonstrations", PROMPT)


def test_bad_label_words(tiny_tokenizer):
    with pytest.raises(ValueError, match="duplicates"):
        PromptFormat(TEMPLATE, (" Positive", " Positive"))
    with pytest.raises(ValueError, match="same token"):
        PromptEncoder(tiny_tokenizer, PromptFormat(TEMPLATE, (" Positive", " Positives")))
    with pytest.raises(TypeError, match="label_words"):
        PromptFormat(TEMPLATE, " Positive")


def test_fit_prefix_drops_from_the_end_and_fails_when_nothing_fits(encoder):
    demos = DEMOS * 4
    queries = [{"text": "badly written", "label": 0}]
    full = encoder.prefix(demos)
    need_one = len(encoder.prefix(demos[:1]).ids) + len(encoder.query_ids(queries[0])) + 2
    prefix, notes = encoder.fit_prefix(demos, queries, max_length=len(full.ids) + 40)
    assert prefix.n_demonstrations == 8 and notes == []
    prefix, notes = encoder.fit_prefix(demos, queries, max_length=need_one + 1)
    assert prefix.n_demonstrations == 1
    assert "kept the first 1 of 8" in notes[0]
    with pytest.raises(ValueError, match="not even one demonstration fits"):
        encoder.fit_prefix(demos, queries, max_length=need_one - 5)
