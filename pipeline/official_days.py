"""Official daily bars: once a session has settled, the provider's daily bar of it is fetched.

A day the monitor watched is first built from its minutes and is *provisional* (``pipeline.bars``):
no minute holds the closing auction, so neither its close nor its volume is the official one. This
job asks the source for that session's daily bar once the session has settled, and publishes it; the
bar builder then replaces the provisional day with it.

Guarantees:
- For each watched symbol, the newest session date whose regular session closed at least
  ``bars.SETTLED`` ago (looked up in the exchange calendar, ``markets.regular_session``; up to
  ``LOOKBACK_DAYS`` back) is *due* unless a daily bar of it fetched after that point is stored.
- Only sources whose daily bar is an exchange's official one (``official_daily = True``: Yahoo) are
  asked; the simulator's and a CSV replay's days stay as built from their minutes.
- A due day costs one ``backfill(symbol, day - LOOKBACK_DAYS, day + 1, "1d")`` call (the days before
  it come along: a split listed late, a missed evening) of the symbol's source (under the
  source's own request budget) and is then remembered as done; the splits, dividends and repairs the
  answer carried are recorded (and a new split applied) before its bar is published; a call that brings no bar of that day
  is tried again ``RETRY_S`` later at the earliest, never more often.
- It runs on the producer's scheduler every ``EVERY_S`` (the first run one period after start), as a
  producer step; ``allowed()`` is asked before each symbol, so a pause or stop starts no new request.
- ``run`` never raises: a failing symbol is counted and logged, the others go on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta

from pymongo.errors import PyMongoError

from . import corporate_actions
from .bars import SETTLED
from .markets.calendars import day_start_utc, market_for, regular_session, session_date
from .models import PriceEvent, to_utc, utcnow
from .sources import Source
from .sources.base import FetchResult
from .store import Store

log = logging.getLogger(__name__)

#: How often the job looks for settled days (seconds): a day becomes official within this of
#: ``SETTLED`` after its close.
EVERY_S = 600.0
#: How long after a call that brought no bar the same day is asked for again (seconds).
RETRY_S = 1800.0
#: How far back a settled day is looked for (calendar days; a long weekend and a holiday fit).
LOOKBACK_DAYS = 7


def settled_day(symbol: str, now: datetime) -> tuple[date, datetime] | None:
    """The newest session date of ``symbol``'s exchange whose close was ``SETTLED`` or more before
    ``now`` (aware), with that close (UTC); None if none in the last ``LOOKBACK_DAYS``."""
    market = market_for(symbol)
    today = session_date(now, market.timezone)
    for back in range(LOOKBACK_DAYS + 1):
        day = today - timedelta(days=back)
        session = regular_session(market, day)
        if session is not None and session[1] + SETTLED <= now:
            return day, session[1]
    return None


class OfficialDays:
    """Fetches the official daily bar of each watched symbol's newest settled session (see the
    module docstring). ``symbols_by_source``: the watchlist's {source name: symbols};
    ``source``: a source by name; ``publish``: publishes events, returns how many."""

    def __init__(
        self,
        store: Store,
        symbols_by_source: Callable[[], dict[str, list[str]]],
        source: Callable[[str], Source],
        publish: Callable[[Sequence[PriceEvent]], int],
        clock: Callable[[], datetime] = utcnow,
        record: Callable[[FetchResult], None] = lambda result: None,
        allowed: Callable[[], bool] = lambda: True,
    ):
        self.store = store
        self.symbols_by_source = symbols_by_source
        self.source = source
        self.publish = publish
        self.clock = clock
        self.record = record  # stores what an answer carried besides prices (repairs, splits)
        self.allowed = allowed  # False while the producer is paused or stopping: no new request
        self._done: set[tuple[str, date]] = set()
        self._tried: dict[tuple[str, date], float] = {}  # -> epoch s of the last call
        self._lock = threading.Lock()
        self.counts = {"runs": 0, "fetched": 0, "official": 0, "failed": 0}
        self.last_error: str | None = None

    def run(self) -> int:
        """Fetch and publish the due days; return how many daily bars were published."""
        now = self.clock()
        published = 0
        with self._lock:
            self.counts["runs"] += 1
            try:  # prices of before a split that were still in Kafka when it was applied
                corporate_actions.reapply_recent(self.store, now)
                watched = self.symbols_by_source()
            except Exception as exc:
                self.last_error = f"{exc.__class__.__name__}: {exc}"[:300]
                return 0
            for name, symbols in watched.items():
                if not getattr(self.source(name), "official_daily", False):
                    continue  # the simulator's or a CSV's daily bar is no exchange's official one
                for symbol in symbols:
                    if not self.allowed():
                        return published
                    try:
                        published += self._one(name, symbol, now)
                    except Exception as exc:  # one symbol never stops the others
                        self.counts["failed"] += 1
                        self.last_error = f"{symbol}: {exc.__class__.__name__}: {exc}"[:300]
                        log.warning("official daily bar of %s: %s", symbol, exc)
        return published

    def _one(self, name: str, symbol: str, now: datetime) -> int:
        found = settled_day(symbol, now)
        if found is None:
            return 0
        day, closed = found
        key = (symbol, day)
        if key in self._done:
            return 0
        tried = self._tried.get(key)
        if tried is not None and now.timestamp() - tried < RETRY_S:
            return 0
        if self._stored(symbol, day, closed):
            self._done.add(key)
            return 0
        self._tried[key] = now.timestamp()
        sent = self.fetch_day(name, symbol, day)
        if sent:
            self._done.add(key)
            self.counts["official"] += 1
        return sent

    def fetch_day(self, name: str, symbol: str, day: date) -> int:
        """Ask source ``name`` for ``symbol``'s daily bars of ``LOOKBACK_DAYS`` up to the session date
        ``day`` in one call (Yahoo lists a split only inside the requested range, sometimes a day or
        two late; a missed evening is caught up), record what the answer carried (``record``:
        repairs, splits, dividends) and publish its bars up to ``day``; returns how many were
        published, 0 (with the reason in ``last_error``) when ``day`` itself has no bar."""
        tz = market_for(symbol).timezone
        first = day - timedelta(days=LOOKBACK_DAYS)
        result = self.source(name).backfill(
            symbol, day_start_utc(first, tz), day_start_utc(day + timedelta(days=1), tz), "1d"
        )
        self.counts["fetched"] += 1
        self.record(result)
        mine = [e for e in result.events if e.interval == "1d" and session_date(e.ts, tz) <= day]
        if not any(session_date(e.ts, tz) == day for e in mine):
            reason = result.errors.get(symbol, "no daily bar in the answer")
            self.last_error = f"{symbol} {day}: {reason}"[:300]
            return 0
        return self.publish(mine)

    def _stored(self, symbol: str, day: date, closed: datetime) -> bool:
        """Is a daily bar of ``day`` fetched ``SETTLED`` after ``closed`` already stored?"""
        tz = market_for(symbol).timezone
        start = day_start_utc(day, tz)
        try:
            docs = self.store.prices.find(
                {
                    "symbol": symbol,
                    "interval": "1d",
                    "ts": {"$gte": start - timedelta(days=1), "$lt": start + timedelta(days=2)},
                    "fetched_at": {"$gte": closed + SETTLED},
                },
                {"_id": 0, "ts": 1},
            )
            return any(session_date(to_utc(d["ts"]), tz) == day for d in docs)
        except PyMongoError:
            return False  # asked again: a duplicate daily bar is a revision, harmless

    def snapshot(self) -> dict:
        """Counters: runs, fetched (calls made), official (days published), failed; last_error."""
        return {**self.counts, "last_error": self.last_error, "every_s": EVERY_S}
