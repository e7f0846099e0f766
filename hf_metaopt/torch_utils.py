"""Small helpers around a loaded torch model: its mode, its input device, its context length."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

__all__ = ["context_length", "dispatched", "eval_mode", "input_device", "placed_like"]


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode for the ``with`` block and restore its training flag afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def input_device(model: nn.Module) -> torch.device:
    """Where to put input ids: CPU for accelerate-dispatched models (its hooks move them)."""
    if getattr(model, "hf_device_map", None):
        return torch.device("cpu")
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def dispatched(model: nn.Module) -> bool:
    """Whether accelerate dispatched ``model`` in parts (a ``device_map`` of several entries, as accelerate's own
    ``verify_device_map`` tells: hooks move each part's inputs to its device), or offloaded any of its weights (meta
    tensors its hooks load at every forward)."""
    return len(getattr(model, "hf_device_map", None) or {}) > 1 or any(p.device.type == "meta" for p in model.parameters())


def placed_like(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    """``(device, dtype)`` for a new model standing beside ``model``: its weights' dtype, on its device, or on the CPU
    where accelerate dispatched it (a whole copy does not fit the device of one of its layers, and offloaded weights
    have none)."""
    first = next(model.parameters())
    return (torch.device("cpu") if dispatched(model) else first.device), first.dtype


def context_length(model: nn.Module | Any) -> int | None:
    """The longest sequence the model's positions allow, from its config (``None``: unbounded or unknown).

    ``model``: a model, or its ``PretrainedConfig`` alone (before the weights load).
    """
    config = getattr(model, "config", model)
    for name in ("max_position_embeddings", "n_positions", "n_ctx", "max_sequence_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None
