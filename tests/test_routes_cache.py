"""The prefix cache reused through the Cache API: repeating it equals feeding the repeated prompt, for
MomentumGPT's cache like any other, sliding windows included; the prefix cache itself is left as it was.
Full and sliding-window layers are served by ExpandedPrefixLayer views, which give the repeated cache's
logits bit for bit and keep no batch-sized tensor after the pass."""

import copy

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM

from hf_metaopt import MomentumGPTConfig, MomentumGPTForCausalLM
from hf_metaopt.analysis.prefix_cache import ExpandedPrefixLayer
from hf_metaopt.analysis.routes import RouteRunner, expand_cache

SMALL = dict(vocab_size=400, hidden_size=32, intermediate_size=64, num_attention_heads=4, num_key_value_heads=2,
             max_position_embeddings=128, bos_token_id=0, eos_token_id=0)


def momentum_gpt():
    return MomentumGPTForCausalLM(MomentumGPTConfig(
        vocab_size=400, max_position_embeddings=128, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        momentum=0.6, resid_dropout=0.0, embd_dropout=0.0, attention_dropout=0.0))


def llama():
    return LlamaForCausalLM(LlamaConfig(**SMALL, num_hidden_layers=2))


def mistral_window():  # a window shorter than the prefix: its cache keeps only the window's last keys
    return MistralForCausalLM(MistralConfig(**SMALL, num_hidden_layers=2, sliding_window=8))


BUILDERS = {"momentum_gpt": momentum_gpt, "llama": llama, "mistral_window": mistral_window}
PREFIX = [3, 50, 7, 99, 12, 8, 41, 5, 6, 77, 13, 21]
QUERIES = torch.tensor([[9, 1, 4], [30, 31, 32], [200, 2, 17]])


def build(name):
    torch.manual_seed(0)
    return BUILDERS[name]().eval()


def prefix_cache(model):
    with torch.no_grad():
        return model(input_ids=torch.tensor([PREFIX]), use_cache=True).cache


def continued(model, cache):
    with torch.no_grad():
        return model(input_ids=QUERIES, cache=cache, use_cache=True).logits


def from_scratch(model):
    ids = torch.cat([torch.tensor([PREFIX]).expand(len(QUERIES), -1), QUERIES], dim=1)
    with torch.no_grad():
        return model(input_ids=ids).logits[:, len(PREFIX):]


def snapshot(cache):
    return [(layer.keys.clone(), layer.values.clone()) for layer in cache.layers]


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_batch_repeat_interleave_of_the_prefix_cache_equals_the_repeated_prompt(name):
    model = build(name)
    cache = copy.deepcopy(prefix_cache(model))
    cache.batch_repeat_interleave(len(QUERIES))
    torch.testing.assert_close(continued(model, cache), from_scratch(model), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_expand_cache_equals_the_repeated_prompt_and_leaves_the_prefix_cache(name):
    model = build(name)
    cache = prefix_cache(model)
    before = snapshot(cache)
    states = [layer.momentum_state.clone() for layer in cache.layers] if name == "momentum_gpt" else None
    for _ in range(2):  # the same prefix cache serves every batch
        torch.testing.assert_close(continued(model, expand_cache(cache, len(QUERIES))), from_scratch(model),
                                   rtol=1e-5, atol=1e-5)
    assert cache.get_seq_length() == len(PREFIX)
    for (k, v), (k0, v0) in zip(snapshot(cache), before):
        assert torch.equal(k, k0) and torch.equal(v, v0) and k.shape[0] == 1
    if states is not None:  # MomentumGPT: the momentum state, too, is the prefix's, batch 1
        assert all(torch.equal(layer.momentum_state, s) for layer, s in zip(cache.layers, states))


def test_route_from_the_prefix_cache_equals_the_full_prompt_for_momentum_gpt():
    model = build("momentum_gpt")
    runner = RouteRunner(model, [[5], [9]], "prediction", pad_id=0)
    queries = [[9, 1, 4], [30, 31], [200, 2, 17, 18]]  # unequal lengths: right padding after the cached prefix
    cached = runner.run(queries, PREFIX, cache=runner.prefix_cache(PREFIX), demo_positions=[1, 2, 3])
    full = runner.run(queries, PREFIX, demo_positions=[1, 2, 3])
    torch.testing.assert_close(torch.as_tensor(cached.logprobs), torch.as_tensor(full.logprobs), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(torch.as_tensor(cached.output), torch.as_tensor(full.output), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(torch.as_tensor(cached.demo), torch.as_tensor(full.demo), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- the expanded prefix, held by no layer
def gemma3_window():
    """Alternating sliding (window 8, shorter than the prefix) and full layers."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    return Gemma3ForCausalLM(Gemma3TextConfig(
        **{**SMALL, "num_key_value_heads": 1}, num_hidden_layers=2, head_dim=8, query_pre_attn_scalar=8, sliding_window=8,
        layer_types=["sliding_attention", "full_attention"], pad_token_id=0))


EXPANDED = {"llama": llama, "mistral_window": mistral_window, "gemma3_window": gemma3_window}


def repeated_by_reorder(cache, batch):
    """The batch's cache as the analysis made it before ExpandedPrefixLayer: a deep copy repeated by reorder_cache."""
    cache = copy.deepcopy(cache)
    cache.reorder_cache(torch.zeros(batch, dtype=torch.long))
    return cache


@pytest.mark.parametrize("name", sorted(EXPANDED))
def test_expanded_prefix_layers_give_the_repeated_cache_logits_bit_for_bit(name):
    torch.manual_seed(0)
    model = EXPANDED[name]().eval()
    cache = prefix_cache(model)
    expanded = expand_cache(cache, len(QUERIES))
    assert all(isinstance(layer, ExpandedPrefixLayer) for layer in expanded.layers)
    assert torch.equal(continued(model, expanded), continued(model, repeated_by_reorder(cache, len(QUERIES))))


@pytest.mark.parametrize("name", sorted(EXPANDED))
def test_expanded_prefix_layers_store_nothing_and_leave_the_prefix_cache(name):
    torch.manual_seed(0)
    model = EXPANDED[name]().eval()
    cache = prefix_cache(model)
    before = snapshot(cache)
    expanded = expand_cache(cache, len(QUERIES))
    assert expanded.get_seq_length() == len(PREFIX) and expanded.is_sliding == cache.is_sliding
    continued(model, expanded)
    for layer, prefix in zip(expanded.layers, cache.layers):
        # after the pass a layer still holds only the prefix's batch-1 tensors, broadcast (stride 0 over the batch)
        assert layer.keys.shape[0] == len(QUERIES) and layer.keys.stride(0) == 0
        assert layer.keys.untyped_storage().data_ptr() == prefix.keys.untyped_storage().data_ptr()
        assert layer.get_seq_length() == prefix.get_seq_length()
    for (k, v), (k0, v0) in zip(snapshot(cache), before):
        assert torch.equal(k, k0) and torch.equal(v, v0) and k.shape[0] == 1


def test_a_cache_with_state_beyond_keys_and_values_is_repeated_whole():
    """MomentumGPT's layers hold a momentum state: the general route (deep copy, reorder_cache) serves them."""
    model = build("momentum_gpt")
    cache = prefix_cache(model)
    expanded = expand_cache(cache, len(QUERIES))
    assert not any(isinstance(layer, ExpandedPrefixLayer) for layer in expanded.layers)
    assert all(layer.keys.shape[0] == len(QUERIES) and layer.keys.stride(0) != 0 for layer in expanded.layers)


def test_an_expanded_prefix_layer_refuses_other_layers_and_reordering():
    from transformers.cache_utils import StaticLayer

    with pytest.raises(TypeError, match="DynamicLayer"):
        ExpandedPrefixLayer(StaticLayer(max_cache_len=4), 2)
    layer = ExpandedPrefixLayer(prefix_cache(build("llama")).layers[0], 2)
    with pytest.raises(NotImplementedError, match="read-only"):
        layer.reorder_cache(torch.zeros(2, dtype=torch.long))
