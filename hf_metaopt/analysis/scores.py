"""From the three routes' captures to per-(query, layer) scores, and from those to the report's numbers.

:class:`ScoreCollector` turns each batch's captures into metric scores right away, so memory
stays flat in the number of queries; :meth:`ScoreCollector.summary` puts the rows back in
query order and summarises them (means per layer, means over layers, bootstrap intervals,
baselines). Definitions: ``docs/analysis.md``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from . import metrics
from .routes import RouteOutput

__all__ = ["ScoreCollector"]

_RANDOM_SEED_STRIDE = 1_000_003  # per-query seeds for the random baselines, independent of batching
SETTINGS = ("zsl", "icl", "ft")


class ScoreCollector:
    """Collects per-query scores of one analysis.

    Args:
        token_queries: per layer ``[H, T_demo, Dh]``: every demonstration token's query vector
            during its finetuning step (the FT side of Kendall).
        demo_owner: ``[T_demo]`` the demonstration each token belongs to (example-level Kendall).
        seed: seeds the random baselines (per query, so batching never changes them).
    """

    def __init__(self, token_queries: Sequence[torch.Tensor], demo_owner: Sequence[int], seed: int):
        self.token_queries = list(token_queries)
        self.demo_owner = list(demo_owner)
        self.seed = seed
        self._rows: dict[str, list[np.ndarray]] = {}
        self._order: list[int] = []

    def _put(self, key: str, value) -> None:
        self._rows.setdefault(key, []).append(np.asarray(value))

    def add(self, batch: Sequence[int], zsl: RouteOutput, icl: RouteOutput, ft: RouteOutput) -> None:
        """Score one batch: ``batch`` holds the query index of each row."""
        self._order.extend(batch)
        for name, route in (("zsl", zsl), ("icl", icl), ("ft", ft)):
            self._put(f"pred_{name}", route.logprobs.argmax(axis=1))
        self._put("simaou", metrics.simaou_scores(zsl.output, icl.output, ft.output))
        self._put("simaou_raw", metrics.simaou_scores(zsl.output, icl.output, ft.output, normalize=False))
        for part, values in metrics.simam_scores(zsl.own, icl.own, ft.own).items():
            self._put(f"simam_{part}", values)
        self._add_kendall(batch, icl, self._ft_demo_scores(ft.query))
        self._put("demo_visible", icl.demo_visible.sum(axis=2))  # [B, L] tokens each layer sees
        self._put("own_hidden", np.stack([(~v).sum(axis=1) for v in icl.own_visible]))  # [B, L]
        for row, q_index in enumerate(batch):
            one = slice(row, row + 1)
            self._put("simaou_random", metrics.simaou_random_scores(zsl.output[one], icl.output[one], seed=self._seed(q_index)))

    def _seed(self, q_index: int) -> int:
        return self.seed * _RANDOM_SEED_STRIDE + q_index

    def _ft_demo_scores(self, ft_query: np.ndarray) -> np.ndarray:
        """``[B, L, T_demo]``: the FT position's query . each training token's query, summed over heads."""
        per_layer = [
            torch.einsum("bhd,htd->bt", torch.from_numpy(ft_query[:, layer]), tq.double()).numpy()
            for layer, tq in enumerate(self.token_queries)
        ]
        return np.stack(per_layer, axis=1)

    def _add_kendall(self, batch: Sequence[int], icl: RouteOutput, ft_demo: np.ndarray) -> None:
        icl_demo, visible = list(icl.demo), list(icl.demo_visible)
        self._put("kendall", metrics.kendall_scores(icl_demo, list(ft_demo), visible))
        icl_ex, seen = metrics.per_example(icl_demo, self.demo_owner, visible)
        ft_ex, _ = metrics.per_example(list(ft_demo), self.demo_owner, visible)
        self._put("kendall_example", metrics.kendall_scores(icl_ex, ft_ex, seen))
        for row, q_index in enumerate(batch):
            one = slice(row, row + 1)
            seed = self._seed(q_index)
            self._put("kendall_random", metrics.kendall_random_scores(icl_demo[one], seed=seed, visible=visible[one]))
            self._put("kendall_example_random", metrics.kendall_random_scores(icl_ex[one], seed=seed, visible=seen[one]))

    # ---------------------------------------------------------------- summary
    def collected(self) -> dict[str, np.ndarray]:
        """Every collection as one array in query order (rows were added in batch order)."""
        restore = np.argsort(np.array(self._order))
        return {k: np.concatenate(v)[restore] for k, v in self._rows.items()}

    def summary(self, labels: Sequence[int], n_bootstrap: int) -> dict:
        """Accuracies, predictions and every metric of the report (see :mod:`.report`)."""
        rows = self.collected()
        labels = np.asarray(labels)
        preds = {k: rows[f"pred_{k}"] for k in SETTINGS}
        correct = {k: preds[k] == labels for k in SETTINGS}
        boot = dict(n_resamples=n_bootstrap, seed=self.seed)
        return {
            "accuracy": {k: float(correct[k].mean()) for k in SETTINGS},
            "accuracy_ci95": {k: metrics.bootstrap_ci(correct[k].astype(np.float64), **boot) for k in SETTINGS},
            "predictions": {k: [int(p) for p in preds[k]] for k in SETTINGS},
            "labels": [int(x) for x in labels],
            "rec2ftp": metrics.rec2ftp(correct["zsl"], correct["icl"], correct["ft"]),
            "rec2ftp_ci95": metrics.rec2ftp_bootstrap_ci(correct["zsl"], correct["icl"], correct["ft"], **boot),
            "simaou": _simaou(rows, boot),
            "simam": _simam(rows, boot),
            "kendall": _kendall(rows, boot),
        }

    def visibility(self) -> dict[str, np.ndarray]:
        """``demo_visible [Q, L]`` demonstration tokens each layer attends to; ``own_hidden [Q, L]`` query tokens it does not."""
        rows = self.collected()
        return {"demo_visible": rows["demo_visible"], "own_hidden": rows["own_hidden"]}


def _simaou(rows: dict, boot: dict) -> dict:
    main = metrics.summarize_layers(rows["simaou"], **boot)
    rand = metrics.summarize_layers(rows["simaou_random"])
    raw = metrics.summarize_layers(rows["simaou_raw"], **boot)
    return {
        "per_layer": main["per_layer"], "mean": main["mean"], "ci95": main["ci95"],
        "random_mean": rand["mean"], "random_per_layer": rand["per_layer"],
        "unnormalized_per_layer": raw["per_layer"], "unnormalized_mean": raw["mean"], "unnormalized_ci95": raw["ci95"],
    }


def _simam(rows: dict, boot: dict) -> dict:
    out = {}
    for part in ("before", "after", "delta"):
        s = metrics.summarize_layers(rows[f"simam_{part}"], **boot)
        out[f"per_layer_{part}"], out[part], out[f"{part}_ci95"] = s["per_layer"], s["mean"], s["ci95"]
    return out


def _kendall(rows: dict, boot: dict) -> dict:
    def level(key: str) -> dict:
        main = metrics.summarize_layers(rows[key], **boot)
        rand = metrics.summarize_layers(rows[f"{key}_random"])
        return {**main, "random_mean": rand["mean"], "random_per_layer": rand["per_layer"]}

    return {**level("kendall"), "example_level": level("kendall_example")}
