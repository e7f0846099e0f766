"""The ICL-vs-finetuning analysis: three routes over the same queries, then the metrics.

:func:`run_analysis` builds the prompts, finetunes a copy of the model on the
demonstrations (recording the training tokens' query vectors for Kendall), runs the
ZSL, ICL and FT routes over the queries in batches and turns each batch's captures
into per-(query, layer) metric scores right away, so memory stays flat in the number
of queries. The result is a dictionary in the schema of
:mod:`hf_metaopt.analysis.report`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch import nn

from . import metrics
from .capture import AttentionRecorder
from .finetune import METHODS, finetune_model
from .prompts import PromptEncoder, validate_examples
from .routes import RouteRunner

__all__ = ["POSITIONS", "CONTROLS", "run_analysis", "check_causal_lm", "predict", "resolve_pad_id", "validate_options"]

POSITIONS = ("prediction", "label")
CONTROLS = (None, "untrained")
_RANDOM_SEED_STRIDE = 1_000_003  # per-query seeds for the random baselines, independent of batching


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
        raise ValueError("the tokenizer has neither a pad token nor an EOS token; set tokenizer.pad_token first.")
    return int(tokenizer.eos_token_id), [
        "the tokenizer has no pad token: padded with its EOS token (padding is masked and never scored)."
    ]


def validate_options(
    *, learning_rate, method, position, control, max_demonstrations, batch_size, n_bootstrap, seed
) -> None:
    """Raise ``ValueError``/``TypeError`` naming the bad argument and the fix."""
    if isinstance(learning_rate, bool) or not isinstance(learning_rate, (int, float)) or not learning_rate > 0:
        raise ValueError(f"`learning_rate` must be a number > 0 (e.g. 1e-3); got {learning_rate!r}.")
    if method not in METHODS:
        raise ValueError(f"`method` must be one of {list(METHODS)}; got {method!r}.")
    if position not in POSITIONS:
        raise ValueError(f"`position` must be one of {list(POSITIONS)}; got {position!r}.")
    if control not in CONTROLS:
        raise ValueError(f"`control` must be None or 'untrained'; got {control!r}.")
    for name, value in (("max_demonstrations", max_demonstrations), ("batch_size", batch_size), ("n_bootstrap", n_bootstrap)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name}` must be a positive int; got {value!r}.")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"`seed` must be an int; got {seed!r}.")


def _context_length(model: nn.Module) -> int | None:
    config = model.config
    for name in ("max_position_embeddings", "n_positions", "n_ctx", "max_sequence_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def predict(
    model: nn.Module,
    encoder: PromptEncoder,
    queries: Sequence[dict],
    demonstrations: Sequence[dict] | None = None,
    *,
    pad_id: int,
    batch_size: int = 8,
) -> list[int]:
    """Predicted label index per query, zero-shot or with ``demonstrations`` in context."""
    runner = RouteRunner(model, encoder.label_ids, "prediction", pad_id)
    context, cache = list(encoder.special_prefix), None
    if demonstrations:
        prefix, notes = encoder.fit_prefix(demonstrations, queries, _context_length(model))
        for note in notes:
            warnings.warn(note, stacklevel=2)
        context, cache = prefix.ids, runner.prefix_cache(prefix.ids)
    query_ids = [encoder.query_ids(q) for q in queries]
    predictions = [0] * len(queries)
    for batch in _length_batches(query_ids, batch_size):
        out = runner.run([query_ids[i] for i in batch], context, cache=cache)
        for i, label in zip(batch, out.logprobs.argmax(axis=1)):
            predictions[i] = int(label)
    return predictions


def _length_batches(query_ids: Sequence[Sequence[int]], batch_size: int) -> list[list[int]]:
    """Query indices in batches of similar length, so right padding wastes little compute.

    Results are put back in query order by the callers; batching never changes a score.
    """
    order = sorted(range(len(query_ids)), key=lambda i: (len(query_ids[i]), i))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


@contextmanager
def _record_training_queries(recorder: AttentionRecorder, skip: int):
    recorder.all_queries, recorder.skip = True, skip
    try:
        with recorder.recording():
            yield
    finally:
        recorder.all_queries = False


def _collect(store: dict, key: str, value: np.ndarray) -> None:
    store.setdefault(key, []).append(value)


def _analyze_model(
    model: nn.Module,
    encoder: PromptEncoder,
    demonstrations: list[dict],
    queries: list[dict],
    *,
    pad_id: int,
    learning_rate: float,
    method: str,
    position: str,
    seed: int,
    batch_size: int,
    n_bootstrap: int,
    fast: bool,
) -> dict:
    notes: list[str] = []
    prefix, fit_notes = encoder.fit_prefix(demonstrations, queries, _context_length(model))
    for note in fit_notes:
        warnings.warn(note, stacklevel=3)
    notes.extend(fit_notes)
    used = demonstrations[: prefix.n_demonstrations]

    train_ids = [encoder.training_ids(d) for d in used]
    train_queries: list[list] = []

    def on_train_start(tuned):
        recorder = AttentionRecorder(tuned)
        train_queries.append(recorder)
        return _record_training_queries(recorder, len(encoder.special_prefix))

    finetuned = finetune_model(
        model, train_ids, method=method, learning_rate=learning_rate, seed=seed, on_train_start=on_train_start
    )
    # [L, H, T_demo, Dh]: every demonstration token's query vector during its training step
    token_queries = np.stack([torch.cat(per_layer, dim=1).numpy() for per_layer in train_queries[0].token_queries])
    if token_queries.shape[2] != len(prefix.demo_positions):
        raise RuntimeError(
            f"finetuning recorded {token_queries.shape[2]} demonstration tokens but the ICL prefix holds "
            f"{len(prefix.demo_positions)}; the model's attention was not fully captured."
        )

    base = RouteRunner(model, encoder.label_ids, position, pad_id)
    tuned = RouteRunner(finetuned, encoder.label_ids, position, pad_id)
    cache = base.prefix_cache(prefix.ids) if fast else None
    specials = list(encoder.special_prefix)
    acc: dict[str, list] = {}
    query_ids = [encoder.query_ids(q) for q in queries]
    processed: list[int] = []  # query index of each row of the collected arrays
    for batch in _length_batches(query_ids, batch_size):
        processed.extend(batch)
        ids = [query_ids[i] for i in batch]
        zsl = base.run(ids, specials)
        icl = base.run(ids, prefix.ids, cache=cache, demo_positions=prefix.demo_positions)
        ft = tuned.run(ids, specials)
        for name, route in (("zsl", zsl), ("icl", icl), ("ft", ft)):
            _collect(acc, f"pred_{name}", route.logprobs.argmax(axis=1))
        _collect(acc, "simaou", metrics.simaou_scores(zsl.output, icl.output, ft.output))
        _collect(acc, "simaou_raw", metrics.simaou_scores(zsl.output, icl.output, ft.output, normalize=False))
        simam = metrics.simam_scores(zsl.own, icl.own, ft.own)
        for part in ("before", "after", "delta"):
            _collect(acc, f"simam_{part}", simam[part])
        icl_demo = list(icl.demo)
        ft_demo = list(np.einsum("blhd,lhtd->blt", ft.query, token_queries))
        _collect(acc, "kendall", metrics.kendall_scores(icl_demo, ft_demo))
        for row, q_index in enumerate(batch):
            query_seed = seed * _RANDOM_SEED_STRIDE + q_index
            one = slice(row, row + 1)
            _collect(acc, "simaou_random", metrics.simaou_random_scores(zsl.output[one], icl.output[one], seed=query_seed))
            _collect(acc, "kendall_random", metrics.kendall_random_scores(icl_demo[one], seed=query_seed))

    # Rows were collected in length order: put them back in query order.
    restore = np.argsort(np.array(processed))
    collected = {k: np.concatenate(v)[restore] for k, v in acc.items()}
    labels = np.array([q["label"] for q in queries])
    preds = {k: collected[f"pred_{k}"] for k in ("zsl", "icl", "ft")}
    correct = {k: preds[k] == labels for k in preds}
    scores = {k: v for k, v in collected.items() if not k.startswith("pred_")}

    simaou = metrics.summarize_layers(scores["simaou"], n_resamples=n_bootstrap, seed=seed)
    rand = metrics.summarize_layers(scores["simaou_random"])
    raw = metrics.summarize_layers(scores["simaou_raw"], n_resamples=n_bootstrap, seed=seed)
    simam = {}
    for part in ("before", "after", "delta"):
        s = metrics.summarize_layers(scores[f"simam_{part}"], n_resamples=n_bootstrap, seed=seed)
        simam[f"per_layer_{part}"], simam[part], simam[f"{part}_ci95"] = s["per_layer"], s["mean"], s["ci95"]
    kendall_rand = metrics.summarize_layers(scores["kendall_random"])
    kendall = metrics.summarize_layers(scores["kendall"], n_resamples=n_bootstrap, seed=seed)

    return {
        "accuracy": {k: float(correct[k].mean()) for k in ("zsl", "icl", "ft")},
        "accuracy_ci95": {
            k: metrics.bootstrap_ci(correct[k].astype(np.float64), n_resamples=n_bootstrap, seed=seed)
            for k in ("zsl", "icl", "ft")
        },
        "predictions": {k: [int(p) for p in preds[k]] for k in ("zsl", "icl", "ft")},
        "labels": [int(x) for x in labels],
        "rec2ftp": metrics.rec2ftp(correct["zsl"], correct["icl"], correct["ft"]),
        "rec2ftp_ci95": metrics.rec2ftp_bootstrap_ci(
            correct["zsl"], correct["icl"], correct["ft"], n_resamples=n_bootstrap, seed=seed
        ),
        "simaou": {
            "per_layer": simaou["per_layer"],
            "mean": simaou["mean"],
            "ci95": simaou["ci95"],
            "random_mean": rand["mean"],
            "random_per_layer": rand["per_layer"],
            "unnormalized_per_layer": raw["per_layer"],
            "unnormalized_mean": raw["mean"],
            "unnormalized_ci95": raw["ci95"],
        },
        "simam": simam,
        "kendall": {**kendall, "random_mean": kendall_rand["mean"], "random_per_layer": kendall_rand["per_layer"]},
        "_used": prefix.n_demonstrations,
        "_notes": notes,
        "_finetuned": finetuned,
    }


def _accuracy_notes(result: dict, n_queries: int) -> list[str]:
    """Explain a run in which in-context learning did not beat zero-shot."""
    acc, ci = result["accuracy"], result["accuracy_ci95"]
    if acc["icl"] > acc["zsl"]:
        return []
    overlap = ci["icl"][1] >= ci["zsl"][0] and ci["zsl"][1] >= ci["icl"][0]
    why = (
        f"their 95% intervals overlap (ICL {ci['icl']}, ZSL {ci['zsl']}), so with {n_queries} queries the "
        "difference is not significant"
        if overlap
        else "the gap exceeds the bootstrap intervals: the demonstrations hurt this model"
    )
    return [
        f"ICL accuracy {acc['icl']:.3f} did not exceed ZSL accuracy {acc['zsl']:.3f}: {why}. Small models gain "
        "little from demonstrations (the paper's gains are for 1.3B/2.7B models); the similarity metrics compare "
        "the direction of the updates and remain defined."
    ]


def _versions() -> dict:
    import peft
    import transformers

    from .. import __version__

    return {"hf_metaopt": __version__, "transformers": transformers.__version__, "torch": torch.__version__, "peft": peft.__version__}


def _untrained_copy(model: nn.Module, seed: int) -> nn.Module:
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    fresh = AutoModelForCausalLM.from_config(model.config)
    fresh.to(next(p for p in model.parameters() if p.device.type != "meta").device)
    return fresh.eval()


def run_analysis(
    model: nn.Module,
    tokenizer: Any,
    demonstrations: Any,
    queries: Any,
    *,
    template: str,
    label_words: Sequence[str],
    separator: str = "\n",
    learning_rate: float = 1e-3,
    method: str = "kv",
    position: str = "prediction",
    seed: int = 0,
    control: str | None = None,
    max_demonstrations: int = 32,
    batch_size: int = 8,
    n_bootstrap: int = 1000,
    fast: bool = True,
    task: str | None = None,
    demonstration_ids: Sequence[Any] | None = None,
) -> tuple[dict, nn.Module]:
    """Run the whole analysis; returns the report dictionary and the finetuned model.

    ``fast=False`` feeds each query's full ICL prompt on its own (the reference route);
    ``fast=True`` reuses the demonstration prefix's cache for every query batch.
    """
    validate_options(
        learning_rate=learning_rate, method=method, position=position, control=control,
        max_demonstrations=max_demonstrations, batch_size=batch_size, n_bootstrap=n_bootstrap, seed=seed,
    )
    check_causal_lm(model)
    encoder = PromptEncoder(tokenizer, template, label_words, separator)
    demos = validate_examples(demonstrations, "demonstrations", template, encoder.label_words)
    queries = validate_examples(queries, "queries", template, encoder.label_words)
    notes: list[str] = []
    if len(demos) > max_demonstrations:
        notes.append(f"used the first {max_demonstrations} of {len(demos)} demonstrations (max_demonstrations).")
        demos = demos[:max_demonstrations]
    pad_id, pad_notes = resolve_pad_id(tokenizer)
    notes.extend(pad_notes)
    was_training = model.training
    model.eval()
    options = dict(
        pad_id=pad_id, learning_rate=learning_rate, method=method, position=position, seed=seed,
        batch_size=batch_size, n_bootstrap=n_bootstrap, fast=fast,
    )
    try:
        result = _analyze_model(model, encoder, demos, queries, **options)
        controls = {}
        if control == "untrained":
            untrained = _untrained_copy(model, seed)
            sub = _analyze_model(untrained, encoder, demos, queries, **options)
            controls["untrained"] = {k: sub[k] for k in ("accuracy", "rec2ftp", "simaou", "simam", "kendall")}
            notes.extend(f"untrained control: {n}" for n in sub["_notes"])
    finally:
        model.train(was_training)
    used = result.pop("_used")
    notes.extend(result.pop("_notes"))
    notes.extend(_accuracy_notes(result, len(queries)))
    finetuned = result.pop("_finetuned")
    ids = list(demonstration_ids)[:used] if demonstration_ids is not None else list(range(used))
    config = model.config
    result["controls"] = controls
    result["config"] = {
        "model": getattr(config, "_name_or_path", None) or type(model).__name__,
        "model_revision": getattr(config, "_commit_hash", None),
        "task": task,
        "template": template,
        "label_words": list(encoder.label_words),
        "separator": separator,
        "position": position,
        "method": method,
        "learning_rate": float(learning_rate),
        "seed": seed,
        "n_demonstrations": used,
        "n_queries": len(queries),
        "demonstrations_used": [i if isinstance(i, (int, str)) else str(i) for i in ids],
        "control": control,
        "max_demonstrations": max_demonstrations,
        "batch_size": batch_size,
        "n_bootstrap": n_bootstrap,
        "versions": _versions(),
    }
    result["notes"] = notes
    return result, finetuned
