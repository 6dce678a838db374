"""The health snapshot of one app process: what the Home and Pipeline health pages and the status
rules (``ui.health``) read.

Guarantees:
- ``snapshot(...)`` returns a JSON-able ``Health`` dict with every key below, whatever state the
  pipeline is in (a part that does not run is ``None``, lists are empty); it never raises.
- It is bounded in time: the Kafka check is cached for a few seconds (``KafkaProbe``) and the MongoDB
  ping has its own short deadline, so a dead server costs a page about two seconds, not a hang.
- ``degraded`` is a sentence whenever the pipeline should run but its consumer is down, restarting or
  restarted within the last minutes (see ``PriceConsumer.run_supervised``), else None.
- Times are epoch seconds (``started_at``, and the parts' ``last_*`` fields) or aware UTC datetimes
  (backfill and heartbeat documents).
"""

from __future__ import annotations

import time
from typing import TypedDict

from . import queries
from .config import Settings, mask_uri
from .stack import LocalStack, kafka_answers
from .store import Store
from .wiring import App

MONGO_PING_S = 2.0


class KafkaHealth(TypedDict):
    bootstrap: str
    ok: bool
    version: str | None


class MongoHealth(TypedDict, total=False):
    uri: str
    ok: bool
    version: str | None
    error: str  # only when the ping failed: a sentence


class AlertsHealth(TypedDict):
    engine: dict | None  # AlertEngine.snapshot()
    channels: dict  # Notifier.snapshot(): {channel: counters}


class Health(TypedDict, total=False):
    mode: str  # "embedded" | "external"
    state: str  # one of runtime.STATES
    error: str | None
    started_at: float | None
    timings: dict[str, float]
    process_id: str
    kafka: KafkaHealth
    mongo: MongoHealth
    topics: dict[str, str]  # {"prices": name, "dead_letter": name}
    stack: list[dict]  # LocalStack.describe() rows (embedded mode)
    restarts: dict[str, int]  # supervised restarts per embedded server
    data_dir: str | None
    demo_mode: bool
    source: str
    producer: dict | None  # Producer.snapshot()
    consumer: dict | None  # PriceConsumer.snapshot(); "running" False if its thread is gone
    degraded: str | None  # why a running pipeline is not whole (the consumer crashed), else None
    bars: dict | None  # BarBuilder.snapshot()
    alerts: AlertsHealth
    backfills: list[dict]  # queries.backfills(), when MongoDB answers
    processes: list[dict]  # queries.processes(), when MongoDB answers


class KafkaProbe:
    """A broker check cached ``ttl_s``: pages refresh health often and a down broker costs 2 s."""

    def __init__(self, settings: Settings, ttl_s: float = 5.0):
        self.settings = settings
        self.ttl_s = ttl_s
        self._last: tuple[str, float, str | None] | None = None

    def version(self, bootstrap: str) -> str | None:
        """The broker's API version, or None if it does not answer within 2 s."""
        last = self._last
        if last and last[0] == bootstrap and time.monotonic() - last[1] < self.ttl_s:
            return last[2]
        version = kafka_answers(bootstrap, timeout=2.0, **self.settings.kafka_options())
        self._last = (bootstrap, time.monotonic(), version)
        return version


def alerts_of(app: App | None) -> AlertsHealth:
    """The alert engine's and the notifier's in-memory counters (no I/O)."""
    if app is None:
        return {"engine": None, "channels": {}}
    return {"engine": app.ingest.alerts.snapshot(), "channels": app.notifier.snapshot()}


def consumer_of(app: App | None) -> dict | None:
    """The consumer's snapshot; a consumer thread that ended unasked shows as not running, degraded."""
    if app is None:
        return None
    snap = app.consumer.snapshot()
    if app.ingest.consumer_thread_gone():
        snap["running"] = False
        snap["lag_total"] = None
        snap["degraded"] = "the consumer thread ended although nobody stopped it"
    return snap


def degraded(state: str, consumer: dict | None) -> str | None:
    """A sentence when the pipeline is meant to run but its consumer is down or recently crashed."""
    if state not in ("running", "paused") or consumer is None:
        return None
    if consumer.get("degraded"):
        return str(consumer["degraded"])
    if not consumer.get("running"):
        return f"the consumer is not running: {consumer.get('last_error') or 'no reason recorded'}"
    return None


def snapshot(
    settings: Settings,
    *,
    state: str,
    error: str | None,
    started_at: float | None,
    timings: dict[str, float],
    process_id: str,
    kafka_bootstrap: str,
    mongodb_uri: str,
    probe: KafkaProbe,
    store: Store | None,
    stack: LocalStack | None,
    restarts: dict[str, int],
    app: App | None,
) -> Health:
    from .runtime import explain

    health: Health = {
        "mode": "embedded" if settings.embedded else "external",
        "state": state,
        "error": error,
        "started_at": started_at,
        "timings": dict(timings),
        "process_id": process_id,
        "kafka": {"bootstrap": kafka_bootstrap, "ok": False, "version": None},
        "mongo": {"uri": mask_uri(mongodb_uri), "ok": False, "version": None},
        "topics": {"prices": settings.topic_prices, "dead_letter": settings.topic_dead_letter},
        "stack": stack.describe() if stack else [],
        "restarts": dict(restarts),
        "data_dir": str(settings.data_dir) if settings.embedded else None,
        "demo_mode": settings.demo_mode,
        "source": settings.source,
    }
    if kafka_bootstrap:
        version = probe.version(kafka_bootstrap)
        health["kafka"] = {"bootstrap": kafka_bootstrap, "ok": version is not None, "version": version}
    if store is not None:
        try:
            health["mongo"] = {
                "uri": mask_uri(mongodb_uri),
                "ok": True,
                "version": store.ping(timeout_s=MONGO_PING_S),
            }
        except Exception as exc:  # a sentence for the page, never a traceback
            health["mongo"]["error"] = explain(exc)
    health["producer"] = app.producer.snapshot() if app else None
    health["consumer"] = consumer_of(app)
    health["degraded"] = degraded(state, health["consumer"])
    health["bars"] = app.ingest.bars.snapshot() if app else None
    health["alerts"] = alerts_of(app)
    if store is not None and health["mongo"]["ok"]:
        try:
            health["backfills"] = queries.backfills(store)
            health["processes"] = queries.processes(store)
        except Exception:  # MongoDB went away between the ping and the reads
            health.setdefault("backfills", [])
    return health
