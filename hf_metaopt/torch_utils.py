"""Small helpers around a loaded torch model: its mode, its input device, its context length."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

__all__ = ["context_length", "eval_mode", "input_device"]


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
