"""Memory-lean finetuning: K/V copies share every frozen tensor, LoRA adapters live on the model itself
and leave it as given (also when interrupted), nothing survives the finetuned route, and the reports equal
those of the deep-copy route the analysis used before."""

from __future__ import annotations

import copy
import gc
import json
import weakref
from contextlib import contextmanager, nullcontext

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, TrainerCallback

from hf_metaopt.analysis import AnalysisOptions, PromptFormat, engine, routes
from hf_metaopt.analysis import finetune as ft
from hf_metaopt.analysis import run_analysis as engine_run_analysis

from toy_reviews import DEMOS, QUERIES, TEMPLATE, WORDS
EXAMPLES = [[5, 17, 40, 22, 9, 101], [7, 33, 2, 90], [12, 12, 200, 54, 3]]
OPTS = dict(learning_rate=0.1, batch_size=2, n_bootstrap=50)


def run_analysis(model, tokenizer, **options):
    prompt = PromptFormat(TEMPLATE, WORDS, "\n")
    return engine_run_analysis(model, tokenizer, DEMOS, QUERIES, prompt, AnalysisOptions.from_kwargs(**{**OPTS, **options}))


def gpt2():
    torch.manual_seed(0)
    cfg = GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=400, n_positions=256, bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(cfg).eval()


def llama(bias=True):
    torch.manual_seed(0)
    cfg = LlamaConfig(
        num_hidden_layers=2, hidden_size=32, num_attention_heads=4, num_key_value_heads=2, intermediate_size=64,
        vocab_size=400, max_position_embeddings=256, attention_bias=bias, bos_token_id=0, eos_token_id=0,
    )
    return LlamaForCausalLM(cfg).eval()


def gemma3():
    """Sliding layers whose window (8) is shorter than the demonstration prefix."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(0)
    cfg = Gemma3TextConfig(
        num_hidden_layers=2, hidden_size=32, num_attention_heads=4, num_key_value_heads=2, intermediate_size=64,
        head_dim=8, query_pre_attn_scalar=8, vocab_size=400, max_position_embeddings=256, sliding_window=8,
        layer_types=["sliding_attention", "full_attention"], bos_token_id=0, eos_token_id=0, pad_token_id=0,
    )
    return Gemma3ForCausalLM(cfg).eval()


def momentum_gpt():
    """MomentumGPT keeps a recurrent state in its cache layers."""
    from hf_metaopt import MomentumGPTConfig, MomentumGPTForCausalLM

    torch.manual_seed(0)
    cfg = MomentumGPTConfig(vocab_size=400, max_position_embeddings=256, hidden_size=32, num_hidden_layers=2,
                            num_attention_heads=4, momentum=0.5)
    return MomentumGPTForCausalLM(cfg).eval()


# --------------------------------------------------------------------------- the route used before
@contextmanager
def deep_copy_route(model, examples, options, *, on_train_start=None, callbacks=()):
    """Finetuning as the analysis did it before: a deep copy of the whole model, trained, LoRA merged."""
    from transformers import PrinterCallback, Trainer

    tuned = copy.deepcopy(model)
    trained = tuned
    if options.method == "kv":
        ft.prepare_kv(tuned)
    elif options.method == "lora":
        trained = ft.prepare_lora(tuned, options.seed)
    else:
        tuned.requires_grad_(True)
    args = ft.training_arguments("unused-output-dir", options.learning_rate, options.seed, on_cpu=True)
    trainer = Trainer(model=trained, args=args, train_dataset=ft.ExampleDataset(examples), data_collator=ft.collate_examples,
                      callbacks=list(callbacks))
    trainer.remove_callback(PrinterCallback)
    trainer.model_accepts_loss_kwargs = False
    with on_train_start(tuned) if on_train_start is not None else nullcontext():
        trainer.train()
    if options.method == "lora":
        tuned = trained.merge_and_unload()
    tuned.requires_grad_(False)
    yield ft.FinetunedModel(tuned.eval(), nullcontext, lambda: tuned)


def materialised_cache(cache, batch):
    """The ICL prefix cache as the analysis expanded it before: a deep copy repeated ``batch`` times."""
    cache = copy.deepcopy(cache)
    cache.reorder_cache(torch.zeros(batch, dtype=torch.long))
    return cache


def deep_copy_report(model, tokenizer, monkeypatch, **options):
    with monkeypatch.context() as patch:
        patch.setattr(engine, "finetuned", deep_copy_route)
        patch.setattr(routes, "expand_cache", materialised_cache)
        return run_analysis(model, tokenizer, **options).report.to_dict()


def assert_close(a, b, tol, path=""):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            assert_close(a[k], b[k], tol, f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_close(x, y, tol, f"{path}[{i}]")
    elif isinstance(a, float):
        assert abs(a - b) <= tol, (path, a, b)
    else:
        assert a == b, path


@pytest.mark.parametrize("build, method", [
    (gpt2, "kv"), (llama, "kv"), (gemma3, "kv"), (momentum_gpt, "kv"), (llama, "full"), (gpt2, "full"),
])
def test_lean_route_gives_the_deep_copy_route_report_exactly(tiny_tokenizer, monkeypatch, build, method):
    model = build()
    before = deep_copy_report(model, tiny_tokenizer, monkeypatch, method=method)
    after = run_analysis(model, tiny_tokenizer, method=method).report.to_dict()
    assert json.dumps(after) == json.dumps(before)


def test_lora_on_the_model_matches_the_merged_copy(tiny_tokenizer, monkeypatch):
    """Adapters applied unmerged (W x + B A x) vs merged into a copy ((W + B A) x): float32 rounding apart,
    ~1e-7 relative on activations, so 1e-5 on the metrics (cosines of updates >= 1e-2 of their operands)."""
    model = llama()
    before = deep_copy_report(model, tiny_tokenizer, monkeypatch, method="lora", learning_rate=0.5)
    after = run_analysis(model, tiny_tokenizer, method="lora", learning_rate=0.5).report.to_dict()
    assert after["predictions"] == before["predictions"]
    assert after["predictions"]["ft"] != after["predictions"]["zsl"] or after["simaou"]["mean"] != 0
    assert_close(after, before, 1e-5)


def test_only_the_scored_rows_are_normalised():
    """Log-probabilities of the scored (row, position) pairs alone equal those of the batch's whole
    ``[B, positions, V]`` logits, bit for bit."""
    model = llama()
    runner = routes.RouteRunner(model, [[5], [9]], "prediction", pad_id=0, capture=False)
    queries = [[3, 50, 7, 99, 12], [5, 6], [8, 9, 10]]
    got = runner.run(queries, [0]).logprobs
    ids = torch.tensor([[0, *q] + [0] * (5 - len(q)) for q in queries])
    mask = (torch.arange(6) <= torch.tensor([len(q) for q in queries])[:, None]).long()
    positions = sorted({len(q) for q in queries})
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask, logits_to_keep=torch.tensor(positions)).logits
    full = torch.log_softmax(logits, dim=-1)
    for b, q in enumerate(queries):
        column = positions.index(len(q))
        assert got[b].tolist() == [float(full[b, column, 5]), float(full[b, column, 9])]


# --------------------------------------------------------------------------- what is held
def storage(model) -> set[int]:
    return {p.data_ptr() for p in model.parameters()} | {b.data_ptr() for b in model.buffers()}


@pytest.mark.parametrize("build", [gpt2, llama])
def test_kv_holds_only_the_kv_projections(build):
    model = build()
    original = storage(model)
    kv_names = set(ft.kv_parameter_names(model))
    seen = {}

    def during_training(tuned):
        seen["frozen_flags"] = {n: p.requires_grad for n, p in tuned.named_parameters() if n not in kv_names}
        return nullcontext()

    with ft.finetuned(model, EXAMPLES, AnalysisOptions(method="kv", learning_rate=0.5), on_train_start=during_training) as tuned:
        own = {n for n, p in tuned.model.named_parameters() if p.data_ptr() not in original}
        assert own == kv_names  # every other parameter is the original's storage
        assert all(b.data_ptr() in original for b in tuned.model.buffers())
        assert not any(seen["frozen_flags"].values())  # shared tensors never required grad, so never got one
        assert all(p.grad is None and not p.requires_grad for p in tuned.model.parameters())
        tied = model.get_output_embeddings().weight is model.get_input_embeddings().weight
        assert (tuned.model.get_output_embeddings().weight is tuned.model.get_input_embeddings().weight) == tied
        assert {n for n, p in model.named_parameters() if p.grad is not None} == set()
        alone = tuned.standalone()
    assert not storage(alone) & original  # a real copy for users who ask for one


def test_lora_adapters_run_only_inside_active_and_are_removed(tiny_tokenizer):
    from peft.tuners.tuners_utils import BaseTunerLayer

    model = llama()
    ids = torch.tensor([EXAMPLES[0]])
    with torch.no_grad():
        plain = model(ids).logits
    names = [n for n, _ in model.named_modules()]
    with ft.finetuned(model, EXAMPLES, AnalysisOptions(method="lora", learning_rate=0.5)) as tuned:
        assert tuned.model is model and any(isinstance(m, BaseTunerLayer) for m in model.modules())
        with torch.no_grad():
            assert torch.equal(model(ids).logits, plain)  # ZSL / ICL: adapters disabled
            with tuned.active():
                adapted = model(ids).logits
            assert not torch.allclose(adapted, plain)
            merged = tuned.standalone()
            torch.testing.assert_close(merged(ids).logits, adapted, rtol=0, atol=1e-5)
            assert not storage(merged) & storage(model)  # a real copy, the adapters merged into it
    assert [n for n, _ in model.named_modules()] == names and "peft_config" not in vars(model)
    with torch.no_grad():
        assert torch.equal(model(ids).logits, plain)


# --------------------------------------------------------------------------- interrupted runs
class Stop(Exception):
    pass


class RaiseAtStep(TrainerCallback):
    def __init__(self, step, error):
        self.step, self.error = step, error

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise self.error


def snapshot(model) -> dict:
    return {
        "tensors": {n: t.detach().clone() for n, t in [*model.named_parameters(), *model.named_buffers()]},
        "storage": {n: t.data_ptr() for n, t in [*model.named_parameters(), *model.named_buffers()]},
        "requires_grad": {n: p.requires_grad for n, p in model.named_parameters()},
        "training": {n: m.training for n, m in model.named_modules()},
        "types": {n: type(m) for n, m in model.named_modules()},
        "config": model.config.to_dict(),
        "attn_implementation": model.config._attn_implementation,  # the capture's switch is undone
    }


def assert_as_given(model, before: dict) -> None:
    from peft.tuners.tuners_utils import BaseTunerLayer

    now = snapshot(model)
    assert now["types"] == before["types"] and not any(isinstance(m, BaseTunerLayer) for m in model.modules())
    assert "peft_config" not in vars(model) and now["attn_implementation"] == before["attn_implementation"]
    assert now["storage"] == before["storage"]
    for name, tensor in before["tensors"].items():  # bit-identical: compared as raw bytes
        assert torch.equal(now["tensors"][name].view(torch.uint8), tensor.view(torch.uint8)), name
    assert now["requires_grad"] == before["requires_grad"] and now["training"] == before["training"]
    assert now["config"] == before["config"]
    assert all(p.grad is None for p in model.parameters())


def unusual_state(model):
    """Flags a user might have set: mixed requires_grad, mixed training modes."""
    model.train()
    model.model.layers[0].eval()
    model.model.norm.weight.requires_grad_(False)
    model.model.layers[1].self_attn.k_proj.weight.requires_grad_(False)
    return model


@pytest.mark.parametrize("method", ["kv", "lora", "full"])
@pytest.mark.parametrize("error", [Stop("mid-training"), KeyboardInterrupt()], ids=["exception", "interrupt"])
def test_interrupted_finetuning_leaves_the_model_as_given(method, error):
    model = unusual_state(llama())
    before = snapshot(model)
    options = AnalysisOptions(method=method, learning_rate=0.5)
    with pytest.raises(type(error)):
        with ft.finetuned(model, EXAMPLES, options, callbacks=[RaiseAtStep(2, error)]):
            pass
    assert_as_given(model, before)
    with ft.finetuned(model, EXAMPLES, options) as tuned, tuned.active(), torch.no_grad():
        tuned.model(torch.tensor([EXAMPLES[0]]))  # and a completed run leaves it as given too
    assert_as_given(model, before)


def raise_in_forward(n, calls):
    """A forward hook raising at its ``n``-th call; a function, so a deep copy of the model shares it."""

    def hook(module, args, output):
        calls.append(torch.is_grad_enabled())  # only the finetuning forwards record gradients
        if len(calls) == n:
            raise Stop(f"forward {n}")

    return hook


# 4 demonstrations, batch size 2: forwards 1-4 score the demonstrations' loss before finetuning (no grad),
# 5-8 train, 9 is the prefix pass, then ZSL, ICL, FT per batch
@pytest.mark.parametrize("call, where", [(6, "training"), (12, "FT route"), (13, "ZSL after FT")])
@pytest.mark.parametrize("method", ["kv", "lora"])
def test_exception_inside_a_forward_leaves_the_model_as_given(tiny_tokenizer, method, call, where):
    model = llama().train()
    before = snapshot(model)
    calls = []
    handle = model.model.layers[1].mlp.register_forward_hook(raise_in_forward(call, calls))
    try:
        with pytest.raises(Stop, match=f"forward {call}"):
            run_analysis(model, tiny_tokenizer, method=method)
    finally:
        handle.remove()
    assert len(calls) == call and calls[-1] == (where == "training"), where
    assert_as_given(model, before)


class WatchTraining(TrainerCallback):
    """Keeps weak references to what the Trainer trains with (its optimizer and data loader); interrupts at step 1."""

    def __init__(self, interrupt: bool = False):
        self.refs: list[weakref.ref] = []
        self.interrupt = interrupt

    def on_train_begin(self, args, state, control, optimizer=None, train_dataloader=None, **kwargs):
        self.refs += [weakref.ref(optimizer), weakref.ref(train_dataloader)]

    def on_step_end(self, args, state, control, **kwargs):
        if self.interrupt:  # a fresh exception: one kept by the test would hold the traceback's frames
            raise Stop("interrupted")


@pytest.mark.parametrize("interrupt", [False, True])
def test_the_trainer_keeps_no_reference(interrupt):
    """Once finetuning is over (or its exception dropped), the optimizer and the data loader are freed."""
    watch = WatchTraining(interrupt)
    try:
        with ft.finetuned(llama(), EXAMPLES, AnalysisOptions(method="kv"), callbacks=[watch]):
            pass
    except Stop:
        assert interrupt
    gc.collect()
    assert len(watch.refs) == 2 and all(ref() is None for ref in watch.refs)


# --------------------------------------------------------------------------- released before the control
@pytest.mark.parametrize("method", ["kv", "lora"])
def test_finetuned_tensors_are_released_before_the_untrained_control(tiny_tokenizer, monkeypatch, method):
    """With the garbage collector off, only reference counts free memory: nothing (recorder, Trainer,
    optimizer, accelerate) may still hold the finetuned parameters when the control is built."""
    held: list[weakref.ref] = []
    real_finetuned, real_control = engine.finetuned, engine.untrained_copy

    @contextmanager
    def watched(model, *args, **kwargs):
        with real_finetuned(model, *args, **kwargs) as tuned:
            trained = [p for n, p in tuned.model.named_parameters() if "lora_" in n or not any(
                p is q for q in model.parameters())]
            assert trained
            held.extend(weakref.ref(p) for p in trained)
            del trained
            yield tuned

    def control(model, seed):
        alive = [r for r in held if r() is not None]
        assert not alive, f"{len(alive)} finetuned tensors still referenced when the control is built"
        return real_control(model, seed)

    monkeypatch.setattr(engine, "finetuned", watched)
    monkeypatch.setattr(engine, "untrained_copy", control)
    gc.collect()
    gc.disable()
    try:
        report = run_analysis(llama(), tiny_tokenizer, method=method, control="untrained").report.to_dict()
    finally:
        gc.enable()
    assert held and "untrained" in report["controls"]
