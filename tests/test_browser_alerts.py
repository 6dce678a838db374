"""The Alerts page in a real Chromium against ``streamlit run Home.py`` with the pipeline running on
the test stack: create a rule just below the live simulated price, see its toast, see it in the fired
list with the price chart. Screenshots land in test-artifacts/."""

from __future__ import annotations

import time

import pytest
from support.base import drop_database, make_settings, settings_env
from support.pipeline import wait_for
from support.streamlit_server import (
    CEILING_MS,
    CHROMIUM_ARGS,
    LAPTOP,
    fits_screen,
    no_exception,
    screenshot,
    settled,
    streamlit_server,
)

from pipeline.store import Store
from ui.navigation import spec

pytestmark = pytest.mark.browser


def test_a_rule_created_on_the_page_fires_and_its_toast_shows(stack, tmp_path, chromium_path, artifacts):
    from playwright.sync_api import expect, sync_playwright

    settings = make_settings(stack, tmp_path, watchlist=("AAPL",), poll_seconds=0.5)
    store = Store.from_uri(settings.mongodb_uri, settings.db)
    try:
        with streamlit_server(settings_env(settings), artifacts / "alerts-server.log") as (url, _proc):
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport=LAPTOP)
                page.goto(f"{url}/{spec('alerts').url_path}")
                expect(page.get_by_text("No rules yet. Create one below")).to_be_visible(timeout=CEILING_MS)
                tick = wait_for(
                    lambda: store.prices.find_one({"symbol": "AAPL", "interval": "tick"}, sort=[("ts", -1)]),
                    60,
                    what="a live AAPL price",
                )
                level = round(tick["close"] * 0.995, 2)  # just below the price: the next tick is above it
                no_exception(page)
                fits_screen(page)
                screenshot(page, artifacts / "alerts-empty.png")

                page.get_by_label("Price level").fill(f"{level}")
                page.get_by_label("Note").fill("browser test")
                page.get_by_role("button", name="➕ Create rule").click()
                created = time.monotonic()
                expect(page.get_by_text(f"Created: AAPL price rises above {level:,.2f}.")).to_be_visible(
                    timeout=CEILING_MS
                )
                toast = page.get_by_test_id("stToast").filter(has_text="AAPL is above")
                expect(toast.first).to_be_visible(timeout=CEILING_MS)
                seen_after = time.monotonic() - created
                expect(toast.first).to_contain_text(f"AAPL is above {level:,.2f}")
                page.screenshot(path=str(artifacts / "alerts-toast.png"))
                print(f"toast shown {seen_after:.1f}s after the rule was created")

                # the fired list (refreshes every 5 s) with the chart around the moment
                expect(page.get_by_text("Acknowledge all shown (1)")).to_be_visible(timeout=CEILING_MS)
                expect(page.locator(".js-plotly-plot").first).to_be_visible(timeout=CEILING_MS)
                no_exception(page)
                fits_screen(page)
                screenshot(page, artifacts / "alerts-fired.png")
                assert store.db["alert_events"].count_documents({}) == 1

                # another page opened now (a new session) counts the unacknowledged alert in the
                # sidebar, linked to the Alerts page, instead of toasting it again on every reload
                other = browser.new_page(viewport=LAPTOP)
                other.goto(f"{url}/")
                expect(other.get_by_text("1 unacknowledged alert (last 15 min)")).to_be_visible(
                    timeout=CEILING_MS
                )
                settled(other)
                assert other.get_by_test_id("stToast").filter(has_text="AAPL is above").count() == 0
                other.screenshot(path=str(artifacts / "alerts-unacked-sidebar.png"))
                browser.close()
    finally:
        drop_database(store.client, settings.db)
        store.close()
