"""The report's PNG plots: accuracy bars and per-layer metric curves with their baselines."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from ..fileio import atomic_write_bytes
from ..model_id import display_name
from .report_markdown import SETTINGS

__all__ = ["plots"]


def _figure(width: float = 6.4, height: float = 4.0):
    # Figure + Agg canvas directly: no pyplot global state, no display needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return atomic_write_bytes(path, buffer.getvalue())


def _accuracy_plot(data: dict[str, Any], control: dict, subtitle: str, path: Path) -> Path:
    fig, ax = _figure(5.0, 4.0)
    acc, acc_ci = data["accuracy"], data.get("accuracy_ci95", {})
    heights = [acc[s] for s in SETTINGS]
    errors = None
    if all(acc_ci.get(s) for s in SETTINGS):
        errors = [[max(0.0, acc[s] - acc_ci[s][0]) for s in SETTINGS], [max(0.0, acc_ci[s][1] - acc[s]) for s in SETTINGS]]
    ax.bar([s.upper() for s in SETTINGS], heights, yerr=errors, capsize=6, color=["#999999", "#1f77b4", "#ff7f0e"])
    for i, h in enumerate(heights):
        ax.text(i, h / 2, f"{h:.3f}", ha="center", color="white", fontweight="bold")
    if control.get("accuracy"):
        ax.scatter([s.upper() for s in SETTINGS], [control["accuracy"][s] for s in SETTINGS], marker="x", color="black",
                   zorder=3, label="untrained control")
        ax.legend(loc="lower right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy (95% interval)")
    ax.set_title(f"Accuracy\n{subtitle}", fontsize=10)
    return _save(fig, path)


def _curves(data: dict[str, Any], control: dict) -> dict[str, tuple[str, list]]:
    aou, am, kd = data["simaou"], data["simam"], data["kendall"]
    gray, black = {"color": "gray", "linestyle": ":"}, {"color": "black", "linestyle": "-."}
    return {
        "simaou.png": ("SimAOU: cos(ICL update, FT update) per layer", [
            (aou.get("per_layer"), "SimAOU", {}),
            (aou.get("unnormalized_per_layer"), "unnormalised", {"linestyle": "--"}),
            (aou.get("random_per_layer"), "random-vector baseline", gray),
            ((control.get("simaou") or {}).get("per_layer"), "untrained control", black),
        ]),
        "simam.png": ("SimAM: attention-map similarity per layer", [
            (am.get("per_layer_before"), "before finetuning cos(ICL, ZSL)", {}),
            (am.get("per_layer_after"), "after finetuning cos(ICL, FT)", {}),
            (am.get("per_layer_delta"), "delta cos(ICL-ZSL, FT-ZSL)", {"linestyle": "--"}),
            ((control.get("simam") or {}).get("per_layer_delta"), "untrained control, delta", black),
        ]),
        "kendall.png": ("Kendall: attention to demonstration tokens per layer", [
            (kd.get("per_layer"), "Kendall tau(ICL, FT), token level", {}),
            ((kd.get("example_level") or {}).get("per_layer"), "example level", {"linestyle": "--"}),
            (kd.get("random_per_layer"), "random-scores baseline", gray),
            ((control.get("kendall") or {}).get("per_layer"), "untrained control", black),
        ]),
    }


def _curve_plot(title: str, series: list, subtitle: str, path: Path) -> Path:
    from matplotlib.ticker import MaxNLocator

    fig, ax = _figure()
    for values, label, style in series:
        if values:
            ax.plot(range(len(values)), values, marker="o", markersize=3, label=label, **style)
    ax.axhline(0.0, color="lightgray", linewidth=0.8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("layer")
    ax.set_ylabel("similarity")
    ax.set_title(f"{title}\n{subtitle}", fontsize=10)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    return _save(fig, path)


def plots(data: dict[str, Any], directory: Path) -> list[Path]:
    """Write accuracy.png, simaou.png, simam.png and kendall.png into ``directory``; return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    cfg = data.get("config", {})
    subtitle = f"{display_name(cfg)} / {cfg.get('task') or 'custom data'}"
    control = (data.get("controls") or {}).get("untrained") or {}
    paths = [_accuracy_plot(data, control, subtitle, directory / "accuracy.png")]
    for name, (title, series) in _curves(data, control).items():
        paths.append(_curve_plot(title, series, subtitle, directory / name))
    return paths
