"""SimAOU (Dai et al. 2023) as an `evaluate` metric: similarity of ICL and FT attention-output updates."""

import datasets
import evaluate

from hf_metaopt.analysis import metrics
from hf_metaopt.metrics.references import CITATION, REFERENCE_URLS

_DESCRIPTION = """\
Similarity of attention output updates (SimAOU). Per query and layer, h is the output of the
self-attention block (after the output projection, before the residual add) at the analysed
position, for zero-shot (ZSL), in-context (ICL) and finetuned (FT) runs. The score is
cos(h_ICL - h_ZSL, h_FT - h_ZSL), averaged over queries per layer, then over layers. With
`normalize=True` (the paper) each h is L2-normalised first; `normalize=False` is the
unnormalised variant of Deutch et al. 2024. The random baseline replaces the FT update by a
Uniform[0, 1) vector, as the reference code does. A zero update scores 0.
"""

_KWARGS_DESCRIPTION = """
Args:
    h_zsl, h_icl, h_ft (`list` of `[L, D]` float arrays): attention outputs per query.
    normalize (`bool`, default True): L2-normalise each h first (the paper's reading).
    seed (`int`, default 0): seeds the random baseline and the bootstrap.
    n_resamples (`int`, default 1000): bootstrap resamples for the interval (0 disables it).
Returns:
    per_layer (`list` of `float`), mean (`float`), ci95 (`[low, high]` or `None`, over the
    per-query layer means), random_per_layer (`list` of `float`), random_mean (`float`).
Examples:
    >>> simaou = hf_metaopt.metrics.load("simaou")
    >>> out = simaou.compute(h_zsl=[[[1.0, 0.0]]], h_icl=[[[0.0, 2.0]]], h_ft=[[[0.0, 3.0]]], n_resamples=0)
    >>> round(out["mean"], 6)
    1.0
"""

_CITATION = CITATION
_REFERENCE_URLS = REFERENCE_URLS


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class SimAOU(evaluate.Metric):
    def _info(self):
        vectors = datasets.Sequence(datasets.Sequence(datasets.Value("float64")))
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"h_zsl": vectors, "h_icl": vectors, "h_ft": vectors}),
            reference_urls=_REFERENCE_URLS,
        )

    def _compute(self, h_zsl, h_icl, h_ft, normalize=True, seed=0, n_resamples=1000):
        scores = metrics.simaou_scores(h_zsl, h_icl, h_ft, normalize=normalize)
        random = metrics.simaou_random_scores(h_zsl, h_icl, seed=seed)
        random_summary = metrics.summarize_layers(random)
        return {
            **metrics.summarize_layers(scores, n_resamples=n_resamples, seed=seed),
            "random_per_layer": random_summary["per_layer"],
            "random_mean": random_summary["mean"],
        }
