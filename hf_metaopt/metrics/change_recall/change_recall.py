"""ChangeRecall (Deutch et al. 2024) as an `evaluate` metric: do ICL and FT change the same zero-shot predictions alike?"""

import datasets
import evaluate

from hf_metaopt.analysis import change_recall as cr
from hf_metaopt.metrics.references import CITATION, REFERENCE_URLS

_DESCRIPTION = """\
ChangeRecall (Deutch et al. 2024): of the queries whose prediction in-context learning (ICL) or
finetuning (FT) changes relative to zero-shot (ZSL), the share that both change, to the same label:
#(ICL != ZSL & FT != ZSL & ICL == FT) / #(ICL != ZSL | FT != ZSL).
Undefined (None) when neither changes any prediction. Gold labels are not used.
"""

_KWARGS_DESCRIPTION = """
Args:
    zsl_predictions (`list` of `int`): label index predicted zero-shot, per query.
    icl_predictions (`list` of `int`): label index predicted with demonstrations in context.
    ft_predictions (`list` of `int`): label index predicted by the finetuned model.
    n_resamples (`int`, default 1000): bootstrap resamples for the interval (0 disables it).
    seed (`int`, default 0): seeds the bootstrap.
Returns:
    change_recall (`float` or `None`): None when no prediction changed.
    changed (`int`): #(ICL != ZSL | FT != ZSL), the denominator.
    same_change (`int`): #(ICL != ZSL & FT != ZSL & ICL == FT), the numerator.
    icl_changed, ft_changed (`int`): the queries each route changes.
    ci95 (`[low, high]` or `None`): percentile bootstrap 95% interval over queries.
Examples:
    >>> change_recall = hf_metaopt.metrics.load("change_recall")
    >>> change_recall.compute(zsl_predictions=[0, 0, 0, 1], icl_predictions=[1, 1, 0, 1],
    ...                       ft_predictions=[1, 0, 1, 1], n_resamples=0)
    {'change_recall': 0.3333333333333333, 'changed': 3, 'same_change': 1, 'icl_changed': 2, 'ft_changed': 2, 'ci95': None}
"""

_CITATION = CITATION
_REFERENCE_URLS = REFERENCE_URLS


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ChangeRecall(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "zsl_predictions": datasets.Value("int64"),
                    "icl_predictions": datasets.Value("int64"),
                    "ft_predictions": datasets.Value("int64"),
                }
            ),
            reference_urls=_REFERENCE_URLS,
        )

    def _compute(self, zsl_predictions, icl_predictions, ft_predictions, n_resamples=1000, seed=0):
        routes = (zsl_predictions, icl_predictions, ft_predictions)
        ci = cr.change_recall_bootstrap_ci(*routes, n_resamples=n_resamples, seed=seed) if n_resamples else None
        return {"change_recall": cr.change_recall(*routes), **cr.change_recall_counts(*routes), "ci95": ci}
