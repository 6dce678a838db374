"""Tables the pages show, built from query results: pure pandas, no Streamlit.

Guarantees:
- ``watchlist_glance`` has one row per watchlist entry, in watchlist order, whatever is stored: a
  symbol with no data gets "no data yet" instead of disappearing; one with a live price but no
  previous close yet (its history still loading) gets "loading history…" instead of "live", and
  "–" (NaN) for Change, Change % and Volume.
- A price's age is the time the *data* says it is from (``as_of``/``age_s`` of ``queries.quotes``:
  a tick's market time, never when it was fetched). Markets, sessions, holidays, half days and
  lunch breaks come from ``pipeline.markets.calendars`` (exchange calendars), with the provider's time
  zone and currency stored with the watchlist entry.
- "Stale" means no new price while the market is open, nothing else: a price older than the open of
  the latest session that began at least ``stale_after(poll)`` ago is "stale" with its date; while
  the market is open, a price older than ``stale_after(poll)`` is "stale" with its age. A closed
  market (holiday, weekend, after an early close), a lunch break, pre-market and after-hours say so
  instead. The simulated source trades around the clock unless ``STOCKMON_SIM_HOURS=calendar``.
  "Updated" is "4 s ago" up to a day, then the date at the exchange.
- The Market column is ``ui.markets.compact``: the state and the next change in the viewer's zone
  (the exchange's when the browser does not say), with a countdown. The cost of the statuses of 50 symbols is a fraction of a millisecond once the
  calendars are built (``tests/test_markets.py`` measures it).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from functools import partial
from zoneinfo import ZoneInfo

import pandas as pd

from pipeline.markets import fx
from pipeline.markets.calendars import Market, MarketStatus, market_for
from pipeline.markets.currency import ISO, decimals, major, major_code, money
from pipeline.sources.registry import prices_move, symbol_status, trades_outside_hours
from ui import format as fmt
from ui import markets as market_text

# What a phone (390 px) shows of the glance without scrolling sideways comes first: the symbol
# (pinned), its price and change; the name and the details follow (``st.dataframe``'s column_order).
GLANCE_ORDER = (
    "Symbol", "Last", "Change", "Change %", "Trend", "Status", "Name",
    "Day range", "Volume", "Updated", "Market", "Currency",
)  # fmt: skip
GLANCE_COLUMNS = [
    "Symbol",
    "Name",
    "Last",
    "Change",
    "Change %",
    "Day range",
    "Volume",
    "Trend",
    "Updated",
    "Status",
    "Market",
    "Currency",
]


#: The Status of a symbol with a price but no previous close yet: its daily history is being fetched.
LOADING = "⏳ loading history…"


def loading_or(state: str, change_pct) -> str:
    """A "live" price without a change yet (no previous close stored: its daily history is still
    being fetched) says "loading history…" instead of "live"; any other state stays as it is."""
    return LOADING if state == "🟢 live" and fmt.missing(change_pct) else state


def stale_after(poll_seconds: float) -> float:
    """Seconds after which a live price is stale: ten missed polls, at least a minute."""
    return max(60.0, 10.0 * poll_seconds)


def halted_after(poll_seconds: float) -> float:
    """Seconds after which a price, while this app's pipeline is paused or stopped, is shown with the
    pipeline's state: three missed polls, at least 5 s (a producing process keeps it younger)."""
    return max(5.0, 3.0 * poll_seconds)


def entry_market(entry) -> Market:
    """The market of a watchlist entry: its symbol's exchange calendar, with the time zone, currency
    and exchange name the provider gave when the entry was added (an entry without an exchange name
    carries only the defaults, not the provider's word, and gets the table's market)."""
    exchange = getattr(entry, "exchange", None) or None
    if exchange is None:  # no provider metadata (an entry seeded before they were stored): the table's
        return market_for(entry.symbol)
    return market_for(
        entry.symbol,
        getattr(entry, "timezone", None) or None,
        getattr(entry, "currency", None) or None,
        exchange,
    )


def market_open(symbol: str, source: str, now: datetime, sim_hours: str = "always") -> bool:
    """A new price is expected at ``now``: its exchange trades, or its source trades around the clock."""
    return prices_move(source, symbol_status(symbol, now, source), sim_hours)


def last_session_start(
    symbol: str, source: str, now: datetime, market: Market | None = None, sim_hours: str = "always"
) -> datetime | None:
    """UTC open of the latest regular session of ``symbol``'s market that has begun by ``now``
    (aware UTC), holidays skipped; None for markets without sessions (24/7, FX) and for a source
    that trades around the clock (the simulator by default)."""
    if trades_outside_hours(source, sim_hours):
        return None
    st = symbol_status(symbol, now, source, market)
    return st.opened


def status(
    age_s: float | None,
    symbol: str,
    source: str,
    enabled: bool,
    poll_seconds: float,
    now: datetime,
    market: Market | None = None,
    sim_hours: str = "always",
    market_status: MarketStatus | None = None,
) -> str:
    """The Status column: disabled, no data yet, stale (with its date when older than the latest
    session, else with its age), the market's state when it is not open, or live. ``age_s`` is
    seconds before ``now``; ``market_status`` saves a second lookup when the caller has it."""
    if not enabled:
        return "⏸️ disabled"
    if age_s is None or (isinstance(age_s, float) and math.isnan(age_s)):
        return "⚪ no data yet"
    st = market_status or symbol_status(symbol, now, source, market)
    as_of = now - timedelta(seconds=float(age_s))
    grace = timedelta(seconds=stale_after(poll_seconds))
    around_the_clock = trades_outside_hours(source, sim_hours)  # sessions say nothing of its prices
    if st.opened is not None and not around_the_clock:
        expected = st.opened
        if now - expected < grace and st.state in ("open", "break"):
            # the session has just begun: the previous one is the one that must have prices
            previous = symbol_status(symbol, expected - timedelta(seconds=1), source, market)
            expected = previous.opened or expected
        if as_of < expected and now - expected >= grace:
            local = as_of.astimezone(ZoneInfo(st.timezone))
            return f"🟠 stale ({local.date().isoformat()})"
    if not prices_move(source, st, sim_hours):
        return market_text.short(st)
    if age_s > stale_after(poll_seconds):
        return f"🟠 stale ({fmt.age(age_s)})"
    return "🟢 live"


def updated(age_s: float | None, symbol: str, now: datetime) -> str:
    """The Updated column: "4 s ago" up to a day, then the price's date at its exchange."""
    if age_s is None or fmt.missing(age_s):
        return fmt.DASH
    if float(age_s) < 86400:
        return f"{fmt.age(age_s)} ago"
    as_of = now - timedelta(seconds=float(age_s))
    return as_of.astimezone(ZoneInfo(market_for(symbol).timezone)).date().isoformat()


# The Status of a symbol with a price while the pipeline fetches nothing (its state -> the text)
PIPELINE_HALTED = {
    "paused": "⏸️ paused",
    "stopped": "⏹️ stopped",
    "starting": "⏳ starting",
    "error": "🔴 pipeline error",
}


def watchlist_glance(
    entries: list,
    quotes: pd.DataFrame,
    lines: dict[str, list[float]],
    poll_seconds: float,
    now: datetime | None = None,
    viewer_tz: str | None = None,
    sim_hours: str = "always",
    base: str | None = None,
    rates: dict | None = None,
    pipeline_state: str = "running",
) -> pd.DataFrame:
    """One row per entry (``GLANCE_COLUMNS``); times in the Market column in ``viewer_tz`` (the
    browser's, ``st.context.timezone``; the exchange's zone when None), ``ui.markets.compact``. Prices are in major units of the quote
    currency, or with ``base`` converted at the FX rate of the price's session date (``pipeline.markets.fx``,
    ``rates`` from ``queries.fx_rates``): the Currency column then says "USD ≈ FX of <date>", or why a
    line stays in its own currency. While this app's pipeline is not running (``pipeline_state``), a
    price older than ``halted_after`` says the pipeline's state ("⏸️ paused"), not "live" then
    "stale" (which blames the source); a fresher one is still "live" (another process may be
    producing ticks: the ``python -m pipeline produce`` scale-out; a minute-bar source's prices are a
    minute old and then read "paused")."""
    now = now or datetime.now(UTC)
    halted = PIPELINE_HALTED.get(pipeline_state) if pipeline_state != "running" else None
    by_symbol = {r["symbol"]: r for r in quotes.to_dict("records")} if not quotes.empty else {}
    rows = []
    for e in entries:
        q = by_symbol.get(e.symbol, {})
        last, age_s = q.get("last"), q.get("age_s")
        low, high = q.get("day_low"), q.get("day_high")
        market = entry_market(e)
        st = symbol_status(e.symbol, now, e.source, market)
        code = market.currency
        digits = 4 if e.symbol.endswith("=X") else None
        unit = major_code(code) or f"{code} (unit unknown)"
        values = {"last": last, "change": q.get("change"), "low": low, "high": high}
        values = {
            k: None if v is None or fmt.missing(v) else major(float(v), code)[0] for k, v in values.items()
        }
        if (
            base
            and major_code(code)
            and major_code(code) != base
            and age_s is not None
            and not fmt.missing(age_s)
        ):
            day = (now - timedelta(seconds=float(age_s))).astimezone(ZoneInfo(market.timezone)).date()
            converted = fx.convert(1.0, major_code(code), base, rates or {}, day)
            if converted is None:
                unit = f"{major_code(code)} (no {fx.pair(code, base)} rate)"
            else:
                factor, when = converted
                values = {k: None if v is None else v * factor for k, v in values.items()}
                unit, code, digits = f"{base} ≈ FX of {when}", base, None
        low, high = values["low"], values["high"]
        day_range = (
            fmt.DASH
            if low is None or high is None
            else f"{money(low, major_code(code), digits=digits)} – {money(high, major_code(code), digits=digits)}"
        )
        rows.append(
            {
                "Symbol": e.symbol,
                "Name": e.name or e.symbol,
                "Last": values["last"],
                "Change": values["change"],
                "Change %": None if fmt.missing(q.get("change_pct")) else float(q["change_pct"]),
                "Day range": day_range,
                "Volume": None if fmt.missing(q.get("volume")) else float(q["volume"]),
                "Trend": lines.get(e.symbol) or [],
                "Updated": updated(age_s, e.symbol, now),
                "Status": halted
                if halted
                and e.enabled
                and age_s is not None
                and not fmt.missing(age_s)
                and float(age_s) > halted_after(poll_seconds)
                else loading_or(
                    status(age_s, e.symbol, e.source, e.enabled, poll_seconds, now, market, sim_hours, st),
                    q.get("change_pct"),
                ),
                "Market": market_text.compact(st, viewer_tz),
                "Currency": unit,
            }
        )
    frame = pd.DataFrame(rows, columns=GLANCE_COLUMNS)
    for col in ("Last", "Change", "Change %", "Volume"):  # NaN, never None: the browser printed "None"
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
    return frame


def _money_text(value, code: str, digits: int | None, signed: bool = False, approx: bool = False) -> str:
    text = money(value, code, fmt.DASH, digits)
    if fmt.missing(value):
        return text
    text = "+" + text if signed and value > 0 else text
    return "≈ " + text if approx else text


def color_changes(frame: pd.DataFrame):
    """A Styler that paints Change and Change % green/red (readable on light and dark) and shows
    Last and Change in their currency ("£6.12"; the values are already in major units)."""

    def paint(value):
        color = fmt.direction_color(value)
        return f"color: {color}; font-weight: 600" if color else ""

    styler = frame.style.map(paint, subset=["Change", "Change %"]).format(
        {
            "Last": lambda v: fmt.price(v),
            "Change": lambda v: fmt.change(v),
            "Change %": lambda v: fmt.pct(v),
            "Volume": lambda v: fmt.volume(v),
        },
        na_rep=fmt.DASH,
    )
    for i, row in enumerate(frame.to_dict("records")):
        unit = str(row.get("Currency") or "")
        code = unit.split(" ", 1)[0]
        if code not in ISO:
            continue  # unit unknown: the plain number, the Currency column says so
        approx = "≈" in unit
        digits = 4 if str(row.get("Symbol", "")).endswith("=X") and not approx else None
        last = row.get("Last")
        change_digits = digits
        if digits is None and last is not None and not fmt.missing(last):
            change_digits = decimals(float(last), code)
        styler = styler.format(
            {
                "Last": partial(_money_text, code=code, digits=digits, approx=approx),
                "Change": partial(_money_text, code=code, digits=change_digits, signed=True, approx=approx),
            },
            subset=pd.IndexSlice[frame.index[i], ["Last", "Change"]],
            na_rep=fmt.DASH,
        )
    return styler
