"""The bar builder: keeps 1m, 5m, 1h and 1d OHLCV bars in the ``bars`` collection.

Guarantees:
- Bars are *recomputed* from what is stored, never incremented: 1m from the ticks and source 1m bars
  of that minute, 5m from 1m, 1h from 5m, 1d from 1h together with any source daily bar. Running it
  twice, or in two processes at once, gives the same bars.
- It works from the ``bar_marks`` that ``Store.write_events`` leaves in the same call as the write, so
  a crash between storing prices and building bars only delays the bars; a mark is removed only if
  nothing re-marked it while it was being processed (``seq`` guard).
- A day is the symbol's *session date* at its exchange (``markets.market_for(symbol).timezone``),
  stored at UTC midnight of that date (``markets.day_key``). The 1d roll-up of the hours of that
  local date and a source's daily bar for it (stamped at local midnight) land on the same key, so
  SAP.DE's or 7203.T's day is never filed under the day before, and two sessions never merge.
  Each daily bar also carries ``session`` ("YYYY-MM-DD"), that date spelled out.
- Every query is an equality on (symbol, interval) plus a ``ts`` range, so the unique index serves it.
- ``stop()`` is honoured between marks and between the days of a long mark (a first backfill's
  month of minutes): a stopped builder returns within about a day's rebuild, its mark kept.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta

from pymongo import UpdateOne
from pymongo.errors import PyMongoError

from .intervals import INTERVALS, STORED
from .models import to_utc
from .sources.markets import day_key, day_start_utc, market_for, session_date
from .store import Store

log = logging.getLogger(__name__)

MINUTE, DAY = INTERVALS["1m"], INTERVALS["1d"]  # the first level (from ticks) and the last (+ source days)
ROLLUPS = [INTERVALS[name] for name in STORED[1:]]  # each from its parent: 5m <- 1m, 1h <- 5m, 1d <- 1h
PARENT = {i.name: i.parent for i in ROLLUPS if i.parent}
FIELDS = {"_id": 0, "ts": 1, "open": 1, "high": 1, "low": 1, "close": 1, "volume": 1, "fetched_at": 1}


def aggregate(
    docs: list[dict], level: str, bucket: Callable[[datetime], datetime] | None = None
) -> dict[datetime, dict]:
    """OHLCV per ``level`` bucket of time-sorted documents (``bucket(ts)`` overrides the level's
    UTC floor, e.g. for session dates)."""
    floor = bucket or INTERVALS[level].floor
    out: dict[datetime, dict] = {}
    for d in docs:
        key = floor(to_utc(d["ts"]))
        bar = out.get(key)
        if bar is None:
            out[key] = {
                "open": d["open"],
                "high": d["high"],
                "low": d["low"],
                "close": d["close"],
                "volume": d["volume"],
                "n": 1,
            }
        else:
            bar["high"] = max(bar["high"], d["high"])
            bar["low"] = min(bar["low"], d["low"])
            bar["close"] = d["close"]
            bar["volume"] += d["volume"]
            bar["n"] += 1
    return out


class BarBuilder:
    def __init__(self, store: Store, every_s: float = 1.0, busy=None, max_defer_s: float = 30.0):
        """Runs every ``every_s``. ``busy`` (optional callable) says the consumer has a backlog: then
        the builder defers, up to ``max_defer_s``, so ingestion keeps the database to itself; marks
        merge meanwhile, so one wider rebuild later does the same work as many small ones."""
        self.store = store
        self.every_s = every_s
        self.busy = busy
        self.max_defer_s = max_defer_s
        self.deferred = 0
        self.runs = 0
        self.bars_written = 0
        self.last_run: float | None = None
        self.last_duration_s: float | None = None
        self.last_error: str | None = None
        self._stop = threading.Event()

    # -- loop ---------------------------------------------------------------------------------------
    def run(self) -> None:
        last_build = time.monotonic()
        while not self._stop.wait(self.every_s):
            if self.busy is not None and self.busy() and time.monotonic() - last_build < self.max_defer_s:
                self.deferred += 1
                continue
            try:
                self.run_once(interruptible=True)
                self.last_error = None
            except PyMongoError as exc:
                self.last_error = f"{exc.__class__.__name__}: {str(exc)[:200]}"
                log.warning("bar builder: %s", self.last_error)
            last_build = time.monotonic()

    def stop(self) -> None:
        self._stop.set()

    def run_once(self, interruptible: bool = False) -> int:
        """Rebuild what every mark asks for; return the number of bars written. If ``interruptible``,
        ``stop()`` makes it return at the next day boundary, the unfinished mark kept for next time."""
        t0 = time.perf_counter()
        written = 0
        stopped = self._stop.is_set if interruptible else (lambda: False)
        for mark in list(self.store.bar_marks.find()):
            if stopped():
                break
            lo, hi = to_utc(mark["lo"]), to_utc(mark["hi"])
            if mark["kind"] == "intraday":
                done, n = self.rebuild_intraday(mark["symbol"], lo, hi, stopped)
            else:
                done, n = True, self.rebuild_days(mark["symbol"], lo, hi)
            written += n
            if done:
                self.store.bar_marks.delete_one({"_id": mark["_id"], "seq": mark["seq"]})
        self.runs += 1
        self.bars_written += written
        self.last_run = time.time()
        self.last_duration_s = round(time.perf_counter() - t0, 3)
        return written

    # -- levels -------------------------------------------------------------------------------------
    def _find(self, coll, symbol: str, interval: str, start: datetime, end: datetime) -> list[dict]:
        return list(
            coll.find(
                {"symbol": symbol, "interval": interval, "ts": {"$gte": start, "$lt": end}}, FIELDS
            ).sort("ts", 1)
        )

    def rebuild_intraday(
        self, symbol: str, lo: datetime, hi: datetime, stopped=lambda: False
    ) -> tuple[bool, int]:
        """Rebuild ``lo``..``hi`` one UTC day at a time; return (finished, bars written). It returns
        between days once ``stopped()`` says so (finished is then False)."""
        written = 0
        day = DAY.floor(lo)
        while day <= hi:
            if stopped():
                return False, written
            written += self._rebuild_intraday_span(
                symbol, max(lo, day), min(hi, day + DAY.span - MINUTE.span)
            )
            day += DAY.span
        return True, written

    def _rebuild_intraday_span(self, symbol: str, lo: datetime, hi: datetime) -> int:
        start, end = MINUTE.floor(lo), MINUTE.floor(hi) + MINUTE.span
        ticks = aggregate(self._find(self.store.prices, symbol, "tick", start, end), "1m")
        source = {
            MINUTE.floor(to_utc(d["ts"])): d for d in self._find(self.store.prices, symbol, "1m", start, end)
        }
        minutes: dict[datetime, dict] = {}
        for bucket in sorted(set(ticks) | set(source)):
            bar, tick = source.get(bucket), ticks.get(bucket)
            if bar is None:  # then the bucket is one of the ticks'
                minutes[bucket] = ticks[bucket]
            else:  # a source bar is authoritative for open and volume; ticks can only widen it
                merged = {k: bar[k] for k in ("open", "high", "low", "close", "volume")}
                merged["n"] = 1
                if tick is not None:
                    merged.update(
                        high=max(bar["high"], tick["high"]), low=min(bar["low"], tick["low"]), n=1 + tick["n"]
                    )
                minutes[bucket] = merged
        written = self._save(symbol, "1m", minutes)
        for level in ROLLUPS:
            if level is DAY:
                written += self.rebuild_days(symbol, start, end - MINUTE.span)
                continue
            start, end = level.floor(start), level.floor(end - MINUTE.span) + level.span
            rows = aggregate(self._find(self.store.bars, symbol, PARENT[level.name], start, end), level.name)
            written += self._save(symbol, level.name, rows)
        return written

    def rebuild_days(self, symbol: str, lo: datetime, hi: datetime) -> int:
        """Rebuild the daily bars of every session date (at ``symbol``'s exchange) that ``lo``..``hi``
        (aware) touches, each from all of that local date's hours plus the source's bar for that date;
        return the number of bars written."""
        tz = market_for(symbol).timezone
        first, last = session_date(lo, tz), session_date(hi, tz)
        start, end = day_start_utc(first, tz), day_start_utc(last + timedelta(days=1), tz)
        hours = self._find(self.store.bars, symbol, PARENT["1d"], start, end)
        rows = aggregate(hours, "1d", bucket=lambda ts: day_key(session_date(ts, tz)))
        rows = self._merge_source_days(symbol, rows, first, last, tz)
        for key, row in rows.items():  # the session date, stored explicitly (ts is its UTC midnight)
            row["session"] = key.date().isoformat()
        return self._save(symbol, "1d", rows)

    def _merge_source_days(self, symbol: str, rows: dict, first: date, last: date, tz: str) -> dict:
        """Fold the source's daily bars of session dates ``first``..``last`` into ``rows``."""
        # a source stamps its day at local midnight (or at the session's open): search a day wider
        start, end = day_start_utc(first, tz) - DAY.span, day_start_utc(last, tz) + 2 * DAY.span
        for d in self._find(self.store.prices, symbol, "1d", start, end):
            local = session_date(to_utc(d["ts"]), tz)
            if not first <= local <= last:
                continue
            day = day_key(local)
            intraday = rows.get(day)
            if intraday is None:
                rows[day] = {k: d[k] for k in ("open", "high", "low", "close", "volume")} | {"n": 1}
            else:  # the source's daily bar knows the real open and the day's full volume
                intraday.update(
                    open=d["open"],
                    high=max(intraday["high"], d["high"]),
                    low=min(intraday["low"], d["low"]),
                    volume=max(intraday["volume"], d["volume"]),
                )
        return rows

    def _save(self, symbol: str, level: str, rows: dict[datetime, dict]) -> int:
        if not rows:
            return 0
        ops = [
            UpdateOne(
                {"symbol": symbol, "interval": level, "ts": ts},
                {"$set": {"symbol": symbol, "interval": level, "ts": ts, **bar}},
                upsert=True,
            )
            for ts, bar in rows.items()
        ]
        self.store.bars.bulk_write(ops, ordered=False)
        return len(ops)

    def snapshot(self) -> dict:
        try:
            pending = self.store.bar_marks.estimated_document_count()
        except PyMongoError:
            pending = None
        return {
            "runs": self.runs,
            "bars_written": self.bars_written,
            "last_run": self.last_run,
            "last_duration_s": self.last_duration_s,
            "deferred": self.deferred,
            "last_error": self.last_error,
            "pending_marks": pending,
        }
