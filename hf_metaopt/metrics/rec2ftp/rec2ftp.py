"""Rec2FTP (Dai et al. 2023) as an `evaluate` metric: how many of finetuning's fixes ICL also makes."""

import datasets
import evaluate

from hf_metaopt.analysis import metrics
from hf_metaopt.metrics.references import CITATION, REFERENCE_URLS

_DESCRIPTION = """\
Recall to finetuning predictions (Rec2FTP): of the queries that finetuning (FT) answers
correctly and zero-shot learning (ZSL) answers wrongly, the fraction that in-context learning
(ICL) answers correctly too:
#(FT correct & ZSL wrong & ICL correct) / #(FT correct & ZSL wrong).
"""

_KWARGS_DESCRIPTION = """
Args:
    zsl_predictions (`list` of `int`): label index predicted zero-shot, per query.
    icl_predictions (`list` of `int`): label index predicted with demonstrations in context.
    ft_predictions (`list` of `int`): label index predicted by the finetuned model.
    references (`list` of `int`): gold label index per query.
    n_resamples (`int`, default 1000): bootstrap resamples for the interval (0 disables it).
    seed (`int`, default 0): seeds the bootstrap.
Returns:
    rec2ftp (`float` or `None`): None when FT fixes no query.
    n_ft_fixes (`int`): #(FT correct & ZSL wrong), the denominator.
    ci95 (`[low, high]` or `None`): percentile bootstrap 95% interval over queries.
Examples:
    >>> rec2ftp = hf_metaopt.metrics.load("rec2ftp")
    >>> rec2ftp.compute(zsl_predictions=[0, 0, 1], icl_predictions=[1, 1, 1],
    ...                 ft_predictions=[1, 0, 1], references=[1, 1, 1], n_resamples=0)
    {'rec2ftp': 1.0, 'n_ft_fixes': 1, 'ci95': None}
"""

_CITATION = CITATION
_REFERENCE_URLS = REFERENCE_URLS


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Rec2FTP(evaluate.Metric):
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
                    "references": datasets.Value("int64"),
                }
            ),
            reference_urls=_REFERENCE_URLS,
        )

    def _compute(self, zsl_predictions, icl_predictions, ft_predictions, references, n_resamples=1000, seed=0):
        zsl = [p == r for p, r in zip(zsl_predictions, references)]
        icl = [p == r for p, r in zip(icl_predictions, references)]
        ft = [p == r for p, r in zip(ft_predictions, references)]
        n_fixes = sum(f and not z for f, z in zip(ft, zsl))
        ci = metrics.rec2ftp_bootstrap_ci(zsl, icl, ft, n_resamples=n_resamples, seed=seed) if n_resamples else None
        return {"rec2ftp": metrics.rec2ftp(zsl, icl, ft), "n_ft_fixes": int(n_fixes), "ci95": ci}
