"""ICLAnalysisReport: the result of one ICL-vs-finetuning analysis.

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
    kendall:  {per_layer, mean, ci95, random_mean, random_per_layer, n_queries,
               example_level: {per_layer, mean, ci95, random_mean, random_per_layer}}
               (example level: tau over each demonstration's softmax attention mass;
               reports of version 0.1 summed raw scores there)
    topk_recall: {token_level: {k, per_layer, mean, ci95, random_mean, random_per_layer},
                  example_level: {same}, n_queries}     absent in 0.1 reports
    label_counts: {demonstrations, gold, predictions: {zsl, icl, ft}}   counts per label index
                   (lists indexed like label_words) over the demonstrations used, the
                   gold labels and each route's predictions
    finetuning: {loss_per_step: [float | None],   the FT route's training loss per SGD step (one per
                                                   demonstration, in order; None where inf/NaN)
                 loss_before, loss_after,          mean loss on the demonstrations with the weights
                                                   before / after finetuning (None where inf/NaN)
                 learning_rate, diverged: bool, divergence: [reason],
                 stability: {checked: true, perturbation: "float64 training", agreement, n_queries,
                             accuracy, update_relative_difference}
                            or {checked: false, reason}}
    controls: {"untrained": {accuracy, rec2ftp, simaou, simam, kendall, topk_recall,
               label_counts: {predictions: {zsl, icl, ft}}, finetuning}} or {}
    config:   every AnalysisOptions field (n_demonstrations and n_queries replaced by the
               numbers used), template, label_words, separator, start_token_used,
               model, model_revision, task, split, demonstrations_used (ids), query_ids,
               dtype, versions: {hf_metaopt, transformers, torch, peft},
               environment: {cpu_capability, num_threads, device, cuda_device,
               deterministic_algorithms, platform, python}
    notes:    [str]                                warnings the run raised
    selection: optional, the dev-split grid-search table ({"rows": [...], "chosen": {...}})
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..fileio import atomic_write_json, atomic_write_text, folder_mode
from .report_markdown import PLOT_FILES, markdown, metric_rows
from .report_plots import plots

__all__ = ["ICLAnalysisReport", "PLOT_FILES", "REQUIRED_KEYS", "metric_rows"]

# Keys every report holds (the pipeline's documented contract).
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

    # ------------------------------------------------------------------ files

    def to_markdown(self, plots_dir: str | None = ".") -> str:
        """A readable summary: accuracy table, the four metrics with baselines and 95%
        intervals, the untrained control, the dev-split selection, per-layer values, the
        settings and the run's notes. ``plots_dir`` (relative link target) embeds the PNGs;
        ``None`` leaves them out."""
        return markdown(self._data, plots_dir)

    def plot(self, directory: str | os.PathLike) -> list[Path]:
        """Write the PNG plots into ``directory`` (matplotlib, Agg backend) and return their paths:
        accuracy bars (ZSL / ICL / FT with 95% error bars) and per-layer SimAOU, SimAM
        (before / after / delta) and Kendall curves with their baselines."""
        return plots(self._data, Path(directory))

    def save(self, run_dir: str | os.PathLike) -> Path:
        """Write ``report.json``, ``report.md`` and the PNGs into the new folder ``run_dir``.

        The files are written into a temporary sibling folder that is renamed to ``run_dir``
        once complete, so a crash never leaves a half-written run and an existing run is never
        touched: if ``run_dir`` exists, :class:`FileExistsError` (pick another name).
        """
        run_dir = Path(run_dir)
        if run_dir.exists():
            raise FileExistsError(f"run folder {str(run_dir)!r} already exists; choose another output dir (runs are never overwritten).")
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{run_dir.name}.", suffix=".tmp", dir=run_dir.parent))
        try:
            atomic_write_json(tmp / "report.json", self._data)
            atomic_write_text(tmp / "report.md", self.to_markdown())
            self.plot(tmp)
            os.chmod(tmp, folder_mode())  # mkdtemp makes it private; a run folder is an ordinary folder
            os.rename(tmp, run_dir)  # atomic; fails rather than replace a folder made meanwhile
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return run_dir
