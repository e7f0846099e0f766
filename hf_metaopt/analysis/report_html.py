"""report.html: one self-contained page per analysis (``templates/report.html.j2``).

Sections: the headline (first the verdict, :mod:`.report_verdict`: per metric, beyond each control and
baseline?; then accuracies with their intervals, each metric against its baseline and every
control: :mod:`.report_headline`), the demonstration orders when the run has several
(:mod:`.report_orders`), the per-layer curves of every metric with interval bands and
controls (:mod:`.report_curves`, drawn with plotly, hover values), the per-query explorer when the
run kept its per-query scores (:mod:`.report_explorer`), and the settings and notes. The page opens
from ``file://`` without network (:mod:`.html_page`) and stays under :data:`PAGE_BUDGET` bytes for
the default run: optional per-token arrays are left out, with a line saying so, when they would
push it over.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..model_id import display_name
from .html_page import figure_json, render
from .palette import color, plotly_dash
from .report_curves import PanelCurves, layer_curves
from .report_explorer import explorer_data, optional_arrays
from .report_headline import headline
from .report_markdown import SETTINGS, _plain
from .report_orders import orders_table

__all__ = ["PAGE_BUDGET", "accuracy_figure", "curves_figure", "report_html"]

PAGE_BUDGET = 4_800_000  # bytes: under the 5 MB a page may weigh, with room for the browser's own
_STYLE = {"metric": "solid", "control": "dashdot", "baseline": "dotted"}
_LAYOUT = dict(template="none", font=dict(family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size=12),
               margin=dict(l=60, r=20, t=50, b=40), hovermode="x unified", paper_bgcolor="white", plot_bgcolor="white")
_AXIS = dict(showgrid=True, gridcolor="#eeeeee", zeroline=True, zerolinecolor="#cccccc", linecolor="#999999", showline=True)


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def accuracy_figure(data: Mapping[str, Any]) -> Any:
    """Bars of the ZSL / ICL / FT accuracies with their 95% intervals, each control's as crosses, chance dotted."""
    import plotly.graph_objects as go

    acc, ci = data["accuracy"], data.get("accuracy_ci95") or {}
    names = [s.upper() for s in SETTINGS]
    values = [acc[s] for s in SETTINGS]
    has_ci = all(ci.get(s) for s in SETTINGS)
    fig = go.Figure(layout=dict(_LAYOUT, height=360, title=dict(text="Accuracy (bars: 95% interval over queries)", font=dict(size=14),
                                                                x=0.02, xanchor="left")))
    fig.add_bar(x=names, y=values, marker_color=[color(s) for s in SETTINGS], name="pretrained",
                error_y=dict(type="data", array=[ci[s][1] - acc[s] for s in SETTINGS], arrayminus=[acc[s] - ci[s][0] for s in SETTINGS],
                             color="#333333") if has_ci else None,
                customdata=[ci[s] if has_ci else [None, None] for s in SETTINGS],
                hovertemplate="%{y:.3f}" + (" [%{customdata[0]:.3f}, %{customdata[1]:.3f}]" if has_ci else "") + "<extra>%{x}</extra>")
    for name, control in (data.get("controls") or {}).items():
        if (control or {}).get("accuracy"):
            fig.add_scatter(x=names, y=[control["accuracy"][s] for s in SETTINGS], mode="markers", name=f"{name.replace('_', ' ')} control",
                            marker=dict(symbol="x", size=11, color=color(name)), hovertemplate="%{y:.3f}")
    n_labels = len((data.get("config") or {}).get("label_words") or [])
    if n_labels:
        fig.add_hline(y=1 / n_labels, line=dict(color=color("baseline"), dash=plotly_dash("dotted")),
                      annotation_text=f"chance 1/{n_labels}", annotation_position="top left")
    fig.update_yaxes(range=[0, 1], title_text="accuracy", **_AXIS)
    fig.update_xaxes(**_AXIS)
    fig.update_layout(hovermode="closest", legend=dict(orientation="h", y=-0.12))
    return fig


def _add_panel(fig: Any, shown: PanelCurves, row: int, col: int, legend: set[str], band_name: str) -> None:
    for i, curve in enumerate(shown.curves):
        hue = color(curve.key, i)
        layers = list(range(len(curve.values)))
        if curve.band:
            low = [b[0] if b else None for b in curve.band]
            high = [b[1] if b else None for b in curve.band]
            fig.add_scatter(x=layers, y=high, mode="lines", line=dict(width=0), hoverinfo="skip", showlegend=False,
                            legendgroup="band", row=row, col=col)
            fig.add_scatter(x=layers, y=low, mode="lines", line=dict(width=0), fill="tonexty", fillcolor=_rgba(hue, 0.18),
                            name=band_name, legendgroup="band", showlegend="band" not in legend,
                            hoverinfo="skip", row=row, col=col)
            legend.add("band")
        template = "%{y:.3f}" + (" [%{customdata[0]:.3f}, %{customdata[1]:.3f}]" if curve.band else "")
        fig.add_scatter(x=layers, y=curve.values, mode="lines+markers" if curve.role == "metric" else "lines", name=curve.name,
                        line=dict(color=hue, dash=plotly_dash(_STYLE[curve.role]), width=2 if curve.role == "metric" else 1.5),
                        marker=dict(size=5), customdata=curve.band if curve.band else None, hovertemplate=template,
                        legendgroup=curve.name, showlegend=curve.name not in legend, row=row, col=col)
        legend.add(curve.name)
    n = len(shown.curves[0].values)
    fig.update_yaxes(title_text=shown.panel.axis, row=row, col=col, **_AXIS)
    fig.update_xaxes(title_text="layer", row=row, col=col, range=[-0.5, n - 0.5], dtick=1 if n <= 20 else None, **_AXIS)


def curves_figure(title: str, panels: list[PanelCurves], band_name: str = "95% interval over queries") -> Any:
    """Per-layer curves as plotly subplots, one panel each (a family's are the panels of its PNG)."""
    from plotly.subplots import make_subplots

    columns = 2 if len(panels) in (2, 4) else min(3, len(panels))
    rows = -(-len(panels) // columns)
    fig = make_subplots(rows=rows, cols=columns, subplot_titles=[p.title for p in panels], horizontal_spacing=0.09,
                        vertical_spacing=0.18 if rows > 1 else 0.1)
    legend: set[str] = set()
    for i, shown in enumerate(panels):
        _add_panel(fig, shown, i // columns + 1, i % columns + 1, legend, band_name)
    height = 320 * rows + 170
    margin = dict(l=60, r=20, t=90, b=80)
    # The legend below the x-axis titles of the bottom row: ~55 px under the plot area.
    below = -55 / (height - margin["t"] - margin["b"])
    fig.update_layout(_LAYOUT, height=height, margin=margin, title=dict(text=title, font=dict(size=14), y=0.98, yanchor="top"),
                      legend=dict(orientation="h", x=0, y=below, yanchor="top"))
    return fig


def _settings(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [(k, _plain(v)) for k, v in config.items() if k not in ("versions", "environment")]


def _context(data: Mapping[str, Any], scores: Any) -> dict[str, Any]:
    config = data.get("config") or {}
    charts = [{"id": "chart-accuracy", "figure": figure_json(accuracy_figure(data))}]
    for family, panels in layer_curves(data, scores):
        charts.append({"id": f"chart-{family.file.removesuffix('.png')}", "figure": figure_json(curves_figure(family.title, panels))})
    return {
        "title": f"ICL vs finetuning: {display_name(config)} on {config.get('task') or 'custom data'}",
        "model": display_name(config),
        "config": config,
        "n_queries": len(data.get("labels") or []),
        "headline": headline(data),
        "orders": orders_table(data),
        "charts": charts,
        "explorer": explorer_data(data, scores),
        "settings": _settings(config),
        "versions": config.get("versions") or {},
        "environment": config.get("environment") or {},
        "notes": [str(n) for n in data.get("notes") or []],
    }


def report_html(data: Mapping[str, Any], scores: Any = None) -> str:
    """The report.html page of a report dict and its per-query scores (``None``: no explorer)."""
    context = _context(data, scores)
    page = render("report.html.j2", page_data={"charts": context["charts"], "explorer": context["explorer"]}, **context)
    explorer = context["explorer"]
    if explorer is None or "inspect" not in explorer:
        return page
    room = PAGE_BUDGET - len(page.encode("utf-8"))
    for key, what, packed in optional_arrays(scores):
        size = len(packed["data"]) + 200
        if size <= room:
            explorer["inspect"][key.split("/", 1)[1]] = packed
            room -= size
        else:
            explorer["left_out"].append(what)
    return render("report.html.j2", page_data={"charts": context["charts"], "explorer": explorer}, **context)
