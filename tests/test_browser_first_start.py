"""A first start in a real Chromium against ``streamlit run Home.py`` (issue 22): nothing stored, the
app backfills a year of daily bars and the Forecast page, opened before any forecast exists, draws the
fan chart by itself. Its own module: Playwright's sync API cannot run inside another module's."""

from __future__ import annotations

import re
import time

import pytest
from support.base import drop_database, make_settings, settings_env
from support.streamlit_server import (
    CEILING_MS,
    CHROMIUM_ARGS,
    LAPTOP,
    no_exception,
    screenshot,
    settled,
    streamlit_server,
)

from pipeline.store import Store
from ui.navigation import spec

pytestmark = pytest.mark.browser


def test_a_first_start_draws_a_forecast_without_a_reload(stack, tmp_path, chromium_path, artifacts):
    """Issue 22: with nothing stored, the app backfills a year of daily bars, the forecast job runs as
    soon as they are stored (not at its first periodic check), and the Forecast page, opened before
    that, says what is being computed and then draws the fan chart by itself (no reload)."""
    from playwright.sync_api import expect, sync_playwright

    settings = make_settings(stack, tmp_path, watchlist=("AAPL",), backfill_days_daily=400, poll_seconds=1.0)
    store = Store.from_uri(settings.mongodb_uri, settings.db)
    try:
        with streamlit_server(settings_env(settings), artifacts / "forecast-first-start.log") as (url, _p):
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport=LAPTOP)
                t0 = time.monotonic()
                page.goto(f"{url}/{spec('forecast').url_path}?symbol=AAPL&h=5")
                expect(page.get_by_text("Compute now")).to_be_visible(timeout=CEILING_MS)
                said = page.get_by_text(
                    re.compile("being fetched \\(backfill\\)|being computed after the backfill")
                )
                drawn = page.get_by_text("Backtest at 5 sessions")
                # what it waits for, in words (or, on a machine quicker than the page, the chart itself)
                expect(said.first.or_(drawn)).to_be_visible(timeout=CEILING_MS)
                print(
                    "while waiting the page said:", said.first.text_content() if said.count() else "(drawn)"
                )
                screenshot(page, artifacts / "forecast-first-start-waiting.png")
                # the fan chart (its 95% band) appears in the same page, drawn by the page's own refresh
                expect(page.get_by_text("Backtest at 5 sessions")).to_be_visible(timeout=5 * CEILING_MS)
                settled(page)
                print(f"fan chart drawn {time.monotonic() - t0:.0f} s after the first load")
                assert page.locator(".js-plotly-plot").count() >= 1
                no_exception(page)
                screenshot(page, artifacts / "forecast-first-start-drawn.png")
                browser.close()
    finally:
        drop_database(store.client, settings.db)
        store.close()
