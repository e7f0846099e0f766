"""The dual form: linear attention over [X'; X] equals (W_ZSL + dW_ICL) q, on real tiny models."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from hf_metaopt.analysis.dual_form import dual_form_check, linear_attention_dual

DEMOS = [
    "Review: a gripping, beautifully acted film. Sentiment: Positive",
    "Review: dull, overlong and badly written. Sentiment: Negative",
]
QUERY = "Review: the plot is clever and the cast is great. Sentiment:"


def _gpt2():
    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=400, n_positions=128, attn_implementation="eager"))


def _llama():
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=400, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=128, attention_bias=True, attn_implementation="eager",
    )
    return LlamaForCausalLM(config)


def _qwen3():
    from transformers import Qwen3Config, Qwen3ForCausalLM

    torch.manual_seed(0)
    config = Qwen3Config(
        vocab_size=400, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=8, max_position_embeddings=128, attn_implementation="eager",
    )
    return Qwen3ForCausalLM(config)


def _momentum_gpt():
    from hf_metaopt import MomentumGPTConfig, MomentumGPTForCausalLM

    torch.manual_seed(0)
    config = MomentumGPTConfig(
        vocab_size=400, max_position_embeddings=128, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, momentum=0.5
    )
    return MomentumGPTForCausalLM(config)


def test_hand_computed_2x2():
    # One demonstration token x' with key k'=(1,0), value v'=(0,1); one context token with
    # k=(0,1), v=(1,1); q=(1,2).  Scores k'.q=1, k.q=2 -> F = 1*(0,1) + 2*(1,1) = (2,3).
    # W_ZSL = v k^T = [[0,1],[0,1]];  dW_ICL = v' k'^T = [[0,0],[1,0]];  (W_ZSL+dW_ICL) q = (2,3).
    keys = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    values = torch.tensor([[0.0, 1.0], [1.0, 1.0]])
    out = linear_attention_dual(keys, values, torch.tensor([1.0, 2.0]), n_demo=1)
    assert out["f_icl"].tolist() == [2.0, 3.0]
    assert out["f_dual"].tolist() == [2.0, 3.0]
    assert out["w_zsl"].tolist() == [[0.0, 1.0], [0.0, 1.0]]
    assert out["dw_icl"].tolist() == [[0.0, 0.0], [1.0, 0.0]]
    assert out["f_icl"].dtype == torch.float64


def test_linear_attention_dual_shape_errors():
    with pytest.raises(ValueError, match="values"):
        linear_attention_dual(torch.zeros(3, 2), torch.zeros(4, 2), torch.zeros(2), 1)
    with pytest.raises(ValueError, match="query"):
        linear_attention_dual(torch.zeros(3, 2), torch.zeros(3, 2), torch.zeros(3), 1)
    with pytest.raises(ValueError, match="n_demo"):
        linear_attention_dual(torch.zeros(3, 2), torch.zeros(3, 2), torch.zeros(2), 4)


def _attention_last_row(model, tokenizer, result):
    model.eval()  # no attention dropout in the reference weights
    prefix = tokenizer("\n".join(DEMOS) + "\n")["input_ids"]
    ids = prefix + tokenizer(QUERY, add_special_tokens=False)["input_ids"]
    assert len(prefix) == result.n_demo_tokens and len(ids) == result.n_demo_tokens + result.n_query_tokens
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids]), output_attentions=True)
    return [a[0, :, -1].double().numpy() for a in out.attentions]  # per layer [H, T]


@pytest.mark.parametrize(
    "build", [_gpt2, _llama, _qwen3, _momentum_gpt], ids=["gpt2", "llama-gqa-rope", "qwen3-qk-norm", "momentum_gpt"]
)
def test_identity_holds_and_scores_are_the_models(build, tiny_tokenizer):
    model = build().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = dual_form_check(model, tiny_tokenizer, DEMOS, QUERY, learning_rate=0.1)
    assert model.training  # the mode is restored

    assert result.identity_rel_error.shape == (2, 4)
    assert result.max_rel_error < 1e-10
    assert result.rotary == (build in (_llama, _qwen3))
    # The relaxed scores are the model's own pre-softmax scores (before its scale): softmax of
    # them reproduces the attention weights the model returns, so q and the keys (RoPE and
    # GQA included) are the real ones.
    for layer, attn in enumerate(_attention_last_row(model, tiny_tokenizer, result)):
        logits = result.scaling[layer] * result.relaxed_scores[layer]
        probs = np.exp(logits - logits.max(axis=-1, keepdims=True))
        probs /= probs.sum(axis=-1, keepdims=True)
        np.testing.assert_allclose(probs, attn, atol=1e-5)
    # Finetuning moved K/V, but the model itself is untouched.
    assert np.all(result.dw_ft_norm > 0) and np.all(result.w_zsl_norm > 0)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    as_dict = json.loads(json.dumps(result.to_dict()))
    assert as_dict["max_rel_error"] == result.max_rel_error
    assert len(as_dict["cos_icl_ft_per_layer"]) == 2


def test_dw_ft_is_a_gradient_step(tiny_tokenizer):
    # One demonstration = one SGD step; for small learning rates dW_FT is linear in it. The step is
    # the analysis's finetuning, in the model's float32: at 1e-3 its rounding (~1e-5 of the update)
    # and the second-order term (~1e-4) both stay below the tolerances.
    model = _gpt2()
    small = dual_form_check(model, tiny_tokenizer, DEMOS[0], QUERY, learning_rate=1e-3)
    double = dual_form_check(model, tiny_tokenizer, DEMOS[0], QUERY, learning_rate=2e-3)
    np.testing.assert_allclose(double.dw_ft_norm / small.dw_ft_norm, 2.0, rtol=1e-3)
    np.testing.assert_allclose(double.cos_icl_ft, small.cos_icl_ft, atol=2e-4)
    # dW_ICL does not depend on the learning rate.
    np.testing.assert_array_equal(double.dw_icl_norm, small.dw_icl_norm)


def _torch_sgd_on_kv(model, ids: list[list[int]], learning_rate: float):
    """A copy of ``model`` after plain ``torch.optim.SGD`` on K/V only (GPT-2's Q columns masked), one step per example."""
    ref = copy.deepcopy(model)
    for p in ref.parameters():
        p.requires_grad_(False)
    params = []
    for module in ref.modules():
        if hasattr(module, "c_attn"):
            w, b = module.c_attn.weight, module.c_attn.bias
            d = w.shape[0]
            mask_w, mask_b = torch.ones_like(w), torch.ones_like(b)
            mask_w[:, :d], mask_b[:d] = 0, 0  # freeze the Q part of the fused projection
            for t, m in ((w, mask_w), (b, mask_b)):
                t.requires_grad_(True)
                t.register_hook(lambda g, m=m: g * m)
                params.append(t)
        elif hasattr(module, "k_proj"):
            for t in (module.k_proj.weight, module.k_proj.bias, module.v_proj.weight, module.v_proj.bias):
                t.requires_grad_(True)
                params.append(t)
    opt = torch.optim.SGD(params, lr=learning_rate)
    for x in ids:
        opt.zero_grad()
        inputs = torch.tensor([x])
        ref(input_ids=inputs, labels=inputs).loss.backward()
        opt.step()
    return ref.eval()


def _kv_heads(attn, x, rope, n_heads):
    """Per-head keys (RoPE applied, as the model applies it) and values ``[H, T, d]`` of ``attn`` at inputs ``x``."""
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    with torch.no_grad():
        if hasattr(attn, "c_attn"):
            _, k, v = attn.c_attn(x).split(x.shape[-1], dim=-1)
        else:
            k, v = attn.k_proj(x), attn.v_proj(x)
    d = attn.head_dim
    k, v = (t.view(t.shape[0], -1, d).transpose(0, 1).double() for t in (k, v))  # [kv heads, T, d]
    if rope is not None:
        cos, sin = rope
        k, _ = apply_rotary_pos_emb(k[None], k[None], cos.double(), sin.double())
        k = k[0]
    return k.repeat_interleave(n_heads // k.shape[0], dim=0), v.repeat_interleave(n_heads // v.shape[0], dim=0)


@pytest.mark.parametrize("build", [_gpt2, _llama], ids=["gpt2-fused", "llama-separate"])
def test_dw_ft_and_its_cosine_with_dw_icl_by_hand(build, tiny_tokenizer):
    # By hand: torch SGD on K/V, then dW_FT = sum_j v~_j k~_j^T - sum_j v_j k_j^T over the query tokens'
    # inputs, dW_ICL = sum_i v_i k_i^T over the demonstration tokens', and their Frobenius cosine per head.
    model = build()
    for m in model.modules():  # no dropout: the Trainer's training pass and the reference see the same function
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    model.eval()
    result = dual_form_check(model, tiny_tokenizer, DEMOS, QUERY, learning_rate=0.05)
    ref = _torch_sgd_on_kv(model, [tiny_tokenizer(d)["input_ids"] for d in DEMOS], 0.05)

    ids = tiny_tokenizer("\n".join(DEMOS) + "\n")["input_ids"] + tiny_tokenizer(QUERY, add_special_tokens=False)["input_ids"]
    attns = [m for m in model.modules() if type(m).__name__.endswith("Attention")]
    inputs = {}

    def keep_inputs(module, args, kwargs):
        inputs[module] = (args[0] if args else kwargs["hidden_states"], kwargs.get("position_embeddings"))

    hooks = [a.register_forward_pre_hook(keep_inputs, with_kwargs=True) for a in attns]
    with torch.no_grad():
        model(input_ids=torch.tensor([ids]))
    for h in hooks:
        h.remove()
    ref_attns = [m for m in ref.modules() if type(m).__name__.endswith("Attention")]
    n = result.n_demo_tokens
    heads = model.config.num_attention_heads
    for layer, (attn, tuned) in enumerate(zip(attns, ref_attns)):
        x, rope = inputs[attn]
        k0, v0 = _kv_heads(attn, x[0], rope, heads)  # original projections, every token
        k1, v1 = _kv_heads(tuned, x[0, n:], None if rope is None else (rope[0][:, n:], rope[1][:, n:]), heads)
        w_zsl = torch.einsum("htv,htk->hvk", v0[:, n:], k0[:, n:])
        dw_ft = (torch.einsum("htv,htk->hvk", v1, k1) - w_zsl).flatten(1)
        dw_icl = torch.einsum("htv,htk->hvk", v0[:, :n], k0[:, :n]).flatten(1)
        cos = (dw_icl * dw_ft).sum(-1) / (dw_icl.norm(dim=-1) * dw_ft.norm(dim=-1))
        np.testing.assert_allclose(result.dw_ft_norm[layer], dw_ft.norm(dim=-1).numpy(), rtol=1e-4)
        np.testing.assert_allclose(result.dw_icl_norm[layer], dw_icl.norm(dim=-1).numpy(), rtol=1e-6)
        np.testing.assert_allclose(result.cos_icl_ft[layer], cos.numpy(), atol=1e-4)


def test_bad_input(tiny_tokenizer):
    model = _gpt2()
    with pytest.raises(ValueError, match="demonstrations"):
        dual_form_check(model, tiny_tokenizer, [], QUERY)
    with pytest.raises(ValueError, match="demonstrations"):
        dual_form_check(model, tiny_tokenizer, ["  "], QUERY)
    with pytest.raises(ValueError, match="query"):
        dual_form_check(model, tiny_tokenizer, DEMOS, "")
    with pytest.raises(ValueError, match="learning_rate"):
        dual_form_check(model, tiny_tokenizer, DEMOS, QUERY, learning_rate=0)
    with pytest.raises(TypeError, match="model"):
        dual_form_check("gpt2", tiny_tokenizer, DEMOS, QUERY)
    with pytest.raises(ValueError, match="context is 128"):
        dual_form_check(model, tiny_tokenizer, DEMOS * 20, QUERY)

    from transformers import GPT2Model

    with pytest.raises(TypeError, match="causal LM"):
        dual_form_check(GPT2Model(model.config), tiny_tokenizer, DEMOS, QUERY)

    class NoAttention(torch.nn.Module):
        config = GPT2Config(n_head=4)

        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(4, 4)

    with pytest.raises(ValueError, match="c_attn.*q_proj"):
        dual_form_check(NoAttention(), tiny_tokenizer, DEMOS, QUERY)


@pytest.mark.slow
def test_identity_on_real_smollm2(smollm2_path):
    # Real weights: 30 layers, 9 query heads sharing 3 key/value heads, RoPE, BOS token.
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2_path)
    model = AutoModelForCausalLM.from_pretrained(smollm2_path, dtype=torch.float32, attn_implementation="eager")
    result = dual_form_check(model, tokenizer, DEMOS, QUERY, learning_rate=1e-3)
    assert result.identity_rel_error.shape == (model.config.num_hidden_layers, model.config.num_attention_heads)
    assert result.max_rel_error < 1e-10
    assert result.rotary
    for layer, attn in enumerate(_attention_last_row(model, tokenizer, result)):
        logits = result.scaling[layer] * result.relaxed_scores[layer]
        probs = np.exp(logits - logits.max(axis=-1, keepdims=True))
        probs /= probs.sum(axis=-1, keepdims=True)
        np.testing.assert_allclose(probs, attn, atol=1e-4)
