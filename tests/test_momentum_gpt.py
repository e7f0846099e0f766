"""MomentumGPT (paper section 5): config, registration, GPT-2 equivalence, momentum term, cache, heads, I/O."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from huggingface_hub.errors import StrictDataclassError
from transformers import (
    AttentionInterface,
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    CompileConfig,
    DynamicCache,
    GPT2Config,
    GPT2LMHeadModel,
    StaticCache,
)
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

import hf_metaopt
from hf_metaopt import (
    MomentumGPTConfig,
    MomentumGPTForCausalLM,
    MomentumGPTForSequenceClassification,
    MomentumGPTModel,
)
from hf_metaopt.models.momentum_gpt import momentum_term

VOCAB = 400


def tiny_config(**overrides) -> MomentumGPTConfig:
    kwargs = dict(
        vocab_size=VOCAB,
        max_position_embeddings=64,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        momentum=0.6,
        resid_dropout=0.0,
        embd_dropout=0.0,
        attention_dropout=0.0,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=0,
    )
    kwargs.update(overrides)
    return MomentumGPTConfig(**kwargs)


def tiny_model(attn="sdpa", **overrides) -> MomentumGPTForCausalLM:
    torch.manual_seed(0)
    model = MomentumGPTForCausalLM(tiny_config(**overrides)).eval()
    model.set_attn_implementation(attn)
    return model


def left_padded_batch(lengths=(12, 7), seed=1):
    """Token ids (pad id 0 on the left), the 2D attention mask, and the unpadded rows."""
    gen = torch.Generator().manual_seed(seed)
    total = max(lengths)
    rows = [torch.randint(1, VOCAB, (n,), generator=gen) for n in lengths]
    ids = torch.zeros(len(rows), total, dtype=torch.long)
    mask = torch.zeros(len(rows), total, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, total - len(row) :] = row
        mask[i, total - len(row) :] = 1
    return ids, mask, rows


# ---------------------------------------------------------------- registration and config


def test_registration_with_auto_classes():
    config = AutoConfig.for_model(
        "momentum_gpt", hidden_size=32, num_attention_heads=4, num_hidden_layers=1, vocab_size=VOCAB
    )
    assert isinstance(config, MomentumGPTConfig)
    assert type(AutoModel.from_config(config)) is MomentumGPTModel
    assert type(AutoModelForCausalLM.from_config(config)) is MomentumGPTForCausalLM
    assert type(AutoModelForSequenceClassification.from_config(config)) is MomentumGPTForSequenceClassification
    names = ("MomentumGPTConfig", "MomentumGPTModel", "MomentumGPTForCausalLM", "MomentumGPTForSequenceClassification")
    for name in names:
        assert name in hf_metaopt.__all__
        assert getattr(hf_metaopt, name) is getattr(hf_metaopt.models, name)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"momentum": 1.0}, "momentum"),
        ({"momentum": -0.1}, "momentum"),
        ({"momentum": "0.5"}, "momentum"),
        ({"hidden_size": 30, "num_attention_heads": 4}, "hidden_size"),
        ({"vocab_size": 0}, "vocab_size"),
        ({"num_hidden_layers": -1}, "num_hidden_layers"),
        ({"num_attention_heads": 0}, "num_attention_heads"),
        ({"intermediate_size": 0}, "intermediate_size"),
        ({"max_position_embeddings": 2.5}, "max_position_embeddings"),
        ({"attention_dropout": 1.5}, "attention_dropout"),
        ({"activation_function": "nope"}, "activation_function"),
        ({"layer_norm_epsilon": 0.0}, "layer_norm_epsilon"),
        ({"use_cache": "yes"}, "use_cache"),
        ({"momentum": True}, "momentum"),
    ],
)
def test_config_rejects_bad_values_naming_the_field(kwargs, field):
    # transformers' strict dataclass validation, as for its own configs: at construction and on assignment.
    with pytest.raises(StrictDataclassError, match=field):
        MomentumGPTConfig(**kwargs)
    config = MomentumGPTConfig()
    with pytest.raises(StrictDataclassError, match=field):
        for name, value in kwargs.items():
            setattr(config, name, value)
        config.validate()


def test_config_keeps_attributes_it_does_not_know_through_save_and_load(tmp_path):
    config = tiny_config(momentum=0.3, my_extra_kwarg="kept")
    config.my_extra_attr = 1.0
    config.save_pretrained(tmp_path / "config")
    loaded = MomentumGPTConfig.from_pretrained(tmp_path / "config")
    assert (loaded.my_extra_attr, loaded.my_extra_kwarg, loaded.momentum) == (1.0, "kept", 0.3)

    MomentumGPTForCausalLM(config).save_pretrained(tmp_path / "model")
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "model")
    assert reloaded.config.my_extra_attr == 1.0 and reloaded.config.momentum == 0.3


def test_config_round_trip_keeps_transformers_keys(tmp_path):
    config = tiny_config(momentum=0.25)
    MomentumGPTForCausalLM(config).save_pretrained(tmp_path)  # writes architectures, auto_map, dtype, ...
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, MomentumGPTConfig)
    assert loaded.momentum == 0.25 and loaded.intermediate_size == 4 * 32
    assert loaded.architectures == ["MomentumGPTForCausalLM"]
    assert loaded.auto_map["AutoModelForCausalLM"] == "modeling_momentum_gpt.MomentumGPTForCausalLM"
    again = MomentumGPTConfig.from_dict(loaded.to_dict())
    assert again.to_dict() == loaded.to_dict()
    assert MomentumGPTConfig(**{**config.to_dict(), "_name_or_path": "x"}).momentum == 0.25
    assert loaded.layer_types == ["momentum_attention", "momentum_attention"]


# ---------------------------------------------------------------- GPT-2 equivalence


@pytest.fixture(scope="module")
def random_gpt2():
    torch.manual_seed(0)
    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=VOCAB, n_positions=64)).eval()
    with torch.no_grad():  # GPT-2 initialises biases and LayerNorms to constants: randomise so every weight counts
        for p in gpt2.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return gpt2


def test_from_gpt2_at_zero_momentum_reproduces_gpt2_logits(random_gpt2, tmp_path):
    ids, mask, _ = left_padded_batch()
    expected = random_gpt2(ids, attention_mask=mask).logits
    model = MomentumGPTForCausalLM.from_gpt2(random_gpt2, momentum=0.0)
    assert (model(ids, attention_mask=mask).logits - expected).abs().max() < 1e-4

    random_gpt2.save_pretrained(tmp_path)
    from_path = MomentumGPTForCausalLM.from_gpt2(str(tmp_path), momentum=0.0).eval()
    assert (from_path(ids, attention_mask=mask).logits - expected).abs().max() < 1e-4

    with_momentum = MomentumGPTForCausalLM.from_gpt2(random_gpt2, momentum=0.5)
    assert with_momentum.config.momentum == 0.5
    assert (with_momentum(ids, attention_mask=mask).logits - expected).abs().max() > 1e-2

    # A converted model saves as MomentumGPT (its own key names), not back as GPT-2.
    model.save_pretrained(tmp_path / "converted")
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "converted")
    assert type(reloaded) is MomentumGPTForCausalLM
    assert (reloaded(ids, attention_mask=mask).logits - expected).abs().max() < 1e-4


def test_from_gpt2_rejects_other_objects():
    with pytest.raises(TypeError, match="model_or_path"):
        MomentumGPTForCausalLM.from_gpt2(tiny_model())


# ---------------------------------------------------------------- the momentum term


def naive_momentum(values: torch.Tensor, eta: float, state: torch.Tensor | None = None) -> torch.Tensor:
    """m_t = sum_{i<t} eta^(t-i) v_i (+ eta^t state), one position at a time in float64."""
    v = values.double()
    m = torch.zeros_like(v[:, 0]) if state is None else state.double()
    out = []
    for t in range(v.shape[1]):
        out.append(m)
        m = eta * (m + v[:, t])
    return torch.stack(out, 1)


@pytest.mark.parametrize("eta", [0.0, 0.3, 0.9, 0.99])
@pytest.mark.parametrize("length", [1, 5, 64, 65, 300, 2048])
def test_momentum_term_matches_naive_loop(eta, length):
    gen = torch.Generator().manual_seed(length)
    values = torch.randn(2, length, 8, generator=gen)
    state = torch.randn(2, 8, generator=gen)
    for carried in (None, state):
        m, next_state = momentum_term(values, eta, carried)
        reference = naive_momentum(torch.cat([values, torch.zeros(2, 1, 8)], 1), eta, carried)
        assert torch.isfinite(m).all()
        torch.testing.assert_close(m.double(), reference[:, :-1], rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(next_state.double(), reference[:, -1], rtol=1e-4, atol=1e-4)


def test_eta_to_the_minus_t_formulation_overflows_at_2048_tokens():
    # The premise of the long-sequence test: sum_i eta^(t-i) v_i = eta^t cumsum(eta^-i v_i) is not usable.
    t = torch.arange(2048, dtype=torch.float32)
    assert not torch.isfinite(torch.tensor(0.9) ** -t).all()


def test_momentum_chunks_compose():
    values = torch.randn(3, 150, 16)
    whole, whole_state = momentum_term(values, 0.8)
    first, state = momentum_term(values[:, :70], 0.8)
    second, second_state = momentum_term(values[:, 70:], 0.8, state)
    torch.testing.assert_close(torch.cat([first, second], 1), whole)
    torch.testing.assert_close(second_state, whole_state)


@pytest.mark.parametrize("length", [1, 9, 130])
def test_momentum_term_restarts_at_resets(length):
    gen = torch.Generator().manual_seed(length)
    values = torch.randn(2, length, 8, generator=gen)
    state = torch.randn(2, 8, generator=gen)
    resets = torch.rand(2, length, generator=gen) < 0.1
    resets[0, 0] = True  # a reset at the first position drops the carried state too
    m, next_state = momentum_term(values, 0.9, state, resets, chunk_size=16)
    for row in range(2):  # reference: the naive loop over each run between resets
        starts = [0, *[t for t in range(length) if resets[row, t] and t > 0], length]
        carried = None if resets[row, 0] else state[row : row + 1]
        pieces = []
        for begin, end in zip(starts, starts[1:]):
            piece = torch.cat([values[row : row + 1, begin:end], torch.zeros(1, 1, 8)], 1)
            pieces.append(naive_momentum(piece, 0.9, carried if begin == 0 else None))
        reference = torch.cat([piece[:, :-1] for piece in pieces], 1)
        torch.testing.assert_close(m[row : row + 1].double(), reference, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(next_state[row].double(), pieces[-1][0, -1], rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------- cache: decoding == one forward


@pytest.mark.parametrize("padded", [False, True], ids=["no-padding", "left-padding"])
def test_token_by_token_and_chunked_prefill_equal_full_forward(padded):
    model = tiny_model()
    ids, mask, _ = left_padded_batch() if padded else left_padded_batch((10, 10))
    real = mask.bool()
    full = model(ids, attention_mask=mask).logits

    cache = DynamicCache(config=model.config)
    steps = [
        model(ids[:, t : t + 1], attention_mask=mask[:, : t + 1], cache=cache, use_cache=True).logits
        for t in range(ids.shape[1])
    ]
    assert (torch.cat(steps, 1) - full)[real].abs().max() < 1e-5

    first = model(ids[:, :4], attention_mask=mask[:, :4], use_cache=True)
    second = model(ids[:, 4:9], attention_mask=mask[:, :9], cache=first.cache, use_cache=True)
    third = model(ids[:, 9:], attention_mask=mask, cache=second.cache, use_cache=True)
    chunked = torch.cat([first.logits, second.logits, third.logits], 1)
    assert (chunked - full)[real].abs().max() < 1e-5


def test_padding_never_enters_the_momentum_sum():
    model = tiny_model(momentum=0.9)
    ids, mask, rows = left_padded_batch()
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    batched = model(ids, attention_mask=mask, position_ids=position_ids).logits
    for i, row in enumerate(rows):
        alone = model(row[None]).logits[0]
        assert (batched[i, -len(row) :] - alone).abs().max() < 1e-5


def test_generate_with_left_padding_matches_unpadded_generation():
    model = tiny_model()
    ids, mask, rows = left_padded_batch()
    out = model.generate(ids, attention_mask=mask, max_new_tokens=5, do_sample=False, pad_token_id=0)
    assert out.shape == (2, ids.shape[1] + 5)
    for i, row in enumerate(rows):
        alone = model.generate(row[None], max_new_tokens=5, do_sample=False, pad_token_id=0)
        assert torch.equal(out[i, -5:], alone[0, -5:])
    static = model.generate(
        ids, attention_mask=mask, max_new_tokens=5, do_sample=False, pad_token_id=0, cache_implementation="static"
    )
    assert torch.equal(static, out)  # the static cache carries the momentum state as well
    beams = model.generate(ids, attention_mask=mask, max_new_tokens=3, num_beams=2, do_sample=False, pad_token_id=0)
    assert beams.shape == (2, ids.shape[1] + 3)


def test_cache_state_and_incompatible_caches():
    model = tiny_model()
    ids = torch.randint(1, VOCAB, (1, 6))
    full = model(ids).logits
    bare = DynamicCache()  # layers created lazily: the model makes them carry the momentum state
    first = model(ids[:, :3], cache=bare, use_cache=True).logits
    rest = model(ids[:, 3:], cache=bare, use_cache=True).logits
    assert (torch.cat([first, rest], 1) - full).abs().max() < 1e-5
    assert bare.layers[0].momentum_state.shape == (1, 32)

    gpt2_cache = DynamicCache(config=GPT2Config(n_layer=2))
    with pytest.raises(TypeError, match="DynamicCache\\(config=model.config\\)"):
        model(ids, cache=gpt2_cache, use_cache=True)


def test_positions_beyond_the_table_raise():
    model = tiny_model()
    with pytest.raises(ValueError, match="max_position_embeddings"):
        model(torch.randint(1, VOCAB, (1, 65)))


def test_past_key_values_is_the_deprecated_name_of_cache():
    model = tiny_model()
    ids = torch.randint(1, VOCAB, (1, 8))
    full = model(ids).logits
    cache = model(ids[:, :7], use_cache=True).cache
    with pytest.warns(FutureWarning, match="`past_key_values` is deprecated"):
        step = model(ids[:, 7:], past_key_values=cache, use_cache=True)
    assert step.cache is cache and cache.get_seq_length() == 8
    torch.testing.assert_close(step.logits[:, -1], full[:, -1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cache_class", ["dynamic", "static"])
def test_cropped_cache_decodes_like_a_cache_that_never_held_the_dropped_tokens(cache_class):
    model = tiny_model(momentum=0.8)
    ids = torch.randint(1, VOCAB, (2, 16))

    def new_cache():
        if cache_class == "static":
            return StaticCache(config=model.config, max_cache_len=32)
        return DynamicCache(config=model.config)

    reference = new_cache()
    model(ids[:, :10], cache=reference, use_cache=True)
    expected = model(ids[:, 10:], cache=reference, use_cache=True).logits

    cropped = new_cache()
    model(ids[:, :6], cache=cropped, use_cache=True)
    model(torch.randint(1, VOCAB, (2, 5)), cache=cropped, use_cache=True)  # a rejected draft of 5 tokens
    cropped.crop(-5)
    assert cropped.is_croppable and cropped.get_seq_length() == 6
    model(ids[:, 6:10], cache=cropped, use_cache=True)
    torch.testing.assert_close(model(ids[:, 10:], cache=cropped, use_cache=True).logits, expected)


def _repetitive_prompt(seed=3):
    gen = torch.Generator().manual_seed(seed)
    motif = torch.randint(1, VOCAB, (1, 4), generator=gen)
    return torch.cat([motif, torch.randint(1, VOCAB, (1, 3), generator=gen), motif, motif], 1)


def test_assisted_and_prompt_lookup_decoding_equal_greedy_decoding():
    model = tiny_model(momentum=0.8)
    ids = _repetitive_prompt()
    kwargs = dict(max_new_tokens=12, do_sample=False, pad_token_id=0)
    greedy = model.generate(ids, **kwargs)
    torch.manual_seed(1)
    other = MomentumGPTForCausalLM(tiny_config(momentum=0.8)).eval()  # its drafts get rejected: the cache is cropped
    for assistant in (other, model):
        assistant.generation_config.num_assistant_tokens = 3
        assistant.generation_config.num_assistant_tokens_schedule = "constant"
        assert torch.equal(model.generate(ids, assistant_model=assistant, **kwargs), greedy)
    assert torch.equal(model.generate(ids, prompt_lookup_num_tokens=3, **kwargs), greedy)


def test_static_cache_and_compiled_decoding_equal_the_dynamic_cache():
    model = tiny_model()
    ids, mask, _ = left_padded_batch()
    kwargs = dict(attention_mask=mask, max_new_tokens=6, do_sample=False, pad_token_id=0)
    dynamic = model.generate(ids, return_dict_in_generate=True, output_scores=True, **kwargs)
    static = model.generate(ids, cache_implementation="static", return_dict_in_generate=True, output_scores=True, **kwargs)
    assert isinstance(static.cache, StaticCache) and static.cache.is_compileable
    assert torch.equal(static.sequences, dynamic.sequences)
    torch.testing.assert_close(torch.stack(static.scores), torch.stack(dynamic.scores), rtol=1e-5, atol=1e-5)

    compile_config = CompileConfig(fullgraph=True, dynamic=False, mode="default")
    compile_config._compile_all_devices = True  # `generate` compiles the decoding step on CPU too
    torch._dynamo.reset()
    compiled = model.generate(ids, cache_implementation="static", compile_config=compile_config, **kwargs)
    assert hasattr(model, "_compiled_call")
    assert torch.equal(compiled, dynamic.sequences)


def test_whole_forward_compiles_without_graph_breaks():
    model = tiny_model()
    ids = torch.randint(1, VOCAB, (1, 12))
    position_ids = torch.cat([torch.arange(5), torch.arange(7)])[None]  # the reset-aware path as well
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    for kwargs in ({}, {"position_ids": position_ids}):
        torch.testing.assert_close(compiled(ids, use_cache=False, **kwargs).logits, model(ids, use_cache=False, **kwargs).logits)


# ---------------------------------------------------------------- packed sequences (padding-free batches)


def _packed(lengths=(5, 9, 4), seed=2):
    gen = torch.Generator().manual_seed(seed)
    rows = [torch.randint(1, VOCAB, (n,), generator=gen) for n in lengths]
    position_ids = torch.cat([torch.arange(n) for n in lengths])[None]
    return rows, torch.cat(rows)[None], position_ids


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_packed_sequences_equal_the_padded_batch(attn):
    model = tiny_model(attn, momentum=0.9)
    rows, packed_ids, position_ids = _packed()
    packed = model(packed_ids, position_ids=position_ids, use_cache=False).logits[0]
    total = max(len(row) for row in rows)
    ids = torch.stack([torch.nn.functional.pad(row, (0, total - len(row))) for row in rows])
    mask = torch.stack([(torch.arange(total) < len(row)).long() for row in rows])
    padded = model(ids, attention_mask=mask).logits
    expected = torch.cat([padded[i, : len(row)] for i, row in enumerate(rows)])
    torch.testing.assert_close(packed, expected, rtol=1e-5, atol=1e-5)


def test_momentum_restarts_at_cu_seq_lens_boundaries():
    """Flash-attention varlen callers mark the sequences with `cu_seq_lens_q/k`; a stand-in attention function that
    attends within those boundaries (the position ids run on, so only the boundaries can restart the momentum)."""

    def varlen_attention(module, query, key, value, attention_mask, scaling=None, cu_seq_lens_q=None, **kwargs):
        starts = torch.zeros(query.shape[2], dtype=torch.long)
        starts[cu_seq_lens_q[1:-1].long()] = 1
        sequence = starts.cumsum(0)
        allowed = (sequence[:, None] == sequence[None, :]) & torch.ones(len(starts), len(starts)).tril().bool()
        out = torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=allowed, scale=scaling)
        return out.transpose(1, 2), None

    AttentionInterface.register("momentum_gpt_test_varlen", varlen_attention)
    model = tiny_model("momentum_gpt_test_varlen", momentum=0.9)
    rows, packed_ids, _ = _packed()
    cu = torch.tensor([0, *torch.tensor([len(row) for row in rows]).cumsum(0).tolist()], dtype=torch.int32)
    varlen = dict(cu_seq_lens_q=cu, cu_seq_lens_k=cu, max_length_q=9, max_length_k=9)
    packed = model(packed_ids, use_cache=False, **varlen).logits[0]
    offset = 0
    for row in rows:  # each sequence alone, at the positions it had in the packed row
        alone = tiny_model("sdpa", momentum=0.9)(row[None], position_ids=torch.arange(offset, offset + len(row))[None])
        torch.testing.assert_close(packed[offset : offset + len(row)], alone.logits[0], rtol=1e-5, atol=1e-5)
        offset += len(row)


# ---------------------------------------------------------------- attention implementations


def test_eager_equals_sdpa_with_padding():
    ids, mask, _ = left_padded_batch()
    eager = tiny_model("eager")(ids, attention_mask=mask).logits
    sdpa = tiny_model("sdpa")(ids, attention_mask=mask).logits
    real = mask.bool()
    assert (eager - sdpa)[real].abs().max() < 1e-5


def test_registered_attention_function_sees_q_k_v():
    seen = []

    def recording(module, query, key, value, attention_mask, **kwargs):
        seen.append((module.layer_idx, query.shape, key.shape, value.shape))
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)

    AttentionInterface.register("momentum_gpt_test_recording", recording)
    # A custom attention function gets a mask only if a mask builder is registered under its name too.
    AttentionMaskInterface.register("momentum_gpt_test_recording", sdpa_mask)
    ids, mask, _ = left_padded_batch()
    expected = tiny_model("sdpa")(ids, attention_mask=mask).logits
    recorded = tiny_model("momentum_gpt_test_recording")(ids, attention_mask=mask).logits
    assert [layer for layer, *_ in seen] == [0, 1]
    assert seen[0][1] == (2, 4, 12, 8) and seen[0][2] == seen[0][3] == (2, 4, 12, 8)
    # The momentum term is added outside the attention function, so swapping the function changes nothing.
    torch.testing.assert_close(recorded, expected)


# ---------------------------------------------------------------- training


def test_gradients_reach_every_parameter():
    model = tiny_model().train()
    ids = torch.randint(1, VOCAB, (2, 16))
    model(ids, labels=ids).loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_gradient_checkpointing_gives_same_loss_and_gradients():
    ids = torch.randint(1, VOCAB, (2, 16))
    results = []
    for checkpointing in (False, True):
        model = tiny_model().train()
        if checkpointing:
            model.activation_checkpointing_enable()
            assert all(block.gradient_checkpointing for block in model.model.layers)
        loss = model(ids, labels=ids).loss
        loss.backward()
        results.append((loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    (loss_a, grads_a), (loss_b, grads_b) = results
    torch.testing.assert_close(loss_a, loss_b)
    for name in grads_a:
        torch.testing.assert_close(grads_a[name], grads_b[name], msg=name)


# ---------------------------------------------------------------- saving and remote code


def test_save_load_round_trip_and_remote_code_without_hf_metaopt(tmp_path):
    model = tiny_model(momentum=0.3)
    ids = torch.randint(1, VOCAB, (1, 10))
    expected = model(ids).logits
    model.save_pretrained(tmp_path)
    files = set(os.listdir(tmp_path))
    assert {"model.safetensors", "configuration_momentum_gpt.py", "modeling_momentum_gpt.py"} <= files

    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert type(reloaded) is MomentumGPTForCausalLM
    assert reloaded.lm_head.weight.data_ptr() == reloaded.model.embed_tokens.weight.data_ptr()
    torch.testing.assert_close(reloaded(ids).logits, expected)

    torch.save({"ids": ids, "logits": expected.detach()}, tmp_path / "reference.pt")
    script = textwrap.dedent(
        f"""
        import sys, torch
        from transformers import AutoModelForCausalLM
        model = AutoModelForCausalLM.from_pretrained({str(tmp_path)!r}, trust_remote_code=True).eval()
        ref = torch.load({str(tmp_path / "reference.pt")!r})
        assert "hf_metaopt" not in sys.modules, "hf_metaopt was imported"
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        print("MAXDIFF", float((model(ref["ids"]).logits - ref["logits"]).abs().max()))
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    max_diff = float(done.stdout.split("MAXDIFF")[-1])
    assert max_diff < 1e-6


# ---------------------------------------------------------------- sequence classification


def test_sequence_classification_head_pools_the_last_real_token():
    """transformers' generic head (as Llama's): logits of the last token that is not pad_token_id, on either side."""
    torch.manual_seed(0)
    config = tiny_config(num_labels=3, pad_token_id=0)
    model = MomentumGPTForSequenceClassification(config).eval()
    ids, mask, rows = left_padded_batch()
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    labels = torch.tensor([0, 2])
    out = model(ids, attention_mask=mask, position_ids=position_ids, labels=labels)
    assert out.logits.shape == (2, 3)
    alone = torch.stack([model(row[None]).logits[0] for row in rows])
    torch.testing.assert_close(out.logits, alone, rtol=1e-5, atol=1e-5)
    # By hand: the score of the last real token's hidden state, and the mean cross-entropy of the labels.
    hidden = model.model(ids, attention_mask=mask, position_ids=position_ids).last_hidden_state[:, -1]
    by_hand = hidden @ model.score.weight.T
    torch.testing.assert_close(out.logits, by_hand, rtol=1e-5, atol=1e-5)
    expected_loss = -torch.log_softmax(by_hand, -1)[torch.arange(2), labels].mean()
    torch.testing.assert_close(out.loss, expected_loss, rtol=1e-5, atol=1e-6)

    # Right padding: pooled from the last token that is not padding.
    right_ids = torch.zeros_like(ids)
    right_mask = torch.zeros_like(mask)
    for i, row in enumerate(rows):
        right_ids[i, : len(row)] = row
        right_mask[i, : len(row)] = 1
    right = model(right_ids, attention_mask=right_mask).logits
    torch.testing.assert_close(right, alone, rtol=1e-5, atol=1e-5)

    # Regression (num_labels=1): mean squared error, as transformers' heads compute it.
    regression = MomentumGPTForSequenceClassification(tiny_config(num_labels=1, pad_token_id=0)).eval()
    target = torch.tensor([0.5, -1.0])
    out_r = regression(ids, attention_mask=mask, position_ids=position_ids, labels=target)
    torch.testing.assert_close(out_r.loss, ((out_r.logits.squeeze(-1) - target) ** 2).mean())

    out.loss.backward()
    assert model.score.weight.grad is not None


def test_a_classification_checkpoint_loads_under_every_auto_class_without_hf_metaopt(tmp_path, random_gpt2):
    """auto_map names every registered head, and remote code has from_gpt2 (conversion.py travels with it)."""
    torch.manual_seed(0)
    MomentumGPTForSequenceClassification(tiny_config(num_labels=2, pad_token_id=0)).save_pretrained(tmp_path)
    auto_map = json.loads((tmp_path / "config.json").read_text())["auto_map"]
    assert auto_map == {
        "AutoConfig": "configuration_momentum_gpt.MomentumGPTConfig",
        "AutoModel": "modeling_momentum_gpt.MomentumGPTModel",
        "AutoModelForCausalLM": "modeling_momentum_gpt.MomentumGPTForCausalLM",
        "AutoModelForSequenceClassification": "modeling_momentum_gpt.MomentumGPTForSequenceClassification",
    }
    assert {"configuration_momentum_gpt.py", "modeling_momentum_gpt.py", "conversion.py"} <= set(os.listdir(tmp_path))
    random_gpt2.save_pretrained(tmp_path / "gpt2")
    script = textwrap.dedent(
        f"""
        import sys, torch
        from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification, GPT2LMHeadModel
        names = [type(auto.from_pretrained({str(tmp_path)!r}, trust_remote_code=True)).__name__
                 for auto in (AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification)]
        lm = AutoModelForCausalLM.from_pretrained({str(tmp_path)!r}, trust_remote_code=True)
        gpt2 = GPT2LMHeadModel.from_pretrained({str(tmp_path / "gpt2")!r}).eval()
        converted = type(lm).from_gpt2(gpt2, momentum=0.0).eval()
        ids = torch.arange(1, 11)[None]
        with torch.no_grad():
            diff = float((converted(ids).logits - gpt2(ids).logits).abs().max())
        assert "hf_metaopt" not in sys.modules, "hf_metaopt was imported"
        print("NAMES", *names, "DIFF", diff)
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    words = done.stdout.split("NAMES")[-1].split()
    assert words[:3] == ["MomentumGPTModel", "MomentumGPTForCausalLM", "MomentumGPTForSequenceClassification"]
    assert float(words[-1]) < 1e-5


def test_tokenizer_batch_with_left_padding_generates_like_single_prompts(tiny_tokenizer):
    tiny_tokenizer.pad_token = tiny_tokenizer.eos_token
    model = tiny_model(pad_token_id=tiny_tokenizer.pad_token_id)
    prompts = ["Review: a gripping, beautifully acted film. Sentiment:", "Review: dull. Sentiment:"]
    batch = tiny_tokenizer(prompts, padding=True, padding_side="left", return_tensors="pt")
    out = model.generate(**batch, max_new_tokens=4, do_sample=False)
    texts = tiny_tokenizer.batch_decode(out[:, batch["input_ids"].shape[1] :])
    for prompt, text in zip(prompts, texts):
        alone = model.generate(**tiny_tokenizer(prompt, return_tensors="pt"), max_new_tokens=4, do_sample=False)
        assert tiny_tokenizer.decode(alone[0, -4:]) == text
