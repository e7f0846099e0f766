"""The run's tokenizer: a byte-level BPE trained on the training documents, or a Hub one."""

from __future__ import annotations

import itertools
from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerFast

__all__ = ["EOS_TOKEN", "train_bpe_tokenizer", "load_or_train_tokenizer"]

EOS_TOKEN = "<|endoftext|>"


def train_bpe_tokenizer(texts, vocab_size: int, max_texts: int | None = None) -> PreTrainedTokenizerFast:
    """Train a GPT-2 style byte-level BPE (one special token, ``<|endoftext|>``) on ``texts``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    if vocab_size < 257:
        raise ValueError(f"tokenizer_vocab_size: {vocab_size} is below the 256 bytes + 1 special token")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    texts = itertools.islice(texts, max_texts) if max_texts is not None else texts
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=EOS_TOKEN, eos_token=EOS_TOKEN, unk_token=EOS_TOKEN, pad_token=EOS_TOKEN,
    )


def load_or_train_tokenizer(folder: str | Path, train_texts, name: str | None, vocab_size: int,
                            max_texts: int | None = None):
    """Load the tokenizer saved in ``folder``, else make it (from ``name`` or by training) and save it.

    Saving first and loading later lets every process of a distributed run, and a
    resumed run, use exactly the tokenizer the first process made.
    """
    folder = Path(folder)
    if (folder / "tokenizer.json").exists():
        return AutoTokenizer.from_pretrained(folder)
    if name:
        try:
            tokenizer = AutoTokenizer.from_pretrained(name)
        except OSError as err:
            raise ValueError(f"tokenizer_name: cannot load '{name}' ({err})") from err
        if tokenizer.eos_token is None:
            raise ValueError(f"tokenizer_name: '{name}' has no eos_token, needed to separate packed documents")
    else:
        tokenizer = train_bpe_tokenizer(train_texts, vocab_size, max_texts)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.save_pretrained(folder)
    return tokenizer
