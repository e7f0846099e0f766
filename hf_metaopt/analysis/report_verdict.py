"""The verdict as a table: one rendering of ``report["verdict"]`` for report.md, report.html, the Hub card and the CLI.

:func:`verdict_table` gives the columns and, per metric, the cells (text, and a ``tone``: ``"yes"`` /
``"no"`` for a comparison's answer); each renderer lays them out its own way. A control's columns
are there exactly for the controls the run holds; the baseline columns are there always (``-`` for
a metric without one). The numbers are the verdict's (``docs/analysis.md``, "Verdict").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["CONTROL_TITLES", "QUESTION", "cell_text", "verdict_lines", "verdict_table"]

QUESTION = "Does ICL behave like finetuning on this model, by each metric, beyond its controls?"
CONTROL_TITLES = {"untrained": "untrained control", "shuffled_labels": "shuffled-label control"}
_TOPK_LEVELS = {"recall_token": "token_level", "recall_example": "example_level"}


def _num(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _p(p: float | None) -> str:
    return "p n/a" if p is None else ("p < 0.001" if p < 0.001 else f"p {p:.3f}")


def _value(part: Mapping[str, Any], label: str = "") -> dict[str, Any]:
    """``{"text": "0.250", "sub": "[0.210, 0.290]"}``; a ratio with its counts, ``0.667 (2 of 3)``; a baseline with its name."""
    text = label + _num(part.get("value"))
    counts = part.get("counts")
    if part.get("value") is not None and counts:
        text += f" ({counts[0]} of {counts[1]})"
    ci = part.get("ci95")
    return {"text": text, "sub": f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""}


def _answer(beyond: bool | None, p: float | None = None, with_p: bool = True) -> dict[str, Any]:
    """``{"text": "yes", "sub": "p 0.004", "tone": "yes"}`` (``n/a`` where the comparison is undefined)."""
    word = {True: "yes", False: "no", None: "n/a"}[beyond]
    return {"text": word, "sub": _p(p) if with_p and beyond is not None else "", "tone": None if beyond is None else word}


def _name(row: Mapping[str, Any], data: Mapping[str, Any]) -> str:
    level = _TOPK_LEVELS.get(row.get("metric"))
    k = ((data.get("topk_recall") or {}).get(level) or {}).get("k") if level else None
    return str(row.get("name", "?")).replace("top-k", f"top-{k}") if k else str(row.get("name", "?"))


def verdict_table(data: Mapping[str, Any]) -> dict[str, Any] | None:
    """``{"question", "columns": [str], "rows": [[{"text", "sub", "tone"}]], "alpha", "test"}``; ``None`` without a verdict.

    Columns: metric, the direction that means alike, the pretrained value, then per control the run holds
    its value and "beyond? (p)", the baseline and "beyond? (p)", and whether the pretrained value is beyond
    all of them. ``sub`` is a cell's second line (a value's 95% interval, an answer's p-value), ``tone``
    an answer's ``"yes"`` / ``"no"``.
    """
    verdict = data.get("verdict")
    if not isinstance(verdict, Mapping) or not verdict.get("rows"):
        return None
    controls = list(verdict.get("controls") or [])
    columns = ["metric", "alike when", "pretrained [95% interval]"]
    for name in controls:
        columns += [f"{CONTROL_TITLES.get(name, name)} [95% interval]", "beyond? (p)"]
    columns += ["baseline [95% interval]", "beyond? (p)", "beyond all its controls"]
    rows = []
    for row in verdict["rows"]:
        comparisons = row.get("comparisons") or {}
        cells = [{"text": _name(row, data)}, {"text": row.get("alike", "higher")}, _value(row)]
        for name in controls + ["baseline"]:
            c = comparisons.get(name)
            if c is None:
                cells += [{"text": "-"}, {"text": "-"}]
                continue
            label = f"{c['name']} " if name == "baseline" and c.get("name") else ""
            cells += [_value(c, label), _answer(c.get("beyond"), c.get("p_value"))]
        cells.append(_answer(row.get("beyond_all"), with_p=False) if comparisons else {"text": "-"})
        rows.append([{"sub": "", "tone": None, **cell} for cell in cells])
    return {"question": QUESTION, "columns": columns, "rows": rows, "alpha": verdict.get("alpha"), "test": verdict.get("test")}


def cell_text(cell: Mapping[str, Any]) -> str:
    """A cell on one line (report.md, the card): ``0.250 [0.210, 0.290]``, ``yes (p 0.004)``."""
    sub = cell.get("sub")
    if not sub:
        return str(cell["text"])
    return f"{cell['text']} ({sub})" if sub.startswith("p") else f"{cell['text']} {sub}"


def verdict_lines(data: Mapping[str, Any]) -> list[str]:
    """One compact line per metric for the command line: ``SimAOU 0.250: untrained yes (p 0.004), ... -> beyond all: yes``."""
    verdict = data.get("verdict")
    if not isinstance(verdict, Mapping):
        return []
    lines = []
    for row in verdict.get("rows") or []:
        parts = []
        for name, c in (row.get("comparisons") or {}).items():
            label = c.get("name") if name == "baseline" else name.replace("_", " ")
            parts.append(f"{label} {cell_text(_answer(c.get('beyond'), c.get('p_value')))}")
        direction = "" if row.get("alike") == "higher" else " (lower = alike)"
        answer = _answer(row.get("beyond_all"))["text"] if parts else "-"
        lines.append(f"{_name(row, data)}{direction} {_num(row.get('value'))}: {', '.join(parts) or 'no control'}"
                     f" -> beyond all: {answer}")
    return lines
