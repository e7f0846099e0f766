"""The Hub: checkpoint and analysis cards, eval results, and pushes of checkpoints and reports.

    from hf_metaopt.hub import push_model, push_report
    push_model(model, "alice/momentum-gpt-small", perplexities={"valid@256": 19.4})
    push_report("runs/sst2-seed1", "alice/icl-analyses")
"""

from .cards import (
    eval_results_from_report,
    merge_eval_results,
    render_analysis_card,
    render_model_card,
    write_model_card,
)
from .push import DEFAULT_RETRY, HubPushError, RetryPolicy, push_model, push_report

__all__ = [
    "DEFAULT_RETRY",
    "HubPushError",
    "RetryPolicy",
    "eval_results_from_report",
    "merge_eval_results",
    "push_model",
    "push_report",
    "render_analysis_card",
    "render_model_card",
    "write_model_card",
]
