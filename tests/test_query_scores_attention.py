"""The inspected queries' per-token scores: the model's own attention weights, windows, and what Kendall ranks."""

import numpy as np
import pytest
import torch
from scipy.stats import kendalltau
from transformers import AutoTokenizer, Gemma3ForCausalLM, Gemma3TextConfig, LlamaConfig, LlamaForCausalLM

from hf_metaopt.analysis import AnalysisOptions, PromptFormat, run_analysis
from hf_metaopt.analysis.capture import AttentionRecorder, RowSpec
from hf_metaopt.analysis.plan import plan_analysis
from toy_reviews import DEMOS, QUERIES, TEMPLATE, WORDS

PROMPT = PromptFormat(TEMPLATE, tuple(WORDS), "\n")
WINDOW = 16  # the 4 demonstrations hold 46 tokens: a sliding layer sees only the last of them
SMALL = dict(vocab_size=400, hidden_size=32, intermediate_size=64, num_attention_heads=4, num_key_value_heads=2,
             max_position_embeddings=512, bos_token_id=0, eos_token_id=0, pad_token_id=0)


def build(name):
    torch.manual_seed(0)
    if name == "gemma3":
        layers = ["sliding_attention", "full_attention", "sliding_attention"]
        model = Gemma3ForCausalLM(Gemma3TextConfig(**SMALL, head_dim=8, num_hidden_layers=3, sliding_window=WINDOW, layer_types=layers))
    else:
        model = LlamaForCausalLM(LlamaConfig(**SMALL, num_hidden_layers=2))  # grouped-query attention: 4 heads, 2 K/V heads
    model.set_attn_implementation("sdpa")
    return model.eval()


@pytest.fixture(scope="module", params=["llama_gqa", "gemma3"])
def inspected(request, tiny_tokenizer_dir):
    """A run through the prefix cache (sdpa) with the first 3 of 5 queries inspected, and its plan."""
    model, tokenizer = build(request.param), AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    options = AnalysisOptions(learning_rate=0.1, batch_size=2, n_bootstrap=5, n_inspect=3, stability_check=False)
    scores = run_analysis(model, tokenizer, DEMOS, QUERIES, PROMPT, options).scores
    return request.param, model, plan_analysis(tokenizer, DEMOS, QUERIES, PROMPT, options, max_length=None), scores


def test_icl_mass_is_the_models_attention_weight_at_each_demonstration_token(inspected):
    name, model, plan, scores = inspected
    demo = plan.prefix.demo_positions
    assert scores["inspect/query_index"].tolist() == [0, 1, 2] and scores.meta["heads"] == 4
    model.set_attn_implementation("eager")  # the reference: the model's own weights, full prompt, no cache
    try:
        for i, q in enumerate(scores["inspect/query_index"]):
            ids = plan.prefix.ids + plan.encoder.query_ids(plan.queries[q])
            others = [p for p in range(len(ids)) if p not in set(demo)]
            with torch.no_grad():
                attentions = model(input_ids=torch.tensor([ids]), output_attentions=True).attentions
            for layer, weights in enumerate(attentions):
                weights = weights[0, :, len(ids) - 1].double().numpy()  # [H, T]: the last prompt token's row
                heads, visible = scores["inspect/icl_mass_heads"][i, layer], scores["inspect/visible"][i, layer]
                assert np.allclose(heads, weights[:, demo], atol=1e-6)
                assert np.allclose(scores["inspect/icl_mass"][i, layer], weights[:, demo].sum(axis=0), atol=1e-5)
                assert heads.sum(dtype=np.float64) + weights[:, others].sum() == pytest.approx(4, abs=1e-4)
                assert np.array_equal(visible, (weights[:, demo] > 0).all(axis=0))
                assert (heads[:, ~visible] == 0).all() and (scores["inspect/icl_score"][i, layer][~visible] == 0).all()
    finally:
        model.set_attn_implementation("sdpa")
    visible = scores["inspect/visible"]
    if name == "gemma3":  # the sliding layers see only the window's last demonstration tokens, the full layer all
        assert (visible[:, [0, 2]].sum(axis=-1) < WINDOW).all() and visible[:, 1].all()
        assert scores.meta["windowed_layers"] == [0, 2] and scores.meta["sliding_window"] == WINDOW
        assert scores.meta["layer_types"] == ["sliding_attention", "full_attention", "sliding_attention"]
    else:
        assert visible.all() and scores.meta["windowed_layers"] == []
    assert np.array_equal(visible.sum(axis=-1), scores["visible/demo_tokens"][:3])


def _tau(a, b) -> float:
    tau = kendalltau(a, b).statistic if len(a) > 1 else np.nan
    return 0.0 if np.isnan(tau) else float(tau)  # docs/analysis.md: a constant ranking or < 2 items has tau 0


def _mass(scores: np.ndarray) -> np.ndarray:
    e = np.exp(scores - scores.max())
    return e / e.sum()


def test_stored_token_scores_are_what_kendall_ranks(inspected):
    """tau-b (scipy) over the visible tokens of the stored ICL and FT scores is the stored Kendall, at both levels."""
    _, _, _, scores = inspected
    owner = np.array(scores.meta["demo_owner"])
    for i, q in enumerate(scores["inspect/query_index"]):
        for layer in range(scores.meta["layers"]):
            visible = scores["inspect/visible"][i, layer]
            icl, ft = scores["inspect/icl_score"][i, layer][visible], scores["inspect/ft_score"][i, layer][visible]
            assert _tau(icl, ft) == pytest.approx(scores["metric/kendall_token"][q, layer], abs=1e-12)
            seen = np.unique(owner[visible])  # each demonstration's softmax mass over the visible tokens
            icl_ex = [_mass(icl)[owner[visible] == d].sum() for d in seen]
            ft_ex = [_mass(ft)[owner[visible] == d].sum() for d in seen]
            assert _tau(icl_ex, ft_ex) == pytest.approx(scores["metric/kendall_example"][q, layer], abs=1e-12)


def test_attention_mass_is_computed_only_for_rows_that_ask():
    model = build("llama_gqa")
    recorder = AttentionRecorder(model)
    rows = [RowSpec(position=9, own=(6, 10), demo=[1, 2, 3], inspect=True), RowSpec(position=9, own=(6, 10), demo=[1, 2, 3])]
    with recorder.recording(), recorder.reading(rows), torch.no_grad():
        model(input_ids=torch.arange(3, 13).repeat(2, 1))
    mass = recorder.pop()["demo_mass"]
    assert mass[1] is None and mass[0].shape == (2, 4, 3)
    with recorder.recording(), recorder.reading([RowSpec(position=9, own=(6, 10), demo=[1, 2, 3])]), torch.no_grad():
        model(input_ids=torch.arange(3, 13)[None])
    assert recorder.pop()["demo_mass"] == [None]
