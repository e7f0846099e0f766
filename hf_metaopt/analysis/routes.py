"""Batched forward passes of one route (ZSL, ICL or FT) with capture at the analysis position.

A route scores each query's label words (mean log-probability of each word's tokens
after the prompt) and records, through :class:`~.capture.AttentionRecorder`, the
attention output, query vector and attention scores at the position. Sequences are
right-padded, so real tokens never see padding and position ids need no adjusting.
The ICL route can start from a shared prefix cache (computed once, expanded to the
batch) or, as the reference route, feed the full prompt of every query on its own.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .capture import AttentionRecorder, RowSpec

__all__ = ["RouteRunner", "RouteOutput", "expand_cache", "input_device"]


def expand_cache(cache, batch: int):
    """A copy of a batch-1 cache repeated ``batch`` times along the batch dimension.

    Uses ``Cache.reorder_cache`` (beam search's index select) with index 0 repeated:
    unlike ``batch_repeat_interleave`` it also repeats the recurrent and convolution
    states of linear-attention cache layers, where MomentumGPT keeps its momentum state.
    """
    cache = copy.deepcopy(cache)
    cache.reorder_cache(torch.zeros(batch, dtype=torch.long))
    return cache


def input_device(model: nn.Module) -> torch.device:
    """Where to put input ids: CPU for accelerate-dispatched models (its hooks move them)."""
    if getattr(model, "hf_device_map", None):
        return torch.device("cpu")
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


@dataclass
class RouteOutput:
    """One batch of queries through one route (numpy float64 on CPU).

    ``logprobs`` ``[B, n_labels]``; ``output`` ``[B, L, E]`` attention outputs at the
    position; ``query`` ``[B, L, H, Dh]``; ``own`` per row ``[L, H, T_own]`` scores over
    the query's own tokens; ``demo`` ``[B, L, T_demo]`` scores over demonstration tokens
    summed over heads (ICL only).
    """

    logprobs: np.ndarray
    output: np.ndarray | None
    query: np.ndarray | None
    own: list[np.ndarray]
    demo: np.ndarray | None


class RouteRunner:
    """Runs batches of queries through ``model`` and records the analysis position.

    Args:
        model: the causal LM (eval mode).
        label_ids: token ids of each label word.
        position: ``"prediction"`` (last prompt token) or ``"label"`` (first token of the
            first label word, appended).
        pad_id: id used for right padding.
    """

    def __init__(self, model: nn.Module, label_ids: Sequence[Sequence[int]], position: str, pad_id: int):
        self.model = model
        self.recorder = AttentionRecorder(model)
        self.label_ids = [list(ids) for ids in label_ids]
        self.position = position
        self.pad_id = pad_id
        self.device = input_device(model)
        self.keeps_logits = "logits_to_keep" in inspect.signature(model.forward).parameters

    # ------------------------------------------------------------------ passes
    @torch.no_grad()
    def prefix_cache(self, prefix_ids: Sequence[int]):
        """The cache of the demonstration prefix (one pass, batch 1)."""
        out = self.model(input_ids=torch.tensor([list(prefix_ids)], device=self.device), use_cache=True)
        return out.cache

    @torch.no_grad()
    def _forward(self, inputs, cache, targets, rows: list[RowSpec] | None) -> list[list[float]]:
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
        self.recorder.rows = rows or []
        out = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device), **kwargs)
        self.recorder.rows = []
        logprobs = torch.log_softmax(out.logits.float(), dim=-1).cpu()
        return [[float(logprobs[b, column[p], tok]) for p, tok in row] for b, row in enumerate(targets)]

    def run(
        self,
        query_ids: Sequence[Sequence[int]],
        context_ids: Sequence[int],
        cache=None,
        demo_positions: Sequence[int] | None = None,
    ) -> RouteOutput:
        """Score and capture a batch of queries after ``context_ids``.

        ``context_ids`` are the tokens before each query (the leading special tokens, or
        the ICL prefix). With ``cache`` (the context's cache) only the query tokens are
        fed; otherwise context and query are fed together.
        """
        offset = 0 if cache is not None else len(context_ids)
        context = [] if cache is not None else list(context_ids)
        keys_offset = len(context_ids)
        first_label = self.label_ids[0][0]
        main_inputs, rows, main_targets = [], [], []
        for q in query_ids:
            q = list(q)
            extra = [first_label] if self.position == "label" else []
            pos = len(q) if self.position == "label" else len(q) - 1
            main_inputs.append(context + q + extra)
            rows.append(RowSpec(position=offset + pos, own=(keys_offset, keys_offset + pos + 1), demo=demo_positions))
            main_targets.append([(offset + len(q) - 1, ids[0]) for ids in self.label_ids])
        with self.recorder.recording():
            first = self._forward(main_inputs, cache, main_targets, rows)
            records = self.recorder.pop()
            scores = np.array(first, dtype=np.float64)  # [B, n_labels] first-token log-probs
            for j, ids in enumerate(self.label_ids):
                if len(ids) == 1:
                    continue
                inputs, targets = [], []
                for q in query_ids:
                    q = list(q)
                    inputs.append(context + q + ids[:-1])
                    targets.append([(offset + len(q) - 1 + t, tok) for t, tok in enumerate(ids)])
                scores[:, j] = np.mean(np.array(self._forward(inputs, cache, targets, None)), axis=1)
        n_layers = self.recorder.num_layers
        own = [
            np.stack([records["own_scores"][layer][b].numpy() for layer in range(n_layers)])
            for b in range(len(query_ids))
        ]
        return RouteOutput(
            logprobs=scores,
            output=records["output"].numpy(),
            query=records["query"].numpy(),
            own=own,
            demo=records["demo_scores"].numpy() if records["demo_scores"] is not None else None,
        )
