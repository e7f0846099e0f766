"""report.html in a real browser: headless Chromium opens a saved run's page from file:// with the network off.

Needs Debian's chromium and chromium-driver (``.ci/run`` installs them) and selenium (the ``dev`` extra); the
driver is the system's (docs/screenshots.py starts it). Without them the test is skipped, except in CI.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs"))
import screenshots  # noqa: E402  docs/screenshots.py: the browser README's images are taken with


@pytest.fixture(scope="module")
def browser():
    problem = screenshots.chromium_available()
    if problem:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(f"no browser for the report.html test: {problem}")
    with screenshots.chromium(1400, 2000) as driver:
        yield driver


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory, tiny_tokenizer_dir):
    """A real analysis saved as a run folder: a tiny Mistral whose layers attend within a 24-token window,
    with its per-query scores (report.html and scores.safetensors as save_pretrained writes them)."""
    import torch
    from test_architectures import DEMOS, PROMPT, QUERIES, build
    from transformers import AutoTokenizer

    from hf_metaopt.analysis import AnalysisOptions, QueryScores, run_analysis

    torch.manual_seed(0)
    options = AnalysisOptions.from_kwargs(learning_rate=0.1, batch_size=4, n_bootstrap=20, stability_check=False)
    result = run_analysis(build("mistral"), AutoTokenizer.from_pretrained(tiny_tokenizer_dir), DEMOS, QUERIES, PROMPT, options)
    run = result.report.save_pretrained(tmp_path_factory.mktemp("runs") / "mistral")
    return run, QueryScores.load(run)


def _tokens(driver, panel: str) -> list[tuple[str, str, bool]]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0] + ' .tok'))"
        ".map(s => [s.textContent, s.dataset.value, s.classList.contains('hidden-token')])", f"#{panel}")


def _text(driver, selector: str) -> str:
    return driver.execute_script("return document.querySelector(arguments[0]).textContent", selector)


def _cells(driver, selector: str) -> list[list[str]]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0] + ' tbody tr')).map(r => Array.from(r.cells).map(c => c.textContent))",
        selector)


def test_the_page_opens_offline_and_shows_the_stored_values_of_the_chosen_query_and_layer(browser, saved_run):
    from PIL import Image

    from screenshots import open_page, requested_urls, select

    run, scores = saved_run
    arrays, meta = scores.arrays, scores.meta
    open_page(browser, run / "report.html")
    row, layer = 2, 1  # the third inspected query (a short one), at a layer whose window leaves out the first tokens
    query = int(arrays["inspect/query_index"][row])
    select(browser, "query-select", str(query))
    select(browser, "layer-select", str(layer))

    assert _text(browser, "#query-text") == meta["queries"][query]
    words = meta["label_words"]
    gold = int(arrays["labels"][query])
    assert f"gold label {words[gold]!r}".replace("'", '"') in _text(browser, "#query-title")
    for (route, cells) in zip(("zsl", "icl", "ft"), _cells(browser, "#prediction-table")):
        logprobs = arrays[f"logprobs/{route}"][query]
        pred = int(arrays[f"predictions/{route}"][query])
        runner_up = max(v for i, v in enumerate(logprobs) if i != pred)
        assert cells[1].startswith(f'"{words[pred]}"')
        assert float(cells[2]) == pytest.approx(logprobs[pred], abs=5e-4)
        assert float(cells[3]) == pytest.approx(logprobs[pred] - runner_up, abs=5e-4)  # the margin
        assert float(cells[4]) == pytest.approx(logprobs[gold], abs=5e-4)
    metrics = {cells[0]: cells for cells in _cells(browser, "#metric-table")}
    assert float(metrics["Kendall's tau, token level"][1]) == pytest.approx(arrays["metric/kendall_token"][query, layer], abs=5e-4)
    assert float(metrics["Kendall's tau, token level"][2]) == pytest.approx(arrays["metric/kendall_token_random"][query, layer], abs=5e-4)

    visible = arrays["inspect/visible"][row, layer]
    icl, ft = _tokens(browser, "icl-tokens"), _tokens(browser, "ft-tokens")
    assert [t for t, _, _ in icl] == meta["demo_tokens"] == [t for t, _, _ in ft]
    assert [hidden for _, _, hidden in icl] == list(~visible) and not visible.all()  # greyed outside the window
    mass = arrays["inspect/icl_mass"][row, layer]
    np.testing.assert_allclose([float(v) for _, v, h in icl if not h], mass[visible], rtol=1e-3)
    raw = arrays["inspect/ft_score"][row, layer][visible]
    softmax = np.exp(raw - raw.max()) / np.exp(raw - raw.max()).sum()
    np.testing.assert_allclose([float(v) for _, v, h in ft if not h], softmax, rtol=1e-3)

    select(browser, "head-select", "2")  # one head instead of the sum
    head = arrays["inspect/icl_mass_heads"][row, layer, 2]
    np.testing.assert_allclose([float(v) for _, v, h in _tokens(browser, "icl-tokens") if not h], head[visible], rtol=1e-3)

    select(browser, "sort-select", "simaou")  # queries sorted by a metric at the chosen layer, highest first
    order = browser.execute_script("return Array.from(document.getElementById('query-select').options).map(o => Number(o.value))")
    assert order == sorted(range(len(arrays["labels"])), key=lambda q: (-arrays["metric/simaou"][q, layer], q))

    assert set(requested_urls(browser)) == {(run / "report.html").resolve().as_uri()}  # nothing but the page itself
    assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    image = np.asarray(Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("L"), dtype=np.float64)
    assert image.std() > 20  # text, shading and charts, not a blank page
