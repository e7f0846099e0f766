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
Notes are return values, collected into the report. The per-query scores behind the report's
means (:class:`~.query_scores.QueryScores`) come with it: ``result.scores`` and ``report.scores``.

With ``permutations=P > 1`` the same demonstrations are analysed in ``P - 1`` more orders after the
main run (:mod:`.orders`; the ICL prefix re-concatenated from the planned segments, the finetuning
in the same order, the ZSL route's outputs kept from the main run and reused), one at a time, each
leaving only its summary (``report["permutations"]``). The shuffled-label control
(:mod:`.shuffled_labels`) analyses the pretrained model on relabelled demonstrations (ZSL reused
too). Every finetuned copy is released before the next is made, and the verdict
(:mod:`.verdict`) compares the main run with each control and baseline query by query.
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

from ..torch_utils import context_length, eval_mode, placed_like
from .batch_size import resolve_batch_size
from .capture import AttentionRecorder
from .environment import environment
from .finetune import FinetunedModel, finetuned
from .inference import check_causal_lm, length_batches
from .layer_causal import layer_causal_layout
from ..model_id import model_identity
from .label_balance import label_balance_notes, label_counts, prediction_counts
from .notes import accuracy_notes, finetuning_notes, visibility_notes
from .options import AnalysisOptions
from .orders import demonstration_orders, orders_report
from .progress import AnalysisProgress
from .plan import AnalysisPlan, plan_analysis
from .prompts import IclPrefix, PromptEncoder, PromptFormat
from .query_scores import QueryScores
from .report import ICLAnalysisReport
from .routes import RouteOutput, RouteRunner
from .scores import ScoreCollector
from .scores_meta import scores_meta
from .shuffled_labels import relabelled, shuffle_summary, shuffled_labels
from .stability import ParameterUpdates, float64_stability, skipped_stability
from .training_log import LossRecorder, demonstration_loss, finetuning_summary, recorded_losses
from .verdict import verdict

__all__ = ["AnalysisResult", "CONTROL_KEYS", "planned_batch_size", "run_analysis", "run_planned", "untrained_copy"]

# The summary keys a control's report holds (report.py: ``controls``), beside its label counts and finetuning.
CONTROL_KEYS = ("accuracy", "rec2ftp", "rec2ftp_counts", "change_recall", "change_recall_ci95", "change_recall_counts",
                "simaou", "simam", "kendall", "topk_recall", "label_shift")


@dataclass
class AnalysisResult:
    """What :func:`run_analysis` returns: the report, the notes it holds, and its per-query scores
    (also ``report.scores``; written beside ``report.json`` by ``report.save_pretrained``)."""

    report: ICLAnalysisReport
    notes: list[str]
    scores: QueryScores | None = None


@dataclass
class _ModelRun:
    summary: dict
    n_used: int
    notes: list[str]
    finetuning: dict
    rows: dict  # ScoreCollector.collected(): per-query rows in query order
    inspected: dict  # ScoreCollector.inspected()
    heads: int


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
    The steps, each releasing its finetuned tensors before the next builds any: the main run (order 0),
    its float64 stability rerun, the other demonstration orders, the shuffled-label control, the
    untrained control.
    """
    check_causal_lm(model)
    encoder, demos, queries, prompt = plan.encoder, plan.demonstrations, plan.queries, plan.encoder.prompt
    orders = demonstration_orders(plan.prefix.n_demonstrations, options.permutations, options.seed)
    notes = list(plan.notes)
    query_ids = [encoder.query_ids(q) for q in queries]  # tokenised once: every run below passes the same queries
    batch_size = planned_batch_size(model, plan, options, query_ids)
    config_options, options = options, dataclasses.replace(options, batch_size=batch_size)
    with eval_mode(model), AnalysisProgress(progress) as bar:
        skip = None if options.stability_check else "off (stability_check=False)"
        # The ZSL route does not depend on the demonstrations: kept for the later orders and the shuffled-label control.
        zsl = [] if len(orders) > 1 or "shuffled_labels" in options.controls else None
        main = _analyze_model(model, encoder, plan.prefix, queries, query_ids, options, plan.pad_id, bar, skip, options.n_inspect, keep_zsl=zsl)
        notes += main.notes
        permutations = None
        if len(orders) > 1:
            summaries, losses = [main.summary], [main.finetuning["loss_per_step"]]
            for order in orders[1:]:
                summary, loss = _order_run(model, encoder, encoder.reordered(plan.prefix, order), queries, query_ids, options, plan.pad_id,
                                           bar, zsl)
                summaries.append(summary)
                losses.append(loss)
            permutations = orders_report(orders, summaries, losses)
            del summaries
        controls, control_rows = {}, {}
        if "shuffled_labels" in options.controls:
            control, shuffle, control_notes = _shuffled_control(model, plan, query_ids, options, bar, zsl)
            control_rows["shuffled_labels"] = control.rows
            controls["shuffled_labels"] = _control_report(control, len(prompt.label_words), shuffle=shuffle)
            notes += [f"shuffled-label control: {n}" for n in control_notes + control.notes]
        zsl = None
        if "untrained" in options.controls:
            control = _analyze_model(untrained_copy(model, options.seed), encoder, plan.prefix, queries, query_ids, options, plan.pad_id,
                                     bar, "not run for the untrained control", n_inspect=0)
            control_rows["untrained"] = control.rows
            controls["untrained"] = _control_report(control, len(prompt.label_words))
            notes += [f"untrained control: {n}" for n in control.notes]
    # In the order of CONTROL_NAMES, whatever order they ran in.
    controls, control_rows = {name: controls[name] for name in options.controls}, {name: control_rows[name] for name in options.controls}
    counts = label_counts([d["label"] for d in demos[: main.n_used]], main.summary, len(prompt.label_words))
    notes += label_balance_notes(counts, prompt.label_words, options.balanced_demonstrations)
    notes += accuracy_notes(main.summary, len(queries))
    config = _config(model, encoder, config_options, main.n_used, len(queries), {**plan.provenance, **(provenance or {})})
    config["batch_size_used"] = batch_size
    judged = verdict(main.summary["labels"], main.rows, control_rows, kendall_queries=main.summary["kendall"]["n_queries"],
                     n_bootstrap=options.n_bootstrap, seed=options.seed)
    report = {**main.summary, "label_counts": counts, "finetuning": main.finetuning, "controls": controls, "verdict": judged,
              **({"permutations": permutations} if permutations else {}), "config": config, "notes": notes, **(extra or {})}
    meta = scores_meta(plan, model.config, config, heads=main.heads, demo_visible=main.rows["demo_visible"],
                       n_inspect=len(main.inspected.get("query_index", ())), kendall_queries=main.summary["kendall"]["n_queries"],
                       controls=list(control_rows))
    scores = QueryScores.from_rows(main.summary["labels"], main.rows, main.inspected, control_rows, meta)
    return AnalysisResult(ICLAnalysisReport(report).with_scores(scores), notes, scores)


def planned_batch_size(model: nn.Module, plan: AnalysisPlan, options: AnalysisOptions, query_ids: Sequence[Sequence[int]]) -> int:
    """``options.batch_size`` for the passes of ``plan`` on ``model``: the number given, or ``"auto"`` fitted to the free
    memory (:func:`~.batch_size.resolve_batch_size`) for the ICL route's passes, the longest of the three."""
    prefix = len(plan.prefix.ids)
    where = {"cached": prefix} if options.fast else {"context": prefix}
    return resolve_batch_size(options.batch_size, model, query_ids, plan.encoder.label_ids, **where)


def _control_report(control: _ModelRun, n_labels: int, shuffle: dict | None = None) -> dict:
    """``report["controls"][name]``: the summary keys of :data:`CONTROL_KEYS`, label counts and finetuning."""
    report = {k: control.summary[k] for k in CONTROL_KEYS}
    report["label_counts"] = {"predictions": prediction_counts(control.summary, n_labels)}
    if shuffle is not None:
        report["label_counts"]["demonstrations"] = [shuffle["labels"].count(i) for i in range(n_labels)]
        report["shuffle"] = shuffle
    report["finetuning"] = control.finetuning
    return report


def _shuffled_control(model, plan: AnalysisPlan, query_ids, options: AnalysisOptions, bar, zsl) -> tuple[_ModelRun, dict, list[str]]:
    """The shuffled-label control: the demonstrations used, their labels permuted, re-encoded and fitted to the context."""
    encoder, demos = plan.encoder, plan.demonstrations[: plan.prefix.n_demonstrations]
    original = [d["label"] for d in demos]
    labels = shuffled_labels(original, options.seed)
    prefix, notes = encoder.fit_prefix(relabelled(demos, labels), plan.queries, context_length(model))
    kept = prefix.n_demonstrations
    if len(set(original)) == 1:
        notes.append("the demonstrations share one label, so shuffling leaves every label as it was: this control repeats "
                     "the pretrained analysis.")
    run = _analyze_model(model, encoder, prefix, plan.queries, query_ids, options, plan.pad_id, bar,
                         "not run for the shuffled-label control", n_inspect=0, zsl=zsl)
    return run, shuffle_summary(original[:kept], labels[:kept]), notes


def _analyze_model(model, encoder: PromptEncoder, prefix: IclPrefix, queries, query_ids, options: AnalysisOptions, pad_id: int, bar,
                   skip_stability: str | None, n_inspect: int, *, zsl: Sequence[RouteOutput] | None = None,
                   keep_zsl: list | None = None) -> _ModelRun:
    """One model's analysis on one prefix: finetune, score every batch, summarise, rerun in float64 (unless skipped).

    ``zsl``: the ZSL outputs of every batch, reused instead of rerun; ``keep_zsl``: a list that collects them.
    """
    notes: list[str] = []
    batches = length_batches(query_ids, options.batch_size)
    bar.add_phase(prefix.n_demonstrations + len(batches))
    examples = [encoder.start_ids + ids for ids in prefix.demo_ids]  # each training example: start token + d_i
    losses, updates = LossRecorder(), None if skip_stability else ParameterUpdates()
    # The layer-causal methods' losses are their objective's; an unsupported model is refused here, before any training.
    layout = layer_causal_layout(model, examples[0]) if options.layer_causal else None
    loss_before = demonstration_loss(model, examples, layout)
    with _finetune_and_record(model, encoder, examples, prefix, options, bar, losses, updates) as (tuned, token_queries):
        collector = ScoreCollector(token_queries, prefix.demo_owner, options.seed, top_k_tokens=options.top_k_tokens,
                                   top_k_examples=options.top_k_examples, kendall_queries=options.kendall_queries,
                                   n_inspect=n_inspect)
        del token_queries
        _score_batches(model, tuned, encoder, prefix, query_ids, batches, options, pad_id, collector, bar, zsl, keep_zsl)
        with tuned.active():
            loss_after = demonstration_loss(tuned.model, examples, layout)
    # Leaving the block released the finetuned tensors (LoRA: removed the adapters) before anything
    # else, the float64 rerun and an untrained control included, is built.
    labels = [q["label"] for q in queries]
    summary = collector.summary(labels, options.n_bootstrap)
    notes += visibility_notes(collector.visibility(), len(prefix.demo_positions), model.config)
    finetuning = finetuning_summary(losses.losses, loss_before, loss_after, options.learning_rate,
                                    "layer_causal" if options.layer_causal else "causal_lm")
    if skip_stability:
        finetuning["stability"] = skipped_stability(skip_stability)
    else:
        bar.add_phase(len(examples))  # the rerun's finetuning steps; its prediction passes are not counted
        finetuning["stability"] = float64_stability(
            model, examples, query_ids, encoder.start_ids, encoder.label_ids, options, pad_id, summary["predictions"]["ft"],
            labels, updates, callbacks=[bar.trainer_callback()],
        )
    notes += finetuning_notes(finetuning)
    return _ModelRun(summary, prefix.n_demonstrations, notes, finetuning, collector.collected(), collector.inspected(),
                     collector.token_queries[0].shape[0])


def _order_run(model, encoder: PromptEncoder, prefix: IclPrefix, queries, query_ids, options: AnalysisOptions, pad_id: int, bar,
               zsl: Sequence[RouteOutput]) -> tuple[dict, list[float | None]]:
    """One more demonstration order: finetune in the prefix's order, score ICL and FT (ZSL reused); its summary and
    its loss per step. Nothing else of it is kept (no per-query rows, no stability rerun, no loss before / after)."""
    batches = length_batches(query_ids, options.batch_size)
    bar.add_phase(prefix.n_demonstrations + len(batches))
    examples = [encoder.start_ids + ids for ids in prefix.demo_ids]
    losses = LossRecorder()
    with _finetune_and_record(model, encoder, examples, prefix, options, bar, losses, None) as (tuned, token_queries):
        collector = ScoreCollector(token_queries, prefix.demo_owner, options.seed, top_k_tokens=options.top_k_tokens,
                                   top_k_examples=options.top_k_examples, kendall_queries=options.kendall_queries)
        del token_queries
        _score_batches(model, tuned, encoder, prefix, query_ids, batches, options, pad_id, collector, bar, zsl)
    summary = collector.summary([q["label"] for q in queries], options.n_bootstrap)
    return summary, recorded_losses(losses.losses)


def _score_batches(model, tuned: FinetunedModel, encoder: PromptEncoder, prefix: IclPrefix, query_ids, batches,
                   options: AnalysisOptions, pad_id: int, collector: ScoreCollector, bar,
                   zsl_outputs: Sequence[RouteOutput] | None = None, keep_zsl: list | None = None) -> None:
    """Every batch of queries through the ZSL, ICL and FT routes, scored into ``collector``.

    ``zsl_outputs``: each batch's ZSL output from an earlier run (same queries, same batches), used instead of
    rerunning ZSL; ``keep_zsl``: a list to which each batch's ZSL output is appended (what the scores read of it).
    """
    base = RouteRunner(model, encoder.label_ids, options.position, pad_id)
    ft_route = RouteRunner(tuned.model, encoder.label_ids, options.position, pad_id)
    cache = base.prefix_cache(prefix.ids) if options.fast else None
    for b, batch in enumerate(batches):
        ids = [query_ids[i] for i in batch]
        zsl = zsl_outputs[b] if zsl_outputs is not None else base.run(ids, encoder.start_ids)
        if keep_zsl is not None:
            keep_zsl.append(RouteOutput(logprobs=zsl.logprobs, output=zsl.output, own=zsl.own))
        icl = base.run(ids, prefix.ids, cache=cache, demo_positions=prefix.demo_positions, inspect=collector.inspects(batch))
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
    """The untrained control: ``model``'s architecture freshly initialised from ``seed``, on its device and dtype
    (on the CPU for a model accelerate dispatched: :func:`~hf_metaopt.torch_utils.placed_like`)."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    fresh = AutoModelForCausalLM.from_config(copy.deepcopy(model.config))  # from_config writes to the config it gets
    device, dtype = placed_like(model)
    return fresh.to(device=device, dtype=dtype).eval()


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
