"""Finetune a causal LM on the demonstrations, in the paper's regime, holding only what trains.

``transformers.Trainer`` runs plain SGD (no momentum, no weight decay, no gradient
clipping), a constant learning rate without warmup, one epoch, batch size 1, the
examples in the given order (``train_sampling_strategy="sequential"``), causal-LM
loss over every token of each example, in the model's own dtype.

Methods, and what :func:`finetuned` (the analysis's finetuning) holds beside the model:

- ``"kv"``: only the attention key and value projections (weights and biases, every
  layer) train. The finetuned model is a structural copy of the module tree whose frozen
  parameters and buffers *are* the original's tensors (shared read-only, never requiring
  grad); only the K/V projections are copied, and get gradients while training. GPT-2's
  fused ``c_attn`` (Conv1D, output columns ``[Q | K | V]``) is copied whole and a gradient
  hook zeroes the Q columns, so with SGD and no weight decay they stay bit-identical.
- ``"lora"``: PEFT LoRA adapters on ``k_proj``/``v_proj`` (in the model's dtype), added to
  the model itself; only the adapters are extra. The FT route runs with the adapters
  enabled, ZSL and ICL with them disabled, and they are removed afterwards. PEFT cannot
  target a part of a fused layer, so GPT-2's ``c_attn`` is refused with an error (use
  ``"kv"``, which masks the Q part, or ``"full"``).
- ``"full"``: every parameter trains, in a full copy of the model.
- ``"layer_causal"`` / ``"layer_causal_lora"``: as ``"kv"`` / ``"lora"`` (what trains, what is
  held, what is refused), but the loss is Deutch et al.'s layer-causal loss (:mod:`.layer_causal`):
  every layer's input detached, the sum over layers of each layer's causal-LM loss. The model's
  layout is found and checked before anything is copied or trained.

A model that accelerate dispatched (``device_map``): with layers spread over devices, each
trained tensor stays on its layer's device and the copies above keep accelerate's hooks. With
weights offloaded (meta tensors that accelerate's hooks load at every forward, from the CPU
or the disk), ``"kv"`` holds trainable copies of the K/V projections only, made from the
offloaded weights on the device their layer computes on, and swaps them into the model
itself for training and for the FT route (``active()``; the model's own projections are put
back on exit, as LoRA's adapters are removed); every other weight stays offloaded. An
optimizer step on an offloaded weight would be lost, so ``"lora"`` and ``"full"`` (and
``"kv"`` on a model accelerate dispatched as one piece, ``device_map={"": "disk"}``, which the
``Trainer``'s accelerate preparation would try to move) first materialise the model as a full
copy on CPU and train that (LoRA merged into it).

The input model is never changed, also when training or a pass is interrupted (an
exception, ``KeyboardInterrupt``): its parameters, buffers, ``requires_grad`` flags,
training modes and config are as given, and no PEFT layer is left in it.
:func:`finetune_model` returns a stand-alone finetuned model (a real copy, LoRA merged).
"""

from __future__ import annotations

import copy
import gc
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PrinterCallback, Trainer, TrainingArguments

from .layer_causal import LayerCausalLayout, layer_causal_layout
from .layout import UnsupportedArchitectureError, attention_layers, kv_parameter_names
from .options import METHODS, AnalysisOptions

__all__ = [
    "METHODS", "ExampleDataset", "FinetunedModel", "collate_examples", "finetune_model", "finetuned", "kv_parameter_names",
    "materialised_copy", "prepare_kv",
    "prepare_lora", "training_arguments",
]


@dataclass
class FinetunedModel:
    """The finetuned model of :func:`finetuned`.

    ``model`` is the module to call; it is the finetuned model inside ``active()`` (for
    LoRA, the adapters are enabled only there; for ``"kv"`` and ``"full"`` it always is).
    ``standalone()`` returns a real copy of the finetuned model that outlives the context.
    """

    model: nn.Module
    active: Callable[[], AbstractContextManager]
    standalone: Callable[[], nn.Module]


def _mask_query_columns(c_attn: nn.Module) -> None:
    width = c_attn.weight.shape[-1] // 3  # Conv1D weight is [in, 3 * embed]: columns Q | K | V

    def zero_q(grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        grad[..., :width] = 0
        return grad

    c_attn.weight.register_hook(zero_q)
    if c_attn.bias is not None:
        c_attn.bias.register_hook(zero_q)


def prepare_kv(model: nn.Module) -> None:
    """Make only the key and value projections of ``model`` trainable (GPT-2's fused Q columns get a zero gradient)."""
    model.requires_grad_(False)
    for layer in attention_layers(model):
        for sub in layer.kv_modules():
            sub.requires_grad_(True)
        if layer.fused:
            _mask_query_columns(layer.module.c_attn)


def _lora_config(model: nn.Module, method: str = "lora"):
    from peft import LoraConfig

    if any(layer.fused for layer in attention_layers(model)):
        kv = "layer_causal" if method == "layer_causal_lora" else "kv"
        raise ValueError(
            f"method={method!r} cannot target GPT-2's fused c_attn: PEFT adapts whole layers, so an adapter there would "
            f"also change the query projection. Use method={kv!r} (trains K and V, the Q columns masked) or "
            "method='full'."
        )
    return LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["k_proj", "v_proj"], bias="none")


def prepare_lora(model: nn.Module, seed: int, method: str = "lora") -> nn.Module:
    """``model`` wrapped by PEFT with rank-8 LoRA adapters on ``k_proj``/``v_proj``, initialised from ``seed``.

    ``method`` (``"lora"`` or ``"layer_causal_lora"``) is named in the refusal of a fused ``c_attn``.
    """
    from peft import get_peft_model

    config = _lora_config(model, method)
    torch.manual_seed(seed)  # the adapters' initialisation
    # In the model's own dtype: PEFT would otherwise upcast bfloat16/float16 adapters to float32.
    return get_peft_model(model, config, autocast_adapter_dtype=False)


def _offloaded(model: nn.Module) -> bool:
    return any(p.device.type == "meta" for p in model.parameters())


def _plain_copy(module: nn.Module) -> nn.Module:
    """A trainable copy of an ``nn.Linear`` or GPT-2 ``Conv1D`` whose weights accelerate offloads, without its hooks,
    on the device it computes on (accelerate's ``align_module_device`` brings the weights there for the copy)."""
    from accelerate.utils import align_module_device
    from transformers.pytorch_utils import Conv1D

    with align_module_device(module), torch.no_grad():
        weight, bias = module.weight, module.bias
        if isinstance(module, nn.Linear):
            fresh = nn.Linear(module.in_features, module.out_features, bias=bias is not None, device=weight.device, dtype=weight.dtype)
        elif isinstance(module, Conv1D):
            fresh = Conv1D(module.nf, weight.shape[0]).to(device=weight.device, dtype=weight.dtype)
        else:
            raise UnsupportedArchitectureError(
                f"the K/V projection {type(module).__name__} is offloaded and is neither nn.Linear nor Conv1D, so it cannot be "
                "copied for training; load the model without offloading (more max_memory) or use method='full'."
            )
        fresh.weight.copy_(weight)
        if bias is not None:
            fresh.bias.copy_(bias)
    return fresh


@contextmanager
def _swapped(swaps: list[tuple[nn.Module, str, nn.Module]]) -> Iterator[None]:
    """``parent.name = module`` for each swap inside the block; the previous modules are put back on exit."""
    before = [(parent, name, getattr(parent, name)) for parent, name, _ in swaps]
    try:
        for parent, name, module in swaps:
            setattr(parent, name, module)
        yield
    finally:
        for parent, name, module in before:
            setattr(parent, name, module)


@contextmanager
def _kv_offloaded(model: nn.Module, examples, options: AnalysisOptions, on_train_start, callbacks,
                  layout: LayerCausalLayout | None = None) -> Iterator[FinetunedModel]:
    """K/V finetuning of an offloaded model: trainable K/V copies swapped into ``model`` (module docstring)."""
    swaps = [(layer.module, name, _plain_copy(getattr(layer.module, name)))
             for layer in attention_layers(model) for name in (["c_attn"] if layer.fused else ["k_proj", "v_proj"])]
    for _, name, module in swaps:
        if name == "c_attn":
            _mask_query_columns(module)  # GPT-2's fused projection: its Q columns stay as they are
    state = _ModelState.of(model)
    try:
        with _swapped(swaps):
            model.requires_grad_(False)  # the offloaded weights, reloaded at every forward, stay out of autograd
            for _, _, module in swaps:
                module.requires_grad_(True)
            with on_train_start(model) if on_train_start is not None else nullcontext():
                _train(model, examples, options, callbacks, layout)
        state.restore()
        for _, _, module in swaps:
            _freeze(module)
        yield FinetunedModel(model, lambda: _swapped(swaps), lambda: _materialised_with(model, swaps))
    finally:
        state.restore()


def _materialised_with(model: nn.Module, swaps) -> nn.Module:
    """A stand-alone copy of the offloaded ``model`` on CPU with the trained K/V projections in it."""
    with _swapped(swaps):
        return _freeze(materialised_copy(model))


def _trainable_copy(model: nn.Module) -> nn.Module:
    """A deep copy; a model with weights offloaded by accelerate is materialised on CPU (:func:`materialised_copy`).

    Offloaded weights are reloaded from their offload store at every forward, so an
    optimizer step on them would be lost: training needs real tensors.
    """
    return materialised_copy(model) if _offloaded(model) else copy.deepcopy(model)


def materialised_copy(model: nn.Module) -> nn.Module:
    """A plain copy of a model accelerate dispatched, on CPU, in its dtype: every weight real (offloaded ones loaded
    through accelerate's ``get_state_dict_offloaded_model``), no hooks."""
    from accelerate.utils.modeling import get_state_dict_offloaded_model

    state = get_state_dict_offloaded_model(model)
    dtype = next(model.parameters()).dtype  # an offloaded parameter keeps its dtype on the meta device
    fresh = type(model)(copy.deepcopy(model.config)).to(dtype)
    missing, unexpected = fresh.load_state_dict(state, strict=False)
    tied = set(getattr(fresh, "all_tied_weights_keys", {}) or {})
    if unexpected or set(missing) - tied:
        raise RuntimeError(f"could not materialise the offloaded model: missing {missing}, unexpected {unexpected}.")
    if hasattr(fresh, "tie_weights"):
        fresh.tie_weights()
    return fresh.eval()


def _kv_copy(model: nn.Module) -> nn.Module:
    """A copy of the module tree whose K/V projection parameters are fresh copies and whose
    every other parameter and buffer shares the original's storage (frozen, no grad)."""
    trained = {id(p) for p in _kv_parameters(model)}
    memo: dict = {id(b): b for b in model.buffers()}
    for p in model.parameters():
        if id(p) not in trained:
            memo[id(p)] = nn.Parameter(p.detach(), requires_grad=False)  # a new Parameter on the same storage
    return copy.deepcopy(model, memo)


def _kv_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for layer in attention_layers(model) for sub in layer.kv_modules() for p in sub.parameters()]


class ExampleDataset(torch.utils.data.Dataset):
    """Training examples (token-id lists) as the Trainer reads them: ``input_ids``, ``attention_mask``, ``labels``."""

    def __init__(self, examples: Sequence[Sequence[int]]):
        self.examples = [list(e) for e in examples]

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict:
        ids = torch.tensor(self.examples[i], dtype=torch.long)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}


def collate_examples(batch: list[dict]) -> dict:
    """Stack :class:`ExampleDataset` items; batches hold one example, so nothing is padded."""
    return {k: torch.stack([b[k] for b in batch]) for k in batch[0]}


class _OneDeviceArguments(TrainingArguments):
    """``TrainingArguments`` that train on one device: no ``DataParallel`` over the other GPUs.

    With several GPUs visible to one process, ``Trainer`` would wrap the model in
    ``DataParallel``, whose replicas copy the tensors shared with the input model; the
    finetuning trains the model where it is.
    """

    @property
    def n_gpu(self) -> int:
        return min(super().n_gpu, 1)


class _ModelLossTrainer(Trainer):
    """A ``Trainer`` whose loss is the model's own: its mean over the example's shifted labels.

    Batch size 1, no accumulation. The default ``compute_loss`` passes the Trainer's token
    count instead when the model accepts loss kwargs, which divides by one label too many for
    models whose loss type transformers does not recognise (``GPT2LMHeadModel``), shrinking
    every step by (N-1)/N. Overriding ``compute_loss`` (with ``loss_is_scaled_for_ga``) is the
    extension point the ``Trainer`` documents.
    """

    loss_is_scaled_for_ga = False  # a per-batch mean

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        outputs = model(**inputs)
        return (outputs.loss, outputs) if return_outputs else outputs.loss


class _LayerCausalTrainer(_ModelLossTrainer):
    """A ``Trainer`` whose loss is the layer-causal loss (:meth:`.LayerCausalLayout.loss`): every layer's input
    detached, the sum over layers of each layer's causal-LM loss (each a mean over the example's shifted labels)."""

    def __init__(self, *args, layout: LayerCausalLayout, **kwargs):
        super().__init__(*args, **kwargs)
        self.layout = layout

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss, outputs = self.layout.loss(model, inputs)
        return (loss, outputs) if return_outputs else loss


def training_arguments(output_dir: str, learning_rate: float, seed: int, on_cpu: bool) -> TrainingArguments:
    """The paper's regime as ``TrainingArguments``: plain SGD, constant rate, one epoch, batch 1, in order, quiet."""
    return _OneDeviceArguments(
        output_dir=output_dir,
        per_device_train_batch_size=1,
        gradient_accumulation_steps=1,
        num_train_epochs=1,
        learning_rate=float(learning_rate),
        optim="sgd",
        weight_decay=0.0,
        max_grad_norm=0.0,
        lr_scheduler_type="constant",
        warmup_steps=0,
        train_sampling_strategy="sequential",
        seed=seed,
        data_seed=seed,
        report_to="none",
        save_strategy="no",
        # Every step's loss reaches the callbacks' on_log (LossRecorder), inf/NaN included, not replaced.
        logging_strategy="steps",
        logging_steps=1,
        logging_nan_inf_filter=False,
        # log_level stays "passive": any other value would set transformers' verbosity for the whole process.
        eval_strategy="no",
        disable_tqdm=True,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        use_cpu=on_cpu,
    )


def _train(trained: nn.Module, examples: Sequence[Sequence[int]], options: AnalysisOptions, callbacks: Sequence,
           layout: LayerCausalLayout | None = None) -> None:
    """Train ``trained`` in place in the paper's regime (with ``layout``: the layer-causal loss); nothing of the
    ``Trainer`` outlives the call."""
    on_cpu = all(p.device.type == "cpu" for p in trained.parameters())
    with tempfile.TemporaryDirectory(prefix="hf-metaopt-ft-") as out:
        args = training_arguments(out, options.learning_rate, options.seed, on_cpu)
        kind, extra = (_ModelLossTrainer, {}) if layout is None else (_LayerCausalTrainer, {"layout": layout})
        trainer = kind(
            model=trained, args=args, train_dataset=ExampleDataset(examples), data_collator=collate_examples, callbacks=list(callbacks),
            **extra,
        )
        # The Trainer's documented way to drop a default callback: with disable_tqdm, PrinterCallback
        # would print every step's log line to stdout; the losses reach LossRecorder instead.
        trainer.remove_callback(PrinterCallback)
        try:
            trainer.train()
        finally:
            trainer.accelerator.free_memory()  # accelerate's references to the prepared model and optimizer
            del trainer
            gc.collect()
    for p in trained.parameters():
        if p.requires_grad:  # only what trained has gradients; a frozen parameter's are left as they were
            p.grad = None


def _freeze(model: nn.Module) -> nn.Module:
    model.requires_grad_(False)
    return model.eval()


@dataclass
class _ModelState:
    """What training on a model in place may change beside its weights: flags, modes, configs."""

    requires_grad: list[tuple[nn.Parameter, bool]]
    training: list[tuple[nn.Module, bool]]
    configs: list[tuple[object, dict]]

    @classmethod
    def of(cls, model: nn.Module) -> "_ModelState":
        from transformers import PreTrainedModel

        configs = {id(m.config): m.config for m in model.modules() if isinstance(m, PreTrainedModel)}
        return cls(
            [(p, p.requires_grad) for p in model.parameters()],
            [(m, m.training) for m in model.modules()],
            [(c, dict(vars(c))) for c in configs.values()],
        )

    def restore(self) -> None:
        for p, flag in self.requires_grad:
            p.requires_grad_(flag)
        for m, flag in self.training:
            m.training = flag
        for config, saved in self.configs:  # by its __dict__: no config __setattr__ logic in between
            vars(config).clear()
            vars(config).update(saved)


def _remove_adapters(model: nn.Module) -> None:
    """Put back every module a PEFT tuner layer wraps and drop PEFT's config from ``model``."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    for name, module in list(model.named_modules()):
        if isinstance(module, BaseTunerLayer) and name:
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name), child, module.get_base_layer())
    if "peft_config" in vars(model):
        delattr(model, "peft_config")


@contextmanager
def _adapters_enabled(peft_model) -> Iterator[None]:
    peft_model.base_model.enable_adapter_layers()
    try:
        yield
    finally:
        peft_model.base_model.disable_adapter_layers()


def _merged_copy(peft_model) -> nn.Module:
    with _adapters_enabled(peft_model):
        return _freeze(copy.deepcopy(peft_model).merge_and_unload())


@contextmanager
def _lora_in_place(model: nn.Module, examples, options: AnalysisOptions, on_train_start, callbacks,
                   layout: LayerCausalLayout | None) -> Iterator[FinetunedModel]:
    """LoRA adapters trained on ``model`` itself, disabled outside ``active()``, removed on exit."""
    state = _ModelState.of(model)
    try:
        peft_model = prepare_lora(model, options.seed, options.method)
        with on_train_start(model) if on_train_start is not None else nullcontext():
            _train(peft_model, examples, options, callbacks, layout)
        peft_model.base_model.disable_adapter_layers()
        state.restore()  # ZSL and ICL run the model as given: adapters disabled, flags and modes restored
        yield FinetunedModel(model, lambda: _adapters_enabled(peft_model), lambda: _merged_copy(peft_model))
    finally:
        _remove_adapters(model)
        state.restore()


@contextmanager
def finetuned(
    model: nn.Module,
    examples: Sequence[Sequence[int]],
    options: AnalysisOptions | None = None,
    *,
    on_train_start: Callable[[nn.Module], AbstractContextManager] | None = None,
    callbacks: Sequence = (),
) -> Iterator[FinetunedModel]:
    """Finetune on ``examples`` and yield the :class:`FinetunedModel`, released (LoRA: removed) on exit.

    What is held beside ``model`` depends on the method (module docstring): ``"kv"`` copies
    only the K/V projections, ``"lora"`` adds only adapters, ``"full"`` copies the model; a
    layer-causal method holds what its base method holds. ``model`` is never changed, also
    when interrupted.

    Args:
        model: a causal LM.
        examples: token-id lists, one training example each, in training order.
        options: ``method``, ``learning_rate`` and ``seed`` (dropout, LoRA initialisation) are used.
        on_train_start: optional ``callable(module) -> context manager`` entered around training,
            given the module whose attention layers run (the analysis records the training
            tokens' query vectors with it).
        callbacks: extra ``TrainerCallback``s (the analysis's progress bar).
    """
    options = options or AnalysisOptions()
    if not examples:
        raise ValueError("`examples` is empty; finetuning needs at least one demonstration.")
    # Found and checked on the model as given, before anything is copied or trained; its module names hold for the copies.
    layout = layer_causal_layout(model, examples[0]) if options.layer_causal else None
    if options.base_method == "lora" and not _offloaded(model):
        with _lora_in_place(model, examples, options, on_train_start, callbacks, layout) as tuned:
            yield tuned
        return
    # accelerate's Trainer preparation moves a model dispatched as one piece (a one-entry device map), which an
    # offloaded model refuses: that one is materialised below, as for the other methods.
    if options.base_method == "kv" and _offloaded(model) and len(getattr(model, "hf_device_map", None) or {}) > 1:
        with _kv_offloaded(model, examples, options, on_train_start, callbacks, layout) as tuned:
            yield tuned
        return
    tuned, trained = _trainable(model, options)
    with on_train_start(tuned) if on_train_start is not None else nullcontext():
        _train(trained, examples, options, callbacks, layout)
    tuned = _freeze(trained.merge_and_unload() if options.base_method == "lora" else tuned)
    del trained
    shares = options.base_method == "kv" and not _offloaded(model)
    yield FinetunedModel(tuned, nullcontext, lambda: copy.deepcopy(tuned) if shares else tuned)


def _trainable(model: nn.Module, options: AnalysisOptions) -> tuple[nn.Module, nn.Module]:
    """``(copy, module to train)``: the K/V copy sharing frozen tensors, else a full copy (LoRA-wrapped)."""
    if options.base_method == "kv":
        tuned = _trainable_copy(model) if _offloaded(model) else _kv_copy(model)
        prepare_kv(tuned)
        shared = {p.data_ptr() for p in model.parameters()}
        if any(p.data_ptr() in shared for p in tuned.parameters() if p.requires_grad):
            raise RuntimeError("a trained K/V parameter shares storage with the input model; refusing to train it.")
        return tuned, tuned
    tuned = _trainable_copy(model)
    if options.base_method == "lora":
        return tuned, prepare_lora(tuned, options.seed, options.method)
    return tuned.requires_grad_(True), tuned


def finetune_model(
    model: nn.Module,
    examples: Sequence[Sequence[int]],
    options: AnalysisOptions | None = None,
    *,
    on_train_start=None,
    callbacks: Sequence = (),
) -> nn.Module:
    """Return a stand-alone finetuned copy of ``model`` (a real copy: no tensor shared; LoRA merged).

    The training is :func:`finetuned`'s (see the module docstring for the regime); the copy
    outlives it, so this holds a full second model. ``model`` is left unchanged.

    Args:
        model: a causal LM.
        examples: token-id lists, one training example each, in training order.
        options: ``method``, ``learning_rate`` and ``seed`` are used.
        on_train_start: as in :func:`finetuned`.
        callbacks: extra ``TrainerCallback``s.
    """
    with finetuned(model, examples, options, on_train_start=on_train_start, callbacks=callbacks) as tuned:
        return tuned.standalone()
