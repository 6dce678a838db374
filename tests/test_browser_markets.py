"""A real browser on Home: a watchlist on five markets (simulated on the exchange calendars) shows
each symbol's market status and its currency unit, as computed for that instant; then History's
daily chart of SAP.DE draws each bar on its exchange session date (the date stored with the bar)."""

import time
from datetime import UTC, date, datetime, timedelta

import pytest
from support.streamlit_server import CEILING_MS, CHROMIUM_ARGS, settled, streamlit_server

from pipeline.embedded.stack import LocalStack
from pipeline.markets.calendars import market_for, sessions_between
from pipeline.sources.registry import symbol_status
from ui import markets as market_text
from ui.navigation import spec

pytestmark = pytest.mark.browser

SYMBOLS = {"AAPL": "USD", "7203.T": "JPY", "VOD.L": "GBP", "SAP.DE": "EUR", "BTC-USD": "USD"}


def expected_states(now: datetime) -> dict[str, str]:
    return {s: market_text.short(symbol_status(s, now, "simulated", market_for(s))) for s in SYMBOLS}


def test_five_markets_status_and_currency_on_home_and_session_dates_on_history(
    tmp_path, chromium_path, artifacts
):
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
            # wide enough for every column: the grid's accessible table holds only the columns in
            # view, and the Market column's text ("closed · opens Mon 09:30 EST (Mon 14:30 UTC your
            # time), in 23 h") pushed Currency out of a 1800 px view on a Sunday morning
            page = browser.new_page(viewport={"width": 2600, "height": 1000})
            before = expected_states(datetime.now(UTC))
            page.goto(url)
            grid = page.get_by_test_id("stDataFrame").first
            expect(grid).to_be_visible(timeout=CEILING_MS)
            # the grid keeps an accessible table of its visible cells next to its canvas
            cells = grid.locator("table")
            deadline = time.monotonic() + CEILING_MS / 1000
            text = ""
            while time.monotonic() < deadline:
                text = cells.inner_text() if cells.count() else ""
                if all(s in text for s in SYMBOLS) and "Market" in text and "Currency" in text:
                    break
                time.sleep(0.5)
            else:
                page.screenshot(path=str(artifacts / "home-markets.png"), full_page=True)
                raise AssertionError(
                    f"the watchlist grid never showed every symbol, Market and Currency: {text!r}"
                )
            after = expected_states(datetime.now(UTC))
            page.screenshot(path=str(artifacts / "home-markets.png"), full_page=True)
            history = history_of_sap(page, url, tmp_path / "data", artifacts)
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
    check_history_sessions(*history)


#: The x values (epoch ms, as drawn) of the History candlestick and its unified hover's header.
CANDLE_JS = """() => {
    const gd = document.querySelector('[data-testid=stPlotlyChart] .js-plotly-plot');
    const trace = gd && gd._fullData && gd._fullData.find(t => t.type === 'candlestick');
    return trace ? Array.from(trace.x, Number) : null;
}"""
TICKS_JS = """() => [...document.querySelectorAll('[data-testid=stPlotlyChart] .xaxislayer-above .xtick text')]
    .map(t => (t.querySelector('tspan') || t).textContent)"""
LAST_BAR_JS = """() => {
    const gd = document.querySelector('[data-testid=stPlotlyChart] .js-plotly-plot');
    const trace = gd._fullData.find(t => t.type === 'candlestick');
    const xs = Array.from(trace.x, Number), i = xs.length - 1;
    const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, box = gd.getBoundingClientRect();
    return {x: box.left + xa._offset + xa.l2p(xs[i]), y: box.top + ya._offset + ya._length / 2};
}"""


def stored_sessions(data_dir) -> list[str]:
    """SAP.DE's stored daily bars' ``session`` fields, read from the app's own embedded MongoDB."""
    from pymongo import MongoClient

    state = LocalStack(data_dir).read_state()
    client = MongoClient(f"mongodb://127.0.0.1:{state['mongodb'].port}/?directConnection=true")
    try:
        docs = client["stockmon"].bars.find({"symbol": "SAP.DE", "interval": "1d"}).sort("ts", 1)
        return [d.get("session") for d in docs]
    finally:
        client.close()


def history_of_sap(page, url: str, data_dir, artifacts) -> tuple[list[str], list[str], list[str], str]:
    """Open History on SAP.DE's daily bars until the chart holds every stored daily bar; return the
    drawn bars' dates, the stored session dates, the x axis' labels and the hover text of the last bar."""
    today = datetime.now(UTC).date()
    query = f"symbols=SAP.DE&interval=1d&start={today - timedelta(days=30)}&end={today}"
    deadline = time.monotonic() + CEILING_MS / 1000
    drawn: list[str] = []
    stored: list[str] = []
    while time.monotonic() < deadline:  # the backfill and the bar builder may still be at work
        page.goto(f"{url}/{spec('history').url_path}?{query}")
        page.get_by_text("Statistics").or_(page.get_by_text("No stored bars")).first.wait_for(
            timeout=CEILING_MS
        )
        settled(page)
        xs = page.evaluate(CANDLE_JS) or []
        drawn = [datetime.fromtimestamp(x / 1000, UTC).strftime("%Y-%m-%d") for x in xs]
        stored = stored_sessions(data_dir)
        if drawn and len(drawn) == len(stored):
            break
        time.sleep(1)
    ticks = page.evaluate(TICKS_JS)
    point = page.evaluate(LAST_BAR_JS)
    page.mouse.move(point["x"], point["y"])
    hover = page.locator(".hoverlayer")
    deadline = time.monotonic() + CEILING_MS / 1000
    while not (hover.text_content() or "").strip() and time.monotonic() < deadline:
        time.sleep(0.2)
    text = hover.text_content() or ""
    page.screenshot(path=str(artifacts / "history-sap-daily.png"), full_page=True)
    return drawn, stored, ticks, text


def check_history_sessions(drawn: list[str], stored: list[str], ticks: list[str], hover: str) -> None:
    print("drawn:", drawn, "stored:", stored, "x labels:", ticks, "hover:", hover)
    assert drawn and drawn == stored  # each bar on the session date stored with it
    xetr = market_for("SAP.DE")
    first, last = date.fromisoformat(drawn[0]), date.fromisoformat(drawn[-1])
    assert drawn == [
        d.isoformat() for d in sessions_between(xetr, first, last)
    ]  # Xetra's sessions, none shifted
    labels = {f"{d:%b} {d.day}" for d in map(date.fromisoformat, drawn)}
    assert ticks and set(ticks) <= labels, (ticks, labels)  # the axis labels only session dates
    day = date.fromisoformat(drawn[-1])
    assert f"{day:%b} {day.day}, {day.year}" in hover, hover  # the hover names the last bar's session date
