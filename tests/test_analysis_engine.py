"""The analysis engine: fast vs per-query routes, determinism, offloaded models, controls, bad input."""

import json
import tempfile

import pytest
import torch
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from hf_metaopt.analysis import AnalysisOptions, PromptFormat
from hf_metaopt.analysis import run_analysis as engine_run_analysis

from toy_reviews import DEMOS, QUERIES, TEMPLATE, WORDS
OPTS = dict(template=TEMPLATE, label_words=WORDS, learning_rate=0.1, batch_size=2, n_bootstrap=50)


def run_analysis(model, tokenizer, demonstrations, queries, *, template, label_words, separator="\n", **options):
    """The engine with the pipeline's keyword style: the report as a dict."""
    prompt = PromptFormat(template, tuple(label_words) if isinstance(label_words, list) else label_words, separator)
    return engine_run_analysis(model, tokenizer, demonstrations, queries, prompt, AnalysisOptions.from_kwargs(**options)).report.to_dict()


def gpt2(n_positions=256):
    torch.manual_seed(0)
    cfg = GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=400, n_positions=n_positions, bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(cfg).eval()


def llama(layers=2):
    torch.manual_seed(0)
    cfg = LlamaConfig(
        num_hidden_layers=layers, hidden_size=32, num_attention_heads=4, num_key_value_heads=2, intermediate_size=64,
        vocab_size=400, max_position_embeddings=256, bos_token_id=0, eos_token_id=0,
    )
    return LlamaForCausalLM(cfg).eval()


def assert_close(a, b, path=""):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            assert_close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_close(x, y, f"{path}[{i}]")
    elif isinstance(a, float):
        assert abs(a - b) <= 1e-4, (path, a, b)
    else:
        assert a == b, path


@pytest.mark.parametrize("build, position, words", [
    (gpt2, "prediction", WORDS),
    (llama, "label", [" Negative", " Pos itive"]),  # a multi-token label word takes the extra passes
])
def test_fast_route_matches_per_query_route(tiny_tokenizer, build, position, words):
    model = build()
    opts = {**OPTS, "label_words": words}
    fast = run_analysis(model, tiny_tokenizer, DEMOS, QUERIES, position=position, **opts)
    slow = run_analysis(model, tiny_tokenizer, DEMOS, QUERIES, position=position, fast=False, **opts)
    assert fast["predictions"] == slow["predictions"]
    assert fast.pop("config")["fast"] and not slow.pop("config")["fast"]
    assert_close(fast, slow)
    assert len(fast["simaou"]["per_layer"]) == 2 and -1 <= fast["kendall"]["mean"] <= 1


def test_same_seed_same_report_and_model_untouched(tiny_tokenizer):
    model = llama()
    before = {n: p.clone() for n, p in model.state_dict().items()}
    first = run_analysis(model, tiny_tokenizer, DEMOS, QUERIES, **OPTS)
    second = run_analysis(model, tiny_tokenizer, DEMOS, QUERIES, **OPTS)
    assert json.dumps(first) == json.dumps(second)
    assert all(torch.equal(before[n], p) for n, p in model.state_dict().items())
    assert first["config"]["n_demonstrations"] == 4 and first["controls"] == {}


def _dispatched(saved: str, placement: str, offload: str):
    """The saved model as accelerate's big-model inference places it: ``parts``, each layer a part of its own with
    accelerate's hooks moving the inputs (as on several GPUs; all on the CPU here); ``cpu+disk``, ``device_map="auto"``
    with a CPU slot too small for the model, the rest offloaded to the disk; ``disk``, no CPU slot at all."""
    from accelerate import dispatch_model

    if placement == "parts":
        model = AutoModelForCausalLM.from_pretrained(saved)
        parts = ["model.embed_tokens", "model.rotary_emb", "model.layers.0", "model.layers.1", "model.layers.2", "model.norm", "lm_head"]
        return dispatch_model(model, {name: "cpu" for name in parts}, force_hooks=True)
    cpu_bytes = {"cpu+disk": 150_000, "disk": 1_000}[placement]  # the model holds about 230 kB of float32 weights
    return AutoModelForCausalLM.from_pretrained(saved, device_map="auto", max_memory={"cpu": cpu_bytes}, offload_folder=offload)


@pytest.mark.parametrize("placement, devices", [("parts", {"cpu"}), ("cpu+disk", {"cpu", "disk"}), ("disk", {"disk"})])
def test_a_dispatched_model_gives_the_same_report(tiny_tokenizer, placement, devices):
    """device_map models: the K/V finetuning, the float64 rerun and the untrained control included."""
    options = {**OPTS, "control": "untrained"}
    with tempfile.TemporaryDirectory() as saved, tempfile.TemporaryDirectory() as offload:
        llama(layers=3).save_pretrained(saved)
        expected = run_analysis(AutoModelForCausalLM.from_pretrained(saved), tiny_tokenizer, DEMOS, QUERIES[:2], **options)
        spread = _dispatched(saved, placement, offload)
        assert set(spread.hf_device_map.values()) == devices
        weights = {n: t.clone() for n, t in spread.state_dict().items() if t.device.type != "meta"}
        got = run_analysis(spread, tiny_tokenizer, DEMOS, QUERIES[:2], **options)
        assert all(torch.equal(weights[n], t) for n, t in spread.state_dict().items() if n in weights)  # the model is unchanged
    assert got["finetuning"]["stability"]["checked"] and got["controls"]["untrained"]
    expected.pop("config"), got.pop("config")  # the model path differs
    assert_close(expected, got)


def test_kv_finetuning_of_an_offloaded_model_copies_only_k_and_v(tiny_tokenizer):
    """Offloaded layers keep their weights offloaded: the K/V copies are swapped into the model itself for training and
    the FT route, then the model's own projections are back."""
    from hf_metaopt.analysis.finetune import finetuned

    with tempfile.TemporaryDirectory() as saved, tempfile.TemporaryDirectory() as offload:
        llama(layers=3).save_pretrained(saved)
        spread = _dispatched(saved, "cpu+disk", offload)
        offloaded = {n for n, p in spread.named_parameters() if p.device.type == "meta"}
        assert any(".k_proj." in n for n in offloaded) and any(".mlp." in n for n in offloaded)
        projections = {name: module for name, module in spread.named_modules() if name.endswith(("k_proj", "v_proj"))}
        with finetuned(spread, [[0, 5, 6, 7, 8], [0, 9, 10, 11]], AnalysisOptions(learning_rate=0.1)) as tuned:
            assert tuned.model is spread
            with tuned.active():
                inside = dict(spread.named_parameters())
                assert {n for n in offloaded if inside[n].device.type != "meta"} == {n for n in offloaded if ".k_proj." in n or ".v_proj." in n}
                assert not any(inside[n].requires_grad for n in offloaded if ".k_proj." in n or ".v_proj." in n)  # trained, frozen
            assert {name: module for name, module in spread.named_modules() if name.endswith(("k_proj", "v_proj"))} == projections
            standalone = tuned.standalone()
        assert not any(p.device.type == "meta" for p in standalone.parameters())
        layer = "model.layers.2.self_attn.k_proj.weight"
        trained = standalone.state_dict()[layer]
        from accelerate.utils import align_module_device

        with align_module_device(spread.get_submodule(layer.rsplit(".", 1)[0])):
            original = spread.state_dict()[layer].clone()
        assert not torch.equal(trained, original)  # the offloaded layer's K projection trained, the model's own kept


def test_untrained_control_and_context_overflow(tiny_tokenizer):
    model = gpt2(n_positions=40)
    # seed 3: the untrained copy differs from this (itself random, seed 0) model
    report = run_analysis(model, tiny_tokenizer, DEMOS, QUERIES[:3], control="untrained", seed=3, **OPTS)
    used = report["config"]["n_demonstrations"]
    assert 1 <= used < 4 and any("kept the first" in n for n in report["notes"])
    untrained = report["controls"]["untrained"]
    assert set(untrained) == {"accuracy", "rec2ftp", "rec2ftp_counts", "change_recall", "change_recall_ci95",
                              "change_recall_counts", "simaou", "simam", "kendall", "topk_recall", "label_shift",
                              "label_counts", "finetuning"}
    predicted = untrained["label_counts"]["predictions"]
    assert set(predicted) == {"zsl", "icl", "ft"} and all(sum(c) == 3 for c in predicted.values())
    assert untrained["simaou"]["mean"] != report["simaou"]["mean"]


def test_change_recall_rec2ftp_counts_and_label_shift_in_the_report(tiny_tokenizer):
    """The new report keys, for the model and its untrained control; the counts follow the report's own predictions."""
    torch.manual_seed(3)  # a wide initialisation and a large step: the routes' predictions differ on these queries
    model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=400, n_positions=256, initializer_range=0.5,
                                       bos_token_id=0, eos_token_id=0)).eval()
    report = run_analysis(model, tiny_tokenizer, DEMOS, QUERIES, control="untrained", stability_check=False,
                          **{**OPTS, "learning_rate": 0.5})
    labels, (zsl, icl, ft) = report["labels"], (report["predictions"][s] for s in ("zsl", "icl", "ft"))
    queries = range(len(labels))
    changed = [q for q in queries if icl[q] != zsl[q] or ft[q] != zsl[q]]
    same = [q for q in changed if icl[q] != zsl[q] and ft[q] != zsl[q] and icl[q] == ft[q]]
    fixed = [q for q in queries if ft[q] == labels[q] != zsl[q]]
    assert report["change_recall_counts"] == {"changed": len(changed), "same_change": len(same),
                                              "icl_changed": sum(icl[q] != zsl[q] for q in queries),
                                              "ft_changed": sum(ft[q] != zsl[q] for q in queries)}
    assert report["change_recall"] == len(same) / len(changed) and 0 < len(same) < len(changed)
    assert report["rec2ftp_counts"] == {"ft_fixed": len(fixed), "both_fixed": sum(icl[q] == labels[q] for q in fixed)}
    assert report["rec2ftp"] == report["rec2ftp_counts"]["both_fixed"] / len(fixed)
    control = report["controls"]["untrained"]
    counts = control["change_recall_counts"]
    assert counts["same_change"] <= min(counts["icl_changed"], counts["ft_changed"]) <= counts["changed"] <= len(labels)
    assert control["rec2ftp_counts"]["both_fixed"] <= control["rec2ftp_counts"]["ft_fixed"] <= len(labels)
    for part in (report, control):
        shift = part["label_shift"]
        assert list(shift) == ["kl_icl_ft", "tv_icl_ft", "kl_icl_zsl", "tv_icl_zsl", "kl_ft_zsl", "tv_ft_zsl"]
        for key, value in shift.items():
            low, high = value["ci95"]
            assert 0.0 <= low <= value["mean"] <= high, key
            assert high <= 1.0 or key.startswith("kl"), key
    assert report["label_shift"]["kl_icl_ft"]["mean"] > 0  # ICL and FT do move this model's label distribution apart


@pytest.mark.parametrize("change, error, message", [
    ({"demonstrations": []}, ValueError, "demonstrations` is empty"),
    ({"queries": []}, ValueError, "queries` is empty"),
    ({"queries": [{"text": "x", "label": 5}]}, ValueError, "outside label_words"),
    ({"label_words": [" Positive", " Positive"]}, ValueError, "duplicates"),
    ({"template": "Review: {body} Sentiment:"}, ValueError, "lacks the template field"),
    ({"label_words": [" Positive", " Positives"]}, ValueError, "same token"),
    ({"learning_rate": 0}, ValueError, "learning_rate"),
    ({"learning_rate": -1e-3}, ValueError, "learning_rate"),
    ({"method": "adam"}, ValueError, "method"),
    ({"position": "first"}, ValueError, "position"),
    ({"control": "shuffled"}, ValueError, "control"),
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"start_token": "<nope>"}, ValueError, "not a token of this tokenizer"),
    ({"seed": "1"}, ValueError, "seed"),
])
def test_bad_input(tiny_tokenizer, change, error, message):
    args = {"demonstrations": DEMOS, "queries": QUERIES, **OPTS, **change}
    with pytest.raises(error, match=message):
        run_analysis(gpt2(), tiny_tokenizer, **args)


def test_no_demonstration_fits_and_not_a_causal_lm(tiny_tokenizer):
    with pytest.raises(ValueError, match="not even one demonstration fits"):
        run_analysis(gpt2(n_positions=12), tiny_tokenizer, DEMOS, QUERIES, **OPTS)
    from transformers import GPT2Model

    with pytest.raises(TypeError, match="causal LM"):
        run_analysis(GPT2Model(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=400)), tiny_tokenizer, DEMOS, QUERIES, **OPTS)


def test_tokenizer_without_pad_token_uses_eos(tiny_tokenizer):
    assert tiny_tokenizer.pad_token is None
    report = run_analysis(gpt2(), tiny_tokenizer, DEMOS, QUERIES[:2], **OPTS)
    assert any("no pad token" in n for n in report["notes"])
    tiny_tokenizer.pad_token = tiny_tokenizer.eos_token
    padded = run_analysis(gpt2(), tiny_tokenizer, DEMOS, QUERIES[:2], **OPTS)
    assert not any("pad token" in n for n in padded["notes"]) and padded["predictions"] == report["predictions"]


def test_momentum_gpt_fast_route_matches_per_query_route(tiny_tokenizer):
    from hf_metaopt import MomentumGPTConfig, MomentumGPTForCausalLM

    torch.manual_seed(0)
    model = MomentumGPTForCausalLM(MomentumGPTConfig(
        vocab_size=400, max_position_embeddings=256, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        momentum=0.5,
    )).eval()
    fast = run_analysis(model, tiny_tokenizer, DEMOS, QUERIES[:3], **OPTS)
    slow = run_analysis(model, tiny_tokenizer, DEMOS, QUERIES[:3], fast=False, **OPTS)
    assert fast["predictions"] == slow["predictions"]
    fast.pop("config"), slow.pop("config")
    assert_close(fast, slow)


def test_lora_method_end_to_end(tiny_tokenizer):
    model = llama()
    report = run_analysis(model, tiny_tokenizer, DEMOS, QUERIES[:2], method="lora", **OPTS)
    assert report["config"]["method"] == "lora" and len(report["kendall"]["per_layer"]) == 2


def _zero_shot_by_hand(model, tokenizer, queries):
    """ZSL predictions from plain forward passes, one query at a time, no engine code."""
    preds = []
    for q in queries:
        prompt = tokenizer(TEMPLATE.format(**q)).input_ids
        scores = []
        for word in WORDS:
            word_ids = tokenizer(word, add_special_tokens=False).input_ids
            with torch.no_grad():
                logprobs = model(torch.tensor([prompt + word_ids])).logits.log_softmax(-1)[0]
            scores.append(sum(float(logprobs[len(prompt) - 1 + j, t]) for j, t in enumerate(word_ids)) / len(word_ids))
        preds.append(int(scores[1] > scores[0]))
    return preds


def test_length_sorted_batches_report_in_query_order(tiny_tokenizer):
    """Queries of very different lengths: every per-query entry stays with its own query."""
    words = ["ok", "bad", "the cast is great and", "dull", "a tedious mess with", "clever", "I loved it"]
    queries = [{"text": " ".join([words[i % 7]] * (1 + (5 * i) % 9)), "label": i % 2} for i in range(12)]
    torch.manual_seed(1)
    cfg = GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=400, n_positions=256, initializer_range=0.5,
                     bos_token_id=0, eos_token_id=0)
    model = GPT2LMHeadModel(cfg).eval()
    by_hand = _zero_shot_by_hand(model, tiny_tokenizer, queries)
    assert len(set(by_hand)) == 2, "the check needs a model whose predictions vary over the queries"
    report = run_analysis(model, tiny_tokenizer, DEMOS, queries, **{**OPTS, "batch_size": 4}, start_token=None)
    assert report["labels"] == [q["label"] for q in queries]
    assert report["predictions"]["zsl"] == by_hand
    one_by_one = run_analysis(model, tiny_tokenizer, DEMOS, queries, **{**OPTS, "batch_size": 1}, start_token=None)
    assert_close(report["predictions"], one_by_one["predictions"])
    assert_close(report["simaou"], one_by_one["simaou"])
    assert_close(report["kendall"], one_by_one["kendall"])


def test_versions_of_a_checkout_that_is_not_installed(monkeypatch, tiny_tokenizer):
    """Run from a checkout on PYTHONPATH (a lent GPU machine), hf-metaopt has no distribution metadata."""
    import importlib.metadata

    import hf_metaopt

    real = importlib.metadata.version

    def version(name):
        if name in ("hf-metaopt", "peft"):
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "version", version)
    versions = run_analysis(llama(), tiny_tokenizer, DEMOS, QUERIES, **OPTS)["config"]["versions"]
    assert versions["hf_metaopt"] == hf_metaopt.__version__
    assert versions["peft"] is None and versions["transformers"] == real("transformers")
