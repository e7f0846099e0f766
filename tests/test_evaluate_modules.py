"""The packaged `evaluate` modules load offline and give the numbers docs/analysis.md defines ("Metrics"),
checked against hand computations of those definitions."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import hf_metaopt
import hf_metaopt.metrics as hm


@pytest.fixture(scope="module")
def records():
    rng = np.random.default_rng(0)
    q, layers, d, heads = 12, 3, 8, 2
    lens = rng.integers(3, 7, size=q)
    h = {k: rng.normal(size=(q, layers, d)) for k in ("zsl", "icl", "ft")}
    m = {k: [rng.normal(size=(layers, heads, t)) for t in lens] for k in ("zsl", "icl", "ft")}
    demo = {k: [rng.normal(size=(layers, 10)) for _ in range(q)] for k in ("icl", "ft")}
    preds = {k: rng.integers(0, 3, size=q) for k in ("zsl", "icl", "ft")}
    labels = rng.integers(0, 3, size=q)
    return h, m, demo, preds, labels


def test_offline_environment_and_packaged_location():
    # conftest: no network, a temporary HF_HOME; the scripts come from the package itself.
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    for name in hm.METRICS:
        path = Path(hm.module_path(name))
        assert path.parent == Path(hf_metaopt.__file__).resolve().parent / "metrics"
        assert (path / f"{name}.py").is_file() and (path / "README.md").is_file()


def test_module_folders_are_packages_so_wheels_ship_them():
    from setuptools import find_packages

    root = Path(hf_metaopt.__file__).resolve().parent.parent
    found = find_packages(where=str(root), include=["hf_metaopt*"])
    for name in hm.METRICS:
        assert f"hf_metaopt.metrics.{name}" in found


def test_evaluate_load_takes_the_module_path_and_not_the_bare_name(records):
    """(Reported: ``evaluate.load("simaou")`` does not work; the module's folder does.)"""
    import evaluate

    h = records[0]
    by_path = evaluate.load(hm.module_path("simaou")).compute(h_zsl=h["zsl"], h_icl=h["icl"], h_ft=h["ft"], seed=1)
    assert by_path == hm.load("simaou").compute(h_zsl=h["zsl"], h_icl=h["icl"], h_ft=h["ft"], seed=1)
    with pytest.raises(FileNotFoundError, match="doesn't exist on the Hugging Face Hub"):
        evaluate.load("simaou")  # what README says: evaluate looks on the Hub, where these are not published


def test_unknown_metric_name():
    with pytest.raises(ValueError, match="Unknown metric 'simao'.*simaou"):
        hm.load("simao")


# ---- the numbers, against hand computations from the definitions in docs/analysis.md ("Metrics") ----


def _cos(a, b) -> float:
    """Cosine; 0 for a zero vector (docs/analysis.md: degenerate cases)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return 0.0 if na == 0 or nb == 0 else float(a @ b / (na * nb))


def _unit(v):
    return np.asarray(v, float) / np.linalg.norm(v)


def _check_interval(ci, point):
    lo, hi = ci
    assert lo <= hi and lo - 1e-12 <= point <= hi + 1e-12


def test_rec2ftp_module_counts_the_ft_fixes_icl_also_fixes(records):
    *_, preds, labels = records
    module = hm.load("rec2ftp")
    assert "Dai" in module.citation and "Deutch" in module.citation
    out = module.compute(
        zsl_predictions=preds["zsl"], icl_predictions=preds["icl"], ft_predictions=preds["ft"], references=labels, seed=3
    )
    fixed = [i for i, y in enumerate(labels) if preds["ft"][i] == y and preds["zsl"][i] != y]
    also = [i for i in fixed if preds["icl"][i] == labels[i]]
    assert out["n_ft_fixes"] == len(fixed) > 0
    assert out["rec2ftp"] == pytest.approx(len(also) / len(fixed), abs=1e-15)
    _check_interval(out["ci95"], out["rec2ftp"])
    assert 0.0 <= out["ci95"][0] and out["ci95"][1] <= 1.0
    # Hand example: queries 0 and 2 are fixed by FT; ICL fixes query 0 only.
    hand = module.compute(
        zsl_predictions=[0, 0, 0, 1], icl_predictions=[1, 1, 0, 1], ft_predictions=[1, 0, 1, 1], references=[1, 1, 1, 1],
        n_resamples=0,
    )
    assert hand == {"rec2ftp": 0.5, "n_ft_fixes": 2, "ci95": None}
    none = module.compute(zsl_predictions=[1], icl_predictions=[1], ft_predictions=[1], references=[1])
    assert none["rec2ftp"] is None and none["ci95"] is None


@pytest.mark.parametrize("normalize", [True, False])
def test_simaou_module_is_the_cosine_of_the_two_updates(records, normalize):
    h, *_ = records
    out = hm.load("simaou").compute(h_zsl=h["zsl"], h_icl=h["icl"], h_ft=h["ft"], normalize=normalize, seed=1)
    n_queries, n_layers, _ = h["zsl"].shape
    prep = _unit if normalize else (lambda v: np.asarray(v, float))
    by_hand = np.array([[_cos(prep(h["icl"][q, l]) - prep(h["zsl"][q, l]), prep(h["ft"][q, l]) - prep(h["zsl"][q, l]))
                         for l in range(n_layers)] for q in range(n_queries)])
    np.testing.assert_allclose(out["per_layer"], by_hand.mean(axis=0), rtol=0, atol=1e-12)
    assert out["mean"] == pytest.approx(by_hand.mean(axis=0).mean(), abs=1e-12)
    _check_interval(out["ci95"], out["mean"])
    assert -1.0 <= out["random_mean"] <= 1.0
    # Hand example: ZSL e1, ICL e2, FT e1+e2 (normalised: (e1+e2)/sqrt2): updates e2-e1 and (1/sqrt2-1)e1+e2/sqrt2.
    e1, e2 = [1.0, 0.0], [0.0, 1.0]
    one = hm.load("simaou").compute(h_zsl=[[e1]], h_icl=[[e2]], h_ft=[[[1.0, 1.0]]], normalize=True, n_resamples=0)
    r = 1 / np.sqrt(2)
    expected = ((1 - r) + r) / (np.sqrt(2) * np.sqrt((r - 1) ** 2 + r**2))
    assert one["mean"] == pytest.approx(expected, abs=1e-12)


def test_simam_module_compares_the_attention_maps_per_head(records):
    _, m, *_ = records
    module = hm.load("simam")
    # Feed it incrementally, as evaluate users do; the queries have different lengths.
    for z, i, f in zip(m["zsl"], m["icl"], m["ft"]):
        module.add(m_zsl=z, m_icl=i, m_ft=f)
    out = module.compute(seed=2)
    n_layers, n_heads, _ = m["zsl"][0].shape

    def per_layer(pair):
        rows = [[np.mean([_cos(*pair(z[l, h], i[l, h], f[l, h])) for h in range(n_heads)]) for l in range(n_layers)]
                for z, i, f in zip(m["zsl"], m["icl"], m["ft"])]
        return np.mean(rows, axis=0)

    by_hand = {
        "before": per_layer(lambda z, i, f: (i, z)),
        "after": per_layer(lambda z, i, f: (i, f)),
        "delta": per_layer(lambda z, i, f: (i - z, f - z)),
    }
    for key, expected in by_hand.items():
        np.testing.assert_allclose(out[f"per_layer_{key}"], expected, atol=1e-12)
        assert out[key] == pytest.approx(expected.mean(), abs=1e-12)
        _check_interval(out[f"{key}_ci95"], out[key])
    # Hand example: one head, maps (1, 0), (1, 1), (0, 1): before cos 45 degrees, after 90 degrees.
    one = hm.load("simam").compute(m_zsl=[[[[1.0, 1.0]]]], m_icl=[[[[1.0, 0.0]]]], m_ft=[[[[0.0, 1.0]]]], n_resamples=0)
    assert one["before"] == pytest.approx(1 / np.sqrt(2), abs=1e-12) and one["after"] == pytest.approx(0.0, abs=1e-12)
    assert one["delta"] == pytest.approx(_cos([0.0, -1.0], [-1.0, 0.0]), abs=1e-12)


def test_kendall_module_is_tau_b_over_the_demonstration_tokens(records):
    from scipy.stats import kendalltau

    *_, demo, _, _ = records
    out = hm.load("kendall").compute(m_icl_demo=demo["icl"], m_ft_demo=demo["ft"], n_resamples=0)
    n_layers = demo["icl"][0].shape[0]
    by_hand = np.array([[kendalltau(i[l], f[l]).statistic for l in range(n_layers)] for i, f in zip(demo["icl"], demo["ft"])])
    np.testing.assert_allclose(out["per_layer"], by_hand.mean(axis=0), atol=1e-12)
    assert out["mean"] == pytest.approx(by_hand.mean(), abs=1e-12)
    assert out["ci95"] is None
    assert all(-1.0 <= v <= 1.0 for v in out["random_per_layer"])
    # Hand example: one discordant pair out of six -> (5 - 1) / 6.
    hand = hm.load("kendall").compute(m_icl_demo=[[[1.0, 2.0, 3.0, 4.0]]], m_ft_demo=[[[1.0, 3.0, 2.0, 4.0]]])
    assert hand["mean"] == pytest.approx(2 / 3, abs=1e-12)
    # Ties (tau-b): icl (1, 1, 2), ft (1, 2, 3): 2 concordant, 0 discordant, one tie in icl -> 2 / sqrt(2 * 3).
    tied = hm.load("kendall").compute(m_icl_demo=[[[1.0, 1.0, 2.0]]], m_ft_demo=[[[1.0, 2.0, 3.0]]], n_resamples=0)
    assert tied["mean"] == pytest.approx(2 / np.sqrt(6), abs=1e-12)


def test_module_shape_errors_reach_the_user(records):
    with pytest.raises(ValueError, match="h_ft"):
        hm.load("simaou").compute(h_zsl=[[[1.0, 0.0]]], h_icl=[[[0.0, 2.0]]], h_ft=[[[0.0, 3.0, 1.0]]])


def test_topk_recall_module_overlaps_the_two_top_k_sets(records):
    *_, demo, _, _ = records
    module = hm.load("topk_recall")
    out = module.compute(m_icl=demo["icl"], m_ft=demo["ft"], k=3, seed=1)
    n_layers = demo["icl"][0].shape[0]

    def top(values, k):  # the k largest, the earlier index first among equal values
        return set(sorted(range(len(values)), key=lambda i: (-values[i], i))[:k])

    by_hand = np.array([[len(top(i[l], 3) & top(f[l], 3)) / 3 for l in range(n_layers)] for i, f in zip(demo["icl"], demo["ft"])])
    np.testing.assert_allclose(out["per_layer"], by_hand.mean(axis=0), atol=1e-12)
    assert out["mean"] == pytest.approx(by_hand.mean(), abs=1e-12) and out["k"] == 3
    _check_interval(out["ci95"], out["mean"])
    assert all(0.0 <= v <= 1.0 for v in out["random_per_layer"])
    # Hand example: ICL's top 2 of (3, 1, 2, 0) is {0, 2}, FT's of (0, 1, 2, 3) is {3, 2}: one of two.
    hand = module.compute(m_icl=[[[3.0, 1.0, 2.0, 0.0]]], m_ft=[[[0.0, 1.0, 2.0, 3.0]]], k=2, n_resamples=0)
    assert hand["mean"] == 0.5 and hand["ci95"] is None
    # Ties: (1, 1, 0) ranks item 0 first, (0, 1, 1) item 1: top-1 sets {0} and {1} do not overlap.
    assert module.compute(m_icl=[[[1.0, 1.0, 0.0]]], m_ft=[[[0.0, 1.0, 1.0]]], k=1, n_resamples=0)["mean"] == 0.0
    # Fewer items than k: every item is in both top sets.
    assert module.compute(m_icl=[[[1.0, 2.0]]], m_ft=[[[2.0, 1.0]]], k=5, n_resamples=0)["mean"] == 1.0


def test_change_recall_module_counts_the_changes_both_make_alike(records):
    *_, preds, _ = records
    module = hm.load("change_recall")
    assert "Deutch" in module.citation
    out = module.compute(zsl_predictions=preds["zsl"], icl_predictions=preds["icl"], ft_predictions=preds["ft"], seed=3)
    zsl, icl, ft = preds["zsl"], preds["icl"], preds["ft"]
    changed = [q for q in range(len(zsl)) if icl[q] != zsl[q] or ft[q] != zsl[q]]
    same = [q for q in changed if icl[q] != zsl[q] and ft[q] != zsl[q] and icl[q] == ft[q]]
    assert (out["changed"], out["same_change"]) == (len(changed), len(same)) and len(changed) > 0
    assert out["change_recall"] == pytest.approx(len(same) / len(changed), abs=1e-15)
    _check_interval(out["ci95"], out["change_recall"])
    # Hand example: query 0 changed by both to 1, query 1 by ICL, query 2 by FT, query 3 by neither.
    hand = module.compute(zsl_predictions=[0, 0, 0, 1], icl_predictions=[1, 1, 0, 1], ft_predictions=[1, 0, 1, 1],
                          n_resamples=0)
    assert hand == {"change_recall": 1 / 3, "changed": 3, "same_change": 1, "icl_changed": 2, "ft_changed": 2, "ci95": None}
    # Three labels: both change query 0, to different labels; nothing else changes.
    assert module.compute(zsl_predictions=[0, 1], icl_predictions=[1, 1], ft_predictions=[2, 1])["change_recall"] == 0.0
    none = module.compute(zsl_predictions=[1, 0], icl_predictions=[1, 0], ft_predictions=[1, 0])
    assert none["change_recall"] is None and none["ci95"] is None and none["changed"] == 0


def test_label_shift_module_is_kl_and_tv_of_the_label_softmax():
    module = hm.load("label_shift")
    assert "Shen" in module.citation and "2310.08540" in " ".join(module.reference_urls)
    probs = {"zsl": [[0.5, 0.5], [0.9, 0.1]], "icl": [[0.8, 0.2], [0.9, 0.1]], "ft": [[0.5, 0.5], [0.6, 0.4]]}
    # Scores are log-probabilities of the label words; the label set holds a tenth of the mass here.
    out = module.compute(**{f"logprobs_{k}": np.log(np.array(v) / 10) for k, v in probs.items()}, n_resamples=50)

    def kl(p, q):
        return sum(x * np.log(x / y) for x, y in zip(p, q))

    def tv(p, q):
        return sum(abs(x - y) for x, y in zip(p, q)) / 2

    z, i, f = probs["zsl"], probs["icl"], probs["ft"]
    expected = {"kl_icl_ft": np.mean([kl(i[q], f[q]) for q in (0, 1)]), "tv_icl_ft": 0.3,
                "kl_icl_zsl": kl(i[0], z[0]) / 2, "tv_icl_zsl": 0.15, "kl_ft_zsl": kl(f[1], z[1]) / 2, "tv_ft_zsl": 0.15}
    for key, value in expected.items():
        assert out[key] == pytest.approx(value, abs=1e-12), key
        _check_interval(out["ci95"][key], out[key])
    same = module.compute(logprobs_zsl=[[-1.0, -2.0]], logprobs_icl=[[-1.0, -2.0]], logprobs_ft=[[-3.0, -4.0]], n_resamples=0)
    assert same["kl_icl_ft"] == 0.0 and same["tv_icl_zsl"] == 0.0 and same["ci95"] is None  # one distribution, shifted scores
