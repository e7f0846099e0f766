"""Choose the embedded default run (task, number of demonstrations, learning rate) on dev splits only.

The default run (`hf-metaopt analyze` with no arguments) should show the effect the paper
studies if the default model has it. Two stages, both on the offline tasks' dev splits
(carved from train; the test splits are never read):

1. Task and number of demonstrations: dev accuracy of ZSL and ICL for every offline task and
   k in --shots, over --seeds (at least 3: ICL swings with each draw's label balance, which the
   table shows beside it, with the share of ICL's most frequent answer); the pair with the
   largest mean ICL - ZSL gain wins (ties: fewer demonstrations, then task order).
2. Learning rate: the whole analysis of K/V finetuning on the dev split of the chosen task and
   k, for every rate in --learning_rates and seed; two criteria. *Stable*: on every seed the
   finetuning did not diverge (``report["finetuning"]``) and a float64 rerun of it agrees with
   at least --min_agreement of the FT predictions. Among the stable rates the best mean FT dev
   accuracy wins (ties: the smaller rate), the paper's criterion for its finetuning rate.

    python recipes/default_selection.py --model gemma3 --output_dir runs/default_selection

It writes selection.json and selection.md (both tables and the choice) to --output_dir.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from statistics import fmean

from hf_metaopt import offline, tasks  # offline: the models and tasks this recipe selects on
from hf_metaopt.analysis import AnalysisOptions, analyze_task, prompt_format
from hf_metaopt.analysis.inference import predict
from hf_metaopt.analysis.label_balance import count_labels
from hf_metaopt.arguments import MetaoptParser
from hf_metaopt.fileio import atomic_write_json, atomic_write_text
from hf_metaopt.loading import ModelArguments, load_model


@dataclass
class SelectionGrid:
    """The dev grid."""

    tasks: list[str] = field(default_factory=lambda: list(offline.OFFLINE_TASK_NAMES), metadata={"help": "offline tasks."})
    shots: list[int] = field(default_factory=lambda: [8, 16, 32], metadata={"help": "numbers of demonstrations."})
    learning_rates: list[float] = field(default_factory=lambda: [1e-4, 3e-4, 1e-3, 3e-3, 1e-2], metadata={"help": "FT rates."})
    seeds: list[int] = field(default_factory=lambda: [1, 2, 3], metadata={"help": "demonstration draws (at least 3)."})
    min_agreement: float = field(default=0.95, metadata={"help": "a stable rate's float32/float64 FT agreement, on every seed."})
    dev_queries: int = field(default=100, metadata={"help": "dev queries per evaluation."})
    output_dir: str = field(default="runs/default_selection", metadata={"help": "where the tables go."})


def _accuracy(predictions: list[int], queries: list[dict]) -> float:
    return sum(int(p == q["label"]) for p, q in zip(predictions, queries)) / len(queries)


def _dev(task: str, k: int, seed: int, n_queries: int):
    chosen = tasks.select_examples(task, k, n_queries, seed, split="dev")
    return chosen.demonstrations, chosen.queries, prompt_format(chosen.spec)


def icl_stage(loaded, grid: SelectionGrid) -> list[dict]:
    """ZSL and ICL dev accuracy per task, k and seed."""
    rows = []
    for task in grid.tasks:
        zsl = None
        for k in grid.shots:
            for seed in grid.seeds:
                demos, queries, prompt = _dev(task, k, seed, grid.dev_queries)
                options = AnalysisOptions(n_demonstrations=k, seed=seed)
                if zsl is None:
                    zsl = _accuracy(predict(loaded.model, loaded.tokenizer, queries, prompt, options)[0], queries)
                preds, notes = predict(loaded.model, loaded.tokenizer, queries, prompt, options, demos)
                rows.append({"task": task, "k": k, "seed": seed, "zsl": zsl, "icl": _accuracy(preds, queries),
                             "demonstration_labels": count_labels([d["label"] for d in demos], len(prompt.label_words)),
                             "icl_majority_share": max(count_labels(preds, len(prompt.label_words))) / len(preds), "notes": notes})
                print(json.dumps({key: v for key, v in rows[-1].items() if key != "notes"}), flush=True)
    return rows


def ft_stage(loaded, grid: SelectionGrid, task: str, k: int) -> list[dict]:
    """Per learning rate and seed on the chosen task and k: the dev analysis's FT accuracy, its
    stability (float64-rerun agreement, divergence) and SimAM before / after finetuning."""
    rows = []
    for lr in grid.learning_rates:
        for seed in grid.seeds:
            options = AnalysisOptions(n_demonstrations=k, seed=seed, learning_rate=lr, split="dev",
                                      n_queries=grid.dev_queries, n_bootstrap=100)
            report = analyze_task(loaded.model, loaded.tokenizer, task, options).report
            ft = report["finetuning"]
            rows.append({
                "learning_rate": lr, "seed": seed, "ft": report["accuracy"]["ft"],
                "agreement": ft["stability"]["agreement"], "diverged": ft["diverged"],
                "loss_before": ft["loss_before"], "loss_after": ft["loss_after"],
                "simam_before": report["simam"]["before"], "simam_after": report["simam"]["after"],
                "simam_delta": report["simam"]["delta"],
            })
            print(json.dumps(rows[-1]), flush=True)
    return rows


def stable_rates(ft_rows: list[dict], grid: SelectionGrid) -> list[float]:
    """The learning rates that did not diverge and kept --min_agreement on every seed."""
    return [lr for lr in grid.learning_rates
            if all(not r["diverged"] and r["agreement"] >= grid.min_agreement for r in ft_rows if r["learning_rate"] == lr)]


def choose(icl_rows: list[dict], grid: SelectionGrid) -> tuple[str, int]:
    """The (task, k) with the largest mean ICL - ZSL dev gain."""
    gains = {(t, k): fmean(r["icl"] - r["zsl"] for r in icl_rows if (r["task"], r["k"]) == (t, k)) for t in grid.tasks for k in grid.shots}
    return max(gains, key=lambda tk: (gains[tk], -tk[1], -grid.tasks.index(tk[0])))


def to_markdown(model: str, icl_rows: list[dict], ft_rows: list[dict], chosen: dict) -> str:
    lines = [f"# Default run chosen on dev splits: {model}", "", "## ZSL and ICL dev accuracy", "",
             "| task | k | seed | demonstration labels | ZSL | ICL | ICL - ZSL | ICL's most frequent answer |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['task']} | {r['k']} | {r['seed']} | {' / '.join(map(str, r['demonstration_labels']))} | {r['zsl']:.3f} | "
              f"{r['icl']:.3f} | {r['icl'] - r['zsl']:+.3f} | {r['icl_majority_share']:.0%} |" for r in icl_rows]
    lines += ["", f"## The dev analysis on {chosen['task']}, k={chosen['n_demonstrations']}, by learning rate", "",
              "| learning rate | seed | FT | float64 agreement | diverged | loss before -> after | SimAM before | SimAM after | SimAM delta |",
              "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['learning_rate']:g} | {r['seed']} | {r['ft']:.3f} | {r['agreement']:.3f} | {'yes' if r['diverged'] else 'no'} | "
              f"{r['loss_before']:.3f} -> {r['loss_after']:.3f} | {r['simam_before']:.3f} | {r['simam_after']:.3f} | {r['simam_delta']:.3f} |"
              for r in ft_rows]
    lines += ["", f"Stable rates (no divergence, float64 agreement >= {chosen['min_agreement']} on every seed): "
              f"{', '.join(f'{lr:g}' for lr in chosen['stable_rates']) or 'none'}.",
              f"Chosen: task {chosen['task']}, {chosen['n_demonstrations']} demonstrations, learning rate {chosen['learning_rate']:g}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    grid, model_args = MetaoptParser((SelectionGrid, ModelArguments)).parse_args_and_config(argv)
    if len(grid.seeds) < 3:
        raise SystemExit(f"--seeds: give at least 3 demonstration draws (got {grid.seeds}); one or two follow their label balance.")
    loaded = load_model(model_args)
    icl_rows = icl_stage(loaded, grid)
    task, k = choose(icl_rows, grid)
    ft_rows = ft_stage(loaded, grid, task, k)
    by_lr = {lr: fmean(r["ft"] for r in ft_rows if r["learning_rate"] == lr) for lr in grid.learning_rates}
    stable = stable_rates(ft_rows, grid)
    lr = min(stable or grid.learning_rates, key=lambda rate: (-by_lr[rate], rate))
    chosen = {"task": task, "n_demonstrations": k, "learning_rate": lr, "stable_rates": stable, "min_agreement": grid.min_agreement}
    result = {"model": model_args.name, "grid": grid.__dict__, "icl": icl_rows, "ft": ft_rows, "chosen": chosen}
    out = Path(grid.output_dir)
    atomic_write_json(out / "selection.json", result)
    atomic_write_text(out / "selection.md", to_markdown(loaded.provenance.get("model", model_args.name), icl_rows, ft_rows, chosen))
    print(f"chosen: {chosen}; wrote {out / 'selection.md'}")
    return result


if __name__ == "__main__":
    main()
