"""Hyperparameter selection on the dev split (never on the split that is reported).

The paper chose the finetuning learning rate and the seed on the same validation set it
reports on. Here each (learning rate, seed) of the grid runs the analysis on the task's
dev split, and the choice uses only the FT dev accuracy (the paper tunes the finetuning
learning rate by validation accuracy; choosing by ICL-vs-FT agreement instead would tune
the result being measured):

1. the learning rate with the best FT dev accuracy averaged over the seeds
   (ties: the smaller learning rate, the gentler update);
2. at that learning rate, the seed with the best FT dev accuracy (ties: the smaller seed).

One final run on the test split then uses the chosen pair; the grid goes into
``report["selection"]``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from statistics import mean
from typing import Literal

from tqdm.auto import tqdm

from .options import AnalysisOptions

__all__ = [
    "CRITERION", "PAPER_LEARNING_RATES", "SelectionArguments", "dev_evaluator", "parse_grid", "select", "select_on_dev",
]

DEFAULT_LR_GRID = "1e-3,1e-2,1e-1"
DEFAULT_SEED_GRID = "1,2"

# The paper's grid {1..9} x {0.1, 0.01, 0.001, 0.0001}, ascending.
PAPER_LEARNING_RATES = tuple(sorted(round(m * 10.0**e, 6) for m in range(1, 10) for e in (-1, -2, -3, -4)))
CRITERION = (
    "Chosen on the dev split (carved from train, disjoint from test): the learning rate with the best "
    "FT dev accuracy averaged over seeds (ties: smaller), then the seed with the best FT dev accuracy "
    "at that rate (ties: smaller)."
)


def parse_grid(text: str | Sequence[float], name: str = "--lr-grid", kind: type = float) -> list:
    """A grid from ``"1e-3,1e-2"`` (or a list); ``"paper"`` is the paper's 36 learning rates."""
    if isinstance(text, str):
        if text.strip().lower() == "paper" and kind is float:
            return list(PAPER_LEARNING_RATES)
        items = [t.strip() for t in text.split(",") if t.strip()]
    else:
        items = list(text)
    try:
        values = [kind(v) for v in items]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a comma-separated list of {kind.__name__}s (e.g. '1e-3,1e-2'), got {text!r}.") from None
    if not values:
        raise ValueError(f"{name} is empty; give at least one value.")
    if kind is float and any(v <= 0 for v in values):
        raise ValueError(f"{name} values must be positive learning rates, got {values}.")
    if len(set(values)) != len(values):
        raise ValueError(f"{name} has repeated values: {values}.")
    return values


def select_on_dev(
    evaluate: Callable[[float, int], Mapping[str, float]],
    learning_rates: Sequence[float],
    seeds: Sequence[int],
    *,
    progress: bool = True,
) -> dict:
    """Run ``evaluate(learning_rate, seed)`` (dev accuracies ``{zsl, icl, ft}``) over the grid.

    Returns ``{"split": "dev", "criterion", "rows": [{learning_rate, seed, zsl, icl, ft}],
    "chosen": {learning_rate, seed, ft, ft_mean_over_seeds}}``.
    """
    learning_rates = parse_grid(list(learning_rates))
    seeds = parse_grid(list(seeds), "--seed-grid", int)
    rows = []
    grid = [(lr, seed) for lr in learning_rates for seed in seeds]
    for lr, seed in tqdm(grid, desc="dev grid (learning rate x seed)", disable=not progress):
        accuracy = evaluate(lr, seed)
        rows.append({"learning_rate": lr, "seed": seed, **{k: float(accuracy[k]) for k in ("zsl", "icl", "ft")}})
    by_lr = {lr: mean(r["ft"] for r in rows if r["learning_rate"] == lr) for lr in learning_rates}
    best_lr = min(learning_rates, key=lambda lr: (-by_lr[lr], lr))
    best = min((r for r in rows if r["learning_rate"] == best_lr), key=lambda r: (-r["ft"], r["seed"]))
    return {
        "split": "dev",
        "criterion": CRITERION,
        "rows": rows,
        "chosen": {"learning_rate": best_lr, "seed": best["seed"], "ft": best["ft"], "ft_mean_over_seeds": by_lr[best_lr]},
    }


def dev_evaluator(model, tokenizer, task, options: AnalysisOptions, *, data=None):
    """``evaluate(learning_rate, seed) -> {zsl, icl, ft}`` dev accuracies for :func:`select_on_dev`.

    Predictions only (no metric capture), with the demonstrations and dev queries the final
    analysis would pick (``options`` with ``split="dev"``); ZSL is computed once and ICL once
    per seed, since neither depends on the learning rate.
    """
    from .. import tasks
    from .inference import finetune, predict
    from .run import prompt_format

    cache: dict = {}
    spec = tasks.get_task(task)
    prompt = prompt_format(spec)

    def accuracy(predictions, queries) -> float:
        return sum(int(p == q["label"]) for p, q in zip(predictions, queries)) / len(queries)

    def evaluate(learning_rate: float, seed: int) -> dict[str, float]:
        run = replace(options, learning_rate=learning_rate, seed=seed, split="dev")
        chosen = tasks.select_examples(spec, run.n_demonstrations, run.n_queries, seed, split="dev", data=data,
                                       balanced=run.balanced_demonstrations)
        demos, queries = chosen.demonstrations, chosen.queries
        if "zsl" not in cache:
            cache["zsl"] = accuracy(predict(model, tokenizer, queries, prompt, run)[0], queries)
        if ("icl", seed) not in cache:
            cache["icl", seed] = accuracy(predict(model, tokenizer, queries, prompt, run, demos)[0], queries)
        tuned = finetune(model, tokenizer, demos, prompt, run)
        ft = accuracy(predict(tuned, tokenizer, queries, prompt, run)[0], queries)
        return {"zsl": cache["zsl"], "icl": cache["icl", seed], "ft": ft}

    return evaluate


@dataclass(frozen=True)
class SelectionArguments:
    """Choosing the learning rate and seed on the dev split (``--select-on dev``)."""

    select_on: Literal["dev"] | None = field(default=None, metadata={"help": "grid-search learning rate and seed on the dev split first."})
    lr_grid: str = field(default=DEFAULT_LR_GRID, metadata={"help": "learning rates for --select-on dev ('paper' = the paper's 36)."})
    seed_grid: str = field(default=DEFAULT_SEED_GRID, metadata={"help": "seeds for --select-on dev."})

    def grids(self) -> tuple[list[float], list[int]]:
        """The parsed learning-rate and seed grids (``ValueError`` naming the flag if malformed)."""
        return parse_grid(self.lr_grid), parse_grid(self.seed_grid, "--seed-grid", int)


def select(model, tokenizer, task, options: AnalysisOptions, args: SelectionArguments, *, data=None, progress: bool = False):
    """Run the dev grid of ``args`` and return ``(options with the chosen learning rate and seed, selection table)``."""
    learning_rates, seeds = args.grids()
    evaluate = dev_evaluator(model, tokenizer, task, options, data=data)
    selection = select_on_dev(evaluate, learning_rates, seeds, progress=progress)
    chosen = selection["chosen"]
    return replace(options, learning_rate=chosen["learning_rate"], seed=chosen["seed"]), selection
