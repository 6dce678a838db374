"""Fired alerts in MongoDB (``Store.alert_events``): the one record every delivery channel works from.

Every function takes a ``pipeline.store.Store``.

Guarantees:
- An alert's ``_id`` is deterministic: ``<rule id>|<interval>|<ISO ts>`` of the price that triggered
  it (its business key; the symbol is the rule's). ``_id`` is unique, so inserting the same crossing
  twice (a Kafka redelivery, a restart, a second consumer process) stores it once: ``insert``
  reports such a duplicate and never raises for it.
- Each external channel the alert goes to has ``delivery.<channel>`` = {status: pending | delivered |
  failed, attempts, next_at, lease_until, error, delivered_at}. Nothing is removed from a document on
  delivery: history and delivery results stay together.
- In the app, an alert is new until acknowledged (``acked``); ``acknowledge`` is idempotent.
- Reads return plain dicts with aware UTC datetimes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from pymongo import ASCENDING, DESCENDING
from pymongo.errors import BulkWriteError

from ..models import iso, to_utc, utcnow

DUPLICATE_KEY = 11000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def event_id(rule_id: str, interval: str, ts: datetime) -> str:
    return f"{rule_id}|{interval}|{iso(ts)}"


def ensure_indexes(store) -> list[str]:
    """Indexes the pages and the notifier use; safe to call any number of times."""
    events = store.alert_events
    return [
        events.create_index([("acked", ASCENDING), ("fired_at", DESCENDING)], name="unacked"),
        events.create_index([("symbol", ASCENDING), ("fired_at", DESCENDING)], name="by_symbol"),
        events.create_index([("fired_at", DESCENDING)], name="recent"),
        store.alert_rules.create_index([("symbol", ASCENDING)], name="by_symbol"),
    ]


def insert(store, docs: Sequence[dict]) -> tuple[int, int]:
    """Store fired alerts; return (new, duplicates). Raises ``PyMongoError`` on a server error."""
    if not docs:
        return 0, 0
    try:
        new = len(store.alert_events.insert_many([dict(d) for d in docs], ordered=False).inserted_ids)
        return new, 0
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != DUPLICATE_KEY for e in errors):
            raise
        return exc.details.get("nInserted", 0), len(errors)


def delivery_entry(now: datetime) -> dict:
    return {
        "status": "pending",
        "attempts": 0,
        "next_at": now,
        "lease_until": EPOCH,
        "error": None,
        "delivered_at": None,
    }


def _clean(doc: dict) -> dict:
    for name in ("ts", "fired_at", "acked_at"):
        if doc.get(name) is not None:
            doc[name] = to_utc(doc[name])
    return doc


def recent(
    store,
    symbols: Sequence[str] | None = None,
    limit: int = 200,
    unacked_only: bool = False,
    since: datetime | None = None,
) -> list[dict]:
    """Newest first; optional filters by symbol, acknowledgement and time."""
    query: dict = {}
    if symbols:
        query["symbol"] = {"$in": list(symbols)}
    if unacked_only:
        query["acked"] = False
    if since is not None:
        query["fired_at"] = {"$gte": since}
    return [_clean(d) for d in store.alert_events.find(query).sort("fired_at", -1).limit(limit)]


def unacked_since(store, since: datetime, limit: int = 20) -> list[dict]:
    """What the in-app toasts show: unacknowledged alerts fired after ``since``, newest first."""
    return recent(store, limit=limit, unacked_only=True, since=since)


def counts(store) -> dict:
    events = store.alert_events
    return {"total": events.estimated_document_count(), "unacked": events.count_documents({"acked": False})}


def acknowledge(store, ids: Sequence[str] | None = None, symbols: Sequence[str] | None = None) -> int:
    """Acknowledge the given alerts (or every unacknowledged one, optionally of ``symbols``)."""
    query: dict = {"acked": False}
    if ids is not None:
        query["_id"] = {"$in": list(ids)}
    if symbols:
        query["symbol"] = {"$in": list(symbols)}
    return store.alert_events.update_many(
        query, {"$set": {"acked": True, "acked_at": utcnow()}}
    ).modified_count
