"""summary.md: the sweep's numbers in the layout of Dai et al.'s Tables 1-5 (then top-k recall, ChangeRecall and the label shift), models side by side.

One section per (method, learning rate, balanced demonstration draw); in each table a row per task (its mean ± std
over seeds), the untrained control's row below it when the grid has that control, then
the average over tasks, and the paper's 1.3B and 2.7B numbers in the last columns.
"""

from __future__ import annotations

from typing import Any

from .paper import PAPER, paper_task

__all__ = ["COUNTS", "TABLES", "model_numbers", "table_rows", "to_markdown"]

# (title, metrics shown in each cell, percentages?)
TABLES = (
    ("Table 1: accuracy (%), ZSL / FT / ICL", ("zsl", "ft", "icl"), True),
    ("Table 2: Rec2FTP (%)", ("rec2ftp",), True),
    ("Table 3: SimAOU / random-vector baseline / unnormalised (Deutch et al.)", ("simaou", "simaou_random", "simaou_unnormalized"), False),
    ("Table 4: SimAM before / after finetuning / delta of the updates (Deutch et al.)", ("simam_before", "simam_after", "simam_delta"), False),
    ("Table 5: Kendall token level / random scores / example level / random scores", ("kendall", "kendall_random", "kendall_example", "kendall_example_random"), False),
    ("Table 6: top-k recall token level (k = 100) / random / example level (k = 5) / random", ("recall_token", "recall_token_random", "recall_example", "recall_example_random"), False),
    ("Table 7: ChangeRecall (%, Deutch et al.)", ("change_recall",), True),
    ("Table 8: label-distribution shift (Shen et al.), KL(ICL ‖ FT) / KL(ICL ‖ ZSL) / KL(FT ‖ ZSL)", ("kl_icl_ft", "kl_icl_zsl", "kl_ft_zsl"), False),
    ("Table 9: label-distribution shift, TV(ICL, FT) / TV(ICL, ZSL) / TV(FT, ZSL)", ("tv_icl_ft", "tv_icl_zsl", "tv_ft_zsl"), False),
)
# A ratio of query counts shown with its counts summed over seeds: metric -> (numerator, denominator).
COUNTS = {"rec2ftp": ("rec2ftp_both_fixed", "rec2ftp_ft_fixed"), "change_recall": ("change_recall_same", "change_recall_changed")}
_SIZES = tuple(PAPER)


def _number(value: float | None, pct: bool) -> str:
    if value is None:
        return "n/a"
    text = f"{100 * value:.1f}" if pct else f"{value:.3f}"
    return text.lstrip("-") if float(text) == 0 else text  # no "-0.000"


def _stat(stat: dict, pct: bool, n_seeds: int) -> str:
    text = _number(stat["mean"], pct)
    text = text if stat["std"] is None else f"{text} ± {_number(stat['std'], pct)}"
    # Undefined values (Rec2FTP when finetuning fixes nothing) are left out: say over how many seeds.
    return text + (f" (n={stat['n']})" if 0 < stat["n"] < n_seeds else "")


def _total(stat: dict | None) -> int | None:
    """A count summed over the seeds that recorded it (its mean times their number)."""
    return None if not stat or stat.get("mean") is None else round(stat["mean"] * stat["n"])


def _with_counts(text: str, values: dict, metric: str) -> str:
    """``text`` and, for a ratio of query counts, its counts summed over seeds: ``75.0 ± 5.0 (12 of 16)``."""
    if metric not in COUNTS:
        return text
    hits, total = (_total(values.get(name)) for name in COUNTS[metric])
    return text if hits is None or total is None else f"{text} ({hits} of {total})"


def _cell(values: dict | None, metrics: tuple, pct: bool, n_seeds: int | None) -> str:
    """``a / b / c`` for one model; ``n_seeds`` None: values are averages over tasks (plain numbers)."""
    if values is None:
        return ""
    if n_seeds is None:
        return " / ".join(_number(values[m], pct) for m in metrics)
    return " / ".join(_with_counts(_stat(values[m], pct, n_seeds), values, m) for m in metrics)


def _paper_cell(size: str, task: str | None, metrics: tuple, pct: bool, tasks: list[str]) -> str:
    """The paper's numbers: per task for accuracy (a task's row, or the mean over the sweep's tasks), else six-task averages."""
    paper = PAPER[size]
    if metrics == TABLES[0][1]:
        names = [n for n in (paper_task(t) for t in ([task] if task else tasks)) if n]
        if not names:
            return "-"
        means = [sum(column) / len(names) for column in zip(*(paper["accuracy"][n] for n in names))]  # ZSL, FT, ICL
        text = " / ".join(f"{v:.1f}" for v in means)
        return text + (f" ({names[0].upper()})" if task and names[0] != task else "")
    if task is not None:
        return "-"
    return " / ".join("-" if m not in paper["average"] else _number(paper["average"][m], pct) for m in metrics)


def model_numbers(summary: dict, kind: str, method: str, lr: float, **match) -> dict[str, Any]:
    """A model's pretrained and untrained numbers at (method, lr) and ``match`` from ``summary[kind]``.

    The pretrained numbers come from the runs without control when the grid has them (a run
    with the untrained control analyses the pretrained model too, identically).
    """
    entries = [e for e in summary[kind] if e["method"] == method and e["learning_rate"] == lr
               and all(e[k] == v for k, v in match.items())]
    plain = [e for e in entries if e["control"] is None]
    controlled = [e for e in entries if e["control"] == "untrained"]
    return {
        "pretrained": (plain or controlled)[0]["pretrained"] if entries else None,
        "untrained": controlled[0]["untrained"] if controlled else None,
        "n_seeds": len(entries[0]["seeds"]) if entries and "seeds" in entries[0] else None,
    }


def table_rows(summary: dict, method: str, lr: float, balanced: bool, metrics: tuple, pct: bool) -> list[dict[str, Any]]:
    """The rows of one table at (method, lr, balanced draw): per task (and its untrained row), then the average.

    Each row: ``{"task"`` (``None`` for the average), ``"part"`` (``pretrained`` or ``untrained``),
    ``"cells"`` (one per model label, in grid order), ``"paper"`` (one per paper size)``}``.
    """
    grid = summary["grid"]
    labels = list(dict.fromkeys(g["model_label"] for g in summary["groups"]))
    parts = ["pretrained"] + (["untrained"] if "untrained" in grid["controls"] else [])
    rows = []
    for task in grid["tasks"] + [None]:
        kind, match = ("groups", {"task": task}) if task else ("averages", {})
        points = [model_numbers(summary, kind, method, lr, model_label=label, balanced_demonstrations=balanced, **match)
                  for label in labels]
        for part in parts:
            rows.append({
                "task": task, "part": part,
                "cells": [_cell(p[part], metrics, pct, p["n_seeds"]) for p in points],
                "paper": [_paper_cell(size, task, metrics, pct, grid["tasks"]) if part == "pretrained" else "" for size in _SIZES],
            })
    return rows


def _rows(summary: dict, method: str, lr: float, balanced: bool, metrics: tuple, pct: bool) -> list[str]:
    lines = []
    for row in table_rows(summary, method, lr, balanced, metrics, pct):
        name = (row["task"] or "**average**") + (", untrained" if row["part"] == "untrained" else "")
        lines.append(f"| {name} | " + " | ".join(row["cells"] + row["paper"]) + " |")
    return lines


def _header(summary: dict) -> list[str]:
    grid, settings = summary["grid"], summary["settings"]
    models = ", ".join(f"{label} (`{name}`)" for name, label in grid["model_labels"].items())
    controls = "with the untrained control" if "untrained" in grid["controls"] else "no control"
    return [
        "# ICL vs finetuning: sweep summary",
        "",
        f"Models: {models}. Tasks: {', '.join(grid['tasks'])}. Seeds: {', '.join(map(str, grid['seeds']))}; {controls}.",
        f"Up to {settings['n_demonstrations']} demonstrations (as many as fit the context), up to {settings['n_queries']} "
        f"queries from the {settings['split']} split, metrics read at the `{settings['position']}` position, "
        f"weights in {settings['dtype']}.",
        "",
        "Each cell: mean ± sample standard deviation over seeds (the mean alone with one seed; n=k: "
        "over the k seeds where the metric is defined; Rec2FTP and ChangeRecall with their counts summed "
        "over seeds, \"12 of 16\"); "
        "*average* rows are the mean over tasks of the per-task means. Rows marked *untrained* are the "
        "same analysis on a randomly initialised copy of each model (Deutch et al.'s control). "
        "Paper: Dai et al. (2023), fairseq dense GPT 1.3B and 2.7B; accuracies per task (offline tasks: the "
        "paper task they are built like, in brackets; *average*: over those tasks), other metrics the paper's "
        "average over its six tasks. Definitions: `docs/analysis.md`.",
    ]


def to_markdown(summary: dict, plot_file: str | None = "summary.png") -> str:
    """summary.md for a :func:`~hf_metaopt.sweep.summary.summarize` dictionary."""
    labels = list(dict.fromkeys(g["model_label"] for g in summary["groups"]))
    settings = list(dict.fromkeys((g["method"], g["learning_rate"], g["balanced_demonstrations"]) for g in summary["groups"]))
    lines = _header(summary)
    for method, lr, balanced in settings:
        lines += ["", f"## Finetuning `{method}`, learning rate {lr:g}" + (", balanced demonstrations" if balanced else "")]
        for title, metrics, pct in TABLES:
            columns = labels + [f"paper {size}" for size in _SIZES]
            lines += ["", f"### {title}", "", "| task | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
            lines += _rows(summary, method, lr, balanced, metrics, pct)
    if plot_file:
        lines += ["", f"![sweep summary]({plot_file})"]
    lines += ["", "Per-run reports (per-layer values, 95% intervals, notes, settings): "
              "`<model>/<task>/<method>-lr<learning rate>-<control>[-balanced]/seed-<seed>/report.md`."]
    return "\n".join(lines) + "\n"
