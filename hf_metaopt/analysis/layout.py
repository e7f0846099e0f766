"""Where a causal LM keeps its self-attention: one place that knows the layouts we read.

Two layouts are recognised, in every layer of the model:

- ``separate``: ``q_proj`` / ``k_proj`` / ``v_proj`` projections (Llama, SmolLM2, Gemma,
  Mistral, Qwen2, OPT, MomentumGPT, ...);
- ``fused``: GPT-2's ``c_attn`` (a ``Conv1D`` whose output columns are ``[Q | K | V]``).

Capture, finetuning and the dual-form check all start from :func:`attention_layers`.
"""

from __future__ import annotations

from dataclasses import dataclass

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
