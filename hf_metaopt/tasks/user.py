"""User data as a task: a CSV / JSON / JSONL file or a ``datasets`` folder plus a template."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import datasets

from .offline import split_examples
from .spec import TaskSpec, template_fields

__all__ = ["from_files", "parse_label_words"]

_FORMATS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json"}
_SPLIT_ALIASES = {"train": "train", "dev": "dev", "validation": "dev", "valid": "dev", "test": "test"}


def parse_label_words(label_words: str | Sequence[str]) -> tuple[str, ...]:
    """Label words from a list or a comma-separated string; a leading space is added where missing.

    The model reads ``"... Sentiment: Positive"``, so each word needs its leading space
    (PAPER.md section 4); ``"Negative,Positive"`` becomes ``(" Negative", " Positive")``.
    """
    words = label_words.split(",") if isinstance(label_words, str) else list(label_words)
    words = [w if w[:1].isspace() else " " + w for w in (str(w).strip() for w in words) if w]
    if len(words) < 2:
        raise ValueError(f"label_words needs at least two words (e.g. 'Negative,Positive'), got {label_words!r}.")
    return tuple(words)


def _read(path: Path) -> datasets.DatasetDict:
    if not path.exists():
        raise FileNotFoundError(f"data file {str(path)!r} does not exist.")
    try:
        if path.is_dir():
            if (path / "dataset_dict.json").exists() or (path / "dataset_info.json").exists():
                loaded = datasets.load_from_disk(str(path))
            else:
                loaded = datasets.load_dataset(str(path))
        else:
            fmt = _FORMATS.get(path.suffix.lower())
            if fmt is None:
                raise ValueError(f"data file {str(path)!r}: unknown format {path.suffix!r}; use .csv, .tsv, .json, .jsonl or a datasets folder.")
            kwargs = {"delimiter": "\t"} if path.suffix.lower() == ".tsv" else {}
            loaded = datasets.load_dataset(fmt, data_files={"train": str(path)}, **kwargs)
    except ValueError:
        raise
    except Exception as err:  # pyarrow / pandas / json parse errors of many types
        raise ValueError(f"could not read data file {str(path)!r}: {type(err).__name__}: {err}") from err
    if isinstance(loaded, datasets.Dataset):
        loaded = datasets.DatasetDict({"train": loaded})
    return loaded


def _label_to_index(value, words: tuple[str, ...], column: str) -> int:
    if isinstance(value, bool):
        raise ValueError(f"label column {column!r} holds a boolean {value!r}; use an index or a label word.")
    if isinstance(value, (int, float)) and float(value).is_integer() and 0 <= int(value) < len(words):
        return int(value)
    if isinstance(value, str):
        stripped = [w.strip().lower() for w in words]
        key = value.strip().lower()
        if key in stripped:
            return stripped.index(key)
        if key.lstrip("-").isdigit() and 0 <= int(key) < len(words):
            return int(key)
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
) -> TaskSpec:
    """A :class:`TaskSpec` over local data, usable wherever a registered task is.

    Args:
        path: a ``.csv``/``.tsv``/``.json``/``.jsonl`` file, or a folder (``save_to_disk``
            output, or data files named by split).
        template: e.g. ``"Review: {text} Sentiment:"``; every field must be a column.
        label_words: e.g. ``"Negative,Positive"``; a leading space is added where missing.
        label_column: the column holding each label, as an index into ``label_words`` or
            as the label word itself (case and spaces ignored).
        n_dev, n_test: sizes carved from train (fixed seed) when the data has no such split;
            default 10% and 20% of the examples.

    Splits named ``train``, ``validation``/``dev`` and ``test`` are used as they are.
    """
    path = Path(path)
    words = parse_label_words(label_words)
    fields = template_fields(template)
    source = _read(path)
    by_role: dict[str, datasets.Dataset] = {}
    for split_name, ds in source.items():
        role = _SPLIT_ALIASES.get(split_name)
        if role and role not in by_role:
            by_role[role] = ds
    if "train" not in by_role:
        raise ValueError(f"data {str(path)!r} has the splits {list(source)}; it needs a 'train' split (a single file is train).")
    columns = by_role["train"].column_names
    missing = [c for c in fields + [label_column] if c not in columns]
    if missing:
        raise ValueError(
            f"data {str(path)!r} lacks the columns {missing} that the template {template!r} / "
            f"label_column {label_column!r} need; its columns are {columns}."
        )

    def rows(ds: datasets.Dataset) -> list[dict]:
        out = []
        for row in ds.select_columns(fields + [label_column]).to_list():
            if any(row[f] is None for f in fields) or row[label_column] is None:
                continue
            out.append({**{f: str(row[f]) for f in fields}, "label": _label_to_index(row[label_column], words, label_column)})
        return out

    splits = {role: rows(ds) for role, ds in by_role.items()}
    missing_roles = [r for r in ("dev", "test") if r not in splits]
    if missing_roles:
        pool = splits["train"]
        n_dev_ = (n_dev if n_dev is not None else max(1, len(pool) // 10)) if "dev" in missing_roles else 0
        n_test_ = (n_test if n_test is not None else max(1, len(pool) // 5)) if "test" in missing_roles else 0
        if len(pool) < n_dev_ + n_test_ + 2:
            raise ValueError(f"data {str(path)!r} has {len(pool)} usable examples: too few to carve dev and test splits; add some or give split files.")
        carved = split_examples(_as_text_rows(pool, fields), n_dev=n_dev_, n_test=n_test_)
        splits["train"] = [_from_text_row(r) for r in carved["train"].to_list()]
        for role in missing_roles:
            splits[role] = [_from_text_row(r) for r in carved[role].to_list()]
    loaded = {role: datasets.Dataset.from_list(rows_) for role, rows_ in splits.items()}
    for role in ("train", "dev", "test"):
        if len(loaded[role]) == 0:
            raise ValueError(f"data {str(path)!r}: the {role} split has no usable rows.")
    return TaskSpec(
        name=name or path.stem,
        template=template,
        label_words=words,
        separator=separator,
        loader=lambda: loaded,
        eval_cap=None,
        description=f"user data from {path}",
    )


# split_examples sorts on ("label", "text"); pack multi-field rows into one sortable text.
def _as_text_rows(rows: list[dict], fields: list[str]) -> list[dict]:
    import json

    return [{"text": json.dumps({f: r[f] for f in fields}, sort_keys=True), "label": r["label"]} for r in rows]


def _from_text_row(row: dict) -> dict:
    import json

    return {**json.loads(row["text"]), "label": row["label"]}
