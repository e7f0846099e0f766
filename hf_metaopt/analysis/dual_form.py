"""The dual form of attention (``docs/analysis.md``, "The dual form"), checked numerically on a real model.

Relaxed linear attention (softmax and the ``1/sqrt(d)`` scale removed) over the
demonstration tokens ``X'`` followed by the query context ``X``::

    F_ICL(q) = W_V [X'; X] (W_K [X'; X])^T q
             = W_V X (W_K X)^T q + W_V X' (W_K X')^T q = (W_ZSL + dW_ICL) q

:func:`dual_form_check` evaluates both sides per layer and head of a causal LM and
reports the error of the identity, then compares ``dW_ICL`` with ``dW_FT``, the
change of ``W_ZSL`` produced by finetuning ``W_K, W_V`` on the same demonstrations.

What exactly is computed (the honest reading for real models):

- ``x`` are the layer's attention inputs (the normed hidden states entering the
  attention module, recorded by a forward pre-hook) in **one** forward pass over
  ``[X'; X]``. The query-context inputs ``X`` are therefore those of the ICL pass:
  in layers above the first they already carry information from the demonstrations.
  The identity is exact algebra given those inputs; what it shows is that the
  computation reads as a weight update, not that the inputs are the ZSL ones.
- "``W_K x``" and "``W_V x``" are the layer's actual key and value vectors: biases
  included, per-head ``k_norm`` applied where the architecture has one, and for
  rotary models (Llama, SmolLM2, Gemma, ...) the key **after** RoPE at its position,
  ``R_p W_K x``. With RoPE, ``dW_ICL = sum_i (W_V x'_i)(R_{p_i} W_K x'_i)^T``
  depends on where the demonstrations sit, and ``q = R_t W_Q x_t``; this is the
  reading under which the relaxed scores equal the model's pre-softmax scores
  (divided by its scale), which the tests check.
- Grouped-query attention: each query head uses its key/value group's vectors;
  results are reported per query head.
- ``q`` is the query vector of the last query token (the position that predicts the
  label). MomentumGPT's momentum term (an EMA of values added after attention) is
  outside the relaxed attention and not part of the identity.

``dW_FT`` (what the comparison means): the analysis's own finetuning of the model's key and
value projections (:func:`.finetune.finetuned`, ``method="kv"``: weights and biases, every
layer at once; the Q part of a fused GPT-2 ``c_attn`` stays fixed), plain SGD, one step per
demonstration, in order, on the model's own causal-LM loss over every token of the
demonstration, in the model's dtype and in training mode (its dropout active, seeded), as the FT route of the analysis
trains. The loss goes through the real softmax attention
and all layers, so ``dW_K, dW_V`` are true finetuning updates. With the finetuned
keys and values ``k~_j, v~_j`` of the same query-context inputs ``X``,
``dW_FT = sum_j v~_j k~_j^T - W_ZSL``, i.e. ``F_FT(q) = (W_ZSL + dW_FT) q`` as in the
paper. ``cos(dW_ICL, dW_FT)`` (Frobenius, per layer and head) then asks whether ICL's
implicit update points where one epoch of SGD on K/V moves the same relaxed layer.
The model itself is never modified.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..torch_utils import eval_mode
from .finetune import finetuned
from .layout import AttentionLayer, UnsupportedArchitectureError, attention_layers
from .metrics import cosine
from .options import AnalysisOptions

__all__ = ["DualFormResult", "dual_form_check", "linear_attention_dual"]


def linear_attention_dual(keys: torch.Tensor, values: torch.Tensor, query: torch.Tensor, n_demo: int) -> dict[str, torch.Tensor]:
    """Both sides of the dual form for given key/value vectors and one query.

    Args:
        keys: ``[..., T, d_k]`` key vectors of ``[X'; X]`` (demonstrations first).
        values: ``[..., T, d_v]`` value vectors of the same tokens.
        query: ``[..., d_k]`` the query vector ``q``.
        n_demo: how many of the ``T`` tokens are demonstration tokens ``X'``.

    Returns:
        ``{"f_icl": [..., d_v]`` (attention form: sum_i v_i (k_i . q)),
        ``"w_zsl": [..., d_v, d_k]``, ``"dw_icl": [..., d_v, d_k]``,
        ``"f_dual": [..., d_v]`` ((W_ZSL + dW_ICL) q)}; all float64.
    """
    keys, values, query = (torch.as_tensor(t).double() for t in (keys, values, query))
    if keys.shape[:-1] != values.shape[:-1]:
        raise ValueError(f"`values` has shape {tuple(values.shape)} but `keys` has {tuple(keys.shape)}; they need the same [..., T].")
    if query.shape[:-1] != keys.shape[:-2] or query.shape[-1] != keys.shape[-1]:
        raise ValueError(f"`query` has shape {tuple(query.shape)}; with keys {tuple(keys.shape)} it must be {tuple(keys.shape[:-2]) + (keys.shape[-1],)}.")
    if not 0 <= n_demo <= keys.shape[-2]:
        raise ValueError(f"`n_demo` must lie in [0, {keys.shape[-2]}] (the number of tokens); got {n_demo}.")
    scores = torch.einsum("...tk,...k->...t", keys, query)
    f_icl = torch.einsum("...tv,...t->...v", values, scores)
    w_zsl = torch.einsum("...tv,...tk->...vk", values[..., n_demo:, :], keys[..., n_demo:, :])
    dw_icl = torch.einsum("...tv,...tk->...vk", values[..., :n_demo, :], keys[..., :n_demo, :])
    f_dual = torch.einsum("...vk,...k->...v", w_zsl + dw_icl, query)
    return {"f_icl": f_icl, "w_zsl": w_zsl, "dw_icl": dw_icl, "f_dual": f_dual}


# ---------------------------------------------------------------- attention layouts

class _Attention:
    """One attention layer's head geometry; its Q/K/V projections come from :mod:`.layout`."""

    def __init__(self, layer: AttentionLayer, num_heads: int):
        self.layer, self.name, self.module = layer, layer.name, layer.module
        w = layer.projections()
        self.head_dim = int(getattr(layer.module, "head_dim", 0)) or w["q_w"].shape[0] // num_heads
        self.num_heads = w["q_w"].shape[0] // self.head_dim
        self.num_kv_heads = w["k_w"].shape[0] // self.head_dim
        self.scaling = float(getattr(layer.module, "scaling", self.head_dim**-0.5))

    def project(self, x: torch.Tensor, w: dict[str, Any], rope: tuple[torch.Tensor, torch.Tensor] | None):
        """Per-head q ``[H, T, d]`` and k, v ``[H, T, d]`` (KV groups repeated) in float64."""

        def lin(p: str, heads: int) -> torch.Tensor:
            y = x @ w[f"{p}_w"].double().T
            if w[f"{p}_b"] is not None:
                y = y + w[f"{p}_b"].double()
            return y.view(x.shape[0], heads, self.head_dim)  # [T, heads, d]

        q, k, v = lin("q", self.num_heads), lin("k", self.num_kv_heads), lin("v", self.num_kv_heads)
        q, k = self._head_norm("q_norm", q), self._head_norm("k_norm", k)
        q, k, v = (t.transpose(0, 1) for t in (q, k, v))  # [heads, T, d]
        if rope is not None:
            cos, sin = (r.double() for r in rope)  # [T, d]
            if cos.shape[-1] != self.head_dim:
                raise ValueError(
                    f"{self.name}: rotary embeddings of size {cos.shape[-1]} on heads of size {self.head_dim} "
                    "(partial rotary) are not supported by dual_form_check."
                )
            q, k = q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin
        groups = self.num_heads // self.num_kv_heads
        return q, k.repeat_interleave(groups, dim=0), v.repeat_interleave(groups, dim=0)

    def _head_norm(self, attr: str, t: torch.Tensor) -> torch.Tensor:
        # Qwen3 / Gemma3 normalise each head's q and k (over head_dim) before RoPE.
        norm = getattr(self.module, attr, None)
        if norm is None:
            return t
        weight = getattr(norm, "weight", None)
        return norm(t.to(weight.dtype) if weight is not None else t).double()


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _attention_modules(model: nn.Module) -> list[_Attention]:
    config = getattr(model, "config", None)
    num_heads = getattr(config, "num_attention_heads", None)
    if num_heads is None:
        raise TypeError(
            f"`model` ({type(model).__name__}) has no `config.num_attention_heads`; pass a transformers causal LM."
        )
    try:
        layers = attention_layers(model)
    except UnsupportedArchitectureError:
        raise ValueError(
            f"{type(model).__name__} has no attention module with a fused `c_attn` (GPT-2) or "
            "`q_proj`/`k_proj`/`v_proj` (Llama, Gemma, MomentumGPT, ...); dual_form_check supports those layouts."
        ) from None
    return [_Attention(layer, num_heads) for layer in layers]


# ---------------------------------------------------------------- result

@dataclass
class DualFormResult:
    """Per layer and (query) head results of :func:`dual_form_check`; arrays are ``[L, H]``.

    Attributes:
        identity_abs_error: ``max |F_ICL(q) - (W_ZSL + dW_ICL) q|``.
        identity_rel_error: the same divided by ``max |F_ICL(q)|``.
        cos_icl_ft: Frobenius cosine of ``dW_ICL`` and ``dW_FT`` (0.0 if either is zero).
        cos_icl_zsl: Frobenius cosine of ``dW_ICL`` and ``W_ZSL``, a reference point: sums of
            ``v k^T`` outer products from one layer share structure (e.g. bias directions),
            so read ``cos_icl_ft`` against it rather than against 0.
        dw_icl_norm, dw_ft_norm, w_zsl_norm: Frobenius norms.
        relaxed_scores: ``[L, H, T]`` the relaxed scores ``k_i . q`` over all tokens (the
            model's pre-softmax scores before its scale).
    """

    layers: list[str]
    identity_abs_error: np.ndarray
    identity_rel_error: np.ndarray
    cos_icl_ft: np.ndarray
    cos_icl_zsl: np.ndarray
    dw_icl_norm: np.ndarray
    dw_ft_norm: np.ndarray
    w_zsl_norm: np.ndarray
    relaxed_scores: np.ndarray
    scaling: list[float]
    n_demo_tokens: int
    n_query_tokens: int
    learning_rate: float
    rotary: bool
    notes: list[str] = field(default_factory=list)

    @property
    def max_rel_error(self) -> float:
        """The largest relative error of the identity over layers and heads."""
        return float(self.identity_rel_error.max())

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types: per-layer lists of per-head values, and summaries."""
        per_layer_cos = self.cos_icl_ft.mean(axis=1)
        return {
            "layers": list(self.layers),
            "identity_abs_error": self.identity_abs_error.tolist(),
            "identity_rel_error": self.identity_rel_error.tolist(),
            "max_rel_error": self.max_rel_error,
            "cos_icl_ft": self.cos_icl_ft.tolist(),
            "cos_icl_ft_per_layer": [float(v) for v in per_layer_cos],
            "cos_icl_ft_mean": float(per_layer_cos.mean()),
            "cos_icl_zsl": self.cos_icl_zsl.tolist(),
            "cos_icl_zsl_mean": float(self.cos_icl_zsl.mean()),
            "dw_icl_norm": self.dw_icl_norm.tolist(),
            "dw_ft_norm": self.dw_ft_norm.tolist(),
            "w_zsl_norm": self.w_zsl_norm.tolist(),
            "n_demo_tokens": self.n_demo_tokens,
            "n_query_tokens": self.n_query_tokens,
            "learning_rate": self.learning_rate,
            "rotary": self.rotary,
            "notes": list(self.notes),
        }


# ---------------------------------------------------------------- the check

def _as_demos(demonstrations: str | Sequence[str]) -> list[str]:
    if isinstance(demonstrations, str):
        demonstrations = [demonstrations]
    if not isinstance(demonstrations, Sequence) or not all(isinstance(d, str) for d in demonstrations):
        raise TypeError("`demonstrations` must be a string or a list of strings (one per demonstration).")
    if not demonstrations or not all(d.strip() for d in demonstrations):
        raise ValueError("`demonstrations` is empty or holds an empty string; pass at least one non-empty demonstration.")
    return list(demonstrations)


def _ids(tokenizer, text: str, special: bool) -> list[int]:
    return list(tokenizer(text, add_special_tokens=special)["input_ids"])


def _finetuned_kv(model, demo_ids: list[list[int]], learning_rate: float) -> list[dict]:
    """Per layer, the K/V projections after the analysis's K/V finetuning (:func:`.finetune.finetuned`,
    ``method="kv"``) on the demonstrations, one step each, in order."""
    with finetuned(model, demo_ids, AnalysisOptions(method="kv", learning_rate=learning_rate)) as tuned:
        return [
            {k: (t.detach().clone() if t is not None else None) for k, t in layer.projections().items() if k[0] in "kv"}
            for layer in attention_layers(tuned.model)
        ]


def _token_ids(model, tokenizer, demos: list[str], query: str, separator: str) -> tuple[list[int], list[int], list[list[int]]]:
    """``(prefix ids, query ids, one training example per demonstration)``, checked."""
    prefix_ids = _ids(tokenizer, separator.join(demos) + separator, special=True)
    query_ids = _ids(tokenizer, query, special=False)
    demo_ids = [_ids(tokenizer, d, special=True) for d in demos]
    if not query_ids:
        raise ValueError("`query` tokenizes to no tokens; pass a non-empty query prompt.")
    short = [i for i, ids in enumerate(demo_ids) if len(ids) < 2]
    if short:
        raise ValueError(f"demonstrations {short} tokenize to fewer than 2 tokens; the causal-LM loss needs at least 2.")
    n_ctx = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
    total = len(prefix_ids) + len(query_ids)
    if n_ctx is not None and total > n_ctx:
        raise ValueError(f"demonstrations + query take {total} tokens but the model's context is {n_ctx}; pass fewer demonstrations.")
    return prefix_ids, query_ids, demo_ids


def _attention_inputs(model, attns: list[_Attention], ids: list[int], device) -> dict[str, dict[str, Any]]:
    """Per attention module: its input hidden states ``x`` and rotary embeddings in one forward over ``ids``."""
    captured: dict[str, dict[str, Any]] = {}

    def make_hook(name: str):
        def hook(_module, args, kwargs):
            x = args[0] if args else kwargs["hidden_states"]
            captured[name] = {"x": x[0].detach(), "rope": kwargs.get("position_embeddings")}

        return hook

    handles = [a.module.register_forward_pre_hook(make_hook(a.name), with_kwargs=True) for a in attns]
    # Only the attention inputs are read: the logits of one position, not of all, are computed.
    keep = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}
    try:
        with torch.no_grad():
            model(input_ids=torch.tensor([ids], device=device), **keep)
    finally:
        for h in handles:
            h.remove()
    missing = [a.name for a in attns if a.name not in captured]
    if missing:
        raise ValueError(f"attention module {missing[0]!r} did not run in the forward pass; is it part of the model?")
    return captured


@torch.no_grad()
def _layer_check(a: _Attention, inputs: dict[str, Any], kv: dict, n_demo: int) -> dict[str, np.ndarray]:
    """The identity's error, ``dW_ICL`` vs ``dW_FT`` and the relaxed scores of one layer, per head."""
    x = inputs["x"].double()
    rope = inputs["rope"]
    rope = (rope[0][0], rope[1][0]) if rope is not None else None
    weights = a.layer.projections()
    q, k, v = a.project(x, weights, rope)
    dual = linear_attention_dual(k, v, q[:, -1], n_demo)
    err = (dual["f_icl"] - dual["f_dual"]).abs().amax(dim=-1)
    scale = dual["f_icl"].abs().amax(dim=-1).clamp_min(torch.finfo(torch.float64).tiny)
    _, k_ft, v_ft = a.project(x, weights | kv, rope)
    dw_ft = torch.einsum("htv,htk->hvk", v_ft[:, n_demo:], k_ft[:, n_demo:]) - dual["w_zsl"]
    flat_icl, flat_ft, flat_zsl = (t.flatten(1).cpu().numpy() for t in (dual["dw_icl"], dw_ft, dual["w_zsl"]))
    return {
        "abs": err.cpu().numpy(), "rel": (err / scale).cpu().numpy(),
        "cos": cosine(flat_icl, flat_ft), "cos_zsl": cosine(flat_icl, flat_zsl),
        "n_icl": np.linalg.norm(flat_icl, axis=-1), "n_ft": np.linalg.norm(flat_ft, axis=-1),
        "n_zsl": np.linalg.norm(flat_zsl, axis=-1), "scores": torch.einsum("htd,hd->ht", k, q[:, -1]).cpu().numpy(),
    }


def dual_form_check(
    model: nn.Module,
    tokenizer,
    demonstrations: str | Sequence[str],
    query: str,
    learning_rate: float = 1e-3,
    separator: str = "\n",
) -> DualFormResult:
    """Check ``F_ICL(q) = (W_ZSL + dW_ICL) q`` in every attention layer and compare ``dW_ICL`` with ``dW_FT``.

    Args:
        model: a transformers causal LM with GPT-2 ``c_attn`` or ``q_proj``/``k_proj``/``v_proj``
            attention (GPT-2, Llama/SmolLM2, Gemma, MomentumGPT, ...). Not modified.
        tokenizer: its tokenizer.
        demonstrations: one string or a list (one finetuning step each). The ICL prefix is
            ``separator.join(demonstrations) + separator``, tokenized with the tokenizer's
            special tokens; the query is tokenized without them and appended, so the split
            between ``X'`` and ``X`` is exact.
        query: the query prompt.
        learning_rate: SGD learning rate of the K/V finetuning that gives ``dW_FT``.
        separator: joins demonstrations (and ends the prefix).

    Returns:
        A :class:`DualFormResult`; see the module docstring for what is compared.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"`model` must be a torch/transformers model; got {type(model).__name__}.")
    if not isinstance(query, str) or not query.strip():
        raise ValueError("`query` must be a non-empty string (the query prompt).")
    if not isinstance(learning_rate, (int, float)) or not learning_rate > 0:
        raise ValueError(f"`learning_rate` must be a positive number; got {learning_rate!r}.")
    attns = _attention_modules(model)
    if "labels" not in inspect.signature(model.forward).parameters:
        raise TypeError(
            f"`model` ({type(model).__name__}) takes no `labels`, so it has no loss to finetune on; pass a causal LM "
            "(e.g. AutoModelForCausalLM), not a base model."
        )
    prefix_ids, query_ids, demo_ids = _token_ids(model, tokenizer, _as_demos(demonstrations), query, separator)
    device = next(model.parameters()).device
    with eval_mode(model):
        captured = _attention_inputs(model, attns, prefix_ids + query_ids, device)
    new_kv = _finetuned_kv(model, demo_ids, float(learning_rate))
    rows = [_layer_check(a, captured[a.name], kv, len(prefix_ids)) for a, kv in zip(attns, new_kv)]
    rotary = any(captured[a.name]["rope"] is not None for a in attns)
    stack = lambda key: np.stack([r[key] for r in rows])  # noqa: E731
    return DualFormResult(
        layers=[a.name for a in attns],
        identity_abs_error=stack("abs"), identity_rel_error=stack("rel"), cos_icl_ft=stack("cos"),
        cos_icl_zsl=stack("cos_zsl"), dw_icl_norm=stack("n_icl"), dw_ft_norm=stack("n_ft"), w_zsl_norm=stack("n_zsl"),
        relaxed_scores=stack("scores"), scaling=[a.scaling for a in attns], n_demo_tokens=len(prefix_ids),
        n_query_tokens=len(query_ids), learning_rate=float(learning_rate), rotary=rotary,
        notes=["rotary model: keys and q are taken after RoPE, so dW_ICL depends on the demonstrations' positions"] if rotary else [],
    )
