"""Run ``streamlit run Home.py`` as a real server process for browser tests, and the page checks
those tests share."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from pipeline.embedded.stack import free_port
from support.base import ROOT

LAPTOP = {"width": 1366, "height": 768}
FOLD = {"width": 1440, "height": 900}  # issue 22: what must show without scrolling on a laptop
PHONE = {"width": 390, "height": 844}  # a phone held upright (iPhone 12-15)
# The ceiling for anything a browser test waits for (a page drawn, a chart, a toast): generous, because
# a loaded CI machine is slow, and never a fixed wait: Playwright polls and returns as soon as it holds.
CEILING_MS = 60_000

# True once the page is idle: no element is being re-run (Streamlit marks those data-stale), no
# skeleton placeholder is left, and every Plotly chart has drawn its SVG.
SETTLED_JS = """() => !document.querySelector('[data-stale=true], [data-testid=stSkeleton]')
    && [...document.querySelectorAll('[data-testid=stPlotlyChart]')].every(c => c.querySelector('.main-svg'))"""
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def streamlit_server(env_overrides: dict[str, str], log_path: Path, drop: tuple[str, ...] = ()):
    """Start the app on a free port; yield (url, process); SIGINT it afterwards like Ctrl+C would."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(env_overrides)
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "Home.py",
        "--server.headless",
        "true",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--browser.gatherUsageStats",
        "false",
    ]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180  # a ceiling: a loaded machine starts it in 5-40 s
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not come up: {log_path.read_text()[-2000:]}")
            time.sleep(0.2)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def no_exception(page) -> None:
    assert page.get_by_test_id("stException").count() == 0
    body = page.inner_text("body")
    assert "Traceback" not in body and "Something went wrong" not in body, body[:2000]


def fits_screen(page) -> None:
    """The page needs no sideways scrolling at the viewport's width (wide tables scroll inside)."""
    width, overflow = page.evaluate(
        "() => [window.innerWidth, document.documentElement.scrollWidth - window.innerWidth]"
    )
    assert overflow <= 1, f"page is {overflow}px wider than a {width}px screen"


def settled(page, timeout_ms: float = CEILING_MS) -> None:
    """Wait until the page is idle (see ``SETTLED_JS``); TimeoutError after ``timeout_ms``."""
    page.wait_for_function(SETTLED_JS, timeout=timeout_ms)


def screenshot(page, path, viewport: dict | None = None) -> None:
    """The whole page at ``viewport``'s width (default ``LAPTOP``): Streamlit scrolls inside its own
    container, so grow the viewport to fit it, then set ``viewport`` back."""
    viewport = viewport or LAPTOP
    height = page.evaluate("() => document.querySelector('[data-testid=stMainBlockContainer]').scrollHeight")
    page.set_viewport_size({"width": viewport["width"], "height": max(viewport["height"], int(height) + 120)})
    page.evaluate("() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")
    settled(page)  # charts redraw at the new size
    page.screenshot(path=str(path))
    page.set_viewport_size(viewport)
