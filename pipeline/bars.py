"""The bar builder: keeps 1m, 5m, 1h and 1d OHLCV bars in the ``bars`` collection.

Guarantees:
- Bars are *recomputed* from what is stored, never incremented: 1m from the ticks and source 1m bars
  of that minute, 5m from 1m, 1h from 5m, 1d from 1h together with any source daily bar. Running it
  twice, or in two processes at once, gives the same bars.
- It works from the ``bar_marks`` that ``Store.write_events`` leaves in the same call as the write
  (one document per symbol, kind and UTC day / year, see ``store.mark_bucket``), so a crash between
  storing prices and building bars only delays the bars.
- Work per run is proportional to what was marked since the last run: a builder *claims* a mark's
  pending range atomically (compare-and-set on ``seq``: the pending ``lo``/``hi`` move to
  ``taken_lo``/``taken_hi`` with its token), rebuilds exactly that, then drops the claim. Whatever is
  marked meanwhile starts a fresh pending range (only the new prices' span), so a backfill's range is
  rebuilt once and live ticks never drag an old range along; nothing marked during a rebuild is lost.
- Two builders at once: a claim belongs to one builder; the other skips it. A claim whose builder
  died (taken more than ``lease_s`` ago, or its process is gone on this host) is taken over with its
  range, so a crash between claiming and building only delays those bars (a claim that merely
  outlives its lease is rebuilt twice, which is harmless: bars are recomputed).
- Its lag (``snapshot()["lag_s"]``) is the age of the oldest pending or claimed mark: how long the
  oldest stored-but-unbuilt price has waited, in seconds.
- A day is the symbol's *session date* at its exchange (``markets.calendars.market_for(symbol).timezone``),
  stored at UTC midnight of that date (``markets.calendars.day_key``). The 1d roll-up of the hours of that
  local date and a source's daily bar for it (stamped at local midnight) land on the same key, so
  SAP.DE's or 7203.T's day is never filed under the day before, and two sessions never merge.
- A daily bar is the exchange's *regular session*: pre-market and after-hours minutes (Yahoo serves
  them for US listings) never change a daily OHLCV, and a date without a session (a weekend or
  holiday, where the simulator still ticks) gets no daily bar from its minutes. Built from the minutes it is *provisional*
  (``provisional: true``): a 1-minute close is not the official close (the closing auction prints
  after the last minute; AAPL 2024-10-02: 226.81 at 15:59, 226.78 official) and the auction's volume
  is in no minute. The provider's daily bar fetched ``SETTLED`` or more after the session closed is
  the official one and replaces it (``provisional: false``). A provider's bar fetched earlier gives
  the day's open and volume (the larger of its volume and the minutes' sum; for crypto, whose
  streamed volume is a rolling figure's increments, its volume alone); highs and lows are the
  widest of both; the day stays provisional.
  Each daily bar also carries ``session`` ("YYYY-MM-DD"), that date spelled out.
- Every query is an equality on (symbol, interval) plus a ``ts`` range, so the unique index serves it.
- ``stop()`` is honoured between marks (at most a day of minutes each): a stopped builder returns
  within about a day's rebuild and gives an unfinished claim back as pending. A run takes marks
  newest bucket first and claims no more after ``budget_s``, so rebuilding a backfill's days never
  holds the live minute's bars back for longer than about that plus one day's rebuild.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from datetime import date, datetime, timedelta

from pymongo import ReturnDocument, UpdateOne
from pymongo.errors import PyMongoError

from .config import BAR_PERIOD_S
from .intervals import INTERVALS, STORED
from .markets.calendars import Market, day_key, day_start_utc, market_for, regular_session, session_date
from .models import to_utc, utcnow
from .store import Store

log = logging.getLogger(__name__)

MINUTE, HOUR, DAY = INTERVALS["1m"], INTERVALS["1h"], INTERVALS["1d"]  # 1m from ticks; 1d (+ source days)
#: How long after a session's close a provider's daily bar is taken as final: Yahoo's daily bar
#: takes the closing auction in within minutes of the close (a bar fetched earlier is provisional).
SETTLED = timedelta(minutes=20)
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


LEASE_S = 120.0  # a claim not refreshed for this long belongs to a builder that died
RECENT_RUNS = 60  # runs the "recent" per-run figures of snapshot() cover
TAKEN = ("taken_lo", "taken_hi", "taken_since", "taken_by", "taken_at")


class BarBuilder:
    def __init__(
        self,
        store: Store,
        every_s: float = BAR_PERIOD_S,
        busy=None,
        max_defer_s: float = 30.0,
        lease_s: float = LEASE_S,
        budget_s: float | None = 5.0,
    ):
        """Runs every ``every_s`` seconds (``STOCKMON_BAR_PERIOD_S``, ``config.BAR_PERIOD_S``). ``busy`` (optional callable) says the consumer has a backlog: then
        the builder defers, up to ``max_defer_s``, so ingestion keeps the database to itself; marks
        merge meanwhile, so one wider rebuild later does the same work as many small ones.
        ``lease_s``: how long another builder's claim is respected. ``budget_s``: a run claims no
        further mark once it has taken this long (None: no limit), so while a backfill's days are
        rebuilt the next run, newest bucket first, keeps the live minute current."""
        self.store = store
        self.every_s = every_s
        self.busy = busy
        self.max_defer_s = max_defer_s
        self.lease_s = lease_s
        self.budget_s = budget_s
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        # (symbol, day key) of non-session dates already cleared of built daily bars by this builder:
        # a live run on a weekend rebuilds that date every few seconds and must not delete each time
        self._cleared: set[tuple[str, datetime]] = set()
        self.deferred = 0
        self.runs = 0
        self.bars_written = 0
        self.minutes_rebuilt = 0  # 1m buckets rebuilt in all runs
        self.last_run_minutes = 0
        self.last_run_bars = 0
        self.max_run_minutes = 0
        self.recent_minutes: deque[int] = deque(maxlen=RECENT_RUNS)
        self.claims_taken_over = 0  # claims of a dead builder this one finished
        self.last_run: float | None = None
        self.last_duration_s: float | None = None
        self.last_error: str | None = None
        self.behind = False  # the last run stopped on its budget with marks left to claim
        self._stop = threading.Event()

    # -- loop ---------------------------------------------------------------------------------------
    def run(self) -> None:
        """Build every ``every_s`` until ``stop()``; a run that ended on its budget with marks left
        (a backfill being folded in) is followed by the next at once, not after a period."""
        last_build = time.monotonic()
        wait = self.every_s
        while not self._stop.wait(wait):
            wait = self.every_s
            if self.busy is not None and self.busy() and time.monotonic() - last_build < self.max_defer_s:
                self.deferred += 1
                continue
            try:
                self.run_once(interruptible=True)
                self.last_error = None
                wait = 0.0 if self.behind else self.every_s
            except PyMongoError as exc:
                self.last_error = f"{exc.__class__.__name__}: {str(exc)[:200]}"
                log.warning("bar builder: %s", self.last_error)
            last_build = time.monotonic()

    def stop(self) -> None:
        self._stop.set()

    def run_once(self, interruptible: bool = False) -> int:
        """Claim and rebuild what every mark asks for, newest bucket first (live bars before history);
        return the number of bars written. It claims no further mark after ``budget_s``. If
        ``interruptible``, ``stop()`` makes it return between marks, an unfinished claim given back
        as pending. Raises ``PyMongoError``."""
        t0 = time.perf_counter()
        written = minutes = 0
        stopped = self._stop.is_set if interruptible else (lambda: False)
        marks = sorted(self.store.bar_marks.find(), key=lambda m: str(m.get("bucket", "")), reverse=True)
        self.behind = False
        claimed = 0
        for mark in marks:
            if stopped() or (self.budget_s is not None and time.perf_counter() - t0 > self.budget_s):
                self.behind = claimed > 0 and not stopped()  # no progress at all: rest a period
                break  # the rest waits for the next run, whose newest marks go first
            claim = self._claim(mark)
            claimed += claim is not None
            if claim is None:
                continue
            symbol = claim["symbol"]
            lo, hi = to_utc(claim["taken_lo"]), to_utc(claim["taken_hi"])
            done = False
            try:
                if claim["kind"] == "intraday":
                    done, n = self.rebuild_intraday(symbol, lo, hi, stopped)
                    if done:
                        minutes += int((MINUTE.floor(hi) - MINUTE.floor(lo)) / MINUTE.span) + 1
                else:
                    done, n = True, self.rebuild_days(symbol, lo, hi)
                written += n
            finally:
                self._release(claim, done)
        self.runs += 1
        self.bars_written += written
        self.minutes_rebuilt += minutes
        self.last_run_minutes, self.last_run_bars = minutes, written
        self.max_run_minutes = max(self.max_run_minutes, minutes)
        self.recent_minutes.append(minutes)
        self.last_run = time.time()
        self.last_duration_s = round(time.perf_counter() - t0, 3)
        return written

    # -- claims -------------------------------------------------------------------------------------
    def _stale(self, mark: dict, now: datetime) -> bool:
        """True if ``mark``'s claim belongs to a builder that died: taken more than ``lease_s`` ago,
        or by a process of this host that no longer runs."""
        at = mark.get("taken_at")
        if at is None or now - to_utc(at) > timedelta(seconds=self.lease_s):
            return True
        host, _, rest = str(mark.get("taken_by")).partition(":")
        pid = rest.partition(":")[0]
        if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
            return False
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except OSError:  # alive but not ours to signal
            return False
        return False

    def _claim(self, mark: dict, attempts: int = 3) -> dict | None:
        """Move ``mark``'s pending range (together with a dead builder's claim, if any) into a claim
        of this builder, atomically: the update applies only if nobody re-marked or claimed it since
        it was read (``seq`` and the claim fields). Returns the claimed document, or None when there
        is nothing to do here (nothing pending, or another live builder holds it)."""
        marks = self.store.bar_marks
        for _ in range(attempts):
            now = utcnow()
            holder = mark.get("taken_by")
            if holder is not None and holder != self.token and not self._stale(mark, now):
                return None
            los = [to_utc(mark[k]) for k in ("lo", "taken_lo") if mark.get(k) is not None]
            his = [to_utc(mark[k]) for k in ("hi", "taken_hi") if mark.get(k) is not None]
            if not los or not his:  # an emptied mark left behind: drop it unless re-marked meanwhile
                marks.delete_one({"_id": mark["_id"], "lo": {"$exists": False}, "taken_by": None})
                return None
            since = [to_utc(mark[k]) for k in ("since", "taken_since") if mark.get(k) is not None]
            claimed = marks.find_one_and_update(
                {
                    "_id": mark["_id"],
                    "seq": mark.get("seq"),
                    "taken_by": holder,
                    "taken_at": mark.get("taken_at"),
                },
                {
                    "$set": {
                        "taken_lo": min(los),
                        "taken_hi": max(his),
                        "taken_since": min(since, default=now),
                        "taken_by": self.token,
                        "taken_at": now,
                    },
                    "$unset": {"lo": "", "hi": "", "since": ""},
                },
                return_document=ReturnDocument.AFTER,
            )
            if claimed is not None:
                if holder is not None and holder != self.token:
                    self.claims_taken_over += 1
                return claimed
            again = marks.find_one({"_id": mark["_id"]})  # re-marked or claimed meanwhile: look again
            if again is None:
                return None
            mark = again
        return None

    def _release(self, claim: dict, done: bool) -> None:
        """Drop this builder's claim (or, if not ``done``, give its range back as pending), then
        delete the mark if nothing was marked meanwhile. A claim another builder took over is left
        to it."""
        marks = self.store.bar_marks
        unset = dict.fromkeys(TAKEN, "")
        mine = {"_id": claim["_id"], "taken_by": self.token}
        if done:
            marks.update_one(mine, {"$unset": unset})
        else:
            marks.update_one(
                mine,
                {
                    "$min": {"lo": claim["taken_lo"], "since": claim["taken_since"]},
                    "$max": {"hi": claim["taken_hi"]},
                    "$inc": {"seq": 1},
                    "$unset": unset,
                },
            )
        marks.delete_one({"_id": claim["_id"], "lo": {"$exists": False}, "taken_by": None})

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
        # 5m and 1h are rolled up here from the stored parent bars of their windows overlaid with the
        # fresh ones, and written with the minutes in one bulk write: a live run sends 13 commands, 2 of
        # them bulk writes, instead of 15 with 4 (counted in test_bars_keep_up; the embedded MongoDB
        # server saturated at 50 symbols on a 1 s poll, issue 20)
        levels: dict[str, dict[datetime, dict]] = {MINUTE.name: minutes}
        fresh = minutes
        for level in [r for r in ROLLUPS if r is not DAY]:  # the intraday roll-ups; the day below
            start, end = level.floor(start), level.floor(end - MINUTE.span) + level.span
            parents = {
                to_utc(d["ts"]): d
                for d in self._find(self.store.bars, symbol, PARENT[level.name], start, end)
            }
            parents.update((ts, {"ts": ts, **bar}) for ts, bar in fresh.items() if start <= ts < end)
            fresh = aggregate([parents[ts] for ts in sorted(parents)], level.name)
            levels[level.name] = fresh
        written = self._save_levels(symbol, levels)
        return written + self.rebuild_days(symbol, start, end - MINUTE.span)

    def rebuild_days(self, symbol: str, lo: datetime, hi: datetime) -> int:
        """Rebuild the daily bars of every session date (at ``symbol``'s exchange) that ``lo``..``hi``
        (aware) touches, each from that date's *regular session* (``_regular_session_parts``) and
        the source's bar for that date (``_merge_source_days``); return the number of bars written.
        A provisional daily bar on a date of the range without a session (built from its minutes by
        an older version) and without a source's bar is deleted, once per date and builder."""
        market = market_for(symbol)
        tz = market.timezone
        first, last = session_date(lo, tz), session_date(hi, tz)
        parts = self._regular_session_parts(symbol, market, first, last)
        rows = aggregate(parts, "1d", bucket=lambda ts: day_key(session_date(ts, tz)))
        for row in rows.values():
            row["provisional"] = True  # built from the minutes: the official bar is the provider's
        rows = self._merge_source_days(symbol, rows, first, last, market)
        for key, row in rows.items():  # the session date, stored explicitly (ts is its UTC midnight)
            row["session"] = key.date().isoformat()
        # a daily bar built from the minutes of a date without a session (before such dates got none:
        # the simulator's weekends) is removed when its date is rebuilt; a provider's own bar stays
        off = [
            day_key(first + timedelta(days=k))
            for k in range((last - first).days + 1)
            if regular_session(market, first + timedelta(days=k)) is None
            and day_key(first + timedelta(days=k)) not in rows
            and (symbol, day_key(first + timedelta(days=k))) not in self._cleared
        ]
        if off:  # once per date and builder (a live run on a weekend comes back every few seconds)
            self.store.bars.delete_many(
                {"symbol": symbol, "interval": "1d", "ts": {"$in": off}, "provisional": True}
            )
            self._cleared.update((symbol, key) for key in off)
        return self._save(symbol, "1d", rows)

    def _regular_session_parts(self, symbol: str, market: Market, first: date, last: date) -> list[dict]:
        """The stored intraday bars that make up the regular sessions of ``first``..``last``, time
        sorted: each 1h bar inside a session, and the 1m bars of an hour the session's open or close
        cuts (a US session opens at 09:30: its 09:00 hour holds pre-market minutes). Bars outside
        the regular session (pre-market, after-hours) are left out: they never change a daily
        OHLCV. A date without a session (weekend, holiday) has none: a simulator trading around the
        clock keeps those hours in its intraday bars, but a daily bar of a Saturday made Sunday's
        change compare with Saturday and a forecast start from a day NYSE never traded."""
        tz = market.timezone
        start, end = day_start_utc(first, tz), day_start_utc(last + timedelta(days=1), tz)
        hours = self._find(self.store.bars, symbol, PARENT["1d"], start, end)
        sessions: dict[date, tuple[datetime, datetime] | None] = {}
        docs: list[dict] = []
        cut: list[tuple[datetime, datetime]] = []  # [from, to) windows read from the 1m bars
        for h in hours:
            ts = to_utc(h["ts"])
            day = session_date(ts, tz)
            if day not in sessions:
                sessions[day] = regular_session(market, day)
            session = sessions[day]
            if session is None:  # no session that date (weekend, holiday): no daily bar from it
                continue
            opens, closes = session
            if opens <= ts and ts + HOUR.span <= closes:
                docs.append(h)
            elif ts < closes and opens < ts + HOUR.span:  # the session's open or close cuts this hour
                cut.append((max(ts, opens), min(ts + HOUR.span, closes)))
        for i in range(0, len(cut), 200):
            windows = cut[i : i + 200]
            query = {
                "symbol": symbol,
                "interval": MINUTE.name,
                "$or": [{"ts": {"$gte": a, "$lt": b}} for a, b in windows],
            }
            docs.extend(self.store.bars.find(query, FIELDS))
        docs.sort(key=lambda d: to_utc(d["ts"]))
        return docs

    def _merge_source_days(self, symbol: str, rows: dict, first: date, last: date, market: Market) -> dict:
        """Fold the source's daily bars of session dates ``first``..``last`` into ``rows``. A source's
        bar fetched ``SETTLED`` or more after its session closed is the official bar: it replaces
        what the minutes say (the closing auction's price and volume are in it, not in any minute),
        and the day is no longer provisional. One fetched earlier is merged: its open, the widest
        high and low, the larger volume (crypto: its volume alone), and the day stays provisional."""
        tz = market.timezone
        # a source stamps its day at local midnight (or at the session's open): search a day wider
        start, end = day_start_utc(first, tz) - DAY.span, day_start_utc(last, tz) + 2 * DAY.span
        # crypto: the stream's volume is increments of a rolling 24 h figure (a lower bound of what
        # traded), so the provider's daily bar alone says the day's volume
        rolling = market.always_open
        for d in self._find(self.store.prices, symbol, "1d", start, end):
            local = session_date(to_utc(d["ts"]), tz)
            if not first <= local <= last:
                continue
            day = day_key(local)
            session = regular_session(market, local)
            fetched = d.get("fetched_at")
            official = session is not None and fetched is not None and to_utc(fetched) >= session[1] + SETTLED
            source = {k: d[k] for k in ("open", "high", "low", "close", "volume")}
            intraday = rows.get(day)
            if official or intraday is None:
                rows[day] = source | {"n": 1, "provisional": not official}
            else:  # the source's daily bar knows the real open and the day's full volume
                intraday.update(
                    open=d["open"],
                    high=max(intraday["high"], d["high"]),
                    low=min(intraday["low"], d["low"]),
                    volume=d["volume"] if rolling else max(intraday["volume"], d["volume"]),
                )
        return rows

    def _save(self, symbol: str, level: str, rows: dict[datetime, dict]) -> int:
        return self._save_levels(symbol, {level: rows})

    def _save_levels(self, symbol: str, levels: dict[str, dict[datetime, dict]]) -> int:
        """Upsert every level's rows (interval name -> bucket start -> OHLCV) in one bulk write;
        return the number of bars written. Raises ``PyMongoError``."""
        ops = [
            UpdateOne(
                {"symbol": symbol, "interval": level, "ts": ts},
                {"$set": {"symbol": symbol, "interval": level, "ts": ts, **bar}},
                upsert=True,
            )
            for level, rows in levels.items()
            for ts, bar in rows.items()
        ]
        if ops:
            self.store.bars.bulk_write(ops, ordered=False)
        return len(ops)

    def snapshot(self) -> dict:
        """Counters (no figure needs more than one small read of ``bar_marks``):
        ``runs``, ``bars_written``, ``minutes_rebuilt`` (totals); ``last_run_minutes`` /
        ``last_run_bars`` (1m buckets rebuilt / bars written by the last run); ``max_run_minutes``
        (the most in one run since start) and ``recent_max_minutes`` (over the last 60 runs);
        ``pending_marks`` (marks waiting or claimed); ``lag_s``: seconds the oldest of them has
        waited (0.0 when none, None when MongoDB does not answer); ``every_s``; ``last_run`` (epoch
        s), ``last_duration_s``, ``deferred``, ``claims_taken_over``, ``last_error``."""
        pending: int | None
        lag: float | None
        try:
            marks = list(self.store.bar_marks.find({}, {"since": 1, "taken_since": 1}))
            pending = len(marks)
            oldest = [to_utc(m[k]) for m in marks for k in ("since", "taken_since") if m.get(k) is not None]
            lag = round(max(0.0, (utcnow() - min(oldest)).total_seconds()), 1) if oldest else 0.0
        except PyMongoError:
            pending = lag = None
        return {
            "runs": self.runs,
            "bars_written": self.bars_written,
            "minutes_rebuilt": self.minutes_rebuilt,
            "last_run_minutes": self.last_run_minutes,
            "last_run_bars": self.last_run_bars,
            "max_run_minutes": self.max_run_minutes,
            "recent_max_minutes": max(self.recent_minutes, default=0),
            "last_run": self.last_run,
            "last_duration_s": self.last_duration_s,
            "deferred": self.deferred,
            "claims_taken_over": self.claims_taken_over,
            "last_error": self.last_error,
            "pending_marks": pending,
            "lag_s": lag,
            "every_s": self.every_s,
        }
