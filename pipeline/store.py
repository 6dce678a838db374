"""MongoDB storage: price events, the watchlist, backfill progress, heartbeats and alerts.

Guarantees:
- Every collection is named here and nowhere else: ``Store`` holds one attribute per collection
  (``prices``, ``bars``, ``bar_marks``, ``watchlist``, ``backfills``, ``heartbeats``, ``alert_rules``,
  ``alert_state``, ``alert_events``, ``forecasts``, ``forecast_backtests``, ``repairs``, ``corporate_actions``). The parts that own a collection's documents receive it from the
  Store (``Watchlist``, ``Heartbeat``, ``BarBuilder``, the alerts package); the producer records
  backfill progress through ``request_backfill``/``update_backfill``; pages and health read through
  ``pipeline.queries``.
- ``prices`` holds every valid event once, keyed by its business key (symbol, interval, ts) under a
  unique index. ``write_events`` stores a batch with one unordered ``insert_many``; a key that already
  exists is either a replay (no effect, counted as a duplicate) or a revision, which replaces the
  stored document atomically only when its ``fetched_at`` is newer, never the other way round.
- In the same call it records which bar buckets the batch touched (``bar_marks``), so the bar builder
  (``pipeline.bars``) recomputes them even if this process dies right after the write. A mark is one
  document per (symbol, kind, bucket): intraday prices per UTC day, daily bars per year
  (``mark_bucket``), holding the pending range ``lo``..``hi`` and ``since`` (when its oldest pending
  part was marked), so a live tick only ever widens today's mark, never an old backfilled day's.
- Every read returns plain Python/pandas values with aware UTC timestamps.
- Transient server errors surface as ``pymongo.errors.PyMongoError`` (the consumer backs off on them);
  nothing here swallows a failed write, and every step is idempotent so a batch can be retried whole.

[embedded-db workaround] Why not one upsert per event: on the embedded server an update whose filter carries the revision
guard (``fetched_at < new``) cannot use the unique index and scans; inserting first and guarding only
the (rare) existing keys with an index-friendly pipeline update is ~20x faster (measured here).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pymongo
from pymongo import ASCENDING, UpdateOne
from pymongo.errors import BulkWriteError

from .models import PriceEvent, to_utc, utcnow

log = logging.getLogger(__name__)

DUPLICATE_KEY = 11000
#: The price intervals (in ``prices``) the 1m bars are built from: ticks and a source's 1m bars. A write
#: of one marks the "intraday" roll-up (1m -> 5m -> 1h -> 1d).
MINUTE_INPUTS = ("tick", "1m")
#: The price interval that feeds the 1d bars directly: a source's daily bars (marks "daily").
DAY_INPUTS = ("1d",)


@dataclass
class WriteResult:
    stored: int = 0  # new events and newer revisions written
    duplicates: int = 0  # replays and stale revisions, ignored by design


def connect(
    uri: str, timeout_s: float = 5.0, socket_timeout_s: float | None = None, operation_timeout: bool = False
) -> pymongo.MongoClient:
    """A client that never waits forever on a dead or frozen server; options in the URI win.

    ``timeout_s`` (seconds) bounds server selection and connecting; ``socket_timeout_s`` (seconds)
    bounds each wait for a reply on an open connection (a frozen server keeps the connection open and
    answers nothing: without it, the default, a call waits forever; a reply that comes after it makes
    pymongo retry, so keep it well above the slowest legitimate call). With
    ``operation_timeout`` the whole operation, retries and cursor included, must finish within
    ``timeout_s`` (pymongo's ``timeoutMS``): that is the pages' client, where a retried read must not
    wait three times the timeout. Timeouts raise ``pymongo.errors.PyMongoError`` subclasses
    (``NetworkTimeout``, ``ServerSelectionTimeoutError``, ``ExecutionTimeout``)."""
    options: dict[str, Any] = {"tz_aware": True, "appname": "stockmon"}  # MongoClient keyword options
    wanted = {"serverSelectionTimeoutMS": timeout_s, "connectTimeoutMS": timeout_s}
    if socket_timeout_s is not None:
        wanted["socketTimeoutMS"] = socket_timeout_s
    if operation_timeout:
        wanted["timeoutMS"] = timeout_s
    query = uri.partition("?")[2]
    given = {item.partition("=")[0].strip().lower() for item in query.replace(";", "&").split("&")}
    for name, seconds in wanted.items():
        if name.lower() not in given:
            options[name] = int(seconds * 1000)
    return pymongo.MongoClient(uri, **options)


def key_filter(doc: dict) -> dict:
    return {"symbol": doc["symbol"], "interval": doc["interval"], "ts": doc["ts"]}


def revision_update(doc: dict) -> UpdateOne:
    """Replace the stored document with ``doc`` only if ``doc`` is newer (atomic, by key)."""
    newer = {"$lt": [{"$ifNull": ["$fetched_at", None]}, doc["fetched_at"]]}
    return UpdateOne(key_filter(doc), [{"$replaceWith": {"$cond": [newer, {"$literal": doc}, "$$ROOT"]}}])


def mark_bucket(kind: str, ts: datetime) -> str:
    """The ``bar_marks`` bucket of a price at ``ts`` (aware): its UTC day (``"2026-11-20"``) for
    intraday prices, its UTC year (``"2026"``) for daily bars. Sorts in time order as text."""
    ts = to_utc(ts)
    return ts.date().isoformat() if kind == "intraday" else f"{ts.year:04d}"


class Store:
    """All MongoDB access of the product. One instance per process; thread-safe (pymongo is)."""

    def __init__(self, client: pymongo.MongoClient, db: str = "stockmon"):
        self.client = client
        self.db = client[db]
        self.prices = self.db["prices"]
        self.bars = self.db["bars"]
        self.bar_marks = self.db["bar_marks"]
        self.watchlist = self.db["watchlist"]
        self.backfills = self.db["backfills"]
        self.heartbeats = self.db["heartbeats"]
        self.alert_rules = self.db["alert_rules"]
        self.alert_state = self.db["alert_state"]
        self.alert_events = self.db["alert_events"]
        self.forecasts = self.db["forecasts"]  # one per (symbol, as_of, settings), pipeline.forecast.job
        self.forecast_backtests = self.db[
            "forecast_backtests"
        ]  # per (symbol, model, horizon, as_of, settings)
        self.repairs = self.db["repairs"]  # one per (symbol, interval, ts, kind), pipeline.repairs
        self.corporate_actions = self.db[
            "corporate_actions"
        ]  # per (symbol, kind, ex_date), pipeline.corporate_actions

    @classmethod
    def from_uri(
        cls,
        uri: str,
        db: str = "stockmon",
        timeout_s: float = 5.0,
        socket_timeout_s: float | None = None,
        operation_timeout: bool = False,
    ) -> Store:
        """A store on its own client (see ``connect`` for the timeouts, in seconds)."""
        return cls(connect(uri, timeout_s, socket_timeout_s, operation_timeout), db)

    def close(self) -> None:
        self.client.close()

    # -- schema -----------------------------------------------------------------------------------
    def ensure_indexes(self) -> list[str]:
        """Create the indexes the contracts rely on; safe to call any number of times."""
        key = [("symbol", ASCENDING), ("interval", ASCENDING), ("ts", ASCENDING)]
        return [
            self.prices.create_index(key, unique=True, name="business_key"),
            self.bars.create_index(key, unique=True, name="business_key"),
            self.repairs.create_index([*key, ("kind", ASCENDING)], unique=True, name="repair_key"),
            self.corporate_actions.create_index(
                [("symbol", ASCENDING), ("kind", ASCENDING), ("ex_date", ASCENDING)],
                unique=True,
                name="action_key",
            ),
            *self.ensure_forecast_indexes(),
        ]

    def record_repairs(self, repairs: Sequence[dict]) -> int:
        """Store what a source repaired in a provider's answer (``FetchResult.repairs``: symbol,
        interval, ts, kind, factor, fields, reason, before, after, currency, source, found_at), one
        document per (symbol, interval, ts, kind): a later repair of the same bar replaces it.
        Returns how many were written; raises ``PyMongoError`` like every write here."""
        if not repairs:
            return 0
        ops = [
            UpdateOne(
                {k: r[k] for k in ("symbol", "interval", "ts", "kind")},
                {"$set": dict(r)},
                upsert=True,
            )
            for r in repairs
        ]
        self.repairs.bulk_write(ops, ordered=False)
        return len(ops)

    def ensure_forecast_indexes(self) -> list[str]:
        """Unique keys of the forecast results (issue 14): a rerun for the same as-of and settings
        replaces its documents instead of adding more."""
        key = [("symbol", ASCENDING), ("as_of", ASCENDING), ("settings", ASCENDING)]
        return [
            self.forecasts.create_index(key, unique=True, name="forecast_key"),
            self.forecast_backtests.create_index(
                [*key, ("model", ASCENDING), ("horizon", ASCENDING)], unique=True, name="backtest_key"
            ),
        ]

    def write_forecast(self, forecast: dict, rows: Sequence[dict]) -> None:
        """Store one symbol's forecast document and its backtest rows (each carrying ``symbol``,
        ``as_of``, ``settings``; rows also ``model`` and ``horizon``), replacing any earlier run with
        the same key. The rows go first: a page that finds the forecast finds its backtest too.
        Raises ``PyMongoError``."""
        ops = [
            pymongo.ReplaceOne(
                {k: r[k] for k in ("symbol", "as_of", "settings", "model", "horizon")}, dict(r), upsert=True
            )
            for r in rows
        ]
        if ops:
            self.forecast_backtests.bulk_write(ops, ordered=False)
        key = {k: forecast[k] for k in ("symbol", "as_of", "settings")}
        self.forecasts.replace_one(key, dict(forecast), upsert=True)

    def ping(self, timeout_s: float | None = None) -> str:
        """The server's version. Raises ``PyMongoError`` if it does not answer within ``timeout_s``
        (default: the client's server-selection timeout)."""
        with pymongo.timeout(timeout_s) if timeout_s is not None else nullcontext():
            self.client.admin.command("ping")  # one deadline for the whole ping: a page must not hang
            return self.client.server_info().get("version", "unknown")

    # -- writes -----------------------------------------------------------------------------------
    def write_events(self, events: Sequence[PriceEvent]) -> WriteResult:
        """Store a batch and mark the bar buckets it touched. Raises ``PyMongoError`` on server errors."""
        result = WriteResult()
        latest: dict[tuple, PriceEvent] = {}
        for event in events:  # within one batch keep only the newest revision of each key
            old = latest.get(event.key)
            if old is None or event.fetched_at > old.fetched_at:
                latest[event.key] = event
        result.duplicates += len(events) - len(latest)
        if not latest:
            return result
        docs = [e.to_document() for e in latest.values()]
        existing: list[dict] = []
        try:
            inserted = len(self.prices.insert_many([dict(d) for d in docs], ordered=False).inserted_ids)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise
            inserted = exc.details.get("nInserted", 0)
            existing = [docs[e["index"]] for e in errors]
        result.stored += inserted
        if existing:
            revised = self.prices.bulk_write(
                [revision_update(d) for d in existing], ordered=False
            ).modified_count
            result.stored += revised
            result.duplicates += len(existing) - revised
        self.mark_bars(latest.values())
        return result

    def mark_bars(self, events) -> None:
        """Record, per symbol, kind and bucket (``mark_bucket``), the time range whose bars must be
        recomputed: ``$min lo`` / ``$max hi`` widen the pending range, ``$inc seq`` tells a builder
        that the mark changed since it read it, ``$min since`` keeps when the pending part was first
        marked (UTC; the builder's lag). Raises ``PyMongoError``."""
        ranges: dict[tuple[str, str, str], list[datetime]] = {}
        for e in events:
            kind = (
                "intraday" if e.interval in MINUTE_INPUTS else "daily" if e.interval in DAY_INPUTS else None
            )
            if kind is None:
                continue
            lo_hi = ranges.setdefault((e.symbol, kind, mark_bucket(kind, e.ts)), [e.ts, e.ts])
            lo_hi[0], lo_hi[1] = min(lo_hi[0], e.ts), max(lo_hi[1], e.ts)
        if not ranges:
            return
        now = utcnow()
        ops = [
            UpdateOne(
                {"_id": f"{symbol}|{kind}|{bucket}"},
                {
                    "$min": {"lo": lo, "since": now},
                    "$max": {"hi": hi},
                    "$inc": {"seq": 1},
                    "$set": {"symbol": symbol, "kind": kind, "bucket": bucket, "marked_at": now},
                },
                upsert=True,
            )
            for (symbol, kind, bucket), (lo, hi) in ranges.items()
        ]
        self.bar_marks.bulk_write(ops, ordered=False)

    def request_backfill(self, symbol: str, source: str) -> None:
        """(Re)start ``symbol``'s backfill record (one per symbol, ``_id`` = symbol) as queued."""
        self.backfills.update_one(
            {"_id": symbol},
            {
                "$set": {
                    "symbol": symbol,
                    "source": source,
                    "status": "queued",
                    "done": 0,
                    "total": 0,
                    "published": 0,
                    "error": None,
                    "requested_at": utcnow(),
                }
            },
            upsert=True,
        )

    def update_backfill(self, symbol: str, **fields) -> None:
        """Set fields (status, done, total, published, error, started_at, finished_at) of an existing
        backfill record; nothing happens if ``symbol`` has none."""
        self.backfills.update_one({"_id": symbol}, {"$set": fields})

    # -- reads ------------------------------------------------------------------------------------
    def count_by_symbol(self) -> dict[str, int]:
        rows = self.prices.aggregate([{"$group": {"_id": "$symbol", "n": {"$sum": 1}}}])
        return {r["_id"]: r["n"] for r in rows}

    def last_prices(self, symbols: Sequence[str]) -> dict[str, dict]:
        """Newest stored tick or 1m bar per symbol: {symbol: document} (index-friendly lookups)."""
        out = {}
        for symbol in symbols:
            best = None
            for interval in MINUTE_INPUTS + DAY_INPUTS:
                doc = self.prices.find_one(
                    {"symbol": symbol, "interval": interval}, {"_id": 0}, sort=[("ts", -1)]
                )
                if doc and (best is None or to_utc(doc["ts"]) > to_utc(best["ts"])):
                    best = doc
            if best is not None:
                best["ts"] = to_utc(best["ts"])
                out[symbol] = best
        return out

    def last_closes(self, symbols: Sequence[str]) -> dict[str, float]:
        return {s: d["close"] for s, d in self.last_prices(symbols).items()}

    def bars_frame(
        self,
        symbols: Sequence[str],
        level: str,
        start: datetime,
        end: datetime | None = None,
        limit: int = 200_000,
    ):
        """Stored bars of one level as a DataFrame (UTC ``ts``), sorted by symbol then ts."""
        import pandas as pd

        frames = []
        for symbol in symbols:  # one equality query per symbol keeps the unique index in use
            query: dict[str, Any] = {"symbol": symbol, "interval": level, "ts": {"$gte": start}}
            if end is not None:
                query["ts"]["$lt"] = end
            rows = list(
                self.bars.find(
                    query,
                    {"_id": 0, "symbol": 1, "ts": 1, "open": 1, "high": 1, "low": 1, "close": 1, "volume": 1},
                )
                .sort("ts", 1)
                .limit(limit)
            )
            frames.append(
                pd.DataFrame(rows, columns=["symbol", "ts", "open", "high", "low", "close", "volume"])
            )
        frame = (
            pd.concat(frames, ignore_index=True)
            if frames
            else pd.DataFrame(columns=["symbol", "ts", "open", "high", "low", "close", "volume"])
        )
        if not frame.empty:
            frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
        return frame
