"""The Hub: checkpoint and analysis cards, eval results, and pushes of checkpoints and reports.

    from hf_metaopt.hub import push_model, push_report, push_space
    push_model(model, "alice/momentum-gpt-small", perplexities={"valid@256": 19.4})
    push_report("runs/sst2-seed1", "alice/icl-analyses")
    push_space("runs/sst2-seed1", "alice/sst2-analysis")     # report.html as a static Space

Layers: :mod:`~hf_metaopt.hub.upload` (the one commit, retried, token-safe) and
:mod:`~hf_metaopt.hub.cards` (the checkpoint card, card helpers) know nothing of analysis reports
and sit below :mod:`hf_metaopt.analysis`, whose reports push through them (the analysis card is
:mod:`hf_metaopt.analysis.report_card`); :mod:`~hf_metaopt.hub.push` (``push_model``,
``push_report``) and :mod:`~hf_metaopt.hub.space` (``push_space``) sit above analysis and load run
folders. They are imported on first use (as transformers' lazy ``__init__`` does), so importing a
report, which imports the upload, never needs the layer above it.
"""

from __future__ import annotations

from typing import Any

from ..analysis.report_card import eval_results_from_report, render_analysis_card
from .cards import merge_eval_results, render_model_card, write_model_card
from .upload import DEFAULT_RETRY, HubPushError, RetryPolicy

# The pushes that load run folders (the layer above the analysis), each imported on first use: name -> module.
_PUSHES = {"push_model": "push", "push_report": "push", "push_space": "space"}

__all__ = [
    "DEFAULT_RETRY",
    "HubPushError",
    "RetryPolicy",
    "eval_results_from_report",
    "merge_eval_results",
    "push_model",
    "push_report",
    "push_space",
    "render_analysis_card",
    "render_model_card",
    "write_model_card",
]


def __getattr__(name: str) -> Any:
    if name in _PUSHES:
        import importlib

        module = importlib.import_module(f".{_PUSHES[name]}", __name__)
        globals()[name] = getattr(module, name)  # later lookups skip this hook
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUSHES))
