"""Sliding windows, mixed layer types, soft-capping, GQA: both routes agree, windows are noted, the unknown is refused."""

import pytest
import torch
from transformers import (
    Gemma2Config,
    Gemma2ForCausalLM,
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from hf_metaopt.analysis import AnalysisOptions, PromptFormat, run_analysis
from hf_metaopt.analysis.capture import AttentionRecorder, RowSpec, UnsupportedArchitectureError

PROMPT = PromptFormat("Review: {text} Sentiment:", (" Negative", " Positive"))
DEMOS = [
    {"text": "a gripping film with a great cast and a clever plot", "label": 1},
    {"text": "dull and overlong, a tedious mess with nothing to say", "label": 0},
    {"text": "I loved every minute of this beautifully acted film", "label": 1},
    {"text": "badly written, and the plot is a tedious mess", "label": 0},
] * 2
QUERIES = [
    {"text": "beautifully acted", "label": 1},
    {"text": "badly written and boring, a mess with nothing to say about the film", "label": 0},
    {"text": "clever", "label": 1},
]
WINDOW = 24
SMALL = dict(vocab_size=400, hidden_size=32, intermediate_size=64, num_attention_heads=4, num_key_value_heads=2,
             max_position_embeddings=512, bos_token_id=0, eos_token_id=0, pad_token_id=0)


def gemma3():
    layers = ["sliding_attention", "full_attention", "sliding_attention"]
    return Gemma3ForCausalLM(Gemma3TextConfig(**SMALL, head_dim=8, num_hidden_layers=3, sliding_window=WINDOW, layer_types=layers))


def gemma2():
    cfg = Gemma2Config(**SMALL, head_dim=8, num_hidden_layers=2, sliding_window=WINDOW, attn_logit_softcapping=5.0,
                       layer_types=["sliding_attention", "full_attention"])
    return Gemma2ForCausalLM(cfg)


def mistral():
    return MistralForCausalLM(MistralConfig(**SMALL, num_hidden_layers=2, sliding_window=WINDOW))


def qwen2():
    cfg = Qwen2Config(**SMALL, num_hidden_layers=2, use_sliding_window=True, sliding_window=WINDOW, max_window_layers=1,
                      layer_types=["full_attention", "sliding_attention"])
    return Qwen2ForCausalLM(cfg)


def llama_gqa():
    return LlamaForCausalLM(LlamaConfig(**SMALL, num_hidden_layers=2))


BUILDERS = {"gemma3": gemma3, "gemma2": gemma2, "mistral": mistral, "qwen2": qwen2, "llama_gqa": llama_gqa}
WINDOWED = {"gemma3": [0, 2], "gemma2": [0], "mistral": [0, 1], "qwen2": [1], "llama_gqa": []}


def build(name, impl="sdpa"):
    torch.manual_seed(0)
    model = BUILDERS[name]()
    model.config.layer_types = getattr(model.config, "layer_types", None)
    model.set_attn_implementation("eager" if name == "gemma2" else impl)  # Gemma 2 soft-caps in eager only
    return model.eval()


def analyze(model, tokenizer, **options):
    options = AnalysisOptions.from_kwargs(**{"learning_rate": 0.1, "batch_size": 2, "n_bootstrap": 20, **options})
    return run_analysis(model, tokenizer, DEMOS, QUERIES, PROMPT, options).report.to_dict()


def close(a, b, tol=1e-6):
    if isinstance(a, dict):
        return all(close(a[k], b[k], tol) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(close(x, y, tol) for x, y in zip(a, b))
    if isinstance(a, float):
        return abs(a - b) <= tol
    return a == b


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_routes_agree_on_prompts_longer_than_the_window(tiny_tokenizer, name):
    model = build(name)
    fast, slow = analyze(model, tiny_tokenizer), analyze(model, tiny_tokenizer, fast=False)
    assert fast["predictions"] == slow["predictions"]
    for key in ("simaou", "simam", "kendall", "accuracy"):
        assert close(fast[key], slow[key]), key
    n_layers = model.config.num_hidden_layers
    assert len(fast["kendall"]["per_layer"]) == len(fast["kendall"]["example_level"]["per_layer"]) == n_layers
    window_notes = [n for n in fast["notes"] if "window" in n and "Kendall ranks the last" in n]
    if WINDOWED[name]:
        assert len(window_notes) >= 1, fast["notes"]
        layers = "layers " + ", ".join(map(str, WINDOWED[name])) if len(WINDOWED[name]) == 1 or name != "gemma3" else "layers 0, 2"
        assert any(n.startswith(layers) or n.startswith(f"layers {WINDOWED[name][0]}-") for n in window_notes), window_notes
    else:
        assert not window_notes


def test_sliding_layer_scores_only_keys_inside_its_window(tiny_tokenizer):
    """The recorded demonstration scores of a sliding layer cover exactly the last keys of its window."""
    model = build("gemma3")
    ids = torch.arange(3, 3 + 60).unsqueeze(0)
    recorder = AttentionRecorder(model)
    demo = list(range(1, 50))
    with recorder.recording(), recorder.reading([RowSpec(position=59, own=(55, 60), demo=demo)]), torch.no_grad():
        model(input_ids=ids)
    rec = recorder.pop()
    visible = rec["demo_visible"][0]  # [L, T_demo]
    assert visible[1].all()  # the full-attention layer sees every demonstration token
    for layer in (0, 2):  # position 59 attends to keys 36..59 in a 24-token window
        assert visible[layer].tolist() == [p > 59 - WINDOW for p in demo]
        assert (rec["demo"][0, layer][~visible[layer]] == 0).all()


def test_start_token_is_recorded_and_changes_the_prompt(tiny_tokenizer):
    model = build("llama_gqa")
    auto, none = analyze(model, tiny_tokenizer), analyze(model, tiny_tokenizer, start_token=None)
    assert auto["config"]["start_token"] == "auto" and auto["config"]["start_token_used"] == "<|endoftext|>"
    assert none["config"]["start_token"] is None and none["config"]["start_token_used"] is None
    assert auto["simam"]["per_layer_before"] != none["simam"]["per_layer_before"]


def test_an_attention_argument_that_changes_scores_is_refused(tiny_tokenizer):
    model = build("llama_gqa")
    attention = model.model.layers[0].self_attn
    original = type(attention).forward

    def biased(self, *args, **kwargs):
        return original(self, *args, **{**kwargs, "position_bias": torch.zeros(1)})

    type(attention).forward = biased
    try:
        with pytest.raises(UnsupportedArchitectureError, match="position_bias"):
            analyze(model, tiny_tokenizer)
    finally:
        type(attention).forward = original
