"""SimAM (Dai et al. 2023) as an `evaluate` metric: similarity of ICL, ZSL and FT attention maps."""

import datasets
import evaluate

from hf_metaopt.analysis import metrics
from hf_metaopt.metrics.references import CITATION, REFERENCE_URLS

_DESCRIPTION = """\
Similarity of attention maps (SimAM). Per query, layer and head, m is the vector of
pre-softmax attention scores of the analysed position over the query's own tokens
(demonstration tokens excluded, so ICL and ZSL maps have equal length). Cosine per
(query, layer, head), mean over heads, then over queries per layer, then over layers.
"before" = cos(m_ICL, m_ZSL), "after" = cos(m_ICL, m_FT) (the paper), and "delta" =
cos(m_ICL - m_ZSL, m_FT - m_ZSL) (Deutch et al. 2024), which removes the shared zero-shot part.
A zero vector scores 0.
"""

_KWARGS_DESCRIPTION = """
Args:
    m_zsl, m_icl, m_ft (`list` of `[L, H, T_q]` float arrays): attention scores per query;
        T_q may differ between queries but not between the three routes.
    n_resamples (`int`, default 1000): bootstrap resamples for the intervals (0 disables them).
    seed (`int`, default 0): seeds the bootstrap.
Returns:
    per_layer_before, per_layer_after, per_layer_delta (`list` of `float`),
    before, after, delta (`float`), before_ci95, after_ci95, delta_ci95 (`[low, high]` or `None`).
Examples:
    >>> simam = hf_metaopt.metrics.load("simam")
    >>> out = simam.compute(m_zsl=[[[[1.0, 0.0]]]], m_icl=[[[[1.0, 1.0]]]], m_ft=[[[[0.0, 1.0]]]], n_resamples=0)
    >>> round(out["before"], 4), round(out["after"], 4)
    (0.7071, 0.7071)
"""

_CITATION = CITATION
_REFERENCE_URLS = REFERENCE_URLS


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class SimAM(evaluate.Metric):
    def _info(self):
        maps = datasets.Sequence(datasets.Sequence(datasets.Sequence(datasets.Value("float64"))))
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"m_zsl": maps, "m_icl": maps, "m_ft": maps}),
            reference_urls=_REFERENCE_URLS,
        )

    def _compute(self, m_zsl, m_icl, m_ft, n_resamples=1000, seed=0):
        scores = metrics.simam_scores(m_zsl, m_icl, m_ft)
        out = {}
        for key in ("before", "after", "delta"):
            summary = metrics.summarize_layers(scores[key], n_resamples=n_resamples, seed=seed)
            out[f"per_layer_{key}"], out[key], out[f"{key}_ci95"] = summary["per_layer"], summary["mean"], summary["ci95"]
        return out
