"""How stable the finetuning baseline is, per learning rate, on the offline models.

    python benchmarks/ft_stability.py                      # gemma3 and smollm2, rt_sentiment dev, k=32, 48 queries
    python benchmarks/ft_stability.py --models smollm2 --task bbc_news --n-queries 100 --out runs/ft_stability.json

For each model and learning rate in {1e-4, 3e-4, 1e-3, 3e-3, 1e-2} it runs the analysis
(:func:`hf_metaopt.analysis.run_analysis`, K/V finetuning by default) and prints, from the
report's ``finetuning`` entry: the FT accuracy, the share of FT predictions a float64 rerun of
the same finetuning agrees with, the relative difference of the two runs' updates, the mean
loss on the demonstrations before and after finetuning, and whether the finetuning diverged
(``docs/analysis.md``, "Finetuning stability"). Queries come from the dev split by default:
the figures are for choosing a learning rate. Models load as ``hf-metaopt analyze --model``
loads them (float32).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

LEARNING_RATES = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
COLUMNS = ("model", "learning_rate", "ft_accuracy", "agreement", "update_relative_difference", "loss_before",
           "loss_after", "diverged", "simam_before", "simam_after", "simam_delta")


def measure(model, tokenizer, demonstrations, queries, prompt, learning_rates: Sequence[float] = LEARNING_RATES, *,
            seed: int = 1, method: str = "kv", batch_size: int = 8, label: str | None = None,
            progress: bool = False) -> list[dict[str, Any]]:
    """One row per learning rate: the analysis's FT accuracy and its ``finetuning`` figures."""
    from hf_metaopt.analysis import AnalysisOptions, run_analysis

    rows = []
    for lr in learning_rates:
        options = AnalysisOptions(
            learning_rate=lr, seed=seed, method=method, batch_size=batch_size, n_bootstrap=20,
            n_demonstrations=len(demonstrations), max_demonstrations=len(demonstrations), stability_check=True,
        )
        report = run_analysis(model, tokenizer, demonstrations, queries, prompt, options, progress=progress).report
        ft, stability = report["finetuning"], report["finetuning"]["stability"]
        rows.append({
            "model": label or report["config"]["model"],
            "learning_rate": lr,
            "n_demonstrations": report["config"]["n_demonstrations"],
            "n_queries": stability["n_queries"],
            "zsl_accuracy": report["accuracy"]["zsl"],
            "ft_accuracy": report["accuracy"]["ft"],
            "ft_accuracy_float64": stability["accuracy"],
            "agreement": stability["agreement"],
            "update_relative_difference": stability["update_relative_difference"],
            "loss_before": ft["loss_before"],
            "loss_after": ft["loss_after"],
            "diverged": ft["diverged"],
            "divergence": ft["divergence"],
            "simam_before": report["simam"]["before"],
            "simam_after": report["simam"]["after"],
            "simam_delta": report["simam"]["delta"],
        })
    return rows


def _cell(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "n/a" if value is None else ("yes" if value else "no")
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e-2 and value != 0 else f"{value:.3f}"
    return str(value)


def table(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as an aligned text table of :data:`COLUMNS`."""
    cells = [list(COLUMNS)] + [[f"{r[c]:g}" if c == "learning_rate" else _cell(r[c]) for c in COLUMNS] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    from hf_metaopt.analysis.options import METHODS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["gemma3", "smollm2"], help="offline models (or Hub ids / folders).")
    parser.add_argument("--task", default="rt_sentiment")
    parser.add_argument("--split", default="dev", help="where the queries come from.")
    parser.add_argument("--k", type=int, default=32, help="demonstrations.")
    parser.add_argument("--n-queries", type=int, default=48)
    parser.add_argument("--learning-rates", type=float, nargs="+", default=list(LEARNING_RATES))
    parser.add_argument("--method", default="kv", choices=list(METHODS))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, help="write the rows as JSON here.")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    from hf_metaopt import offline, tasks  # noqa: F401  offline: the default models and tasks
    from hf_metaopt.analysis import prompt_format
    from hf_metaopt.fileio import atomic_write_json
    from hf_metaopt.loading import ModelArguments, load_model

    args = _parse(argv)
    chosen = tasks.select_examples(args.task, args.k, args.n_queries, args.seed, split=args.split)
    prompt = prompt_format(chosen.spec)
    rows = []
    for name in args.models:
        loaded = load_model(ModelArguments(model=name, device=args.device))
        rows += measure(loaded.model, loaded.tokenizer, chosen.demonstrations, chosen.queries, prompt,
                        args.learning_rates, seed=args.seed, method=args.method, label=name, progress=True)
        del loaded
    print(f"{args.task} ({args.split}), k={args.k}, {args.n_queries} queries, method {args.method}, seed {args.seed}")
    print(table(rows))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(args.out, {"task": args.task, "split": args.split, "rows": rows})
        print(f"wrote {args.out}")
    return rows


if __name__ == "__main__":
    main()
