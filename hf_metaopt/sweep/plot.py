"""summary.png: per (method, learning rate, balanced draw) and model, accuracies and the similarity metrics per task.

Models side by side (columns); for each (method, learning rate, balanced draw) one row of accuracy bars
(ZSL / FT / ICL, error bars: std over seeds) and one row of metric bars with their
baselines hatched; the untrained control's values are black crosses on the same bars.
"""

from __future__ import annotations

import io

import numpy as np

from .table import model_numbers

__all__ = ["plot"]

_ACCURACY = (("zsl", "ZSL"), ("ft", "FT"), ("icl", "ICL"))
_METRICS = (
    ("simaou", "SimAOU"), ("simaou_random", "SimAOU random"), ("simam_before", "SimAM before"),
    ("simam_after", "SimAM after"), ("kendall", "Kendall"), ("kendall_random", "Kendall random"),
    ("change_recall", "ChangeRecall"), ("tv_icl_ft", "TV(ICL, FT)"),
)


def _bars(ax, tasks: list[str], points: list[dict], series: tuple, with_errors: bool) -> None:
    width = 0.8 / len(series)
    x = np.arange(len(tasks))
    for i, (metric, label) in enumerate(series):
        offset = x + (i - len(series) / 2 + 0.5) * width
        stats = [(p["pretrained"] or {}).get(metric) or {} for p in points]
        means = [s.get("mean") or 0.0 for s in stats]
        errors = [s.get("std") or 0.0 for s in stats]
        baseline = "random" in metric
        ax.bar(offset, means, width, yerr=errors if with_errors and any(errors) else None, capsize=2, label=label,
               hatch="//" if baseline else None, alpha=0.55 if baseline else 1.0)
        controls = [((p["untrained"] or {}).get(metric) or {}).get("mean") for p in points]
        if any(v is not None for v in controls):
            ax.scatter(offset, [np.nan if v is None else v for v in controls], marker="x", color="black", s=18, zorder=3,
                       label="untrained control" if i == 0 else None)
    ax.set_xticks(x, tasks, rotation=15, fontsize=8)


def _panel(fig, rows: int, columns: int, index: int, title: str):
    ax = fig.add_subplot(rows, columns, index)
    ax.set_title(title, fontsize=9)
    return ax


def plot(summary: dict) -> bytes:
    """The PNG bytes of summary.png for a :func:`~hf_metaopt.sweep.summary.summarize` dictionary."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    tasks = summary["grid"]["tasks"]
    labels = list(dict.fromkeys(g["model_label"] for g in summary["groups"]))
    settings = list(dict.fromkeys((g["method"], g["learning_rate"], g["balanced_demonstrations"]) for g in summary["groups"]))
    rows, columns = 2 * len(settings), len(labels)
    fig = Figure(figsize=(max(6.0, 5.2 * columns), 3.8 * rows + 0.6), dpi=100)
    FigureCanvasAgg(fig)
    for s, (method, lr, balanced) in enumerate(settings):
        for m, label in enumerate(labels):
            points = [model_numbers(summary, "groups", method, lr, model_label=label, task=t, balanced_demonstrations=balanced)
                      for t in tasks]
            where = f"{label}, {method}, lr {lr:g}" + (", balanced" if balanced else "")
            ax = _panel(fig, rows, columns, 2 * s * columns + m + 1, f"{where}: accuracy")
            _bars(ax, tasks, points, _ACCURACY, with_errors=True)
            ax.set_ylim(0, 1.15)  # room for the legend above the bars
            ax.legend(fontsize=7, ncol=4, loc="upper center")
            ax = _panel(fig, rows, columns, (2 * s + 1) * columns + m + 1, f"{where}: similarity metrics")
            _bars(ax, tasks, points, _METRICS, with_errors=False)
            ax.axhline(0, color="gray", linewidth=0.8)
            ax.legend(fontsize=6, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.15))
    fig.suptitle("ICL vs finetuning: sweep summary (mean over seeds)", fontsize=11)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
