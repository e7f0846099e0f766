"""The comparison table of the arms: Markdown, JSON and a plot of validation loss curves."""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path

from ..fileio import atomic_write_json, atomic_write_text

__all__ = ["arm_name", "summarize", "to_markdown", "plot_loss_curves", "write_comparison"]


def arm_name(momentum: float) -> str:
    """``"gpt"`` for eta = 0, else ``"momentum0.5"``-style names."""
    return "gpt" if momentum == 0 else f"momentum{momentum:g}"


def _stats(values: list[float]) -> dict:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "n": len(values),
        "values": values,
    }


def summarize(runs: list[dict]) -> dict:
    """Aggregate per-run results (one per arm and seed) into mean and spread per arm.

    Each run holds ``momentum, seed, perplexity (list), icl (list), tokens_per_second``.
    """
    by_arm: dict[float, list[dict]] = defaultdict(list)
    for run in runs:
        by_arm[run["momentum"]].append(run)
    arms = []
    for eta in sorted(by_arm):
        group = by_arm[eta]
        ppl = defaultdict(list)
        for run in group:
            for entry in run["perplexity"]:
                ppl[(entry["requested_context"], entry["context"])].append(entry["perplexity"])
        icl_task = defaultdict(list)
        icl_avg = defaultdict(list)
        for run in group:
            per_shots = defaultdict(list)
            for entry in run["icl"]:
                # Keyed by the requested k: the k that fits depends on each seed's demonstrations.
                icl_task[(entry["task"], entry["requested_shots"])].append((entry["accuracy"], entry["shots"]))
                per_shots[entry["requested_shots"]].append(entry["accuracy"])
            for requested, accs in per_shots.items():
                icl_avg[requested].append(statistics.fmean(accs))
        arms.append({
            "arm": arm_name(eta),
            "momentum": eta,
            "seeds": sorted(run["seed"] for run in group),
            "perplexity": [
                {"requested_context": r, "context": c, **_stats(v)} for (r, c), v in sorted(ppl.items())
            ],
            "icl_average": [{"requested_shots": k, **_stats(v)} for k, v in sorted(icl_avg.items())],
            "icl": [
                {"task": t, "requested_shots": r, "shots": [k for _, k in v], **_stats([a for a, _ in v])}
                for (t, r), v in sorted(icl_task.items())
            ],
            "tokens_per_second": _stats([run["tokens_per_second"] for run in group]),
            "final_eval_loss": _stats([run["final_eval_loss"] for run in group]),
        })
    return {"arms": arms, "runs": runs}


def _fmt(stat: dict, digits: int = 2, scale: float = 1.0) -> str:
    mean, std = stat["mean"] * scale, stat["std"] * scale
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if stat["n"] > 1 else f"{mean:.{digits}f}"


def to_markdown(summary: dict, title: str = "MomentumGPT vs GPT") -> str:
    """Two Markdown tables (perplexity, ICL accuracy): mean ± sample std over seeds."""
    arms = summary["arms"]
    if not arms:
        return f"## {title}\n\n(no runs)\n"
    lines = [f"## {title}", ""]
    seeds = arms[0]["seeds"]
    lines.append(f"Mean ± standard deviation over {len(seeds)} seed(s) {seeds}.")
    lines.append("")
    ctx_cols = [(p["requested_context"], p["context"]) for p in arms[0]["perplexity"]]
    headers = ["arm", "eta"] + [
        f"valid ppl @{r}" + (f" (capped to {c})" if c < r else "") for r, c in ctx_cols
    ] + ["final eval loss", "train tokens/s"]
    lines += ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for arm in arms:
        cells = [arm["arm"], f"{arm['momentum']:g}"] + [_fmt(p) for p in arm["perplexity"]]
        cells += [_fmt(arm["final_eval_loss"], 3), _fmt(arm["tokens_per_second"], 0)]
        lines.append("| " + " | ".join(cells) + " |")
    icl_rows = arms[0]["icl"]
    if icl_rows:
        lines += ["", "In-context accuracy (%), demonstrations reduced to what fits the context:", ""]
        keys = [(e["task"], e["requested_shots"]) for e in icl_rows]
        headers = ["task", "k requested", "k used (per seed)"] + [arm["arm"] for arm in arms]
        lines += ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        for key in keys:
            cells = [key[0], str(key[1]), ",".join(map(str, icl_rows[keys.index(key)]["shots"]))]
            for arm in arms:
                match = [e for e in arm["icl"] if (e["task"], e["requested_shots"]) == key]
                cells.append(_fmt(match[0], 1, 100) if match else "-")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_loss_curves(runs: list[dict], path: str | Path) -> Path:
    """Validation loss against training step, one line per arm and seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    colors = {}
    for run in sorted(runs, key=lambda r: (r["momentum"], r["seed"])):
        curve = run["eval_curve"]
        if not curve:
            continue
        name = arm_name(run["momentum"])
        color = colors.setdefault(name, f"C{len(colors)}")
        label = name if sum(1 for r in runs if r["momentum"] == run["momentum"]) == 1 else f"{name} seed {run['seed']}"
        ax.plot([p[0] for p in curve], [p[1] for p in curve], color=color, alpha=0.8, label=label)
    ax.set_xlabel("training step")
    ax.set_ylabel("validation loss")
    ax.set_title("Validation loss: MomentumGPT vs GPT")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_comparison(runs: list[dict], output_dir: str | Path) -> dict:
    """Write ``comparison.md``, ``comparison.json`` and ``loss_curves.png``; return the summary."""
    output_dir = Path(output_dir)
    summary = summarize(runs)
    atomic_write_json(output_dir / "comparison.json", summary)
    atomic_write_text(output_dir / "comparison.md", to_markdown(summary))
    plot_loss_curves(runs, output_dir / "loss_curves.png")
    return summary
