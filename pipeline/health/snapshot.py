"""The health snapshot of one app process: what the Overview and Pipeline health pages and the status
rules (``pipeline.health.rules``) read.

Guarantees:
- ``snapshot(...)`` returns a JSON-able ``Health`` dict with every key below, whatever state the
  pipeline is in (a part that does not run is ``None``, lists are empty); it never raises.
- It is bounded in time: the Kafka check is cached for a few seconds (``KafkaProbe``); the MongoDB
  ping has its own deadline (``MONGO_PING_S``) and every other MongoDB read of the snapshot shares
  one more (``READS_S``), or almost none once the ping went unanswered, so a dead or frozen server
  costs a snapshot about two seconds, never a hang.
- ``HealthMonitor`` computes it in a background thread every ``REFRESH_S`` seconds while a page
  reads health (a read within ``ACTIVE_S``), and every ``IDLE_REFRESH_S`` while none does (nobody
  sees it: 1 s snapshots with no reader were most of the app's MongoDB reads at rest besides the bar
  builder); the first read after such a pause starts a snapshot at once. Pages read the latest one
  (``HealthMonitor.read``) with the in-memory parts (``live_parts``: state, producer, consumer,
  alerts) laid over as of now: reading health does no I/O and never waits on a server.
  While a page reads, a MongoDB that stops answering (frozen or down) is in the snapshot within
  ``REFRESH_S`` + ``MONGO_PING_S`` seconds, with ``mongo["down_since"]``: when the first unanswered
  check of the outage began (epoch seconds); with no reader, within ``IDLE_REFRESH_S`` + that.
- ``incidents`` remembers each component's error (MongoDB, consumer, bar builder, each producer
  job): a failing one has ``recovered_at`` None; once the component works again the incident says
  when it recovered, for ``RECOVERED_SHOWN_S``, then it is dropped. An error text a component keeps
  after it recovered (the consumer's ``last_error``) is never shown as current again.
- ``degraded`` is a sentence whenever the pipeline should run but its consumer is down, restarting or
  restarted within the last minutes (see ``PriceConsumer.run_supervised``), else None.
- Times are epoch seconds (``started_at``, ``checked_at``, the parts' ``last_*`` fields, incidents)
  or aware UTC datetimes (backfill and heartbeat documents).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypedDict

import pymongo
from pymongo.errors import ConnectionFailure, ExecutionTimeout

from .. import queries
from ..config import Settings, mask_uri
from ..embedded.stack import LocalStack, kafka_answers
from ..errors import explain
from ..markets.calendars import fixed_hours_reasons
from ..store import Store
from ..wiring import App

log = logging.getLogger(__name__)

MONGO_PING_S = 2.0  # the ping's deadline (capped by STOCKMON_MONGO_TIMEOUT), seconds
READS_S = 2.0  # the deadline of the snapshot's other MongoDB reads together, seconds
REFRESH_S = 1.0  # the background snapshot's period while a page reads health, seconds
IDLE_REFRESH_S = 10.0  # its period while no page has read health for ACTIVE_S, seconds
ACTIVE_S = 30.0  # a read this recent keeps the REFRESH_S period (pages redraw every 3-5 s), seconds
RECOVERED_SHOWN_S = 15 * 60.0  # how long a recovered component's last error is still shown, seconds


class KafkaHealth(TypedDict):
    bootstrap: str
    ok: bool
    version: str | None


class MongoHealth(TypedDict, total=False):
    uri: str
    ok: bool
    version: str | None
    error: str  # only when the ping failed: a sentence
    down_since: float  # with error: epoch seconds when the first unanswered check of this outage began


class AlertsHealth(TypedDict):
    engine: dict | None  # AlertEngine.snapshot()
    channels: dict  # Notifier.snapshot(): {channel: counters}


class Incident(TypedDict):
    error: str  # the component's error, as it reported it
    since: float  # epoch seconds: first seen failing (for MongoDB: ``down_since``)
    recovered_at: float | None  # epoch seconds: first seen working again; None while failing


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
    forecasts: dict | None  # ForecastJob.snapshot(): last run, duration, done, skipped, failed
    backfills: list[dict]  # queries.backfills(), when MongoDB answers
    processes: list[dict]  # queries.processes(), when MongoDB answers
    checked_at: float  # epoch seconds when this snapshot's server checks began
    incidents: dict[str, Incident]  # by component: "mongo", "consumer", "bars", "producer · <job>"
    fixed_hours: dict[str, str]  # MIC -> why its exchange calendar failed (fixed weekday hours instead)
    footprint: dict | None  # footprint.Trimmer.snapshot() (embedded broker only), else None


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


def live_parts(
    *, state: str, error: str | None, started_at: float | None, timings: dict[str, float], app: App | None
) -> dict:
    """The parts of ``Health`` that live in this process's memory (no I/O): ``state``, ``error``,
    ``started_at``, ``timings``, ``producer``, ``consumer``, ``degraded``, ``alerts``, ``forecasts``."""
    consumer = consumer_of(app)
    return {
        "state": state,
        "error": error,
        "started_at": started_at,
        "timings": dict(timings),
        "producer": app.producer.snapshot() if app else None,
        "consumer": consumer,
        "degraded": degraded(state, consumer),
        "alerts": alerts_of(app),
        "forecasts": app.forecasts.snapshot() if app and app.forecasts else None,
    }


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
    footprint: dict | None = None,
) -> Health:
    """One full snapshot, with I/O bounded as the module docstring says (run it off the page's path:
    ``HealthMonitor``). ``store`` should be the pages' store (``Connection.page_store``)."""
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
        "footprint": footprint,
        "fixed_hours": fixed_hours_reasons(),
    }
    if store is not None:
        try:
            health["mongo"] = {
                "uri": mask_uri(mongodb_uri),
                "ok": True,
                "version": store.ping(timeout_s=min(MONGO_PING_S, settings.mongo_timeout)),
            }
        except Exception as exc:  # a sentence for the page, never a traceback
            health["mongo"]["error"] = explain(exc)
    if kafka_bootstrap:
        version = probe.version(kafka_bootstrap)
        health["kafka"] = {"bootstrap": kafka_bootstrap, "ok": version is not None, "version": version}
    health.update(live_parts(state=state, error=error, started_at=started_at, timings=timings, app=app))  # type: ignore[typeddict-item]
    # every other MongoDB read shares one deadline; none worth waiting for once the ping went unanswered
    with pymongo.timeout(READS_S if health["mongo"]["ok"] else 0.05):
        health["bars"] = app.ingest.bars.snapshot() if app else None
        if store is not None and health["mongo"]["ok"]:
            try:
                health["backfills"] = queries.backfills(store)
                health["processes"] = queries.processes(store)
            except Exception as exc:  # MongoDB went away between the ping and the reads
                health.setdefault("backfills", [])
                if isinstance(exc, (ConnectionFailure, ExecutionTimeout)):  # not answering: say so now
                    health["mongo"] = {**health["mongo"], "ok": False, "error": explain(exc)}
    return health


class Incidents:
    """Each component's error: since when it fails and when it recovered (see the module docstring).
    Not thread-safe on its own: ``HealthMonitor`` calls it under its lock."""

    def __init__(self, shown_s: float = RECOVERED_SHOWN_S):
        self.shown_s = shown_s
        self.open: dict[str, Incident] = {}
        self._seen: dict[str, str] = {}  # the last error text of each component already recorded

    def note(
        self, name: str, error: str | None, failing: bool, now: float, since: float | None = None
    ) -> None:
        """Record what component ``name`` reports now: its ``error`` text (or None) and whether it is
        ``failing``; ``since`` (epoch s) overrides when a new incident began."""
        incident = self.open.get(name)
        if error and failing:
            if incident is None or incident["recovered_at"] is not None:
                incident = {"error": error, "since": since or now, "recovered_at": None}
            else:  # still the same outage, perhaps told in other words
                incident = {**incident, "error": error}
            self.open[name] = incident
            self._seen[name] = error
        elif incident is not None and incident["recovered_at"] is None:
            self.open[name] = {**incident, "recovered_at": now}
        elif error and self._seen.get(name) != error:  # an error that came and went between two looks
            self.open[name] = {"error": error, "since": now, "recovered_at": now}
            self._seen[name] = error
        incident = self.open.get(name)
        if (
            incident
            and incident["recovered_at"] is not None
            and now - incident["recovered_at"] > self.shown_s
        ):
            del self.open[name]

    def observe(self, health: Health, now: float) -> dict[str, Incident]:
        """Note every component of ``health``; return the incidents to show (a copy)."""
        mongo = health.get("mongo") or {}
        if "error" in mongo or mongo.get("ok"):  # unchecked (no connection) tells nothing
            self.note("mongo", mongo.get("error"), not mongo.get("ok"), now, mongo.get("down_since"))
        consumer = health.get("consumer")
        if consumer:
            failing = bool(consumer.get("retrying_since")) or not (
                consumer.get("running") or consumer.get("paused")
            )
            self.note("consumer", consumer.get("last_error"), failing, now)
        bars = health.get("bars")
        if bars:
            self.note("bars", bars.get("last_error"), bool(bars.get("last_error")), now)
        for job, stats in ((health.get("producer") or {}).get("jobs") or {}).items():
            error = stats.get("last_error")
            self.note(f"producer · {job}", error, bool(error), now)
        return {name: dict(incident) for name, incident in self.open.items()}  # type: ignore[misc]


class HealthMonitor:
    """Runs ``compute`` (a full ``snapshot``) in a daemon thread every ``every_s`` seconds while health
    is read (``read`` or ``touch`` within ``active_s``), every ``idle_every_s`` otherwise, and keeps
    the latest; ``read`` hands it out without I/O. Tracks when MongoDB stopped answering and the
    incidents. With ``ping`` (returns MongoDB's version, raises when it does not answer, None when
    there is no connection) a second thread checks MongoDB at the same period on its own, so a slow
    snapshot (a Kafka probe, a loaded machine) does not delay "not answering". ``start``/``stop``
    are idempotent; ``stop`` waits at most ``timeout`` s per thread. Defaults: ``REFRESH_S``,
    ``IDLE_REFRESH_S``, ``ACTIVE_S`` (seconds), read when the monitor is made."""

    def __init__(
        self,
        compute: Callable[[], Health],
        every_s: float | None = None,
        ping: Callable[[], str | None] | None = None,
        idle_every_s: float | None = None,
        active_s: float | None = None,
    ):
        self.compute = compute
        self.every_s = REFRESH_S if every_s is None else every_s
        self.idle_every_s = max(self.every_s, IDLE_REFRESH_S if idle_every_s is None else idle_every_s)
        self.active_s = ACTIVE_S if active_s is None else active_s
        self.ping = ping
        self._read_at = time.monotonic()  # reset by start(): a start counts as a read
        self._wakes = (threading.Event(), threading.Event())  # one per loop: snapshot, MongoDB check
        self.incidents = Incidents()
        self._latest: Health | None = None
        self._mongo: tuple[float, MongoHealth] | None = None  # (began, result) of the newest check
        self._mongo_down_since: float | None = None
        self._lock = threading.Lock()
        self._refreshing = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def start(self) -> HealthMonitor:
        if not self.running:
            self._stop.clear()
            self._read_at = time.monotonic()  # the first snapshots after a start come quickly
            loops = [("stockmon-health", self._run)]
            if self.ping is not None:
                loops.append(("stockmon-health-mongo", self._watch))
            self._threads = [threading.Thread(target=t, name=n, daemon=True) for n, t in loops]
            for thread in self._threads:
                thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        for wake in self._wakes:
            wake.set()
        threads, self._threads = self._threads, []
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception:  # the thread must survive anything; the page keeps the last snapshot
                log.exception("health snapshot failed")
            self._rest(self._wakes[0])

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                self.check_mongo()
            except Exception:
                log.exception("MongoDB health check failed")
            self._rest(self._wakes[1])

    @property
    def period_s(self) -> float:
        """The loops' current period: ``every_s`` while health is read, else ``idle_every_s``."""
        return self.every_s if time.monotonic() - self._read_at <= self.active_s else self.idle_every_s

    def _rest(self, wake: threading.Event) -> None:
        """Wait one period, or until ``touch`` after a pause (or ``stop``) ends it."""
        wake.wait(self.period_s)
        wake.clear()

    def touch(self) -> None:
        """Health is being looked at: keep the fast period; after a pause, refresh at once. No I/O."""
        now = time.monotonic()
        paused = now - self._read_at > self.active_s
        self._read_at = now
        if paused:
            for wake in self._wakes:
                wake.set()

    def check_mongo(self) -> None:
        """Ping MongoDB now (``ping``, bounded by its own deadline) and put the answer in the latest
        snapshot, unless a newer check is already there."""
        assert self.ping is not None
        began = time.time()
        result: MongoHealth
        try:
            version = self.ping()
            if version is None:  # no connection: nothing to tell
                return
            result = {"ok": True, "version": version}
        except Exception as exc:
            result = {"ok": False, "version": None, "error": explain(exc)}
        with self._lock:
            self._note_mongo(began, result)
            if self._latest is not None:
                self._latest = self._with_mongo(self._latest)

    def _note_mongo(self, began: float, result: MongoHealth) -> None:
        """Keep the newest check's result (under the lock) and when the outage began."""
        if self._mongo is not None and self._mongo[0] > began:
            return
        if "error" in result:
            if self._mongo_down_since is None:
                log.warning(
                    "MongoDB not answering (check began %.1f s ago): %s", time.time() - began, result["error"]
                )
            self._mongo_down_since = self._mongo_down_since or began
            result = {**result, "down_since": self._mongo_down_since}
        elif result.get("ok"):
            if self._mongo_down_since is not None:
                log.warning("MongoDB answers again after %.1f s", time.time() - self._mongo_down_since)
            self._mongo_down_since = None
        self._mongo = (began, result)

    def _with_mongo(self, health: Health) -> Health:
        """``health`` with the newest MongoDB check's result (the URI kept), incidents noted anew."""
        if self._mongo is None:
            return health
        mongo: MongoHealth = {"uri": (health.get("mongo") or {}).get("uri", ""), **self._mongo[1]}
        out: Health = {**health, "mongo": mongo}
        out["incidents"] = self.incidents.observe(out, time.time())
        return out

    def refresh(self) -> Health:
        """Compute a snapshot now, in the caller's thread (bounded: see ``snapshot``), and keep it."""
        with self._refreshing:
            began = time.time()
            health = self.compute()
            health["checked_at"] = began
            with self._lock:
                mongo = health.get("mongo")
                if mongo is not None and ("error" in mongo or mongo.get("ok")):
                    self._note_mongo(began, {k: v for k, v in mongo.items() if k != "uri"})  # type: ignore[arg-type]
                self._latest = self._with_mongo(health)
                if "incidents" not in self._latest:
                    self._latest["incidents"] = self.incidents.observe(self._latest, time.time())
            return self._latest

    def latest(self) -> Health | None:
        """The last snapshot as computed (no live parts), or None before the first one."""
        with self._lock:
            return self._latest

    def read(self, live: dict) -> Health:
        """The latest snapshot with ``live`` (``live_parts``, computed by the caller now) laid over it.
        No I/O, except before the first snapshot exists: then one is computed here (bounded). After a
        pause in reading (``active_s``) the snapshot may be ``idle_every_s`` old; a new one starts."""
        self.touch()
        latest = self.latest()
        if latest is None:  # the first read: take the first snapshot being computed, or compute one
            with self._refreshing:
                latest = self.latest()
            latest = latest or self.refresh()
        health: Health = {**latest, **live}
        with self._lock:
            health["incidents"] = self.incidents.observe(health, time.time())
        return health
