"""Notes an analysis adds to its report: what a reader needs to interpret the numbers."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["accuracy_notes", "finetuning_notes", "layer_ranges", "visibility_notes"]


def layer_ranges(layers: list[int]) -> str:
    """``[0, 1, 2, 4, 6, 7]`` -> ``"0-2, 4, 6-7"``."""
    parts, start = [], None
    for i, layer in enumerate(layers):
        if start is None:
            start = layer
        if i + 1 == len(layers) or layers[i + 1] != layer + 1:
            parts.append(str(start) if start == layer else f"{start}-{layer}")
            start = None
    return ", ".join(parts)


def _span(low: int, high: int) -> str:
    return str(low) if low == high else f"{low}-{high}"


def visibility_notes(visibility: dict[str, np.ndarray], n_demo_tokens: int, config: Any) -> list[str]:
    """Say which layers attend to only part of the prompt (sliding windows), and what the metrics then read.

    ``visibility["demo_visible"]`` ``[Q, L]`` counts the demonstration tokens each layer attends
    to; ``visibility["own_hidden"]`` ``[Q, L]`` the query's own tokens it does not.
    """
    window = getattr(config, "sliding_window", None)
    where = f"a {window}-token window" if isinstance(window, int) else "a limited attention window"
    notes = []
    seen = visibility["demo_visible"]
    groups: dict[tuple[int, int], list[int]] = {}
    for layer in range(seen.shape[1]):
        low, high = int(seen[:, layer].min()), int(seen[:, layer].max())
        if low < n_demo_tokens:
            groups.setdefault((low, high), []).append(layer)
    for (low, high), layers in sorted(groups.items(), key=lambda item: item[1][0]):
        notes.append(
            f"layers {layer_ranges(layers)} attend within {where}: their Kendall ranks the last {_span(low, high)} of "
            f"{n_demo_tokens} demonstration tokens (the others lie outside the window and are left out; the "
            "example-level Kendall uses the demonstrations with a token inside it)."
        )
    hidden = visibility["own_hidden"]
    cut = [layer for layer in range(hidden.shape[1]) if hidden[:, layer].max() > 0]
    if cut:
        notes.append(
            f"layers {layer_ranges(cut)}: up to {int(hidden[:, cut].max())} of a query's own tokens lie outside {where} "
            "and are left out of SimAM in every route."
        )
    return notes


def _interval(bounds) -> str:
    return f"[{bounds[0]:.3f}, {bounds[1]:.3f}]"


def accuracy_notes(summary: dict, n_queries: int) -> list[str]:
    """Explain a run in which in-context learning did not beat zero-shot."""
    acc, ci = summary["accuracy"], summary["accuracy_ci95"]
    if acc["icl"] > acc["zsl"]:
        return []
    overlap = ci["icl"][1] >= ci["zsl"][0] and ci["zsl"][1] >= ci["icl"][0]
    why = (
        f"their 95% intervals overlap (ICL {_interval(ci['icl'])}, ZSL {_interval(ci['zsl'])}), so with {n_queries} queries the "
        "difference is not significant"
        if overlap
        else "the gap exceeds the bootstrap intervals: the demonstrations hurt this model"
    )
    return [
        f"ICL accuracy {acc['icl']:.3f} did not exceed ZSL accuracy {acc['zsl']:.3f}: {why}. Small models gain "
        "little from demonstrations (the paper's gains are for 1.3B/2.7B models); the similarity metrics compare "
        "the direction of the updates and remain defined."
    ]


# Below this share of agreeing FT predictions, the float64 rerun's note is added.
AGREEMENT_NOTE_BELOW = 0.95


def finetuning_notes(finetuning: dict) -> list[str]:
    """Say when the finetuning diverged (``finetuning["divergence"]``) or its predictions are unstable.

    ``finetuning`` is a report's ``finetuning`` entry (:func:`~.training_log.finetuning_summary`,
    with ``stability``). The notes name the learning rate and suggest a tenth of it.
    """
    lr = finetuning["learning_rate"]
    safer = f"a smaller learning rate (e.g. {lr / 10:g}) is safer"
    reasons = {
        "non_finite": lambda: "a training loss became inf or NaN",
        "ended_higher": lambda: (f"the demonstrations' mean loss rose from {finetuning['loss_before']:.3f} before "
                                 f"finetuning to {finetuning['loss_after']:.3f} after"),
        "rising": lambda: ("the per-step loss of the last quarter of steps is above the first quarter's (steps score "
                           "different demonstrations, so this is a trend, not a proof)"),
        "spiking": lambda: "a step's loss jumped above twice the demonstrations' loss before finetuning",
    }
    notes = []
    why = [reasons[r]() for r in finetuning.get("divergence", [])]
    if why:
        notes.append(f"finetuning at learning rate {lr:g} diverged: {'; '.join(why)}. The FT route, and every metric "
                     f"read from it, reflects a model training made worse; {safer}.")
    stability = finetuning.get("stability") or {}
    agreement = stability.get("agreement")
    if stability.get("checked") and agreement is not None and agreement < AGREEMENT_NOTE_BELOW:
        notes.append(f"only {agreement:.1%} of FT predictions agree with a rerun of the same finetuning in float64 "
                     f"(learning rate {lr:g}): the FT predictions sit near their decision boundary, so FT accuracy "
                     f"and Rec2FTP move with rounding; {safer} and more stable.")
    return notes
