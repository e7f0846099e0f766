"""The label-distribution shift (Shen et al. 2024) as an `evaluate` metric: KL and TV between ICL's, FT's and ZSL's label distributions."""

import datasets
import evaluate

from hf_metaopt.analysis import label_shift as ls
from hf_metaopt.metrics.references import CITATION, REFERENCE_URLS, SHEN_CITATION, SHEN_URL

_DESCRIPTION = """\
How differently in-context learning (ICL) and finetuning (FT) move a model's output distribution
(Shen, Mishra & Khashabi 2024). Per query, a setting's label distribution is the softmax over the
label set of its label-word scores (the mean log-probability of each label word's tokens after the
prompt). Per query: kl_icl_ft = KL(p_ICL || p_FT) and tv_icl_ft = TV(p_ICL, p_FT), beside the shifts
from zero-shot kl_icl_zsl = KL(p_ICL || p_ZSL), kl_ft_zsl = KL(p_FT || p_ZSL) and their TVs;
KL(p || q) = sum_j p_j log(p_j / q_j), TV(p, q) = 1/2 sum_j |p_j - q_j|. Means over queries.
Identical distributions give 0.
"""

_KWARGS_DESCRIPTION = """
Args:
    logprobs_zsl, logprobs_icl, logprobs_ft (`list` of `[n_labels]` float arrays): each setting's
        label-word scores (log-probabilities) per query.
    n_resamples (`int`, default 1000): bootstrap resamples for the intervals (0 disables them).
    seed (`int`, default 0): seeds the bootstrap.
Returns:
    kl_icl_ft, tv_icl_ft, kl_icl_zsl, tv_icl_zsl, kl_ft_zsl, tv_ft_zsl (`float`): means over queries;
    ci95 (`dict` of `[low, high]`, or `None`): their percentile bootstrap 95% intervals.
Examples:
    >>> label_shift = hf_metaopt.metrics.load("label_shift")
    >>> out = label_shift.compute(logprobs_zsl=[[-0.6931, -0.6931]], logprobs_icl=[[-0.2231, -1.6094]],
    ...                           logprobs_ft=[[-0.6931, -0.6931]], n_resamples=0)
    >>> round(out["tv_icl_ft"], 4), round(out["kl_ft_zsl"], 4)
    (0.3, 0.0)
"""

_CITATION = CITATION + SHEN_CITATION
_REFERENCE_URLS = REFERENCE_URLS + [SHEN_URL]


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class LabelShift(evaluate.Metric):
    def _info(self):
        scores = datasets.Sequence(datasets.Value("float64"))
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"logprobs_zsl": scores, "logprobs_icl": scores, "logprobs_ft": scores}),
            reference_urls=_REFERENCE_URLS,
        )

    def _compute(self, logprobs_zsl, logprobs_icl, logprobs_ft, n_resamples=1000, seed=0):
        summary = ls.summarize_label_shift(ls.label_shift_scores(logprobs_zsl, logprobs_icl, logprobs_ft),
                                           n_resamples=n_resamples, seed=seed)
        out = {key: value["mean"] for key, value in summary.items()}
        out["ci95"] = {key: value["ci95"] for key, value in summary.items()} if n_resamples else None
        return out
