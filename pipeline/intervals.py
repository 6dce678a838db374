"""Intervals: the one definition of every interval name, its span, label and roll-up parent.

Guarantees:
- ``INTERVALS`` maps each name an event may carry (``tick``, then bars of 1m, 2m, 5m, 15m, 30m, 1h,
  1d, 1wk), finest first, to its ``Interval``. Nothing else in the project defines an interval's
  name, length or bar start; provider codes (Yahoo, Alpha Vantage) stay in their source module,
  keyed by these names.
- ``Interval.floor(ts)`` is the UTC start of the bar that holds ``ts``: minutes and hours are
  aligned to the UTC clock (5m bars start at :00, :05, ...), a day is the UTC day, a week starts on
  Monday 00:00 UTC (as MongoDB's ``$dateTrunc`` with ``startOfWeek: monday``). A tick is its own
  start. The result is an aware UTC datetime.
- ``parent`` is the interval a bar is rolled up from (1m from ticks, 5m from 1m, 1h from 5m, 1d from
  1h, and the unstored 15m/30m from 5m, 1wk from 1d); ``stored`` marks the levels the bar builder
  keeps in ``bars`` (``STORED``: 1m, 5m, 1h, 1d). ``level`` is the stored interval read to serve it.
- The intervals the pages offer are defined here too: ``LADDER`` (every one, finest first; the
  widening order of ``queries``), ``LIVE_INTERVALS`` and ``HISTORY_INTERVALS`` (the two menus).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

#: seconds per ``unit`` (the units are MongoDB ``$dateTrunc`` units)
UNIT_SECONDS = {"tick": 0, "minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400}


@dataclass(frozen=True)
class Interval:
    """One interval: ``count`` × ``unit`` long (``seconds``; 0 for a tick), shown as ``label``."""

    name: str
    unit: str  # "tick" or a $dateTrunc unit: minute, hour, day, week
    count: int  # units per bar ($dateTrunc binSize)
    label: str  # for people: "5 minutes"
    parent: str | None  # the interval its bars are rolled up from (None for a tick)
    stored: bool = False  # the bar builder keeps this level in ``bars``
    seconds: int = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "seconds", self.count * UNIT_SECONDS[self.unit])

    @property
    def span(self) -> timedelta:
        return timedelta(seconds=self.seconds)

    @property
    def intraday(self) -> bool:
        """Shorter than a day (a bar drawn at exchange-local times, not on a UTC day)."""
        return self.seconds < UNIT_SECONDS["day"]

    @property
    def level(self) -> str:
        """The stored interval this one is read from: itself if stored (or a tick), else its parent."""
        return self.parent if self.parent and not self.stored else self.name

    def floor(self, ts: datetime) -> datetime:
        """The UTC start of the bar holding ``ts`` (aware datetime in, aware UTC datetime out)."""
        ts = ts.astimezone(UTC)
        if self.unit == "tick":
            return ts
        if self.unit == "minute":
            return ts.replace(minute=ts.minute - ts.minute % self.count, second=0, microsecond=0)
        if self.unit == "hour":
            return ts.replace(hour=ts.hour - ts.hour % self.count, minute=0, second=0, microsecond=0)
        day = ts.replace(hour=0, minute=0, second=0, microsecond=0)
        if self.unit == "week":
            return day - timedelta(days=day.weekday())
        return day


#: every interval, finest first
INTERVALS: dict[str, Interval] = {
    i.name: i
    for i in (
        Interval("tick", "tick", 1, "tick", None),
        Interval("1m", "minute", 1, "1 minute", "tick", stored=True),
        Interval("2m", "minute", 2, "2 minutes", "1m"),
        Interval("5m", "minute", 5, "5 minutes", "1m", stored=True),
        Interval("15m", "minute", 15, "15 minutes", "5m"),
        Interval("30m", "minute", 30, "30 minutes", "5m"),
        Interval("1h", "hour", 1, "1 hour", "5m", stored=True),
        Interval("1d", "day", 1, "1 day", "1h", stored=True),
        Interval("1wk", "week", 1, "1 week", "1d"),
    )
}
NAMES = tuple(INTERVALS)
#: the bar levels the bar builder keeps, finest first (each rolled up from the one before)
STORED = tuple(i.name for i in INTERVALS.values() if i.stored)
#: bars shorter than a day, finest first
INTRADAY_BARS = tuple(i.name for i in INTERVALS.values() if i.seconds and i.intraday)
#: Every interval the pages offer, finest first: the ladder ``queries`` widens a request along. Names
#: are the event model's, so a downloaded CSV can be replayed by the csv source.
LADDER = ("1m", "5m", "15m", "30m", "1h", "1d", "1wk")
#: the Live page's interval menu
LIVE_INTERVALS = ("1m", "5m", "15m", "1h")
#: the History page's interval menu (after "Auto")
HISTORY_INTERVALS = LADDER
