"""The demonstration prefix's cache, repeated over a batch of queries for one forward pass.

The ICL route computes the prefix's cache once (batch 1) and feeds each batch of queries
after it. :func:`expand_cache` gives the forward a cache of the batch's size without
copying the prefix for every layer at once: for the layer types of transformers'
``DynamicCache`` (full and sliding-window attention), each layer is an
:class:`ExpandedPrefixLayer`, a ``CacheLayerMixin`` that returns the prefix's keys and values
broadcast to the batch with the batch's own appended, and stores nothing. A layer's
``[B, H, T_prefix + T_query, D]`` keys and values then exist only while that layer attends,
where a copy repeated by ``reorder_cache`` held the batch-repeated prefix of every layer for
the whole pass (``docs/analysis.md``, "Memory"). The tensors the attention receives hold the
same values either way, so every score is unchanged.

Any other cache (static or linear-attention layers, MomentumGPT's momentum state, a cache
class of a model's own) is repeated the general way: ``copy.deepcopy`` and ``reorder_cache``
with every row taken from row 0, which every cache layer implements for what it holds.
"""

from __future__ import annotations

import copy

import torch
from transformers.cache_utils import Cache, CacheLayerMixin, DynamicCache, DynamicLayer, DynamicSlidingWindowLayer

__all__ = ["ExpandedPrefixLayer", "expand_cache"]

# Exactly these classes (not subclasses, which may hold more state): their ``update`` returns the
# stored keys/values with the new ones appended, which is what ExpandedPrefixLayer reproduces.
_READ_ONLY_LAYERS = (DynamicLayer, DynamicSlidingWindowLayer)


def _read_only(layer: CacheLayerMixin) -> bool:
    """Whether :class:`ExpandedPrefixLayer` reproduces ``layer``'s ``update`` (a sliding layer recording its past does not)."""
    return type(layer) in _READ_ONLY_LAYERS and not getattr(layer, "record_past", False)


class ExpandedPrefixLayer(CacheLayerMixin):
    """One layer of a batch-1 prefix cache, seen by a forward pass over ``batch`` sequences; stores nothing.

    ``update(keys, values)`` returns the prefix's keys and values broadcast to ``batch`` rows with
    ``keys``/``values`` appended along the sequence, as the prefix layer repeated to the batch
    would, and leaves the prefix layer unchanged. Lengths and mask sizes are the prefix layer's
    (they do not depend on the batch). Meant for one forward pass: a second ``update`` would not
    see the first one's tokens.

    Args:
        prefix: a ``DynamicLayer`` or ``DynamicSlidingWindowLayer`` of batch size 1.
        batch: rows of the forward pass.
    """

    def __init__(self, prefix: CacheLayerMixin, batch: int):
        super().__init__()
        if not _read_only(prefix):
            raise TypeError(
                f"ExpandedPrefixLayer reads a DynamicLayer or DynamicSlidingWindowLayer (not recording its past); got {type(prefix).__name__}."
            )
        self.prefix = prefix
        self.batch = batch
        self.is_sliding = prefix.is_sliding
        self.is_initialized = prefix.is_initialized
        self.keys, self.values = self._expanded(prefix.keys), self._expanded(prefix.values)
        if prefix.is_initialized:
            self.device = prefix.device

    def _expanded(self, tensor: torch.Tensor | None) -> torch.Tensor | None:
        """A broadcast view of the prefix's ``[1, ...]`` tensor over the batch (no copy)."""
        return None if tensor is None or tensor.dim() == 1 else tensor.expand(self.batch, *tensor.shape[1:])

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        """Nothing to allocate: the prefix layer holds the tensors."""

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
        """The prefix's keys and values (broadcast to the batch) followed by ``key_states``/``value_states``."""
        if self.keys is None or self.prefix.get_seq_length() == 0:
            return key_states, value_states
        return torch.cat([self.keys, key_states], dim=-2), torch.cat([self.values, value_states], dim=-2)

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.prefix.get_mask_sizes(query_length)

    def get_seq_length(self) -> int:
        return self.prefix.get_seq_length()

    def get_max_length(self) -> int:
        return self.prefix.get_max_length()

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        raise NotImplementedError("an ExpandedPrefixLayer is read-only: it serves one forward pass.")


def expand_cache(cache: Cache, batch: int) -> Cache:
    """A cache of ``batch`` rows for one forward pass after the batch-1 ``cache``; ``cache`` is left as it was.

    A ``DynamicCache`` of full and sliding-window layers becomes a cache of
    :class:`ExpandedPrefixLayer` views (nothing copied until a layer attends); any other cache
    is deep-copied and repeated with ``reorder_cache``.
    """
    if type(cache) is DynamicCache and not cache.offloading and all(_read_only(layer) for layer in cache.layers):
        return Cache(layers=[ExpandedPrefixLayer(layer, batch) for layer in cache.layers])
    expanded = copy.deepcopy(cache)
    expanded.reorder_cache(torch.zeros(batch, dtype=torch.long))
    return expanded
