"""K/V-only finetuning (fused GPT-2 and separate Llama layouts), LoRA on K/V, full; the input is never modified."""

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from hf_metaopt.analysis import AnalysisOptions
from hf_metaopt.analysis.finetune import finetune_model as analysis_finetune_model
from hf_metaopt.analysis.finetune import kv_parameter_names

EXAMPLES = [[5, 17, 40, 22, 9, 101], [7, 33, 2, 90], [12, 12, 200, 54, 3]]


def finetune_model(model, examples, **options):
    return analysis_finetune_model(model, examples, AnalysisOptions.from_kwargs(**options))


def gpt2():
    torch.manual_seed(0)
    cfg = GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=400, n_positions=64, bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(cfg).eval()


def llama():
    torch.manual_seed(0)
    cfg = LlamaConfig(
        num_hidden_layers=2, hidden_size=32, num_attention_heads=4, num_key_value_heads=2, intermediate_size=64,
        vocab_size=400, max_position_embeddings=64, attention_bias=True, bos_token_id=0, eos_token_id=0,
    )
    return LlamaForCausalLM(cfg).eval()


def changed(before: dict, model) -> set[str]:
    return {n for n, p in model.named_parameters() if not torch.equal(before[n], p.detach())}


def snapshot(model) -> dict:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_kv_fused_gpt2_moves_only_k_and_v_columns():
    model = gpt2()
    before = snapshot(model)
    tuned = finetune_model(model, EXAMPLES, method="kv", learning_rate=0.5, seed=0)
    assert changed(before, model) == set()  # the input model is untouched
    moved = changed(before, tuned)
    assert moved == {f"transformer.h.{i}.attn.c_attn.{w}" for i in range(2) for w in ("weight", "bias")}
    for i in range(2):
        w_old, w_new = before[f"transformer.h.{i}.attn.c_attn.weight"], tuned.transformer.h[i].attn.c_attn.weight
        b_old, b_new = before[f"transformer.h.{i}.attn.c_attn.bias"], tuned.transformer.h[i].attn.c_attn.bias
        assert torch.equal(w_old[:, :32], w_new[:, :32]) and torch.equal(b_old[:32], b_new[:32])  # Q bit-identical
        assert not torch.equal(w_old[:, 32:64], w_new[:, 32:64])  # K moved
        assert not torch.equal(w_old[:, 64:], w_new[:, 64:])  # V moved


def test_kv_separate_llama_moves_only_k_proj_and_v_proj():
    model = llama()
    before = snapshot(model)
    tuned = finetune_model(model, EXAMPLES, method="kv", learning_rate=0.5, seed=0)
    expected = {f"model.layers.{i}.self_attn.{p}.{w}" for i in range(2) for p in ("k_proj", "v_proj") for w in ("weight", "bias")}
    assert changed(before, tuned) == expected
    assert set(kv_parameter_names(model)) == expected
    assert changed(before, model) == set()


def test_sgd_step_is_plain_sgd_with_the_given_learning_rate():
    model = llama()
    lr = 0.25
    tuned = finetune_model(model, EXAMPLES[:1], method="kv", learning_rate=lr, seed=0)
    reference = llama()
    ids = torch.tensor([EXAMPLES[0]])
    reference.train()
    reference(input_ids=ids, labels=ids).loss.backward()
    k = reference.model.layers[0].self_attn.k_proj.weight
    assert torch.allclose(tuned.model.layers[0].self_attn.k_proj.weight, k.detach() - lr * k.grad, atol=1e-6)


def test_lora_targets_only_k_and_v_modules():
    from peft import LoraConfig, get_peft_model
    from peft.tuners.tuners_utils import inspect_matched_modules

    model = llama()
    before = snapshot(model)
    tuned = finetune_model(model, EXAMPLES, method="lora", learning_rate=0.5, seed=0)
    moved = changed(before, tuned)
    assert moved and all(".k_proj." in n or ".v_proj." in n for n in moved)
    # the same LoraConfig the finetuner uses matches only the K/V projections
    peft_model = get_peft_model(llama(), LoraConfig(target_modules=["k_proj", "v_proj"], r=8))
    matched = inspect_matched_modules(peft_model.base_model)["matched"]
    assert matched and all(m.endswith(("k_proj", "v_proj")) for m in matched)


def test_lora_refuses_fused_gpt2():
    with pytest.raises(ValueError, match="fused c_attn"):
        finetune_model(gpt2(), EXAMPLES, method="lora", learning_rate=0.1)


def test_full_moves_more_than_kv_and_bad_arguments():
    model = gpt2()
    before = snapshot(model)
    tuned = finetune_model(model, EXAMPLES, method="full", learning_rate=0.5, seed=0)
    assert any(".mlp." in n for n in changed(before, tuned))
    with pytest.raises(ValueError, match="learning_rate"):
        finetune_model(model, EXAMPLES, learning_rate=0.0)
    with pytest.raises(ValueError, match="method"):
        finetune_model(model, EXAMPLES, method="adam")
