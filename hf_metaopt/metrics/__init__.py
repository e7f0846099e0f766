"""The paper's analysis metrics as `evaluate` modules, loadable offline from the installed package.

    >>> import hf_metaopt.metrics
    >>> simaou = hf_metaopt.metrics.load("simaou")
    >>> simaou.compute(h_zsl=..., h_icl=..., h_ft=...)
    >>> import evaluate
    >>> simaou = evaluate.load(hf_metaopt.metrics.module_path("simaou"))   # the same module

``evaluate.load("simaou")`` by bare name does not find them: evaluate looks for a ``simaou``
folder in the working directory, then on the Hub, where these modules are not published.

Each module delegates to :mod:`hf_metaopt.analysis.metrics` (ChangeRecall to
:mod:`hf_metaopt.analysis.change_recall`, the label shift to :mod:`hf_metaopt.analysis.label_shift`), so scores computed here equal
those in an :class:`~hf_metaopt.ICLAnalysisReport`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

METRICS = ("rec2ftp", "simaou", "simam", "kendall", "topk_recall", "change_recall", "label_shift")

__all__ = ["METRICS", "load", "module_path"]


def module_path(name: str) -> str:
    """The folder of the packaged `evaluate` module ``name`` (one of :data:`METRICS`), as the string
    ``evaluate.load`` takes: ``evaluate.load(module_path("simaou"))`` loads it offline."""
    if name not in METRICS:
        raise ValueError(f"Unknown metric {name!r}; choose one of {list(METRICS)}.")
    return str(Path(__file__).resolve().parent / name)


def load(name: str, **kwargs: Any):
    """``evaluate.load`` the packaged metric ``name``; no network access is needed.

    Args:
        name: one of :data:`METRICS`: ``"rec2ftp"``, ``"simaou"``, ``"simam"``, ``"kendall"``,
            ``"topk_recall"``, ``"change_recall"``, ``"label_shift"``.
        **kwargs: passed to :func:`evaluate.load` (e.g. ``experiment_id``, ``keep_in_memory``).
    """
    import evaluate

    return evaluate.load(module_path(name), **kwargs)
