"""How many queries one forward pass takes: fixed by the user, or fitted to the free memory of the model's device.

``AnalysisOptions.batch_size="auto"`` (the default) picks the largest batch whose estimated peak
(:func:`forward_bytes`) fits in :data:`MEMORY_SHARE` of the free memory (:func:`free_memory`: on
CUDA the driver's free bytes plus what torch's allocator holds unused, elsewhere the available
RAM), at most :data:`CPU_CAP` on CPU and :data:`CUDA_CAP` on CUDA, and at most the number of
queries. An integer fixes it. Batching never changes a score (``docs/analysis.md``, "Memory").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from .options import AUTO_BATCH_SIZE, batch_size_value

__all__ = ["CPU_CAP", "CUDA_CAP", "MEMORY_SHARE", "forward_bytes", "free_memory", "resolve_batch_size"]

# On CPU the passes are compute-bound: a batch above 8 barely speeds them up and only adds transient memory.
CPU_CAP = 8
CUDA_CAP = 64
# The rest of the free memory stays for the finetuned K/V copy, allocator slack and the caller.
MEMORY_SHARE = 0.5


def _dimension(config: Any, *names: str, default: int | None = None) -> int:
    for name in names:
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    if default is None:
        raise ValueError(f"the model's config has none of {list(names)}; pass batch_size=<number> instead of 'auto'.")
    return default


def forward_bytes(config: Any, batch: int, *, cached: int, fed: int, label_tokens: int = 1, element_size: int = 4) -> int:
    """Estimated peak bytes of one no-grad forward pass of the analysis over ``batch`` queries, above the weights.

    Each row feeds ``fed`` tokens after ``cached`` cached ones (the ICL prefix; 0 without the cache).
    Layers run one after another and free their activations, so one layer's transients count, per row:

    - hidden states, MLP and attention projections: ``fed * (4E + 3I + 2HD)`` elements;
    - the layer's keys and values over ``cached + fed`` positions, and their copy repeated to the
      query heads (grouped-query attention): ``(cached + fed) * 2D * (H_kv + H)`` elements;
    - attention weights and their softmax, in float32: ``2 * 4 * H * fed * (cached + fed)`` bytes;
    - the capture's scores (float64) and its float32 copy of the repeated keys:
      ``8 * H * (cached + fed) + 4 * (cached + fed) * H * D`` bytes;

    plus the logits: every row gets the vocabulary's logits at each scored position of the batch
    (at most ``batch * label_tokens`` of them, at most ``fed``), and each scored row a float32
    log-softmax: ``batch * min(batch * label_tokens, fed) * V`` elements + ``batch * label_tokens * V * 8`` bytes.
    ``E, I, H, H_kv, D, V`` are the config's hidden size, MLP width, attention heads, key/value heads,
    head dimension and vocabulary; ``element_size`` is the model dtype's bytes.
    """
    config = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
    hidden = _dimension(config, "hidden_size", "n_embd", "d_model")
    heads = _dimension(config, "num_attention_heads", "n_head")
    kv_heads = _dimension(config, "num_key_value_heads", default=heads)
    head_dim = _dimension(config, "head_dim", default=hidden // heads)
    mlp = _dimension(config, "intermediate_size", "n_inner", default=4 * hidden)
    vocab = _dimension(config, "vocab_size")
    keys = cached + fed
    per_row = (
        element_size * (fed * (4 * hidden + 3 * mlp + 2 * heads * head_dim) + keys * 2 * head_dim * (kv_heads + heads))
        + 2 * 4 * heads * fed * keys
        + 8 * heads * keys + 4 * keys * heads * head_dim
    )
    logits = element_size * batch * min(batch * label_tokens, fed) * vocab + 8 * batch * label_tokens * vocab
    return batch * per_row + logits


def _devices(model: nn.Module) -> set[torch.device]:
    """The devices holding the model's weights (an accelerate-dispatched model's map, else its parameters)."""
    device_map = getattr(model, "hf_device_map", None)
    if device_map:
        found = set()
        for where in device_map.values():
            if isinstance(where, int):
                found.add(torch.device("cuda", where))
            elif where not in ("disk", "meta"):
                found.add(torch.device(where))
        return found or {torch.device("cpu")}
    return {p.device for p in model.parameters() if p.device.type != "meta"} or {torch.device("cpu")}


def free_memory(device: torch.device) -> int:
    """Bytes a batch may still take on ``device``: on CUDA the driver's free bytes plus what torch's caching
    allocator reserved and does not use; elsewhere the RAM the system reports available (``psutil``)."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    import psutil

    return psutil.virtual_memory().available


def resolve_batch_size(
    batch_size: int | str,
    model: nn.Module,
    query_ids: Sequence[Sequence[int]],
    label_ids: Sequence[Sequence[int]],
    *,
    cached: int = 0,
    context: int = 0,
    free: int | None = None,
) -> int:
    """The batch size to run: ``batch_size`` itself if it is a number; for ``"auto"``, fitted to the free memory.

    ``"auto"``: the largest batch ``b`` with :func:`forward_bytes` ``(b) <= MEMORY_SHARE * free`` for the
    longest pass over ``query_ids`` (its query, the label position or a label word's later tokens),
    where ``free`` (default: :func:`free_memory`, the least over the devices holding the model) is the
    memory left beside the model; capped at :data:`CUDA_CAP` when a weight is on CUDA, else
    :data:`CPU_CAP`, and at the number of queries; at least 1 (a pass that does not fit at 1 fits at
    no batch size).

    Args:
        batch_size: ``"auto"`` or a positive integer (``AnalysisOptions.batch_size``).
        model: the model the passes run on (its config and dtype size the estimate).
        query_ids, label_ids: the queries' and the label words' token ids.
        cached: tokens of the cache each pass starts from (the ICL prefix with ``fast``).
        context: tokens fed before each query (the start token, or the whole prefix without the cache).
        free: the free bytes to fit into, instead of measuring them.
    """
    batch_size = batch_size_value(batch_size)
    if batch_size != AUTO_BATCH_SIZE:
        return batch_size
    devices = _devices(model)
    cap = CUDA_CAP if any(d.type == "cuda" for d in devices) else CPU_CAP
    cap = max(1, min(cap, len(query_ids)))
    if free is None:
        free = min(free_memory(d) for d in devices)
    label_tokens = max((len(ids) for ids in label_ids), default=1)
    fed = context + max((len(q) for q in query_ids), default=1) + label_tokens
    parameter = next((p for p in model.parameters() if p.device.type != "meta"), None)
    size = dict(cached=cached, fed=fed, label_tokens=label_tokens, element_size=parameter.element_size() if parameter is not None else 4)
    fits = [b for b in range(1, cap + 1) if forward_bytes(model.config, b, **size) <= MEMORY_SHARE * free]
    return max(fits, default=1)
