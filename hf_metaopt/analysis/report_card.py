"""The ICL-analysis card: a report rendered as a Hub model card, with its metrics as eval results.

:func:`render_analysis_card` fills the template ``model_cards/icl_analysis.md`` (found by
:func:`hf_metaopt.hub.cards.template_path`) with ``huggingface_hub.ModelCard.from_template`` and a
``ModelCardData`` header; :func:`eval_results_from_report` turns the report's metrics into the
``EvalResult`` entries the Hub shows in the model page's ``model-index``. The metric table is the
one ``report.md`` shows (:func:`~hf_metaopt.analysis.report_markdown.metric_rows`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..hub.cards import template_path
from ..model_id import display_name, hub_model_id, is_hub_id
from ..tasks.paper import PAPER_TASKS
from .label_shift import LABEL_SHIFTS
from .report_markdown import LABEL_SHIFT_ROWS, change_recall_text, metric_rows, rec2ftp_text
from .report_verdict import CONTROL_TITLES, cell_text, verdict_table

__all__ = ["PAPER_TASK_DATASETS", "dataset_of", "eval_results_from_report", "render_analysis_card"]

# Data set of each of the paper's tasks: (Hub id, config, evaluation split), from the task registry.
PAPER_TASK_DATASETS: dict[str, tuple[str, str | None, str]] = {
    spec.name: (spec.dataset_path, spec.dataset_name, spec.test_split) for spec in PAPER_TASKS
}


def _report_dict(report: Any) -> dict[str, Any]:
    if hasattr(report, "to_dict"):
        report = report.to_dict()
    if not isinstance(report, Mapping):
        raise TypeError(f"report must be an ICLAnalysisReport or its to_dict() mapping; got {type(report).__name__}.")
    for key in ("accuracy", "config"):
        if not isinstance(report.get(key), Mapping):
            raise ValueError(f"report lacks the {key!r} mapping (see the schema in hf_metaopt/analysis/report.py).")
    return dict(report)


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def dataset_of(config: Mapping[str, Any]) -> tuple[str, str | None, str | None]:
    """(Hub data set id, config, split) of a report: its config's ``dataset``/``dataset_config``/
    ``dataset_split`` keys if set, else the paper's table for its ``task``, else the task name."""
    task = str(config.get("task") or "custom")
    known = PAPER_TASK_DATASETS.get(task.lower())
    dataset_id = config.get("dataset") or (known[0] if known else task)
    dataset_config = config.get("dataset_config") or (known[1] if known else None)
    split = config.get("dataset_split") or config.get("split") or (known[2] if known else None)
    return str(dataset_id), dataset_config, split


def _metric_values(report: Mapping[str, Any]) -> list[tuple[str, str, str | None, float | None]]:
    """(metric type, display name, metric config, value) for every metric the model-index holds:
    the headline numbers, SimAM's delta, the random baselines and each control's values (the verdict's
    p-values are tests, not results of the model: they are in the card's table only)."""
    acc = report["accuracy"]
    simaou, simam, kendall = (_mapping(report.get(k)) for k in ("simaou", "simam", "kendall"))
    example_level = _mapping(kendall.get("example_level"))
    values = [
        ("accuracy", "Accuracy (ZSL)", "zsl", _finite(acc.get("zsl"))),
        ("accuracy", "Accuracy (ICL)", "icl", _finite(acc.get("icl"))),
        ("accuracy", "Accuracy (FT)", "ft", _finite(acc.get("ft"))),
        ("rec2ftp", "Rec2FTP", None, _finite(report.get("rec2ftp"))),
        ("simaou", "SimAOU", None, _finite(simaou.get("mean"))),
        ("simaou", "SimAOU, random-vector baseline", "random_baseline", _finite(simaou.get("random_mean"))),
        ("simam", "SimAM before finetuning", "before_finetuning", _finite(simam.get("before"))),
        ("simam", "SimAM after finetuning", "after_finetuning", _finite(simam.get("after"))),
        ("simam", "SimAM delta (of the updates)", "delta", _finite(simam.get("delta"))),
        ("kendall_tau", "Kendall", None, _finite(kendall.get("mean"))),
        ("kendall_tau", "Kendall, random-score baseline", "random_baseline", _finite(kendall.get("random_mean"))),
        ("kendall_tau", "Kendall (example level)", "example_level", _finite(example_level.get("mean"))),
        ("kendall_tau", "Kendall (example level), random-score baseline", "example_level_random_baseline",
         _finite(example_level.get("random_mean"))),
        *_topk_values(report, "", None),
        ("change_recall", "ChangeRecall", None, _finite(report.get("change_recall"))),
        *_label_shift_values(report, "", None),
    ]
    for control_name, control in _mapping(report.get("controls")).items():
        control = _mapping(control)
        c_acc, c_simaou, c_simam, c_kendall = (_mapping(control.get(k)) for k in ("accuracy", "simaou", "simam", "kendall"))
        title = CONTROL_TITLES.get(control_name, f"{control_name} control")
        values += [
            *(("accuracy", f"Accuracy ({route.upper()}), {title}", f"{control_name}_control_{route}",
               _finite(c_acc.get(route))) for route in ("zsl", "icl", "ft")),
            ("rec2ftp", f"Rec2FTP, {title}", f"{control_name}_control", _finite(control.get("rec2ftp"))),
            ("simaou", f"SimAOU, {title}", f"{control_name}_control", _finite(c_simaou.get("mean"))),
            ("simam", f"SimAM after finetuning, {title}", f"{control_name}_control_after_finetuning",
             _finite(c_simam.get("after"))),
            ("simam", f"SimAM delta, {title}", f"{control_name}_control_delta", _finite(c_simam.get("delta"))),
            ("kendall_tau", f"Kendall, {title}", f"{control_name}_control", _finite(c_kendall.get("mean"))),
            *_topk_values(control, f", {title}", f"{control_name}_control"),
            ("change_recall", f"ChangeRecall, {title}", f"{control_name}_control",
             _finite(control.get("change_recall"))),
            *_label_shift_values(control, f", {title}", f"{control_name}_control"),
        ]
    return values


def _config(prefix: str | None, name: str | None) -> str | None:
    """``metric_config`` of a variant: ``name`` under a control's ``prefix`` (``untrained_control_token_level``)."""
    return "_".join(p for p in (prefix, name) if p) or None


def _topk_values(part: Mapping[str, Any], suffix: str, prefix: str | None) -> list[tuple[str, str, str | None, float | None]]:
    """Top-k recall at both levels, with the random-ranking baselines (not for a control: they are about ``k / n`` whatever the model)."""
    recall = _mapping(part.get("topk_recall"))
    values = []
    for level, items in (("token_level", "tokens"), ("example_level", "demonstrations")):
        entry = _mapping(recall.get(level))
        if not entry:
            continue
        name = f"Top-{entry.get('k')} recall ({items})"
        values.append(("topk_recall", name + suffix, _config(prefix, level), _finite(entry.get("mean"))))
        if prefix is None:
            values.append(("topk_recall", f"{name}, random-ranking baseline", f"{level}_random_baseline",
                           _finite(entry.get("random_mean"))))
    return values


def _label_shift_values(part: Mapping[str, Any], suffix: str, prefix: str | None) -> list[tuple[str, str, str | None, float | None]]:
    """The six label-distribution shifts (``kl_icl_ft`` ... ``tv_ft_zsl``): metric type ``kl_divergence`` or ``total_variation``."""
    shift = _mapping(part.get("label_shift"))
    kinds = {"kl": ("kl_divergence", "KL({} ‖ {})"), "tv": ("total_variation", "TV({}, {})")}
    values = []
    for key, (a, b) in LABEL_SHIFTS.items():
        if key in shift:
            metric_type, pattern = kinds[key[:2]]
            name = f"{pattern.format(a.upper(), b.upper())} of the label distributions{suffix}"
            values.append((metric_type, name, _config(prefix, f"{a}_{b}"), _finite(_mapping(shift[key]).get("mean"))))
    return values


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def eval_results_from_report(report: Any) -> list[EvalResult]:
    """The report's headline metrics as Hub ``EvalResult`` entries (for the card's ``model-index``).

    Accuracy of ZSL, ICL and FT (``metric_config`` ``zsl``/``icl``/``ft``), Rec2FTP (left out when
    finetuning fixes no query), SimAOU and its random-vector baseline, SimAM before and after
    finetuning and its delta, Kendall's tau (token and example level) and their random-score
    baselines, top-k recall (``token_level``/``example_level``) and its random-ranking baseline,
    ChangeRecall (left out when no prediction changed), the label-distribution shifts
    (``kl_divergence`` / ``total_variation``, ``metric_config`` ``icl_ft``, ``icl_zsl``, ``ft_zsl``),
    and, for a report with a control (``control="untrained"``), the control's accuracies,
    Rec2FTP, SimAOU, SimAM after finetuning and delta, Kendall, top-k recall, ChangeRecall and the
    label shifts (``metric_config`` ``untrained_control...``); each with the data set id, config and
    split of the report's task and the settings as ``metric_args``. A metric the report lacks (or
    holds as ``None``) is left out.
    """
    data = _report_dict(report)
    config = data["config"]
    task = str(config.get("task") or "custom")
    dataset_id, dataset_config, split = dataset_of(config)
    args = {k: config[k] for k in ("method", "position", "learning_rate", "seed", "n_demonstrations") if config.get(k) is not None}
    results = []
    for metric_type, name, metric_config, value in _metric_values(data):
        if value is None:
            continue
        results.append(
            EvalResult(
                task_type="text-classification",
                task_name=f"In-context learning vs finetuning ({task})",
                dataset_type=dataset_id,
                dataset_name=task,
                dataset_config=dataset_config,
                dataset_split=split,
                metric_type=metric_type,
                metric_name=name,
                metric_config=metric_config,
                metric_value=round(value, 6),
                metric_args=args or None,
            )
        )
    return results


def _fmt(value: Any, percent: bool = False) -> str:
    value = _finite(value)
    if value is None:
        return "n/a"
    return f"{100 * value:.1f}%" if percent else f"{value:.3f}"


def _fmt_ci(ci: Any, percent: bool = False) -> str:
    if not isinstance(ci, Sequence) or len(ci) != 2 or any(_finite(v) is None for v in ci):
        return ""
    return f"[{_fmt(ci[0], percent)}, {_fmt(ci[1], percent)}]"


def _metric_rows(report: Mapping[str, Any]) -> list[dict[str, str]]:
    acc, acc_ci = report["accuracy"], report.get("accuracy_ci95") or {}
    n_labels = len(report["config"].get("label_words") or [])
    chance = f"{100 / n_labels:.1f}% (chance)" if n_labels else ""
    rows = [
        {"name": f"Accuracy ({s.upper()})", "value": _fmt(acc.get(s), True), "ci95": _fmt_ci(acc_ci.get(s), True), "baseline": chance}
        for s in ("zsl", "icl", "ft")
    ]
    # The four metrics as report.md shows them: one rendering for the report and its card.
    rows += [{"name": n, "value": v, "ci95": c, "baseline": "" if b == "-" else b} for n, v, c, b in metric_rows(dict(report))]
    return rows


def _control_rows(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per control the report holds, its table: ``{"name", "rows": [{"name", "value"}]}``."""
    tables = []
    for name, control in (report.get("controls") or {}).items():
        acc = control.get("accuracy") or {}
        rows = [{"name": f"Accuracy ({s.upper()})", "value": _fmt(acc.get(s), True)} for s in ("zsl", "icl", "ft") if s in acc]
        rows.append({"name": "Rec2FTP", "value": rec2ftp_text(control)})  # a fraction, as in the main table
        for key, label, sub in (("simaou", "SimAOU", "mean"), ("simam", "SimAM after finetuning", "after"), ("kendall", "Kendall", "mean")):
            value = control.get(key)
            rows.append({"name": label, "value": _fmt(value.get(sub) if isinstance(value, Mapping) else value)})
        if "change_recall" in control:
            rows.append({"name": "ChangeRecall", "value": change_recall_text(control)})
        shift = _mapping(control.get("label_shift"))
        rows += [{"name": label, "value": _fmt(_mapping(shift[key]).get("mean"))} for key, label, _ in LABEL_SHIFT_ROWS if key in shift]
        tables.append({"name": {"untrained": "untrained model", "shuffled_labels": "shuffled labels"}.get(name, name), "rows": rows})
    return tables


def _verdict(report: Mapping[str, Any]) -> dict[str, Any] | None:
    """The verdict table as the card's Markdown cells (:func:`~.report_verdict.verdict_table`), or ``None``."""
    table = verdict_table(report)
    if table is None:
        return None
    return {**table, "rows": [[cell_text(cell).replace("|", "\\|") for cell in row] for row in table["rows"]]}


_SETTING_NAMES = (
    ("template", "template"),
    ("label_words", "label words"),
    ("separator", "separator"),
    ("n_demonstrations", "demonstrations used"),
    ("n_queries", "queries"),
    ("position", "position"),
    ("method", "finetuning method"),
    ("learning_rate", "learning rate"),
    ("seed", "seed"),
)


def _settings(config: Mapping[str, Any]) -> dict[str, str]:
    out = {}
    for key, label in _SETTING_NAMES:
        if config.get(key) is not None:
            value = config[key]
            out[label] = f"`{json.dumps(value)}`" if isinstance(value, (str, list)) else str(value)
    versions = config.get("versions")
    if isinstance(versions, Mapping):
        out["versions"] = ", ".join(f"{k} {v}" for k, v in versions.items())
    return {k: v.replace("|", "\\|").replace("\n", "\\n") for k, v in out.items()}


def render_analysis_card(
    report: Any,
    *,
    model_id: str | None = None,
    plots: Sequence[str] = (),
    report_link: str = "report.json",
    html_link: str | None = None,
    scores_link: str | None = None,
) -> ModelCard:
    """Render ``model_cards/icl_analysis.md`` for a report (an ``ICLAnalysisReport`` or its dict).

    ``plots`` are image paths relative to where the card will live; ``report_link`` the link to the
    raw ``report.json``, ``html_link`` to ``report.html`` and ``scores_link`` to ``scores.safetensors``
    (``None``: not pushed, not linked). The header holds the eval results (:func:`eval_results_from_report`).
    """
    data = _report_dict(report)
    config = data["config"]
    model_id = model_id or hub_model_id(config)  # a local model has none: its name is shown, with no link
    model_name = model_id or display_name(config)
    dataset_id, dataset_config, split = dataset_of(config)
    task = str(config.get("task") or "custom")
    metadata: dict[str, Any] = {
        "library_name": "transformers",
        "tags": ["hf-metaopt", "icl-analysis"],
        "model_name": model_name,
        "eval_results": eval_results_from_report(data),
    }
    if model_id and is_hub_id(model_id):
        metadata["base_model"] = model_id
    if task.lower() in PAPER_TASK_DATASETS or config.get("dataset"):
        metadata["datasets"] = [dataset_id]
    return ModelCard.from_template(
        ModelCardData(**metadata),
        template_path=str(template_path("icl_analysis.md")),
        model_name=model_name,
        model_link=f"https://huggingface.co/{model_id}" if model_id and is_hub_id(model_id) else None,
        model_revision=config.get("model_revision"),
        task=task,
        dataset_id=dataset_id if dataset_id != task else None,
        dataset_config=dataset_config,
        dataset_split=split,
        report_link=report_link,
        html_link=html_link,
        scores_link=scores_link,
        settings=_settings(config),
        metrics=_metric_rows(data),
        controls=_control_rows(data),
        verdict=_verdict(data),
        plots=[{"title": Path(p).stem.replace("_", " "), "path": p} for p in plots],
        notes=[str(n) for n in data.get("notes") or []],
    )
