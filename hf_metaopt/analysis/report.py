"""ICLAnalysisReport: the result of one ICL-vs-finetuning analysis (contract 3).

The dictionary schema (every float is a plain float, every list a JSON list;
"ci95" entries are ``[low, high]`` bootstrap 95% intervals over queries)::

    accuracy:       {zsl, icl, ft}                 floats in [0, 1]
    accuracy_ci95:  {zsl, icl, ft}                 [low, high]
    predictions:    {zsl, icl, ft}                 label indices per query
    labels:         [int]                          gold label per query
    rec2ftp:        float | None                   None when FT fixes nothing
    rec2ftp_ci95:   [low, high] | None
    simaou:   {per_layer, mean, ci95, random_mean, random_per_layer,
               unnormalized_per_layer, unnormalized_mean, unnormalized_ci95}
    simam:    {per_layer_before, per_layer_after, per_layer_delta,
               before, after, delta, before_ci95, after_ci95, delta_ci95}
    kendall:  {per_layer, mean, ci95, random_mean, random_per_layer}
    controls: {"untrained": {accuracy, rec2ftp, simaou, simam, kendall}} or {}
    config:   {model, model_revision, task, template, label_words, separator,
               position, method, learning_rate, seed, n_demonstrations (used),
               n_queries, demonstrations_used (indices or ids), control,
               versions: {hf_metaopt, transformers, torch, peft}}
    notes:    [str]                                warnings the run raised
    selection: optional, the dev-split grid-search table ({"rows": [...], "chosen": {...}})
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..fileio import atomic_write_json

# Keys every report holds (ARCHITECTURE.md, contract 3).
REQUIRED_KEYS = ("accuracy", "predictions", "labels", "rec2ftp", "simaou", "simam", "kendall", "config")


class ICLAnalysisReport:
    """Accuracies, predictions and the four similarity metrics of one analysis.

    The report is a thin wrapper over a JSON-serialisable dictionary
    (:meth:`to_dict`), so it round-trips through :meth:`to_json` / :meth:`from_json`.
    """

    def __init__(self, data: dict[str, Any]):
        missing = [k for k in REQUIRED_KEYS if k not in data]
        if missing:
            raise ValueError(f"ICLAnalysisReport data lacks the keys {missing}; it needs all of {list(REQUIRED_KEYS)}.")
        self._data = data

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __repr__(self) -> str:
        acc = self._data["accuracy"]
        return f"ICLAnalysisReport(accuracy={acc}, rec2ftp={self._data['rec2ftp']})"

    def to_dict(self) -> dict[str, Any]:
        """A deep copy of the report as plain JSON types."""
        return json.loads(json.dumps(self._data, allow_nan=False))

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """The report as JSON text; with ``path``, also written there atomically."""
        text = json.dumps(self._data, indent=2, allow_nan=False)
        if path is not None:
            atomic_write_json(Path(path), self._data)
        return text

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ICLAnalysisReport":
        return cls(dict(data))

    @classmethod
    def from_json(cls, path_or_text: str | os.PathLike) -> "ICLAnalysisReport":
        """Load a report from a ``report.json`` path (or a run folder holding one) or JSON text."""
        if isinstance(path_or_text, str) and path_or_text.lstrip().startswith("{"):
            return cls(json.loads(path_or_text))
        path = Path(path_or_text)
        if path.is_dir():
            path = path / "report.json"
        return cls(json.loads(path.read_text()))
