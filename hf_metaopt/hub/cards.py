"""Model cards: the checkpoint card, and the helpers every card uses (templates, repo ids, eval results).

The card templates are Jinja files in the top-level ``model_cards/`` folder (shipped inside the
package as ``hf_metaopt/hub/model_cards``; :func:`template_path` finds them), rendered with
``huggingface_hub.ModelCard.from_template`` and a ``ModelCardData`` header. The ICL-analysis card is
a rendering of the report and lives beside its other renderings
(:mod:`hf_metaopt.analysis.report_card`); :func:`merge_eval_results` adds eval results to a card
that already exists (a repo's root card).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..fileio import atomic_write_text
from ..model_id import is_hub_id

__all__ = [
    "CHECKPOINT_CARD_FIELDS",
    "merge_eval_results",
    "render_model_card",
    "template_path",
    "write_model_card",
]

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



def template_path(name: str) -> Path:
    """The path of the card template ``name`` (``"momentum_gpt.md"`` or ``"icl_analysis.md"``)."""
    for folder in (Path(__file__).parent / "model_cards", Path(__file__).resolve().parents[2] / "model_cards"):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(
        f"card template {name!r} not found in hf_metaopt/hub/model_cards; reinstall hf-metaopt "
        "(the templates ship in the package)."
    )


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
    if base_model is not None and not is_hub_id(base_model):
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
