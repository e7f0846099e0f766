"""``pipeline("icl-analysis")``: compare in-context learning with finetuning on one model.

    import hf_metaopt
    from transformers import pipeline

    analyzer = pipeline("icl-analysis", model=model, tokenizer=tokenizer)
    report = analyzer(demonstrations, queries, template="Review: {text} Sentiment:",
                      label_words=[" Negative", " Positive"], learning_rate=1e-3, seed=0)
    report = analyzer(task="mr", n_demonstrations=32, n_queries=200, seed=1)

An analysis is one job over a whole set of queries rather than a per-item
preprocess/forward/postprocess flow, so :meth:`ICLAnalyzer.__call__` runs those three
steps once on the full request instead of Pipeline's per-item batching; model,
tokenizer and device handling are Pipeline's. Every option is a field of
:class:`~hf_metaopt.analysis.AnalysisOptions` (one set of defaults, validated there).
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from transformers import AutoModelForCausalLM, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY

from .. import tasks
from ..analysis import inference
from ..analysis.engine import run_planned
from ..analysis.options import AnalysisOptions
from ..analysis.plan import plan_analysis, plan_task
from ..analysis.prompts import PromptFormat, validate_examples
from ..analysis.report import ICLAnalysisReport
from ..model_id import model_identity
from ..tasks.balance import balanced_draw
from ..torch_utils import context_length

__all__ = ["ICLAnalyzer", "TASK_NAME"]

TASK_NAME = "icl-analysis"


@dataclass
class _Request:
    options: AnalysisOptions
    task: tasks.TaskSpec | None = None
    prompt: PromptFormat | None = None
    demonstrations: Any = None
    queries: Any = None
    provenance: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    progress: bool = False
    return_scores: bool = False


def _prompt(template: str | None, label_words: Sequence[str] | None, separator: str | None) -> PromptFormat:
    for name, value in (("template", template), ("label_words", label_words)):
        if value is None:
            raise ValueError(
                f"`{name}` is required: call analyzer(demonstrations, queries, template=..., label_words=[...]) "
                "or analyzer(task='mr', ...)."
            )
    if isinstance(label_words, str):
        # As the command line reads --label-words: "Negative,Positive" is (" Negative", " Positive").
        label_words = tasks.parse_label_words(label_words)
    return PromptFormat(template, tuple(label_words), "\n" if separator is None else separator)


def _drawn(request: _Request, explicit: bool) -> _Request:
    """The request with ``n_demonstrations`` of its given demonstrations, as a data file's train rows are drawn.

    ``n_demonstrations`` passed: refused if more than were given (as ``--n-demonstrations`` is for a
    ``--data-file``), else the first that many (or, with ``balanced_demonstrations``, a class-balanced
    draw, the rule of ``tasks.select_examples``). Not passed: all of them (balanced: up to the default).
    """
    options = request.options
    if not explicit and not options.balanced_demonstrations:
        return request
    rows = validate_examples(request.demonstrations, "demonstrations", request.prompt)
    if explicit and options.n_demonstrations > len(rows):
        raise ValueError(
            f"`demonstrations` holds {len(rows)} examples, fewer than the {options.n_demonstrations} demonstrations asked for; "
            f"pass n_demonstrations={len(rows)} (--n-demonstrations {len(rows)}) or more demonstrations."
        )
    if not options.balanced_demonstrations:
        positions, notes = list(range(options.n_demonstrations)), []
    else:
        positions, notes = balanced_draw([r["label"] for r in rows], options.n_demonstrations, request.prompt.label_words, options.seed)
    return replace(request, demonstrations=[rows[i] for i in positions], provenance={"demonstration_ids": positions}, notes=notes)


class ICLAnalyzer(Pipeline):
    """Runs Dai et al.'s ICL-vs-finetuning analysis and returns an :class:`ICLAnalysisReport`.

    Call with ``(demonstrations, queries, template=..., label_words=[...], separator="\\n")``
    or with ``task="mr"`` (a registered name or a :class:`~hf_metaopt.tasks.TaskSpec`; its
    template, label words and separator unless given). ``label_words`` is a list of words used as
    given, or one comma-separated string read as ``--label-words`` is (each word gets a leading
    space: ``"Negative,Positive"`` is ``(" Negative", " Positive")``). A template field that is
    ``None`` or NaN in an example is refused (it would be printed as "None"). Label words follow the
    rule of ``docs/analysis.md`` ("Prompts"): after a template ending in a visible character such as
    ``:``, a word without a leading space gets one, with a note (the command line does the same).

    ``progress``: show progress bars (default ``None``: when stderr is a terminal, as tqdm and the
    Trainer do; ``hf-metaopt analyze --progress/--no-progress``). ``model_id``: the Hub id of a
    model loaded from a local folder, for the report's titles, card and links (default: its
    ``config._name_or_path`` if that is a Hub id, else the folder's name, marked local, no link).
    ``return_scores``: ``True`` sets ``report.scores``, the per-query scores behind the report's means
    (:class:`~hf_metaopt.analysis.QueryScores`; ``save_pretrained`` writes them as ``scores.safetensors``);
    default ``False``: ``report.scores`` is ``None``.

    Every other keyword is an :class:`~hf_metaopt.analysis.AnalysisOptions` field (``n_demonstrations``,
    ``n_queries``, ``learning_rate``, ``method``, ``position``, ``seed``, ``start_token``, ``control`` (``"untrained"``,
    ``"shuffled_labels"``, both as ``"untrained+shuffled_labels"`` or a list), ``permutations`` (the demonstrations in
    that many orders), ``max_demonstrations``, ``batch_size``, ``n_bootstrap``, ``fast``, ``split``,
    ``balanced_demonstrations``). Given demonstrations are used as given (up to
    ``max_demonstrations``, those that fit the context); ``n_demonstrations=k`` passed uses the
    first k and refuses fewer than k given, as ``--n-demonstrations`` does for a ``--data-file``;
    with ``balanced_demonstrations=True`` a class-balanced ``n_demonstrations`` of them are chosen
    (per label the first in the given order, interleaved in seeded rounds). Either way
    ``report["config"]["demonstrations_used"]`` holds their positions in the given list.
    """

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        inference.check_causal_lm(self.model)
        if self.tokenizer is None:
            raise ValueError("icl-analysis needs a tokenizer: pass tokenizer=... to pipeline().")

    # -------------------------------------------------------------- Pipeline API
    def _sanitize_parameters(self, **kwargs):
        return {}, kwargs, {}

    def __call__(self, demonstrations: Any = None, queries: Any = None, **kwargs) -> ICLAnalysisReport:
        """Run one analysis (see the class docstring) and return its report."""
        request = self.preprocess({"demonstrations": demonstrations, "queries": queries, **kwargs})
        return self.postprocess(self._forward(request))

    def preprocess(self, inputs: dict) -> _Request:
        """Split prompt, task and run arguments from the options, and validate them all before any compute."""
        inputs = dict(inputs)
        task = inputs.pop("task", None)
        prompt_args = {k: inputs.pop(k, None) for k in ("template", "label_words", "separator")}
        demonstrations, queries = inputs.pop("demonstrations", None), inputs.pop("queries", None)
        progress = inputs.pop("progress", None)
        progress = sys.stderr.isatty() if progress is None else progress
        if not isinstance(progress, bool):
            raise ValueError(f"`progress` must be True, False or None (None: on when stderr is a terminal); got {progress!r}.")
        return_scores = inputs.pop("return_scores", False)
        if not isinstance(return_scores, bool):
            raise ValueError(f"`return_scores` must be True or False; got {return_scores!r}.")
        model_id = inputs.pop("model_id", None)
        identity = model_identity(None, model_id) if model_id is not None else {}
        options = AnalysisOptions.from_kwargs(**inputs)
        if task is None:
            prompt = _prompt(**prompt_args)
            request = _Request(options, prompt=prompt, demonstrations=demonstrations, queries=queries, progress=progress,
                               return_scores=return_scores)
            request = _drawn(request, explicit="n_demonstrations" in inputs)
            return replace(request, provenance={**request.provenance, **identity})
        if demonstrations is not None or queries is not None:
            raise ValueError("pass either `task=` or `demonstrations` and `queries`, not both.")
        spec = tasks.get_task(task)
        overrides = {k: (tasks.parse_label_words(v) if k == "label_words" and isinstance(v, str) else tuple(v) if k == "label_words" else v)
                     for k, v in prompt_args.items() if v is not None}
        return _Request(options, task=replace(spec, **overrides) if overrides else spec, provenance=identity, progress=progress,
                        return_scores=return_scores)

    def _forward(self, request: _Request) -> ICLAnalysisReport:
        # The same two steps as `hf-metaopt analyze`: plan (examples, prefix fit), then run the plan.
        length = context_length(self.model)
        if request.task is not None:
            plan = plan_task(self.tokenizer, request.task, request.options, max_length=length)
        else:
            plan = plan_analysis(self.tokenizer, request.demonstrations, request.queries, request.prompt, request.options,
                                 max_length=length, notes=request.notes)
        report = run_planned(self.model, plan, request.options, provenance=request.provenance, progress=request.progress).report
        return report if request.return_scores else report.with_scores(None)

    def postprocess(self, report: ICLAnalysisReport) -> ICLAnalysisReport:
        return report

    # ------------------------------------------------------------ helpers
    def finetune(
        self, demonstrations: Any, *, template: str, label_words: Sequence[str], separator: str = "\n", **options
    ):
        """A stand-alone finetuned copy of the model, as the analysis trains it (the pipeline's model is unchanged).

        Trains on the start token + ``d_i`` for the first ``max_demonstrations`` demonstrations, in
        order. The analysis also drops demonstrations that do not fit the ICL context; pass the
        ones it used (``report["config"]["n_demonstrations"]``) to match it exactly.
        """
        prompt = _prompt(template, label_words, separator)
        return inference.finetune(self.model, self.tokenizer, demonstrations, prompt, AnalysisOptions.from_kwargs(**options))

    def predict(
        self,
        queries: Any,
        demonstrations: Any = None,
        *,
        template: str,
        label_words: Sequence[str],
        separator: str = "\n",
        model: Any = None,
        **options,
    ) -> list[int]:
        """Predicted label index per query: zero-shot, or in context of ``demonstrations``.

        ``model`` (default: the pipeline's) scores the label words: the argmax of the mean
        log-probability of each word's tokens after the prompt.
        """
        prompt = _prompt(template, label_words, separator)
        predictions, notes = inference.predict(
            self.model if model is None else model, self.tokenizer, queries, prompt,
            AnalysisOptions.from_kwargs(**options), demonstrations,
        )
        for note in notes:
            warnings.warn(note, stacklevel=2)
        return predictions


PIPELINE_REGISTRY.register_pipeline(TASK_NAME, pipeline_class=ICLAnalyzer, pt_model=AutoModelForCausalLM, type="text")
