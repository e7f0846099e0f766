"""report.md's "Finetuning" section: the FT loss curve in brief and the float64-rerun stability figure."""

from __future__ import annotations

from typing import Any

from .report_verdict import CONTROL_TITLES

__all__ = ["finetuning_section"]


def _num(value: Any, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _sci(value: Any) -> str:
    return "n/a" if value is None else f"{value:.2e}"


def _quarters(steps: list) -> tuple[str, str]:
    finite = [x for x in steps if x is not None]
    quarter = max(1, len(finite) // 4)
    if not finite:
        return "n/a", "n/a"
    return _num(sum(finite[:quarter]) / quarter), _num(sum(finite[-quarter:]) / quarter)


def _column(block: dict) -> list[str]:
    steps = block.get("loss_per_step") or []
    first, last = _quarters(steps)
    finite = [x for x in steps if x is not None]
    stability = block.get("stability") or {}
    checked = stability.get("checked")
    agreement = stability.get("agreement")
    return [
        str(block.get("learning_rate")),
        str(len(steps)),
        _num(block.get("loss_before")),
        _num(block.get("loss_after")),
        first,
        last,
        _num(max(finite)) if finite else "n/a",
        ("yes (" + ", ".join(block.get("divergence", [])) + ")") if block.get("diverged") else "no",
        (f"{agreement:.3f} of {stability.get('n_queries')}" if agreement is not None else "n/a") if checked
        else stability.get("reason", "not recorded"),
        _num(stability.get("accuracy")) if checked else "-",
        _sci(stability.get("update_relative_difference")) if checked else "-",
    ]


ROWS = [
    "learning rate", "steps (one per demonstration)", "loss on the demonstrations before finetuning",
    "loss on the demonstrations after finetuning", "per-step loss, first quarter mean", "per-step loss, last quarter mean",
    "per-step loss, max", "diverged", "FT predictions agreeing with a float64 rerun", "FT accuracy of the float64 rerun",
    "relative difference of the updates, float64 vs main",
]


def finetuning_section(data: dict[str, Any]) -> list[str]:
    """The section's markdown lines (empty for a report without a ``finetuning`` entry)."""
    block = data.get("finetuning")
    if not block:
        return []
    columns = [_column(block)]
    header = ["", "pretrained"]
    for name, control in (data.get("controls") or {}).items():
        if (control or {}).get("finetuning"):
            columns.append(_column(control["finetuning"]))
            header.append(CONTROL_TITLES.get(name, f"{name} control"))
    rows = [[name] + [c[i] for c in columns] for i, name in enumerate(ROWS)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]
    intro = ("Step i's loss is demonstration i's under the weights of the steps before it, so the curve mixes examples; "
             "the loss on all demonstrations before and after finetuning compares like with like. The stability rerun "
             "repeats the same finetuning in float64 and casts it back (`docs/analysis.md`, \"Finetuning stability\").")
    if block.get("objective") == "layer_causal":
        intro += (" Every loss here is the layer-causal objective the finetuning minimises: the sum over layers of each "
                  "layer's causal-LM loss (`docs/analysis.md`, \"Layer-causal finetuning\").")
    return ["", "## Finetuning", "", intro, ""] + lines
