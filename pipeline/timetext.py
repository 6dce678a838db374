"""Durations and instants as text, the same in the pages (``ui.format`` re-exports these) and in the
health rules (``pipeline.health.rules``, which the command line runs too).

Guarantees: every formatting function accepts ``None`` (and ``age`` NaN) and returns "–" for it
instead of raising (``missing`` says whether a value is None or NaN);
``age`` rounds down to whole seconds, minutes, hours or days; epochs are seconds since 1970 (UTC).
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

DASH = "–"


def missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def age(seconds) -> str:
    """How long ago: "4 s", "3 min", "2 h 5 min", "3 d"."""
    if missing(seconds):
        return DASH
    s = max(0, int(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        h, m = divmod(s // 60, 60)
        return f"{h} h {m} min" if m else f"{h} h"
    return f"{s // 86400} d"


def since(epoch: float | None, now: float | None = None) -> str:
    if epoch is None:
        return DASH
    return f"{age((now or time.time()) - epoch)} ago"


def until(epoch: float | None, now: float | None = None) -> str:
    if epoch is None:
        return DASH
    left = epoch - (now or time.time())
    return "now" if left <= 0.5 else f"in {age(left)}"


def local_time(ts: datetime | None, tz: str = "UTC", with_date: bool = False) -> str:
    if ts is None:
        return DASH
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    local = ts.astimezone(ZoneInfo(tz))
    return local.strftime("%Y-%m-%d %H:%M:%S %Z" if with_date else "%H:%M:%S %Z")
