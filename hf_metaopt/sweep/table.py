"""summary.md: the sweep's numbers in the layout of Dai et al.'s Tables 1-5 (then top-k recall, ChangeRecall and the label shift), models side by side.

One section per (method, learning rate, balanced demonstration draw, number of demonstration orders); in each table
a row per task (its mean ± std over seeds), each control's row below it when the grid has that control (untrained,
shuffled labels), then the average over tasks, and the paper's 1.3B and 2.7B numbers in the last columns. A section
of runs in several orders adds the tables of :data:`ORDER_TABLES`: the spread over orders (mean over seeds of each
run's std over its orders) and the agreement of predictions across orders.
"""

from __future__ import annotations

from typing import Any

from ..analysis.options import control_names
from .paper import PAPER, paper_task
from .summary import CONTROL_PARTS, ORDER_METRICS

__all__ = ["COUNTS", "ORDER_TABLES", "PART_NAMES", "TABLES", "grid_controls", "model_numbers", "section_tables", "table_rows",
           "to_markdown"]

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
# Sections of runs in several demonstration orders (Shen et al.): the spread over orders and the agreement across them.
ORDER_TABLES = (
    ("Table 10: std over demonstration orders (%, each run's over its orders, mean over seeds), accuracy ICL / FT / Rec2FTP",
     ("order_std_icl", "order_std_ft", "order_std_rec2ftp"), True),
    ("Table 11: std over demonstration orders, SimAOU / SimAM after finetuning / Kendall (tokens)",
     ("order_std_simaou", "order_std_simam_after", "order_std_kendall"), False),
    ("Table 12: agreement across demonstration orders (% of queries): ICL alike in every order / FT alike in every order / "
     "ICL = FT (mean over orders)", ("order_same_icl", "order_same_ft", "order_icl_ft"), True),
)
PART_NAMES = {"untrained": "untrained", "shuffled_labels": "shuffled labels"}
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


def grid_controls(grid: dict) -> list[str]:
    """The controls any job of the grid runs, in the order of the summary's parts (``untrained``, ``shuffled_labels``)."""
    asked = {name for control in grid.get("controls") or [] for name in control_names(control)}
    return [name for name in CONTROL_PARTS if name in asked]


def model_numbers(summary: dict, kind: str, method: str, lr: float, **match) -> dict[str, Any]:
    """A model's pretrained numbers and each control's at (method, lr) and ``match`` from ``summary[kind]``.

    The pretrained numbers come from the runs without control when the grid has them (a run
    with a control analyses the pretrained model too, identically); a control's from the runs that have it.
    """
    entries = [e for e in summary[kind] if e["method"] == method and e["learning_rate"] == lr
               and all(e.get(k, 1 if k == "permutations" else None) == v for k, v in match.items())]
    plain = [e for e in entries if e["control"] is None]
    numbers = {"pretrained": (plain or entries)[0]["pretrained"] if entries else None,
               "n_seeds": len(entries[0]["seeds"]) if entries and "seeds" in entries[0] else None}
    for name in CONTROL_PARTS:
        with_it = [e for e in entries if e.get(name) is not None]
        numbers[name] = with_it[0][name] if with_it else None
    return numbers


def table_rows(summary: dict, method: str, lr: float, balanced: bool, metrics: tuple, pct: bool,
               permutations: int = 1) -> list[dict[str, Any]]:
    """The rows of one table at (method, lr, balanced draw, orders): per task (and each control's row), then the average.

    Each row: ``{"task"`` (``None`` for the average), ``"part"`` (``pretrained``, ``untrained`` or ``shuffled_labels``),
    ``"cells"`` (one per model label, in grid order), ``"paper"`` (one per paper size)``}``.
    """
    grid = summary["grid"]
    labels = list(dict.fromkeys(g["model_label"] for g in summary["groups"]))
    # The controls run in the main order only: the tables over orders have no control rows.
    parts = ["pretrained"] + ([] if set(metrics) <= set(ORDER_METRICS) else grid_controls(grid))
    rows = []
    for task in grid["tasks"] + [None]:
        kind, match = ("groups", {"task": task}) if task else ("averages", {})
        points = [model_numbers(summary, kind, method, lr, model_label=label, balanced_demonstrations=balanced,
                                permutations=permutations, **match) for label in labels]
        for part in parts:
            rows.append({
                "task": task, "part": part,
                "cells": [_cell(p[part], metrics, pct, p["n_seeds"]) for p in points],
                "paper": [_paper_cell(size, task, metrics, pct, grid["tasks"]) if part == "pretrained" else "" for size in _SIZES],
            })
    return rows


def section_tables(permutations: int) -> tuple:
    """The tables of a section: :data:`TABLES`, and :data:`ORDER_TABLES` when its runs are in several orders."""
    return TABLES + (ORDER_TABLES if permutations > 1 else ())


def settings_of(summary: dict) -> list[tuple]:
    """The (method, learning rate, balanced draw, demonstration orders) points of the summary, in grid order."""
    return list(dict.fromkeys((g["method"], g["learning_rate"], g["balanced_demonstrations"], g.get("permutations", 1))
                              for g in summary["groups"]))


def setting_title(setting: tuple) -> str:
    """``Finetuning `kv`, learning rate 0.01, balanced demonstrations, 3 demonstration orders``."""
    method, lr, balanced, permutations = setting
    return (f"Finetuning `{method}`, learning rate {lr:g}" + (", balanced demonstrations" if balanced else "")
            + (f", {permutations} demonstration orders" if permutations > 1 else ""))


def _rows(summary: dict, setting: tuple, metrics: tuple, pct: bool) -> list[str]:
    method, lr, balanced, permutations = setting
    lines = []
    for row in table_rows(summary, method, lr, balanced, metrics, pct, permutations):
        name = (row["task"] or "**average**") + (f", {PART_NAMES[row['part']]}" if row["part"] in PART_NAMES else "")
        lines.append(f"| {name} | " + " | ".join(row["cells"] + row["paper"]) + " |")
    return lines


def _header(summary: dict) -> list[str]:
    grid, settings = summary["grid"], summary["settings"]
    models = ", ".join(f"{label} (`{name}`)" for name, label in grid["model_labels"].items())
    controls = grid_controls(grid)
    controls = f"with the {' and the '.join(PART_NAMES[c] + ' control' for c in controls)}" if controls else "no control"
    orders = grid.get("permutations") or [1]
    return [
        "# ICL vs finetuning: sweep summary",
        "",
        f"Models: {models}. Tasks: {', '.join(grid['tasks'])}. Seeds: {', '.join(map(str, grid['seeds']))}; {controls}"
        + (f"; demonstration orders: {', '.join(map(str, orders))}." if orders != [1] else "."),
        f"Up to {settings['n_demonstrations']} demonstrations (as many as fit the context), up to {settings['n_queries']} "
        f"queries from the {settings['split']} split, metrics read at the `{settings['position']}` position, "
        f"weights in {settings['dtype']}.",
        "",
        "Each cell: mean ± sample standard deviation over seeds (the mean alone with one seed; n=k: "
        "over the k seeds where the metric is defined; Rec2FTP and ChangeRecall with their counts summed "
        "over seeds, \"12 of 16\"); "
        "*average* rows are the mean over tasks of the per-task means. Rows marked *untrained* are the "
        "same analysis on a randomly initialised copy of each model (Deutch et al.'s control), rows marked *shuffled "
        "labels* on the demonstrations with their labels shuffled, for ICL and FT alike. "
        "Paper: Dai et al. (2023), fairseq dense GPT 1.3B and 2.7B; accuracies per task (offline tasks: the "
        "paper task they are built like, in brackets; *average*: over those tasks), other metrics the paper's "
        "average over its six tasks. Definitions: `docs/analysis.md`.",
    ]


def to_markdown(summary: dict, plot_file: str | None = "summary.png") -> str:
    """summary.md for a :func:`~hf_metaopt.sweep.summary.summarize` dictionary."""
    labels = list(dict.fromkeys(g["model_label"] for g in summary["groups"]))
    lines = _header(summary)
    for setting in settings_of(summary):
        lines += ["", f"## {setting_title(setting)}"]
        for title, metrics, pct in section_tables(setting[3]):
            columns = labels + [f"paper {size}" for size in _SIZES]
            lines += ["", f"### {title}", "", "| task | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
            lines += _rows(summary, setting, metrics, pct)
    if plot_file:
        lines += ["", f"![sweep summary]({plot_file})"]
    lines += ["", "Per-run reports (per-layer values, 95% intervals, notes, settings): "
              "`<model>/<task>/<method>-lr<learning rate>-<control>[-balanced][-orders<P>]/seed-<seed>/report.md`."]
    return "\n".join(lines) + "\n"
