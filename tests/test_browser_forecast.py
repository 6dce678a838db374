"""The Forecast page in a real Chromium against ``streamlit run Home.py``: forecasts stored by the
real job for a random walk (naive drawn, with the sentence) and a trend series (its model drawn);
the bands, the table with its naive row, the sentence. Screenshots land in test-artifacts/."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from support.base import drop_database, make_settings, settings_env
from support.forecast import Entry, bar_docs, simulated_daily, trend_season
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

from pipeline.forecast.job import ForecastJob
from pipeline.store import Store
from pipeline.watchlist import Watchlist
from ui.navigation import spec

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def running_app(stack, tmp_path_factory, chromium_path, artifacts):
    from playwright.sync_api import sync_playwright

    settings = make_settings(stack, tmp_path_factory.mktemp("browser-forecast"), watchlist=("AAPL", "TRND"))
    store = Store.from_uri(settings.mongodb_uri, settings.db)
    store.ensure_indexes()
    Watchlist(store.watchlist, None).seed(["AAPL", "TRND"], "simulated")
    for symbol, (closes, dates) in {
        "AAPL": simulated_daily("AAPL", 260, seed=1),
        "TRND": trend_season(),
    }.items():
        store.bars.insert_many(bar_docs(symbol, closes, dates))
    later = datetime(2027, 1, 1, tzinfo=UTC)
    assert ForecastJob(store, lambda: [Entry("AAPL"), Entry("TRND")], clock=lambda: later).run()["done"] == 2
    with streamlit_server(settings_env(settings), artifacts / "forecast-server.log") as (url, _proc):
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
            yield url, browser
            browser.close()
    drop_database(store.client, settings.db)
    store.close()


def test_forecast_page_bands_table_and_sentence(running_app, artifacts):
    from playwright.sync_api import expect

    url, browser = running_app
    page = browser.new_page(viewport=LAPTOP)
    page.goto(f"{url}/{spec('forecast').url_path}?symbol=AAPL&h=5")
    sentence = page.get_by_text("No model beat 'next close = last close' for AAPL at 5 sessions")
    expect(sentence).to_be_visible(timeout=CEILING_MS)
    settled(page)
    no_exception(page)
    for band in ("95% band", "80% band", "50% band", "Naive forecast"):
        expect(page.locator(".legendtext", has_text=band).first).to_be_attached(timeout=CEILING_MS)
    assert page.locator(".js-plotly-plot .scatterlayer .trace").count() >= 5
    table = page.locator("[data-testid='stDataFrame']").first
    expect(table).to_be_visible(timeout=CEILING_MS)
    expect(page.get_by_text("Not investment advice").first).to_be_visible()
    fits_screen(page)
    screenshot(page, artifacts / "page-forecast-random-walk.png")

    page.goto(f"{url}/{spec('forecast').url_path}?symbol=TRND&h=5")
    expect(page.get_by_text("beat 'next close = last close' for TRND at 5 sessions").first).to_be_visible(
        timeout=CEILING_MS
    )
    settled(page)
    no_exception(page)
    expect(page.locator(".legendtext", has_text="Random walk with drift forecast").first).to_be_attached(
        timeout=CEILING_MS
    )
    screenshot(page, artifacts / "page-forecast-trend.png")
    page.close()
