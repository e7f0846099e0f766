"""Model cards: the checkpoint card, the ICL-analysis card and its Hub eval results.

Both cards are Jinja templates in the top-level ``model_cards/`` folder (shipped inside the package
as ``hf_metaopt/hub/model_cards``), rendered with ``huggingface_hub.ModelCard.from_template`` and a
``ModelCardData`` header. Analysis metrics become ``EvalResult`` entries, which the Hub shows in the
model page's ``model-index``.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..analysis.report import metric_rows
from ..fileio import atomic_write_text
from ..model_id import display_name, hub_model_id
from ..tasks.paper import PAPER_TASKS

__all__ = [
    "CHECKPOINT_CARD_FIELDS",
    "PAPER_TASK_DATASETS",
    "eval_results_from_report",
    "merge_eval_results",
    "render_analysis_card",
    "render_model_card",
    "template_path",
    "write_model_card",
]

# Data set of each of the paper's tasks: (Hub id, config, evaluation split), from the task registry.
PAPER_TASK_DATASETS: dict[str, tuple[str, str | None, str]] = {
    spec.name: (spec.dataset_path, spec.dataset_name, spec.test_split) for spec in PAPER_TASKS
}

# Keyword fields `write_model_card` / `push_model` accept for the checkpoint card.
CHECKPOINT_CARD_FIELDS = (
    "repo_id",
    "model_name",
    "base_model",
    "datasets",
    "license",
    "language",
    "tags",
    "training_data",
    "training_settings",
    "perplexities",
    "baseline_perplexities",
    "notes",
    "description",
    "eval_results",
    "card_data",
)

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def template_path(name: str) -> Path:
    """The path of the card template ``name`` (``"momentum_gpt.md"`` or ``"icl_analysis.md"``)."""
    for folder in (Path(__file__).parent / "model_cards", Path(__file__).resolve().parents[2] / "model_cards"):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(
        f"card template {name!r} not found in hf_metaopt/hub/model_cards; reinstall hf-metaopt "
        "(the templates ship in the package)."
    )


def is_hub_repo_id(value: Any) -> bool:
    """Whether ``value`` looks like a Hub repo id (``name`` or ``namespace/name``), not a local path."""
    return isinstance(value, str) and bool(_REPO_ID.match(value)) and not os.path.exists(value)


# -- checkpoint card ------------------------------------------------------------------------------


def _number_mapping(field: str, value: Any) -> dict[str, float]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"{field} must be a mapping of evaluation name to number, e.g. {{'valid@256': 19.4}}; got {type(value).__name__}.")
    out = {}
    for key, number in value.items():
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number):
            raise ValueError(f"{field}[{key!r}] must be a finite number; got {number!r}.")
        out[str(key)] = float(number)
    return out


def _str_list(field: str, value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        return list(value)
    raise TypeError(f"{field} must be a string or a list of strings; got {value!r}.")


def _extra_metadata(card_data: Any) -> dict[str, Any]:
    if card_data is None:
        return {}
    if isinstance(card_data, ModelCardData):
        return card_data.to_dict()
    if isinstance(card_data, Mapping):
        return dict(card_data)
    raise TypeError(f"card_data must be a dict or a huggingface_hub.ModelCardData; got {type(card_data).__name__}.")


def _count_parameters(folder: Path) -> int | None:
    """Parameter count read from the safetensors headers (no tensor is loaded)."""
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return None
    from safetensors import safe_open

    total = 0
    for file in files:
        with safe_open(str(file), framework="numpy") as handle:
            for key in handle.keys():
                total += math.prod(handle.get_slice(key).get_shape())
    return total


def render_model_card(folder: str | os.PathLike, **fields: Any) -> ModelCard:
    """Render the checkpoint card for the model saved in ``folder`` (its ``config.json``).

    Fields (all optional): ``repo_id`` (used in the loading snippet), ``model_name``, ``base_model``,
    ``datasets``, ``license`` (default ``"apache-2.0"``), ``language``, ``tags`` (added to
    ``hf-metaopt`` and, for MomentumGPT, ``momentum-attention``), ``training_data`` (text),
    ``training_settings`` (mapping), ``perplexities`` and ``baseline_perplexities`` (mappings of
    evaluation name to perplexity), ``notes`` (text, after the perplexity table), ``description``
    (markdown, a section of its own), ``eval_results`` (``EvalResult`` objects or their keyword
    dicts, for the ``model-index``), ``card_data`` (extra metadata: a dict or ``ModelCardData``).
    """
    unknown = sorted(set(fields) - set(CHECKPOINT_CARD_FIELDS))
    if unknown:
        raise TypeError(f"unknown model card field(s) {unknown}; the card takes {list(CHECKPOINT_CARD_FIELDS)}.")
    folder = Path(folder)
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{folder} holds no config.json; save the model there with model.save_pretrained(folder) first.")
    config = json.loads(config_file.read_text())
    model_type = config.get("model_type", "unknown")
    training_settings = fields.get("training_settings") or {}
    if not isinstance(training_settings, Mapping):
        raise TypeError(f"training_settings must be a mapping of setting name to value; got {type(training_settings).__name__}.")
    repo_id = fields.get("repo_id") or folder.name
    card_data, metadata = _checkpoint_metadata(fields, repo_id, model_type == "momentum_gpt")
    n_parameters = _count_parameters(folder)
    return ModelCard.from_template(
        card_data,
        template_path=str(template_path("momentum_gpt.md")),
        model_name=metadata["model_name"],
        repo_id=repo_id,
        model_type=model_type,
        is_momentum=model_type == "momentum_gpt",
        momentum=config.get("momentum", 0.0),
        architecture=_architecture(config),
        n_parameters=f"{n_parameters:,}" if n_parameters else None,
        has_remote_code=bool(config.get("auto_map")) and any(folder.glob("modeling_*.py")),
        base_model=metadata["base_model"],
        datasets=metadata["datasets"] or [],
        training_data=fields.get("training_data"),
        training_settings=dict(training_settings),
        perplexities=_number_mapping("perplexities", fields.get("perplexities")),
        baseline_perplexities=_number_mapping("baseline_perplexities", fields.get("baseline_perplexities")),
        notes=fields.get("notes"),
        description=fields.get("description"),
    )


def _checkpoint_metadata(fields: Mapping[str, Any], repo_id: str, is_momentum: bool) -> tuple[ModelCardData, dict]:
    """The card's metadata (license, tags, base model, data sets, model-index) from the fields."""
    datasets = _str_list("datasets", fields.get("datasets"))
    base_model = fields.get("base_model")
    if base_model is not None and not is_hub_repo_id(base_model):
        raise ValueError(f"base_model must be a Hub model id such as 'openai-community/gpt2'; got {base_model!r}.")
    tags = ["hf-metaopt"] + (["momentum-attention"] if is_momentum else []) + _str_list("tags", fields.get("tags"))
    metadata = {
        "library_name": "transformers",
        "pipeline_tag": "text-generation",
        "license": fields.get("license") or "apache-2.0",
        "tags": list(dict.fromkeys(tags)),
        "base_model": base_model,
        "datasets": datasets or None,
        "language": fields.get("language"),
        "model_name": fields.get("model_name") or repo_id,
    }
    eval_results = _eval_results(fields.get("eval_results"))
    if eval_results:
        metadata["eval_results"] = eval_results
    metadata.update(_extra_metadata(fields.get("card_data")))
    return ModelCardData(**{k: v for k, v in metadata.items() if v is not None}), metadata


# Standard config names first, then GPT-2's own (its config.json keeps n_layer, n_embd, ...).
_ARCHITECTURE_KEYS = {
    "layers": ("num_hidden_layers", "n_layer"),
    "hidden size": ("hidden_size", "n_embd"),
    "attention heads": ("num_attention_heads", "n_head"),
    "MLP size": ("intermediate_size", "n_inner"),
    "context length": ("max_position_embeddings", "n_positions"),
    "vocabulary": ("vocab_size",),
}


def _architecture(config: Mapping[str, Any]) -> dict[str, Any]:
    found = {label: next((config[k] for k in keys if config.get(k) is not None), None) for label, keys in _ARCHITECTURE_KEYS.items()}
    return {label: value for label, value in found.items() if value is not None}


def _eval_results(value: Any) -> list[EvalResult]:
    if value is None:
        return []
    if isinstance(value, (EvalResult, Mapping)) or not isinstance(value, Sequence):
        raise TypeError("eval_results must be a list of huggingface_hub.EvalResult or of their keyword dicts.")
    out = []
    for i, item in enumerate(value):
        if isinstance(item, EvalResult):
            out.append(item)
        elif isinstance(item, Mapping):
            try:
                out.append(EvalResult(**item))
            except TypeError as err:
                raise TypeError(f"eval_results[{i}] is not a valid EvalResult: {err}") from None
        else:
            raise TypeError(f"eval_results[{i}] must be an EvalResult or a dict; got {type(item).__name__}.")
    return out


def write_model_card(folder: str | os.PathLike, **fields: Any) -> Path:
    """Render the checkpoint card for ``folder`` and write it atomically as ``folder/README.md``.

    Takes the fields of :func:`render_model_card`. Returns the README path. Meant for a Trainer
    callback that refreshes the card at each saved checkpoint.
    """
    card = render_model_card(folder, **fields)
    return atomic_write_text(Path(folder) / "README.md", str(card))


# -- analysis card and eval results ---------------------------------------------------------------


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
    the headline numbers, SimAM's delta, the random baselines and the untrained control's values."""
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
    ]
    for control_name, control in _mapping(report.get("controls")).items():
        control = _mapping(control)
        c_acc, c_simaou, c_simam, c_kendall = (_mapping(control.get(k)) for k in ("accuracy", "simaou", "simam", "kendall"))
        values += [
            *(("accuracy", f"Accuracy ({route.upper()}), {control_name} control", f"{control_name}_control_{route}",
               _finite(c_acc.get(route))) for route in ("zsl", "icl", "ft")),
            ("rec2ftp", f"Rec2FTP, {control_name} control", f"{control_name}_control", _finite(control.get("rec2ftp"))),
            ("simaou", f"SimAOU, {control_name} control", f"{control_name}_control", _finite(c_simaou.get("mean"))),
            ("simam", f"SimAM after finetuning, {control_name} control", f"{control_name}_control_after_finetuning",
             _finite(c_simam.get("after"))),
            ("simam", f"SimAM delta, {control_name} control", f"{control_name}_control_delta", _finite(c_simam.get("delta"))),
            ("kendall_tau", f"Kendall, {control_name} control", f"{control_name}_control", _finite(c_kendall.get("mean"))),
        ]
    return values


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def eval_results_from_report(report: Any) -> list[EvalResult]:
    """The report's headline metrics as Hub ``EvalResult`` entries (for the card's ``model-index``).

    Accuracy of ZSL, ICL and FT (``metric_config`` ``zsl``/``icl``/``ft``), Rec2FTP (left out when
    finetuning fixes no query), SimAOU and its random-vector baseline, SimAM before and after
    finetuning and its delta, Kendall's tau (token and example level) and their random-score
    baselines, and, for a report with a control (``control="untrained"``), the control's accuracies,
    Rec2FTP, SimAOU, SimAM after finetuning and delta, and Kendall (``metric_config``
    ``untrained_control...``); each with the data set id, config and split of the report's task and
    the settings as ``metric_args``. A metric the report lacks (or holds as ``None``) is left out.
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


def _control_rows(report: Mapping[str, Any]) -> dict[str, Any] | None:
    controls = report.get("controls") or {}
    if not controls:
        return None
    name, control = next(iter(controls.items()))
    acc = control.get("accuracy") or {}
    rows = [{"name": f"Accuracy ({s.upper()})", "value": _fmt(acc.get(s), True)} for s in ("zsl", "icl", "ft") if s in acc]
    rows.append({"name": "Rec2FTP", "value": _fmt(control.get("rec2ftp"))})  # a fraction, as in the main table
    for key, label, sub in (("simaou", "SimAOU", "mean"), ("simam", "SimAM after finetuning", "after"), ("kendall", "Kendall", "mean")):
        value = control.get(key)
        rows.append({"name": label, "value": _fmt(value.get(sub) if isinstance(value, Mapping) else value)})
    return {"name": f"{name} model", "rows": rows}


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
) -> ModelCard:
    """Render ``model_cards/icl_analysis.md`` for a report (an ``ICLAnalysisReport`` or its dict).

    ``plots`` are image paths relative to where the card will live; ``report_link`` the link to the
    raw ``report.json``. The header holds the eval results (:func:`eval_results_from_report`).
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
    if model_id and is_hub_repo_id(model_id):
        metadata["base_model"] = model_id
    if task.lower() in PAPER_TASK_DATASETS or config.get("dataset"):
        metadata["datasets"] = [dataset_id]
    return ModelCard.from_template(
        ModelCardData(**metadata),
        template_path=str(template_path("icl_analysis.md")),
        model_name=model_name,
        model_link=f"https://huggingface.co/{model_id}" if model_id and is_hub_repo_id(model_id) else None,
        model_revision=config.get("model_revision"),
        task=task,
        dataset_id=dataset_id if dataset_id != task else None,
        dataset_config=dataset_config,
        dataset_split=split,
        report_link=report_link,
        settings=_settings(config),
        metrics=_metric_rows(data),
        controls=_control_rows(data),
        plots=[{"title": Path(p).stem.replace("_", " "), "path": p} for p in plots],
        notes=[str(n) for n in data.get("notes") or []],
    )


def merge_eval_results(card_text: str | None, eval_results: Sequence[EvalResult], model_name: str) -> str:
    """Add ``eval_results`` to the metadata of an existing card, leaving its body untouched.

    Entries describing the same metric (all fields but the value equal) are replaced; others are
    kept. A card without a metadata block gains one. Returns the new card text.
    """
    card = ModelCard(card_text or "", ignore_metadata_errors=True)
    existing = list(card.data.eval_results or [])
    kept = [old for old in existing if not any(old.is_equal_except_value(new) for new in eval_results)]
    card.data.eval_results = kept + list(eval_results)
    if not card.data.model_name:
        card.data.model_name = model_name
    return str(card)
