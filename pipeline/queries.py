"""Read-only MongoDB queries behind the pages: bars at any interval, quotes, sparklines, backfills,
processes.

Guarantees:
- Nothing here writes. Every function takes a ``Store`` and returns plain Python / pandas values with
  aware UTC timestamps; server errors surface as ``pymongo.errors.PyMongoError`` for the page to
  turn into a sentence.
- Bars are read from the coarsest stored rollup level that serves the requested interval (``bars``
  holds 1m, 5m, 1h and 1d, see ``store``): 15m and 30m from 5m, 1wk from 1d. Every read matches
  one symbol and one level by equality plus a ``ts`` range (one query per symbol: on the embedded
  server ``$in`` turns into a collection scan), so it walks the business-key index; a coarser interval is
  re-aggregated *in MongoDB* (``$dateTrunc`` with ``binSize``), so neither raw ticks nor fine bars are
  ever pulled into pandas to be resampled.
- No series has more than ``max_points`` points (default 5,000): a request that would exceed it is
  served at the next wider interval, and ``BarsResult.note`` says so in a sentence.
- "Latest" lookups use short, widening time windows instead of unbounded sorts: on the embedded
  MongoDB-wire server an unbounded sort or count walks the whole collection.
"""

from __future__ import annotations

import csv
import io
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd

from .intervals import INTERVALS, LADDER
from .markets.calendars import day_key, market_for, session_date
from .models import iso, to_utc, utcnow

MAX_POINTS = 5000
BAR_COLUMNS = ["symbol", "interval", "ts", "open", "high", "low", "close", "volume"]


@dataclass
class BarsResult:
    """Bars of several symbols in one long frame (``BAR_COLUMNS``), sorted by symbol then ts."""

    frame: pd.DataFrame
    requested: str
    interval: str
    level: str
    start: datetime
    end: datetime
    note: str | None = None
    query_ms: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return self.frame.empty

    def of(self, symbol: str) -> pd.DataFrame:
        return self.frame[self.frame["symbol"] == symbol].reset_index(drop=True)


def points(interval: str, start: datetime, end: datetime) -> int:
    """How many bars of ``interval`` fit in [start, end) at most (the upper bound of a series)."""
    return max(1, math.ceil((end - start).total_seconds() / INTERVALS[interval].seconds))


def auto_interval(start: datetime, end: datetime, target: int = 1500) -> str:
    """The finest interval that is *stored as such* (1m, 5m, 1h, 1d; else 1wk) and keeps one series
    at or under ``target`` points: a direct read, no regrouping, so the cheapest good default."""
    for name in LADDER:
        spec = INTERVALS[name]
        if (spec.stored or name == LADDER[-1]) and points(name, start, end) <= target:
            return name
    return LADDER[-1]


def earliest(store, symbol: str, level: str, start: datetime, end: datetime) -> datetime | None:
    """The first stored bar of ``symbol`` at ``level`` in [start, end) (aware UTC), None if none:
    one indexed lookup (symbol, interval, ts ascending, limit 1)."""
    doc = store.bars.find_one(
        {"symbol": symbol, "interval": level, "ts": {"$gte": start, "$lt": end}},
        {"_id": 0, "ts": 1},
        sort=[("ts", 1)],
    )
    return to_utc(doc["ts"]) if doc else None


def auto_covering(
    store, symbols: Sequence[str], start: datetime, end: datetime, target: int = 1500
) -> tuple[str, str | None]:
    """The finest stored interval that keeps a series at or under ``target`` points *and* whose
    stored bars cover the whole range for every symbol: its first bar is within a day of the earliest
    bar of any level (a symbol added yesterday is covered by what it has). Finer levels fill in only
    the recent part of a range (1m for days, 1h for weeks, 1d for years), so the 1-hour bars of
    the last two days must not stand for a month. Returns (interval, note); the note says when finer
    data covers only part of the range, from when, and how to see it."""
    start, end = to_utc(start, "start"), to_utc(end, "end")
    candidates = [n for n in ("1m", "5m", "1h", "1d") if points(n, start, end) <= target]
    if not candidates:
        return "1wk", None
    firsts = {n: {s: earliest(store, s, n, start, end) for s in symbols} for n in candidates}
    overall: dict[str, datetime | None] = {}
    for s in symbols:
        found = [t for t in (f[s] for f in firsts.values()) if t is not None]
        overall[s] = min(found) if found else None

    def covers(name: str, symbol: str) -> bool:
        first, base = firsts[name][symbol], overall[symbol]
        return base is None or (first is not None and first <= base + timedelta(days=1))

    name = candidates[-1]
    for name in candidates:
        if all(covers(name, s) for s in symbols):
            break
    finer = [n for n in candidates[: candidates.index(name)] if any(firsts[n].values())]
    if not finer:
        return name, None
    best = finer[0]
    since = min(t for t in firsts[best].values() if t is not None)
    return name, (
        f"Bars of {INTERVALS[best].label} are stored only from {since:%Y-%m-%d %H:%M} UTC, part of this "
        f"range; showing bars of {INTERVALS[name].label}, which cover all of it. Pick "
        f"{INTERVALS[best].label} or narrow the range to see the finer bars."
    )


def plan_interval(
    requested: str, start: datetime, end: datetime, max_points: int = MAX_POINTS
) -> tuple[str, str | None]:
    """The interval to serve and, if it had to be widened, a sentence saying why."""
    if requested not in LADDER:
        raise ValueError(f"unknown interval {requested!r}; use one of {', '.join(LADDER)}")
    name = requested
    for name in LADDER[LADDER.index(requested) :]:
        if points(name, start, end) <= max_points:
            break
    if name == requested:
        return name, None
    return name, (
        f"Bars of {INTERVALS[requested].label} over {describe_span(end - start)} would be "
        f"{points(requested, start, end):,} points per symbol; showing bars of {INTERVALS[name].label} "
        f"({points(name, start, end):,} at most) to stay under {max_points:,}."
    )


def describe_span(span: timedelta) -> str:
    seconds = span.total_seconds()
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.0f} days"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.0f} hours"
    return f"{seconds / 60:.0f} minutes"


def bar_pipeline(symbol: str, interval: str, start: datetime, end: datetime) -> list[dict]:
    """The aggregation that serves one symbol's ``interval`` bars from its stored level."""
    spec = INTERVALS[interval]
    match = {"$match": {"symbol": symbol, "interval": spec.level, "ts": {"$gte": start, "$lt": end}}}
    fields = {"_id": 0, "ts": 1, "open": 1, "high": 1, "low": 1, "close": 1, "volume": 1}
    if spec.level == "1d":  # daily bars carry their exchange session date ("YYYY-MM-DD", see bars)
        fields["session"] = 1
    if spec.stored:
        return [match, {"$project": fields}, {"$sort": {"ts": 1}}]
    trunc = {"date": "$ts", "unit": spec.unit, "binSize": spec.count}
    if spec.unit == "week":
        trunc["startOfWeek"] = "monday"
    return [
        match,
        {"$sort": {"ts": 1}},
        {
            "$group": {
                "_id": {"$dateTrunc": trunc},
                "open": {"$first": "$open"},
                "high": {"$max": "$high"},
                "low": {"$min": "$low"},
                "close": {"$last": "$close"},
                "volume": {"$sum": "$volume"},
                **({"session": {"$first": "$session"}} if "session" in fields else {}),
            }
        },
        {"$project": {**fields, "ts": "$_id"}},
        {"$sort": {"ts": 1}},
    ]


def bars(
    store,
    symbols: Sequence[str],
    interval: str,
    start: datetime,
    end: datetime | None = None,
    max_points: int = MAX_POINTS,
) -> BarsResult:
    """OHLCV bars of ``symbols`` in [start, end) at ``interval`` (widened if it would exceed ``max_points``)."""
    end = end or utcnow()
    start, end = to_utc(start, "start"), to_utc(end, "end")
    used, note = plan_interval(interval, start, end, max_points)
    spec = INTERVALS[used]
    t0 = time.perf_counter()
    rows: list[dict] = []
    counts: dict[str, int] = {}
    for symbol in dict.fromkeys(symbols):
        got = list(store.bars.aggregate(bar_pipeline(symbol, used, start, end)))
        for r in got:
            r["symbol"] = symbol
        counts[symbol] = len(got)
        rows.extend(got)
    frame = pd.DataFrame(rows, columns=[c for c in BAR_COLUMNS if c != "interval"])
    frame.insert(1, "interval", used)
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    for col in ("open", "high", "low", "close", "volume"):
        frame[col] = frame[col].astype(float)
    if spec.level == "1d":
        frame["session"] = sessions(rows, frame["ts"])
    return BarsResult(
        frame=frame,
        requested=interval,
        interval=used,
        level=spec.level,
        start=start,
        end=end,
        note=note,
        query_ms=round((time.perf_counter() - t0) * 1000, 1),
        counts=counts,
    )


def sessions(rows: Sequence[dict], ts: pd.Series) -> list[str]:
    """The exchange session date ("YYYY-MM-DD") of each daily or weekly bar: the stored ``session``
    (a weekly bar: its first session), else the UTC date of ``ts`` (UTC midnight of the session date,
    the bar builder's key for bars stored before ``session`` was)."""
    return [r.get("session") or t.date().isoformat() for r, t in zip(rows, ts, strict=True)]


def recent_bars(
    store,
    symbols: Sequence[str],
    interval: str,
    window: timedelta,
    warmup: int = 0,
    max_points: int = MAX_POINTS,
    now: datetime | None = None,
) -> BarsResult:
    """The last ``window`` of bars plus ``warmup`` earlier bars (for indicators to settle)."""
    now = now or utcnow()
    used, _ = plan_interval(interval, now - window, now, max_points)
    start = now - window - warmup * INTERVALS[used].span
    result = bars(store, symbols, used, start, now + timedelta(minutes=1), max_points=max_points + warmup + 2)
    result.requested = interval
    if used != interval:
        result.note = plan_interval(interval, now - window, now, max_points)[1]
    return result


def to_csv(frame: pd.DataFrame) -> str:
    """The CSV of exactly these bars: ``symbol,interval,ts,open,high,low,close,volume``, ts in UTC
    ISO-8601; daily and weekly bars (a ``session`` column in ``frame``, see ``bars``) add a last column
    ``session``, the exchange session date (YYYY-MM-DD; a week's first session)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    dated = "session" in frame.columns
    writer.writerow([*BAR_COLUMNS, "session"] if dated else BAR_COLUMNS)
    for row in frame[[*BAR_COLUMNS, "session"] if dated else BAR_COLUMNS].to_dict("records"):
        ts = row["ts"]
        if not isinstance(ts, pd.Timestamp):
            raise TypeError(f"to_csv needs a datetime64 'ts' column, got a {type(ts).__name__} value")
        writer.writerow(
            [
                row["symbol"],
                row["interval"],
                iso(ts.to_pydatetime()),
                repr(float(row["open"])),
                repr(float(row["high"])),
                repr(float(row["low"])),
                repr(float(row["close"])),
                repr(float(row["volume"])),
                *([row["session"]] if dated else []),
            ]
        )
    return buf.getvalue()


# -- quotes (Home) ---------------------------------------------------------------------------------
QUOTE_COLUMNS = [
    "symbol",
    "last",
    "as_of",
    "age_s",
    "reference",
    "prev_close",
    "change",
    "change_pct",
    "day",
    "day_open",
    "day_high",
    "day_low",
    "volume",
]


def _latest(coll, symbol: str, interval: str, since: datetime) -> dict | None:
    rows = list(
        coll.aggregate(
            [
                {"$match": {"symbol": symbol, "interval": interval, "ts": {"$gte": since}}},
                {"$sort": {"ts": 1}},
                {
                    "$group": {
                        "_id": None,
                        "ts": {"$last": "$ts"},
                        "close": {"$last": "$close"},
                        "fetched_at": {"$last": "$fetched_at"},
                    }
                },
            ]
        )
    )
    return {**rows[0], "interval": interval} if rows else None


def last_prices(store, symbols: Sequence[str], now: datetime | None = None) -> dict[str, dict]:
    """Newest price per symbol with the time it is valid for: {symbol: {close, as_of, interval, ts}}
    (``interval`` "tick", "1m" or "1d": where it came from; ``ts`` its stored time).

    Looks back 2 minutes in ``prices`` (live ticks and source minute bars), then 20 minutes and then
    1 day of stored 1-minute bars, then 30 days of daily bars, asking each time only for the symbols still missing;
    then the newest tick/minute price or daily bar of any age (so an old price is shown stale with
    its date instead of "no data"). ``as_of`` is the time the data is from, never its fetch time
    for a tick.
    """
    now = now or utcnow()
    out: dict[str, dict] = {}
    missing = list(symbols)
    steps = [
        (store.prices, ("tick", "1m"), timedelta(minutes=2)),
        (store.bars, ("1m",), timedelta(minutes=20)),  # the embedded server walks the window: short first
        (store.bars, ("1m",), timedelta(days=1)),
        (store.bars, ("1d",), timedelta(days=30)),
    ]
    for coll, intervals, back in steps:
        for symbol in missing:
            found = [r for r in (_latest(coll, symbol, i, now - back) for i in intervals) if r]
            if not found:
                continue
            out[symbol] = _as_of(max(found, key=lambda r: to_utc(r["ts"])), now)
        missing = [s for s in missing if s not in out]
        if not missing:
            break
    for symbol in missing:  # nothing recent: the newest price of any age, so it shows as stale, dated
        found = [
            r
            for r in (
                store.prices.find_one(
                    {"symbol": symbol, "interval": {"$in": ["tick", "1m"]}}, sort=[("ts", -1)]
                ),
                store.bars.find_one({"symbol": symbol, "interval": "1d"}, sort=[("ts", -1)]),
            )
            if r
        ]
        if found:
            out[symbol] = _as_of(max(found, key=lambda r: to_utc(r["ts"])), now)
    return out


def _as_of(row: dict, now: datetime) -> dict:
    """{close, as_of, interval, ts} of one stored price: a tick is as old as its ``ts``; a bar as
    fresh as its fetch, and never fresher than its end or ``now``."""
    ts = to_utc(row["ts"])
    if row["interval"] == "tick":
        return {"close": float(row["close"]), "as_of": ts, "interval": "tick", "ts": ts}
    as_of = min(
        ts + INTERVALS[row["interval"]].span,
        to_utc(row["fetched_at"]) if row.get("fetched_at") else now,
        now,
    )
    return {"close": float(row["close"]), "as_of": as_of, "interval": row["interval"], "ts": ts}


def fx_rates(
    store, pairs: Sequence[str], days: int = 40, now: datetime | None = None
) -> dict[str, list[tuple[date, float]]]:
    """Daily closes of FX symbols (``GBPUSD=X`` ...) for the last ``days`` days, by session date,
    oldest first: ``{pair: [(date, close)]}`` from the stored 1d bars (``ts`` is UTC midnight of the
    session date). A pair with nothing stored maps to an empty list. One indexed query per pair."""
    now = now or utcnow()
    out: dict[str, list[tuple[date, float]]] = {}
    for pair in pairs:
        docs = store.bars.find(
            {"symbol": pair, "interval": "1d", "ts": {"$gte": now - timedelta(days=days)}},
            {"_id": 0, "ts": 1, "close": 1},
        ).sort("ts", 1)
        out[pair] = [(to_utc(d["ts"]).date(), float(d["close"])) for d in docs]
    return out


def quotes(store, symbols: Sequence[str], now: datetime | None = None) -> pd.DataFrame:
    """One row per symbol (``QUOTE_COLUMNS``): last price and its age, change since the previous
    close, the latest day's open/high/low/volume. Symbols with nothing stored have NaN values.

    Days are the stored daily bars (session dates at the symbol's exchange, see ``bars``). The change
    is against the close of the session before the last price's: the day before the latest stored
    day when the last price belongs to that day; the latest stored day itself when the last price
    is of a later date (a weekend tick of the simulator, a pre-market tick before the day's bar);
    with only one stored day and the price inside it, against that day's open (``reference`` says
    which). The day range grows with the last price only when the price belongs to that day.
    """
    now = now or utcnow()
    if not symbols:
        return pd.DataFrame(columns=QUOTE_COLUMNS)
    days: dict[str, list[dict]] = {s: [] for s in symbols}
    for s in symbols:
        for back in (timedelta(days=10), timedelta(days=60)):
            days[s] = list(
                store.bars.find(
                    {"symbol": s, "interval": "1d", "ts": {"$gte": now - back}},
                    {"_id": 0, "ts": 1, "open": 1, "high": 1, "low": 1, "close": 1, "volume": 1},
                ).sort("ts", 1)
            )
            if len(days[s]) >= 2:
                break
    last = last_prices(store, symbols, now)
    rows = []
    for s in symbols:
        row: dict[str, Any] = dict.fromkeys(QUOTE_COLUMNS)  # one frame row: mixed value types
        row["symbol"] = s
        if s in last:
            row["last"], row["as_of"] = last[s]["close"], last[s]["as_of"]
            row["age_s"] = max(0.0, (now - row["as_of"]).total_seconds())
        if days[s]:
            today = days[s][-1]
            row.update(
                day=to_utc(today["ts"]),
                day_open=today["open"],
                day_high=today["high"],
                day_low=today["low"],
                volume=today["volume"],
            )
            # a live price dated after the newest stored session (a weekend tick of the simulator, a
            # pre-market tick before the day's bar): its change is against that session's close
            # (dated by the price's own time, and only for an intraday price: a price taken from a daily
            # bar is that session's close, and a bar's as-of at UTC midnight after it falls on the next
            # local date east of UTC, which compared Tokyo's close with itself)
            price = last.get(s) or {}
            later = price.get("interval") in ("tick", "1m") and (
                day_key(session_date(price["ts"], market_for(s).timezone)) > row["day"]
            )
            if row["last"] is None:
                row["last"], row["as_of"] = today["close"], min(to_utc(today["ts"]) + timedelta(days=1), now)
                row["age_s"] = max(0.0, (now - row["as_of"]).total_seconds())
            if later:
                row["prev_close"], row["reference"] = today["close"], "previous close"
            else:
                row["day_high"] = max(row["day_high"], row["last"])
                row["day_low"] = min(row["day_low"], row["last"])
                if len(days[s]) >= 2:
                    row["prev_close"], row["reference"] = days[s][-2]["close"], "previous close"
                else:
                    row["prev_close"], row["reference"] = today["open"], "day open"
        if row["last"] is not None and row["prev_close"]:
            row["change"] = row["last"] - row["prev_close"]
            row["change_pct"] = row["change"] / row["prev_close"] * 100.0
        rows.append(row)
    frame = pd.DataFrame(rows, columns=QUOTE_COLUMNS)
    for col in (
        "last",
        "age_s",
        "prev_close",
        "change",
        "change_pct",
        "day_open",
        "day_high",
        "day_low",
        "volume",
    ):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
    return frame


def sparklines(
    store, symbols: Sequence[str], now: datetime | None = None, min_points: int = 12, max_points: int = 120
) -> dict[str, list[float]]:
    """Recent closes per symbol for a small trend line, oldest first.

    Tries 5 days of hourly bars, then 8 hours of 5-minute bars, then 2 hours of 1-minute bars, so a
    symbol added a minute ago still gets a line while an old one gets its week.
    """
    now = now or utcnow()
    out: dict[str, list[float]] = {s: [] for s in symbols}
    for level, back in (("1h", timedelta(days=5)), ("5m", timedelta(hours=8)), ("1m", timedelta(hours=2))):
        for symbol in [s for s in symbols if len(out[s]) < min_points]:
            docs = store.bars.find(
                {"symbol": symbol, "interval": level, "ts": {"$gte": now - back}},
                {"_id": 0, "ts": 1, "close": 1},
            ).sort("ts", 1)
            closes = [float(d["close"]) for d in docs][-max_points:]
            if len(closes) > len(out[symbol]):
                out[symbol] = closes
    return out


# -- pipeline state ----------------------------------------------------------------------------------
def processes(store, stale_s: float = 30.0, now: datetime | None = None) -> list[dict]:
    """Every pipeline process that wrote a heartbeat (``pipeline.heartbeat``), by id: its last
    snapshot with ``id`` (host:pid), ``at`` (UTC) and ``alive`` (beat within ``stale_s`` seconds)."""
    now = now or utcnow()
    out = []
    for doc in store.heartbeats.find().sort("_id", 1):
        doc["alive"] = (now - to_utc(doc["at"])) < timedelta(seconds=stale_s)
        doc["id"] = doc.pop("_id")
        out.append(doc)
    return out


def price_context(store, symbol: str, start: datetime, end: datetime, limit: int = 5000) -> pd.DataFrame:
    """Closes of ``symbol`` in [start, end) (``ts`` UTC, ``close``), oldest first: the stored 1-minute
    bars, or the ticks when there are fewer than 3 bars (a symbol added minutes ago)."""
    frame = bars(store, [symbol], "1m", start, end).frame
    if len(frame) >= 3:
        return frame[["ts", "close"]]
    rows = list(
        store.prices.find(
            {"symbol": symbol, "interval": "tick", "ts": {"$gte": start, "$lt": end}},
            {"_id": 0, "ts": 1, "close": 1},
        )
        .sort("ts", 1)
        .limit(limit)
    )
    return pd.DataFrame(rows, columns=["ts", "close"])


def backfills(store) -> list[dict]:
    """Every backfill record (one per symbol), newest request first."""
    docs = [{k: v for k, v in d.items() if k != "_id"} for d in store.backfills.find()]
    return sorted(docs, key=lambda d: d.get("requested_at") or datetime.min.replace(tzinfo=UTC), reverse=True)


def collection_details(store, sizes: bool = True) -> list[dict]:
    """Documents, size (MB, None without ``sizes``) and indexes per collection. Slow on big
    collections with the embedded server, which walks them and answers nothing else meanwhile:
    ``collStats`` took 0.9 s for 22,500 prices (3-4 s at 145,000, long enough for pages to call
    MongoDB frozen), ``estimated_document_count`` 0.25 s. Call it off the page's critical path, and
    on the embedded server only when asked and with ``sizes=False``."""
    out = []
    for name in sorted(store.db.list_collection_names()):
        row = {"collection": name, "documents": None, "size_mb": None, "indexes": ""}
        info = None
        if sizes:
            try:
                info = store.db.command("collStats", name)
            except Exception:  # collStats is optional on MongoDB-compatible servers
                info = None
        if info is not None:
            row["documents"] = int(info.get("count", 0))
            row["size_mb"] = round(float(info.get("size", 0)) / 2**20, 2)
            row["indexes"] = ", ".join(sorted(info.get("indexSizes", {})))
        else:
            row["documents"] = store.db[name].estimated_document_count()
            row["indexes"] = ", ".join(sorted(ix["name"] for ix in store.db[name].list_indexes()))
        out.append(row)
    return out


def latest_forecast(store, symbol: str, settings: str) -> dict | None:
    """The newest stored forecast document of ``symbol`` computed with model settings ``settings``
    (``pipeline.forecast.backtest.settings_hash``), or None; see ``pipeline.forecast.job`` for its
    fields. ``computed_at`` is aware UTC."""
    docs = list(
        store.forecasts.find({"symbol": symbol, "settings": settings}, {"_id": 0}).sort("as_of", -1).limit(1)
    )
    if not docs:
        return None
    doc = docs[0]
    if doc.get("computed_at") is not None:
        doc["computed_at"] = to_utc(doc["computed_at"])
    return doc


def forecast_backtest(store, symbol: str, as_of: str, settings: str) -> pd.DataFrame:
    """The backtest rows of one forecast (one per model and horizon; columns as
    ``pipeline.forecast.backtest.backtest`` returns them), sorted by horizon then MASE."""
    rows = list(
        store.forecast_backtests.find(
            {"symbol": symbol, "as_of": as_of, "settings": settings}, {"_id": 0, "symbol": 0, "settings": 0}
        )
    )
    frame = pd.DataFrame(rows)
    if not frame.empty:
        frame = frame.sort_values(["horizon", "mase"], kind="stable").reset_index(drop=True)
    return frame


def daily_summary(store, symbols: Sequence[str]) -> dict[str, dict]:
    """Per symbol, over *every* stored daily bar, aggregated in MongoDB (one indexed query per
    symbol, nothing but the answer leaves the server): ``{symbol: {sessions, first, last, high,
    high_at}}`` with ``first``/``last``/``high_at`` aware UTC session keys and ``high`` the highest
    daily close (the all-time high in stored data). A symbol with no daily bars is absent."""
    out: dict[str, dict] = {}
    for symbol in dict.fromkeys(symbols):
        rows = list(
            store.bars.aggregate(
                [
                    {"$match": {"symbol": symbol, "interval": "1d"}},
                    {"$sort": {"close": -1}},
                    {
                        "$group": {
                            "_id": None,
                            "sessions": {"$sum": 1},
                            "first": {"$min": "$ts"},
                            "last": {"$max": "$ts"},
                            "high": {"$first": "$close"},
                            "high_at": {"$first": "$ts"},
                        }
                    },
                ]
            )
        )
        if rows:
            r = rows[0]
            out[symbol] = {
                "sessions": int(r["sessions"]),
                "first": to_utc(r["first"]),
                "last": to_utc(r["last"]),
                "high": float(r["high"]),
                "high_at": to_utc(r["high_at"]),
            }
    return out


def repairs(store, symbols: Sequence[str], start: datetime, end: datetime, limit: int = 500) -> list[dict]:
    """What the sources repaired in the providers' answers (``Store.record_repairs``) for ``symbols``
    with ``ts`` in [start, end) (aware), oldest first: dicts with symbol, interval, ts (UTC), kind,
    factor, reason, before and after (open/high/low/close as quoted), found_at."""
    rows = list(
        store.repairs.find(
            {"symbol": {"$in": list(symbols)}, "ts": {"$gte": start, "$lt": end}},
            {"_id": 0, "fields": 0, "source": 0},
        )
        .sort("ts", 1)
        .limit(limit)
    )
    for row in rows:
        row["ts"] = to_utc(row["ts"])
    return rows


def corporate_actions(store, symbols: Sequence[str]) -> list[dict]:
    """The stored splits and dividends of ``symbols`` (``pipeline.corporate_actions``), oldest
    ex-date first: symbol, kind, ex_date ("YYYY-MM-DD"), ratio or amount, seen_at, applied_at."""
    return list(
        store.corporate_actions.find({"symbol": {"$in": list(symbols)}}, {"_id": 0}).sort("ex_date", 1)
    )
