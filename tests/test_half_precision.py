"""Half precision: a bfloat16 model is analysed in bfloat16 (metrics in float64) and agrees with float32;
float16 overflow stops the run with an error naming the dtype and the fix."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from hf_metaopt.analysis import AnalysisOptions, PromptFormat, run_analysis
from hf_metaopt.analysis.capture import NonFiniteError
from hf_metaopt.analysis.finetune import finetune_model, finetuned
from hf_metaopt.analysis.inference import predict
from hf_metaopt.analysis.prompts import PromptEncoder
from hf_metaopt.analysis.routes import RouteRunner

PROMPT = PromptFormat("Review: {text} Sentiment:", (" Negative", " Positive"), "\n")
DEMOS = [
    {"text": "a gripping film", "label": 1},
    {"text": "dull and overlong", "label": 0},
    {"text": "the cast is great", "label": 1},
    {"text": "a tedious mess", "label": 0},
]
QUERIES = [{"text": t, "label": y} for t, y in [
    ("beautifully acted", 1), ("badly written", 0), ("clever plot", 1), ("nothing to say", 0),
    ("I loved every minute", 1), ("a gripping mess", 0), ("great cast", 1), ("dull film", 0),
]]
OPTIONS = AnalysisOptions(learning_rate=0.5, batch_size=4, n_bootstrap=20, seed=0)
# bfloat16 keeps 8 significant bits (rounding 2^-9 relative). On this model it moves a cosine of two
# route updates (each >= a few % of its operands) by <= 0.02 and a token-level tau by <= 0.01, so 0.05
# leaves a margin of 2.5; an example-level tau over 4 demonstrations (6 pairs, 8 queries) moves in steps
# of 1/24 per flipped pair, and 0.1 allows two flips.
COSINE_TOL = 0.05
TAU_TOL = 0.05
EXAMPLE_TAU_TOL = 0.1
MIN_MARGIN = 0.3  # float32 log-prob margins; bfloat16 moves them by <= 0.05 (ZSL, ICL) and <= 0.25 (FT) here


def gpt2():
    """Seed 2: every route's float32 margin is at least MIN_MARGIN on every query."""
    torch.manual_seed(2)
    cfg = GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=400, n_positions=256, initializer_range=0.2,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(cfg).eval()


def margins(model, tokenizer) -> dict[str, np.ndarray]:
    """Per route, log p(Positive) - log p(Negative) of every query."""
    encoder = PromptEncoder(tokenizer, PROMPT, OPTIONS.start_token)
    queries = [encoder.query_ids(q) for q in QUERIES]
    prefix, _ = encoder.fit_prefix(DEMOS, QUERIES, 256)
    tuned = finetune_model(model, [encoder.training_ids(d) for d in DEMOS], OPTIONS)
    out = {}
    for name, net, context in (("zsl", model, encoder.start_ids), ("icl", model, prefix.ids), ("ft", tuned, encoder.start_ids)):
        logprobs = RouteRunner(net, encoder.label_ids, "prediction", 0, capture=False).run(queries, context).logprobs
        out[name] = logprobs[:, 1] - logprobs[:, 0]
    return out


def test_bfloat16_analysis_agrees_with_float32(tiny_tokenizer):
    model = gpt2()
    assert min(float(np.abs(m).min()) for m in margins(model, tiny_tokenizer).values()) >= MIN_MARGIN
    half = copy.deepcopy(model).to(torch.bfloat16)
    dtypes = set()
    half.transformer.h[1].attn.register_forward_hook(lambda module, args, output: dtypes.add(output[0].dtype))
    full = run_analysis(model, tiny_tokenizer, DEMOS, QUERIES, PROMPT, OPTIONS).report.to_dict()
    # Without the stability check, whose rerun trains a copy (this hook included) in float64 by design.
    unchecked = AnalysisOptions.from_kwargs(OPTIONS, stability_check=False)
    low = run_analysis(half, tiny_tokenizer, DEMOS, QUERIES, PROMPT, unchecked).report.to_dict()
    assert dtypes == {torch.bfloat16}  # every pass (finetuning steps and routes) ran in bfloat16
    assert low["config"]["dtype"] == "bfloat16" and full["config"]["dtype"] == "float32"
    assert low["predictions"] == full["predictions"] and low["accuracy"] == full["accuracy"]
    checks = [("simaou", "per_layer", COSINE_TOL), ("simaou", "unnormalized_per_layer", COSINE_TOL),
              ("simam", "per_layer_before", COSINE_TOL), ("simam", "per_layer_after", COSINE_TOL),
              ("simam", "per_layer_delta", COSINE_TOL), ("kendall", "per_layer", TAU_TOL)]
    for group, key, tol in checks:
        np.testing.assert_allclose(low[group][key], full[group][key], rtol=0, atol=tol, err_msg=f"{group}.{key}")
    np.testing.assert_allclose(low["kendall"]["example_level"]["per_layer"], full["kendall"]["example_level"]["per_layer"],
                               rtol=0, atol=EXAMPLE_TAU_TOL)


def test_bfloat16_finetunes_and_records_in_its_own_dtype(tiny_tokenizer):
    model = gpt2().to(torch.bfloat16)
    encoder = PromptEncoder(tiny_tokenizer, PROMPT, OPTIONS.start_token)
    with finetuned(model, [encoder.training_ids(d) for d in DEMOS], OPTIONS) as tuned:
        assert {p.dtype for p in tuned.model.parameters()} == {torch.bfloat16}
        c_attn = tuned.model.transformer.h[0].attn.c_attn.weight
        assert not torch.equal(c_attn, model.transformer.h[0].attn.c_attn.weight)  # the SGD steps moved K/V
        out = RouteRunner(tuned.model, encoder.label_ids, "prediction", 0).run([encoder.query_ids(QUERIES[0])], encoder.start_ids)
    assert {a.dtype for a in (out.logprobs, out.output, out.query, *out.own)} == {np.dtype(np.float64)}
    llama = overflowing_llama().to(torch.bfloat16)  # LoRA adapters too stay in the model's dtype
    with finetuned(llama, [encoder.training_ids(d) for d in DEMOS], AnalysisOptions(method="lora")) as tuned:
        adapters = {n: p.dtype for n, p in llama.named_parameters() if "lora_" in n}
        assert adapters and set(adapters.values()) == {torch.bfloat16}


def overflowing_llama() -> LlamaForCausalLM:
    """A tiny Llama whose first MLP's activations reach ~1e5: past float16's 65504, not bfloat16's range."""
    torch.manual_seed(0)
    cfg = LlamaConfig(num_hidden_layers=2, hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
                      intermediate_size=128, vocab_size=400, max_position_embeddings=256, bos_token_id=0, eos_token_id=0)
    model = LlamaForCausalLM(cfg).eval()
    mlp = model.model.layers[0].mlp
    with torch.no_grad():
        for proj in (mlp.gate_proj, mlp.up_proj, mlp.down_proj):
            proj.weight.mul_(300)
    return model


FIX = r"in float16: load the model in bfloat16 or float32 \(--dtype bfloat16\)"


def test_float16_overflow_stops_where_it_is_first_seen(tiny_tokenizer):
    model = overflowing_llama()
    half = copy.deepcopy(model).to(torch.float16)
    assert all(torch.isfinite(p).all() for p in half.parameters())  # the weights fit float16; activations do not
    with pytest.raises(NonFiniteError, match="non-finite attention queries " + FIX):  # the first finetuning step
        run_analysis(half, tiny_tokenizer, DEMOS, QUERIES, PROMPT, OPTIONS)
    encoder = PromptEncoder(tiny_tokenizer, PROMPT, OPTIONS.start_token)
    runner = RouteRunner(half, encoder.label_ids, "prediction", 0)
    with pytest.raises(NonFiniteError, match="non-finite attention scores " + FIX):  # a route with capture
        runner.run([encoder.query_ids(QUERIES[0])], encoder.start_ids)
    with pytest.raises(NonFiniteError, match="non-finite logits " + FIX):  # predictions only: no capture
        predict(half, tiny_tokenizer, QUERIES, PROMPT, OPTIONS)
    for dtype in (torch.bfloat16, torch.float32):  # the same weights in a wider range run through
        predictions, _ = predict(copy.deepcopy(model).to(dtype), tiny_tokenizer, QUERIES, PROMPT, OPTIONS)
        assert len(predictions) == len(QUERIES)
