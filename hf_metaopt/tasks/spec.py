"""TaskSpec: one classification task as data (like an lm-evaluation-harness task).

A task names where its examples come from (a Hub dataset, a local folder, or an
offline loader over files that registry packages ship), which splits play the
train / dev / test roles, how dataset columns fill the template's fields, and the
label words. :meth:`TaskSpec.load` returns the three splits as ``datasets.Dataset``
objects whose rows hold the template's fields and an integer ``label``.
"""

from __future__ import annotations

import os
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import datasets

from .files import one_line, read_data

__all__ = ["TaskSpec", "DatasetUnavailableError", "template_fields", "DATA_DIR_ENV", "DEV_SPLIT_SEED"]

# A folder holding one sub-folder per task (``$HF_METAOPT_DATA_DIR/<task name>``) with
# the same schema as the Hub dataset: used instead of the Hub when set (offline mirrors).
DATA_DIR_ENV = "HF_METAOPT_DATA_DIR"
# Fixed seed of every deterministic carve (dev from train, offline splits): never the run seed,
# so a task's splits are the same for every run.
DEV_SPLIT_SEED = 1234


class DatasetUnavailableError(FileNotFoundError):
    """A task's Hub dataset could not be loaded; the message names the id, the revision and the local-copy fix."""


def template_fields(template: str) -> list[str]:
    """The field names a ``str.format`` template uses, in order, without repeats."""
    if not isinstance(template, str) or not template.strip():
        raise ValueError("template must be a non-empty string such as 'Review: {text} Sentiment:'.")
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as err:
        raise ValueError(f"template {template!r} is not a valid format string ({err}); escape literal braces as '{{{{' and '}}}}'.") from err
    names: list[str] = []
    for _, name, _, _ in parsed:
        if name is None:
            continue
        if not name.isidentifier():
            raise ValueError(f"template {template!r} has the field {{{name}}}; fields must be plain names such as {{text}}.")
        if name not in names:
            names.append(name)
    if not names:
        raise ValueError(f"template {template!r} names no field; it needs at least one, e.g. '{{text}}'.")
    return names


@dataclass(frozen=True)
class TaskSpec:
    """A text-classification task for the ICL-vs-finetuning analysis.

    Attributes:
        name: registry name (``sst2``, ``rt_sentiment``, ...).
        template: ``str.format`` template of one example, without the label word.
        label_words: one word per label index, each with its leading space (``" Positive"``).
        dataset_path: Hub dataset id (``"glue"``) or local folder; ``None`` for offline loaders.
        dataset_name: the dataset configuration (``"sst2"``), if any.
        revision: the Hub dataset's commit, passed to ``datasets.load_dataset``; ``None``: its
            default branch.
        train_split, dev_split, test_split: the source split of each role. ``dev_split=None``
            carves a dev split from train (``dev_fraction`` of it, at most ``dev_max``) with a
            fixed seed; the rest of train stays train, so the two never share an example.
        fields: template field -> dataset column (``{"text": "sentence"}``); identity by default.
        label_field: the dataset column holding the integer label.
        separator: joins demonstrations and the query in the ICL prompt.
        eval_cap: queries are capped at this many (the reference code caps eval at 2000).
        loader: offline loader returning ``{"train", "dev", "test"}`` datasets; replaces Hub loading.
        description: one line for ``hf-metaopt tasks list``.
        data_path: the local file or folder of a user-data task (:func:`~hf_metaopt.tasks.from_files`).
    """

    name: str
    template: str
    label_words: tuple[str, ...]
    dataset_path: str | None = None
    dataset_name: str | None = None
    train_split: str = "train"
    dev_split: str | None = None
    test_split: str = "validation"
    fields: Mapping[str, str] = field(default_factory=dict)
    label_field: str = "label"
    separator: str = "\n"
    eval_cap: int | None = 2000
    loader: Callable[[], dict[str, datasets.Dataset]] | None = field(default=None, compare=False, repr=False)
    description: str = ""
    dev_fraction: float = 0.1
    dev_max: int = 1000
    revision: str | None = None
    data_path: str | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError("TaskSpec.name must be a non-empty string.")
        object.__setattr__(self, "label_words", tuple(self.label_words))
        object.__setattr__(self, "fields", dict(self.fields))
        names = template_fields(self.template)
        unknown = sorted(set(self.fields) - set(names))
        if unknown:
            raise ValueError(f"task {self.name!r}: fields maps {unknown}, which the template {self.template!r} does not use.")
        if len(self.label_words) < 2:
            raise ValueError(f"task {self.name!r}: label_words needs at least two words, got {list(self.label_words)}.")
        if any(not isinstance(w, str) or not w.strip() for w in self.label_words):
            raise ValueError(f"task {self.name!r}: every label word must be a non-empty string, got {list(self.label_words)}.")
        if len(set(self.label_words)) != len(self.label_words):
            raise ValueError(f"task {self.name!r}: label_words must be distinct, got {list(self.label_words)}.")
        if self.eval_cap is not None and self.eval_cap < 1:
            raise ValueError(f"task {self.name!r}: eval_cap must be a positive integer or None, got {self.eval_cap}.")
        if self.loader is None and self.dataset_path is None:
            raise ValueError(f"task {self.name!r}: give dataset_path (Hub id or folder) or an offline loader.")
        if not 0 < self.dev_fraction < 1:
            raise ValueError(f"task {self.name!r}: dev_fraction must lie in (0, 1), got {self.dev_fraction}.")

    @property
    def template_fields(self) -> list[str]:
        """The template's field names (the keys every example holds besides ``label``)."""
        return template_fields(self.template)

    def column(self, template_field: str) -> str:
        """The dataset column that fills ``template_field``."""
        return self.fields.get(template_field, template_field)

    def load(self, data_dir: str | os.PathLike | None = None) -> dict[str, datasets.Dataset]:
        """The ``train``, ``dev`` and ``test`` splits, each row the template's fields and ``label``.

        Args:
            data_dir: a local copy of the dataset to read instead of the Hub: a folder
                written by ``DatasetDict.save_to_disk``, or one of data files named by split
                (``train.jsonl``, ``validation-00000-of-00001.parquet``, ...; also found in a
                ``data/`` or ``<dataset_name>/`` sub-folder, as a Hub download lays them out).
                Without it, :meth:`local_copy` is used when it exists.

        Raises:
            DatasetUnavailableError: the Hub dataset could not be loaded; the message names the
                id and revision tried and how to point ``$HF_METAOPT_DATA_DIR`` at a local copy.
        """
        if self.loader is not None and data_dir is None:
            raw = self.loader()
            return {role: self._normalise(raw[role], role) for role in ("train", "dev", "test")}
        data_dir = data_dir if data_dir is not None else self.local_copy()
        if data_dir is not None:
            source = read_data(data_dir, config=self.dataset_name)
        else:
            try:
                source = datasets.load_dataset(self.dataset_path, self.dataset_name, revision=self.revision)
            except Exception as err:  # offline, firewall, moved or gated repository, ...
                raise DatasetUnavailableError(self._unavailable(err)) from err
        needed = [self.train_split, self.test_split] + ([self.dev_split] if self.dev_split else [])
        missing = [s for s in needed if s not in source]
        if missing:
            raise ValueError(
                f"task {self.name!r}: the dataset has the splits {sorted(source)}, not {missing}; "
                f"a local copy must use the Hub dataset's split names."
            )
        train = source[self.train_split]
        if self.dev_split:
            dev = source[self.dev_split]
        else:
            n_dev = min(self.dev_max, max(1, int(len(train) * self.dev_fraction)))
            parts = train.train_test_split(test_size=n_dev, shuffle=True, seed=DEV_SPLIT_SEED)
            train, dev = parts["train"], parts["test"]
        return {
            "train": self._normalise(train, "train"),
            "dev": self._normalise(dev, "dev"),
            "test": self._normalise(source[self.test_split], "test"),
        }

    def local_copy(self) -> Path | None:
        """``$HF_METAOPT_DATA_DIR/<name>`` when the variable is set and that folder exists."""
        root = os.environ.get(DATA_DIR_ENV)
        if self.loader is not None or not root or not (Path(root) / self.name).exists():
            return None
        return Path(root) / self.name

    def _unavailable(self, err: Exception) -> str:
        """One line: what was tried, why it failed, and the local copy that replaces it."""
        tried = self.dataset_path + (f" (config {self.dataset_name})" if self.dataset_name else "")
        tried += f" at revision {self.revision}" if self.revision else " (default branch, unpinned)"
        root = os.environ.get(DATA_DIR_ENV)
        note = f"; {DATA_DIR_ENV}={root} has no '{self.name}' folder" if root else ""
        download = f"hf download {self.dataset_path} --repo-type dataset"
        download += (f" --revision {self.revision}" if self.revision else "") + (f" --include '{self.dataset_name}/*'" if self.dataset_name else "")
        return (
            f"task {self.name!r}: could not load the Hub dataset {tried}: {type(err).__name__}: {one_line(err)}{note}. "
            f"Use a local copy: set {DATA_DIR_ENV}=DIR where DIR/{self.name}/ holds the dataset's data files named by split "
            f"({self.train_split}, {self.test_split}, ...) or a DatasetDict.save_to_disk copy, "
            f"e.g. {download} --local-dir DIR/{self.name}"
        )

    def _normalise(self, ds: datasets.Dataset, role: str) -> datasets.Dataset:
        """Rename columns to template fields, keep only those and an int ``label``."""
        wanted = {self.column(f): f for f in self.template_fields}
        missing = [c for c in list(wanted) + [self.label_field] if c not in ds.column_names]
        if missing:
            raise ValueError(
                f"task {self.name!r} ({role} split): the data lacks the columns {missing}; it has "
                f"{ds.column_names}. Map template fields to columns with fields={{field: column}}."
            )
        ds = ds.select_columns(list(wanted) + [self.label_field])
        renames = {c: f for c, f in wanted.items() if c != f}
        if self.label_field != "label":
            renames[self.label_field] = "label"
        if renames:
            ds = ds.rename_columns(renames)
        labels = ds["label"]
        bad = sorted({lab for lab in labels if not isinstance(lab, int) or not 0 <= lab < len(self.label_words)}, key=str)
        if bad:
            raise ValueError(
                f"task {self.name!r} ({role} split): labels {bad[:5]} do not index the "
                f"{len(self.label_words)} label words {list(self.label_words)} (unlabelled split? wrong label words?)."
            )
        return ds
