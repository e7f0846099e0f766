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
tokenizer and device handling are Pipeline's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from transformers import AutoModelForCausalLM, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY

from ..analysis.engine import check_causal_lm, predict as _predict, resolve_pad_id, run_analysis, validate_options
from ..analysis.finetune import finetune_model
from ..analysis.prompts import PromptEncoder, validate_examples
from ..analysis.report import ICLAnalysisReport

__all__ = ["ICLAnalyzer", "TASK_NAME"]

TASK_NAME = "icl-analysis"

_OPTIONS = {
    "template": None,
    "label_words": None,
    "separator": "\n",
    "learning_rate": 1e-3,
    "method": "kv",
    "position": "prediction",
    "seed": 0,
    "control": None,
    "max_demonstrations": 32,
    "batch_size": 8,
    "n_bootstrap": 1000,
    "fast": True,
}
_TASK_OPTIONS = {"task": None, "n_demonstrations": 32, "n_queries": 200, "split": None}


class ICLAnalyzer(Pipeline):
    """Runs Dai et al.'s ICL-vs-finetuning analysis and returns an :class:`ICLAnalysisReport`.

    Call with ``(demonstrations, queries, template=..., label_words=[...])`` or with
    ``task="mr", n_demonstrations=32, n_queries=200, seed=1``. Options: ``separator``
    (``"\\n"``), ``learning_rate`` (1e-3), ``method`` (``"kv"`` | ``"lora"`` | ``"full"``),
    ``position`` (``"prediction"`` | ``"label"``), ``seed`` (0), ``control`` (``None`` |
    ``"untrained"``), ``max_demonstrations`` (32), ``batch_size`` (8), ``n_bootstrap``
    (1000) and ``fast`` (True: reuse the demonstration prefix's cache; False: the
    per-query reference route).
    """

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        check_causal_lm(self.model)
        if self.tokenizer is None:
            raise ValueError("icl-analysis needs a tokenizer: pass tokenizer=... to pipeline().")

    # -------------------------------------------------------------- Pipeline API
    def _sanitize_parameters(self, **kwargs):
        unknown = sorted(set(kwargs) - set(_OPTIONS) - set(_TASK_OPTIONS))
        if unknown:
            raise TypeError(f"icl-analysis got unknown option(s) {unknown}; valid: {sorted({**_OPTIONS, **_TASK_OPTIONS})}.")
        return {}, dict(kwargs), {}

    def __call__(self, demonstrations: Any = None, queries: Any = None, **kwargs) -> ICLAnalysisReport:
        """Run one analysis (see the class docstring) and return its report."""
        self._sanitize_parameters(**kwargs)
        request = self.preprocess({"demonstrations": demonstrations, "queries": queries, **kwargs})
        return self.postprocess(self._forward(request))

    def preprocess(self, inputs: dict) -> dict:
        """Resolve a task name into examples and options; fill defaults."""
        inputs = dict(inputs)
        task = inputs.pop("task", None)
        task_args = {k: inputs.pop(k, v) for k, v in _TASK_OPTIONS.items() if k != "task"}
        demonstration_ids = None
        if task is not None:
            if inputs.get("demonstrations") is not None or inputs.get("queries") is not None:
                raise ValueError("pass either `task=` or `demonstrations` and `queries`, not both.")
            from .. import tasks

            seed = inputs.get("seed", _OPTIONS["seed"])
            demos, queries, spec = tasks.prepare(
                task, n_demonstrations=task_args["n_demonstrations"], n_queries=task_args["n_queries"],
                seed=seed, split=task_args["split"],
            )
            inputs["demonstrations"], inputs["queries"] = demos, queries
            for key in ("template", "label_words", "separator"):
                if inputs.get(key) is None:
                    inputs[key] = getattr(spec, key)
            task = spec.name
            demonstration_ids = [d.get("idx", i) for i, d in enumerate(demos)]
        for key in ("demonstrations", "queries", "template", "label_words"):
            if inputs.get(key) is None:
                raise ValueError(
                    f"`{key}` is required: call analyzer(demonstrations, queries, template=..., label_words=[...]) "
                    "or analyzer(task='mr', ...)."
                )
        options = {k: inputs.get(k, v) for k, v in _OPTIONS.items()}
        return {
            "demonstrations": inputs["demonstrations"],
            "queries": inputs["queries"],
            "task": task,
            "demonstration_ids": demonstration_ids,
            **options,
        }

    def _forward(self, request: dict) -> dict:
        report, finetuned = run_analysis(self.model, self.tokenizer, **request)
        self.last_finetuned_model = finetuned
        return report

    def postprocess(self, report: dict) -> ICLAnalysisReport:
        return ICLAnalysisReport(report)

    # ------------------------------------------------------------ helpers
    def finetune(
        self,
        demonstrations: Any,
        *,
        template: str,
        label_words: Sequence[str],
        separator: str = "\n",
        learning_rate: float = 1e-3,
        method: str = "kv",
        seed: int = 0,
        max_demonstrations: int = 32,
    ):
        """The finetuned copy of the model the analysis uses (the pipeline's model is unchanged).

        Trains on ``d_i = template.format(**ex) + label_words[ex["label"]]`` for the first
        ``max_demonstrations`` demonstrations, in order (see :mod:`hf_metaopt.analysis.finetune`).
        The analysis also drops demonstrations that do not fit the ICL context; pass
        the same demonstrations it used (``report["config"]["n_demonstrations"]``) to match it.
        """
        validate_options(
            learning_rate=learning_rate, method=method, position="prediction", control=None,
            max_demonstrations=max_demonstrations, batch_size=1, n_bootstrap=1, seed=seed,
        )
        encoder = PromptEncoder(self.tokenizer, template, label_words, separator)
        demos = validate_examples(demonstrations, "demonstrations", template, encoder.label_words)
        examples = [encoder.training_ids(d) for d in demos[:max_demonstrations]]
        was_training = self.model.training
        self.model.eval()
        try:
            return finetune_model(self.model, examples, method=method, learning_rate=learning_rate, seed=seed)
        finally:
            self.model.train(was_training)

    def predict(
        self,
        queries: Any,
        demonstrations: Any = None,
        *,
        template: str,
        label_words: Sequence[str],
        separator: str = "\n",
        model: Any = None,
        batch_size: int = 8,
    ) -> list[int]:
        """Predicted label index per query: zero-shot, or in context of ``demonstrations``.

        ``model`` (default: the pipeline's) scores the label words: the argmax of the mean
        log-probability of each word's tokens after the prompt.
        """
        model = self.model if model is None else model
        check_causal_lm(model)
        encoder = PromptEncoder(self.tokenizer, template, label_words, separator)
        queries = validate_examples(queries, "queries", template, encoder.label_words)
        demos = None
        if demonstrations is not None and len(demonstrations) > 0:
            demos = validate_examples(demonstrations, "demonstrations", template, encoder.label_words)
        pad_id, _ = resolve_pad_id(self.tokenizer)
        was_training = model.training
        model.eval()
        try:
            return _predict(model, encoder, queries, demos, pad_id=pad_id, batch_size=batch_size)
        finally:
            model.train(was_training)


PIPELINE_REGISTRY.register_pipeline(TASK_NAME, pipeline_class=ICLAnalyzer, pt_model=AutoModelForCausalLM, type="text")
