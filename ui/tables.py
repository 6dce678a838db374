"""Tables the pages show, built from query results: pure pandas, no Streamlit.

Guarantees:
- ``watchlist_glance`` has one row per watchlist entry, in watchlist order, whatever is stored: a
  symbol with no data gets "no data yet" instead of disappearing.
- A price's age is the time the *data* says it is from (``as_of``/``age_s`` of ``queries.quotes``:
  a tick's market time, never when it was fetched). A price older than the start of its market's
  latest session is "stale" with its date, open or closed ("🟠 stale (2024-03-01)"; sessions are
  weekdays at the market's hours from ``pipeline.sources.markets``, holidays are not known here).
  Otherwise it is stale when its market is open and it is older than ``stale_after(poll)``; a
  closed exchange (weekend, outside its session) says "closed" instead, and the simulated source
  never closes (it runs 24/7 by design). "Updated" is "4 s ago" up to a day, then the date.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pandas as pd

from pipeline.sources.markets import market_for, session_fraction
from ui import format as fmt

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
]


def stale_after(poll_seconds: float) -> float:
    """Seconds after which a live price is stale: ten missed polls, at least a minute."""
    return max(60.0, 10.0 * poll_seconds)


def market_open(symbol: str, source: str, now: datetime) -> bool:
    if source == "simulated":
        return True
    market = market_for(symbol)
    if market.always_open:
        return True
    local = now.astimezone(ZoneInfo(market.timezone))
    if local.weekday() >= 5:
        return False
    return session_fraction(now, market) is not None


def last_session_start(symbol: str, source: str, now: datetime) -> datetime | None:
    """UTC start of the latest regular session of ``symbol``'s market that has begun by ``now``
    (aware UTC): today's open if it has passed, else the previous weekday's (every day for markets
    that never close: their local midnight). None for the simulated source (no sessions)."""
    if source == "simulated":
        return None
    market = market_for(symbol)
    zone = ZoneInfo(market.timezone)
    day = now.astimezone(zone).date()
    for back in range(8):
        d = day - timedelta(days=back)
        if not market.always_open and d.weekday() >= 5:
            continue
        start = datetime.combine(d, market.open if not market.always_open else datetime.min.time(), zone)
        if start <= now:
            return start.astimezone(UTC)
    return None


def status(
    age_s: float | None, symbol: str, source: str, enabled: bool, poll_seconds: float, now: datetime
) -> str:
    """The Status column: disabled, no data yet, stale (with its date when older than the latest
    session, else with its age), market closed, or live. ``age_s`` is seconds before ``now``."""
    if not enabled:
        return "⏸️ disabled"
    if age_s is None or (isinstance(age_s, float) and math.isnan(age_s)):
        return "⚪ no data yet"
    as_of = now - timedelta(seconds=float(age_s))
    session = last_session_start(symbol, source, now)
    if session is not None and as_of < session:
        local = as_of.astimezone(ZoneInfo(market_for(symbol).timezone))
        return f"🟠 stale ({local.date().isoformat()})"
    if not market_open(symbol, source, now):
        return "🌙 market closed"
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


def watchlist_glance(
    entries: list,
    quotes: pd.DataFrame,
    lines: dict[str, list[float]],
    poll_seconds: float,
    now: datetime | None = None,
) -> pd.DataFrame:
    now = now or datetime.now(UTC)
    by_symbol = {r["symbol"]: r for r in quotes.to_dict("records")} if not quotes.empty else {}
    rows = []
    for e in entries:
        q = by_symbol.get(e.symbol, {})
        last, age_s = q.get("last"), q.get("age_s")
        low, high = q.get("day_low"), q.get("day_high")
        day_range = (
            fmt.DASH if fmt.missing(low) or fmt.missing(high) else f"{fmt.price(low)} – {fmt.price(high)}"
        )
        rows.append(
            {
                "Symbol": e.symbol,
                "Name": e.name or e.symbol,
                "Last": None if last is None or fmt.missing(last) else float(last),
                "Change": None if fmt.missing(q.get("change")) else float(q["change"]),
                "Change %": None if fmt.missing(q.get("change_pct")) else float(q["change_pct"]),
                "Day range": day_range,
                "Volume": None if fmt.missing(q.get("volume")) else float(q["volume"]),
                "Trend": lines.get(e.symbol) or [],
                "Updated": updated(age_s, e.symbol, now),
                "Status": status(age_s, e.symbol, e.source, e.enabled, poll_seconds, now),
            }
        )
    return pd.DataFrame(rows, columns=GLANCE_COLUMNS)


def color_changes(frame: pd.DataFrame):
    """A Styler that paints Change and Change % green/red (readable on light and dark)."""

    def paint(value):
        color = fmt.direction_color(value)
        return f"color: {color}; font-weight: 600" if color else ""

    return frame.style.map(paint, subset=["Change", "Change %"]).format(
        {
            "Last": lambda v: fmt.price(v),
            "Change": lambda v: fmt.change(v),
            "Change %": lambda v: fmt.pct(v),
            "Volume": lambda v: fmt.volume(v),
        },
        na_rep=fmt.DASH,
    )
