"""summary.html: the sweep on one self-contained page (``templates/summary.html.j2``).

Per (method, learning rate, balanced draw, demonstration orders): the tables of summary.md (models x tasks,
mean ± sample std over seeds, each control's rows, the paper's numbers beside them; with several orders
their spread and agreement), the bars of
summary.png as interactive charts (one y scale per metric family), and per model the per-layer
curves of every metric (read from the runs' ``report.json``: one line per task, the mean over
seeds with a band of ± one sample std over seeds, the untrained control and the baselines averaged
over tasks). Last, every run with its accuracies and a relative link to its ``report.html``, so the
folder can be moved or served as a whole.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..analysis.html_page import figure_json, render
from ..analysis.palette import color
from ..analysis.report_curves import FAMILIES as CURVE_FAMILIES
from ..analysis.report_curves import Curve, PanelCurves, lookup
from ..analysis.report_html import curves_figure
from .paper import PAPER, paper_task
from .plot import FAMILIES, PAPER_ACCURACY_INDEX, family_points, series_color
from .summary import CONTROL_PARTS
from .table import PART_NAMES, grid_controls, section_tables, setting_title, settings_of, table_rows

__all__ = ["summary_html"]

TEMPLATES = Path(__file__).parent / "templates"


def _stat(point: dict, part: str, metric: str, key: str = "mean") -> float | None:
    return ((point.get(part) or {}).get(metric) or {}).get(key)


def _bars_figure(summary: dict, setting: tuple, labels: list[str], family: tuple, accuracy: bool) -> Any:
    """One family's bars for every model side by side (shared y axis), as summary.png draws them."""
    from plotly.subplots import make_subplots

    title, axis, series = family
    tasks = summary["grid"]["tasks"]
    fig = make_subplots(rows=1, cols=len(labels), shared_yaxes=True, subplot_titles=labels, horizontal_spacing=0.04)
    shown: set[str] = set()
    for m, label in enumerate(labels):
        points = family_points(summary, setting, label)
        for i, (metric, name) in enumerate(series):
            hue = series_color(metric, i)
            means = [_stat(p, "pretrained", metric) for p in points]
            stds = [_stat(p, "pretrained", metric, "std") or 0.0 for p in points]
            x, y, err = list(tasks), list(means), list(stds)
            if not accuracy:
                for size in PAPER:
                    x.append(f"paper {size} (6-task avg.)")
                    y.append(PAPER[size]["average"].get(metric))
                    err.append(0.0)
            fig.add_bar(x=x, y=y, name=name, offsetgroup=metric, marker=dict(color=hue, pattern_shape="/" if metric.endswith("_random") else ""),
                        error_y=dict(type="data", array=err, thickness=1), legendgroup=name, showlegend=name not in shown,
                        hovertemplate=f"{name}: " + "%{y:.3f} ± %{error_y.array:.3f}<extra>%{x}</extra>", row=1, col=m + 1)
            shown.add(name)
            for part in CONTROL_PARTS:
                controls = [_stat(p, part, metric) for p in points]
                if any(v is not None for v in controls):
                    title = f"{PART_NAMES[part]} control"
                    fig.add_scatter(x=list(tasks), y=controls, mode="markers", name=title, legendgroup=part, offsetgroup=metric,
                                    showlegend=part not in shown, marker=dict(symbol="x", color=color(part), size=9),
                                    hovertemplate=f"{name}, {title}: " + "%{y:.3f}<extra>%{x}</extra>", row=1, col=m + 1)
                    shown.add(part)
            if accuracy:
                for size, symbol in zip(PAPER, ("diamond", "triangle-up")):
                    paper = [PAPER[size]["accuracy"][n][PAPER_ACCURACY_INDEX[metric]] / 100 if (n := paper_task(t)) else None for t in tasks]
                    if any(v is not None for v in paper):
                        fig.add_scatter(x=list(tasks), y=paper, mode="markers", name=f"paper {size}", legendgroup=f"paper {size}",
                                        offsetgroup=metric,
                                        showlegend=f"paper {size}" not in shown, marker=dict(symbol=symbol, color=color("paper"), size=9),
                                        hovertemplate=f"paper {size}, {name}: " + "%{y:.3f}<extra>%{x}</extra>", row=1, col=m + 1)
                        shown.add(f"paper {size}")
    fig.update_layout(template="none", barmode="group", scattermode="group", height=380, title=dict(text=title, font=dict(size=14)),
                      margin=dict(l=60, r=20, t=70, b=60), legend=dict(orientation="h", y=-0.2), hovermode="closest")
    fig.update_yaxes(title_text=axis, row=1, col=1, gridcolor="#eeeeee")
    if accuracy:
        fig.update_yaxes(range=[0, 1])
    return fig


def _reports(out_dir: Path, runs: list[str]) -> list[dict]:
    reports = []
    for run in runs:
        path = out_dir / run / "report.json"
        if path.is_file():
            reports.append(json.loads(path.read_text(encoding="utf-8")))
    return reports


def _mean_std(rows: list[list[float | None]]) -> tuple[list[float | None], list[list[float] | None] | None]:
    """Per layer, the mean over runs and the band mean ± sample std (``None`` with fewer than two runs)."""
    width = max(len(r) for r in rows)
    arr = np.array([[np.nan if v is None else v for v in r] + [np.nan] * (width - len(r)) for r in rows], dtype=np.float64)
    with np.errstate(all="ignore"):
        mean = np.nanmean(arr, axis=0)
        std = np.nanstd(arr, axis=0, ddof=1) if len(rows) > 1 else None
    values = [None if math.isnan(v) else float(v) for v in mean]
    if std is None:
        return values, None
    band = [None if math.isnan(m) or math.isnan(s) else [float(m - s), float(m + s)] for m, s in zip(mean, std)]
    return values, band


def _layer_panels(by_task: dict[str, list[dict]]) -> list[PanelCurves]:
    """Every per-layer panel: a line per task (mean over seeds, band ± std), the control and baseline over all runs."""
    everything = [r for reports in by_task.values() for r in reports]
    panels = []
    for family in CURVE_FAMILIES:
        for panel in family.panels:
            shown = PanelCurves(panel, panel.title.format(k=lookup(everything[0], panel.path[:-1] + ("k",)) or "k"))
            for i, (task, reports) in enumerate(by_task.items()):
                rows = [v for v in (lookup(r, panel.path) for r in reports) if v]
                if rows:
                    values, band = _mean_std(rows)
                    shown.curves.append(Curve(task, "metric", task, values, band))
            for part in CONTROL_PARTS:
                controls = [v for v in (lookup((r.get("controls") or {}).get(part), panel.path) for r in everything) if v]
                if controls:
                    shown.curves.append(Curve(f"{PART_NAMES[part]} control (mean over tasks)", "control", part, _mean_std(controls)[0]))
            baselines = [v for v in (lookup(r, panel.baseline) for r in everything) if v] if panel.baseline else []
            if baselines:
                shown.curves.append(Curve(f"{panel.baseline_name} (mean over tasks)", "baseline", "baseline", _mean_std(baselines)[0]))
            if shown.curves:
                panels.append(shown)
    return panels


def _runs(summary: dict, out_dir: Path) -> list[dict]:
    rows = []
    for group in summary["groups"]:
        for run, seed in zip(group["runs"], group["seeds"]):
            report = out_dir / run / "report.json"
            acc = json.loads(report.read_text(encoding="utf-8")).get("accuracy", {}) if report.is_file() else {}
            page = "report.html" if (out_dir / run / "report.html").is_file() else "report.md"
            rows.append({"model": group["model_label"], "task": group["task"], "method": group["method"],
                         "learning_rate": group["learning_rate"], "control": group["control"], "seed": seed,
                         "permutations": group.get("permutations", 1),
                         "balanced": group["balanced_demonstrations"], "accuracy": acc, "link": f"{run}/{page}", "page": page})
    return rows


def summary_html(summary: dict, out_dir: str | Path) -> str:
    """summary.html for a :func:`~hf_metaopt.sweep.summary.summarize` dictionary whose runs lie under ``out_dir``."""
    out_dir = Path(out_dir)
    labels = list(dict.fromkeys(g["model_label"] for g in summary["groups"]))
    sections, charts = [], []
    for s, setting in enumerate(settings_of(summary)):
        method, lr, balanced, permutations = setting
        tables = [{"title": title, "rows": table_rows(summary, method, lr, balanced, metrics, pct, permutations)}
                  for title, metrics, pct in section_tables(permutations)]
        ids = []
        for f, family in enumerate(FAMILIES):
            ids.append(f"bars-{s}-{f}")
            charts.append({"id": ids[-1], "figure": figure_json(_bars_figure(summary, setting, labels, family, accuracy=f == 0))})
        for m, label in enumerate(labels):
            groups = [g for g in summary["groups"] if g["model_label"] == label and (
                g["method"], g["learning_rate"], g["balanced_demonstrations"], g.get("permutations", 1)) == setting]
            by_task = {}
            for g in groups:
                by_task.setdefault(g["task"], []).extend(_reports(out_dir, g["runs"]))
            by_task = {t: r for t, r in by_task.items() if r}
            panels = _layer_panels(by_task) if by_task else []
            if panels:  # none where the runs' reports hold no per-layer values
                ids.append(f"layers-{s}-{m}")
                title = f"{label}: per layer (mean over seeds, band ± 1 std over seeds)"
                figure = curves_figure(title, panels, band_name="± 1 std over seeds")
                charts.append({"id": ids[-1], "figure": figure_json(figure)})
        sections.append({"title": setting_title(setting).replace("`", ""), "tables": tables, "charts": ids})
    grid = summary["grid"]
    return render(
        "summary.html.j2", templates=TEMPLATES, title="ICL vs finetuning: sweep summary", grid=grid,
        settings=summary.get("settings", {}), labels=labels, paper_sizes=list(PAPER), sections=sections,
        controls=[f"the {PART_NAMES[c]} control" for c in grid_controls(grid)], part_names=PART_NAMES,
        runs=_runs(summary, out_dir), page_data={"charts": charts},
    )
