"""Record attention at one position per sequence, without patching model code.

transformers 5 dispatches attention through ``ALL_ATTENTION_FUNCTIONS`` keyed by
``config._attn_implementation``. :class:`AttentionRecorder` registers a recording
function under ``"hf_metaopt_record_<impl>"`` (with ``<impl>``'s mask function), points
the model's config at it for the duration of a ``with`` block, and calls the real
implementation from inside, so outputs are unchanged. A forward hook on each attention
module reads the module's output (after the output projection, before the residual).

Only what the metrics need is kept, per layer and per sequence: the query vector of
the position per head, its pre-softmax scaled scores over the query's own tokens and
(ICL) over the demonstration tokens summed over heads, and the attention output at the
position. Everything is moved to CPU float64, so layers spread over devices work.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, PreTrainedModel

__all__ = ["AttentionRecorder", "RowSpec", "find_attention_modules", "UnsupportedArchitectureError"]

_PREFIX = "hf_metaopt_record_"
_ACTIVE: list["AttentionRecorder"] = []


class UnsupportedArchitectureError(ValueError):
    """The model's attention modules cannot be found or captured."""


def find_attention_modules(model: nn.Module) -> list[nn.Module]:
    """The self-attention module of every layer, in layer order.

    Recognised: modules with separate ``q_proj``/``k_proj``/``v_proj`` (Llama, SmolLM2,
    Gemma, OPT, MomentumGPT) or GPT-2's fused ``c_attn``, whose class name ends in
    ``Attention``.
    """
    found = []
    for name, module in model.named_modules():
        if not type(module).__name__.endswith("Attention"):
            continue
        separate = all(hasattr(module, n) for n in ("q_proj", "k_proj", "v_proj"))
        fused = hasattr(module, "c_attn") and not getattr(module, "is_cross_attention", False)
        if separate or fused:
            found.append((name, module))
    if not found:
        raise UnsupportedArchitectureError(
            f"{type(model).__name__}: found no self-attention module to capture. The analysis supports attention "
            "modules (class name ending in 'Attention') with separate q_proj/k_proj/v_proj projections "
            "(Llama, Gemma, OPT, MomentumGPT) or GPT-2's fused c_attn, dispatched through transformers' "
            "ALL_ATTENTION_FUNCTIONS."
        )
    # PEFT wraps projections in modules whose names also end in the original name; keep outermost.
    return [m for _, m in found]


def _real_attention(module: nn.Module, implementation: str):
    if implementation == "eager":
        fn = getattr(sys.modules[type(module).__module__], "eager_attention_forward", None)
        if fn is None:
            raise UnsupportedArchitectureError(
                f"{type(module).__name__}'s module defines no eager_attention_forward; load the model with "
                "attn_implementation='sdpa' to capture it."
            )
        return fn
    return ALL_ATTENTION_FUNCTIONS[implementation]


def _recording_attention(module, query, key, value, attention_mask, **kwargs):
    implementation = getattr(module, "_hf_metaopt_real_impl", None)
    if implementation is None:
        raise RuntimeError("hf_metaopt's recording attention was called outside AttentionRecorder.recording().")
    for recorder in reversed(_ACTIVE):
        if id(module) in recorder.layer_of:
            recorder._on_attention(module, query, key, kwargs.get("scaling"))
            break
    return _real_attention(module, implementation)(module, query, key, value, attention_mask, **kwargs)


def _register(implementation: str) -> str:
    name = _PREFIX + implementation
    if name not in ALL_ATTENTION_FUNCTIONS._global_mapping:
        mask = ALL_MASK_ATTENTION_FUNCTIONS._global_mapping.get(implementation)
        if mask is None:
            raise UnsupportedArchitectureError(
                f"attention implementation {implementation!r} has no mask function in transformers' "
                "AttentionMaskInterface; load the model with attn_implementation='sdpa' or 'eager'."
            )
        ALL_ATTENTION_FUNCTIONS.register(name, _recording_attention)
        ALL_MASK_ATTENTION_FUNCTIONS.register(name, mask)
    return name


@dataclass
class RowSpec:
    """What to read from one sequence of the batch.

    ``position``: index of the position in this forward's input (query dimension).
    ``own``: ``(start, stop)`` key indices of the query's own tokens up to the position.
    ``demo``: key indices of the demonstration tokens (ICL only), or ``None``.
    """

    position: int
    own: tuple[int, int]
    demo: Sequence[int] | None = None


class AttentionRecorder:
    """Records, per layer, what the analysis metrics need at one position per sequence.

    Use :meth:`recording` around forward passes. Set :attr:`rows` (one :class:`RowSpec`
    per batch row) before each forward; afterwards :meth:`pop` returns and clears the
    records. With ``all_queries=True`` the query vectors of every token after
    ``skip`` leading tokens are kept instead (the finetuning pass, for Kendall).
    """

    def __init__(self, model: nn.Module):
        self.modules = find_attention_modules(model)
        self.layer_of = {id(m): i for i, m in enumerate(self.modules)}
        self.model = model
        self.rows: list[RowSpec] = []
        self.all_queries = False
        self.skip = 0
        self._clear()

    @property
    def num_layers(self) -> int:
        return len(self.modules)

    def _clear(self) -> None:
        n = len(self.modules)
        self.query = [None] * n  # [B, H, Dh]
        self.own_scores: list[list | None] = [None] * n  # per row [H, T_own]
        self.demo_scores = [None] * n  # [B, T_demo] summed over heads
        self.output = [None] * n  # [B, E]
        self.token_queries: list[list[torch.Tensor]] = [[] for _ in range(n)]  # all_queries: [H, T, Dh] per forward

    def pop(self) -> dict:
        """The records of the last forward(s) as CPU float64 tensors, then clear them."""
        out = {
            "query": torch.stack(self.query, dim=1) if self.query[0] is not None else None,  # [B, L, H, Dh]
            "own_scores": self.own_scores,  # per layer: list over rows of [H, T_own]
            "demo_scores": torch.stack(self.demo_scores, dim=1) if self.demo_scores[0] is not None else None,
            "output": torch.stack(self.output, dim=1) if self.output[0] is not None else None,  # [B, L, E]
            "token_queries": self.token_queries,
        }
        self._clear()
        return out

    # ---------------------------------------------------------------- callbacks
    def _on_attention(self, module, query, key, scaling) -> None:
        layer = self.layer_of.get(id(module))
        if layer is None:
            return
        query = query.detach()
        if self.all_queries:
            for b in range(query.shape[0]):
                self.token_queries[layer].append(query[b, :, self.skip :, :].to("cpu", torch.float64))
            return
        if not self.rows:
            return
        key = key.detach()
        heads = query.shape[1]
        if key.shape[1] != heads:  # grouped-query attention: each K/V head serves several query heads
            key = key.repeat_interleave(heads // key.shape[1], dim=1)
        scale = scaling if scaling is not None else query.shape[-1] ** -0.5
        index = torch.tensor([r.position for r in self.rows], device=query.device)
        q = query[torch.arange(query.shape[0], device=query.device), :, index, :]  # [B, H, Dh]
        scores = torch.einsum("bhd,bhkd->bhk", q.float(), key.float()) * scale  # [B, H, Tk]
        scores = scores.to("cpu", torch.float64)
        self.query[layer] = q.to("cpu", torch.float64)
        self.own_scores[layer] = [scores[b, :, r.own[0] : r.own[1]] for b, r in enumerate(self.rows)]
        if self.rows[0].demo is not None:
            self.demo_scores[layer] = torch.stack(
                [scores[b][:, list(r.demo)].sum(dim=0) for b, r in enumerate(self.rows)]
            )

    def _on_output(self, module, args, output) -> None:
        if self.all_queries or not self.rows:
            return
        hidden = output[0] if isinstance(output, tuple) else output
        index = torch.tensor([r.position for r in self.rows], device=hidden.device)
        picked = hidden.detach()[torch.arange(hidden.shape[0], device=hidden.device), index]
        self.output[self.layer_of[id(module)]] = picked.to("cpu", torch.float64)

    # ---------------------------------------------------------------- context
    @contextmanager
    def recording(self):
        """Route the model's attention through the recorder for the ``with`` block."""
        configs = {}
        for module in self.model.modules():
            if isinstance(module, PreTrainedModel):
                configs[id(module.config)] = module.config
        for m in self.modules:
            config = getattr(m, "config", None) or self.model.config
            m._hf_metaopt_real_impl = config._attn_implementation or "eager"
        saved = {}
        for key, config in configs.items():
            impl = config._attn_implementation or "eager"
            if impl.startswith(_PREFIX):
                raise RuntimeError("AttentionRecorder.recording() is already active on this model.")
            saved[key] = config._attn_implementation
            config._attn_implementation_internal = _register(impl)
        handles = [m.register_forward_hook(self._on_output) for m in self.modules]
        _ACTIVE.append(self)
        try:
            yield self
        finally:
            _ACTIVE.remove(self)
            for h in handles:
                h.remove()
            for m in self.modules:
                del m._hf_metaopt_real_impl
            for key, config in configs.items():
                config._attn_implementation_internal = saved[key]
