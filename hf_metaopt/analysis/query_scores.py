"""The per-query scores of one analysis and their file, ``scores.safetensors`` (``docs/analysis.md``, "Per-query scores").

The report holds means; :class:`QueryScores` holds what they are means of, per query (and per
layer), plus, for the first ``n_inspect`` queries, the scores of every demonstration token on
both sides. Arrays (Q queries, L layers, H heads, T demonstration tokens)::

    labels [Q] int64                                 gold label
    predictions/{zsl,icl,ft} [Q] int64               predicted label index
    logprobs/{zsl,icl,ft} [Q, n_labels] float64      mean log-probability of each label word's tokens
    metric/<name> [Q, L] float64                     simaou, simaou_unnormalized, simaou_random,
                                                     simam_before, simam_after, simam_delta,
                                                     kendall_token, kendall_example, recall_token,
                                                     recall_example (each also <name>_random);
                                                     per-query metrics of later versions as [Q]
    visible/demo_tokens [Q, L] int64                 demonstration tokens the layer attends to
    visible/own_hidden [Q, L] int64                  query tokens it does not (sliding windows)
    inspect/query_index [n] int64                    the inspected queries (the first n)
    inspect/icl_mass [n, L, T] float32               ICL attention mass of each demonstration token, summed over heads
    inspect/icl_mass_heads [n, L, H, T] float32      the same per head
    inspect/icl_score [n, L, T] float64              ICL pre-softmax scores summed over heads (what Kendall ranks)
    inspect/ft_score [n, L, T] float64               the FT side's score of each training token (what Kendall ranks)
    inspect/visible [n, L, T] bool                   whether the layer attends to the token
    control/untrained/...                            the untrained control's predictions, logprobs, metric/, visible/

``meta`` (JSON) holds the texts and facts a reader needs: ``demo_tokens`` (each demonstration
token decoded on its own, in prefix order), ``demo_owner``, ``demonstrations``, ``queries``,
``label_words``, ``layers``, ``heads``, ``layer_types``, ``sliding_window``, ``windowed_layers``,
``n_inspect``, ``kendall_queries``, ``controls`` and the report's model and task identity.

Per-query rows are a few kilobytes per query; the inspected arrays are bounded by ``n_inspect``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..fileio import atomic_write_bytes

__all__ = ["FORMAT_VERSION", "SCORES_FILE", "QueryScores", "exported_name", "load_scores"]

SCORES_FILE = "scores.safetensors"
FORMAT_VERSION = 1
_META_KEY = "hf_metaopt"  # safetensors metadata: the JSON of ``meta``
_VERSION_KEY = "hf_metaopt_format"  # safetensors metadata: FORMAT_VERSION

# ScoreCollector row keys whose exported name is not the generic rule of exported_name.
_NAMES = {"simaou_raw": "metric/simaou_unnormalized", "demo_visible": "visible/demo_tokens", "own_hidden": "visible/own_hidden"}
_PREFIXES = (("pred_", "predictions/"), ("logprobs_", "logprobs/"))


def exported_name(key: str) -> str:
    """The array name in ``scores.safetensors`` of a :class:`~.scores.ScoreCollector` row key.

    ``pred_icl`` -> ``predictions/icl``, ``logprobs_icl`` -> ``logprobs/icl``, ``simaou_raw`` ->
    ``metric/simaou_unnormalized``, ``kendall_token_level_random`` -> ``metric/kendall_token_random``;
    any other key ``k`` -> ``metric/k`` (so rows added to the collector later are exported as they are).
    """
    if key in _NAMES:
        return _NAMES[key]
    for old, new in _PREFIXES:
        if key.startswith(old):
            return new + key[len(old):]
    return "metric/" + key.replace("_token_level", "_token").replace("_example_level", "_example")


def _stored(array: Any) -> np.ndarray:
    """``array`` as stored: bool kept, integers as int64, floats as float64 (float32 kept: the inspected masses)."""
    arr = np.asarray(array)
    if arr.dtype == np.bool_ or arr.dtype in (np.int64, np.float64, np.float32):
        return np.ascontiguousarray(arr)
    if np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.int64)
    if np.issubdtype(arr.dtype, np.floating):
        return arr.astype(np.float64)
    raise TypeError(f"per-query scores must be numbers or booleans; got dtype {arr.dtype}.")


def _file(path: str | os.PathLike) -> Path:
    path = Path(path)
    return path if path.suffix == ".safetensors" else path / SCORES_FILE


class QueryScores:
    """The per-query scores of one analysis: ``arrays`` (named as in this module's docstring) and ``meta``.

    Read from a run folder with :meth:`load` (or :func:`load_scores`); returned by the analysis
    (``AnalysisResult.scores``, ``report.scores`` with ``return_scores=True``). Read-only in spirit:
    the arrays are the file's.

        scores = QueryScores.load("runs/my-run")
        scores.per_query("simaou")            # [Q] mean over layers of each query's SimAOU
        scores.layer("kendall_token", 3)      # [Q] at layer 3
        scores["inspect/icl_mass"]            # [n, L, T] attention mass of each demonstration token
        scores.to_pandas()                    # one row per (control, query, layer, metric)
    """

    def __init__(self, arrays: Mapping[str, Any], meta: Mapping[str, Any] | None = None):
        self.arrays: dict[str, np.ndarray] = {str(k): _stored(v) for k, v in arrays.items()}
        self.meta: dict[str, Any] = json.loads(json.dumps(dict(meta or {}), allow_nan=False))  # JSON-able, a copy

    @classmethod
    def from_rows(
        cls,
        labels: Any,
        rows: Mapping[str, Any],
        inspected: Mapping[str, Any] | None = None,
        controls: Mapping[str, Mapping[str, Any]] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> "QueryScores":
        """From a collector's rows (``ScoreCollector.collected()``, keys named by :func:`exported_name`), its
        inspected queries (``ScoreCollector.inspected()``, under ``inspect/``) and each control's rows
        (under ``control/<name>/``)."""
        arrays = {"labels": np.asarray(labels, dtype=np.int64)}
        arrays.update({exported_name(k): v for k, v in rows.items()})
        arrays.update({f"inspect/{k}": v for k, v in (inspected or {}).items()})
        for name, control_rows in (controls or {}).items():
            arrays.update({f"control/{name}/{exported_name(k)}": v for k, v in control_rows.items()})
        return cls(arrays, meta)

    # -- file

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``scores.safetensors`` into the folder ``path`` (or to ``path`` itself if it ends in
        ``.safetensors``), atomically; return the file's path."""
        from safetensors.numpy import save

        metadata = {_META_KEY: json.dumps(self.meta, allow_nan=False), _VERSION_KEY: str(FORMAT_VERSION)}
        return atomic_write_bytes(_file(path), save(self.arrays, metadata=metadata))

    @classmethod
    def load(cls, path_or_run_dir: str | os.PathLike) -> "QueryScores":
        """Read ``scores.safetensors`` from a run folder (or the file's path).

        Raises:
            FileNotFoundError: no such file (runs of version 0.1 have none).
            ValueError: the file is not an hf-metaopt scores file, or is of a newer format.
        """
        from safetensors import SafetensorError, safe_open

        path = _file(path_or_run_dir)
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist; pass a run folder written by hf-metaopt >= 0.2 (or its "
                                    f"{SCORES_FILE}). Older runs have no per-query scores: rerun the analysis to get them.")
        try:
            with safe_open(str(path), framework="numpy") as fh:
                metadata = fh.metadata() or {}
                arrays = {name: fh.get_tensor(name) for name in fh.keys()}
        except SafetensorError as err:
            raise ValueError(f"{path} is not a readable safetensors file ({err}); rerun the analysis to write it again.") from None
        version = metadata.get(_VERSION_KEY)
        if version is None or _META_KEY not in metadata:
            raise ValueError(f"{path} is a safetensors file but not hf-metaopt's per-query scores (no {_VERSION_KEY!r} metadata).")
        if not version.isdigit() or int(version) > FORMAT_VERSION:
            raise ValueError(f"{path} has scores format {version!r}, newer than this hf-metaopt reads ({FORMAT_VERSION}); "
                             "upgrade hf-metaopt.")
        return cls(arrays, json.loads(metadata[_META_KEY]))

    # -- reading

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    def __contains__(self, name: object) -> bool:
        return name in self.arrays

    @property
    def n_queries(self) -> int:
        return int(self.arrays["labels"].shape[0])

    def metrics(self, control: str | None = None) -> list[str]:
        """The metric names (``metric/`` left off) of the main run, or of ``control`` (e.g. ``"untrained"``)."""
        prefix = _prefix(control) + "metric/"
        return [name[len(prefix):] for name in self.arrays if name.startswith(prefix)]

    def _array(self, metric: str, control: str | None) -> np.ndarray:
        prefix = _prefix(control)
        for name in (prefix + metric, prefix + "metric/" + metric):
            if name in self.arrays:
                return self.arrays[name]
        raise KeyError(f"no per-query metric {metric!r}{f' for control {control!r}' if control else ''}; "
                       f"these are stored: {self.metrics(control)}.")

    def per_query(self, metric: str, control: str | None = None) -> np.ndarray:
        """``[Q]``: each query's ``metric`` (e.g. ``"simaou"``, ``"metric/simam_delta"``) averaged over layers.

        The report's ``mean`` of the metric is the mean of this over the queries (over the first
        ``meta["kendall_queries"]`` for Kendall and top-k recall); a per-query metric without
        layers is returned as it is. ``control``: read the control of that name (``"untrained"``).
        """
        arr = self._array(metric, control)
        return arr.mean(axis=1) if arr.ndim == 2 else arr

    def layer(self, metric: str, layer: int, control: str | None = None) -> np.ndarray:
        """``[Q]``: each query's ``metric`` at ``layer``."""
        arr = self._array(metric, control)
        if arr.ndim != 2:
            raise ValueError(f"{metric!r} has no layers (shape {arr.shape}); read it with per_query({metric!r}).")
        if not -arr.shape[1] <= layer < arr.shape[1]:
            raise IndexError(f"layer {layer} out of range: the model has {arr.shape[1]} layers (0..{arr.shape[1] - 1}).")
        return arr[:, layer]

    def to_pandas(self):
        """A tidy ``pandas.DataFrame`` of every per-query metric and visibility count: one row per
        (``control``, ``query``, ``layer``, ``metric``) with its ``value``. ``control`` is ``None`` for
        the main run; ``layer`` is ``<NA>`` for a metric without layers."""
        import pandas as pd

        frames = []
        for name, arr in self.arrays.items():
            control, _, rest = name.removeprefix("control/").partition("/") if name.startswith("control/") else (None, "", name)
            if not rest.startswith(("metric/", "visible/")):
                continue
            values = arr.reshape(arr.shape[0], -1).astype(np.float64)
            n_layers = values.shape[1] if arr.ndim == 2 else 1
            frames.append(pd.DataFrame({
                "control": control,
                "query": np.repeat(np.arange(arr.shape[0]), n_layers),
                "layer": pd.array(np.tile(np.arange(n_layers), arr.shape[0]) if arr.ndim == 2 else [None] * arr.shape[0],
                                  dtype="Int64"),
                "metric": rest,
                "value": values.ravel(),
            }))
        return pd.concat(frames, ignore_index=True)

    def __repr__(self) -> str:
        return f"QueryScores(n_queries={self.n_queries}, arrays={len(self.arrays)}, n_inspect={self.meta.get('n_inspect')})"


def _prefix(control: str | None) -> str:
    return f"control/{control}/" if control else ""


def load_scores(path_or_run_dir: str | os.PathLike) -> QueryScores:
    """Read the per-query scores of a run folder (its ``scores.safetensors``): :meth:`QueryScores.load`."""
    return QueryScores.load(path_or_run_dir)
