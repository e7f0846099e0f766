"""Prompt construction: segments, special tokens, the ICL prefix and every bad-input check."""

import pytest

from hf_metaopt.analysis.prompts import PromptEncoder, template_fields, validate_examples

TEMPLATE = "Review: {text} Sentiment:"
WORDS = [" Negative", " Positive"]
DEMOS = [{"text": "a gripping film", "label": 1}, {"text": "dull and overlong", "label": 0}]


@pytest.fixture
def encoder(tiny_tokenizer):
    return PromptEncoder(tiny_tokenizer, TEMPLATE, WORDS)


def test_segments_concatenate_to_the_contract_strings(encoder, tiny_tokenizer):
    prefix = encoder.prefix(DEMOS)
    query = {"text": "badly written", "label": 0}
    ids = prefix.ids + encoder.query_ids(query)
    text = "\n".join([TEMPLATE.format(**d) + WORDS[d["label"]] for d in DEMOS] + [TEMPLATE.format(**query)])
    assert tiny_tokenizer.decode(ids) == text
    # the demonstration tokens sit where the prefix says, in finetuning order
    demo_tokens = [prefix.ids[i] for i in prefix.demo_positions]
    assert demo_tokens == sum((encoder.training_ids(d)[len(encoder.special_prefix):] for d in DEMOS), [])


def test_leading_special_tokens_are_detected(tiny_tokenizer):
    class WithBos:
        def __init__(self, tok):
            self.tok = tok

        def __call__(self, text, add_special_tokens=True):
            ids = self.tok(text, add_special_tokens=False)["input_ids"]
            return {"input_ids": ([0] if add_special_tokens else []) + ids}

        def convert_ids_to_tokens(self, i):
            return self.tok.convert_ids_to_tokens(i)

    enc = PromptEncoder(WithBos(tiny_tokenizer), TEMPLATE, WORDS)
    assert enc.special_prefix == [0]
    assert enc.prefix(DEMOS).ids[0] == 0
    assert enc.training_ids(DEMOS[0])[0] == 0


def test_template_fields():
    assert template_fields("{premise} Question: {hypothesis}. Answer:") == ["premise", "hypothesis"]
    with pytest.raises(ValueError, match="positional"):
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
        validate_examples(examples, "demonstrations", TEMPLATE, WORDS)


def test_bad_label_words(tiny_tokenizer):
    with pytest.raises(ValueError, match="duplicates"):
        PromptEncoder(tiny_tokenizer, TEMPLATE, [" Positive", " Positive"])
    with pytest.raises(ValueError, match="same token"):
        PromptEncoder(tiny_tokenizer, TEMPLATE, [" Positive", " Positives"])
    with pytest.raises(TypeError, match="label_words"):
        PromptEncoder(tiny_tokenizer, TEMPLATE, " Positive")


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
