"""The ICL-vs-finetuning analysis of one model on given demonstrations and queries.

:func:`run_analysis` runs three steps a reader can name: finetune on the demonstrations
while recording each training token's query vectors (for Kendall), holding beside the
model only what trains (:func:`~.finetune.finetuned`: K/V copies, LoRA adapters, or a full
copy for ``method="full"``); score the queries in length-sorted batches through the ZSL,
ICL and FT routes (:class:`~.scores.ScoreCollector` turns each batch into metric scores at
once, so memory stays flat in the number of queries); summarise. The finetuning's loss per
step and on the demonstrations before and after go into ``report["finetuning"]``; after the
finetuned tensors are released, the stability check reruns the finetuning in float64
(:mod:`.stability`). The untrained control repeats the steps (without the stability check)
on a randomly initialised copy, built after the main run's finetuned tensors are released.
Notes are return values, collected into the report.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..torch_utils import context_length, eval_mode
from .batch_size import resolve_batch_size
from .capture import AttentionRecorder
from .environment import environment
from .finetune import FinetunedModel, finetuned
from .inference import check_causal_lm, length_batches
from ..model_id import model_identity
from .label_balance import label_balance_notes, label_counts, prediction_counts
from .notes import accuracy_notes, finetuning_notes, visibility_notes
from .options import AnalysisOptions
from .progress import AnalysisProgress
from .plan import AnalysisPlan, plan_analysis
from .prompts import IclPrefix, PromptEncoder, PromptFormat
from .report import ICLAnalysisReport
from .routes import RouteRunner
from .scores import ScoreCollector
from .stability import ParameterUpdates, float64_stability, skipped_stability
from .training_log import LossRecorder, demonstration_loss, finetuning_summary

__all__ = ["AnalysisResult", "planned_batch_size", "run_analysis", "run_planned", "untrained_copy"]


@dataclass
class AnalysisResult:
    """What :func:`run_analysis` returns: the report and the notes it holds."""

    report: ICLAnalysisReport
    notes: list[str]


@dataclass
class _ModelRun:
    summary: dict
    n_used: int
    notes: list[str]
    finetuning: dict


def run_analysis(
    model: nn.Module,
    tokenizer: Any,
    demonstrations: Any,
    queries: Any,
    prompt: PromptFormat,
    options: AnalysisOptions | None = None,
    *,
    provenance: Mapping[str, Any] | None = None,
    notes: Sequence[str] = (),
    extra: Mapping[str, Any] | None = None,
    progress: bool = False,
) -> AnalysisResult:
    """Run the whole analysis (``docs/analysis.md``) and return its report: :func:`~.plan.plan_analysis`, then :func:`run_planned`.

    Args:
        model, tokenizer: a transformers causal LM and its tokenizer; the model is not modified.
        demonstrations, queries: mappings (or ``datasets.Dataset``) with the template's fields and ``label``.
        prompt: template, label words and separator.
        options: the analysis options (defaults: :class:`AnalysisOptions`).
        provenance: facts recorded in ``report["config"]`` (``task``, ``split``, ``model``,
            ``model_source``, ``demonstration_ids``, ``query_ids``, ...).
        notes: notes from earlier steps (e.g. selecting the examples), first in the report's notes.
        extra: more top-level report entries (e.g. ``selection``, the dev-split grid).
        progress: show a bar over finetuning steps and query batches.
    """
    options = options or AnalysisOptions()
    check_causal_lm(model)
    plan = plan_analysis(tokenizer, demonstrations, queries, prompt, options, max_length=context_length(model),
                         provenance=provenance, notes=notes)
    return run_planned(model, plan, options, extra=extra, progress=progress)


def run_planned(
    model: nn.Module,
    plan: AnalysisPlan,
    options: AnalysisOptions,
    *,
    provenance: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    progress: bool = False,
) -> AnalysisResult:
    """Run the analysis of ``plan`` (:mod:`.plan`, made with this model's tokenizer and context length) on ``model``.

    ``provenance``: more facts for ``report["config"]`` (where the model came from), beside the plan's.
    """
    check_causal_lm(model)
    encoder, demos, queries, prompt = plan.encoder, plan.demonstrations, plan.queries, plan.encoder.prompt
    notes = list(plan.notes)
    query_ids = [encoder.query_ids(q) for q in queries]
    batch_size = planned_batch_size(model, plan, options, query_ids)
    run_options = dataclasses.replace(options, batch_size=batch_size)
    with eval_mode(model), AnalysisProgress(progress) as bar:
        skip = None if options.stability_check else "off (stability_check=False)"
        main = _analyze_model(model, encoder, plan.prefix, queries, query_ids, run_options, plan.pad_id, bar, skip)
        notes += main.notes
        controls = {}
        if options.control == "untrained":
            control = _analyze_model(untrained_copy(model, options.seed), encoder, plan.prefix, queries, query_ids, run_options,
                                     plan.pad_id, bar, "not run for the untrained control")
            controls["untrained"] = {k: control.summary[k] for k in ("accuracy", "rec2ftp", "simaou", "simam", "kendall", "topk_recall")}
            controls["untrained"]["label_counts"] = {"predictions": prediction_counts(control.summary, len(prompt.label_words))}
            controls["untrained"]["finetuning"] = control.finetuning
            notes += [f"untrained control: {n}" for n in control.notes]
    counts = label_counts([d["label"] for d in demos[: main.n_used]], main.summary, len(prompt.label_words))
    notes += label_balance_notes(counts, prompt.label_words, options.balanced_demonstrations)
    notes += accuracy_notes(main.summary, len(queries))
    config = _config(model, encoder, options, main.n_used, len(queries), {**plan.provenance, **(provenance or {})})
    config["batch_size_used"] = batch_size
    report = {**main.summary, "label_counts": counts, "finetuning": main.finetuning, "controls": controls, "config": config,
              "notes": notes, **(extra or {})}
    return AnalysisResult(ICLAnalysisReport(report), notes)


def planned_batch_size(model: nn.Module, plan: AnalysisPlan, options: AnalysisOptions, query_ids: Sequence[Sequence[int]]) -> int:
    """``options.batch_size`` for the passes of ``plan`` on ``model``: the number given, or ``"auto"`` fitted to the free
    memory (:func:`~.batch_size.resolve_batch_size`) for the ICL route's passes, the longest of the three."""
    prefix = len(plan.prefix.ids)
    where = {"cached": prefix} if options.fast else {"context": prefix}
    return resolve_batch_size(options.batch_size, model, query_ids, plan.encoder.label_ids, **where)


def _analyze_model(model, encoder: PromptEncoder, prefix: IclPrefix, queries, query_ids, options: AnalysisOptions, pad_id: int,
                   bar, skip_stability: str | None) -> _ModelRun:
    notes: list[str] = []
    batches = length_batches(query_ids, options.batch_size)
    bar.add_phase(prefix.n_demonstrations + len(batches))
    examples = [encoder.start_ids + ids for ids in prefix.demo_ids]  # each training example: start token + d_i
    losses, updates = LossRecorder(), None if skip_stability else ParameterUpdates()
    loss_before = demonstration_loss(model, examples)
    with _finetune_and_record(model, encoder, examples, prefix, options, bar, losses, updates) as (tuned, token_queries):
        collector = ScoreCollector(token_queries, prefix.demo_owner, options.seed, top_k_tokens=options.top_k_tokens,
                                   top_k_examples=options.top_k_examples, kendall_queries=options.kendall_queries)
        del token_queries
        _score_batches(model, tuned, encoder, prefix, query_ids, batches, options, pad_id, collector, bar)
        with tuned.active():
            loss_after = demonstration_loss(tuned.model, examples)
    # Leaving the block released the finetuned tensors (LoRA: removed the adapters) before anything
    # else, the float64 rerun and an untrained control included, is built.
    labels = [q["label"] for q in queries]
    summary = collector.summary(labels, options.n_bootstrap)
    notes += visibility_notes(collector.visibility(), len(prefix.demo_positions), model.config)
    finetuning = finetuning_summary(losses.losses, loss_before, loss_after, options.learning_rate)
    if skip_stability:
        finetuning["stability"] = skipped_stability(skip_stability)
    else:
        bar.add_phase(len(examples))  # the rerun's finetuning steps; its prediction passes are not counted
        finetuning["stability"] = float64_stability(
            model, examples, query_ids, encoder.start_ids, encoder.label_ids, options, pad_id, summary["predictions"]["ft"],
            labels, updates, callbacks=[bar.trainer_callback()],
        )
    notes += finetuning_notes(finetuning)
    return _ModelRun(summary, prefix.n_demonstrations, notes, finetuning)


def _score_batches(model, tuned: FinetunedModel, encoder: PromptEncoder, prefix: IclPrefix, query_ids, batches,
                   options: AnalysisOptions, pad_id: int, collector: ScoreCollector, bar) -> None:
    """Every batch of queries through the ZSL, ICL and FT routes, scored into ``collector``."""
    base = RouteRunner(model, encoder.label_ids, options.position, pad_id)
    ft_route = RouteRunner(tuned.model, encoder.label_ids, options.position, pad_id)
    cache = base.prefix_cache(prefix.ids) if options.fast else None
    for batch in batches:
        ids = [query_ids[i] for i in batch]
        zsl = base.run(ids, encoder.start_ids)
        icl = base.run(ids, prefix.ids, cache=cache, demo_positions=prefix.demo_positions)
        with tuned.active():
            ft = ft_route.run(ids, encoder.start_ids)
        collector.add(batch, zsl, icl, ft)
        bar.update()


@contextmanager
def _finetune_and_record(model, encoder: PromptEncoder, examples, prefix: IclPrefix, options, bar,
                         losses: LossRecorder, updates: ParameterUpdates | None):
    """The finetuned model and, per layer, ``[H, T_demo, Dh]``: each demonstration token's query during its step.

    ``losses`` records every step's loss; ``updates`` (optional) what each trained parameter moved.
    """
    recorders: list[AttentionRecorder] = []

    def record(module: nn.Module):
        recorder = AttentionRecorder(module)
        recorders.append(recorder)
        return _recording_queries(recorder, len(encoder.start_ids), updates.tracking(module) if updates else nullcontext())

    callbacks = [bar.trainer_callback(), losses]
    with finetuned(model, examples, options, on_train_start=record, callbacks=callbacks) as tuned:
        token_queries = recorders.pop().take_token_queries()
        if token_queries[0].shape[1] != len(prefix.demo_positions):
            raise RuntimeError(
                f"finetuning recorded {token_queries[0].shape[1]} demonstration tokens but the ICL prefix holds "
                f"{len(prefix.demo_positions)}; the model's attention was not fully captured."
            )
        yield tuned, token_queries


@contextmanager
def _recording_queries(recorder: AttentionRecorder, skip: int, tracking):
    with recorder.recording(), recorder.collecting_queries(skip=skip), tracking:
        yield recorder


def untrained_copy(model: nn.Module, seed: int) -> nn.Module:
    """The untrained control: ``model``'s architecture freshly initialised from ``seed``, on its device and dtype."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    fresh = AutoModelForCausalLM.from_config(copy.deepcopy(model.config))  # from_config writes to the config it gets
    parameter = next(p for p in model.parameters() if p.device.type != "meta")
    return fresh.to(device=parameter.device, dtype=parameter.dtype).eval()


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    from .._version import __version__

    def installed(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:  # hf-metaopt run from a checkout on PYTHONPATH, not installed
            return __version__ if name == "hf-metaopt" else None

    return {name.replace("-", "_"): installed(name) for name in ("hf-metaopt", "transformers", "torch", "peft")}


def _identity(model) -> dict:
    """``model`` and ``model_id`` (:func:`~hf_metaopt.model_id.model_identity`): never the local path the weights came from."""
    name_or_path = getattr(model.config, "_name_or_path", None)
    return model_identity(name_or_path) if name_or_path else {"model": type(model).__name__, "model_id": None}


def _config(model, encoder: PromptEncoder, options: AnalysisOptions, n_used: int, n_queries: int, provenance: Mapping) -> dict:
    """``report["config"]``: every option, the prompt, what was used, and where the model came from."""
    facts = dict(provenance)
    ids = facts.pop("demonstration_ids", None)
    ids = list(ids)[:n_used] if ids is not None else list(range(n_used))
    parameter = next(model.parameters())
    return {
        **_identity(model),
        "model_revision": getattr(model.config, "_commit_hash", None),
        "task": None,
        **options.to_dict(),
        "template": encoder.prompt.template,
        "label_words": list(encoder.prompt.label_words),
        "separator": encoder.prompt.separator,
        "start_token_used": encoder.start_token,
        "n_demonstrations": n_used,
        "n_queries": n_queries,
        "demonstrations_used": [i if isinstance(i, (int, str)) else str(i) for i in ids],
        "dtype": str(parameter.dtype).removeprefix("torch."),
        **facts,
        "versions": _versions(),
        "environment": environment(model),
    }
