"""Layer-causal finetuning (Deutch et al., 2024): no layer's update depends on the layers above it, one layer is
plain K/V finetuning, the loss is the hand-computed sum of every layer's loss, and the analysis runs with it."""

import pytest
import torch
import torch.nn.functional as F
from transformers import (
    Gemma2Config, Gemma2ForCausalLM, Gemma3ForCausalLM, Gemma3TextConfig, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM,
)

from hf_metaopt.analysis import AnalysisOptions, PromptFormat, run_analysis
from hf_metaopt.analysis.finetune import finetune_model, finetuned
from hf_metaopt.analysis.layer_causal import layer_causal_layout
from hf_metaopt.analysis.layout import UnsupportedArchitectureError
from hf_metaopt.analysis.training_log import LossRecorder
from test_finetune import EXAMPLES, llama, snapshot
from toy_reviews import DEMOS, QUERIES, TEMPLATE, WORDS

SMALL = dict(vocab_size=400, hidden_size=32, intermediate_size=64, num_attention_heads=4, num_key_value_heads=2,
             max_position_embeddings=256, bos_token_id=0, eos_token_id=0, pad_token_id=0)


def gpt2(n_layer=3, dropout=0.1):
    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(n_layer=n_layer, n_embd=32, n_head=4, vocab_size=400, n_positions=256, bos_token_id=0,
                                      eos_token_id=0, resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout)).eval()


def llama_layers(n):
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(**SMALL, num_hidden_layers=n, attention_bias=True)).eval()


def gemma3():
    torch.manual_seed(0)
    return Gemma3ForCausalLM(Gemma3TextConfig(**SMALL, head_dim=8, num_hidden_layers=3, sliding_window=16,
                                              layer_types=["sliding_attention", "full_attention", "sliding_attention"])).eval()


def gemma2_softcapped():
    torch.manual_seed(0)
    return Gemma2ForCausalLM(Gemma2Config(**SMALL, head_dim=8, num_hidden_layers=3, final_logit_softcapping=2.0,
                                          layer_types=["full_attention"] * 3)).eval()


def train(model, method, lr=0.5):
    return finetune_model(model, EXAMPLES, AnalysisOptions(method=method, learning_rate=lr, seed=0))


def kv_update(before, after, layer, name):
    return getattr(after.model.layers[layer].self_attn, name).weight - before[f"model.layers.{layer}.self_attn.{name}.weight"]


@pytest.mark.parametrize("method, independent", [("layer_causal", True), ("kv", False)])
def test_a_layers_update_does_not_depend_on_the_layers_above(method, independent):
    model, perturbed = llama_layers(3), llama_layers(3)
    with torch.no_grad():  # layer 2 changed everywhere (its K/V and its MLP): only layers 0 and 1 are read below
        for p in perturbed.model.layers[2].parameters():
            p.add_(torch.randn_like(p))
    before = snapshot(model)
    tuned, tuned_perturbed = train(model, method), train(perturbed, method)
    for layer in (0, 1):
        for proj in ("k_proj", "v_proj"):
            update = kv_update(before, tuned, layer, proj)
            assert update.abs().max() > 0
            same = torch.allclose(update, kv_update(before, tuned_perturbed, layer, proj), rtol=0, atol=1e-7)
            assert same is independent, (layer, proj)


def test_fused_gpt2_update_does_not_depend_on_the_layers_above():
    model, perturbed = gpt2(), gpt2()
    with torch.no_grad():
        perturbed.transformer.h[2].mlp.c_fc.weight.mul_(3.0)
    tuned, tuned_perturbed = train(model, "layer_causal"), train(perturbed, "layer_causal")
    for layer in (0, 1):
        a, b = tuned.transformer.h[layer].attn.c_attn.weight, tuned_perturbed.transformer.h[layer].attn.c_attn.weight
        assert torch.equal(a[:, :32], model.transformer.h[layer].attn.c_attn.weight[:, :32])  # Q masked as with kv
        assert torch.allclose(a, b, rtol=0, atol=1e-7)
    assert not torch.allclose(tuned.transformer.h[2].attn.c_attn.weight, tuned_perturbed.transformer.h[2].attn.c_attn.weight)


@pytest.mark.parametrize("build, layer_causal, base", [
    (lambda: gpt2(1), "layer_causal", "kv"), (lambda: llama_layers(1), "layer_causal", "kv"),
    (lambda: llama_layers(1), "layer_causal_lora", "lora"),
])
def test_with_one_layer_it_is_its_base_method(build, layer_causal, base):
    model = build()
    ours, theirs = train(model, layer_causal), train(model, base)
    for (name, a), (_, b) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert torch.allclose(a, b, rtol=0, atol=1e-7), name
    assert any(not torch.equal(a, b) for a, b in zip(ours.parameters(), model.parameters()))


def _hand_loss(model, ids, norm, head, cap=None):
    """Sum over layers of the cross-entropy of head(norm(layer output)), from output_hidden_states (whose last entry is
    the model's final, already normed, hidden state)."""
    hidden = model(input_ids=ids, output_hidden_states=True).hidden_states
    n_layers = len(hidden) - 1
    total = 0.0
    for layer in range(n_layers):
        h = hidden[layer + 1] if layer == n_layers - 1 else norm(hidden[layer + 1])
        logits = head(h)
        if cap is not None:
            logits = torch.tanh(logits / cap) * cap
        total += float(F.cross_entropy(logits[0, :-1].float(), ids[0, 1:]))
    return total, n_layers


@pytest.mark.parametrize("build, parts", [
    (llama_layers, lambda m: (m.model.norm, m.lm_head, None)),
    (lambda n: gpt2(n, dropout=0.0), lambda m: (m.transformer.ln_f, m.lm_head, None)),  # training runs without dropout
    (lambda n: gemma2_softcapped(), lambda m: (m.model.norm, m.lm_head, 2.0)),
])
def test_the_loss_is_the_sum_of_every_layers_loss_by_hand(build, parts):
    model = build(3)
    ids = torch.tensor([EXAMPLES[0]])
    with torch.no_grad():
        hand, n_layers = _hand_loss(model, ids, *parts(model))
        ordinary = float(model(input_ids=ids, labels=ids).loss)
    assert n_layers == 3 and hand > 2.5 * ordinary  # three losses of similar size, not one
    layout = layer_causal_layout(model, EXAMPLES[0])
    assert layout.example_loss(model, EXAMPLES[0]) == pytest.approx(hand, rel=1e-5)
    # The finetuning's first step is scored with the weights before it: the Trainer logs the same loss.
    recorder = LossRecorder()
    with finetuned(model, EXAMPLES, AnalysisOptions(method="layer_causal", learning_rate=0.1), callbacks=[recorder]):
        pass
    assert recorder.losses[0] == pytest.approx(hand, rel=1e-5)


def test_a_model_whose_logits_cannot_be_rebuilt_is_refused_before_training():
    model = llama()
    model.config.final_logit_softcapping = 2.0  # Llama's forward ignores it, so the rebuilt logits differ
    recorder = LossRecorder()
    with pytest.raises(UnsupportedArchitectureError, match=r"LlamaForCausalLM: the layer-causal loss .* Use method='kv'"):
        with finetuned(model, EXAMPLES, AnalysisOptions(method="layer_causal"), callbacks=[recorder]):
            pass
    assert recorder.losses == []


def test_layer_causal_lora_is_refused_on_fused_gpt2():
    with pytest.raises(ValueError, match=r"method='layer_causal_lora' cannot target GPT-2's fused c_attn.*method='layer_causal'"):
        train(gpt2(), "layer_causal_lora")


@pytest.mark.parametrize("build, method, stability", [
    (gpt2, "layer_causal", False), (gemma3, "layer_causal", True), (gemma3, "layer_causal_lora", True),
])
def test_the_analysis_runs_with_the_method_and_leaves_the_model_as_given(build, method, stability, tiny_tokenizer):
    model = build()
    before = snapshot(model)
    options = AnalysisOptions(method=method, learning_rate=0.1, batch_size=2, n_bootstrap=20, seed=3, stability_check=stability)
    report = run_analysis(model, tiny_tokenizer, DEMOS, QUERIES, PromptFormat(TEMPLATE, tuple(WORDS), "\n"), options).report
    assert report["config"]["method"] == method
    finetuning = report["finetuning"]
    assert finetuning["objective"] == "layer_causal" and len(finetuning["loss_per_step"]) == len(DEMOS)
    # The losses are the layer-causal objective's: the one before finetuning is the first step's (same weights, example 0
    # is step 0's), summed over layers, so well above one layer's loss of log(400) ~ 6 at random weights.
    assert finetuning["loss_before"] > 2 * 5.0 and finetuning["loss_per_step"][0] > 2 * 5.0
    assert finetuning["stability"]["checked"] is stability
    if stability:  # the float64 rerun of the same layer-causal finetuning
        assert 0 <= finetuning["stability"]["agreement"] <= 1 and finetuning["stability"]["update_relative_difference"] < 1e-2
    assert len(report["simaou"]["per_layer"]) == len(report["kendall"]["per_layer"]) == model.config.num_hidden_layers
    assert report["accuracy"]["ft"] is not None
    assert all(torch.equal(before[n], p) for n, p in model.named_parameters())
    # No hook is left behind: plain K/V finetuning of the model gives what it gives on a fresh copy.
    fresh = build()
    for (name, a), (_, b) in zip(train(model, "kv").named_parameters(), train(fresh, "kv").named_parameters()):
        assert torch.equal(a, b), name


def test_options_and_pipeline_finetune(tiny_tokenizer):
    from transformers import pipeline  # conftest's import of hf_metaopt registered "icl-analysis"

    assert AnalysisOptions(method="layer_causal").base_method == "kv" and AnalysisOptions(method="layer_causal").layer_causal
    assert AnalysisOptions(method="layer_causal_lora").base_method == "lora" and not AnalysisOptions().layer_causal
    with pytest.raises(ValueError, match="layer_causal_lora"):
        AnalysisOptions(method="causal")
    model = llama()
    analyzer = pipeline("icl-analysis", model=model, tokenizer=tiny_tokenizer)
    tuned = analyzer.finetune(DEMOS, template=TEMPLATE, label_words=WORDS, method="layer_causal", learning_rate=0.5)
    assert tuned is not model and any(not torch.equal(a, b) for a, b in zip(tuned.parameters(), model.parameters()))
