"""Predictions and finetuning without metric capture: what the pipeline's helpers and dev selection use."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from ..torch_utils import context_length, eval_mode
from .batch_size import resolve_batch_size
from .finetune import finetune_model
from .options import AnalysisOptions
from .prompts import PromptEncoder, PromptFormat, validate_examples
from .routes import RouteRunner

__all__ = ["check_causal_lm", "finetune", "length_batches", "predict", "resolve_pad_id"]


def check_causal_lm(model: Any) -> None:
    """Raise ``TypeError`` unless ``model`` is a transformers causal LM with an LM head."""
    from transformers import GenerationMixin, PreTrainedModel

    if not isinstance(model, PreTrainedModel) or not isinstance(model, GenerationMixin):
        raise TypeError(
            f"`model` must be a transformers causal LM (e.g. AutoModelForCausalLM.from_pretrained(...)); "
            f"got {type(model).__name__}."
        )
    if model.get_output_embeddings() is None:
        raise TypeError(f"`model` {type(model).__name__} has no language-model head; load it with AutoModelForCausalLM.")


def resolve_pad_id(tokenizer: Any) -> tuple[int, list[str]]:
    """The padding id and notes: the tokenizer's pad token, else its EOS (said in a note)."""
    if tokenizer.pad_token_id is not None:
        return int(tokenizer.pad_token_id), []
    if tokenizer.eos_token_id is None:
        raise ValueError(
            "the tokenizer has neither a pad token nor an EOS token, so batches cannot be padded; set one first, "
            "e.g. tokenizer.add_special_tokens({'pad_token': '<pad>'}) (padding is masked and never scored)."
        )
    return int(tokenizer.eos_token_id), [
        "the tokenizer has no pad token: padded with its EOS token (padding is masked and never scored)."
    ]


def length_batches(query_ids: Sequence[Sequence[int]], batch_size: int) -> list[list[int]]:
    """Query indices in batches of similar length, so right padding wastes little compute.

    Callers put results back in query order; batching never changes a score.
    """
    order = sorted(range(len(query_ids)), key=lambda i: (len(query_ids[i]), i))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def predict(
    model: nn.Module,
    tokenizer: Any,
    queries: Any,
    prompt: PromptFormat,
    options: AnalysisOptions | None = None,
    demonstrations: Any = None,
) -> tuple[list[int], list[str]]:
    """``(predicted label per query, notes)``: zero-shot, or with ``demonstrations`` in context.

    The prompt protocol, start token and batching are the analysis's (``options.start_token``,
    ``options.batch_size``, ``"auto"`` fitted to the free memory); demonstrations that do not fit the context are dropped from the end
    and said in a note.
    """
    options = options or AnalysisOptions()
    check_causal_lm(model)
    encoder = PromptEncoder(tokenizer, prompt, options.start_token)
    queries = validate_examples(queries, "queries", prompt)
    pad_id, _ = resolve_pad_id(tokenizer)  # padding is masked, so it never changes a prediction: no note
    notes = list(encoder.notes)
    with eval_mode(model):
        runner = RouteRunner(model, encoder.label_ids, "prediction", pad_id, capture=False)
        context, cache = list(encoder.start_ids), None
        if demonstrations is not None and len(demonstrations) > 0:
            demos = validate_examples(demonstrations, "demonstrations", prompt)
            prefix, fit_notes = encoder.fit_prefix(demos[: options.max_demonstrations], queries, context_length(model))
            notes += fit_notes
            context, cache = prefix.ids, runner.prefix_cache(prefix.ids)
        query_ids = [encoder.query_ids(q) for q in queries]
        batch_size = resolve_batch_size(options.batch_size, model, query_ids, encoder.label_ids,
                                         **({"cached": len(context)} if cache is not None else {"context": len(context)}))
        predictions = [0] * len(queries)
        for batch in length_batches(query_ids, batch_size):
            out = runner.run([query_ids[i] for i in batch], context, cache=cache)
            for i, label in zip(batch, out.logprobs.argmax(axis=1)):
                predictions[i] = int(label)
    return predictions, notes


def finetune(model: nn.Module, tokenizer: Any, demonstrations: Any, prompt: PromptFormat, options: AnalysisOptions | None = None) -> nn.Module:
    """A stand-alone finetuned copy of ``model`` on the first ``options.max_demonstrations`` demonstrations.

    The examples are the analysis's FT training examples (start token + ``d_i``), in order.
    """
    options = options or AnalysisOptions()
    check_causal_lm(model)
    encoder = PromptEncoder(tokenizer, prompt, options.start_token)
    demos = validate_examples(demonstrations, "demonstrations", prompt)[: options.max_demonstrations]
    with eval_mode(model):
        return finetune_model(model, [encoder.training_ids(d) for d in demos], options)
