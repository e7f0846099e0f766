"""Where a causal LM keeps its self-attention: one place that knows the layouts we read.

Two layouts are recognised, in every layer of the model:

- ``separate``: ``q_proj`` / ``k_proj`` / ``v_proj`` projections (Llama, SmolLM2, Gemma,
  Mistral, Qwen2, OPT, MomentumGPT, ...);
- ``fused``: GPT-2's ``c_attn`` (a ``Conv1D`` whose output columns are ``[Q | K | V]``).

Capture, finetuning and the dual-form check all start from :func:`attention_layers`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["AttentionLayer", "UnsupportedArchitectureError", "attention_layers", "kv_parameter_names"]


class UnsupportedArchitectureError(ValueError):
    """The model's attention cannot be found or captured faithfully; the message says what is missing."""


@dataclass(frozen=True)
class AttentionLayer:
    """The self-attention module of one layer: its qualified name, the module, and its layout."""

    name: str
    module: nn.Module
    fused: bool

    def kv_modules(self) -> list[nn.Module]:
        """The modules holding the key and value projections (the whole ``c_attn`` when fused)."""
        return [self.module.c_attn] if self.fused else [self.module.k_proj, self.module.v_proj]

    def projections(self) -> dict[str, torch.Tensor | None]:
        """The query, key and value projections in ``nn.Linear`` convention (``y = x W^T + b``).

        ``{"q_w", "q_b", "k_w", "k_b", "v_w", "v_b"}``, views of the module's parameters (a bias
        is ``None`` where the projection has none). Fused ``c_attn`` is a ``Conv1D`` with weight
        ``[in, 3 * D]``: its output columns ``[Q | K | V]``, transposed.
        """
        if self.fused:
            weight, bias = self.module.c_attn.weight, self.module.c_attn.bias
            d = weight.shape[-1] // 3
            parts = {"q": slice(0, d), "k": slice(d, 2 * d), "v": slice(2 * d, 3 * d)}
            return {k: t for p, cols in parts.items()
                    for k, t in ((f"{p}_w", weight[:, cols].T), (f"{p}_b", None if bias is None else bias[cols]))}
        return {k: t for p in "qkv" for k, t in ((f"{p}_w", getattr(self.module, f"{p}_proj").weight),
                                                 (f"{p}_b", getattr(self.module, f"{p}_proj").bias))}


def _layout(module: nn.Module) -> bool | None:
    """``False`` for separate projections, ``True`` for GPT-2's fused ``c_attn``, ``None`` otherwise."""
    if not type(module).__name__.endswith("Attention"):
        return None
    if all(hasattr(module, n) for n in ("q_proj", "k_proj", "v_proj")):
        return False
    if hasattr(module, "c_attn") and not getattr(module, "is_cross_attention", False):
        return True
    return None


def attention_layers(model: nn.Module) -> list[AttentionLayer]:
    """The self-attention module of every layer, in layer order.

    A module counts when its class name ends in ``Attention`` and it has separate
    ``q_proj``/``k_proj``/``v_proj`` or GPT-2's fused ``c_attn`` (not cross-attention).

    Raises:
        UnsupportedArchitectureError: no such module (the message lists what is supported).
    """
    found = []
    for name, module in model.named_modules():
        fused = _layout(module)
        if fused is not None:
            found.append(AttentionLayer(name, module, fused))
    if not found:
        raise UnsupportedArchitectureError(
            f"{type(model).__name__}: found no self-attention module to capture. The analysis supports attention "
            "modules (class name ending in 'Attention') with separate q_proj/k_proj/v_proj projections "
            "(Llama, Gemma, OPT, MomentumGPT) or GPT-2's fused c_attn, dispatched through transformers' "
            "ALL_ATTENTION_FUNCTIONS."
        )
    return found


def kv_parameter_names(model: nn.Module) -> list[str]:
    """Names of the parameters K/V finetuning trains (for a fused layer: the whole ``c_attn``)."""
    wanted = {id(p) for layer in attention_layers(model) for sub in layer.kv_modules() for p in sub.parameters()}
    return [n for n, p in model.named_parameters() if id(p) in wanted]
