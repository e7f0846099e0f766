"""Demonstrations and queries of one run, selected as the reference code does."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import datasets

from .balance import balanced_draw
from .registry import get_task
from .spec import DATA_DIR_ENV, TaskSpec

__all__ = ["prepare", "select_examples", "Selection", "check_sizes", "QUERY_SHUFFLE_SEED", "ROLES"]

# The reference code shuffles the eval set with seed 1 before capping it, whatever the run seed.
QUERY_SHUFFLE_SEED = 1
ROLES = ("train", "dev", "test")


def _as_records(ds: datasets.Dataset, indices: list[int]) -> list[dict[str, Any]]:
    rows = ds.select(indices).to_list()
    for row, idx in zip(rows, indices):
        row["idx"] = int(idx)
    return rows


@dataclass
class Selection:
    """The demonstrations and queries of one run, with notes on what could not be had as asked."""

    demonstrations: list[dict[str, Any]]
    queries: list[dict[str, Any]]
    spec: TaskSpec
    notes: list[str] = field(default_factory=list)


def select_examples(
    task: str | TaskSpec,
    n_demonstrations: int,
    n_queries: int | None,
    seed: int,
    split: str | None = None,
    *,
    data: dict[str, datasets.Dataset] | None = None,
    balanced: bool = False,
) -> Selection:
    """Pick the demonstrations and queries of one run.

    Demonstrations: the train split shuffled with ``seed``, the first ``n_demonstrations``
    (the engine packs as many as fit the context, dropping from the end). Queries: the
    ``split`` split (default ``"test"``, the split the task reports on) shuffled with seed 1
    and capped at ``n_queries`` (``None``: the task's ``eval_cap``). Each example is a dict
    of the template's fields, the integer ``label`` and ``idx``, its row in its split.
    Asking for more than a split holds uses all of it and says so in the notes.

    Args:
        task: a registered name, or a :class:`TaskSpec` (e.g. from :func:`from_files`).
        data: the task's already loaded splits (skips :meth:`TaskSpec.load`).
        balanced: a class-balanced draw instead (:func:`~hf_metaopt.tasks.balance.balanced_draw`):
            from the same shuffled train split, per label its first examples, interleaved in
            seeded rounds so the label counts differ by at most one.
    """
    spec = get_task(task)
    split = _check_arguments(n_demonstrations, n_queries, split)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an integer, got {seed!r}.")
    data = data if data is not None else spec.load()
    notes = []
    train = data["train"]
    if n_demonstrations > len(train):
        notes.append(f"task {spec.name!r}: n_demonstrations={n_demonstrations} exceeds the {len(train)} train examples; using all {len(train)}.")
    order = _permutation(len(train), seed)
    if balanced:
        labels = list(train["label"])
        drawn, balance_notes = balanced_draw([labels[i] for i in order], n_demonstrations, spec.label_words, seed)
        order = [order[i] for i in drawn]
        notes += [f"task {spec.name!r}: {n}" for n in balance_notes]
    demonstrations = _as_records(train, order[: min(n_demonstrations, len(train))])
    pool = data[split]
    cap = n_queries if n_queries is not None else (spec.eval_cap or len(pool))
    if n_queries is not None and n_queries > len(pool):
        notes.append(f"task {spec.name!r}: n_queries={n_queries} exceeds the {len(pool)} examples of its {split} split; using all {len(pool)}.")
    queries = _as_records(pool, _permutation(len(pool), QUERY_SHUFFLE_SEED)[: min(cap, len(pool))])
    return Selection(demonstrations, queries, spec, notes)


def prepare(task: str | TaskSpec, n_demonstrations: int, n_queries: int | None, seed: int, split: str | None = None,
            *, data: dict[str, datasets.Dataset] | None = None, balanced: bool = False) -> tuple[list[dict], list[dict], TaskSpec]:
    """``(demonstrations, queries, spec)`` of :func:`select_examples`; its notes become warnings."""
    selection = select_examples(task, n_demonstrations, n_queries, seed, split, data=data, balanced=balanced)
    for note in selection.notes:
        warnings.warn(note, stacklevel=2)
    return selection.demonstrations, selection.queries, selection.spec


def check_sizes(
    task: str | TaskSpec,
    data: dict[str, datasets.Dataset],
    n_demonstrations: int,
    n_queries: int | None,
    split: str = "test",
) -> tuple[int, int]:
    """Check that ``data`` can serve a run, before a model is loaded; the counts :func:`prepare` will use.

    Every task needs labelled rows in its train split and in ``split``. A user-data task
    (:func:`~hf_metaopt.tasks.from_files`) must also hold at least ``n_demonstrations`` train
    rows; a registered task uses all it has (and :func:`prepare` warns), as it does for
    queries when ``n_queries`` exceeds the split (CB reports on 56 examples).

    Returns:
        ``(demonstrations, queries)``: how many of each :func:`prepare` will pick.

    Raises:
        ValueError: a one-line message naming the counts and the fix.
    """
    spec = get_task(task)
    split = _check_arguments(n_demonstrations, n_queries, split)
    what = f"task {spec.name!r}" + (f" ({spec.data_path})" if spec.data_path else "")
    for role in dict.fromkeys(("train", split)):
        if role not in data or len(data[role]) == 0:
            fix = (
                "add labelled rows to it" if spec.data_path
                else f"check the local copy in ${DATA_DIR_ENV}/{spec.name}" if spec.loader is None
                else "reinstall the package that ships it"
            )
            raise ValueError(f"{what}: the {role} split has no labelled rows; {fix}.")
    n_train, n_pool = len(data["train"]), len(data[split])
    if spec.data_path and n_demonstrations > n_train:
        raise ValueError(
            f"{what}: the train split has {n_train} labelled rows, fewer than the {n_demonstrations} demonstrations "
            f"asked for; pass --n-demonstrations {n_train} (n_demonstrations={n_train}) or add labelled rows."
        )
    cap = n_queries if n_queries is not None else (spec.eval_cap or n_pool)
    return min(n_demonstrations, n_train), min(cap, n_pool)


def _check_arguments(n_demonstrations, n_queries, split: str | None) -> str:
    split = split or "test"
    if split not in ROLES:
        raise ValueError(f"split must be one of {list(ROLES)}, got {split!r}.")
    if isinstance(n_demonstrations, bool) or not isinstance(n_demonstrations, int) or n_demonstrations < 1:
        raise ValueError(f"n_demonstrations must be a positive integer, got {n_demonstrations!r}.")
    if n_queries is not None and (isinstance(n_queries, bool) or not isinstance(n_queries, int) or n_queries < 1):
        raise ValueError(f"n_queries must be a positive integer or None (the task's eval cap), got {n_queries!r}.")
    return split


def _permutation(n: int, seed: int) -> list[int]:
    """The row order ``datasets.Dataset.shuffle(seed=seed)`` produces for ``n`` rows."""
    import numpy as np

    return np.random.default_rng(seed).permutation(n).tolist()
