"""The report's PNG plots: accuracy bars and, per metric family, per-layer curves with bands, controls and baselines.

What each figure shows is :mod:`.report_curves`' (one definition for the PNGs and report.html);
the colours are :mod:`.palette`'s. Titles name the model by its Hub id (never a local path,
``model_id.display_name``) and are wrapped to the figure's width; legends sit below the panels,
outside the data.
"""

from __future__ import annotations

import io
import textwrap
from pathlib import Path
from typing import Any

from ..fileio import atomic_write_bytes
from ..model_id import display_name
from .palette import color, mpl_dash
from .report_curves import PanelCurves, layer_curves
from .report_markdown import SETTINGS

__all__ = ["plots", "subtitle"]

_STYLE = {"metric": "solid", "control": "dashdot", "baseline": "dotted"}


def subtitle(data: dict[str, Any]) -> str:
    """``<model id> on <task>, <k> demonstrations, <n> queries`` for a report dict."""
    cfg = data.get("config", {})
    return (f"{display_name(cfg)} on {cfg.get('task') or 'custom data'}, {cfg.get('n_demonstrations', '?')} demonstrations, "
            f"{len(data.get('labels') or [])} queries")


def _figure(width: float, height: float):
    # Figure + Agg canvas directly: no pyplot global state, no display needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _title(fig, title: str, sub: str, width: float) -> None:
    chars = max(30, int(width * 13))  # ~13 characters per inch at the title's size
    fig.suptitle("\n".join(textwrap.wrap(title, chars) + textwrap.wrap(sub, int(chars * 1.15))), fontsize=10)


def _legend(fig, axes) -> None:
    """One legend for the figure, below the panels (outside every data area), each entry once."""
    seen: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(label, handle)
    if seen:
        fig.legend(list(seen.values()), list(seen), loc="outside lower center", ncol=min(4, len(seen)), fontsize=8, frameon=False)


def _save(fig, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return atomic_write_bytes(path, buffer.getvalue())


def _accuracy_plot(data: dict[str, Any], sub: str, path: Path) -> Path:
    fig = _figure(5.2, 4.4)
    ax = fig.add_subplot(1, 1, 1)
    acc, acc_ci = data["accuracy"], data.get("accuracy_ci95") or {}
    names = [s.upper() for s in SETTINGS]
    heights = [acc[s] for s in SETTINGS]
    errors = None
    if all(acc_ci.get(s) for s in SETTINGS):
        errors = [[max(0.0, acc[s] - acc_ci[s][0]) for s in SETTINGS], [max(0.0, acc_ci[s][1] - acc[s]) for s in SETTINGS]]
    ax.bar(names, heights, yerr=errors, capsize=6, color=[color(s) for s in SETTINGS], label="pretrained (bars: 95% interval)")
    for i, h in enumerate(heights):
        ax.text(i, h / 2, f"{h:.3f}", ha="center", color="white", fontweight="bold")
    for name, control in (data.get("controls") or {}).items():
        if control.get("accuracy"):
            ax.scatter(names, [control["accuracy"][s] for s in SETTINGS], marker="x", s=60, color=color(name), zorder=3,
                       label=f"{name.replace('_', ' ')} control")
    n_labels = len((data.get("config") or {}).get("label_words") or [])
    if n_labels:
        ax.axhline(1 / n_labels, color=color("baseline"), linestyle=mpl_dash("dotted"), label=f"chance (1/{n_labels})")
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    _title(fig, "Accuracy: zero-shot, in context, finetuned", sub, 5.2)
    _legend(fig, [ax])
    return _save(fig, path)


def _panel(ax, shown: PanelCurves) -> None:
    from matplotlib.ticker import MaxNLocator

    for i, curve in enumerate(shown.curves):
        xs = list(range(len(curve.values)))
        style = _STYLE[curve.role]
        ys = [float("nan") if v is None else v for v in curve.values]
        ax.plot(xs, ys, marker="o" if curve.role == "metric" else None, markersize=3, color=color(curve.key, i),
                linestyle=mpl_dash(style), linewidth=1.6 if curve.role == "metric" else 1.2, label=curve.name)
        if curve.band:
            low = [float("nan") if b is None else b[0] for b in curve.band]
            high = [float("nan") if b is None else b[1] for b in curve.band]
            ax.fill_between(xs, low, high, color=color(curve.key, i), alpha=0.18, linewidth=0, label="95% interval over queries")
    ax.axhline(0.0, color="lightgray", linewidth=0.8, zorder=0)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("layer")
    ax.set_ylabel(shown.panel.axis)
    ax.set_title(shown.title, fontsize=9)


def _family_plot(title: str, panels: list[PanelCurves], sub: str, path: Path) -> Path:
    columns = 2 if len(panels) in (2, 4) else min(3, len(panels))
    rows = -(-len(panels) // columns)
    width = 4.3 * columns
    fig = _figure(width, 3.1 * rows + 1.3)
    axes = [fig.add_subplot(rows, columns, i + 1) for i in range(len(panels))]
    for ax, shown in zip(axes, panels):
        _panel(ax, shown)
    _title(fig, title, sub, width)
    _legend(fig, axes)
    return _save(fig, path)


def plots(data: dict[str, Any], directory: Path, scores: Any = None) -> list[Path]:
    """Write accuracy.png, simaou.png, simam.png and kendall.png into ``directory``; return their paths.

    ``scores`` (the run's per-query scores, or ``None``) adds the per-layer interval bands.
    """
    directory.mkdir(parents=True, exist_ok=True)
    sub = subtitle(data)
    paths = [_accuracy_plot(data, sub, directory / "accuracy.png")]
    for family, panels in layer_curves(data, scores):
        paths.append(_family_plot(family.title, panels, sub, directory / family.file))
    return paths
