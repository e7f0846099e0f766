"""The finetuning's loss: per optimizer step, on the demonstrations before and after, and whether it diverged.

Finetuning takes one SGD step per demonstration (batch size 1, in order), so the per-step
loss of step ``i`` is the loss of demonstration ``i`` under the weights of steps ``< i``:
consecutive steps score *different* examples. The main divergence criterion is therefore
the mean loss over all demonstrations with the weights before and after finetuning; the
curve's criteria are secondary (``docs/analysis.md``, "Finetuning stability"). Every loss here is
the objective the finetuning minimises: the model's causal-LM loss, or for the layer-causal
methods the layer-causal loss (the sum over layers, :mod:`.layer_causal`), so the criteria
compare like with like.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from transformers import TrainerCallback

from ..torch_utils import input_device
from .layer_causal import LayerCausalLayout

__all__ = ["LossRecorder", "OBJECTIVES", "RISE_MARGIN", "SPIKE_FACTOR", "demonstration_loss", "divergence", "finetuning_summary",
           "recorded_losses"]

# ``report["finetuning"]["objective"]``: the loss every figure of the entry measures.
OBJECTIVES = ("causal_lm", "layer_causal")

# The last quarter's mean loss must exceed the first quarter's by this fraction to count as rising:
# per-step losses are of different examples, so small differences are the examples', not the training's.
RISE_MARGIN = 0.1
# A step whose loss exceeds this multiple of the demonstrations' loss before finetuning is a spike.
SPIKE_FACTOR = 2.0


class LossRecorder(TrainerCallback):
    """Records the training loss of every optimizer step (``Trainer`` logging every step).

    With ``logging_steps=1`` the ``Trainer`` logs, at each step, the loss summed since the
    last log divided by the steps since then: the step's own loss. ``losses`` holds them in
    step order (``nan``/``inf`` kept as they are: the finetuning logs with its NaN filter off).
    """

    def __init__(self):
        self.losses: list[float] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:  # the end-of-training summary logs "train_loss" instead
            self.losses.append(float(logs["loss"]))


@torch.no_grad()
def demonstration_loss(model: nn.Module, examples: Sequence[Sequence[int]], layout: LayerCausalLayout | None = None) -> float:
    """The mean over ``examples`` of the model's causal-LM loss on each (one forward each, no grad).

    Each example's loss is the model's own mean over its shifted labels, as in training; with
    ``layout``, the layer-causal loss (:meth:`.LayerCausalLayout.example_loss`), as the
    layer-causal methods train.
    """
    if layout is not None:
        return sum(layout.example_loss(model, ids) for ids in examples) / len(examples)
    device = input_device(model)
    losses = []
    for ids in examples:
        ids = torch.tensor([list(ids)], device=device)
        losses.append(float(model(input_ids=ids, labels=ids).loss))
    return sum(losses) / len(losses)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def divergence(loss_per_step: Sequence[float | None], loss_before: float | None, loss_after: float | None) -> list[str]:
    """Why the finetuning counts as diverged (empty: it did not).

    - ``"non_finite"``: a step's loss, or the loss after finetuning, is inf/NaN (``None``);
    - ``"ended_higher"``: the demonstrations' mean loss after finetuning exceeds the one before
      (the main criterion: the same examples, scored with the weights before and after);
    - ``"rising"``: the mean per-step loss of the last quarter of steps exceeds the first
      quarter's by more than :data:`RISE_MARGIN` (at least 4 steps);
    - ``"spiking"``: a step's loss exceeds :data:`SPIKE_FACTOR` times the loss before finetuning.
    """
    steps = [_finite(x) for x in loss_per_step]
    before, after = _finite(loss_before), _finite(loss_after)
    reasons = []
    if None in steps or after is None:
        reasons.append("non_finite")
    if before is not None and after is not None and after > before:
        reasons.append("ended_higher")
    finite = [x for x in steps if x is not None]
    quarter = len(finite) // 4
    if quarter >= 1:
        first, last = sum(finite[:quarter]) / quarter, sum(finite[-quarter:]) / quarter
        if last > first * (1 + RISE_MARGIN):
            reasons.append("rising")
    if before is not None and any(x > SPIKE_FACTOR * before for x in finite):
        reasons.append("spiking")
    return reasons


def recorded_losses(loss_per_step: Sequence[float]) -> list[float | None]:
    """The per-step losses as the report holds them: floats, ``None`` where inf/NaN (JSON)."""
    return [_finite(float(x)) for x in loss_per_step]


def finetuning_summary(
    loss_per_step: Sequence[float], loss_before: float, loss_after: float, learning_rate: float, objective: str = "causal_lm"
) -> dict:
    """``report["finetuning"]`` without its ``stability`` entry; inf/NaN losses become ``None`` (JSON).

    ``objective`` (one of :data:`OBJECTIVES`) names the loss the figures measure.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"`objective` must be one of {list(OBJECTIVES)}; got {objective!r}.")
    steps = recorded_losses(loss_per_step)
    before, after = _finite(float(loss_before)), _finite(float(loss_after))
    reasons = divergence(steps, before, after)
    return {
        "loss_per_step": steps,
        "loss_before": before,
        "loss_after": after,
        "learning_rate": float(learning_rate),
        "objective": objective,
        "diverged": bool(reasons),
        "divergence": reasons,
    }
