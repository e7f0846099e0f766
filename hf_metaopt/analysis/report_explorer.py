"""The data of report.html's per-query explorer, taken from a run's per-query scores (``scores.safetensors``).

For every query: its prompt text, gold label, the ZSL / ICL / FT predictions and label-word
log-probabilities, and each metric per layer (``metric/<name>``, ``[Q, L]``) with its per-query random
baseline (``metric/<name>_random``) where it has one; metrics of one value per query (``[Q]``) apart. For the inspected
queries (the first ``n_inspect``), per layer and demonstration token: the ICL attention mass
(summed over heads, and per head), the FT side's score and its softmax (:func:`ft_mass`), and whether
the layer attends to the token
(``docs/analysis.md``, "Attention windows"). The page shades the tokens with them.

Everything numeric is packed (:func:`~hf_metaopt.analysis.html_page.pack_array`): per-query metrics
and log-probabilities as float32, per-token values as float16 (about three significant digits,
what a shade or a tooltip shows). The per-head masses and the raw scores of both sides are optional:
:func:`explorer_data` adds them while the page stays under its size budget and lists what it left
out (the file keeps everything).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .html_page import pack_array, pack_json

__all__ = ["OPTIONAL_ARRAYS", "explorer_data", "ft_mass", "optional_arrays"]

ROUTES = ("zsl", "icl", "ft")
# Optional per-token arrays, most useful first: (key in the scores, what the page calls it).
OPTIONAL_ARRAYS = (("inspect/icl_mass_heads", "the per-head ICL attention"), ("inspect/ft_score", "the raw FT scores"),
                   ("inspect/icl_score", "the ICL pre-softmax scores"))


def _meta_list(meta: Mapping[str, Any], key: str, default: Any = None) -> Any:
    value = meta.get(key, default)
    return list(value) if isinstance(value, (list, tuple)) else value


def _count(value: Any) -> int:
    """A count given as a number or as the list it counts."""
    return len(value) if isinstance(value, (list, tuple)) else int(value or 0)


def _layers(arrays: Mapping[str, Any], meta: Mapping[str, Any], metric_names: list[str]) -> list[int]:
    """The layer numbers: ``meta["layers"]`` (a list, or a count), else 0..L-1 from a metric's ``[Q, L]`` shape."""
    layers = meta.get("layers")
    if isinstance(layers, (list, tuple)):
        return [int(x) for x in layers]
    if isinstance(layers, (int, np.integer)):
        return list(range(int(layers)))
    return list(range(np.asarray(arrays[f"metric/{metric_names[0]}"]).shape[1])) if metric_names else []


def ft_mass(ft_score: Any, visible: Any) -> np.ndarray:
    """The FT side's attention mass: per (query, layer), the softmax of the FT scores over the tokens the layer
    attends to (0 elsewhere), as the example-level Kendall reads it (``docs/analysis.md``, "Metrics").

    Computed here in float64, not in the page: a softmax of float16 scores would be off by up to
    |score| x 1e-3 in relative terms. A (query, layer) that attends to no token gets zeros.
    """
    score = np.asarray(ft_score, dtype=np.float64)
    keep = np.asarray(visible, dtype=bool)
    shifted = np.where(keep, score, -np.inf)
    top = shifted.max(axis=-1, keepdims=True)
    weights = np.where(keep, np.exp(shifted - np.where(np.isfinite(top), top, 0.0)), 0.0)
    total = weights.sum(axis=-1, keepdims=True)
    return np.divide(weights, total, out=np.zeros_like(weights), where=total > 0)


def explorer_data(data: Mapping[str, Any], scores: Any) -> dict[str, Any] | None:
    """The explorer's required data for a report dict and its scores (``.arrays``, ``.meta``); ``None`` without scores.

    The optional arrays are added by :func:`optional_arrays` (they depend on the page's size budget).
    """
    if scores is None:
        return None
    arrays, meta = scores.arrays, dict(scores.meta)
    config = data.get("config") or {}
    labels = np.asarray(arrays["labels"])
    names = sorted(k.split("/", 1)[1] for k in arrays if k.startswith("metric/"))
    # Per (query, layer) metrics and their per-query random baselines (``<name>_random``); [Q] metrics apart.
    metric_names = [n for n in names if np.ndim(arrays[f"metric/{n}"]) == 2 and not n.endswith("_random")]
    query_metrics = [n for n in names if np.ndim(arrays[f"metric/{n}"]) == 1 and not n.endswith("_random")]
    recall = data.get("topk_recall") or {}
    out: dict[str, Any] = {
        "n_queries": int(labels.shape[0]),
        "label_words": list(meta.get("label_words") or config.get("label_words") or []),
        "labels": pack_array(labels, "int32"),
        "predictions": {r: pack_array(arrays[f"predictions/{r}"], "int32") for r in ROUTES},
        "logprobs": {r: pack_array(arrays[f"logprobs/{r}"], "float32") for r in ROUTES},
        "metrics": {name: pack_array(arrays[f"metric/{name}"], "float32") for name in metric_names},
        "random": {name: pack_array(arrays[f"metric/{name}_random"], "float32") for name in metric_names
                   if f"metric/{name}_random" in arrays},
        "query_metrics": {name: pack_array(arrays[f"metric/{name}"], "float32") for name in query_metrics},
        "kendall_queries": (data.get("kendall") or {}).get("n_queries"),
        "top_k": {level: (recall.get(level) or {}).get("k") for level in ("token_level", "example_level")},
        "texts": pack_json({"queries": _meta_list(meta, "queries", []),
                            "demonstrations": _meta_list(meta, "demonstrations", []),
                            "demo_tokens": _meta_list(meta, "demo_tokens", [])}),
        "layers": _layers(arrays, meta, metric_names),
        "heads": _count(meta.get("heads")),
        "left_out": [],
    }
    if "inspect/icl_mass" in arrays:
        out["inspect"] = {
            "query_index": pack_array(arrays["inspect/query_index"], "int32"),
            "demo_owner": pack_array(np.asarray(_meta_list(meta, "demo_owner", [])), "int32"),
            "icl_mass": pack_array(arrays["inspect/icl_mass"], "float16"),
            "ft_mass": pack_array(ft_mass(arrays["inspect/ft_score"], arrays["inspect/visible"]), "float16"),
            "visible": pack_array(np.asarray(arrays["inspect/visible"], dtype=bool), "uint8"),
        }
    return out


def optional_arrays(scores: Any) -> list[tuple[str, str, dict[str, Any]]]:
    """``[(key, description, packed array)]`` of the optional per-token arrays the scores hold, most useful first."""
    arrays = scores.arrays
    return [(key, what, pack_array(arrays[key], "float16")) for key, what in OPTIONAL_ARRAYS if key in arrays]
