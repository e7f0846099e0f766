"""Local data: one CSV / TSV / JSON / JSON Lines / Parquet file, or a folder of them, read with
errors that fit on one line and name the fix (empty file, binary content, unreadable file, ...).

A folder is either a ``DatasetDict.save_to_disk`` copy or holds data files named by split:
``train.csv``, ``dev.jsonl``, ``validation-00000-of-00001.parquet``, ``test.json``, ...
(the layout of a Hub dataset repository, also in a ``data/`` or ``<config>/`` sub-folder).
"""

from __future__ import annotations

import codecs
import json
import os
import re
from pathlib import Path

import datasets

__all__ = ["FORMATS", "SPLIT_NAMES", "read_data", "one_line"]

FORMATS = {".csv": "CSV", ".tsv": "TSV", ".json": "JSON", ".jsonl": "JSON Lines", ".parquet": "Parquet"}
# File-name prefix -> split, as the Hub names data files.
SPLIT_NAMES = {"train": "train", "validation": "validation", "valid": "validation", "val": "validation", "dev": "validation", "test": "test"}
_HEAD_BYTES = 1 << 16


def one_line(err: BaseException | str, limit: int = 300) -> str:
    """An exception's message on one line, shortened to ``limit`` characters."""
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_data(path: str | os.PathLike, *, config: str | None = None) -> datasets.DatasetDict:
    """The splits of a local file (its one split is ``train``) or folder.

    Args:
        path: a data file (``.csv``, ``.tsv``, ``.json``, ``.jsonl``, ``.parquet``) or a folder.
        config: a sub-folder to look in when ``path`` itself holds no data files (a Hub
            repository downloaded whole keeps each configuration in its own folder).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: unreadable, empty, binary or malformed data, or a folder without data files.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"data file {str(path)!r} does not exist.")
    if not path.is_dir():
        return datasets.DatasetDict({"train": _read_file(path)})
    if (path / "dataset_dict.json").exists() or (path / "dataset_info.json").exists():
        try:
            loaded = datasets.load_from_disk(str(path))
        except Exception as err:  # a damaged save_to_disk copy fails in many ways
            raise ValueError(f"folder {str(path)!r} is not a readable DatasetDict.save_to_disk copy: {one_line(err)}") from err
        return loaded if isinstance(loaded, datasets.DatasetDict) else datasets.DatasetDict({"train": loaded})
    for folder in [path] + [path / sub for sub in (config, "data") if sub]:
        by_split = _split_files(folder) if folder.is_dir() else {}
        if by_split:
            return datasets.DatasetDict(
                {split: datasets.concatenate_datasets([_read_file(f) for f in files]) for split, files in by_split.items()}
            )
    raise ValueError(
        f"folder {str(path)!r} holds no data: put a DatasetDict.save_to_disk copy there, or data files named by "
        f"split ({', '.join(['train.csv', 'validation.jsonl', 'test-00000-of-00001.parquet'])}, ...)."
    )


def _split_files(folder: Path) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    for file in sorted(folder.iterdir()):
        split = SPLIT_NAMES.get(re.split(r"[-._]", file.name, maxsplit=1)[0].lower())
        if split and file.is_file() and file.suffix.lower() in FORMATS:
            found.setdefault(split, []).append(file)
    return found


def _unreadable(path: Path, reason: str) -> ValueError:
    return ValueError(f"could not read data file {str(path)!r}: {reason}")


def _read_file(path: Path) -> datasets.Dataset:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise _unreadable(path, f"unknown format {path.suffix!r}; use .csv, .tsv, .json, .jsonl, .parquet or a datasets folder.")
    kind = FORMATS[suffix]
    _check_content(path, kind)
    try:
        frame = _parse(path, suffix)
    except Exception as err:  # json, pandas and pyarrow parse errors of many types
        detail = one_line(err) if isinstance(err, ValueError) else f"{type(err).__name__}: {one_line(err)}"
        raise _unreadable(path, f"it is not a valid {kind} file: {detail}") from err
    if len(frame) == 0:
        raise _unreadable(path, "it has no data rows (only a header?); add labelled rows.")
    try:
        return datasets.Dataset.from_pandas(frame, preserve_index=False)
    except Exception as err:  # pyarrow: a column holding values of several types
        raise _unreadable(path, f"a column mixes value types ({one_line(err)}); give each column one type.") from err


def _check_content(path: Path, kind: str) -> None:
    """Readable, not empty, and (text formats) UTF-8 text without NUL bytes."""
    denied = f"permission denied; make it readable, e.g. chmod u+r {path}."
    if not os.access(path, os.R_OK):
        raise _unreadable(path, denied)
    try:
        with path.open("rb") as fh:
            head = fh.read(_HEAD_BYTES)
    except PermissionError:
        raise _unreadable(path, denied) from None
    if not head.lstrip(b"\xef\xbb\xbf").strip():
        needed = "a header line (e.g. text,label) and labelled rows" if kind in ("CSV", "TSV") else "labelled records"
        raise _unreadable(path, f"it is empty; it needs {needed}.")
    if kind == "Parquet":
        return
    nul = head.find(b"\x00")
    if nul >= 0:
        raise _unreadable(
            path,
            f"it is not a valid {kind} file: it holds binary data (a NUL byte at offset {nul}; UTF-16 text or a "
            "spreadsheet?); save it as UTF-8 text.",
        )
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=len(head) < _HEAD_BYTES)
    except UnicodeDecodeError as err:
        raise _unreadable(
            path, f"it is not a valid {kind} file: it is not UTF-8 text (byte {head[err.start]:#04x} at offset {err.start}); save it as UTF-8."
        ) from None


def _parse(path: Path, suffix: str):
    import pandas as pd

    if suffix in (".csv", ".tsv"):
        return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", encoding="utf-8-sig")
    if suffix == ".parquet":
        return pd.read_parquet(path)
    text = path.read_text(encoding="utf-8-sig")
    if suffix == ".json":
        try:
            records = json.loads(text)
        except json.JSONDecodeError as err:
            if err.msg != "Extra data":
                raise ValueError(f"{err.msg} (line {err.lineno}, column {err.colno})") from None
            records = _json_lines(text)  # a .json file holding JSON Lines
    else:
        records = _json_lines(text)
    if isinstance(records, dict):
        raise ValueError("the top level is an object; write a list of records ([{...}, {...}]) or one record per line")
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise ValueError("every record must be an object such as {\"text\": \"...\", \"label\": 0}")
    return pd.DataFrame.from_records(records)


def _json_lines(text: str) -> list:
    records = []
    # Only "\n" ends a JSON Lines record: str.splitlines() also splits on U+2028, U+0085, \x0c and
    # \x1c-\x1e, which JSON allows raw inside strings. (read_text has already turned "\r\n" into "\n".)
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"line {number}: {err.msg} (column {err.colno})") from None
    return records
