"""How far a symbol's 1-minute bars trail its stored ticks, read from MongoDB (tests and bench)."""

from __future__ import annotations

import math
import time

from pymongo.errors import PyMongoError

from pipeline.intervals import INTERVALS
from pipeline.models import to_utc

MINUTE = INTERVALS["1m"]


def bar_lag_s(store, symbol: str) -> float:
    """Seconds between ``symbol``'s newest stored tick and the newest tick its 1m bars include:
    0.0 when the bar of the newest tick's minute holds every tick of that minute so far, ``inf`` when
    no 1m bar exists yet (or no tick). A bar's ``n`` counts the ticks it merged (+1 for the source's
    own 1m bar of that minute), which tells how many of the minute's ticks it has seen."""
    newest = store.prices.find_one({"symbol": symbol, "interval": "tick"}, {"ts": 1}, sort=[("ts", -1)])
    if newest is None:
        return math.inf
    ts = to_utc(newest["ts"])
    minute = MINUTE.floor(ts)
    ticks = [
        to_utc(d["ts"])
        for d in store.prices.find(
            {"symbol": symbol, "interval": "tick", "ts": {"$gte": minute, "$lte": ts}}, {"ts": 1}
        ).sort("ts", 1)
    ]
    bar = store.bars.find_one({"symbol": symbol, "interval": "1m", "ts": minute})
    if bar is not None:
        source = store.prices.count_documents({"symbol": symbol, "interval": "1m", "ts": minute}, limit=1)
        held = int(bar.get("n", 0)) - source
        if held >= len(ticks):
            return 0.0
        if held >= 1:
            return (ts - ticks[held - 1]).total_seconds()
    older = store.bars.find_one(
        {"symbol": symbol, "interval": "1m", "ts": {"$lt": minute}}, {"ts": 1}, sort=[("ts", -1)]
    )
    if older is None:
        return math.inf
    # the older bar is taken as complete: it holds at most the ticks before its minute's end
    before = store.prices.find_one(
        {"symbol": symbol, "interval": "tick", "ts": {"$lt": to_utc(older["ts"]) + MINUTE.span}},
        {"ts": 1},
        sort=[("ts", -1)],
    )
    covered = to_utc(before["ts"]) if before else to_utc(older["ts"])
    return (ts - covered).total_seconds()


def bar_lags(store, symbols) -> dict[str, float]:
    return {s: bar_lag_s(store, s) for s in symbols}


def backfills_done(store, symbols) -> bool:
    docs = {d["_id"]: d.get("status") for d in store.backfills.find({}, {"status": 1})}
    return all(docs.get(s) == "done" for s in symbols)


def wait_bars_current(store, symbols, within_s: float, timeout_s: float) -> tuple[float, dict[str, float]]:
    """Wait until every backfill of ``symbols`` is done, no mark of an older day waits and every
    symbol's 1m bars trail its newest tick by at most ``within_s``; return (seconds waited, lags).
    A read that fails (a timeout on a loaded machine) counts as 'not yet'. AssertionError with the
    last lags after ``timeout_s``."""
    t0 = time.monotonic()
    lags: dict[str, float] = {}
    while time.monotonic() - t0 < timeout_s:
        try:
            if backfills_done(store, symbols) and not old_marks(store):
                lags = bar_lags(store, symbols)
                if all(v <= within_s for v in lags.values()):
                    return time.monotonic() - t0, lags
        except PyMongoError as exc:
            print(f"wait_bars_current: a read failed ({exc.__class__.__name__}); trying again")
        time.sleep(0.5)
    raise AssertionError(
        f"bars not current after {timeout_s}s: lags {lags}, backfills done {backfills_done(store, symbols)}, "
        f"older marks waiting {old_marks(store)}"
    )


def old_marks(store) -> int:
    """Marks of any bucket but today's (UTC): history still to be (re)built."""
    from pipeline.models import utcnow

    today = utcnow().date().isoformat()
    return sum(1 for m in store.bar_marks.find({}, {"bucket": 1}) if m.get("bucket") != today)
