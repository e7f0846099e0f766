"""Cut one pool of labelled rows into train / dev / test, the same way on every machine."""

from __future__ import annotations

import random

import datasets

from .spec import DEV_SPLIT_SEED

__all__ = ["split_examples"]


def split_examples(rows: list[dict], n_dev: int, n_test: int, seed: int = DEV_SPLIT_SEED) -> dict[str, datasets.Dataset]:
    """Sort ``rows``, shuffle them with ``seed`` and cut test, dev, then train from the rest."""
    if len(rows) <= n_dev + n_test:
        raise ValueError(f"only {len(rows)} examples, fewer than dev ({n_dev}) + test ({n_test}) need.")
    rows = sorted(rows, key=lambda r: (r["label"], r["text"]))
    random.Random(seed).shuffle(rows)
    parts = {"test": rows[:n_test], "dev": rows[n_test : n_test + n_dev], "train": rows[n_test + n_dev :]}
    return {role: datasets.Dataset.from_list(part) for role, part in parts.items()}
