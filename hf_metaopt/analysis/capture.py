"""Record attention at one position per sequence, over the keys each layer attends to.

transformers 5 dispatches attention through its ``AttentionInterface``, keyed by the model's
attention implementation. :meth:`AttentionRecorder.recording` registers, for each implementation
the model uses, a recording function under a name of the recorder's own (with the
implementation's mask function in ``AttentionMaskInterface``, so it receives exactly the mask
the real implementation would), switches the model to it with ``set_attn_implementation``, and
puts the previous implementation back on exit, also when the block raises. The recording
function calls the implementation it stands for, so outputs are unchanged. Each recorder finds
its calls by its own names (no shared state between recorders), so recorders on different
models run side by side and a second recorder may record inside another's block on the same
model (its function then calls the first one's). A forward hook on each attention module
reads the module's output (after the output projection, before the residual).

Per layer and per sequence only what the metrics need is kept (CPU float64): the query
vector of the analysed position per head, its pre-softmax scores (scaled, soft-capped
where the model soft-caps) over the query's own tokens and, for ICL, over the
demonstration tokens summed over heads, and the attention output at the position. For the
rows marked ``inspect``, also the attention mass of each demonstration token per head: the
softmax over every key the layer attends to, as the model's attention weights (computed only
for those rows, so other batches pay nothing).

Which keys a layer attends to is read from the mask the model itself passes (so sliding
windows, mixed layer types and padding enter the way the model applies them); where the
implementation passes no 4-D mask, causal order and the ``sliding_window`` argument
decide. A key the layer does not attend to is marked invisible and scores 0; a sliding
layer's cache keeps only its window, so its keys are the last ``T_k`` positions of the
sequence, and key indices are mapped from absolute positions per layer. An attention
function given an argument that could change the scores in a way not read here (an
ALiBi or T5-style position bias, ...) is refused with :class:`UnsupportedArchitectureError`
rather than recorded wrongly. See ``docs/analysis.md`` for the definitions.

Inf or NaN in what is recorded (query vectors, scores, attention outputs), as
half precision produces when an activation overflows, stops the run with
:class:`NonFiniteError` at the first layer that shows it, naming the dtype and the fix.
"""

from __future__ import annotations

import functools
import importlib
import itertools
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn
from transformers import AttentionInterface, AttentionMaskInterface, PreTrainedModel
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils.generic import TransformersKwargs

from .layout import UnsupportedArchitectureError, attention_layers

__all__ = ["AttentionRecorder", "NonFiniteError", "RowSpec", "UnsupportedArchitectureError", "check_finite"]

_NAMES = itertools.count()  # next() on a count is atomic: every recorder's names are unique, across threads too
# Names of recorders that no longer exist, for the next recorder: transformers keeps every registered
# name, so reusing them bounds its registry by the recorders alive at once, not by all ever made.
_FREE_NAMES: list[str] = []
_FREE_LOCK = threading.Lock()
_LOAD_SDPA = "load the model with attn_implementation='sdpa' (or call model.set_attn_implementation('sdpa'))"
# Arguments of attention functions that leave the pre-softmax score of every attended key as
# ``scaling * q.k``: transformers' generic kwargs, plus dropout, windows (read from the mask),
# causality, and attention sinks (an extra logit in the softmax denominator only).
# ``softcap`` changes the scores and is applied here as the model applies it.
_NEUTRAL_KWARGS = frozenset(TransformersKwargs.__annotations__) | {
    "dropout", "scaling", "sliding_window", "is_causal", "s_aux", "sinks", "softcap", "use_cache", "layer_idx",
}


class NonFiniteError(FloatingPointError):
    """A forward pass produced inf or NaN; the message names the dtype and what to load instead."""


_FIXES = {
    torch.float16: "load the model in bfloat16 or float32 (--dtype bfloat16); float16's range (max 65504) overflowed",
    torch.bfloat16: "load the model in float32 (--dtype float32)",
}


def check_finite(tensor: torch.Tensor, what: str, dtype: torch.dtype) -> None:
    """Raise :class:`NonFiniteError` if ``tensor`` (computed by a model in ``dtype``) holds inf or NaN."""
    if not bool(torch.isfinite(tensor).all()):
        name = str(dtype).removeprefix("torch.")
        fix = _FIXES.get(dtype, f"the model overflows even in {name}; check its weights for inf/NaN")
        raise NonFiniteError(f"non-finite {what} in {name}: {fix}.")


@dataclass(frozen=True)
class RowSpec:
    """What to read from one sequence of the batch.

    ``position``: index of the analysed token in this forward's input (the query dimension).
    ``own``: ``(start, stop)`` absolute positions of the query's own tokens up to the position.
    ``demo``: absolute positions of the demonstration tokens (ICL only), or ``None``.
    ``inspect``: with ``demo``, also record the attention mass of each demonstration token per head.
    Absolute positions count from the first token of the whole sequence, cached part included.
    """

    position: int
    own: tuple[int, int]
    demo: Sequence[int] | None = None
    inspect: bool = False


def _eager_attention(module: nn.Module):
    """The ``eager_attention_forward`` of the module defining ``module``'s class: what its forward falls back to."""
    fn = getattr(importlib.import_module(type(module).__module__), "eager_attention_forward", None)
    if fn is None:
        raise UnsupportedArchitectureError(
            f"{type(module).__name__}'s module defines no eager_attention_forward, so its eager attention cannot be "
            f"recorded; {_LOAD_SDPA}."
        )
    return fn


def _recording_attention(recorder_ref, implementation: str, module, query, key, value, attention_mask, **kwargs):
    """Registered per recorder and implementation: record (if the recorder still exists), then attend as before."""
    recorder = recorder_ref()
    if recorder is not None:
        recorder._on_attention(module, query, key, attention_mask, kwargs)
    attend = _eager_attention(module) if implementation == "eager" else ALL_ATTENTION_FUNCTIONS[implementation]
    return attend(module, query, key, value, attention_mask, **kwargs)


def _release_names(names: dict[str, str]) -> None:
    with _FREE_LOCK:
        _FREE_NAMES.extend(names.values())


def _implementations(config) -> dict:
    """``config``'s attention implementation and its sub-configs', as ``set_attn_implementation`` takes them."""
    tree = {"": config._attn_implementation or "eager"}
    for key in getattr(config, "sub_configs", {}):
        sub = getattr(config, key, None)
        if sub is not None:
            tree[key] = _implementations(sub)
    return tree


def _renamed(tree: dict, rename) -> dict:
    return {k: _renamed(v, rename) if isinstance(v, dict) else rename(v) for k, v in tree.items()}


def _transformers_models(model: nn.Module) -> list[PreTrainedModel]:
    """The transformers models in ``model`` (itself, or inside a wrapper such as PEFT's), outermost first,
    one per config."""
    found, configs = [], set()
    for module in model.modules():  # pre-order: a model comes before the sub-models it contains
        if isinstance(module, PreTrainedModel) and id(module.config) not in configs:
            configs.add(id(module.config))
            found.append(module)
    if not found:
        raise UnsupportedArchitectureError(
            f"{type(model).__name__} holds no transformers PreTrainedModel; the capture switches attention through "
            "transformers' set_attn_implementation, so pass a transformers model (or a PEFT model around one)."
        )
    return found


def _check_kwargs(module: nn.Module, kwargs: dict) -> None:
    unknown = sorted(k for k, v in kwargs.items() if k not in _NEUTRAL_KWARGS and v is not None)
    if unknown:
        raise UnsupportedArchitectureError(
            f"{type(module).__name__} passes {unknown} to its attention function; hf-metaopt cannot tell how "
            "that changes the attention scores, so it refuses to record them rather than report a wrong number. "
            "Supported: plain scaled dot-product scores with masks, sliding windows, soft-capping and sinks."
        )


def score_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype scores and recorded queries are computed in: the model's, at least float32.

    Half-precision models are scored in float32; a float64 model keeps float64, so a rank
    statistic over its scores (Kendall, top-k recall) does not depend on float32 rounding.
    """
    return torch.promote_types(dtype, torch.float32)


def _scores(query: torch.Tensor, key: torch.Tensor, kwargs: dict) -> torch.Tensor:
    """``[B, H, T_k]`` pre-softmax scores of each row's analysed query vector, as the model computes them."""
    heads = query.shape[1]
    if key.shape[1] != heads:  # grouped-query attention: each K/V head serves several query heads
        key = key.repeat_interleave(heads // key.shape[1], dim=1)
    scale = kwargs.get("scaling")
    scale = scale if scale is not None else query.shape[-1] ** -0.5
    dtype = score_dtype(query.dtype)
    scores = torch.einsum("bhd,bhkd->bhk", query.to(dtype), key.to(dtype)) * scale
    softcap = kwargs.get("softcap")
    if softcap is not None:
        scores = torch.tanh(scores / softcap) * softcap
    return scores


def _visible(mask, window: int | None, positions: torch.Tensor, key_abs: torch.Tensor, past: int) -> torch.Tensor:
    """``[B, T_k]`` whether each row's analysed position attends each key, as the model's mask says."""
    if isinstance(mask, torch.Tensor) and mask.dim() == 4 and mask.shape[-1] == key_abs.shape[0]:
        rows = torch.arange(positions.shape[0], device=mask.device).clamp(max=mask.shape[0] - 1)
        picked = mask[rows, 0, positions.to(mask.device), :]
        return (picked if picked.dtype == torch.bool else picked > torch.finfo(picked.dtype).min / 2).cpu()
    pos_abs = (positions + past).cpu()[:, None]
    visible = key_abs[None, :] <= pos_abs
    if window is not None:
        visible &= key_abs[None, :] > pos_abs - window
    return visible


def _attention_mass(scores: torch.Tensor, visible: torch.Tensor, sinks) -> torch.Tensor:
    """``[H, T_k]``: the softmax of one row's scores over the keys it attends to, as the model's attention weights.

    ``sinks`` (``[H]`` or ``None``): a model's per-head sink logits (GPT-OSS's ``s_aux``), which enter
    the softmax's denominator only, as its eager attention adds them.
    """
    logits = scores.masked_fill(~visible[None, :], float("-inf"))
    if isinstance(sinks, torch.Tensor):
        logits = torch.cat([logits, sinks.detach().reshape(-1, 1).to("cpu", logits.dtype)], dim=1)
    return torch.softmax(logits, dim=-1)[:, : scores.shape[1]]


def _gather(scores: torch.Tensor, visible: torch.Tensor, absolute: Sequence[int], offset: int):
    """Scores ``[H, n]`` and visibility ``[n]`` at the keys of the given absolute positions (0 where invisible)."""
    index = torch.as_tensor(list(absolute), dtype=torch.long) - offset
    present = index >= 0  # older keys a sliding layer's cache no longer holds are outside its window
    index = index.clamp(min=0)
    seen = visible[index] & present
    return scores[:, index] * seen, seen


class AttentionRecorder:
    """Records, per layer, what the analysis metrics need at one position per sequence.

    Enter :meth:`recording` around the forward passes; inside it, :meth:`reading` names the
    rows to read for the forwards in its block and :meth:`collecting_queries` keeps the query
    vectors of every token instead (the finetuning pass, for Kendall). :meth:`pop` returns
    and clears what :meth:`reading` recorded.
    """

    def __init__(self, model: nn.Module):
        self.modules = [layer.module for layer in attention_layers(model)]
        self.layer_of = {id(m): i for i, m in enumerate(self.modules)}
        self.model = model
        self._rows: list[RowSpec] = []
        self._past = 0
        self._skip: int | None = None
        self._names: dict[str, str] = {}  # implementation -> this recorder's registered name for it
        self._recording = False
        self.token_queries: list[list[torch.Tensor]] = [[] for _ in self.modules]
        self.scaling: list[float | None] = [None] * len(self.modules)  # each layer's score scale, as last called
        self._clear()

    @property
    def num_layers(self) -> int:
        return len(self.modules)

    def _clear(self) -> None:
        n = len(self.modules)
        self._query = [None] * n  # [B, H, Dh]
        self._own = [None] * n  # per row ([H, T_own], [T_own])
        self._demo = [None] * n  # ([B, T_demo], [B, T_demo]) summed over heads
        self._mass = [{} for _ in range(n)]  # row -> [H, T_demo], the rows marked ``inspect``
        self._output = [None] * n  # [B, E]

    # ------------------------------------------------------------------ modes
    @contextmanager
    def reading(self, rows: Sequence[RowSpec], past_length: int = 0) -> Iterator["AttentionRecorder"]:
        """Read ``rows`` (one per batch row) in the forwards of the block; ``past_length`` tokens are cached."""
        self._rows, self._past = list(rows), past_length
        try:
            yield self
        finally:
            self._rows, self._past = [], 0

    @contextmanager
    def collecting_queries(self, skip: int = 0) -> Iterator["AttentionRecorder"]:
        """Inside :meth:`recording`: keep every token's query vectors after ``skip`` leading tokens.

        Each forward appends ``[H, T, Dh]`` (CPU, :func:`score_dtype`) per layer and batch row to
        :attr:`token_queries`.
        """
        self._skip = skip
        try:
            yield self
        finally:
            self._skip = None

    def take_token_queries(self) -> list[torch.Tensor]:
        """Per layer, the query vectors :meth:`collecting_queries` kept, ``[H, T, Dh]`` over all
        forwards in order; the recorder keeps none of them afterwards."""
        taken = []
        for layer, per_forward in enumerate(self.token_queries):
            taken.append(torch.cat(per_forward, dim=1))
            self.token_queries[layer] = []  # one layer's pieces at a time: the peak stays one layer above the result
        return taken

    def pop(self) -> dict:
        """What :meth:`reading` recorded in the last forward(s), then cleared.

        ``query [B, L, H, Dh]``, ``output [B, L, E]``, ``own`` (per row ``[L, H, T_own]``),
        ``own_visible`` (per row ``[L, T_own]``), ``demo`` and ``demo_visible`` (``[B, L, T_demo]``
        or ``None``), ``demo_mass`` (per row ``[L, H, T_demo]`` for the rows marked ``inspect``,
        else ``None``); float64 / bool CPU tensors; ``scaling`` ``[L]``, each layer's score scale
        (the ``scaling`` its attention function was given, else ``head_dim ** -0.5``).
        """
        n_rows = self._query[0].shape[0] if self._query[0] is not None else 0
        out = {
            "query": torch.stack(self._query, dim=1) if n_rows else None,
            "output": torch.stack(self._output, dim=1) if self._output[0] is not None else None,
            "own": [torch.stack([self._own[l][b][0] for l in range(self.num_layers)]) for b in range(n_rows)],
            "own_visible": [torch.stack([self._own[l][b][1] for l in range(self.num_layers)]) for b in range(n_rows)],
            "demo": torch.stack([d[0] for d in self._demo], dim=1) if self._demo[0] is not None else None,
            "demo_visible": torch.stack([d[1] for d in self._demo], dim=1) if self._demo[0] is not None else None,
            "scaling": torch.tensor(self.scaling, dtype=torch.float64) if n_rows else None,
            "demo_mass": [torch.stack([m[b] for m in self._mass]) if b in self._mass[0] else None for b in range(n_rows)],
        }
        self._clear()
        return out

    # ---------------------------------------------------------------- callbacks
    def _on_attention(self, module, query, key, mask, kwargs: dict) -> None:
        layer = self.layer_of.get(id(module))
        if layer is None:
            return
        scale = kwargs.get("scaling")
        self.scaling[layer] = float(scale) if scale is not None else query.shape[-1] ** -0.5
        if self._skip is not None:
            # Checked on the CPU copy the recording makes anyway: no extra pass, no device sync per layer.
            kept = query.detach()[:, :, self._skip :, :].to("cpu", score_dtype(query.dtype))
            check_finite(kept, "attention queries", query.dtype)
            self.token_queries[layer].extend(kept.unbind(0))
            return
        if not self._rows:
            return
        _check_kwargs(module, kwargs)
        batch = torch.arange(query.shape[0], device=query.device)
        positions = torch.tensor([r.position for r in self._rows], device=query.device)
        q = query.detach()[batch, :, positions, :]  # [B, H, Dh]
        scores = _scores(q, key.detach(), kwargs).to("cpu", torch.float64)  # [B, H, T_k]
        check_finite(scores, "attention scores", query.dtype)
        offset = self._past + query.shape[2] - key.shape[2]  # absolute position of key 0
        key_abs = torch.arange(key.shape[2]) + offset
        visible = _visible(mask, kwargs.get("sliding_window"), positions, key_abs, self._past)
        self._query[layer] = q.to("cpu", torch.float64)
        self._own[layer] = [_gather(scores[b], visible[b], range(*r.own), offset) for b, r in enumerate(self._rows)]
        if self._rows[0].demo is not None:
            demo = [_gather(scores[b], visible[b], r.demo, offset) for b, r in enumerate(self._rows)]
            self._demo[layer] = (torch.stack([s.sum(dim=0) for s, _ in demo]), torch.stack([v for _, v in demo]))
            sinks = kwargs.get("s_aux", kwargs.get("sinks"))
            self._mass[layer] = {b: _gather(_attention_mass(scores[b], visible[b], sinks), visible[b], r.demo, offset)[0]
                                 for b, r in enumerate(self._rows) if r.inspect}

    def _on_output(self, module, args, output) -> None:
        if self._skip is not None or not self._rows:
            return
        hidden = output[0] if isinstance(output, tuple) else output
        index = torch.tensor([r.position for r in self._rows], device=hidden.device)
        picked = hidden.detach()[torch.arange(hidden.shape[0], device=hidden.device), index]
        picked = picked.to("cpu", torch.float64)
        check_finite(picked, "attention outputs", hidden.dtype)
        self._output[self.layer_of[id(module)]] = picked

    # ---------------------------------------------------------------- context
    def _name_for(self, implementation: str) -> str:
        """This recorder's attention name standing for ``implementation``, (re)registered with its mask function."""
        if implementation not in ALL_MASK_ATTENTION_FUNCTIONS:
            raise UnsupportedArchitectureError(
                f"attention implementation {implementation!r} has no mask function in transformers' "
                f"AttentionMaskInterface, so its masks cannot be reproduced; {_LOAD_SDPA}."
            )
        name = self._names.get(implementation)
        if name is None:
            # No 'sdpa'/'flash'/'flex' in the name: transformers runs those implementations' own checks on such names.
            with _FREE_LOCK:
                name = _FREE_NAMES.pop() if _FREE_NAMES else f"hf_metaopt_capture_{next(_NAMES)}"
            if not self._names:
                weakref.finalize(self, _release_names, self._names)  # the dict itself: names added later too
            self._names[implementation] = name
        # Registered at every recording: ``implementation`` may be another recorder's reused name since the last one.
        AttentionMaskInterface.register(name, ALL_MASK_ATTENTION_FUNCTIONS[implementation])
        AttentionInterface.register(name, functools.partial(_recording_attention, weakref.ref(self), implementation))
        return name

    def _switch(self, models: list[PreTrainedModel], trees: list[dict]) -> None:
        for model, tree in zip(models, trees):  # outermost first: an inner model's own setting has the last word
            model.set_attn_implementation(tree)

    @contextmanager
    def recording(self) -> Iterator["AttentionRecorder"]:
        """Route the model's attention through the recorder for the ``with`` block.

        The model's attention implementation (of every sub-model) is put back on exit, also
        when the block raises. Another recorder may record inside the block, on this model
        too; this one cannot be entered twice at once.

        Raises:
            UnsupportedArchitectureError: the implementation cannot be recorded faithfully, or
                the model does not dispatch attention through transformers' ``AttentionInterface``.
        """
        if self._recording:
            raise RuntimeError("this AttentionRecorder is already recording; use a second AttentionRecorder to nest.")
        models = _transformers_models(self.model)
        saved = [_implementations(m.config) for m in models]
        for m in self.modules:
            if (getattr(getattr(m, "config", None), "_attn_implementation", None) or "eager") == "eager":
                _eager_attention(m)  # refused now, before any pass, if there is none to call
        recording = [_renamed(tree, self._name_for) for tree in saved]
        handles = []
        self._recording = True
        try:
            self._switch(models, recording)
            self._check_switched()
            handles = [m.register_forward_hook(self._on_output) for m in self.modules]
            yield self
        finally:
            for h in handles:
                h.remove()
            self._switch(models, saved)
            self._recording = False

    def _check_switched(self) -> None:
        names = set(self._names.values())
        for m in self.modules:
            config = getattr(m, "config", None)
            if config is not None and config._attn_implementation not in names:
                raise UnsupportedArchitectureError(
                    f"{type(m).__name__} kept attention implementation {config._attn_implementation!r} after "
                    "set_attn_implementation: its model does not dispatch attention through transformers' "
                    "AttentionInterface, which the capture records."
                )
