"""User data as a task: a CSV / TSV / JSON / JSONL / Parquet file or a folder, plus a template.

Every problem with the data (unreadable, empty or malformed file, missing columns, unknown
labels, too few rows) is a one-line ``ValueError`` or ``FileNotFoundError`` naming the fix,
raised here, before any model is loaded.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import datasets

from .files import SPLIT_NAMES, read_data
from .splits import split_examples
from .spec import TaskSpec, template_fields

__all__ = ["from_files", "parse_label_words"]

_ROLES = {"train": "train", "validation": "dev", "test": "test"}  # split -> role in a run


def parse_label_words(label_words: str | Sequence[str]) -> tuple[str, ...]:
    """Label words from a list or a comma-separated string; a leading space is added where missing.

    The model reads ``"... Sentiment: Positive"``, so each word needs its leading space:
    ``"Negative,Positive"`` becomes ``(" Negative", " Positive")``.
    """
    words = label_words.split(",") if isinstance(label_words, str) else list(label_words)
    words = [w if w[:1].isspace() else " " + w for w in (str(w).strip() for w in words) if w]
    if len(words) < 2:
        raise ValueError(f"label_words needs at least two words (e.g. 'Negative,Positive'), got {label_words!r}.")
    return tuple(words)


LABEL_VALUES = ("auto", "words", "indices")


def _as_integer(value) -> int | None:
    """``value`` as an integer if it is one (``3``, ``3.0``, ``" 3"``), else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return int(value) if float(value).is_integer() else None
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _integer_reading(values: list, words: tuple[str, ...], column: str, label_values: str) -> str:
    """How the integer labels of a column read: ``"words"`` or ``"indices"``, decided for the whole column.

    An integer label that is a label word means that word. When every integer label is both a
    label word and a valid index and the two readings differ (label words 1,2,3,4,5 and labels
    1..4), ``label_values="auto"`` refuses to guess.
    """
    if label_values != "auto":
        return label_values
    stripped = [w.strip().lower() for w in words]
    ints = sorted({i for i in map(_as_integer, values) if i is not None})
    as_words = bool(ints) and all(str(i) in stripped for i in ints)
    as_indices = all(0 <= i < len(words) for i in ints)
    if as_words and as_indices and any(stripped.index(str(i)) != i for i in ints):
        raise ValueError(
            f"the labels {ints} in column {column!r} are both label words and 0-based indices into the label words "
            f"{list(words)}, and the two readings differ; pass --label-values words (the labels are the words) "
            "or --label-values indices."
        )
    return "words" if as_words else "indices"


def _label_to_index(value, words: tuple[str, ...], column: str, integers: str = "indices") -> int:
    if isinstance(value, bool):
        raise ValueError(f"label column {column!r} holds a boolean {value!r}; use an index or a label word.")
    stripped = [w.strip().lower() for w in words]
    number = _as_integer(value)
    if number is not None and integers == "indices":
        if 0 <= number < len(words):
            return number
    elif isinstance(value, (str, int, float)):
        key = str(number) if number is not None else str(value).strip().lower()
        if key in stripped:
            return stripped.index(key)
    raise ValueError(
        f"label {value!r} in column {column!r} matches none of the label words {list(words)} "
        f"(give the label as an index 0..{len(words) - 1} or as one of the words)."
    )


def from_files(
    path: str | os.PathLike,
    *,
    template: str,
    label_words: str | Sequence[str],
    label_column: str = "label",
    separator: str = "\n",
    name: str | None = None,
    n_dev: int | None = None,
    n_test: int | None = None,
    label_values: str = "auto",
    test_size: float | None = None,
) -> TaskSpec:
    """A :class:`TaskSpec` over local data, usable wherever a registered task is.

    Args:
        path: a ``.csv``/``.tsv``/``.json``/``.jsonl``/``.parquet`` file, or a folder
            (``save_to_disk`` output, or data files named by split: ``train.csv``, ``dev.csv``, ...).
        template: e.g. ``"Review: {text} Sentiment:"``; every field must be a column.
        label_words: e.g. ``"Negative,Positive"``; a leading space is added where missing.
        label_column: the column holding each label, as an index into ``label_words`` or
            as the label word itself (case and spaces ignored). Rows without a label (or
            without a template field) are left out.
        label_values: how integer labels read: ``"auto"`` (a label equal to a label word is
            that word, other integers are 0-based indices; refused when the labels read both
            ways with different results), ``"words"`` or ``"indices"``.
        n_dev, n_test: sizes carved from train (fixed seed) when the data has no such split;
            default 10% and 20% of the labelled rows (at least one each).
        test_size: the test split (the queries) carved from data without one, as a fraction
            (< 1) or a count (>= 1) of the labelled rows; overrides ``n_test``. Refused when it
            leaves no query, or when the data has a test split of its own.

    Splits named ``train``, ``validation``/``dev`` and ``test`` are used as they are.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the data cannot be read, lacks a column, holds an unknown label or has
            too few labelled rows; the message is one line naming the fix.
    """
    path = Path(path)
    words = parse_label_words(label_words)
    fields = template_fields(template)
    if label_values not in LABEL_VALUES:
        raise ValueError(f"label_values must be one of {list(LABEL_VALUES)}; got {label_values!r}.")
    by_role = _by_role(read_data(path), path)
    _check_columns(by_role, template, label_column, path)
    labels = [v for ds in by_role.values() for v in ds[label_column] if v is not None]
    try:
        integers = _integer_reading(labels, words, label_column, label_values)
    except ValueError as err:
        raise ValueError(f"data {str(path)!r}: {err}") from None
    splits = {role: _labelled_rows(ds, fields, label_column, words, path, integers) for role, ds in by_role.items()}
    if not splits["train"]:
        raise ValueError(
            f"data {str(path)!r}: none of its {len(by_role['train'])} train rows has a label in column {label_column!r} "
            f"and every template field {fields}; fill them in."
        )
    if test_size is not None:
        n_test = _test_count(test_size, len(splits["train"]), "test" in splits, path)
    splits = _carve_missing(splits, fields, path, n_dev, n_test)
    for role in ("train", "dev", "test"):
        if not splits[role]:
            raise ValueError(f"data {str(path)!r}: the {role} split has no labelled rows; add some.")
    loaded = {role: datasets.Dataset.from_list(rows) for role, rows in splits.items()}
    return TaskSpec(
        name=name or path.stem,
        template=template,
        label_words=words,
        separator=separator,
        loader=lambda: loaded,
        eval_cap=None,
        description=f"user data from {path}",
        data_path=str(path),
    )


def _test_count(test_size: float, n_rows: int, has_test: bool, path: Path) -> int:
    """``test_size`` (a fraction below 1 or a count) as a number of the ``n_rows`` labelled rows."""
    if has_test:
        raise ValueError(f"data {str(path)!r} has a test split of its own; --test-size (test_size) splits a single file only.")
    if isinstance(test_size, bool) or not 0 <= test_size < float("inf") or (test_size >= 1 and not float(test_size).is_integer()):
        raise ValueError(f"--test-size must be a fraction below 1 (e.g. 0.25) or a whole count of rows (e.g. 4); got {test_size!r}.")
    count = int(test_size * n_rows) if test_size < 1 else int(test_size)
    if count < 1:
        raise ValueError(
            f"--test-size {test_size:g} of the {n_rows} labelled rows of {str(path)!r} leaves no query; pass a larger "
            "fraction or a count of rows (e.g. --test-size 4)."
        )
    return count


def _by_role(source: datasets.DatasetDict, path: Path) -> dict[str, datasets.Dataset]:
    """The splits that play the train / dev / test roles (``validation``, ``dev``, ``valid`` -> dev)."""
    by_role: dict[str, datasets.Dataset] = {}
    for split_name, ds in source.items():
        role = _ROLES.get(SPLIT_NAMES.get(split_name.lower(), ""))
        if role and role not in by_role:
            by_role[role] = ds
    if "train" not in by_role:
        raise ValueError(f"data {str(path)!r} has the splits {list(source)}; it needs a 'train' split (a single file is train).")
    return by_role


def _check_columns(by_role: dict[str, datasets.Dataset], template: str, label_column: str, path: Path) -> None:
    for role, ds in by_role.items():
        missing = [c for c in template_fields(template) + [label_column] if c not in ds.column_names]
        if missing:
            raise ValueError(
                f"data {str(path)!r} ({role} split) lacks the columns {missing} that the template {template!r} / "
                f"label_column {label_column!r} need; its columns are {ds.column_names}."
            )


def _labelled_rows(ds: datasets.Dataset, fields: list[str], label_column: str, words: tuple[str, ...], path: Path,
                   integers: str = "indices") -> list[dict]:
    rows = []
    for row in ds.select_columns(fields + [label_column]).to_list():
        if any(row[f] is None for f in fields) or row[label_column] is None:
            continue
        try:
            label = _label_to_index(row[label_column], words, label_column, integers)
        except ValueError as err:
            raise ValueError(f"data {str(path)!r}: {err}") from None
        rows.append({**{f: str(row[f]) for f in fields}, "label": label})
    return rows


def _carve_missing(splits: dict[str, list[dict]], fields: list[str], path: Path, n_dev: int | None, n_test: int | None) -> dict[str, list[dict]]:
    """Cut the missing dev / test splits from train (fixed seed)."""
    missing_roles = [r for r in ("dev", "test") if r not in splits]
    if not missing_roles:
        return splits
    pool = splits["train"]
    n_dev_ = (n_dev if n_dev is not None else max(1, len(pool) // 10)) if "dev" in missing_roles else 0
    n_test_ = (n_test if n_test is not None else max(1, len(pool) // 5)) if "test" in missing_roles else 0
    if len(pool) < n_dev_ + n_test_ + 2:
        raise ValueError(
            f"data {str(path)!r} has {len(pool)} labelled rows: too few to carve {' and '.join(missing_roles)} splits "
            f"({n_dev_ + n_test_} rows) and keep 2 for train; add rows or give split files (train.csv, dev.csv, test.csv in a folder)."
        )
    carved = split_examples(_as_text_rows(pool, fields), n_dev=n_dev_, n_test=n_test_)
    out = dict(splits, train=[_from_text_row(r) for r in carved["train"].to_list()])
    for role in missing_roles:
        out[role] = [_from_text_row(r) for r in carved[role].to_list()]
    return out


# split_examples sorts on ("label", "text"); pack multi-field rows into one sortable text.
def _as_text_rows(rows: list[dict], fields: list[str]) -> list[dict]:
    return [{"text": json.dumps({f: r[f] for f in fields}, sort_keys=True), "label": r["label"]} for r in rows]


def _from_text_row(row: dict) -> dict:
    return {**json.loads(row["text"]), "label": row["label"]}
