"""The shuffled-label control: the same demonstrations with their labels permuted, for ICL and FT alike.

Definition, ``docs/analysis.md`` ("Controls"): the labels of the demonstrations used are permuted by
a seeded permutation (:func:`shuffled_labels`), so every label keeps its count and only which
demonstration carries it changes; the control's ICL prompt and its finetuning
examples are both built from these relabelled demonstrations. A similarity that survives wrong
labels says little about learning the task from them (Min et al. 2022 show that ICL accuracy can).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["SHUFFLE_STREAM", "relabelled", "shuffle_summary", "shuffled_labels"]

SHUFFLE_STREAM = 2  # a seeded stream of its own (the demonstration orders draw from stream 1)


def shuffled_labels(labels: Sequence[int], seed: int) -> list[int]:
    """``labels`` permuted by the seeded permutation of this control: the same counts per label, in other places.

    The permutations are drawn by ``numpy.random.default_rng((seed, SHUFFLE_STREAM))``; the first one that
    gives at least one demonstration another label is used (a permutation that moves only equal labels
    would repeat the pretrained analysis). Demonstrations that all share one label keep it.
    """
    labels = [int(x) for x in labels]
    if not labels:
        raise ValueError("`labels` is empty; the shuffled-label control needs at least one demonstration.")
    rng = np.random.default_rng((seed, SHUFFLE_STREAM))
    while True:
        shuffled = [labels[i] for i in rng.permutation(len(labels))]
        if shuffled != labels or len(set(labels)) == 1:
            return shuffled


def relabelled(demonstrations: Sequence[Mapping[str, Any]], labels: Sequence[int]) -> list[dict]:
    """Copies of ``demonstrations`` with ``labels[i]`` as the label of the ``i``-th (their text unchanged)."""
    if len(labels) != len(demonstrations):
        raise ValueError(f"{len(labels)} labels for {len(demonstrations)} demonstrations; give one label each.")
    return [{**d, "label": int(label)} for d, label in zip(demonstrations, labels)]


def shuffle_summary(original: Sequence[int], shuffled: Sequence[int]) -> dict[str, Any]:
    """``{"labels": the shuffled labels, "changed": how many demonstrations got another label, "n_demonstrations"}``."""
    return {"labels": [int(x) for x in shuffled], "changed": int(sum(a != b for a, b in zip(original, shuffled))),
            "n_demonstrations": len(shuffled)}
