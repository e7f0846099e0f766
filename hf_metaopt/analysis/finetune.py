"""Finetune a copy of a causal LM on the demonstrations, in the paper's regime.

``transformers.Trainer`` runs plain SGD (no momentum, no weight decay, no gradient
clipping), a constant learning rate without warmup, one epoch, batch size 1, the
examples in the given order (``train_sampling_strategy="sequential"``), causal-LM
loss over every token of each example.

Methods:

- ``"kv"``: only the attention key and value projections (weights and biases, every
  layer) train. Separate ``k_proj``/``v_proj`` are unfrozen by name; GPT-2's fused
  ``c_attn`` (Conv1D, output columns ``[Q | K | V]``) is unfrozen whole and a
  gradient hook zeroes the Q columns, so with SGD and no weight decay they stay
  bit-identical.
- ``"lora"``: PEFT LoRA adapters on ``k_proj``/``v_proj``, merged into the weights after
  training. PEFT cannot target a part of a fused layer, so GPT-2's ``c_attn`` is refused
  with an error (use ``"kv"``, which masks the Q part, or ``"full"``).
- ``"full"``: every parameter trains.

The input model is never modified: a deep copy is trained and returned.
"""

from __future__ import annotations

import copy
import tempfile
from contextlib import nullcontext
from collections.abc import Sequence

import torch
from torch import nn

from .layout import attention_layers, kv_parameter_names
from .options import METHODS, AnalysisOptions

__all__ = ["METHODS", "finetune_model", "kv_parameter_names"]


def _mask_query_columns(c_attn: nn.Module) -> None:
    width = c_attn.weight.shape[-1] // 3  # Conv1D weight is [in, 3 * embed]: columns Q | K | V

    def zero_q(grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        grad[..., :width] = 0
        return grad

    c_attn.weight.register_hook(zero_q)
    if c_attn.bias is not None:
        c_attn.bias.register_hook(zero_q)


def _prepare_kv(model: nn.Module) -> None:
    model.requires_grad_(False)
    for layer in attention_layers(model):
        for sub in layer.kv_modules():
            sub.requires_grad_(True)
        if layer.fused:
            _mask_query_columns(layer.module.c_attn)


def _prepare_lora(model: nn.Module, seed: int) -> nn.Module:
    from peft import LoraConfig, get_peft_model

    if any(layer.fused for layer in attention_layers(model)):
        raise ValueError(
            "method='lora' cannot target GPT-2's fused c_attn: PEFT adapts whole layers, so an adapter there would "
            "also change the query projection. Use method='kv' (trains K and V, the Q columns masked) or "
            "method='full'."
        )
    torch.manual_seed(seed)
    config = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["k_proj", "v_proj"], bias="none")
    return get_peft_model(model, config)


def _trainable_copy(model: nn.Module) -> nn.Module:
    """A deep copy; a model with weights offloaded by accelerate is materialised on CPU.

    Offloaded weights are reloaded from their offload store at every forward, so an
    optimizer step on them would be lost: training needs real tensors.
    """
    if not any(p.device.type == "meta" for p in model.parameters()):
        return copy.deepcopy(model)
    from accelerate.utils.modeling import get_state_dict_offloaded_model

    state = get_state_dict_offloaded_model(model)
    fresh = type(model)._from_config(copy.deepcopy(model.config))
    missing, unexpected = fresh.load_state_dict(state, strict=False)
    tied = set(getattr(fresh, "all_tied_weights_keys", {}) or {})
    if unexpected or set(missing) - tied:
        raise RuntimeError(f"could not materialise the offloaded model: missing {missing}, unexpected {unexpected}.")
    if hasattr(fresh, "tie_weights"):
        fresh.tie_weights()
    return fresh.eval()


class _ExampleDataset(torch.utils.data.Dataset):
    def __init__(self, examples: Sequence[Sequence[int]]):
        self.examples = [list(e) for e in examples]

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict:
        ids = torch.tensor(self.examples[i], dtype=torch.long)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}


def _collate(batch: list[dict]) -> dict:
    # Batch size is 1: nothing to pad.
    return {k: torch.stack([b[k] for b in batch]) for k in batch[0]}


def _training_arguments(output_dir: str, learning_rate: float, seed: int, on_cpu: bool):
    """The paper's regime as ``TrainingArguments``: plain SGD, constant rate, one epoch, batch 1, in order."""
    from transformers import TrainingArguments

    return TrainingArguments(
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
        logging_strategy="no",
        eval_strategy="no",
        disable_tqdm=True,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        use_cpu=on_cpu,
    )


def finetune_model(
    model: nn.Module,
    examples: Sequence[Sequence[int]],
    options: AnalysisOptions | None = None,
    *,
    on_train_start=None,
    callbacks: Sequence = (),
) -> nn.Module:
    """Return a finetuned deep copy of ``model`` (see the module docstring for the regime).

    Args:
        model: a causal LM; left unchanged.
        examples: token-id lists, one training example each, in training order.
        options: ``method``, ``learning_rate`` and ``seed`` (dropout, LoRA initialisation) are used.
        on_train_start: optional ``callable(copy) -> context manager`` entered around
            training (the analysis records the training tokens' query vectors with it).
        callbacks: extra ``TrainerCallback``s (the analysis's progress bar).
    """
    from transformers import PrinterCallback, Trainer

    options = options or AnalysisOptions()
    if not examples:
        raise ValueError("`examples` is empty; finetuning needs at least one demonstration.")
    tuned = _trainable_copy(model)
    trained = tuned
    if options.method == "kv":
        _prepare_kv(tuned)
    elif options.method == "lora":
        trained = _prepare_lora(tuned, options.seed)
    else:
        tuned.requires_grad_(True)

    on_cpu = all(p.device.type == "cpu" for p in tuned.parameters())
    with tempfile.TemporaryDirectory(prefix="hf-metaopt-ft-") as out:
        args = _training_arguments(out, options.learning_rate, options.seed, on_cpu)
        trainer = Trainer(
            model=trained, args=args, train_dataset=_ExampleDataset(examples), data_collator=_collate, callbacks=list(callbacks)
        )
        trainer.remove_callback(PrinterCallback)  # it prints the final log line to stdout
        # Batch size 1, no accumulation: the model's own mean over its shifted labels is the loss. Passing
        # the Trainer's token count instead divides by one label too many for models whose loss type
        # transformers does not recognise (GPT2LMHeadModel), shrinking every step by (N-1)/N.
        trainer.model_accepts_loss_kwargs = False
        with on_train_start(tuned) if on_train_start is not None else nullcontext():
            trainer.train()
    if options.method == "lora":
        tuned = trained.merge_and_unload()
    tuned.requires_grad_(False)
    tuned.eval()
    return tuned
