"""Configuration of MomentumGPT: GPT-2 with momentum attention (Dai et al. 2023, section 5).

Self-contained (imports only transformers, and huggingface_hub's `strict` as transformers' own configs do) so that
it travels with saved checkpoints as Hub remote code. No `from __future__ import annotations`: the strict validators
check each field against its annotation, which must stay a real type, not a string.
"""

from huggingface_hub.dataclasses import strict

from transformers import PreTrainedConfig
from transformers.utils.type_validators import activation_fn_key, interval, positive_int_field, probability

# The cache-layer type of every MomentumGPT layer: keys and values plus the running momentum state. The modeling file
# registers the dynamic and static cache layers under this name, so `DynamicCache(config=...)`, `StaticCache(...)`
# and `generate` build the right layers from the config alone.
MOMENTUM_LAYER_TYPE = "momentum_attention"


@strict
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

    Values are checked by transformers' strict dataclass validation, when the config is built and whenever a field
    is assigned: a bad value raises `huggingface_hub.errors.StrictDataclassError` naming the field. Other keyword
    arguments are stored as attributes and saved with the config, as for transformers' own configs.
    """

    model_type = "momentum_gpt"
    keys_to_ignore_at_inference = ["cache"]

    vocab_size: int = positive_int_field(default=50257)
    max_position_embeddings: int = positive_int_field(default=1024)
    hidden_size: int = positive_int_field(default=768)
    num_hidden_layers: int = positive_int_field(default=12)
    num_attention_heads: int = positive_int_field(default=12)
    intermediate_size: int | None = positive_int_field(default=None)
    activation_function: str = activation_fn_key(default="gelu_new")
    resid_dropout: float | int = probability(default=0.1)
    embd_dropout: float | int = probability(default=0.1)
    attention_dropout: float | int = probability(default=0.1)
    layer_norm_epsilon: float | int = interval(min=0.0, exclude_min=True)(default=1e-5)
    initializer_range: float | int = interval(min=0.0, exclude_min=True)(default=0.02)
    momentum: float | int = interval(min=0.0, max=1.0, exclude_max=True)(default=0.1)
    use_cache: bool = True
    tie_word_embeddings: bool = True
    bos_token_id: int | None = 50256
    eos_token_id: int | list[int] | None = 50256
    pad_token_id: int | None = None

    def __post_init__(self, **kwargs):
        if self.intermediate_size is None:
            self.intermediate_size = 4 * self.hidden_size
        self.momentum = float(self.momentum)  # an int eta (0) saves and compares as the float it means
        super().__post_init__(**kwargs)

    @property
    def layer_types(self) -> list[str]:
        """The cache-layer type of each layer: keys/values plus the momentum state."""
        return [MOMENTUM_LAYER_TYPE] * self.num_hidden_layers

    def validate_architecture(self):
        """Part of `@strict`-powered validation: the heads must split `hidden_size` evenly."""
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads "
                f"({self.num_attention_heads}); change one of them."
            )

    def validate_layer_type(self):
        """Part of `@strict`-powered validation, replacing transformers' check of `layer_types` against its own
        attention types: MomentumGPT's single layer type is its own, one per layer."""
        if len(self.layer_types) != self.num_hidden_layers or set(self.layer_types) != {MOMENTUM_LAYER_TYPE}:
            raise ValueError(f"layer_types must be {MOMENTUM_LAYER_TYPE!r} for each of the {self.num_hidden_layers} layers.")


__all__ = ["MomentumGPTConfig"]
