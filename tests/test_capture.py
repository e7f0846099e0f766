"""Capture through the attention interface: unchanged outputs, correct scores, GPT-2, Llama, MomentumGPT."""

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from hf_metaopt.analysis.capture import AttentionRecorder, RowSpec, UnsupportedArchitectureError


def gpt2(impl):
    torch.manual_seed(0)
    cfg = GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=400, n_positions=64, bos_token_id=0, eos_token_id=0)
    return _with_impl(GPT2LMHeadModel(cfg), impl)


def _with_impl(model, impl):
    model.set_attn_implementation(impl)
    return model.eval()


def llama(impl):
    torch.manual_seed(0)
    cfg = LlamaConfig(
        num_hidden_layers=2, hidden_size=32, num_attention_heads=4, num_key_value_heads=2, intermediate_size=64,
        vocab_size=400, max_position_embeddings=64, bos_token_id=0, eos_token_id=0,
    )
    return _with_impl(LlamaForCausalLM(cfg), impl)


def momentum(impl):
    from hf_metaopt import MomentumGPTConfig, MomentumGPTForCausalLM

    torch.manual_seed(0)
    cfg = MomentumGPTConfig(
        vocab_size=400, max_position_embeddings=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        momentum=0.5,
    )
    return _with_impl(MomentumGPTForCausalLM(cfg), impl)


BUILDERS = {"gpt2": gpt2, "llama": llama, "momentum_gpt": momentum}
IDS = torch.tensor([[3, 50, 7, 99, 12, 8, 41], [5, 6, 7, 8, 9, 1, 1]])


@pytest.mark.parametrize("arch", sorted(BUILDERS))
@pytest.mark.parametrize("impl", ["eager", "sdpa"])
def test_recording_leaves_logits_unchanged_and_scores_match_attention(arch, impl):
    model = BUILDERS[arch](impl)
    with torch.no_grad():
        plain = model(input_ids=IDS).logits
    recorder = AttentionRecorder(model)
    assert recorder.num_layers == 2
    rows = [RowSpec(position=6, own=(0, 7), demo=[1, 2]), RowSpec(position=4, own=(2, 5), demo=[0, 3])]
    with recorder.recording(), recorder.reading(rows), torch.no_grad():
        recorded = model(input_ids=IDS).logits
    assert model.config._attn_implementation == impl  # restored
    assert torch.allclose(plain, recorded, atol=1e-6)
    rec = recorder.pop()
    assert rec["query"].shape == (2, 2, 4, 8) and rec["output"].shape == (2, 2, 32)
    assert rec["own"][0].shape == (2, 4, 7) and rec["own"][1].shape == (2, 4, 3)  # per row: [L, H, T_own]
    assert rec["own_visible"][0].all() and rec["demo_visible"].all()
    assert rec["query"].dtype == torch.float64

    # reference: eager attention probabilities; softmax of the recorded causal row must equal them
    reference = BUILDERS[arch]("eager")
    with torch.no_grad():
        attentions = reference(input_ids=IDS, output_attentions=True).attentions
    for layer in range(2):
        probs = torch.softmax(rec["own"][0][layer], dim=-1)  # row 0: keys 0..6, position 6
        assert torch.allclose(probs, attentions[layer][0, :, 6, :7].double(), atol=1e-5)
        # demonstration scores: the chosen keys, summed over heads
        assert torch.allclose(rec["demo"][0, layer], rec["own"][0][layer][:, [1, 2]].sum(dim=0))


def test_output_is_the_attention_module_output_at_the_position():
    model = llama("sdpa")
    seen = {}
    handle = model.model.layers[1].self_attn.register_forward_hook(lambda m, a, out: seen.update(out=out[0]))
    recorder = AttentionRecorder(model)
    rows = [RowSpec(position=3, own=(0, 4)), RowSpec(position=5, own=(0, 6))]
    with recorder.recording(), recorder.reading(rows), torch.no_grad():
        model(input_ids=IDS)
    handle.remove()
    out = recorder.pop()["output"]
    assert torch.allclose(out[0, 1], seen["out"][0, 3].double()) and torch.allclose(out[1, 1], seen["out"][1, 5].double())


def test_training_pass_records_every_token_query():
    model = llama("sdpa")
    recorder = AttentionRecorder(model)
    with recorder.recording(), recorder.collecting_queries(skip=1):
        model(input_ids=IDS[:1])
    assert len(recorder.token_queries[0]) == 1 and recorder.token_queries[0][0].shape == (4, 6, 8)


def test_unsupported_architecture_is_named():
    with pytest.raises(UnsupportedArchitectureError, match="q_proj/k_proj/v_proj"):
        AttentionRecorder(torch.nn.Sequential(torch.nn.Linear(4, 4)))


def _left_behind(recorder) -> bool:
    """Whether any of the recorder's attention function or output hooks still runs outside its block."""
    with recorder.reading([RowSpec(position=6, own=(0, 7))] * 2), torch.no_grad():
        recorder.model(input_ids=IDS)
    out = recorder.pop()
    return out["query"] is not None or out["output"] is not None


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
def test_attention_implementation_is_restored_after_the_block_and_after_an_exception(impl):
    model = llama(impl)
    recorder = AttentionRecorder(model)
    with recorder.recording():
        assert model.config._attn_implementation != impl  # switched to the recorder's own implementation
    assert model.config._attn_implementation == impl and not _left_behind(recorder)
    with pytest.raises(KeyError, match="inside"):
        with recorder.recording(), recorder.reading([RowSpec(position=6, own=(0, 7))] * 2):
            raise KeyError("inside")
    assert model.config._attn_implementation == impl and not _left_behind(recorder)
    with recorder.recording(), recorder.reading([RowSpec(position=6, own=(0, 7))] * 2), torch.no_grad():
        model(input_ids=IDS)  # usable again after the exception, its rows read afresh
    assert recorder.pop()["own"][0].shape == (2, 4, 7)


def test_a_recorder_cannot_be_entered_twice_at_once():
    recorder = AttentionRecorder(llama("sdpa"))
    with recorder.recording(), pytest.raises(RuntimeError, match="already recording"):
        with recorder.recording():
            pass


def _record(recorder, rows):
    with recorder.recording(), recorder.reading(rows), torch.no_grad():
        logits = recorder.model(input_ids=IDS).logits
    return logits, recorder.pop()


@pytest.mark.parametrize("arch", sorted(BUILDERS))
@pytest.mark.parametrize("impl", ["eager", "sdpa"])
def test_nested_and_consecutive_captures_record_the_same(arch, impl):
    model = BUILDERS[arch](impl)
    rows = [RowSpec(position=6, own=(0, 7), demo=[1, 2]), RowSpec(position=4, own=(2, 5), demo=[0, 3])]
    with torch.no_grad():
        plain = model(input_ids=IDS).logits
    outer, inner = AttentionRecorder(model), AttentionRecorder(model)
    first_logits, first = _record(outer, rows)
    again_logits, again = _record(outer, rows)  # the same recorder, a second time
    with outer.recording(), outer.reading(rows):  # another recorder inside: both see every layer's call
        nested_logits, nested = _record(inner, rows)
    from_outer = outer.pop()
    assert model.config._attn_implementation == impl
    assert not _left_behind(outer) and not _left_behind(inner)
    for logits in (first_logits, again_logits, nested_logits):
        assert torch.allclose(logits, plain, atol=1e-6)
    for rec in (again, nested, from_outer):
        for key in ("query", "output", "demo", "demo_visible", "scaling"):
            assert torch.equal(rec[key], first[key]), key
        for key in ("own", "own_visible"):
            assert all(torch.equal(a, b) for a, b in zip(rec[key], first[key])), key


def test_recorders_on_two_models_nest_without_mixing():
    a, b = llama("sdpa"), gpt2("eager")
    rec_a, rec_b = AttentionRecorder(a), AttentionRecorder(b)
    rows = [RowSpec(position=6, own=(0, 7)), RowSpec(position=4, own=(2, 5))]
    alone = _record(rec_b, rows)[1]
    with rec_a.recording(), rec_a.reading(rows), torch.no_grad():
        a(input_ids=IDS)
        inside = _record(rec_b, rows)[1]
    assert torch.equal(inside["query"], alone["query"]) and rec_a.pop()["query"].shape == (2, 2, 4, 8)
    assert a.config._attn_implementation == "sdpa" and b.config._attn_implementation == "eager"


def test_names_of_recorders_gone_are_reused():
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    model = llama("sdpa")
    for _ in range(2):  # warm: the names the first recorders free
        with AttentionRecorder(model).recording():
            pass
    registered = len(ALL_ATTENTION_FUNCTIONS)
    for _ in range(5):
        with AttentionRecorder(model).recording():
            pass
    assert len(ALL_ATTENTION_FUNCTIONS) == registered
