"""A real browser on Home: a watchlist on five markets (simulated on the exchange calendars) shows
each symbol's market status and its currency unit, as computed for that instant."""

import time
from datetime import UTC, datetime

import pytest
from support.streamlit_server import CEILING_MS, CHROMIUM_ARGS, streamlit_server

from pipeline.sources.markets import market_for, symbol_status
from ui import markets as market_text

pytestmark = pytest.mark.browser

SYMBOLS = {"AAPL": "USD", "7203.T": "JPY", "VOD.L": "GBP", "SAP.DE": "EUR", "BTC-USD": "USD"}


def expected_states(now: datetime) -> dict[str, str]:
    return {
        s: market_text.short(symbol_status(s, now, "simulated", market_for(s), "calendar")) for s in SYMBOLS
    }


def test_home_shows_five_markets_with_their_status_and_currency(tmp_path, chromium_path, artifacts):
    from playwright.sync_api import expect, sync_playwright

    env = {
        "STOCKMON_DATA_DIR": str(tmp_path / "data"),
        "STOCKMON_SIM_SEED": "5",
        "STOCKMON_SIM_HOURS": "calendar",
        "STOCKMON_WATCHLIST": " ".join(SYMBOLS),
        "STOCKMON_BACKFILL_DAYS_1M": "0",
        "STOCKMON_BACKFILL_DAYS_DAILY": "10",
    }
    with streamlit_server(
        env, artifacts / "markets-server.log", drop=("KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URI")
    ) as (
        url,
        _,
    ):
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1800, "height": 1000})
            before = expected_states(datetime.now(UTC))
            page.goto(url)
            grid = page.get_by_test_id("stDataFrame").first
            expect(grid).to_be_visible(timeout=CEILING_MS)
            # the grid keeps an accessible table of its visible cells next to its canvas
            cells = grid.locator("table")
            deadline = time.monotonic() + CEILING_MS / 1000
            while time.monotonic() < deadline:
                text = cells.inner_text() if cells.count() else ""
                if all(s in text for s in SYMBOLS) and "Market" in text:
                    break
                time.sleep(0.5)
            after = expected_states(datetime.now(UTC))
            page.screenshot(path=str(artifacts / "home-markets.png"), full_page=True)
            browser.close()
    # the accessible table's text runs the cells together, rows in watchlist order
    body = text[text.index("Currency") + len("Currency") :]
    order = list(SYMBOLS)
    starts = [body.index(symbol) for symbol in order]
    rows = {sym: body[a:b] for sym, a, b in zip(order, starts, [*starts[1:], len(body)], strict=True)}
    print(rows)
    for symbol, unit in SYMBOLS.items():
        row = rows[symbol]
        assert before[symbol] in row or after[symbol] in row, (symbol, row)
        assert row.endswith(unit), (symbol, row)  # the currency column, last
    assert "🟢 open 24/7" in rows["BTC-USD"]
