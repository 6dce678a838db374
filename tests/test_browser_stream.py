"""The streaming source in a real Chromium against ``streamlit run Home.py``: Live shows prices younger
than 2 s and Pipeline health shows the stream connected (issue 12). The fake streamer and the fake
HTTP market run in the test process; the app reaches them through STOCKMON_YAHOO_STREAM_URL and
STOCKMON_YAHOO_URL."""

from __future__ import annotations

import re
import time

import pytest
from support.base import make_settings, settings_env
from support.fake_market import FakeMarket
from support.fake_streamer import FakeStreamer
from support.streamlit_server import (
    CEILING_MS,
    CHROMIUM_ARGS,
    LAPTOP,
    no_exception,
    screenshot,
    streamlit_server,
)

from ui.navigation import spec

pytestmark = pytest.mark.browser


def test_live_prices_are_younger_than_2_s_and_health_shows_the_stream(
    stack, tmp_path, chromium_path, artifacts
):
    from playwright.sync_api import expect, sync_playwright

    settings = make_settings(stack, tmp_path, source="yahoo_stream", watchlist=("AAPL", "MSFT"))
    with FakeMarket() as market, FakeStreamer(market, tick_s=0.25) as streamer:
        env = {
            **settings_env(settings),
            "STOCKMON_YAHOO_URL": market.url,
            "STOCKMON_YAHOO_STREAM_URL": streamer.url,
        }
        with streamlit_server(env, artifacts / "stream-server.log") as (url, _proc), sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport=LAPTOP)
            page.goto(f"{url}/{spec('live').url_path}?symbols=AAPL&interval=1m&window=30m")
            caption = page.get_by_text(re.compile(r"Age of the newest price: AAPL [01]\.\d s"))
            expect(caption).to_be_visible(timeout=CEILING_MS)  # young prices arrive within the ceiling
            age = float(re.search(r"AAPL (\d+\.\d) s", caption.inner_text()).group(1))
            print(f"\nage of the newest price on Live in Chromium: {age} s")
            assert age < 2.0
            no_exception(page)
            screenshot(page, artifacts / "page-live-stream.png")

            page.goto(f"{url}/{spec('health').url_path}")
            expect(page.get_by_text("Stream: yahoo_stream")).to_be_visible(timeout=CEILING_MS)
            t0 = time.monotonic()
            # the status table is a canvas grid: its cells are in the page, not "visible" text
            status = page.get_by_text(re.compile(r"^connected .* messages/s")).first
            expect(status).to_be_attached(timeout=CEILING_MS)
            print(f"health showed the stream connected after {time.monotonic() - t0:.1f} s")
            no_exception(page)
            screenshot(page, artifacts / "page-health-stream.png")
            browser.close()
