"""Evaluation after pretraining: validation perplexity by context length (the paper's
Table 6) and in-context accuracy on the offline tasks (Table 7)."""

from __future__ import annotations

import math
import torch

from .corpus import pack_blocks

__all__ = ["perplexity_by_context", "icl_accuracy", "fitting_shots"]


@torch.no_grad()
def perplexity_by_context(model, tokenizer, validation, context_lengths, batch_size: int = 8) -> list[dict]:
    """Perplexity of ``model`` on the ``validation`` text cut into blocks of each length.

    Lengths above the model's ``max_position_embeddings`` are capped there: each
    entry records the requested and the used ``context`` (and ``capped``). The
    loss is averaged over every predicted token of every full block.
    """
    max_positions = model.config.max_position_embeddings
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    results = []
    try:
        measured: dict[int, dict] = {}
        for requested in context_lengths:
            context = min(int(requested), max_positions)
            if context in measured:  # capped to a length already measured
                results.append({**measured[context], "requested_context": int(requested), "capped": True})
                continue
            blocks = pack_blocks(validation, tokenizer, context)
            ids = torch.tensor(blocks["input_ids"], dtype=torch.long)
            if len(ids) == 0:
                raise ValueError(
                    f"validation: fewer than {context} tokens, too few for perplexity at context {context}; "
                    "hold out more documents (--validation_documents)"
                )
            total, count = 0.0, 0
            for start in range(0, len(ids), batch_size):
                batch = ids[start : start + batch_size].to(device)
                loss = model(input_ids=batch, labels=batch).loss
                n = batch.shape[0] * (batch.shape[1] - 1)
                total += loss.item() * n
                count += n
            loss = total / count
            measured[context] = {
                "requested_context": int(requested), "context": context, "capped": context < int(requested),
                "loss": loss, "perplexity": math.exp(loss), "tokens": count, "blocks": len(ids),
            }
            results.append(measured[context])
    finally:
        model.train(was_training)
    return results


def fitting_shots(tokenizer, demonstrations, queries, spec, k: int, max_positions: int) -> int:
    """The largest ``k' <= k`` such that every query's ICL prompt (plus its longest label word) fits.

    Counts tokens exactly as the analysis engine feeds them (its :class:`PromptEncoder`).
    """
    if k == 0:
        return 0
    encoder = _encoder(tokenizer, spec)
    try:
        prefix, _ = encoder.fit_prefix(list(demonstrations)[:k], queries, max_positions)
    except ValueError:  # not even one demonstration fits
        return 0
    return prefix.n_demonstrations


def _zero_shot_fits(encoder, query, max_positions: int) -> bool:
    longest_label = max(len(ids) for ids in encoder.label_ids)
    return len(encoder.start_ids) + len(encoder.query_ids(query)) + longest_label <= max_positions


def _encoder(tokenizer, spec):
    from ..analysis.prompts import PromptEncoder
    from ..analysis.run import prompt_format

    return PromptEncoder(tokenizer, prompt_format(spec))


def icl_accuracy(model, tokenizer, tasks, shots, n_queries: int, seed: int) -> list[dict]:
    """Accuracy of ``model`` on each offline task with ``k`` demonstrations for each ``k`` in ``shots``.

    Goes through the analysis's predictions (:func:`hf_metaopt.analysis.inference.predict`) and the task registry.
    Each ``k`` is reduced to the largest count whose prompts fit the context;
    reduced counts that repeat an earlier one are skipped, and queries whose prompt
    alone exceeds the context are left out (``n_queries`` counts those used). Entries hold
    ``task, requested_shots, shots, accuracy, n_queries``.
    """
    from ..analysis.inference import predict
    from ..analysis.run import prompt_format
    from ..tasks.prepare import select_examples

    max_positions = model.config.max_position_embeddings
    results = []
    for task in tasks:
        done = set()
        for requested in sorted(set(shots)):
            chosen = select_examples(task, n_demonstrations=max(requested, 1), n_queries=n_queries, seed=seed)
            demos, queries, spec = list(chosen.demonstrations), chosen.queries, chosen.spec
            encoder = _encoder(tokenizer, spec)
            queries = [q for q in queries if _zero_shot_fits(encoder, q, max_positions)]
            if not queries:
                break  # even a lone query exceeds the model's context
            k = fitting_shots(tokenizer, demos, queries, spec, requested, max_positions)
            if k in done:
                continue
            done.add(k)
            predictions, _ = predict(model, tokenizer, queries, prompt_format(spec), demonstrations=demos[:k] if k else None)
            labels = [int(q["label"]) for q in queries]
            correct = sum(int(p == y) for p, y in zip(predictions, labels))
            results.append({
                "task": task, "requested_shots": requested, "shots": k,
                "accuracy": correct / len(labels), "n_queries": len(labels),
            })
    return results
