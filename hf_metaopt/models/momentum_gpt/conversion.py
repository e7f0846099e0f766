"""GPT-2 checkpoints -> MomentumGPT, through transformers' weight-conversion mapping.

`MomentumGPTForCausalLM.from_gpt2` calls :func:`from_gpt2` through a relative import, so `save_pretrained` copies
this file beside the two model files and a remote-code checkpoint has the classmethod too.
"""

from __future__ import annotations

import os

from transformers import GPT2LMHeadModel
from transformers.core_model_loading import (
    Chunk,
    Transpose,
    WeightConverter,
    WeightRenaming,
    convert_and_load_state_dict_in_model,
)
from transformers.modeling_utils import LoadStateDictConfig

from .configuration_momentum_gpt import MomentumGPTConfig

_QKV = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")


def gpt2_weight_mapping() -> list[WeightRenaming | WeightConverter]:
    """GPT2LMHeadModel state-dict keys -> MomentumGPTForCausalLM keys. GPT-2's `Conv1D` stores `[in, out]` where
    `nn.Linear` stores `[out, in]`, and its `c_attn` holds q, k and v side by side along `out`."""
    return [
        WeightRenaming(r"^transformer\.wte\.", "model.embed_tokens."),
        WeightRenaming(r"^transformer\.wpe\.", "model.embed_positions."),
        WeightRenaming(r"^transformer\.ln_f\.", "model.norm."),
        WeightRenaming(r"^transformer\.h\.", "model.layers."),
        WeightRenaming(r"\.ln_1\.", ".input_layernorm."),
        WeightRenaming(r"\.ln_2\.", ".post_attention_layernorm."),
        WeightConverter("attn.c_attn.weight", [f"{p}.weight" for p in _QKV], operations=[Transpose(0, 1), Chunk(0)]),
        WeightConverter("attn.c_attn.bias", [f"{p}.bias" for p in _QKV], operations=[Chunk(0)]),
        WeightConverter("attn.c_proj.weight", "self_attn.o_proj.weight", operations=[Transpose(0, 1)]),
        WeightRenaming(r"attn\.c_proj\.bias", "self_attn.o_proj.bias"),
        WeightConverter("mlp.c_fc.weight", "mlp.fc_in.weight", operations=[Transpose(0, 1)]),
        WeightRenaming(r"mlp\.c_fc\.bias", "mlp.fc_in.bias"),
        WeightConverter("mlp.c_proj.weight", "mlp.fc_out.weight", operations=[Transpose(0, 1)]),
        WeightRenaming(r"mlp\.c_proj\.bias", "mlp.fc_out.bias"),
    ]


def momentum_config_from_gpt2(gpt2_config, momentum: float) -> MomentumGPTConfig:
    """The MomentumGPT config of a GPT-2 config (same sizes, dropouts, special tokens) with the given eta."""
    g = gpt2_config
    unsupported = [
        name
        for name, bad in (
            ("add_cross_attention", g.add_cross_attention),
            ("scale_attn_by_inverse_layer_idx", g.scale_attn_by_inverse_layer_idx),
            ("scale_attn_weights=False", not g.scale_attn_weights),
        )
        if bad
    ]
    if unsupported:
        raise ValueError(f"from_gpt2: GPT-2 options {unsupported} have no MomentumGPT equivalent.")
    return MomentumGPTConfig(
        vocab_size=g.vocab_size,
        max_position_embeddings=g.n_positions,
        hidden_size=g.n_embd,
        num_hidden_layers=g.n_layer,
        num_attention_heads=g.n_head,
        intermediate_size=g.n_inner if g.n_inner is not None else 4 * g.n_embd,
        activation_function=g.activation_function,
        resid_dropout=g.resid_pdrop,
        embd_dropout=g.embd_pdrop,
        attention_dropout=g.attn_pdrop,
        layer_norm_epsilon=g.layer_norm_epsilon,
        initializer_range=g.initializer_range,
        momentum=momentum,
        use_cache=g.use_cache,
        tie_word_embeddings=g.tie_word_embeddings,
        bos_token_id=g.bos_token_id,
        eos_token_id=g.eos_token_id,
        pad_token_id=g.pad_token_id,
    )


def from_gpt2(
    model_class: type,
    model_or_path: GPT2LMHeadModel | str | os.PathLike,
    momentum: float = 0.0,
    **from_pretrained_kwargs,
):
    """Convert a GPT-2 checkpoint: split the fused `c_attn`, transpose the Conv1D weights.

    Args:
        model_class: the class to build, `MomentumGPTForCausalLM` (whose `from_gpt2` passes itself; this module
            does not import the modeling file, which imports it).
        model_or_path: a `GPT2LMHeadModel`, or a local folder / Hub id loaded with
            `GPT2LMHeadModel.from_pretrained(model_or_path, **from_pretrained_kwargs)`.
        momentum: eta of the converted model; `0.0` reproduces GPT-2's logits.

    Returns:
        A `model_class` with GPT-2's weights, dtype, device, attention implementation and train/eval mode.
    """
    if isinstance(model_or_path, (str, os.PathLike)):
        gpt2 = GPT2LMHeadModel.from_pretrained(model_or_path, **from_pretrained_kwargs)
    elif isinstance(model_or_path, GPT2LMHeadModel):
        gpt2 = model_or_path
    else:
        raise TypeError(
            "MomentumGPTForCausalLM.from_gpt2: model_or_path must be a GPT2LMHeadModel, a local path or a Hub "
            f"id, got {type(model_or_path).__name__}."
        )
    config = momentum_config_from_gpt2(gpt2.config, momentum)
    config._attn_implementation = gpt2.config._attn_implementation
    model = model_class(config).to(dtype=gpt2.dtype, device=gpt2.device)
    load_config = LoadStateDictConfig(weight_mapping=gpt2_weight_mapping(), device_map={"": gpt2.device})
    info, _ = convert_and_load_state_dict_in_model(model, gpt2.state_dict(), load_config)
    missing = sorted(set(info.missing_keys) - {"lm_head.weight"})  # tied to the token embeddings
    if missing or info.unexpected_keys or info.mismatched_keys or info.conversion_errors:
        raise ValueError(
            f"from_gpt2: the GPT-2 weights did not map onto MomentumGPT (missing {missing}, unexpected "
            f"{sorted(info.unexpected_keys)}, mismatched {sorted(info.mismatched_keys)}, "
            f"errors {info.conversion_errors})."
        )
    # The mapping stays GPT-2 -> MomentumGPT only: `save_pretrained` would otherwise write GPT-2's key names back.
    model._weight_conversions = None
    model.tie_weights()
    model.train(gpt2.training)
    return model


__all__ = ["from_gpt2", "gpt2_weight_mapping", "momentum_config_from_gpt2"]
