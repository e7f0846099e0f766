"""From the three routes' captures to per-(query, layer) scores, and from those to the report's numbers.

:class:`ScoreCollector` turns each batch's captures into metric scores right away, so memory
stays flat in the number of queries; :meth:`ScoreCollector.summary` puts the rows back in
query order and summarises them (means per layer, means over layers, bootstrap intervals,
baselines). For the first ``n_inspect`` queries it also keeps, per layer, what the rankings
compare token by token (:meth:`ScoreCollector.inspected`); that is bounded by ``n_inspect``.
Definitions: ``docs/analysis.md``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from . import metrics
from .change_recall import change_recall, change_recall_bootstrap_ci, change_recall_counts
from .label_shift import LABEL_SHIFTS, label_shift_scores, summarize_label_shift
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
        top_k_tokens, top_k_examples: ``k`` of the token- and example-level top-k recall.
        kendall_queries: Kendall and top-k recall are summarised over the first this many
            queries (the reference code reads 100); ``None``: all.
        n_inspect: keep the per-token scores of the queries with index below this
            (:meth:`inspected`); their ICL route must be run with ``inspect`` (:meth:`inspects`).
    """

    def __init__(self, token_queries: Sequence[torch.Tensor], demo_owner: Sequence[int], seed: int, *,
                 top_k_tokens: int = 100, top_k_examples: int = 5, kendall_queries: int | None = None, n_inspect: int = 0):
        self.token_queries = list(token_queries)
        self.demo_owner = list(demo_owner)
        self.seed = seed
        self.top_k = {"token_level": top_k_tokens, "example_level": top_k_examples}
        self.kendall_queries = kendall_queries
        self._rows: dict[str, list[np.ndarray]] = {}
        self._order: list[int] = []
        self.n_inspect = n_inspect
        self._inspected: dict[int, dict[str, np.ndarray]] = {}

    def _put(self, key: str, value) -> None:
        self._rows.setdefault(key, []).append(np.asarray(value))

    def add(self, batch: Sequence[int], zsl: RouteOutput, icl: RouteOutput, ft: RouteOutput) -> None:
        """Score one batch: ``batch`` holds the query index of each row."""
        self._order.extend(batch)
        for name, route in (("zsl", zsl), ("icl", icl), ("ft", ft)):
            self._put(f"pred_{name}", route.logprobs.argmax(axis=1))
            self._put(f"logprobs_{name}", route.logprobs)  # [B, n_labels] label-word scores
        for key, values in label_shift_scores(zsl.logprobs, icl.logprobs, ft.logprobs).items():
            self._put(key, values)  # [B] per query: kl_icl_ft, tv_icl_ft, kl_icl_zsl, ...
        self._put("simaou", metrics.simaou_scores(zsl.output, icl.output, ft.output))
        self._put("simaou_raw", metrics.simaou_scores(zsl.output, icl.output, ft.output, normalize=False))
        for part, values in metrics.simam_scores(zsl.own, icl.own, ft.own).items():
            self._put(f"simam_{part}", values)
        ft_demo = self._ft_demo_scores(ft.query, ft.scaling)
        self._add_kendall(batch, icl, ft_demo)
        self._add_inspected(batch, icl, ft_demo)
        self._put("demo_visible", icl.demo_visible.sum(axis=2))  # [B, L] tokens each layer sees
        self._put("own_hidden", np.stack([(~v).sum(axis=1) for v in icl.own_visible]))  # [B, L]
        for row, q_index in enumerate(batch):
            one = slice(row, row + 1)
            self._put("simaou_random", metrics.simaou_random_scores(zsl.output[one], icl.output[one], seed=self._seed(q_index)))

    def inspects(self, batch: Sequence[int]) -> list[bool]:
        """Per query of ``batch``: whether its per-token scores are kept (run its ICL route with ``inspect``)."""
        return [q < self.n_inspect for q in batch]

    def _add_inspected(self, batch: Sequence[int], icl: RouteOutput, ft_demo: np.ndarray) -> None:
        for row, q_index in enumerate(batch):
            if q_index >= self.n_inspect:
                continue
            mass = icl.demo_mass[row] if icl.demo_mass is not None else None
            if mass is None:
                raise RuntimeError(f"query {q_index} is inspected but its ICL route recorded no attention mass; "
                                   "run it with inspect=collector.inspects(batch).")
            # Copies: a row of a batch's array would keep the whole batch alive.
            self._inspected[q_index] = {
                "icl_mass": mass.sum(axis=1).astype(np.float32), "icl_mass_heads": mass.astype(np.float32),
                "icl_score": icl.demo[row].copy(), "ft_score": ft_demo[row].copy(), "visible": icl.demo_visible[row].copy(),
            }

    def _seed(self, q_index: int) -> int:
        return self.seed * _RANDOM_SEED_STRIDE + q_index

    def _ft_demo_scores(self, ft_query: np.ndarray, scaling: np.ndarray) -> np.ndarray:
        """``[B, L, T_demo]``: ``scaling**2`` x the FT position's query . each training token's query, summed over heads.

        The reference code records queries after ``q *= scaling``, so its FT scores carry the
        scale twice; the ranking does not depend on it, the example level's softmax does.
        """
        per_layer = [
            torch.einsum("bhd,htd->bt", torch.from_numpy(ft_query[:, layer]), tq.double()).numpy() * scaling[layer] ** 2
            for layer, tq in enumerate(self.token_queries)
        ]
        return np.stack(per_layer, axis=1)

    def _add_kendall(self, batch: Sequence[int], icl: RouteOutput, ft_demo: np.ndarray) -> None:
        """Kendall and top-k recall at token level (scores) and example level (attention mass per demonstration)."""
        icl_demo, ft_demo, visible = list(icl.demo), list(ft_demo), list(icl.demo_visible)
        icl_ex, seen = metrics.example_mass(icl_demo, self.demo_owner, visible)
        ft_ex, _ = metrics.example_mass(ft_demo, self.demo_owner, visible)
        levels = {"token_level": (icl_demo, ft_demo, visible), "example_level": (icl_ex, ft_ex, seen)}
        for level, (a, b, keep) in levels.items():
            self._put(f"kendall_{level}", metrics.kendall_scores(a, b, keep))
            self._put(f"recall_{level}", metrics.topk_recall(a, b, self.top_k[level], keep))
            for row, q_index in enumerate(batch):
                one, seed = slice(row, row + 1), self._seed(q_index)
                self._put(f"kendall_{level}_random", metrics.kendall_random_scores(a[one], seed=seed, visible=keep[one]))
                self._put(f"recall_{level}_random", metrics.topk_recall_random(b[one], self.top_k[level], seed=[seed, 1], visible=keep[one]))

    # ---------------------------------------------------------------- summary
    def collected(self) -> dict[str, np.ndarray]:
        """Every collection as one array in query order (rows were added in batch order)."""
        restore = np.argsort(np.array(self._order))
        return {k: np.concatenate(v)[restore] for k, v in self._rows.items()}

    def inspected(self) -> dict[str, np.ndarray]:
        """The inspected queries' per-token scores, stacked in query order (empty without any):

        ``query_index [n]``; ``icl_mass [n, L, T_demo]`` and ``icl_mass_heads [n, L, H, T_demo]`` (float32):
        the ICL attention mass of each demonstration token, summed over heads and per head;
        ``icl_score`` and ``ft_score [n, L, T_demo]`` (float64): the two sides' scores that Kendall and
        top-k recall rank; ``visible [n, L, T_demo]`` whether the layer attends to the token.
        """
        order = sorted(self._inspected)
        if not order:
            return {}
        out = {"query_index": np.array(order, dtype=np.int64)}
        for key in self._inspected[order[0]]:
            out[key] = np.stack([self._inspected[q][key] for q in order])
        return out

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
            "rec2ftp_counts": metrics.rec2ftp_counts(correct["zsl"], correct["icl"], correct["ft"]),
            "change_recall": change_recall(preds["zsl"], preds["icl"], preds["ft"]),
            "change_recall_ci95": change_recall_bootstrap_ci(preds["zsl"], preds["icl"], preds["ft"], **boot),
            "change_recall_counts": change_recall_counts(preds["zsl"], preds["icl"], preds["ft"]),
            "simaou": _simaou(rows, boot),
            "simam": _simam(rows, boot),
            "kendall": _kendall(rows, boot, self.kendall_queries),
            "topk_recall": _topk_recall(rows, boot, self.kendall_queries, self.top_k),
            "label_shift": summarize_label_shift({key: rows[key] for key in LABEL_SHIFTS}, **boot),
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


def _level(rows: dict, key: str, boot: dict, n: int | None) -> dict:
    """One ranking metric's summary over the first ``n`` queries, with its random baseline."""
    main = metrics.summarize_layers(rows[key][:n], **boot)
    rand = metrics.summarize_layers(rows[f"{key}_random"][:n])
    return {**main, "random_mean": rand["mean"], "random_per_layer": rand["per_layer"]}


def _kendall(rows: dict, boot: dict, n: int | None) -> dict:
    used = len(rows["kendall_token_level"][:n])
    return {**_level(rows, "kendall_token_level", boot, n), "example_level": _level(rows, "kendall_example_level", boot, n),
            "n_queries": used}


def _topk_recall(rows: dict, boot: dict, n: int | None, top_k: dict) -> dict:
    used = len(rows["recall_token_level"][:n])
    levels = {level: {"k": k, **_level(rows, f"recall_{level}", boot, n)} for level, k in top_k.items()}
    return {**levels, "n_queries": used}
