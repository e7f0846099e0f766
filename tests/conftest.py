"""Shared fixtures: an offline, temporary Hugging Face home and tiny models built in code."""

from __future__ import annotations

import os
import tempfile

# Before transformers / huggingface_hub are imported anywhere: nothing reaches the network,
# and nothing touches the user's cache.
_HF_HOME = tempfile.mkdtemp(prefix="hf-metaopt-tests-home-")
os.environ["HF_HOME"] = _HF_HOME
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import pytest  # noqa: E402

import hf_metaopt.offline  # noqa: E402,F401  the tests run what the command line runs: the offline models, tasks, corpus

# Enough English to train a byte-level BPE whose merges make the templates readable.
TOKENIZER_CORPUS = [
    "Review: a gripping, beautifully acted film. Sentiment: Positive",
    "Review: dull, overlong and badly written. Sentiment: Negative",
    "Sentence: the plot is clever and the cast is great. Label: Positive",
    "Sentence: a tedious mess with nothing to say. Label: Negative",
    "Input: the film follows a young woman in Paris. Type: objective",
    "Input: I loved every minute of this movie. Type: subjective",
    "Article: shares rose as the bank reported profits. Answer: Business",
    "Article: the team won the cup final on Sunday. Answer: Sports",
    "Article: the new phone has a faster chip. Answer: Technology",
    "Article: leaders met to discuss the election. Answer: World",
    "terrible bad neutral good great True False Neither objective subjective",
] * 4


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory):
    """A byte-level BPE tokenizer trained in code (vocab 400), saved as a transformers folder."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(TOKENIZER_CORPUS, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    path = tmp_path_factory.mktemp("tiny_tokenizer")
    fast.save_pretrained(path)
    return path


@pytest.fixture
def tiny_tokenizer(tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_tokenizer_dir)


@pytest.fixture(scope="session")
def smollm2_path():
    """The real SmolLM2-135M-Instruct, converted once per test session (about 20 s)."""
    from hf_metaopt import offline

    try:
        offline.locate(offline.SMOLLM2)
    except offline.MissingAssetError as err:
        pytest.fail(str(err))
    return offline.smollm2_dir()


@pytest.fixture(scope="session")
def gemma3_path():
    """The real Gemma-3-270M (base), converted once per test session (about a minute)."""
    from hf_metaopt import offline

    try:
        return offline.gemma3_dir()
    except offline.MissingAssetError as err:
        pytest.fail(str(err))


@pytest.fixture(scope="session")
def controlled_run(tmp_path_factory, tiny_tokenizer_dir):
    """A tiny GPT-2's analysis of the toy reviews with both controls (untrained, shuffled labels), saved as a run folder.

    ``(run_dir, report dict, options)``; exact sign-flip tests (2**5 patterns <= n_bootstrap), Kendall over 4 queries.
    """
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    from hf_metaopt.analysis import AnalysisOptions, PromptFormat, run_analysis
    from toy_reviews import DEMOS, QUERIES, TEMPLATE, WORDS

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=400, n_positions=256,
                                       bos_token_id=0, eos_token_id=0)).eval()
    options = AnalysisOptions(learning_rate=0.1, batch_size=2, n_bootstrap=64, seed=3, control=["shuffled_labels", "untrained"],
                              kendall_queries=4, stability_check=False)
    result = run_analysis(model, AutoTokenizer.from_pretrained(tiny_tokenizer_dir), DEMOS, QUERIES,
                          PromptFormat(TEMPLATE, tuple(WORDS), "\n"), options)
    run_dir = result.report.save_pretrained(tmp_path_factory.mktemp("controlled") / "run")
    return run_dir, result.report.to_dict(), options
