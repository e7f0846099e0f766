"""summary.png: per (method, learning rate, balanced draw, orders), one row per metric family and one column per model.

Each panel holds bars per task (mean over seeds, error bars: sample std over seeds), the controls
as crosses on the bars (untrained black, shuffled labels pink), and the paper's numbers (Dai et al., ``paper.py``): its
per-task accuracies as markers on the accuracy bars of the tasks it has (or is built like), its
six-task averages of the other metrics as bars of their own at the right. Every panel of a family
shares one y scale, across models and settings; colours are :mod:`hf_metaopt.analysis.palette`'s.
"""

from __future__ import annotations

import io
import math

import numpy as np

from ..analysis.palette import color
from .paper import PAPER, paper_task
from .summary import CONTROL_PARTS
from .table import PART_NAMES, model_numbers, settings_of

__all__ = ["FAMILIES", "PAPER_ACCURACY_INDEX", "family_points", "plot", "series_color", "settings_of"]

# (title, y-axis name, series (metric of summary.METRICS, legend name))
FAMILIES = (
    ("accuracy", "accuracy", (("zsl", "ZSL"), ("ft", "FT"), ("icl", "ICL"))),
    ("SimAOU and SimAM", "cosine similarity", (
        ("simaou", "SimAOU"), ("simaou_random", "SimAOU, random vector"), ("simam_before", "SimAM before finetuning"),
        ("simam_after", "SimAM after finetuning"), ("simam_delta", "SimAM delta"))),
    ("Kendall and top-k recall", "Kendall's tau / top-k recall", (
        ("kendall", "Kendall, tokens"), ("kendall_random", "Kendall, random scores"), ("kendall_example", "Kendall, demonstrations"),
        ("recall_token", "top-k recall, tokens"), ("recall_token_random", "top-k recall, random ranking"))),
    ("Agreement of predictions", "share of queries", (("rec2ftp", "Rec2FTP"), ("change_recall", "ChangeRecall"))),
    ("Label-distribution shift", "KL (nats) / total variation", (
        ("kl_icl_ft", "KL(ICL || FT)"), ("tv_icl_ft", "TV(ICL, FT)"), ("kl_icl_zsl", "KL(ICL || ZSL)"), ("kl_ft_zsl", "KL(FT || ZSL)"))),
)
PAPER_ACCURACY_INDEX = {"zsl": 0, "ft": 1, "icl": 2}  # where each setting is in the paper's accuracy triples
_MARKERS = {"1.3B": "D", "2.7B": "^"}


def series_color(metric: str, index: int) -> str:
    """A series' colour: the setting's for accuracies, grey for a random baseline, else the family colour."""
    if metric in PAPER_ACCURACY_INDEX:
        return color(metric)
    return color("baseline") if metric.endswith("_random") else color("", index)


def family_points(summary: dict, setting: tuple, label: str) -> list[dict]:
    """Per task, the model's pretrained and control numbers at ``setting`` (:func:`~.table.model_numbers`)."""
    method, lr, balanced, permutations = setting
    return [model_numbers(summary, "groups", method, lr, model_label=label, task=t, balanced_demonstrations=balanced,
                          permutations=permutations) for t in summary["grid"]["tasks"]]


def _stat(point: dict, part: str, metric: str, key: str = "mean") -> float:
    value = ((point.get(part) or {}).get(metric) or {}).get(key)
    return math.nan if value is None else value


def _limits(values: list[float]) -> tuple[float, float]:
    finite = [v for v in values if math.isfinite(v)]
    low, high = min(finite + [0.0]), max(finite + [0.0])
    pad = 0.08 * (high - low or 1.0)
    return low - (pad if low < 0 else 0), high + pad


def _panel(ax, tasks: list[str], points: list[dict], series: tuple, accuracy: bool) -> list[float]:
    """Draw one panel; return every value drawn (for the family's shared scale)."""
    drawn = []
    x = np.arange(len(tasks) + (0 if accuracy else len(PAPER)))
    width = 0.8 / len(series)
    for i, (metric, name) in enumerate(series):
        offset = np.arange(len(tasks)) + (i - len(series) / 2 + 0.5) * width
        means = [_stat(p, "pretrained", metric) for p in points]
        errors = [0.0 if math.isnan(_stat(p, "pretrained", metric, "std")) else _stat(p, "pretrained", metric, "std") for p in points]
        baseline = metric.endswith("_random")
        hue = series_color(metric, i)
        ax.bar(offset, means, width, yerr=errors, capsize=2, color=hue, label=name, hatch="//" if baseline else None,
               alpha=0.6 if baseline else 1.0, error_kw={"elinewidth": 0.8})
        drawn += [m + e for m, e in zip(means, errors)] + [m - e for m, e in zip(means, errors)]
        for part in CONTROL_PARTS:
            controls = [_stat(p, part, metric) for p in points]
            if any(math.isfinite(v) for v in controls):
                ax.scatter(offset, controls, marker="x", color=color(part), s=22, zorder=3, label=f"{PART_NAMES[part]} control")
                drawn += controls
        for size in PAPER:
            if accuracy:
                paper = [PAPER[size]["accuracy"][n][PAPER_ACCURACY_INDEX[metric]] / 100 if (n := paper_task(t)) else math.nan for t in tasks]
                if any(math.isfinite(v) for v in paper):
                    ax.scatter(offset, paper, marker=_MARKERS[size], color=color("paper"), s=18, zorder=4, label=f"paper {size}")
                    drawn += paper
            elif metric in PAPER[size]["average"]:
                spot = len(tasks) + list(PAPER).index(size) + (i - len(series) / 2 + 0.5) * width
                value = PAPER[size]["average"][metric]
                ax.bar([spot], [value], width, color=hue, edgecolor=color("paper"), linewidth=1.2,
                       hatch="//" if baseline else None, alpha=0.6 if baseline else 1.0)
                drawn.append(value)
    names = list(tasks) + ([] if accuracy else [f"paper {size}\n(6-task avg.)" for size in PAPER])
    ax.set_xticks(x, names, rotation=15, fontsize=7)
    ax.axhline(0, color="lightgray", linewidth=0.8, zorder=0)
    return drawn


def _legend(row_ends: list, accuracy: bool) -> None:
    """Each row's legend right of its last panel, outside the data; each entry once."""
    from matplotlib.patches import Patch

    for ax in row_ends:
        handles = dict(zip(*reversed(ax.get_legend_handles_labels())))
        if not accuracy:
            handles["paper (Dai et al.), 6-task average"] = Patch(facecolor="white", edgecolor=color("paper"), linewidth=1.2)
        ax.legend(list(handles.values()), list(handles), loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)


def plot(summary: dict) -> bytes:
    """The PNG bytes of summary.png for a :func:`~hf_metaopt.sweep.summary.summarize` dictionary."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    tasks = summary["grid"]["tasks"]
    labels = list(dict.fromkeys(g["model_label"] for g in summary["groups"]))
    settings = settings_of(summary)
    rows, columns = len(FAMILIES) * len(settings), len(labels)
    fig = Figure(figsize=(5.6 * columns + 2.6, 3.3 * rows + 1.4), dpi=100, layout="constrained")  # + the legends' column
    FigureCanvasAgg(fig)
    drawn: dict[int, list[float]] = {}
    axes: dict[int, list] = {}
    for s, setting in enumerate(settings):
        for m, label in enumerate(labels):
            points = family_points(summary, setting, label)
            for f, (title, axis, series) in enumerate(FAMILIES):
                ax = fig.add_subplot(rows, columns, (s * len(FAMILIES) + f) * columns + m + 1)
                drawn.setdefault(f, []).extend(_panel(ax, tasks, points, series, accuracy=f == 0))
                axes.setdefault(f, []).append(ax)
                method, lr, balanced, permutations = setting
                where = (f"{label}, {method}, lr {lr:g}" + (", balanced" if balanced else "")
                         + (f", {permutations} orders" if permutations > 1 else ""))
                ax.set_title(f"{where}: {title}", fontsize=9)
                ax.set_ylabel(axis, fontsize=8)
    for f, family_axes in axes.items():
        limits = (0.0, 1.0) if f == 0 else _limits(drawn[f])
        for ax in family_axes:
            ax.set_ylim(*limits)
        _legend(family_axes[columns - 1 :: columns], accuracy=f == 0)  # right of each row's last panel
    fig.suptitle("ICL vs finetuning: sweep summary\nbars: mean over seeds; error bars: sample std over seeds", fontsize=11)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
