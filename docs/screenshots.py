"""README's screenshots: report.html's per-query explorer and a sweep's summary.html, in headless Chromium.

    python docs/screenshots.py --run runs/bbc_news-gemma3-<time> --sweep runs/sweep_offline --out docs/images

writes ``report-explorer.png`` (the explorer of the run's report.html, at ``--query`` and ``--layer``)
and ``sweep-summary.png`` (the top of summary.html), each a PNG under 400 KB; with ``--headline`` also
``report-headline.png`` (the run's headline: the verdict table, then the metrics and the accuracies). It needs Debian's
``chromium`` and ``chromium-driver`` (``apt-get install -y chromium chromium-driver``) and selenium
(the ``dev`` extra); selenium drives the system chromedriver and never downloads one. Pages are
opened from ``file://`` with the network switched off, as a reader opens a copied report.

``tests/test_report_browser.py`` uses :func:`chromium` and :func:`open_page` to check the page.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

CHROMEDRIVER = "/usr/bin/chromedriver"
MAX_PNG_BYTES = 400_000


def chromium_available() -> str | None:
    """``None`` when Chromium, its driver and selenium are there; else what is missing and how to install it."""
    missing = [name for name in ("chromium", "chromedriver") if shutil.which(name) is None]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip install -e '.[dev]')")
    if missing:
        return f"missing {', '.join(missing)}: apt-get install -y chromium chromium-driver"
    return None


@contextlib.contextmanager
def chromium(width: int = 1400, height: int = 1000) -> Iterator:
    """A headless Chromium driven by the system chromedriver, its network switched off, its requests logged."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", f"--window-size={width},{height}",
                 "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=http://127.0.0.1:9", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.set_network_conditions(offline=True, latency=0, download_throughput=0, upload_throughput=0)
        yield driver
    finally:
        driver.quit()


def open_page(driver, path: str | Path, timeout: float = 60.0) -> None:
    """Open the page ``path`` from ``file://`` and wait until it has drawn everything (or raise what it showed)."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(Path(path).resolve().as_uri())
    state = WebDriverWait(driver, timeout).until(
        lambda d: d.execute_script("return document.body.dataset.ready || document.body.dataset.error || null"))
    if state != "1":
        raise RuntimeError(f"{path} did not draw: {state}")


def requested_urls(driver) -> list[str]:
    """Every URL the page asked for since it was opened (Chromium's performance log)."""
    import json

    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def _save_png(png: bytes, out: Path) -> Path:
    """Write ``png``, reduced to a 256-colour palette (text and flat charts) if it is over :data:`MAX_PNG_BYTES`."""
    from PIL import Image

    out.parent.mkdir(parents=True, exist_ok=True)
    if len(png) <= MAX_PNG_BYTES:
        out.write_bytes(png)
        return out
    image = Image.open(io.BytesIO(png)).convert("RGB")
    while True:
        buffer = io.BytesIO()
        image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(buffer, format="PNG", optimize=True)
        if buffer.tell() <= MAX_PNG_BYTES:
            break
        image = image.resize((image.width * 9 // 10, image.height * 9 // 10), Image.Resampling.LANCZOS)
    out.write_bytes(buffer.getvalue())
    return out


def select(driver, element_id: str, value: str) -> None:
    """Pick ``value`` in the ``<select id=element_id>`` as a reader does (the page redraws on change)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element(By.ID, element_id)).select_by_value(value)


def explorer_shot(driver, run_dir: Path, out: Path, query: int | None = None, layer: int | None = None) -> Path:
    """A PNG of the run's per-query explorer (query ``query``, layer ``layer``; default: the page's choice)."""
    from selenium.webdriver.common.by import By

    open_page(driver, run_dir / "report.html")
    if query is not None:
        select(driver, "query-select", str(query))
    if layer is not None:
        select(driver, "layer-select", str(layer))
    section = driver.find_element(By.ID, "explorer")
    driver.execute_script("arguments[0].scrollIntoView(); document.getElementById('query-list').style.display = 'none';"
                          "arguments[0].querySelector('p.muted').style.display = 'none';", section)
    return _save_png(section.screenshot_as_png, out)


def headline_shot(driver, run_dir: Path, out: Path) -> Path:
    """A PNG of the run's headline section (the verdict table first)."""
    from selenium.webdriver.common.by import By

    open_page(driver, run_dir / "report.html")
    section = driver.find_element(By.ID, "headline")
    driver.execute_script("arguments[0].scrollIntoView();", section)
    return _save_png(section.screenshot_as_png, out)


def summary_shot(driver, sweep_dir: Path, out: Path) -> Path:
    """A PNG of the top of the sweep's summary.html (its first tables and charts)."""
    open_page(driver, sweep_dir / "summary.html")
    return _save_png(driver.get_screenshot_as_png(), out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, help="an analysis run folder holding report.html (with its per-query scores)")
    parser.add_argument("--sweep", type=Path, help="a sweep's output_dir holding summary.html")
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    parser.add_argument("--query", type=int, default=None, help="the query the explorer shows (default: the first inspected)")
    parser.add_argument("--layer", type=int, default=None, help="the layer index it shows (default: the middle layer)")
    parser.add_argument("--headline", action="store_true", help="also report-headline.png: the run's headline (the verdict first)")
    args = parser.parse_args(argv)
    problem = chromium_available()
    if problem:
        print(f"screenshots: {problem}", file=sys.stderr)
        return 2
    if not (args.run or args.sweep):
        parser.error("give --run, --sweep or both")
    with chromium(1400, 2300) as driver:  # tall enough for the explorer's token panels
        if args.run:
            print(explorer_shot(driver, args.run, args.out / "report-explorer.png", args.query, args.layer))
            if args.headline:
                print(headline_shot(driver, args.run, args.out / "report-headline.png"))
    with chromium(1400, 1800) as driver:
        if args.sweep:
            print(summary_shot(driver, args.sweep, args.out / "sweep-summary.png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
