"""MomentumGPT: GPT-2 with momentum attention (Dai et al. 2023, "Why Can GPT Learn In-Context?", section 5).

Per head, the attention output gets a causal exponential moving average of the earlier value vectors:

    out_t = softmax(q_t K^T / sqrt(d)) V + sum_{i<t} eta^(t-i) v_i          (added before o_proj)

The softmax part goes through transformers' attention interface (`ALL_ATTENTION_FUNCTIONS`), so any registered
attention function (eager, sdpa, a recording one) sees q, k, v; the momentum term is added outside it. With
`momentum=0.0` the model is exactly GPT-2.

Self-contained (imports only torch, transformers and its configuration file) so that it travels with saved
checkpoints as Hub remote code.
"""

import math
from collections.abc import Callable

import torch
from torch import nn

from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer, StaticLayer
from transformers.generation import GenerationMixin
from transformers.masking_utils import create_causal_mask, create_recurrent_attention_mask
from transformers.modeling_layers import GenericForSequenceClassification, GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutputWithPast,
    CausalLMOutputWithPast,
)
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, PreTrainedModel, slice_logits_to_keep
from transformers.processing_utils import Unpack
from transformers.utils import TransformersKwargs, is_torchdynamo_compiling
from transformers.utils.deprecation import deprecate_kwarg
from transformers.utils.generic import can_return_tuple, merge_with_config_defaults
from transformers.utils.output_capturing import capture_outputs

from .configuration_momentum_gpt import MOMENTUM_LAYER_TYPE, MomentumGPTConfig

MOMENTUM_CHUNK_SIZE = 64


def _powers(eta: float, exponents: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """eta ** exponents for non-negative integer exponents, in float64 then cast: underflows to 0, never overflows."""
    return torch.pow(torch.tensor(eta, dtype=torch.float64, device=exponents.device), exponents.double()).to(dtype)


def momentum_term(
    values: torch.Tensor,
    momentum: float,
    state: torch.Tensor | None = None,
    resets: torch.Tensor | None = None,
    chunk_size: int = MOMENTUM_CHUNK_SIZE,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The causal EMA `m_t = sum_{i<t} momentum^(t-i) v_i` for a whole segment, with tensor ops only.

    Chunked: inside chunks of `chunk_size` positions a strictly lower triangular decay matrix
    `momentum^(t-i)`; across chunks the carried state, obtained from the per-chunk summaries with a second
    (small) decay matrix. Every power has a non-negative exponent, so long sequences are numerically safe.

    Args:
        values: `[batch, seq, dim]` value vectors of the segment (padding already zeroed).
        momentum: eta in [0, 1).
        state: `[batch, dim]` momentum carried in from earlier tokens, i.e. `sum_{i<0} eta^(0-i) v_i` for the
            segment's first position (`None`: no earlier tokens).
        resets: `[batch, seq]` booleans, True where a new sequence starts (packed sequences): the sum of such a
            token and of every later one only runs over tokens from that position on. `None`: no resets.
        chunk_size: chunk length of the decay matrices.

    Returns:
        `(m, next_state)`: `m` of shape `[batch, seq, dim]`, and the state for the token after the segment.
    """
    batch, seq_len, dim = values.shape
    compute_dtype = torch.promote_types(values.dtype, torch.float32)
    if seq_len == 1:  # one decoding step: O(1) in the context length
        # A copy: the caller may overwrite `state` in place (the cache does) while `m` is still in use.
        m = torch.zeros_like(values[:, 0], dtype=compute_dtype) if state is None else state.to(compute_dtype, copy=True)
        if resets is not None:
            m = m * (~resets[:, :1]).to(compute_dtype)
        next_state = momentum * (m + values[:, 0].to(compute_dtype))
        return m.unsqueeze(1).to(values.dtype), next_state.to(values.dtype)
    chunk = max(1, min(chunk_size, seq_len))
    n_chunks = math.ceil(seq_len / chunk)
    pad = n_chunks * chunk - seq_len
    v = nn.functional.pad(values.to(compute_dtype), (0, 0, 0, pad)).view(batch, n_chunks, chunk, dim)
    # Sequence index of every position (0 until the first reset); padding continues the last sequence.
    segments = None
    if resets is not None:
        segments = resets.long().cumsum(-1)
        segments = torch.cat([segments, segments[:, -1:].expand(batch, pad)], 1).view(batch, n_chunks, chunk)
    m = _chunked_momentum(v, momentum, state, segments, compute_dtype)
    m = m.reshape(batch, n_chunks * chunk, dim)[:, :seq_len]
    next_state = momentum * (m[:, -1] + values[:, -1].to(compute_dtype))
    return m.to(values.dtype), next_state.to(values.dtype)


def _chunked_momentum(
    v: torch.Tensor, momentum: float, state: torch.Tensor | None, segments: torch.Tensor | None, dtype: torch.dtype
) -> torch.Tensor:
    """`momentum_term` on `v` of shape `[B, n_chunks, C, D]`; `segments` `[B, n_chunks, C]` or None (one sequence)."""
    n_chunks, chunk = v.shape[1], v.shape[2]
    idx = torch.arange(chunk, device=v.device)
    lag = idx[:, None] - idx[None, :]
    intra_decay = torch.where(lag > 0, _powers(momentum, lag.clamp(min=0), dtype), 0.0)  # [C, C]
    if segments is not None:  # a value reaches only the positions of its own sequence
        intra_decay = intra_decay * (segments[..., :, None] == segments[..., None, :]).to(dtype)
    intra = torch.matmul(intra_decay, v)  # [B, n, C, D]

    # Contribution of each chunk to the momentum at the first position of the next chunk:
    # sum_{i<C} eta^(C-i) v_i = eta * (intra_{C-1} + v_{C-1}) (over the last position's sequence).
    summaries = momentum * (intra[:, :, -1] + v[:, :, -1])  # [B, n, D]
    cidx = torch.arange(n_chunks, device=v.device)
    clag = cidx[:, None] - cidx[None, :]
    inter_decay = torch.where(clag > 0, _powers(momentum, (chunk * (clag - 1)).clamp(min=0), dtype), 0.0)
    if segments is not None:  # chunk c' feeds chunk c only if its last sequence is still running at c's start
        inter_decay = inter_decay * (segments[:, :, None, 0] == segments[:, None, :, -1]).to(dtype)
    chunk_states = torch.matmul(inter_decay, summaries)  # [B, n, D]
    if state is not None:
        carried = _powers(momentum, chunk * cidx, dtype)[:, None] * state.to(dtype).unsqueeze(1)
        if segments is not None:  # the carried state only reaches the sequence running at the segment's start
            carried = carried * (segments[:, :, 0] == 0).to(dtype).unsqueeze(-1)
        chunk_states = chunk_states + carried

    from_start = _powers(momentum, idx, dtype)[None, None, :, None] * chunk_states.unsqueeze(2)
    if segments is not None:  # the chunk's carried state stops at the first reset inside the chunk
        from_start = from_start * (segments == segments[..., :1]).to(dtype).unsqueeze(-1)
    return intra + from_start


def momentum_state_from_values(values: torch.Tensor, length: int | torch.Tensor, momentum: float) -> torch.Tensor:
    """The momentum state after the first `length` cached values: `sum_{i<length} momentum^(length-i) v_i`.

    Args:
        values: `[batch, heads, slots, head_dim]` value cache (padding zeroed); slots at or after `length` are ignored,
            so a static cache's whole buffer can be passed with its fill level as a tensor.
        length: number of tokens to keep.
        momentum: eta.

    Returns:
        `[batch, heads * head_dim]`, the state the next token starts from (the layout of `momentum_term`'s state).
    """
    batch, heads, slots, head_dim = values.shape
    compute_dtype = torch.promote_types(values.dtype, torch.float32)
    lag = length - torch.arange(slots, device=values.device)
    weights = torch.where(lag > 0, _powers(momentum, lag.clamp(min=0), compute_dtype), 0.0)
    state = torch.einsum("s,bhsd->bhd", weights, values.to(compute_dtype))
    return state.reshape(batch, heads * head_dim).to(values.dtype)


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain softmax attention: returns `(output [B, T, H, D], weights [B, H, T, S])`."""
    attn_weights = torch.matmul(query, key.transpose(-1, -2)) * scaling
    if attention_mask is not None:
        attn_weights = attn_weights + attention_mask
    attn_weights = nn.functional.softmax(attn_weights, dim=-1, dtype=torch.float32).to(value.dtype)
    attn_weights = nn.functional.dropout(attn_weights, p=dropout, training=module.training)
    attn_output = torch.matmul(attn_weights, value).transpose(1, 2).contiguous()
    return attn_output, attn_weights


class MomentumCacheLayerMixin:
    """The momentum state of one layer, kept next to its keys and values: `[batch, hidden]`, the momentum the next
    token starts from. The value cache holds the value vectors with padding zeroed, so the state at any earlier
    length is recomputed from it when the cache is cropped (assisted and prompt-lookup decoding); that recomputation
    takes each row as one sequence, as generation does (a cache filled from packed sequences is not cropped)."""

    is_momentum_layer = True
    momentum_state: torch.Tensor | None
    momentum: float

    def _init_momentum(self) -> None:
        self.momentum_state = None
        self.momentum = 0.0

    def _store_state(self, state: torch.Tensor) -> None:
        self.momentum_state = state

    def update_momentum(
        self, values: torch.Tensor, momentum: float, resets: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The momentum term of `values` (`[batch, seq, hidden]`, the tokens just added), continuing the state."""
        self.momentum = momentum
        ema, next_state = momentum_term(values, momentum, self.momentum_state, resets)
        self._store_state(next_state)
        return ema

    def _recompute_state(self, length: int | torch.Tensor) -> None:
        if self.momentum_state is not None:
            state = momentum_state_from_values(self.values, length, self.momentum)
            self._store_state(state.to(self.momentum_state.device))

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        super().reorder_cache(beam_idx)
        if self.momentum_state is not None:
            self._store_state(self.momentum_state.index_select(0, beam_idx.to(self.momentum_state.device)))


class MomentumDynamicLayer(MomentumCacheLayerMixin, DynamicLayer):
    """A growing key/value cache layer plus the momentum state (what `DynamicCache(config=...)` builds)."""

    _layer_type = MOMENTUM_LAYER_TYPE

    def __init__(self, **kwargs):
        super().__init__()
        self._init_momentum()

    def reset(self) -> None:
        super().reset()
        self.momentum_state = None

    def crop(self, tokens_to_remove: int) -> None:
        super().crop(tokens_to_remove)
        if tokens_to_remove and self.is_initialized:
            self._recompute_state(self.values.shape[-2])

    def batch_repeat_interleave(self, repeats: int) -> None:
        super().batch_repeat_interleave(repeats)
        if self.momentum_state is not None:
            self.momentum_state = self.momentum_state.repeat_interleave(repeats, dim=0)

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        super().batch_select_indices(indices)
        if self.momentum_state is not None:
            self.momentum_state = self.momentum_state[indices, ...]


class MomentumStaticLayer(MomentumCacheLayerMixin, StaticLayer):
    """A fixed-size key/value cache layer plus the momentum state in a buffer of fixed shape and address (what
    `StaticCache` and `generate(cache_implementation="static")` build): compilable with `fullgraph=True`."""

    _layer_type = MOMENTUM_LAYER_TYPE

    def __init__(self, max_cache_len: int, **kwargs):
        super().__init__(max_cache_len=max_cache_len)
        self._init_momentum()

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        super().lazy_initialization(key_states, value_states)
        # Zeros are the state of an empty prefix, so the first segment needs no special case.
        self.momentum_state = torch.zeros(
            (self.batch_size, self.num_heads * self.v_head_dim), dtype=value_states.dtype, device=self.device
        )
        if not is_torchdynamo_compiling():
            torch._dynamo.mark_static_address(self.momentum_state)

    def _store_state(self, state: torch.Tensor) -> None:
        self.momentum_state.copy_(state)  # in place: the buffer keeps its static address

    def reset(self) -> None:
        super().reset()
        if self.momentum_state is not None:
            self.momentum_state.zero_()

    def crop(self, tokens_to_remove: int) -> None:
        super().crop(tokens_to_remove)
        if tokens_to_remove and self.is_initialized:
            self._recompute_state(self.cumulative_length)


def _momentum_cache_layer(cache: Cache, layer_idx: int) -> MomentumCacheLayerMixin:
    layer = cache.layers[layer_idx]
    # Checked by attribute, not class: the remote-code copy of this file defines its own (equivalent) classes.
    if not getattr(layer, "is_momentum_layer", False):
        raise TypeError(
            f"MomentumGPT keeps its momentum state in the cache, but cache layer {layer_idx} is a "
            f"{type(layer).__name__} without one. Pass `DynamicCache(config=model.config)` or "
            "`StaticCache(config=model.config, max_cache_len=...)` (or no cache: the model creates the right one)."
        )
    return layer


class MomentumGPTAttention(nn.Module):
    """Multi-head causal self-attention with separate q/k/v/o projections plus the momentum term."""

    def __init__(self, config: MomentumGPTConfig, layer_idx: int):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.num_key_value_groups = 1
        self.scaling = self.head_dim**-0.5
        self.attention_dropout = config.attention_dropout
        self.is_causal = True
        self.momentum = config.momentum

        self.q_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=True)
        self.k_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=True)
        self.v_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=True)
        self.o_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=True)
        self.resid_dropout = nn.Dropout(config.resid_dropout)

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        momentum_mask: torch.Tensor | None = None,
        momentum_resets: torch.Tensor | None = None,
        cache: Cache | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        input_shape = hidden_states.shape[:-1]
        hidden_shape = (*input_shape, -1, self.head_dim)

        query_states = self.q_proj(hidden_states).view(hidden_shape).transpose(1, 2)
        key_states = self.k_proj(hidden_states).view(hidden_shape).transpose(1, 2)
        values = self.v_proj(hidden_states)
        if self.momentum > 0.0 and momentum_mask is not None:
            # Padding never enters the momentum sum. The zeroed values also go into the cache, from which a cropped
            # cache recomputes its state; attention never reads them (the mask hides padding keys).
            values = values * momentum_mask[..., None].to(values.dtype)
        value_states = values.view(hidden_shape).transpose(1, 2)

        if cache is not None:
            key_states, value_states = cache.update(key_states, value_states, self.layer_idx)

        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        attn_output, attn_weights = attention_interface(
            self,
            query_states,
            key_states,
            value_states,
            attention_mask,
            dropout=0.0 if not self.training else self.attention_dropout,
            scaling=self.scaling,
            **kwargs,
        )
        attn_output = attn_output.reshape(*input_shape, -1).contiguous()

        if self.momentum > 0.0:
            # The EMA acts on each coordinate independently, so all heads are handled at once on [B, T, hidden].
            if cache is None:
                ema, _ = momentum_term(values, self.momentum, resets=momentum_resets)
            else:
                ema = _momentum_cache_layer(cache, self.layer_idx).update_momentum(
                    values, self.momentum, momentum_resets
                )
            attn_output = attn_output + ema

        attn_output = self.resid_dropout(self.o_proj(attn_output))
        return attn_output, attn_weights


class MomentumGPTMLP(nn.Module):
    def __init__(self, config: MomentumGPTConfig):
        super().__init__()
        self.fc_in = nn.Linear(config.hidden_size, config.intermediate_size)
        self.fc_out = nn.Linear(config.intermediate_size, config.hidden_size)
        self.act = ACT2FN[config.activation_function]
        self.dropout = nn.Dropout(config.resid_dropout)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.fc_out(self.act(self.fc_in(hidden_states))))


class MomentumGPTBlock(GradientCheckpointingLayer):
    """Pre-LayerNorm GPT-2 block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, config: MomentumGPTConfig, layer_idx: int):
        super().__init__()
        self.input_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_epsilon)
        self.self_attn = MomentumGPTAttention(config, layer_idx)
        self.post_attention_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_epsilon)
        self.mlp = MomentumGPTMLP(config)

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        momentum_mask: torch.Tensor | None = None,
        momentum_resets: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        use_cache: bool | None = False,
        **kwargs: Unpack[TransformersKwargs],
    ) -> torch.Tensor:
        residual = hidden_states
        attn_output, _ = self.self_attn(
            self.input_layernorm(hidden_states),
            attention_mask=attention_mask,
            momentum_mask=momentum_mask,
            momentum_resets=momentum_resets,
            cache=cache,
            **kwargs,
        )
        hidden_states = residual + attn_output
        return hidden_states + self.mlp(self.post_attention_layernorm(hidden_states))


# Every Auto class hf_metaopt registers, as the remote-code files name them (see `save_pretrained`).
REMOTE_CODE_AUTO_MAP = {
    "AutoConfig": "configuration_momentum_gpt.MomentumGPTConfig",
    "AutoModel": "modeling_momentum_gpt.MomentumGPTModel",
    "AutoModelForCausalLM": "modeling_momentum_gpt.MomentumGPTForCausalLM",
    "AutoModelForSequenceClassification": "modeling_momentum_gpt.MomentumGPTForSequenceClassification",
}


class MomentumGPTPreTrainedModel(PreTrainedModel):
    config_class = MomentumGPTConfig
    config: MomentumGPTConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["MomentumGPTBlock"]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = False
    _can_compile_fullgraph = True
    _supports_attention_backend = True
    _can_record_outputs = {
        "hidden_states": MomentumGPTBlock,
        "attentions": MomentumGPTAttention,
    }

    def save_pretrained(self, save_directory, *args, **kwargs):
        """`PreTrainedModel.save_pretrained`; a model registered for remote code (as `import hf_metaopt` registers
        every head) writes every head into `auto_map`, not only its own, so any Auto class loads the checkpoint
        with `trust_remote_code=True` and no hf_metaopt."""
        if type(self)._auto_class is not None:
            self.config.auto_map = {**REMOTE_CODE_AUTO_MAP, **(getattr(self.config, "auto_map", None) or {})}
        return super().save_pretrained(save_directory, *args, **kwargs)

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        # GPT-2's scaled init of the projections that write into the residual stream: std / sqrt(2 * n_layer).
        if isinstance(module, (MomentumGPTAttention, MomentumGPTMLP)):
            out = module.o_proj if isinstance(module, MomentumGPTAttention) else module.fc_out
            std = self.config.initializer_range / math.sqrt(2 * self.config.num_hidden_layers)
            init.normal_(out.weight, mean=0.0, std=std)


class MomentumGPTModel(MomentumGPTPreTrainedModel):
    """The MomentumGPT decoder: token + learned position embeddings, blocks, final LayerNorm."""

    def __init__(self, config: MomentumGPTConfig):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.embed_positions = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.drop = nn.Dropout(config.embd_dropout)
        self.layers = nn.ModuleList(
            [MomentumGPTBlock(config, layer_idx) for layer_idx in range(config.num_hidden_layers)]
        )
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_epsilon)
        self.gradient_checkpointing = False
        self.post_init()

    def _prepare_cache(self, cache: Cache | None, use_cache: bool | None) -> Cache | None:
        if use_cache and cache is None:
            return DynamicCache(config=self.config)
        if cache is not None and not cache.layers and cache.layer_class_to_replicate is DynamicLayer:
            # A bare `DynamicCache()`: let it create layers that also hold the momentum state.
            cache.layer_class_to_replicate = MomentumDynamicLayer
        return cache

    def _masks(
        self,
        attention_mask: torch.Tensor | dict | None,
        inputs_embeds: torch.Tensor,
        cache: Cache | None,
        position_ids: torch.LongTensor,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """`(causal mask for the attention function, [batch, seq] padding mask for the momentum sum or None)`."""
        if isinstance(attention_mask, dict):  # built by `create_masks_for_generate`
            return attention_mask["full_attention"], attention_mask.get(MOMENTUM_LAYER_TYPE)
        causal_mask = create_causal_mask(
            config=self.config,
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            cache=cache,
            position_ids=position_ids,
        )
        # Unlike `create_recurrent_attention_mask`, single-token steps keep their mask too: feeding a left-padded
        # prompt token by token must not let the padding into the momentum state.
        momentum_mask = None
        if attention_mask is not None and attention_mask.ndim == 2:
            momentum_mask = attention_mask[:, -inputs_embeds.shape[1] :]
        return causal_mask, momentum_mask

    @staticmethod
    def _momentum_resets(
        position_ids: torch.LongTensor | None, shape: torch.Size, momentum_mask: torch.Tensor | None, **kwargs
    ) -> torch.Tensor | None:
        """`[batch, seq]`, True where a packed sequence starts, so the momentum restarts where attention does: at a
        real token whose position id does not follow the previous one's (padding-free packing; padding, whose
        position ids are arbitrary, restarts nothing), and at the `cu_seq_lens_q` boundaries that flash-attention
        varlen callers pass. `None` when nothing restarts."""
        batch, seq_len = shape
        if seq_len == 1:
            return None
        resets = None
        if position_ids is not None:
            position_ids = position_ids.expand(batch, -1)
            resets = nn.functional.pad(position_ids.diff(dim=-1) != 1, (1, 0), value=False)
            if momentum_mask is not None:
                resets = resets & (momentum_mask != 0)
        if (cu_seq_lens := kwargs.get("cu_seq_lens_q")) is not None:
            starts = torch.zeros(batch * seq_len, dtype=torch.bool, device=cu_seq_lens.device)
            starts[cu_seq_lens[1:-1].long()] = True
            resets = starts.view(batch, seq_len) if resets is None else resets | starts.view(batch, seq_len)
        if resets is not None and not is_torchdynamo_compiling() and not resets.any():
            return None  # outside compilation, skip the reset-aware path when no sequence restarts
        return resets

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    @merge_with_config_defaults
    @capture_outputs
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | dict | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> BaseModelOutputWithPast:
        """Run the decoder.

        Args:
            input_ids: `[batch, seq]` token ids (or pass `inputs_embeds`).
            attention_mask: `[batch, past + seq]` padding mask (1 = token, 0 = padding; left padding works, and
                padded positions never enter the momentum sum), a 4D additive mask, or the dict `generate`
                builds for static caches.
            position_ids: `[batch, seq]`; defaults to `arange(seq) + past length`, like GPT-2. Several sequences
                packed in one row (position ids restarting, as in padding-free training) keep their momentum apart.
            cache: a `DynamicCache(config=model.config)` or `StaticCache(config=model.config, max_cache_len=...)`
                (keys, values and the momentum state). The old name `past_key_values` is accepted with a warning.
            inputs_embeds: `[batch, seq, hidden]` instead of `input_ids`.
            use_cache: return the cache for further decoding.
            kwargs: passed to the attention function (e.g. flash-attention's `cu_seq_lens_q` / `cu_seq_lens_k`, at
                whose boundaries the momentum restarts as well).
        """
        if (input_ids is None) ^ (inputs_embeds is not None):
            raise ValueError("MomentumGPTModel: pass exactly one of `input_ids` or `inputs_embeds`.")
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        cache = self._prepare_cache(cache, use_cache)

        given_position_ids = position_ids
        if position_ids is None:
            past_seen_tokens = cache.get_seq_length() if cache is not None else 0
            position_ids = torch.arange(inputs_embeds.shape[1], device=inputs_embeds.device) + past_seen_tokens
            position_ids = position_ids.unsqueeze(0)
        if not is_torchdynamo_compiling() and position_ids.max() >= self.config.max_position_embeddings:
            raise ValueError(
                f"MomentumGPTModel: position {int(position_ids.max())} is beyond max_position_embeddings "
                f"({self.config.max_position_embeddings}); shorten the input."
            )
        causal_mask, momentum_mask = self._masks(attention_mask, inputs_embeds, cache, position_ids)
        momentum_resets = self._momentum_resets(given_position_ids, inputs_embeds.shape[:2], momentum_mask, **kwargs)

        hidden_states = self.drop(inputs_embeds + self.embed_positions(position_ids))
        for block in self.layers:
            hidden_states = block(
                hidden_states,
                attention_mask=causal_mask,
                momentum_mask=momentum_mask,
                momentum_resets=momentum_resets,
                position_ids=position_ids,
                cache=cache,
                use_cache=use_cache,
                **kwargs,
            )
        hidden_states = self.norm(hidden_states)
        return BaseModelOutputWithPast(last_hidden_state=hidden_states, cache=cache if use_cache else None)


class MomentumGPTForCausalLM(MomentumGPTPreTrainedModel, GenerationMixin):
    """MomentumGPT with a language-modelling head tied to the token embeddings."""

    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: MomentumGPTConfig):
        super().__init__(config)
        self.model = MomentumGPTModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    @classmethod
    def from_gpt2(cls, model_or_path, momentum: float = 0.0, **from_pretrained_kwargs) -> "MomentumGPTForCausalLM":
        """A MomentumGPT with a GPT-2 checkpoint's weights (fused `c_attn` split, Conv1D weights transposed).

        Args:
            model_or_path: a `GPT2LMHeadModel`, or a local folder / Hub id loaded with
                `GPT2LMHeadModel.from_pretrained(model_or_path, **from_pretrained_kwargs)`.
            momentum: eta of the converted model; `0.0` reproduces GPT-2's logits.

        Returns:
            A model of this class with GPT-2's weights, dtype, device, attention implementation and train/eval mode.
        """
        # A relative import: `save_pretrained` copies conversion.py with this file, so remote code has it too.
        from .conversion import from_gpt2

        return from_gpt2(cls, model_or_path, momentum, **from_pretrained_kwargs)

    def create_masks_for_generate(
        self,
        config: MomentumGPTConfig,
        inputs_embeds: torch.Tensor,
        attention_mask: torch.Tensor | None,
        cache: Cache | None,
        position_ids: torch.Tensor | None = None,
        **kwargs,
    ) -> dict[str, torch.Tensor | None]:
        """The masks `generate` builds ahead of a forward on a compilable (static) cache, so that the compiled forward
        does not build them: the causal mask, and the padding mask of the momentum sum (under its layer type)."""
        mask_kwargs = dict(config=config, inputs_embeds=inputs_embeds, attention_mask=attention_mask, cache=cache)
        return {
            "full_attention": create_causal_mask(**mask_kwargs, position_ids=position_ids),
            MOMENTUM_LAYER_TYPE: create_recurrent_attention_mask(**mask_kwargs),
        }

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | dict | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs: Unpack[TransformersKwargs],
    ) -> CausalLMOutputWithPast:
        """Logits (and the shifted causal-LM loss when `labels` are given; -100 is ignored).

        See [`MomentumGPTModel.forward`] for the inputs; `logits_to_keep` keeps only the last positions.
        """
        outputs: BaseModelOutputWithPast = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )
        hidden_states = slice_logits_to_keep(outputs.last_hidden_state, logits_to_keep)
        logits = self.lm_head(hidden_states)
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs)
        return CausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            cache=outputs.cache,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )


class MomentumGPTForSequenceClassification(GenericForSequenceClassification, MomentumGPTPreTrainedModel):
    """MomentumGPT with transformers' generic classification head (as Llama's): a linear `score` on the last token
    that is not `config.pad_token_id` (left or right padding), loss per `config.problem_type`."""

    def __init__(self, config: MomentumGPTConfig):
        # The generic head builds its decoder with `AutoModel.from_config`, which a remote-code checkpoint (loaded
        # without hf_metaopt's registration) cannot resolve without trust_remote_code: build it here instead.
        MomentumGPTPreTrainedModel.__init__(self, config)
        self.num_labels = config.num_labels
        self.model = MomentumGPTModel(config)
        self.score = nn.Linear(config.hidden_size, config.num_labels, bias=False)
        self.post_init()


__all__ = [
    "MomentumGPTPreTrainedModel",
    "MomentumGPTModel",
    "MomentumGPTForCausalLM",
    "MomentumGPTForSequenceClassification",
    "MomentumGPTAttention",
    "MomentumDynamicLayer",
    "MomentumStaticLayer",
    "momentum_term",
]
