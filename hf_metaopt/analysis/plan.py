"""What an analysis runs on, fixed before the weights load: the examples, their token ids and the ICL prefix.

:func:`plan_analysis` (given demonstrations and queries) and :func:`plan_task` (a task's examples,
selected as the reference code does) need only the tokenizer and the model's context length
(``config.max_position_embeddings``), so a run that cannot work (no pad token, label words that
share a first token, not one demonstration fitting the context, fewer rows than asked for) is
refused before any weights load. The engine (:func:`~hf_metaopt.analysis.engine.run_planned`)
runs a plan as it is: every entry point (pipeline, ``hf-metaopt analyze``, recipes, sweep)
selects the examples and fits the prefix once, here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import tasks
from .inference import resolve_pad_id
from .options import AnalysisOptions
from .orders import check_orders
from .prompts import IclPrefix, PromptEncoder, PromptFormat, validate_examples

__all__ = ["AnalysisPlan", "plan_analysis", "plan_task", "prompt_format"]


def prompt_format(spec: tasks.TaskSpec) -> PromptFormat:
    """The task's template, label words and separator."""
    return PromptFormat(spec.template, tuple(spec.label_words), spec.separator)


@dataclass
class AnalysisPlan:
    """The inputs of one analysis, checked and tokenized.

    ``demonstrations`` are those in ``prefix`` (the ones that fit the context, in order);
    ``notes`` what planning changed or found; ``provenance`` the facts ``report["config"]`` records
    (task, split, the examples' rows).
    """

    encoder: PromptEncoder
    demonstrations: list[dict]
    queries: list[dict]
    prefix: IclPrefix
    pad_id: int
    notes: list[str] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)


def plan_analysis(
    tokenizer: Any,
    demonstrations: Any,
    queries: Any,
    prompt: PromptFormat,
    options: AnalysisOptions,
    *,
    max_length: int | None,
    provenance: Mapping[str, Any] | None = None,
    notes: Sequence[str] = (),
) -> AnalysisPlan:
    """Check and tokenize the examples and fit the ICL prefix into ``max_length`` tokens (``None``: unbounded).

    The first ``options.max_demonstrations`` demonstrations are kept; of those, as many as fit the
    context next to the longest query (dropped from the end, with a note).

    Raises:
        ValueError: bad examples, label words or start token, no pad token, not one demonstration fits, or more
            ``permutations`` than the demonstrations that fit have orders.
    """
    encoder = PromptEncoder(tokenizer, prompt, options.start_token)
    demos = validate_examples(demonstrations, "demonstrations", prompt)
    queries = validate_examples(queries, "queries", prompt)
    notes = list(notes) + encoder.notes
    if len(demos) > options.max_demonstrations:
        notes.append(f"used the first {options.max_demonstrations} of {len(demos)} demonstrations (max_demonstrations).")
        demos = demos[: options.max_demonstrations]
    pad_id, pad_notes = resolve_pad_id(tokenizer)
    prefix, fit_notes = encoder.fit_prefix(demos, queries, max_length)
    check_orders(prefix.n_demonstrations, options.permutations)
    return AnalysisPlan(encoder, demos[: prefix.n_demonstrations], queries, prefix, pad_id, notes + pad_notes + fit_notes,
                        dict(provenance or {}))


def plan_task(
    tokenizer: Any,
    task: str | tasks.TaskSpec,
    options: AnalysisOptions,
    *,
    max_length: int | None,
    data: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> AnalysisPlan:
    """:func:`plan_analysis` on ``task``'s examples, picked as the reference code does.

    Demonstrations are the train split shuffled with ``options.seed`` (the first
    ``options.n_demonstrations``; with ``options.balanced_demonstrations`` a class-balanced draw,
    :func:`~hf_metaopt.tasks.select_examples`); queries come from ``options.split`` (shuffled with
    seed 1, capped at ``options.n_queries``). A user-data task (:func:`~hf_metaopt.tasks.from_files`)
    with fewer train rows than ``n_demonstrations`` is refused (:func:`~hf_metaopt.tasks.check_sizes`);
    a registered one uses all it has, with a note.
    """
    spec = tasks.get_task(task)
    data = data if data is not None else spec.load()
    tasks.check_sizes(spec, data, options.n_demonstrations, options.n_queries, options.split)
    selection = tasks.select_examples(
        spec, options.n_demonstrations, options.n_queries, options.seed, split=options.split, data=data,
        balanced=options.balanced_demonstrations,
    )
    facts = {
        "task": spec.name,
        "split": options.split,
        "demonstration_ids": [d["idx"] for d in selection.demonstrations],
        "query_ids": [q["idx"] for q in selection.queries],
        **(provenance or {}),
    }
    return plan_analysis(tokenizer, selection.demonstrations, selection.queries, prompt_format(spec), options,
                         max_length=max_length, provenance=facts, notes=selection.notes)
