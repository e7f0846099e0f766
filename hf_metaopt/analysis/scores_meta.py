"""What a reader of ``scores.safetensors`` needs beside the arrays (:attr:`~.query_scores.QueryScores.meta`).

The texts (each demonstration token decoded on its own, the demonstrations, the query prompts),
the shapes (layers, heads), which layers attend within a window, and the report's identity
(model, task, the settings that tell runs apart). Definitions: ``docs/analysis.md``, "Per-query scores".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .plan import AnalysisPlan
from .prompts import demonstration_text

__all__ = ["scores_meta"]

# report["config"] entries copied into the meta: what names the run.
_IDENTITY = ("model", "model_id", "model_revision", "task", "split", "method", "learning_rate", "seed", "position",
             "start_token_used", "demonstrations_used", "query_ids")


def scores_meta(plan: AnalysisPlan, model_config: Any, report_config: Mapping[str, Any], *, heads: int,
                demo_visible: np.ndarray, n_inspect: int, kendall_queries: int, controls: Sequence[str] = ()) -> dict:
    """The ``meta`` of one analysis's :class:`~.query_scores.QueryScores`.

    Args:
        plan: the analysis's plan (tokenizer, prefix, demonstrations used, queries).
        model_config: the model's config (``layer_types`` and ``sliding_window`` where it has them).
        report_config: the report's ``config`` (model and task identity).
        heads: attention heads per layer (query heads).
        demo_visible: ``[Q, L]`` demonstration tokens each layer attends to, per query.
        n_inspect: the number of inspected queries stored.
        kendall_queries: the number of queries Kendall and top-k recall are summarised over.
        controls: the controls whose arrays are stored under ``control/<name>/``.
    """
    tokenizer, prefix, prompt = plan.encoder.tokenizer, plan.prefix, plan.encoder.prompt
    text_config = model_config.get_text_config() if hasattr(model_config, "get_text_config") else model_config
    window = getattr(text_config, "sliding_window", None)
    n_demo = len(prefix.demo_positions)
    return {
        "demo_tokens": [tokenizer.decode([prefix.ids[p]]) for p in prefix.demo_positions],
        "demo_owner": list(prefix.demo_owner),
        "demonstrations": [demonstration_text(d, prompt) for d in plan.demonstrations[: prefix.n_demonstrations]],
        "queries": [prompt.template.format(**q) for q in plan.queries],
        "label_words": list(prompt.label_words),
        "layers": int(demo_visible.shape[1]),
        "heads": int(heads),
        "layer_types": list(getattr(text_config, "layer_types", None) or []) or None,
        "sliding_window": window if isinstance(window, int) else None,
        # Layers where some query attends to fewer than all demonstration tokens (a window cuts them off).
        "windowed_layers": [int(layer) for layer in np.flatnonzero((demo_visible < n_demo).any(axis=0))],
        "n_inspect": int(n_inspect),
        "kendall_queries": int(kendall_queries),
        "controls": list(controls),
        **{key: report_config[key] for key in _IDENTITY if key in report_config},
    }
