"""Top-k recall (the reference code of Dai et al. 2023) as an `evaluate` metric: do ICL and FT rank the same items highest?"""

import datasets
import evaluate

from hf_metaopt.analysis import metrics
from hf_metaopt.metrics.references import CITATION, REFERENCE_URLS

_DESCRIPTION = """\
Top-k recall, as microsoft/LMOps understand_icl/icl_ft/compute_training_example_attn.py reports it
beside Kendall: of the k items (demonstration tokens, or demonstrations) the FT side ranks highest,
the share the ICL side ranks in its own top k, |top_k(ICL) & top_k(FT)| / k, per (query, layer),
mean over queries per layer, then over layers. The scores are those of the kendall module (token
level), or each demonstration's softmax attention mass (example level). With n <= k items k becomes
n (the recall is then 1); ties rank the earlier item first. The baseline ranks a Uniform[0, 1)
random score against the FT side's (about k / n).
"""

_KWARGS_DESCRIPTION = """
Args:
    m_icl, m_ft (`list` of `[L, n]` float arrays): the ICL and FT scores of the n items per query.
    k (`int`, default 100): how many top items (the reference: 100 tokens, 5 demonstrations).
    seed (`int`, default 0): seeds the random baseline and the bootstrap.
    n_resamples (`int`, default 1000): bootstrap resamples for the interval (0 disables it).
Returns:
    k (`int`), per_layer (`list` of `float`), mean (`float`), ci95 (`[low, high]` or `None`),
    random_per_layer (`list` of `float`), random_mean (`float`).
Examples:
    >>> topk_recall = hf_metaopt.metrics.load("topk_recall")
    >>> out = topk_recall.compute(m_icl=[[[3.0, 1.0, 2.0, 0.0]]], m_ft=[[[0.0, 1.0, 2.0, 3.0]]], k=2, n_resamples=0)
    >>> out["mean"]
    0.5
"""

_CITATION = CITATION
_REFERENCE_URLS = REFERENCE_URLS


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class TopKRecall(evaluate.Metric):
    def _info(self):
        scores = datasets.Sequence(datasets.Sequence(datasets.Value("float64")))
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"m_icl": scores, "m_ft": scores}),
            reference_urls=_REFERENCE_URLS,
        )

    def _compute(self, m_icl, m_ft, k=100, seed=0, n_resamples=1000):
        random = metrics.summarize_layers(metrics.topk_recall_random(m_ft, k, seed=seed))
        return {
            "k": k,
            **metrics.summarize_layers(metrics.topk_recall(m_icl, m_ft, k), n_resamples=n_resamples, seed=seed),
            "random_per_layer": random["per_layer"],
            "random_mean": random["mean"],
        }
