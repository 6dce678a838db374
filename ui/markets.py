"""Market status as the pages show it: a short badge with times in the exchange's zone and the
viewer's. Pure text, no Streamlit (the pages pass ``st.context.timezone`` as ``viewer_tz``).

Guarantees:
- ``badge(status, viewer_tz)`` is one line: an icon, the state (open, early close, lunch break,
  closed / holiday, pre-market, after-hours, open 24/7), the next change at the exchange's local
  time ("Mon 09:30 EST" when it is not today there), the viewer's local time in brackets when the
  viewer's zone shows a different clock, and a countdown ("in 2 h 5 min").
- ``compact(status, viewer_tz)`` is the tables' form (Overview, Watchlist): the same line with the
  next change in one zone only, the viewer's (the exchange's when the browser does not say).
- ``short(status)`` is the few words the Status column uses when the market is not open.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from pipeline.markets.calendars import MarketStatus


def countdown(seconds: float) -> str:
    """'in 45 s', 'in 25 min', 'in 2 h 5 min', 'in 2 d 3 h' (never negative)."""
    s = max(0, int(seconds))
    if s < 60:
        return f"in {s} s"
    minutes = (s + 59) // 60  # round up: 'in 1 min' until the minute has passed
    if minutes < 60:
        return f"in {minutes} min"
    h, m = divmod(minutes, 60)
    if h < 24:
        return f"in {h} h {m} min" if m else f"in {h} h"
    d, h = divmod(h, 24)
    return f"in {d} d {h} h" if h else f"in {d} d"


def clock(ts: datetime, tz: str, now: datetime) -> str:
    """'16:00 EST', or 'Mon 09:30 EST' when ``ts`` is not on ``now``'s local date in ``tz``."""
    zone = ZoneInfo(tz)
    local = ts.astimezone(zone)
    same_day = local.date() == now.astimezone(zone).date()
    return local.strftime("%H:%M %Z" if same_day else "%a %H:%M %Z")


def _at(ts: datetime, st: MarketStatus, viewer_tz: str | None) -> str:
    text = clock(ts, st.timezone, st.at)
    if viewer_tz:
        try:
            viewer = ZoneInfo(viewer_tz)
        except Exception:  # an unknown zone from the browser: exchange time only
            viewer = None
        if (
            viewer is not None
            and ts.astimezone(viewer).utcoffset() != ts.astimezone(ZoneInfo(st.timezone)).utcoffset()
        ):
            text += f" ({clock(ts, viewer_tz, st.at)} your time)"
    return f"{text}, {countdown((ts - st.at).total_seconds())}"


def short(st: MarketStatus) -> str:
    """The state in a few words with its icon: '🌙 closed (Thanksgiving)', '🍱 lunch break'."""
    if st.state == "24/7":
        return "🟢 open 24/7"
    if st.state == "open":
        return "🟢 open, early close" if st.early_close else "🟢 open"
    if st.state == "break":
        return "🍱 lunch break"
    if st.state == "pre":
        return "🌅 pre-market"
    if st.state == "post":
        return "🌆 after-hours, early close" if st.early_close else "🌆 after-hours"
    if st.holiday:
        return f"🌙 closed ({st.holiday})" if st.holiday != "holiday" else "🌙 closed (holiday)"
    return "🌙 closed, early close" if st.early_close else "🌙 closed"


def _one_zone(ts: datetime, st: MarketStatus, viewer_tz: str | None) -> str:
    zone = viewer_tz or st.timezone
    try:
        ZoneInfo(zone)
    except Exception:  # an unknown zone from the browser: the exchange's
        zone = st.timezone
    return f"{clock(ts, zone, st.at)}, {countdown((ts - st.at).total_seconds())}"


def badge(st: MarketStatus, viewer_tz: str | None = None, one_zone: bool = False) -> str:
    """One line for the market's state at ``st.at`` (see the module docstring): the next change in
    the exchange's zone and the viewer's, or with ``one_zone`` in the viewer's only (the exchange's
    when the browser does not say)."""
    at = _one_zone if one_zone else _at
    head = short(st)
    if st.state in ("open", "break") and st.closes is not None:
        if st.state == "break" and st.resumes is not None:
            return f"{head} · resumes {at(st.resumes, st, viewer_tz)}"
        word = "early close" if st.early_close else "closes"
        return f"{head.replace(', early close', '')} · {word} {at(st.closes, st, viewer_tz)}"
    if st.state in ("closed", "pre", "post") and st.next_open is not None:
        return f"{head} · opens {at(st.next_open, st, viewer_tz)}"
    return head


def compact(st: MarketStatus, viewer_tz: str | None = None) -> str:
    """The tables' form of ``badge``: one zone (the viewer's when the browser says it), then the
    countdown: '🌙 closed · opens Mon 15:30 CET, in 12 h 42 min', and "fixed hours" when the
    exchange's calendar could not be used. ``badge`` with both zones was wider than a laptop's table
    and pushed Status off it."""
    text = badge(st, viewer_tz, one_zone=True)
    return f"{text} · fixed hours" if st.fixed_hours else text
