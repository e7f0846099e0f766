"""The headline of report.html: the verdict first (:mod:`.report_verdict`), then each metric against its baseline and
every control, read from report keys.

One :class:`Row` per metric names where its value, its 95% interval and its baseline are in a
report (key paths, ``docs/analysis.md`` defines the metrics); each control the report holds
(``report["controls"]``, e.g. ``untrained``) becomes a column read at the same paths. A new
metric or control needs no code here beyond a row: a row whose value the report lacks is left
out (a 0.1 report has no top-k recall), and a new control shows up as a column by itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .report_curves import lookup
from .report_verdict import verdict_table

__all__ = ["ROWS", "Row", "headline"]


@dataclass(frozen=True)
class Row:
    name: str  # may hold "{k}", the k found beside the value
    value: tuple[str, ...]
    ci: tuple[str, ...] | None = None
    baseline: tuple[str, ...] | None = None
    baseline_name: str = ""
    percent: bool = False


ROWS = (
    Row("Accuracy ZSL (zero-shot)", ("accuracy", "zsl"), ("accuracy_ci95", "zsl"), percent=True),
    Row("Accuracy ICL (demonstrations in context)", ("accuracy", "icl"), ("accuracy_ci95", "icl"), percent=True),
    Row("Accuracy FT (finetuned on the demonstrations)", ("accuracy", "ft"), ("accuracy_ci95", "ft"), percent=True),
    Row("Rec2FTP", ("rec2ftp",), ("rec2ftp_ci95",)),
    Row("SimAOU", ("simaou", "mean"), ("simaou", "ci95"), ("simaou", "random_mean"), "random vector"),
    Row("SimAOU unnormalised (Deutch et al.)", ("simaou", "unnormalized_mean"), ("simaou", "unnormalized_ci95")),
    Row("SimAM before finetuning cos(ICL, ZSL)", ("simam", "before"), ("simam", "before_ci95")),
    Row("SimAM after finetuning cos(ICL, FT)", ("simam", "after"), ("simam", "after_ci95"), ("simam", "before"), "before finetuning"),
    Row("SimAM delta cos(ICL-ZSL, FT-ZSL)", ("simam", "delta"), ("simam", "delta_ci95")),
    Row("Kendall's tau, token level", ("kendall", "mean"), ("kendall", "ci95"), ("kendall", "random_mean"), "random scores"),
    Row("Kendall's tau, example level", ("kendall", "example_level", "mean"), ("kendall", "example_level", "ci95"),
        ("kendall", "example_level", "random_mean"), "random scores"),
    Row("top-{k} recall, tokens", ("topk_recall", "token_level", "mean"), ("topk_recall", "token_level", "ci95"),
        ("topk_recall", "token_level", "random_mean"), "random ranking"),
    Row("top-{k} recall, demonstrations", ("topk_recall", "example_level", "mean"), ("topk_recall", "example_level", "ci95"),
        ("topk_recall", "example_level", "random_mean"), "random ranking"),
)


def _interval(value: Any) -> list[float] | None:
    if isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
        return [float(value[0]), float(value[1])]
    return None


def headline(data: Mapping[str, Any]) -> dict[str, Any]:
    """``{"controls": [names], "rows": [{name, percent, value, ci, baseline, baseline_name, controls: {name: {value, ci}}}],
    "verdict": verdict_table(data)}`` (the verdict ``None`` for a report without one).

    ``value`` is ``None`` where the metric is undefined (Rec2FTP when finetuning fixes no query).
    """
    controls = {name: c for name, c in (data.get("controls") or {}).items() if isinstance(c, Mapping)}
    rows = []
    for row in ROWS:
        parent = lookup(data, row.value[:-1]) if len(row.value) > 1 else data
        if not isinstance(parent, Mapping) or row.value[-1] not in parent:
            continue
        k = lookup(data, row.value[:-1] + ("k",))
        rows.append({
            "name": row.name.format(k=k if k is not None else "k"),
            "percent": row.percent,
            "value": lookup(data, row.value),
            "ci": _interval(lookup(data, row.ci)) if row.ci else None,
            "baseline": lookup(data, row.baseline) if row.baseline else None,
            "baseline_name": row.baseline_name,
            "controls": {name: {"value": lookup(c, row.value), "ci": _interval(lookup(c, row.ci)) if row.ci else None}
                         for name, c in controls.items()},
        })
    return {"controls": list(controls), "rows": rows, "verdict": verdict_table(data)}
