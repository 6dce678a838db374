"""MongoDB storage: price events, rolled-up OHLCV bars, the watchlist and backfill progress.

Guarantees:
- ``prices`` holds every valid event once, keyed by its business key (symbol, interval, ts) under a
  unique index. ``write_events`` is one unordered bulk upsert per batch: replaying an event is a
  no-op (counted as a duplicate), and a revision of a bar replaces the stored one only when its
  ``fetched_at`` is newer, never the other way round.
- ``bars`` holds 1m, 5m, 1h and 1d bars that are *recomputed* from the level below (1m from the stored
  ticks and source bars of that minute, 5m from 1m, 1h from 5m, 1d from 1h) for every bucket a batch
  touched. Recomputing instead of incrementing makes the rollup idempotent under redelivery.
- Every read returns plain Python/pandas values with aware UTC timestamps.
- Transient server errors surface as ``pymongo.errors.PyMongoError`` (the consumer backs off on them);
  nothing here swallows a failed write.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Iterable, Sequence

import pymongo
from pymongo import ASCENDING, UpdateOne
from pymongo.errors import BulkWriteError

from .models import PriceEvent, to_utc, utcnow

log = logging.getLogger(__name__)

DUPLICATE_KEY = 11000
#: rollup levels: name -> (bucket unit for $dateTrunc, bin size, level it is computed from)
ROLLUPS = {"1m": ("minute", 1, None), "5m": ("minute", 5, "1m"), "1h": ("hour", 1, "5m"), "1d": ("day", 1, "1h")}
ROLLUP_SPAN = {"1m": timedelta(minutes=1), "5m": timedelta(minutes=5), "1h": timedelta(hours=1),
               "1d": timedelta(days=1)}


@dataclass
class WriteResult:
    stored: int = 0       # new or newer revisions written
    duplicates: int = 0   # replays and stale revisions, ignored by design
    bars: int = 0         # rollup bars rewritten

    def __iadd__(self, other: "WriteResult") -> "WriteResult":
        self.stored += other.stored
        self.duplicates += other.duplicates
        self.bars += other.bars
        return self


def connect(uri: str, timeout_s: float = 5.0) -> pymongo.MongoClient:
    """A client with short timeouts (a page must not hang on a dead server); URI options win."""
    options = {"tz_aware": True, "appname": "stockmon"}
    lowered = uri.lower()
    for name in ("serverSelectionTimeoutMS", "connectTimeoutMS"):
        if name.lower() not in lowered:
            options[name] = int(timeout_s * 1000)
    return pymongo.MongoClient(uri, **options)


def floor_time(ts: datetime, level: str) -> datetime:
    ts = ts.astimezone(timezone.utc)
    if level == "1m":
        return ts.replace(second=0, microsecond=0)
    if level == "5m":
        return ts.replace(minute=ts.minute - ts.minute % 5, second=0, microsecond=0)
    if level == "1h":
        return ts.replace(minute=0, second=0, microsecond=0)
    return ts.replace(hour=0, minute=0, second=0, microsecond=0)


class Store:
    """All MongoDB access of the product. One instance per process; thread-safe (pymongo is)."""

    def __init__(self, client: pymongo.MongoClient, db: str = "stockmon"):
        self.client = client
        self.db = client[db]
        self.prices = self.db["prices"]
        self.bars = self.db["bars"]
        self.watchlist = self.db["watchlist"]
        self.backfills = self.db["backfills"]
        self.heartbeats = self.db["heartbeats"]

    @classmethod
    def from_uri(cls, uri: str, db: str = "stockmon", timeout_s: float = 5.0) -> "Store":
        return cls(connect(uri, timeout_s), db)

    def close(self) -> None:
        self.client.close()

    # -- schema -----------------------------------------------------------------------------------
    def ensure_indexes(self) -> list[str]:
        """Create the indexes the contracts rely on; safe to call any number of times."""
        return [
            self.prices.create_index([("symbol", ASCENDING), ("interval", ASCENDING), ("ts", ASCENDING)],
                                     unique=True, name="business_key"),
            self.bars.create_index([("symbol", ASCENDING), ("interval", ASCENDING), ("ts", ASCENDING)],
                                   unique=True, name="business_key"),
        ]

    def ping(self) -> str:
        self.client.admin.command("ping")
        return self.client.server_info().get("version", "unknown")

    # -- writes -----------------------------------------------------------------------------------
    def write_events(self, events: Sequence[PriceEvent], rollup: bool = True) -> WriteResult:
        """Store a batch (one bulk call) and recompute the bars it touched.

        Raises ``PyMongoError`` for anything but duplicate keys, so the caller can retry the whole
        batch: every step here is idempotent.
        """
        result = WriteResult()
        latest: dict[tuple, PriceEvent] = {}
        for event in events:  # within one batch keep only the newest revision of each key
            old = latest.get(event.key)
            if old is None or event.fetched_at > old.fetched_at:
                latest[event.key] = event
        result.duplicates += len(events) - len(latest)
        if not latest:
            return result
        ops = [
            UpdateOne({"symbol": e.symbol, "interval": e.interval, "ts": e.ts, "fetched_at": {"$lt": e.fetched_at}},
                      {"$set": e.to_document()}, upsert=True)
            for e in latest.values()
        ]
        try:
            bulk = self.prices.bulk_write(ops, ordered=False)
            details = bulk.bulk_api_result
        except BulkWriteError as exc:
            details = exc.details
            other = [e for e in details.get("writeErrors", []) if e.get("code") != DUPLICATE_KEY]
            if other:
                raise
        dup_errors = sum(1 for e in details.get("writeErrors", []) if e.get("code") == DUPLICATE_KEY)
        result.stored += details.get("nUpserted", 0) + details.get("nModified", 0)
        result.duplicates += dup_errors + (details.get("nMatched", 0) - details.get("nModified", 0))
        if rollup:
            result.bars += self.rollup(latest.values())
        return result

    def rollup(self, events: Iterable[PriceEvent]) -> int:
        """Recompute every bar bucket (1m -> 5m -> 1h -> 1d) that ``events`` touched."""
        touched: dict[str, set[datetime]] = defaultdict(set)
        days: dict[str, set[datetime]] = defaultdict(set)  # days that got a source '1d' bar
        for e in events:
            if e.interval in ("tick", "1m"):
                touched[e.symbol].add(floor_time(e.ts, "1m"))
            elif e.interval == "1d":
                days[e.symbol].add(floor_time(e.ts, "1d"))
        written = 0
        for level in ROLLUPS:
            if level == "1d":
                for symbol, ts in days.items():
                    touched.setdefault(symbol, set()).update(ts)
            if touched:
                written += self._upsert_bars(self._compute_level(level, touched))
            nxt = _next_level(level)
            touched = {sym: {floor_time(t, nxt) for t in ts} for sym, ts in touched.items()} if nxt else {}
        return written

    def _compute_level(self, level: str, touched: dict[str, set[datetime]]) -> list[dict]:
        unit, size, below = ROLLUPS[level]
        span = ROLLUP_SPAN[level]
        ors = []
        for symbol, buckets in touched.items():
            ors.append({"symbol": symbol, "ts": {"$gte": min(buckets), "$lt": max(buckets) + span}})
        if below is None:
            coll, intervals = self.prices, ["tick", "1m"]
        else:
            coll, intervals = self.bars, [below]
        pipeline = [
            {"$match": {"$or": ors, "interval": {"$in": intervals}}},
            {"$sort": {"ts": 1}},
            {"$group": {
                "_id": {"symbol": "$symbol",
                        "ts": {"$dateTrunc": {"date": "$ts", "unit": unit, "binSize": size}}},
                "open": {"$first": "$open"}, "high": {"$max": "$high"}, "low": {"$min": "$low"},
                "close": {"$last": "$close"},
                "tick_volume": {"$sum": {"$cond": [{"$eq": ["$interval", "tick"]}, "$volume", 0]}},
                "bar_volume": {"$sum": {"$cond": [{"$eq": ["$interval", "tick"]}, 0, "$volume"]}},
                "has_bar": {"$max": {"$cond": [{"$eq": ["$interval", "tick"]}, 0, 1]}},
                "bar": {"$last": {"$cond": [{"$eq": ["$interval", "tick"]}, None,
                                            {"o": "$open", "h": "$high", "l": "$low", "c": "$close",
                                             "v": "$volume"}]}},
                "n": {"$sum": 1},
            }},
        ]
        docs = []
        for row in self.prices.database[coll.name].aggregate(pipeline):
            key = row["_id"]
            ts = to_utc(key["ts"])
            if ts not in touched.get(key["symbol"], ()):
                continue  # a neighbour bucket inside the $gte/$lt span: untouched, leave it
            doc = {"symbol": key["symbol"], "interval": level, "ts": ts, "open": row["open"],
                   "high": row["high"], "low": row["low"], "close": row["close"], "n": row["n"]}
            if below is None and row["has_bar"] and row.get("bar"):
                # the minute has a source bar: it is authoritative (volume included); ticks inside the
                # minute can only widen the range
                bar = row["bar"]
                doc.update(open=bar["o"], close=row["close"], high=max(bar["h"], row["high"]),
                           low=min(bar["l"], row["low"]), volume=bar["v"])
            else:
                doc["volume"] = row["tick_volume"] + row["bar_volume"]
            docs.append(doc)
        if level == "1d":
            docs = self._merge_source_days(docs, touched)
        return docs

    def _merge_source_days(self, docs: list[dict], touched: dict[str, set[datetime]]) -> list[dict]:
        """A source's daily bar is authoritative for open and volume; intraday bars can widen it."""
        ors = [{"symbol": s, "ts": {"$gte": min(d), "$lt": max(d) + ROLLUP_SPAN["1d"]}} for s, d in touched.items()]
        source_days = {}
        for e in self.prices.find({"$or": ors, "interval": "1d"}):
            source_days[(e["symbol"], floor_time(to_utc(e["ts"]), "1d"))] = e
        by_key = {(d["symbol"], d["ts"]): d for d in docs}
        for key, e in source_days.items():
            if key[1] not in touched.get(key[0], ()):
                continue
            doc = by_key.get(key)
            if doc is None:
                by_key[key] = {"symbol": key[0], "interval": "1d", "ts": key[1], **{
                    k: e[k] for k in ("open", "high", "low", "close", "volume")}, "n": 1}
            else:
                doc.update(open=e["open"], high=max(doc["high"], e["high"]), low=min(doc["low"], e["low"]),
                           volume=max(doc["volume"], e["volume"]))
        return list(by_key.values())

    def _upsert_bars(self, docs: list[dict]) -> int:
        if not docs:
            return 0
        ops = [UpdateOne({"symbol": d["symbol"], "interval": d["interval"], "ts": d["ts"]}, {"$set": d}, upsert=True)
               for d in docs]
        self.bars.bulk_write(ops, ordered=False)
        return len(ops)

    # -- reads ------------------------------------------------------------------------------------
    def count_by_symbol(self) -> dict[str, int]:
        rows = self.prices.aggregate([{"$group": {"_id": "$symbol", "n": {"$sum": 1}}}])
        return {r["_id"]: r["n"] for r in rows}

    def last_prices(self, symbols: Sequence[str] | None = None) -> dict[str, dict]:
        """Newest stored event per symbol: {symbol: {ts, close, ...}}."""
        match = {"symbol": {"$in": list(symbols)}} if symbols else {}
        rows = self.prices.aggregate([
            {"$match": match},
            {"$group": {"_id": "$symbol", "last": {"$top": {"sortBy": {"ts": -1, "fetched_at": -1}, "output": "$$ROOT"}}}},
        ])
        out = {}
        for r in rows:
            doc = r["last"]
            doc.pop("_id", None)
            doc["ts"] = to_utc(doc["ts"])
            out[r["_id"]] = doc
        return out

    def last_closes(self, symbols: Sequence[str]) -> dict[str, float]:
        return {s: d["close"] for s, d in self.last_prices(symbols).items()}

    def bars_frame(self, symbols: Sequence[str], level: str, start: datetime, end: datetime | None = None,
                   limit: int = 200_000):
        """Stored bars of one rollup level as a pandas DataFrame (UTC ``ts``), sorted by symbol, ts."""
        import pandas as pd
        query = {"symbol": {"$in": list(symbols)}, "interval": level, "ts": {"$gte": start}}
        if end is not None:
            query["ts"]["$lt"] = end
        cursor = self.bars.find(query, {"_id": 0, "symbol": 1, "ts": 1, "open": 1, "high": 1, "low": 1,
                                        "close": 1, "volume": 1}).sort([("symbol", 1), ("ts", 1)]).limit(limit)
        frame = pd.DataFrame(list(cursor), columns=["symbol", "ts", "open", "high", "low", "close", "volume"])
        if not frame.empty:
            frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
        return frame

    # -- heartbeats (one document per pipeline process, for health) --------------------------------
    def beat(self, process_id: str, snapshot: dict) -> None:
        self.heartbeats.replace_one({"_id": process_id}, {**snapshot, "_id": process_id, "at": utcnow()}, upsert=True)

    def heartbeats_since(self, since: datetime) -> list[dict]:
        return list(self.heartbeats.find({"at": {"$gte": since}}))


def _next_level(level: str) -> str | None:
    names = list(ROLLUPS)
    i = names.index(level)
    return names[i + 1] if i + 1 < len(names) else None

