"""Label balance: how often each label occurs among the demonstrations, the gold labels and each route's answers.

ICL accuracy swings with the label balance of the demonstration draw (a model that
answers one label for nearly every query scores that label's share of the gold labels).
``report["label_counts"]`` holds the counts, lists indexed like ``label_words``; the notes
say when they matter:

- a route answers one label for more than :data:`MAJORITY_SHARE` of the queries;
- the demonstrations are imbalanced: the largest label count exceeds the smallest by more
  than one and by more than :data:`IMBALANCE_RATIO` times (or a label is absent while
  another occurs twice or more). Counts that differ by at most one are as balanced as ``k``
  allows and never noted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["IMBALANCE_RATIO", "MAJORITY_SHARE", "count_labels", "demonstration_notes", "label_counts",
           "label_balance_notes", "majority_notes", "prediction_counts"]

MAJORITY_SHARE = 0.8
IMBALANCE_RATIO = 1.5
ROUTES = {"zsl": "ZSL", "icl": "ICL", "ft": "FT"}
_FIX = "balanced_demonstrations=True (--balanced-demonstrations)"


def count_labels(labels: Sequence[int], n_labels: int) -> list[int]:
    """How many of ``labels`` are each label index ``0 .. n_labels - 1``."""
    counts = [0] * n_labels
    for label in labels:
        counts[label] += 1
    return counts


def prediction_counts(summary: Mapping, n_labels: int) -> dict[str, list[int]]:
    """Per route, the label counts of its predictions (``summary["predictions"]``)."""
    return {route: count_labels(summary["predictions"][route], n_labels) for route in ROUTES}


def label_counts(demonstration_labels: Sequence[int], summary: Mapping, n_labels: int) -> dict:
    """``report["label_counts"]``: ``{"demonstrations", "predictions": {zsl, icl, ft}, "gold"}``."""
    return {
        "demonstrations": count_labels(demonstration_labels, n_labels),
        "predictions": prediction_counts(summary, n_labels),
        "gold": count_labels(summary["labels"], n_labels),
    }


def majority_notes(predictions: Mapping[str, list[int]], gold: Sequence[int], label_words: Sequence[str],
                   balanced: bool = False) -> list[str]:
    """A note per route answering one label for more than :data:`MAJORITY_SHARE` of the queries."""
    notes = []
    n = sum(gold)
    for route, name in ROUTES.items():
        counts = predictions.get(route)
        if not counts or not n:
            continue
        top = max(range(len(counts)), key=counts.__getitem__)
        if counts[top] <= MAJORITY_SHARE * n:
            continue
        if route == "zsl":
            why = "the model's prior without demonstrations (no calibration)"
        elif balanced:
            why = "a majority-label bias even with balanced demonstrations"
        else:
            why = f"a majority-label bias more than the task; compare with {_FIX}"
        notes.append(
            f"{name} answers {label_words[top]!r} for {counts[top]} of {n} queries ({counts[top] / n:.0%}; the gold "
            f"labels hold {gold[top]}): its accuracy then reflects {why}."
        )
    return notes


def demonstration_notes(counts: Sequence[int], label_words: Sequence[str], balanced: bool = False) -> list[str]:
    """A note when the demonstrations' label counts are imbalanced (the rule in the module docstring)."""
    if not counts:
        return []
    most, fewest = max(counts), min(counts)
    if most - fewest <= 1 or (fewest and most <= IMBALANCE_RATIO * fewest):
        return []
    shown = ", ".join(f"{word!r} {n}" for word, n in zip(label_words, counts))
    fix = "" if balanced else f"; {_FIX} draws them class-balanced"
    return [f"the {sum(counts)} demonstrations are label-imbalanced ({shown}): ICL and FT may favour the majority label{fix}."]


def label_balance_notes(counts: Mapping, label_words: Sequence[str], balanced: bool = False) -> list[str]:
    """The notes on ``report["label_counts"]``: imbalanced demonstrations, then routes answering mostly one label."""
    return (demonstration_notes(counts["demonstrations"], label_words, balanced)
            + majority_notes(counts["predictions"], counts["gold"], label_words, balanced))
