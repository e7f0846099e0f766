"""The per-layer curves of every metric: what each figure shows, read once for the PNGs and report.html.

A *family* is one figure (``simaou.png``, ``simam.png``, ``kendall.png`` and the matching section of
report.html); each of its *panels* is one metric with its axis name, the pretrained model's curve,
the curve of every control the report holds (``report["controls"]``: the untrained copy today) and
the metric's baseline where it has one. With the per-query scores (``scores.safetensors``) the
pretrained curve gets a band: per layer, the bootstrap 95% interval over queries, seeded with the
run's seed (:func:`~hf_metaopt.analysis.metrics.layer_bootstrap_ci`); without them it has none.
The metrics are defined in ``docs/analysis.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import metrics

__all__ = ["FAMILIES", "Curve", "Family", "Panel", "PanelCurves", "layer_curves", "lookup"]

COSINE = "cosine similarity"


@dataclass(frozen=True)
class Panel:
    """One metric per layer: where its values are in a report, and in the per-query scores (``metric/<scores>``)."""

    title: str  # may hold "{k}", the k of a top-k recall level
    axis: str
    path: tuple[str, ...]
    scores: str | None = None
    baseline: tuple[str, ...] | None = None
    baseline_name: str = ""
    ranked: bool = False  # summarised over the first kendall n_queries queries only


@dataclass(frozen=True)
class Family:
    file: str
    title: str
    panels: tuple[Panel, ...]


FAMILIES = (
    Family("simaou.png", "SimAOU: cos(ICL update, FT update) of the attention output", (
        Panel("SimAOU", COSINE, ("simaou", "per_layer"), "simaou", ("simaou", "random_per_layer"), "random vector"),
        Panel("SimAOU unnormalised (Deutch et al.)", COSINE, ("simaou", "unnormalized_per_layer"), "simaou_unnormalized"),
    )),
    Family("simam.png", "SimAM: attention-map similarity over the query's own tokens", (
        Panel("before finetuning: cos(ICL, ZSL)", COSINE, ("simam", "per_layer_before"), "simam_before"),
        Panel("after finetuning: cos(ICL, FT)", COSINE, ("simam", "per_layer_after"), "simam_after",
              ("simam", "per_layer_before"), "before finetuning"),
        Panel("delta: cos(ICL - ZSL, FT - ZSL)", COSINE, ("simam", "per_layer_delta"), "simam_delta"),
    )),
    Family("kendall.png", "Do ICL attention and the FT side rank the demonstration tokens alike?", (
        Panel("Kendall, token level", "Kendall's tau", ("kendall", "per_layer"), "kendall_token",
              ("kendall", "random_per_layer"), "random scores", ranked=True),
        Panel("Kendall, example level (attention mass)", "Kendall's tau", ("kendall", "example_level", "per_layer"),
              "kendall_example", ("kendall", "example_level", "random_per_layer"), "random scores", ranked=True),
        Panel("top-{k} recall, tokens", "share of FT's top k in ICL's top k", ("topk_recall", "token_level", "per_layer"),
              "recall_token", ("topk_recall", "token_level", "random_per_layer"), "random ranking", ranked=True),
        Panel("top-{k} recall, demonstrations", "share of FT's top k in ICL's top k",
              ("topk_recall", "example_level", "per_layer"), "recall_example",
              ("topk_recall", "example_level", "random_per_layer"), "random ranking", ranked=True),
    )),
)


@dataclass
class Curve:
    """One line of a panel: ``role`` is ``metric``, ``control`` or ``baseline``; ``key`` its palette name."""

    name: str
    role: str
    key: str
    values: list[float | None]
    band: list[list[float] | None] | None = None


@dataclass
class PanelCurves:
    panel: Panel
    title: str
    curves: list[Curve] = field(default_factory=list)


def lookup(data: Any, path: tuple[str, ...]) -> Any:
    """``data[path[0]][path[1]]...``, or ``None`` where a key is missing."""
    for key in path:
        if not isinstance(data, Mapping):
            return None
        data = data.get(key)
    return data


def _values(values: Any) -> list[float | None] | None:
    if not isinstance(values, (list, tuple)) or not values:
        return None
    return [None if v is None else float(v) for v in values]


def _band(panel: Panel, data: Mapping[str, Any], scores: Any) -> list[list[float] | None] | None:
    """Per-layer bootstrap intervals of the panel's metric from the per-query scores, if the run kept them."""
    arrays = getattr(scores, "arrays", None) or {}
    name = f"metric/{panel.scores}"
    config = data.get("config") or {}
    n_resamples = config.get("n_bootstrap", 1000)
    if panel.scores is None or name not in arrays or not n_resamples:
        return None
    values = np.asarray(arrays[name], dtype=np.float64)
    if panel.ranked:
        used = lookup(data, ("kendall", "n_queries"))
        values = values[:used] if used else values
    return metrics.layer_bootstrap_ci(values, n_resamples=int(n_resamples), seed=int(config.get("seed") or 0))


def layer_curves(data: Mapping[str, Any], scores: Any = None) -> list[tuple[Family, list[PanelCurves]]]:
    """Every family with the panels this report has values for (a 0.1 report has no top-k recall).

    ``data`` is a report dict; ``scores`` anything with ``.arrays`` holding ``metric/<name>``
    ``[Q, L]`` arrays (a :class:`~hf_metaopt.analysis.query_scores.QueryScores`), or ``None``.
    """
    controls = data.get("controls") or {}
    out = []
    for family in FAMILIES:
        panels = []
        for panel in family.panels:
            values = _values(lookup(data, panel.path))
            if values is None:
                continue
            k = lookup(data, panel.path[:-1] + ("k",))
            shown = PanelCurves(panel, panel.title.format(k=k if k is not None else "k"))
            shown.curves.append(Curve("pretrained", "metric", "pretrained", values, _band(panel, data, scores)))
            for name, control in controls.items():
                control_values = _values(lookup(control, panel.path))
                if control_values is not None:
                    shown.curves.append(Curve(f"{name.replace('_', ' ')} control", "control", name, control_values))
            baseline = _values(lookup(data, panel.baseline)) if panel.baseline else None
            if baseline is not None:
                shown.curves.append(Curve(panel.baseline_name, "baseline", "baseline", baseline))
            panels.append(shown)
        if panels:
            out.append((family, panels))
    return out
