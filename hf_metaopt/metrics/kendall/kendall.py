"""Kendall (Dai et al. 2023) as an `evaluate` metric: ICL attention vs FT training-token attention."""

import datasets
import evaluate

from hf_metaopt.analysis import metrics
from hf_metaopt.metrics.references import CITATION, REFERENCE_URLS

_DESCRIPTION = """\
Kendall rank correlation between ICL attention to the demonstration tokens and FT attention
to the training tokens. Per query and layer: m_ICL = pre-softmax scores of the analysed
position over the demonstration tokens, summed over heads; m_FT = for the finetuned model, the
dot product of the position's query vector with the query vector each demonstration token had
during finetuning, summed over heads. Kendall's tau-b per (query, layer), mean over queries per
layer, then over layers. The baseline ranks m_ICL against Uniform[0, 1) random scores (about 0).
A constant ranking (tau undefined) scores 0.
"""

_KWARGS_DESCRIPTION = """
Args:
    m_icl_demo, m_ft_demo (`list` of `[L, T_demo]` float arrays): scores per query.
    seed (`int`, default 0): seeds the random baseline and the bootstrap.
    n_resamples (`int`, default 1000): bootstrap resamples for the interval (0 disables it).
Returns:
    per_layer (`list` of `float`), mean (`float`), ci95 (`[low, high]` or `None`),
    random_per_layer (`list` of `float`), random_mean (`float`).
Examples:
    >>> kendall = hf_metaopt.metrics.load("kendall")
    >>> out = kendall.compute(m_icl_demo=[[[1.0, 2.0, 3.0, 4.0]]], m_ft_demo=[[[1.0, 3.0, 2.0, 4.0]]], n_resamples=0)
    >>> round(out["mean"], 6)
    0.666667
"""

_CITATION = CITATION
_REFERENCE_URLS = REFERENCE_URLS


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Kendall(evaluate.Metric):
    def _info(self):
        scores = datasets.Sequence(datasets.Sequence(datasets.Value("float64")))
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"m_icl_demo": scores, "m_ft_demo": scores}),
            reference_urls=_REFERENCE_URLS,
        )

    def _compute(self, m_icl_demo, m_ft_demo, seed=0, n_resamples=1000):
        scores = metrics.kendall_scores(m_icl_demo, m_ft_demo)
        random = metrics.kendall_random_scores(m_icl_demo, seed=seed)
        random_summary = metrics.summarize_layers(random)
        return {
            **metrics.summarize_layers(scores, n_resamples=n_resamples, seed=seed),
            "random_per_layer": random_summary["per_layer"],
            "random_mean": random_summary["mean"],
        }
