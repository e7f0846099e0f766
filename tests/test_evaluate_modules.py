"""The packaged `evaluate` modules load offline and give the numbers of analysis.metrics."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import hf_metaopt
import hf_metaopt.metrics as hm
from hf_metaopt.analysis import metrics as M


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


def test_rec2ftp_module_matches(records):
    *_, preds, labels = records
    module = hm.load("rec2ftp")
    assert "Dai" in module.citation and "Deutch" in module.citation
    out = module.compute(
        zsl_predictions=preds["zsl"], icl_predictions=preds["icl"], ft_predictions=preds["ft"], references=labels, seed=3
    )
    ok = {k: preds[k] == labels for k in preds}
    assert out["rec2ftp"] == M.rec2ftp(ok["zsl"], ok["icl"], ok["ft"])
    assert out["n_ft_fixes"] == int((ok["ft"] & ~ok["zsl"]).sum())
    assert out["ci95"] == M.rec2ftp_bootstrap_ci(ok["zsl"], ok["icl"], ok["ft"], seed=3)
    # Hand example: only query 0 is fixed by FT, and ICL fixes it too.
    hand = module.compute(
        zsl_predictions=[0, 0, 1], icl_predictions=[1, 1, 1], ft_predictions=[1, 0, 1], references=[1, 1, 1], n_resamples=0
    )
    assert hand == {"rec2ftp": 1.0, "n_ft_fixes": 1, "ci95": None}
    none = module.compute(zsl_predictions=[1], icl_predictions=[1], ft_predictions=[1], references=[1])
    assert none["rec2ftp"] is None and none["ci95"] is None


@pytest.mark.parametrize("normalize", [True, False])
def test_simaou_module_matches(records, normalize):
    h, *_ = records
    out = hm.load("simaou").compute(h_zsl=h["zsl"], h_icl=h["icl"], h_ft=h["ft"], normalize=normalize, seed=1)
    scores = M.simaou_scores(h["zsl"], h["icl"], h["ft"], normalize=normalize)
    expected = M.summarize_layers(scores)
    np.testing.assert_allclose(out["per_layer"], expected["per_layer"], rtol=0, atol=1e-12)
    assert out["mean"] == pytest.approx(expected["mean"], abs=1e-12)
    assert out["ci95"] == pytest.approx(M.bootstrap_ci(scores.mean(axis=1), seed=1), abs=1e-12)
    rand = M.summarize_layers(M.simaou_random_scores(h["zsl"], h["icl"], seed=1))
    assert out["random_mean"] == pytest.approx(rand["mean"], abs=1e-12)


def test_simam_module_matches_with_ragged_queries(records):
    _, m, *_ = records
    module = hm.load("simam")
    # Feed it incrementally, as evaluate users do.
    for z, i, f in zip(m["zsl"], m["icl"], m["ft"]):
        module.add(m_zsl=z, m_icl=i, m_ft=f)
    out = module.compute(seed=2)
    scores = M.simam_scores(m["zsl"], m["icl"], m["ft"])
    for key in ("before", "after", "delta"):
        expected = M.summarize_layers(scores[key])
        np.testing.assert_allclose(out[f"per_layer_{key}"], expected["per_layer"], atol=1e-12)
        assert out[key] == pytest.approx(expected["mean"], abs=1e-12)
        assert out[f"{key}_ci95"] == pytest.approx(M.bootstrap_ci(scores[key].mean(axis=1), seed=2), abs=1e-12)


def test_kendall_module_matches(records):
    *_, demo, _, _ = records
    out = hm.load("kendall").compute(m_icl_demo=demo["icl"], m_ft_demo=demo["ft"], n_resamples=0)
    expected = M.summarize_layers(M.kendall_scores(demo["icl"], demo["ft"]))
    np.testing.assert_allclose(out["per_layer"], expected["per_layer"], atol=1e-12)
    assert out["ci95"] is None
    rand = M.summarize_layers(M.kendall_random_scores(demo["icl"], seed=0))
    assert out["random_per_layer"] == pytest.approx(rand["per_layer"], abs=1e-12)
    # Hand example: one discordant pair out of six -> (5 - 1) / 6.
    hand = hm.load("kendall").compute(m_icl_demo=[[[1.0, 2.0, 3.0, 4.0]]], m_ft_demo=[[[1.0, 3.0, 2.0, 4.0]]])
    assert hand["mean"] == pytest.approx(2 / 3, abs=1e-12)


def test_module_shape_errors_reach_the_user(records):
    with pytest.raises(ValueError, match="h_ft"):
        hm.load("simaou").compute(h_zsl=[[[1.0, 0.0]]], h_icl=[[[0.0, 2.0]]], h_ft=[[[0.0, 3.0, 1.0]]])
