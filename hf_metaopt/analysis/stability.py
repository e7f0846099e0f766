"""How stable the FT predictions are: the same finetuning rerun in float64, predictions compared.

The perturbation should not matter: the same examples, order, learning rate, seed and method,
but the SGD run on a float64 copy of the model; the trained model is cast back to the model's
dtype and predicts the queries through the FT route. ``agreement`` is the share of queries
whose FT prediction is the main run's; predictions that flip sit near their decision boundary.
Definitions: ``docs/analysis.md``, "Finetuning stability".
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from ..torch_utils import dispatched, placed_like
from .batch_size import resolve_batch_size
from .finetune import finetuned, materialised_copy
from .inference import length_batches
from .options import AnalysisOptions
from .routes import RouteRunner

__all__ = ["PERTURBATION", "ParameterUpdates", "float64_stability", "skipped_stability", "update_relative_difference"]

PERTURBATION = "float64 training"


class ParameterUpdates:
    """The update ``W_after - W_before`` of every parameter that trains, by name (float32, on CPU).

    :meth:`tracking` is entered around training (``finetuned``'s ``on_train_start``). Both
    weights are first cast to ``dtype`` (default: each parameter's own), so a float64 run is
    compared as it is used: cast back to the model's dtype. Holds a copy of what trains (the
    K/V projections, the LoRA adapters, or for ``method="full"`` the whole model).
    """

    def __init__(self, dtype: torch.dtype | None = None):
        self.dtype = dtype
        self.updates: dict[str, torch.Tensor] = {}

    def _cpu(self, p: torch.Tensor) -> torch.Tensor:
        return p.detach().to(device="cpu", dtype=self.dtype or p.dtype, copy=True)

    @contextmanager
    def tracking(self, module: nn.Module) -> Iterator[None]:
        trained = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        start = {n: self._cpu(p) for n, p in trained}
        yield
        for n, p in trained:
            # The difference of two weights, exact in float64; stored in float32 to bound memory.
            self.updates[n] = (self._cpu(p).double() - start.pop(n).double()).float()


def update_relative_difference(reference: dict[str, torch.Tensor], other: dict[str, torch.Tensor]) -> float | None:
    """``||dW_other - dW_ref|| / ||dW_ref||`` over every trained parameter together (Frobenius norms).

    ``None`` when the reference update is zero or the parameters differ.
    """
    if not reference or reference.keys() != other.keys():
        return None
    diff = math.sqrt(sum(float((other[n].double() - u.double()).pow(2).sum()) for n, u in reference.items()))
    size = math.sqrt(sum(float(u.double().pow(2).sum()) for u in reference.values()))
    value = diff / size if size > 0 else None
    return value if value is None or math.isfinite(value) else None


def skipped_stability(reason: str) -> dict:
    """The ``stability`` entry of a run whose check did not run, saying why."""
    return {"checked": False, "reason": reason}


def float64_stability(
    model: nn.Module,
    examples: Sequence[Sequence[int]],
    query_ids: Sequence[Sequence[int]],
    start_ids: Sequence[int],
    label_ids: Sequence[Sequence[int]],
    options: AnalysisOptions,
    pad_id: int,
    predictions: Sequence[int],
    labels: Sequence[int],
    updates: ParameterUpdates | None = None,
    callbacks: Sequence = (),
) -> dict:
    """Rerun the finetuning in float64 and compare its FT predictions with the main run's.

    Args:
        model: the analysed model (not modified; a float64 copy is made and freed).
        examples: the main run's training examples, in order.
        query_ids, start_ids, label_ids: the queries' token ids, the start token(s) and the label words' ids.
        options: the main run's options (method, learning rate, seed, position, batch size).
        pad_id: the padding id.
        predictions, labels: the main run's FT predictions and the gold labels, per query.
        updates: the main run's :class:`ParameterUpdates` (for ``update_relative_difference``).
        callbacks: extra ``TrainerCallback``s (the progress bar).

    Returns:
        ``{"checked": True, "perturbation", "agreement", "n_queries", "accuracy",
        "update_relative_difference"}``.
    """
    device, dtype = placed_like(model)  # a model accelerate dispatched is materialised whole on the CPU
    device = torch.device("cpu") if device.type == "mps" else device  # MPS has no float64
    wide = (materialised_copy(model) if dispatched(model) else copy.deepcopy(model)).to(device=device, dtype=torch.float64)
    rerun = ParameterUpdates(dtype)
    with finetuned(wide, examples, options, on_train_start=rerun.tracking, callbacks=callbacks) as tuned, tuned.active():
        cast = tuned.model.to(dtype=dtype)  # in place: the copies are ours
        runner = RouteRunner(cast, label_ids, options.position, pad_id, capture=False)
        again = [0] * len(query_ids)
        batch_size = resolve_batch_size(options.batch_size, cast, query_ids, label_ids, context=len(start_ids))
        for batch in length_batches(query_ids, batch_size):
            out = runner.run([query_ids[i] for i in batch], start_ids)
            for i, label in zip(batch, out.logprobs.argmax(axis=1)):
                again[i] = int(label)
    del wide, tuned, cast, runner
    n = len(query_ids)
    return {
        "checked": True,
        "perturbation": PERTURBATION,
        "agreement": sum(a == b for a, b in zip(again, predictions)) / n,
        "n_queries": n,
        "accuracy": sum(a == y for a, y in zip(again, labels)) / n,
        "update_relative_difference": update_relative_difference(updates.updates, rerun.updates) if updates else None,
    }
