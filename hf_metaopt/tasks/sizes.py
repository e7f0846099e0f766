"""Enough examples for the run asked for, checked before any model is loaded."""

from __future__ import annotations

from .spec import TaskSpec

__all__ = ["check_sizes"]


def check_sizes(spec: TaskSpec, data: dict, n_demonstrations: int, n_queries: int | None, split: str = "test") -> None:
    """Raise ``ValueError`` naming the counts and the fix when a split the run needs is empty."""
    for role, needed in (("train", n_demonstrations), (split, n_queries or 1)):
        if len(data[role]) == 0:
            raise ValueError(f"task {spec.name!r}: the {role} split is empty; the run needs {needed} examples from it.")
