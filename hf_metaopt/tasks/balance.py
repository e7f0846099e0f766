"""A class-balanced demonstration draw (``balanced_demonstrations=True``; the paper's draw is unbalanced).

From candidates in a given order (the train split shuffled with the seed, or the
demonstrations a user passed), the draw takes for each label its first examples in
that order, in rounds: each round holds the next example of every label that has one
left, in a seeded order of the labels. So the counts differ by at most one, and they
still do after demonstrations are dropped from the end (``max_demonstrations``, the
model's context), since every prefix of the draw is itself made of whole rounds plus
part of one. A label with fewer candidates than its share gives all it has and the
other labels fill the draw up to ``k``; a note says so and how small ``k`` must be for
an exactly balanced draw.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["balanced_draw"]


def balanced_draw(labels: Sequence[int], k: int, label_words: Sequence[str], seed: int) -> tuple[list[int], list[str]]:
    """Positions into ``labels`` (the candidates' labels, in candidate order) of a balanced draw of ``k``.

    Args:
        labels: each candidate's label index into ``label_words``.
        k: how many to draw (all candidates when there are fewer).
        label_words: one per label index (for the notes).
        seed: orders the labels within each round; the same seed gives the same draw.

    Returns:
        ``(positions, notes)``: the drawn candidates in prompt order, and notes on labels
        that had too few candidates for their share.
    """
    by_label: list[list[int]] = [[] for _ in label_words]
    for position, label in enumerate(labels):
        by_label[label].append(position)
    k = min(k, len(labels))
    rng = np.random.default_rng(seed)
    drawn: list[int] = []
    taken = [0] * len(label_words)
    while len(drawn) < k:
        left = [label for label, members in enumerate(by_label) if taken[label] < len(members)]
        for label in rng.permutation(left).tolist():
            if len(drawn) == k:
                break
            drawn.append(by_label[label][taken[label]])
            taken[label] += 1
    return drawn, _shortfall_notes(by_label, taken, k, label_words)


def _shortfall_notes(by_label: list[list[int]], taken: list[int], k: int, label_words: Sequence[str]) -> list[str]:
    # A label is short when it ran out and so holds more than one fewer than the largest label.
    short = [label for label, n in enumerate(taken) if max(taken) - n > 1]
    if not short:
        return []
    fewest = min(len(members) for members in by_label)
    words = ", ".join(f"{label_words[label]!r} {len(by_label[label])}" for label in short)
    counts = ", ".join(f"{word!r} {n}" for word, n in zip(label_words, taken))
    fix = (f"n_demonstrations={fewest * len(label_words)} or fewer gives an exactly balanced draw"
           if fewest else "a label without candidates cannot be drawn; add examples of it")
    return [
        f"balanced_demonstrations: too few candidates of some labels for a balanced draw of {k} "
        f"(available: {words}); they give all they have and the other labels fill the draw "
        f"(drawn: {counts}); {fix}."
    ]
