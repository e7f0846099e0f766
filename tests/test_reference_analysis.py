"""The engine against an independent reference (tests/reference_analysis.py), and the reference on its own.

The reference is written from the definitions in docs/analysis.md only: full prompts one
query at a time, eager attention with the model's own mask, a hand-written SGD loop.
Six tiny random architectures cover fused QKV + learned positions (GPT-2), GQA (Llama),
sliding windows with mixed layer types (Gemma 3, Qwen2), attention-logit soft-capping
with a window (Gemma 2) and an all-sliding model (Mistral); every ICL prompt is longer
than the window, so demonstration tokens fall out of the sliding layers' view, and the
last query is itself longer than the window, so it loses its own first tokens too.

The full matrix runs the models in **float64**, so that engine and reference agree to
~1e-15 whatever the CPU's kernels (AVX2, AVX-512, thread count): float32 forwards differ
between implementations (eager vs SDPA, full prompt vs prefix cache, Trainer vs a plain
loop) and between CPUs by ~1e-6 relative, enough to flip a near tie of a rank statistic.
A float32 subset checks the dtype users run, with rank tolerances derived from near ties.

Tolerances (engine vs reference, per layer). A cosine of two update vectors (h_ICL - h_ZSL,
...) moves by about (forward noise) / (relative size of the update); every compared update
is checked to be at least 1e-2 of its operands, so ``COS_TOL = 1e-4`` leaves a margin of 10
or more even in float32. Kendall's tau and top-k recall are rank statistics: float noise
changes them only through a near tie. The reference counts, per (query, layer), the pairs
whose gap is within ``NOISE[dtype]`` of the largest magnitude on either side (each could flip,
moving tau-b by 4 / (n (n - 1))) and the items within it of the k-th value (each could move
the overlap by 1 / k); the per-layer tolerance is the mean of those bounds over queries (0
when nothing is near a tie, so any flip fails). ``NOISE``: 1e-6 in float64 (Gemma 2's eager
attention takes its softmax in float32 even for a float64 model, ~3e-8 relative), 1e-4 in
float32 (the finetuned weights agree to ~1e-5 of a step). A misaligned demonstration token
breaks far more pairs than that: :func:`test_comparison_catches_a_shifted_demonstration_token`.
An update below 1e-4 of its operands is rounding noise around an exact zero (whose cosine is 0
by definition; both implementations return noise there). Theory puts exact zeros at layer 0
of a rotary model only, where ICL sees the query's own tokens exactly as ZSL does: m_ICL =
m_ZSL for SimAM_delta always, and h_ICL = h_ZSL for SimAOU when no demonstration token is in
the layer's window (the long query in a sliding first layer). Such per-layer means are not
compared, and :func:`comparable_layers` asserts that no other entry is excluded.
"""

from __future__ import annotations

import copy
import os

import numpy as np
import pytest
import torch
from transformers import (
    Gemma2Config,
    Gemma2ForCausalLM,
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    MistralConfig,
    MistralForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
    pipeline,
)

import hf_metaopt  # noqa: F401  (registers the icl-analysis pipeline)
import reference_analysis as ref
from toy_reviews import TEMPLATE, WORDS
LONG_WORDS = [" Negative", " Pos itive"]  # 1 and 4 tokens: the prediction averages over the word's tokens
DEMOS = [
    {"text": "a gripping film", "label": 1},
    {"text": "dull and overlong", "label": 0},
    {"text": "the cast is great", "label": 1},
    {"text": "a tedious mess", "label": 0},
    {"text": "beautifully acted", "label": 1},
]
QUERIES = [
    {"text": "badly written", "label": 0},
    {"text": "clever plot", "label": 1},
    {"text": "nothing to say", "label": 0},
    {"text": "I loved every minute", "label": 1},
    {"text": "I loved every minute of this movie, the cast is great and the plot is clever", "label": 1},  # > W tokens
]
LR = 0.5
COS_TOL = 1e-4
NOISE = {torch.float64: 1e-6, torch.float32: 1e-4}
# Label-distribution shifts (means of KL and TV over queries): a label-word score that differs by e
# moves KL and TV by about e. Measured engine - reference: ~1e-16 in float64 except Gemma 2 (its
# float32 softmax, see NOISE: 8e-8), up to 1.2e-6 in float32 (Mistral): margins of 10 or more.
SHIFT_TOL = {"float64": 1e-6, "float32": 1e-5}
TOP_K = (20, 2)  # small enough that the top-k recall is not trivially 1 for these short prompts
FT_TOL = 1e-4  # finetuned weights: relative to the largest reference step (see the finetune test)
WELL_CONDITIONED = 1e-2  # smallest relative update a compared cosine may rest on
ROUNDING = 1e-4  # below this relative size an update is float32 rounding noise
WINDOW = 32
SMALL = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
             max_position_embeddings=256, initializer_range=0.2, bos_token_id=0, eos_token_id=0, pad_token_id=0)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models on two shared cores: one intra-op thread is several times faster
    (``REFERENCE_TEST_THREADS`` sets another count; the kernel-variation test uses it)."""
    before = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("REFERENCE_TEST_THREADS", "1")))
    yield
    torch.set_num_threads(before)


def gpt2(vocab):
    cfg = GPT2Config(n_layer=2, n_embd=32, n_head=4, n_positions=256, vocab_size=vocab, initializer_range=0.2,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(cfg)


def llama(vocab):
    return LlamaForCausalLM(LlamaConfig(vocab_size=vocab, **SMALL))


def gemma3(vocab):
    cfg = Gemma3TextConfig(vocab_size=vocab, head_dim=8, query_pre_attn_scalar=8, sliding_window=WINDOW,
                           layer_types=["sliding_attention", "full_attention"], **SMALL)
    return Gemma3ForCausalLM(cfg)


def gemma2(vocab):
    cfg = Gemma2Config(vocab_size=vocab, head_dim=8, query_pre_attn_scalar=8, sliding_window=WINDOW,
                       attn_logit_softcapping=1.0, layer_types=["sliding_attention", "full_attention"], **SMALL)
    return Gemma2ForCausalLM(cfg)


def mistral(vocab):
    return MistralForCausalLM(MistralConfig(vocab_size=vocab, sliding_window=WINDOW, **SMALL))


def qwen2(vocab):
    cfg = Qwen2Config(vocab_size=vocab, use_sliding_window=True, sliding_window=WINDOW, max_window_layers=1, **SMALL)
    return Qwen2ForCausalLM(cfg)


ARCHS = {"gpt2": gpt2, "llama": llama, "gemma3": gemma3, "gemma2": gemma2, "mistral": mistral, "qwen2": qwen2}
ROTARY = {"llama", "gemma3", "gemma2", "mistral", "qwen2"}
MULTI_TOKEN_WORDS = {"llama"}
SLIDING = {"gemma3": [True, False], "gemma2": [True, False], "mistral": [True, True], "qwen2": [False, True]}
_MODELS: dict = {}
_REFERENCES: dict = {}


def build(arch, tokenizer, dtype=torch.float64):
    """The tiny random model of ``arch`` (seed 0, eval mode) in ``dtype``, built once per session."""
    if (arch, dtype) not in _MODELS:
        torch.manual_seed(0)
        _MODELS[arch, dtype] = ARCHS[arch](len(tokenizer)).eval().to(dtype)
    return _MODELS[arch, dtype]


def words(arch):
    """The label words of ``arch``'s analyses: multi-token words for the archs in MULTI_TOKEN_WORDS."""
    return LONG_WORDS if arch in MULTI_TOKEN_WORDS else WORDS


def start_id(tokenizer, start_token):
    """``start_token`` ("auto" or None) as the reference's ``start_token_id``: "auto" = BOS, else EOS."""
    if start_token is None:
        return None
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id


def reference(arch, tokenizer, position, start_token, dtype=torch.float64, shift=0):
    """The reference analysis of one setting, computed once (it does not depend on the engine's route)."""
    key = (arch, position, start_token, dtype, shift)
    if key not in _REFERENCES:
        _REFERENCES[key] = ref.reference_analysis(
            build(arch, tokenizer, dtype), tokenizer, DEMOS, QUERIES, template=TEMPLATE, label_words=words(arch),
            learning_rate=LR, position=position, start_token_id=start_id(tokenizer, start_token), top_k=TOP_K,
            noise=NOISE[dtype], shift_demonstrations=shift,
        )
    return _REFERENCES[key]


def engine(arch, tokenizer, position, start_token, fast, dtype=torch.float64) -> dict:
    """The engine's report (through the pipeline) for the setting, as a dict."""
    analyzer = pipeline("icl-analysis", model=build(arch, tokenizer, dtype), tokenizer=tokenizer)
    return analyzer(DEMOS, QUERIES, template=TEMPLATE, label_words=words(arch), learning_rate=LR, seed=0, method="kv",
                    position=position, fast=fast, start_token=start_token, n_bootstrap=10, top_k_tokens=TOP_K[0],
                    top_k_examples=TOP_K[1]).to_dict()


# --------------------------------------------------------------------------- engine vs reference
PER_LAYER = [
    ("simaou", "per_layer", "simaou", COS_TOL),
    ("simaou", "unnormalized_per_layer", "simaou", COS_TOL),
    ("simam", "per_layer_before", None, COS_TOL),
    ("simam", "per_layer_after", None, COS_TOL),
    ("simam", "per_layer_delta", "simam", COS_TOL),
]
# (where in the engine's report, where in the reference's, the reference's tolerance key)
RANKS = [
    (("kendall",), ("kendall",), "kendall"),
    (("kendall", "example_level"), ("kendall", "example_level"), "kendall_example"),
    (("topk_recall", "token_level"), ("topk_recall", "token_level"), "recall"),
    (("topk_recall", "example_level"), ("topk_recall", "example_level"), "recall_example"),
]


def comparable_layers(arch, rows, kind) -> list[bool]:
    """Per layer, whether the per-layer mean of a cosine family ``kind`` ("simaou" or "simam"
    for SimAM_delta) is well conditioned for every query.

    A layer is not comparable when some query's update vector is below ``WELL_CONDITIONED``
    of its operands; the test then asserts that this update is rounding noise around an
    exact zero that theory predicts: layer 0 of a rotary model, where ICL sees the query's
    own tokens as ZSL does (m_ICL = m_ZSL always; h_ICL = h_ZSL when no demonstration token
    is in the layer's window).
    """
    comparable = []
    for layer in range(len(rows[0])):
        noisy = [row[layer] for row in rows if row[layer][f"{kind}_shift"] < WELL_CONDITIONED]
        for r in noisy:
            assert r[f"{kind}_shift"] < ROUNDING, f"{arch} {kind} layer {layer}: neither zero nor well conditioned"
            exact_zero = kind == "simam" or r["n_visible_demo_tokens"] == 0
            assert layer == 0 and arch in ROTARY and exact_zero, f"{arch} {kind} layer {layer}: unexpected zero update"
        comparable.append(not noisy)
    return comparable


def compare(arch, report: dict, expected: dict) -> list[str]:
    """Every disagreement between an engine report and the reference, as readable lines."""
    problems = []
    for key in ("predictions", "labels"):
        if report[key] != expected[key]:
            problems.append(f"{key}: engine {report[key]} != reference {expected[key]}")
    if (report["rec2ftp"] is None) != (expected["rec2ftp"] is None) or (
        expected["rec2ftp"] is not None and abs(report["rec2ftp"] - expected["rec2ftp"]) > 1e-12
    ):
        problems.append(f"rec2ftp: engine {report['rec2ftp']} != reference {expected['rec2ftp']}")
    if report["config"]["n_demonstrations"] != len(DEMOS):
        problems.append(f"config.n_demonstrations: {report['config']['n_demonstrations']} != {len(DEMOS)}")
    for key in ("rec2ftp_counts", "change_recall_counts"):
        if report.get(key) != expected[key]:
            problems.append(f"{key}: engine {report.get(key)} != reference {expected[key]}")
    got, want = report.get("change_recall", "missing"), expected["change_recall"]
    if got == "missing" or (got is None) != (want is None) or (want is not None and abs(got - want) > 1e-12):
        problems.append(f"change_recall: engine {got} != reference {want}")
    if [report["topk_recall"][level]["k"] for level in ("token_level", "example_level")] != list(TOP_K):
        problems.append(f"topk_recall k: engine {report['topk_recall']} != {TOP_K}")
    tol = SHIFT_TOL[report["config"]["dtype"]]
    for key, value in expected["label_shift"].items():
        got = ((report.get("label_shift") or {}).get(key) or {}).get("mean")
        if got is None or abs(got - value["mean"]) > tol:
            problems.append(f"label_shift.{key}.mean: engine {got} != reference {value['mean']:.10g} (tol {tol:g})")
    for group, key, kind, tol in PER_LAYER:
        comparable = comparable_layers(arch, expected["rows"], kind) if kind else [True] * len(report[group][key])
        for layer, (got, want) in enumerate(zip(report[group][key], expected[group][key], strict=True)):
            if comparable[layer] and abs(got - want) > tol:
                problems.append(f"{group}.{key}[{layer}]: engine {got:.8f} != reference {want:.8f} (tol {tol:g})")
    return problems


def dig(report: dict, path: tuple):
    for key in path:
        report = (report or {}).get(key)
    return report


def compare_ranks(report: dict, expected: dict) -> list[str]:
    """Disagreements on Kendall and top-k recall per layer, beyond what near ties allow."""
    problems = []
    for got_path, want_path, tol_key in RANKS:
        got = dig(report, got_path + ("per_layer",))
        want = dig(expected, want_path + ("per_layer",))
        name = ".".join(got_path)
        if got is None:
            problems.append(f"{name}.per_layer: missing from the engine's report")
            continue
        for layer, (g, w, tol) in enumerate(zip(got, want, expected["tolerance"][tol_key], strict=True)):
            if abs(g - w) > tol + 1e-12:
                problems.append(f"{name}.per_layer[{layer}]: engine {g:.8f} != reference {w:.8f} (tol {tol:.2g})")
    return problems


@pytest.mark.parametrize("start_token", [None, "auto"])
@pytest.mark.parametrize("position", ["prediction", "label"])
@pytest.mark.parametrize("fast", [True, False], ids=["fast", "per_query"])
@pytest.mark.parametrize("arch", list(ARCHS))
def test_engine_matches_reference(tiny_tokenizer, arch, fast, position, start_token):
    """Float64: predictions exactly, every per-layer metric within its tolerance, Kendall and top-k recall at both levels."""
    expected = reference(arch, tiny_tokenizer, position, start_token)
    report = engine(arch, tiny_tokenizer, position, start_token, fast)
    problems = compare(arch, report, expected) + compare_ranks(report, expected)
    if report["accuracy"] != expected["accuracy"]:
        problems.append(f"accuracy: engine {report['accuracy']} != reference {expected['accuracy']}")
    assert not problems, "\n".join(problems)
    assert report["config"]["dtype"] == "float64"


@pytest.mark.parametrize("arch", list(ARCHS))
def test_engine_matches_reference_in_float32(tiny_tokenizer, arch):
    """The dtype users run: the same comparison in float32, rank metrics within their near-tie tolerance."""
    expected = reference(arch, tiny_tokenizer, "prediction", "auto", torch.float32)
    report = engine(arch, tiny_tokenizer, "prediction", "auto", True, torch.float32)
    problems = compare(arch, report, expected) + compare_ranks(report, expected)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("arch", ["gpt2", "gemma3"])
def test_comparison_catches_a_shifted_demonstration_token(tiny_tokenizer, arch, dtype):
    """The rank tolerances keep their teeth: a reference reading every demonstration token one
    position late (ICL scores of token t+1 paired with FT scores of token t) disagrees with the
    engine beyond them, in float64 and in float32."""
    expected = reference(arch, tiny_tokenizer, "prediction", "auto", dtype, shift=1)
    report = engine(arch, tiny_tokenizer, "prediction", "auto", True, dtype)
    problems = compare_ranks(report, expected)
    assert any(p.startswith("kendall.per_layer") for p in problems), problems
    assert any(p.startswith("kendall.example_level") for p in problems), problems


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_comparison_catches_a_label_shift_in_the_wrong_direction(tiny_tokenizer, arch):
    """KL is not symmetric: a reference taking KL(p_FT || p_ICL) for kl_icl_ft, or the distributions of
    the wrong route, disagrees with the engine beyond the tolerance (and the others still agree)."""
    expected = reference(arch, tiny_tokenizer, "prediction", "auto")
    report = engine(arch, tiny_tokenizer, "prediction", "auto", True)
    assert not [p for p in compare(arch, report, expected) if p.startswith("label_shift")]
    dist = [{route: ref.label_distribution(s) for route, s in row.items()} for row in expected["label_scores"]]
    flipped = float(np.mean([ref.kl(p["ft"], p["icl"]) for p in dist]))
    wrong_route = float(np.mean([ref.tv(p["icl"], p["zsl"]) for p in dist]))
    swapped = {**expected, "label_shift": {**expected["label_shift"], "kl_icl_ft": {"mean": flipped},
                                           "tv_icl_ft": {"mean": wrong_route}}}
    problems = [p for p in compare(arch, report, swapped) if p.startswith("label_shift")]
    assert [p.split(":")[0] for p in problems] == ["label_shift.kl_icl_ft.mean", "label_shift.tv_icl_ft.mean"], problems


@pytest.mark.parametrize("start_token", [None, "auto"])
@pytest.mark.parametrize("arch", ["gpt2", "llama", "qwen2"])
def test_engine_finetune_matches_reference_sgd(tiny_tokenizer, arch, start_token):
    """``analyzer.finetune`` gives the weights of the plain SGD loop (fused QKV, GQA, K/V biases).

    In float32 (the dtype users train in): gradients agree to ~1e-6 relative between
    implementations; over five steps the weights differ by ~1e-5 of the largest step, so
    FT_TOL = 1e-4 of it has a margin of 10 and still flags any step that is 1e-3 off in scale.
    """
    model = build(arch, tiny_tokenizer, torch.float32)
    start = start_id(tiny_tokenizer, start_token)
    prompts = ref.build_prompts(tiny_tokenizer, TEMPLATE, words(arch), "\n", DEMOS, QUERIES, start)
    expected, _ = ref.finetune_kv(model, prompts.train, LR)
    analyzer = pipeline("icl-analysis", model=model, tokenizer=tiny_tokenizer)
    tuned = analyzer.finetune(DEMOS, template=TEMPLATE, label_words=words(arch), learning_rate=LR, method="kv",
                              start_token=start_token)
    base, want, got = model.state_dict(), expected.state_dict(), tuned.state_dict()
    largest_step = max(float((want[name] - base[name]).abs().max()) for name in base)
    for name in base:
        step_ref, step_engine = want[name] - base[name], got[name] - base[name]
        ratio = float(step_ref.norm() / step_engine.norm()) if step_engine.norm() > 0 else float("nan")
        error = float((got[name] - want[name]).abs().max())
        assert error <= FT_TOL * largest_step, (
            f"{name}: |engine - reference| = {error:.2e} (tol {FT_TOL * largest_step:.1e}); "
            f"reference step / engine step = {ratio:.6f}"
        )


# --------------------------------------------------------------------------- the reference on its own
def window_of(model):
    return model.config.sliding_window


@pytest.mark.parametrize("arch", list(ARCHS))
def test_reference_attention_reproduces_eager_attention(tiny_tokenizer, arch):
    """Softmax of the recorded (capped) scores plus the recorded mask = the model's own eager
    attention weights; the logits are unchanged; sliding layers see exactly the last W keys."""
    model = build(arch, tiny_tokenizer)
    prompts = ref.build_prompts(tiny_tokenizer, TEMPLATE, WORDS, "\n", DEMOS, QUERIES, 0)
    ids = torch.tensor([prompts.icl(0)])
    eager = copy.deepcopy(model)
    eager.set_attn_implementation("eager")
    with torch.no_grad():
        expected = eager(input_ids=ids, output_attentions=True)
        twin = ref.reference_copy(model)
        with ref.Recorder(twin) as rec:
            logits = twin(input_ids=ids).logits
    torch.testing.assert_close(logits, expected.logits, rtol=0, atol=1e-5)
    n = ids.shape[1]
    for layer, (record, weights) in enumerate(zip(rec.layers, expected.attentions, strict=True)):
        torch.testing.assert_close(torch.softmax(record["scores"] + record["mask"], -1), weights[0], rtol=0, atol=1e-6)
        visible = int((record["mask"][-1] == 0).sum())
        sliding = SLIDING.get(arch, [False, False])[layer]
        assert visible == (window_of(model) if sliding else n), (layer, visible)
        if sliding:
            assert n > window_of(model)
    if arch == "gemma2":  # the cap is in its non-linear range, so a missing tanh would break the weights above
        capped = torch.stack([r["scores"].abs().max() for r in rec.layers])
        assert 0.5 < capped.max() < model.config.attn_logit_softcapping


@pytest.mark.parametrize("arch", ["gpt2", "llama", "qwen2"])
def test_reference_sgd_moves_only_key_and_value_projections(tiny_tokenizer, arch):
    """Only K/V weights and biases change (GPT-2: only the K and V columns of c_attn), in every layer."""
    model = build(arch, tiny_tokenizer)
    prompts = ref.build_prompts(tiny_tokenizer, TEMPLATE, WORDS, "\n", DEMOS, QUERIES, None)
    tuned, step_queries = ref.finetune_kv(model, prompts.train, LR)
    base, new = model.state_dict(), tuned.state_dict()
    moved = {name for name in base if not torch.equal(base[name], new[name])}
    n_layers = model.config.num_hidden_layers
    if arch == "gpt2":
        assert moved == {f"transformer.h.{i}.attn.c_attn.{p}" for i in range(n_layers) for p in ("weight", "bias")}
        for name in moved:
            step = new[name] - base[name]
            embed = step.shape[-1] // 3
            assert step[..., :embed].abs().max() == 0 and step[..., embed:2 * embed].abs().min(dim=-1).values.max() > 0
            assert step[..., 2 * embed:].abs().max() > 0
    else:
        params = ("weight", "bias") if arch == "qwen2" else ("weight",)
        assert moved == {f"model.layers.{i}.self_attn.{proj}.{p}"
                         for i in range(n_layers) for proj in ("k_proj", "v_proj") for p in params}
    assert [q[0].shape[1] for q in step_queries] == [len(t) for t in prompts.train]


@pytest.mark.parametrize("start_token", [None, "auto"])
def test_reference_prompts_follow_the_protocol(tiny_tokenizer, start_token):
    """ICL = [start] + d_1 + sep + ... + d_k + sep + query from per-segment ids; demonstration
    positions hold the FT examples' tokens; "auto" is the tiny tokenizer's BOS."""

    def enc(text):
        return tiny_tokenizer(text, add_special_tokens=False)["input_ids"]

    start = start_id(tiny_tokenizer, start_token)
    prompts = ref.build_prompts(tiny_tokenizer, TEMPLATE, WORDS, "\n", DEMOS, QUERIES, start)
    ref.check_alignment(prompts)
    head = [] if start is None else [tiny_tokenizer.bos_token_id]
    segments = [enc(TEMPLATE.format(**d) + WORDS[d["label"]]) + enc("\n") for d in DEMOS]
    assert prompts.icl(1) == head + sum(segments, []) + enc(TEMPLATE.format(**QUERIES[1]))
    assert prompts.zsl(1) == head + enc(TEMPLATE.format(**QUERIES[1]))
    assert prompts.train == [head + enc(TEMPLATE.format(**d) + WORDS[d["label"]]) for d in DEMOS]
    # The tokenizer adds no BOS by itself: a start token exists only where the protocol puts it.
    assert tiny_tokenizer("Review:")["input_ids"] == enc("Review:")


def test_reference_metrics_on_hand_computed_values():
    """The metric functions on inputs whose answers are worked out by hand."""
    assert ref.cosine([0.0, 0.0], [1.0, 2.0]) == 0.0 and ref.cosine([1.0, 0.0], [1.0, 1.0]) == pytest.approx(2 ** -0.5)
    assert ref.tau([1.0], [2.0]) == 0.0 and ref.tau([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]) == 0.0  # NaN -> 0
    assert ref.tau([1.0, 2.0, 3.0], [3.0, 1.0, 2.0]) == pytest.approx(-1 / 3)
    h_zsl, h_icl, h_ft = np.array([1.0, 0.0]), np.array([0.0, 2.0]), np.array([0.0, 1.0])
    assert ref.simaou(h_icl, h_zsl, h_ft) == pytest.approx(1.0)  # both updates point to (-1, 1) after normalising
    assert ref.simaou(h_icl, h_zsl, h_ft, normalize=False) == pytest.approx(3 / np.sqrt(10))  # (-1, 2) vs (-1, 1)
    m_zsl = np.array([[1.0, 0.0], [0.0, 1.0]])
    m_icl, m_ft = np.array([[1.0, 1.0], [0.0, 1.0]]), np.array([[2.0, 0.0], [0.0, 1.0]])
    before, after, delta = ref.simam(m_icl, m_zsl, m_ft)
    assert (before, after, delta) == pytest.approx((0.5 * (2 ** -0.5 + 1), 0.5 * (2 ** -0.5 + 1), 0.0))
    e = np.e
    icl_mass, ft_mass = ref.example_level([1.0, 2.0, 4.0], [0.0, 0.0, np.log(2.0)], [0, 0, 2])
    z = e + e**2 + e**4
    assert icl_mass == pytest.approx([(e + e**2) / z, e**4 / z]) and ft_mass == pytest.approx([0.5, 0.5])
    # Raw sums would rank demonstration 0 (two tokens) first on the FT side; the mass ties them.
    assert ref.topk_recall([3.0, 1.0, 2.0, 0.0], [0.0, 1.0, 2.0, 3.0], 2) == 0.5  # {0, 2} vs {3, 2}
    assert ref.topk_recall([1.0, 2.0], [2.0, 1.0], 5) == 1.0 and ref.topk_recall([], [], 3) == 0.0
    assert ref.fragile_pairs([1.0, 1.0 + 1e-9, 3.0], [1.0, 2.0, 3.0], 1e-6) == 1  # the first two, on the ICL side
    assert ref.rank_tolerances([1.0, 2.0, 3.0], [3.0, 2.0, 1.0], 1, 1e-6) == (0.0, 0.0)
    assert ref.fragile_tops([3.0, 2.0, 2.0 + 1e-9, 0.0], [4.0, 3.0, 2.0, 1.0], 2, 1e-6) == 1  # 2nd and 3rd could swap
    labels = [1, 1, 0, 0]
    assert ref.rec2ftp(zsl=[0, 0, 0, 0], icl=[1, 0, 0, 0], ft=[1, 1, 0, 0], labels=labels) == 0.5
    assert ref.rec2ftp(zsl=[1, 1, 0, 0], icl=[0, 0, 1, 1], ft=[1, 1, 0, 0], labels=labels) is None
    assert ref.rec2ftp_counts(zsl=[0, 0, 0, 0], icl=[1, 0, 0, 0], ft=[1, 1, 0, 0], labels=labels) == {"ft_fixed": 2, "both_fixed": 1}
    # ChangeRecall: query 0 changed by both to 1, 1 by ICL only, 2 by both to different labels, 3 by neither.
    value, counts = ref.change_recall(zsl=[0, 0, 0, 2], icl=[1, 1, 2, 2], ft=[1, 0, 1, 2])
    assert value == pytest.approx(1 / 3) and counts == {"changed": 3, "same_change": 1, "icl_changed": 3, "ft_changed": 2}
    assert ref.change_recall(zsl=[1, 0], icl=[1, 0], ft=[1, 0])[0] is None
    # Label shift: scores log(0.2), log(0.05) renormalise to (0.8, 0.2); against (0.5, 0.5) TV 0.3.
    p, q = ref.label_distribution([np.log(0.2), np.log(0.05)]), ref.label_distribution([0.0, 0.0])
    assert p == pytest.approx([0.8, 0.2]) and ref.tv(p, q) == pytest.approx(0.3)
    assert ref.kl(p, q) == pytest.approx(0.8 * np.log(1.6) + 0.2 * np.log(0.4)) and ref.kl(p, p) == 0.0
    shift = ref.label_shift({"zsl": [0.0, 0.0], "icl": [np.log(0.2), np.log(0.05)], "ft": [0.0, 0.0]})
    assert shift["kl_icl_ft"] == shift["kl_icl_zsl"] == pytest.approx(ref.kl(p, q)) and shift["kl_ft_zsl"] == 0.0


@pytest.mark.parametrize("arch", sorted(SLIDING))
def test_reference_windows_drop_demonstrations(tiny_tokenizer, arch):
    """Sliding layers score only the keys in the last W positions: the window cuts through the
    demonstrations, and the long query loses its own first tokens; full layers see everything."""
    model = build(arch, tiny_tokenizer)
    expected = reference(arch, tiny_tokenizer, "prediction", None)
    prompts, window = expected["prompts"], window_of(model)
    demo_positions = [p for positions in prompts.demo_positions for p in positions]
    assert min(len(prompts.icl(j)) for j in range(len(QUERIES))) > window
    for layer, sliding in enumerate(SLIDING[arch]):
        for j, row in enumerate(expected["rows"]):
            first = len(prompts.icl(j)) - window  # the prediction position sees keys first .. last
            demos = len([p for p in demo_positions if p >= first]) if sliding else len(demo_positions)
            own = min(len(prompts.queries[j]), window) if sliding else len(prompts.queries[j])
            assert (row[layer]["n_visible_demo_tokens"], row[layer]["n_visible_query_tokens"]) == (demos, own)
        if sliding:
            counts = [row[layer]["n_visible_demo_tokens"] for row in expected["rows"]]
            assert 0 < max(counts) < len(demo_positions) and min(counts) == 0  # the long query sees no demonstration
