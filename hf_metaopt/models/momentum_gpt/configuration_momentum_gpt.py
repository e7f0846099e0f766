"""Configuration of MomentumGPT: GPT-2 with momentum attention (Dai et al. 2023, section 5).

Self-contained (imports only transformers) so that it travels with saved checkpoints as Hub remote code.
"""

from __future__ import annotations

import dataclasses

from transformers import PreTrainedConfig
from transformers.activations import ACT2FN
from transformers.generation import GenerationConfig

# Keys that transformers itself passes to a config's constructor besides the declared fields: what
# `to_dict` / `save_pretrained` write (`auto_map`, `model_type`, ...), what `from_pretrained` / `AutoConfig`
# forward, and what `PretrainedConfig.__post_init__` consumes. Everything else is a user typo.
_TRANSFORMERS_KEYS = frozenset(
    {
        "auto_map",
        "model_type",
        "name_or_path",
        "_name_or_path",
        "_commit_hash",
        "torch_dtype",
        "num_labels",
        "output_attentions",
        "attn_implementation",
        "_attn_implementation_internal",
        "experts_implementation",
        "_experts_implementation_internal",
        "per_layer_config",
        "tie_last_hidden_states",
    }
)


def _generation_keys() -> frozenset[str]:
    # Old checkpoints may still carry generation parameters in config.json; transformers drops them.
    return frozenset(GenerationConfig._get_default_generation_params())


class MomentumGPTConfig(PreTrainedConfig):
    r"""Configuration of a [`MomentumGPTModel`]: a GPT-2 decoder whose attention adds a causal exponential
    moving average of the earlier value vectors (momentum attention):

        out_t = softmax(q_t K^T / sqrt(d)) V + sum_{i<t} momentum^(t-i) v_i      (per head, before o_proj)

    With `momentum=0.0` the model is exactly GPT-2.

    Args:
        vocab_size (`int`, defaults to 50257): vocabulary size.
        max_position_embeddings (`int`, defaults to 1024): number of learned positions.
        hidden_size (`int`, defaults to 768): width of the residual stream.
        num_hidden_layers (`int`, defaults to 12): number of blocks.
        num_attention_heads (`int`, defaults to 12): heads per attention layer; must divide `hidden_size`.
        intermediate_size (`int`, *optional*): MLP width, `4 * hidden_size` when not given.
        activation_function (`str`, defaults to `"gelu_new"`): MLP activation, a key of
            `transformers.activations.ACT2FN`.
        resid_dropout, embd_dropout, attention_dropout (`float`, default 0.1): dropout probabilities.
        layer_norm_epsilon (`float`, defaults to 1e-5): LayerNorm epsilon.
        initializer_range (`float`, defaults to 0.02): std of the normal weight initialisation.
        momentum (`float`, defaults to 0.1): the coefficient eta of the momentum term, in [0, 1). The paper does
            not state its value.
        use_cache (`bool`, defaults to `True`): return the key/value cache (with the momentum state).
        tie_word_embeddings (`bool`, defaults to `True`): tie the LM head to the token embeddings.
        bos_token_id, eos_token_id, pad_token_id: special token ids.

    Any other keyword raises `ValueError`.
    """

    model_type = "momentum_gpt"
    keys_to_ignore_at_inference = ["cache"]

    vocab_size: int = 50257
    max_position_embeddings: int = 1024
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int | None = None
    activation_function: str = "gelu_new"
    resid_dropout: float = 0.1
    embd_dropout: float = 0.1
    attention_dropout: float = 0.1
    layer_norm_epsilon: float = 1e-5
    initializer_range: float = 0.02
    momentum: float = 0.1
    use_cache: bool = True
    tie_word_embeddings: bool = True
    bos_token_id: int | None = 50256
    eos_token_id: int | list[int] | None = 50256
    pad_token_id: int | None = None

    def __post_init__(self, **kwargs):
        unknown = sorted(set(kwargs) - _TRANSFORMERS_KEYS - _generation_keys())
        if unknown:
            raise ValueError(
                f"MomentumGPTConfig got unknown argument(s) {unknown}. Valid fields: "
                f"{sorted(f.name for f in dataclasses.fields(self))}."
            )
        if self.intermediate_size is None:
            self.intermediate_size = 4 * self.hidden_size
        self._check_fields()
        super().__post_init__(**kwargs)

    @property
    def layer_types(self) -> list[str]:
        """One `"hybrid"` entry per layer: each cache layer holds keys/values plus a recurrent (momentum) state."""
        return ["hybrid"] * self.num_hidden_layers

    def _check_fields(self) -> None:
        for name in (
            "vocab_size",
            "max_position_embeddings",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"MomentumGPTConfig.{name} must be a positive integer, got {value!r}.")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"MomentumGPTConfig.hidden_size ({self.hidden_size}) must be divisible by num_attention_heads "
                f"({self.num_attention_heads}); change one of them."
            )
        momentum = self.momentum
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0.0 <= momentum < 1.0:
            raise ValueError(
                f"MomentumGPTConfig.momentum must be a number in [0, 1) (0 gives plain GPT-2), got {momentum!r}."
            )
        self.momentum = float(momentum)
        for name in ("resid_dropout", "embd_dropout", "attention_dropout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"MomentumGPTConfig.{name} must be a probability in [0, 1], got {value!r}.")
        for name in ("layer_norm_epsilon", "initializer_range"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"MomentumGPTConfig.{name} must be a positive number, got {value!r}.")
        if self.activation_function not in ACT2FN:
            raise ValueError(
                f"MomentumGPTConfig.activation_function {self.activation_function!r} is unknown; "
                f"use one of {sorted(ACT2FN)}."
            )


__all__ = ["MomentumGPTConfig"]
