"""report.html without a browser: its data, the headline, the per-layer bands, the size budget, no network."""

from __future__ import annotations

import base64
import gzip
import json
import re
from pathlib import Path

import numpy as np
import pytest
from test_report import synthetic_report

from hf_metaopt.analysis import QueryScores
from hf_metaopt.analysis import report_html as report_html_module
from hf_metaopt.analysis.metrics import bootstrap_ci, layer_bootstrap_ci
from hf_metaopt.analysis.report import ICLAnalysisReport
from hf_metaopt.analysis.report_curves import layer_curves
from hf_metaopt.analysis.report_headline import headline
from hf_metaopt.analysis.report_html import report_html
from hf_metaopt.analysis.report_plots import subtitle

DATA = Path(__file__).parent / "data"
METRICS = ("simaou", "simaou_unnormalized", "simam_before", "simam_after", "simam_delta", "kendall_token", "kendall_example",
           "recall_token", "recall_example")


def page_data(page: str) -> dict:
    return json.loads(re.search(r'<script type="application/json" id="page-data">(.*?)</script>', page, re.S).group(1))


def unpack(entry: dict) -> np.ndarray:
    """The page's packed array read back as html_page.py documents it: gzip, base64, byte planes, little-endian."""
    planes = np.frombuffer(gzip.decompress(base64.b64decode(entry["data"])), dtype=np.uint8)
    dtype = np.dtype("<" + entry["dtype"])
    raw = planes.reshape(dtype.itemsize, -1).T.copy().view(dtype)
    return raw.reshape(entry["shape"])


def layout_scores(q=6, layers=2, n=2, t=10, heads=4, n_labels=2, seed=0) -> QueryScores:
    """Per-query scores in the layout of query_scores.py, with made-up values (of any size, e.g. the default run's)."""
    rng = np.random.default_rng(seed)
    arrays = {"labels": rng.integers(0, n_labels, q)}
    for route in ("zsl", "icl", "ft"):
        arrays[f"logprobs/{route}"] = -rng.uniform(0.1, 3.0, (q, n_labels))
        arrays[f"predictions/{route}"] = arrays[f"logprobs/{route}"].argmax(1)
    for name in METRICS:
        arrays[f"metric/{name}"] = rng.uniform(-0.2, 0.6, (q, layers))
    arrays["metric/kendall_token_random"] = rng.uniform(-0.1, 0.1, (q, layers))
    logits = rng.normal(0, 2, (n, layers, heads, t))
    visible = np.ones((n, layers, t), dtype=bool)
    visible[:, 0, : t // 3] = False  # layer 0 slides its window past the first tokens
    mass = np.exp(logits) * visible[:, :, None, :]
    mass /= mass.sum(-1, keepdims=True)
    arrays.update({
        "inspect/query_index": np.arange(n), "inspect/icl_mass_heads": mass.astype(np.float32),
        "inspect/icl_mass": mass.sum(2).astype(np.float32), "inspect/icl_score": logits.sum(2),
        "inspect/ft_score": rng.normal(0, 3, (n, layers, t)), "inspect/visible": visible,
    })
    meta = {"demo_tokens": [f" tok{i}" for i in range(t)], "demo_owner": [i * 2 // t for i in range(t)],
            "demonstrations": ["first demo", "second demo"], "queries": [f"Query text {i}" for i in range(q)],
            "label_words": [" Negative", " Positive"][:n_labels], "layers": layers, "heads": heads, "n_inspect": n}
    return QueryScores(arrays, meta)


def test_a_0_1_report_renders_without_the_explorer():
    page = ICLAnalysisReport.from_json(DATA / "report_v0.1.json").to_html()
    assert "<title>ICL vs finetuning: tiny-gpt2 on toy_reviews</title>" in page
    assert 'id="no-scores"' in page and "return_scores=True" in page
    data = page_data(page)
    assert data["explorer"] is None
    assert [c["id"] for c in data["charts"]] == ["chart-accuracy", "chart-simaou", "chart-simam", "chart-kendall"]
    kendall = data["charts"][3]["figure"]
    titles = [a["text"] for a in kendall["layout"]["annotations"]]
    assert titles == ["Kendall, token level", "Kendall, example level (attention mass)"]  # 0.1 has no top-k recall
    assert not any("fill" in trace for trace in kendall["data"])  # no scores: no interval bands
    # Nothing is fetched: no external script, style, font or image; plotly.js travels inside the page.
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page) and "<link" not in page and "@import" not in page
    assert 'id="plotly-js"' in page


def test_headline_rows_come_from_report_keys_and_every_control_is_a_column():
    data = synthetic_report()
    data["controls"]["shuffled_labels"] = {**data["controls"]["untrained"], "simaou": {"mean": -0.05}}
    table = headline(data)
    assert table["controls"] == ["untrained", "shuffled_labels"]
    rows = {r["name"]: r for r in table["rows"]}
    assert rows["SimAOU"]["value"] == 0.2 and rows["SimAOU"]["ci"] == [0.15, 0.25] and rows["SimAOU"]["baseline"] == 0.001
    assert rows["SimAOU"]["controls"]["shuffled_labels"]["value"] == -0.05
    assert rows["Accuracy ICL (demonstrations in context)"]["value"] == data["accuracy"]["icl"]
    assert "top-100 recall, tokens" not in rows  # the synthetic report has no top-k recall: no row
    page = report_html(data)
    assert "shuffled labels control</th>" in page
    assert f"<td class=\"num\">{100 * data['accuracy']['icl']:.1f}%</td>" in page


def test_layer_bootstrap_ci_is_bootstrap_ci_of_each_layer_without_missing_queries():
    scores = np.array([[0.1, 0.5, np.nan], [0.3, 0.5, np.nan], [0.2, 0.5, np.nan], [np.nan, 0.5, np.nan]])
    intervals = layer_bootstrap_ci(scores, n_resamples=200, seed=7)
    assert intervals[0] == bootstrap_ci([0.1, 0.3, 0.2], n_resamples=200, seed=7)
    assert intervals[1] == [0.5, 0.5]  # constant: the degenerate interval
    assert intervals[2] is None  # no query has a value there


def test_layer_curves_hold_every_control_the_baseline_and_bands_from_the_scores():
    data = synthetic_report(n_layers=2, n_queries=6)
    data["config"]["n_bootstrap"] = 50
    data["kendall"]["n_queries"] = 4
    scores = layout_scores(q=6, layers=2)
    families = {family.file: panels for family, panels in layer_curves(data, scores)}
    simaou = families["simaou.png"][0]
    pretrained, control, baseline = simaou.curves
    assert pretrained.values == data["simaou"]["per_layer"]
    assert pretrained.band == layer_bootstrap_ci(scores.arrays["metric/simaou"], n_resamples=50, seed=1)
    assert (control.name, control.values) == ("untrained control", data["controls"]["untrained"]["simaou"]["per_layer"])
    assert (baseline.role, baseline.values) == ("baseline", data["simaou"]["random_per_layer"])
    kendall = families["kendall.png"][0].curves[0]  # Kendall is summarised over the first n_queries queries only
    assert kendall.band == layer_bootstrap_ci(scores.arrays["metric/kendall_token"][:4], n_resamples=50, seed=1)
    assert [c.band for c in families["simaou.png"][0].curves[1:]] == [None, None]
    assert layer_curves(data, None)[0][1][0].curves[0].band is None


def test_titles_name_the_hub_id_or_the_folder_never_a_path():
    data = synthetic_report()
    data["config"]["model"] = "/home/alice/checkpoints/my-model"
    assert subtitle(data).startswith("my-model (local) on rt_sentiment") and "/home" not in subtitle(data)
    data["config"]["model_id"] = "alice/my-model"
    assert subtitle(data).startswith("alice/my-model on rt_sentiment")
    assert "<title>ICL vs finetuning: alice/my-model on rt_sentiment</title>" in report_html(data)


def test_the_explorer_packs_the_scores_layout():
    data = synthetic_report(n_layers=2, n_queries=6)
    scores = layout_scores()
    explorer = page_data(report_html(data, scores))["explorer"]
    arrays = scores.arrays
    assert explorer["n_queries"] == 6 and explorer["layers"] == [0, 1] and explorer["heads"] == 4 and explorer["left_out"] == []
    np.testing.assert_array_equal(unpack(explorer["labels"]), arrays["labels"])
    np.testing.assert_allclose(unpack(explorer["logprobs"]["ft"]), arrays["logprobs/ft"], rtol=1e-6)
    assert set(explorer["metrics"]) == set(METRICS) and set(explorer["random"]) == {"kendall_token"}
    np.testing.assert_allclose(unpack(explorer["metrics"]["kendall_token"]), arrays["metric/kendall_token"], rtol=1e-6)
    inspect = explorer["inspect"]
    for key in ("icl_mass", "icl_mass_heads", "ft_score", "icl_score"):  # float16: three significant digits
        np.testing.assert_allclose(unpack(inspect[key]), arrays[f"inspect/{key}"], rtol=1e-3, atol=1e-7)
    score, visible = arrays["inspect/ft_score"][1, 0], arrays["inspect/visible"][1, 0]  # FT's softmax over the attended tokens
    softmax = np.exp(score[visible] - score[visible].max()) / np.exp(score[visible] - score[visible].max()).sum()
    np.testing.assert_allclose(unpack(inspect["ft_mass"])[1, 0][visible], softmax, rtol=1e-3)
    assert not unpack(inspect["ft_mass"])[1, 0][~visible].any()
    np.testing.assert_array_equal(unpack(inspect["visible"]).astype(bool), arrays["inspect/visible"])
    texts = json.loads(gzip.decompress(base64.b64decode(explorer["texts"]["data"])))
    assert texts["demo_tokens"] == scores.meta["demo_tokens"] and texts["queries"] == scores.meta["queries"]


def test_the_default_run_page_stays_under_5_mb_and_says_what_it_left_out(monkeypatch):
    # The default run's sizes (Gemma-3-270M: 18 layers, 4 heads; 200 queries; ~600 demonstration tokens; 16 inspected),
    # with random values, which compress worse than real ones.
    data = synthetic_report(n_layers=18, n_queries=200)
    scores = layout_scores(q=200, layers=18, n=16, t=600, heads=4, n_labels=5)
    page = report_html(data, scores)
    assert len(page.encode()) <= report_html_module.PAGE_BUDGET < 5_000_000
    explorer = page_data(page)["explorer"]
    optional = {"icl_mass_heads": "the per-head ICL attention", "ft_score": "the raw FT scores", "icl_score": "the ICL pre-softmax scores"}
    for key, what in optional.items():  # each optional array is in the page or named as left out
        assert (key in explorer["inspect"]) != (what in explorer["left_out"])
    monkeypatch.setattr(report_html_module, "PAGE_BUDGET", 1_000_000)  # room for none of them
    page = report_html(data, scores)
    explorer = page_data(page)["explorer"]
    assert explorer["left_out"] == list(optional.values()) and not set(optional) & set(explorer["inspect"])
    assert {"icl_mass", "ft_mass", "visible"} <= set(explorer["inspect"])  # what the shading needs is always there
    assert "Left out of this page to keep it small: the per-head ICL attention, the raw FT scores" in page
