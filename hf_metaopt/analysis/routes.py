"""Batched forward passes of one route (ZSL, ICL or FT) with capture at the analysis position.

A route scores each query's label words (mean log-probability of each word's tokens
after the prompt) and records, through :class:`~.capture.AttentionRecorder`, the
attention output, query vector and attention scores at the position. Sequences are
right-padded, so real tokens never see padding and position ids need no adjusting.
The ICL route can start from a shared prefix cache (computed once, expanded to the
batch) or, as the reference route, feed the full prompt of every query on its own.
Only the logits of the positions that are scored are computed (``logits_to_keep``), and
only the scored rows are normalised. Logits with inf or NaN (half-precision overflow) stop
the run with :class:`~.capture.NonFiniteError`.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..torch_utils import input_device
from .capture import AttentionRecorder, RowSpec, check_finite, score_dtype
from .prefix_cache import expand_cache

__all__ = ["RouteOutput", "RouteRunner", "expand_cache"]


@dataclass
class RouteOutput:
    """One batch of queries through one route (numpy on CPU, float64 / bool).

    ``logprobs [B, n_labels]``; ``output [B, L, E]`` attention outputs at the position;
    ``query [B, L, H, Dh]``; ``own`` per row ``[L, H, T_own]`` scores over the query's own
    tokens (0 where the layer does not attend) and ``own_visible`` per row ``[L, T_own]``;
    ``demo [B, L, T_demo]`` scores over demonstration tokens summed over heads and
    ``demo_visible [B, L, T_demo]`` (ICL only, else ``None``); ``scaling [L]`` each layer's
    score scale (``scores = scaling * q.k``); ``demo_mass`` per row ``[L, H, T_demo]``, the
    attention mass of each demonstration token per head, for the rows run with ``inspect``
    (``None`` for the others).
    """

    logprobs: np.ndarray
    output: np.ndarray | None = None
    query: np.ndarray | None = None
    own: list[np.ndarray] | None = None
    own_visible: list[np.ndarray] | None = None
    demo: np.ndarray | None = None
    demo_visible: np.ndarray | None = None
    scaling: np.ndarray | None = None
    demo_mass: list[np.ndarray | None] | None = None


class RouteRunner:
    """Runs batches of queries through ``model``, scoring the label words and recording the position.

    Args:
        model: the causal LM (eval mode).
        label_ids: token ids of each label word.
        position: ``"prediction"`` (last prompt token) or ``"label"`` (first token of the
            first label word, appended).
        pad_id: id used for right padding.
        capture: record attention (``False``: predictions only).
    """

    def __init__(self, model: nn.Module, label_ids: Sequence[Sequence[int]], position: str, pad_id: int, capture: bool = True):
        self.model = model
        self.recorder = AttentionRecorder(model) if capture else None
        self.label_ids = [list(ids) for ids in label_ids]
        self.position = position
        self.pad_id = pad_id
        self.device = input_device(model)
        self.keeps_logits = "logits_to_keep" in inspect.signature(model.forward).parameters

    # ------------------------------------------------------------------ passes
    @torch.no_grad()
    def prefix_cache(self, prefix_ids: Sequence[int]):
        """The cache of the demonstration prefix (one pass, batch 1, no logits kept beyond the last)."""
        kwargs = {"logits_to_keep": 1} if self.keeps_logits else {}
        out = self.model(input_ids=torch.tensor([list(prefix_ids)], device=self.device), use_cache=True, **kwargs)
        return out.cache

    @torch.no_grad()
    def _forward(self, inputs, cache, targets) -> list[list[float]]:
        batch, width = len(inputs), max(len(x) for x in inputs)
        ids = torch.full((batch, width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((batch, width), dtype=torch.long)
        for b, seq in enumerate(inputs):
            ids[b, : len(seq)] = torch.tensor(seq)
            mask[b, : len(seq)] = 1
        kwargs = {"use_cache": cache is not None}
        if cache is not None:
            cache = expand_cache(cache, batch)
            mask = torch.cat([torch.ones((batch, cache.get_seq_length()), dtype=torch.long), mask], dim=1)
            kwargs["cache"] = cache
        positions = sorted({p for row in targets for p, _ in row})
        column = {p: i for i, p in enumerate(positions)} if self.keeps_logits else {p: p for p in positions}
        if self.keeps_logits:
            kwargs["logits_to_keep"] = torch.tensor(positions, device=self.device)
        logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device), **kwargs).logits
        # Only the (row, position) pairs scored: log-softmax over the vocabulary of those rows alone.
        pairs = sorted({(b, column[p]) for b, row in enumerate(targets) for p, _ in row})
        where = {pair: i for i, pair in enumerate(pairs)}
        logits = logits[[b for b, _ in pairs], [c for _, c in pairs]]
        logprobs = torch.log_softmax(logits.to(score_dtype(logits.dtype)), dim=-1).cpu()
        check_finite(logprobs, "logits", logits.dtype)  # inf or NaN logits make their row's log-softmax NaN
        return [[float(logprobs[where[b, column[p]], tok]) for p, tok in row] for b, row in enumerate(targets)]

    def run(
        self,
        query_ids: Sequence[Sequence[int]],
        context_ids: Sequence[int],
        cache=None,
        demo_positions: Sequence[int] | None = None,
        inspect: Sequence[bool] | None = None,
    ) -> RouteOutput:
        """Score (and capture) a batch of queries after ``context_ids``.

        ``context_ids`` are the tokens before each query (the start token, or the ICL
        prefix). With ``cache`` (the context's cache) only the query tokens are fed;
        otherwise context and query are fed together. ``inspect`` (per row, with
        ``demo_positions``): also record the attention mass of each demonstration token.
        """
        fed_context = [] if cache is not None else list(context_ids)
        past = len(context_ids) if cache is not None else 0
        first_label = self.label_ids[0][0]
        inputs, rows, targets = [], [], []
        inspect = list(inspect) if inspect is not None else [False] * len(query_ids)
        for q, inspected in zip(map(list, query_ids), inspect, strict=True):
            pos = len(q) if self.position == "label" else len(q) - 1
            inputs.append(fed_context + q + ([first_label] if self.position == "label" else []))
            own = (len(context_ids), len(context_ids) + pos + 1)
            rows.append(RowSpec(position=len(fed_context) + pos, own=own, demo=demo_positions, inspect=inspected))
            targets.append([(len(fed_context) + len(q) - 1, ids[0]) for ids in self.label_ids])
        if self.recorder is None:
            scores, records = np.array(self._forward(inputs, cache, targets)), None
        else:
            with self.recorder.recording(), self.recorder.reading(rows, past_length=past):
                scores = np.array(self._forward(inputs, cache, targets), dtype=np.float64)
            records = self.recorder.pop()
        self._score_multi_token_words(scores, query_ids, fed_context, cache)
        return _output(scores, records)

    def _score_multi_token_words(self, scores: np.ndarray, query_ids, fed_context: list[int], cache) -> None:
        """Replace first-token log-probs by the mean over all tokens for multi-token label words."""
        for j, ids in enumerate(self.label_ids):
            if len(ids) == 1:
                continue
            inputs, targets = [], []
            for q in map(list, query_ids):
                inputs.append(fed_context + q + ids[:-1])
                targets.append([(len(fed_context) + len(q) - 1 + t, tok) for t, tok in enumerate(ids)])
            scores[:, j] = np.mean(np.array(self._forward(inputs, cache, targets)), axis=1)


def _output(scores: np.ndarray, records: dict | None) -> RouteOutput:
    if records is None:
        return RouteOutput(logprobs=scores)
    as_numpy = lambda t: None if t is None else t.numpy()  # noqa: E731
    return RouteOutput(
        logprobs=scores,
        output=as_numpy(records["output"]),
        query=as_numpy(records["query"]),
        own=[t.numpy() for t in records["own"]],
        own_visible=[t.numpy() for t in records["own_visible"]],
        demo=as_numpy(records["demo"]),
        demo_visible=as_numpy(records["demo_visible"]),
        scaling=as_numpy(records["scaling"]),
        demo_mass=[as_numpy(t) for t in records["demo_mass"]],
    )
