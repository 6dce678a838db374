"""The runtime: one object per app process that owns the servers' connections and the pipeline.

Guarantees:
- ``start()`` never raises for an environment problem (a server down, a port taken, a folder owned by
  another process): it records a sentence in ``health()["error"]`` and can be called again.
- Embedded mode (``KAFKA_BOOTSTRAP_SERVERS`` or ``MONGODB_URI`` unset) starts the local stack for what
  is not configured, supervised (a dead server is restarted on its port); external mode only connects.
  An embedded broker is kept under its size cap by ``pipeline.embedded.trimmer.Trimmer`` while it runs.
- Topics and indexes are created idempotently on every start. The parts come from ``pipeline.wiring``
  (role ``app``): exactly one producer scheduler and one consumer thread per runtime.
- ``stop()`` is idempotent and goes in order: the pipeline (no new fetches or backfill chunks, the
  consumer's in-flight batch stored and committed, bar builder and alert engine stopped and
  flushed), then the clients, then the supervisor and the embedded servers. It also runs when the
  interpreter exits, *before* Python joins worker threads (so Ctrl+C on ``streamlit run`` does not
  wait for a backfill to finish). Background threads never touch Streamlit.
- The read methods (``counters``, ``alerts``, ``health``, ``mongo_down_since``) answer in any state,
  from any thread, without I/O while the runtime runs: the health snapshot is refreshed every second
  in a background thread (``pipeline.health.snapshot.HealthMonitor``), from ``start()`` until ``stop()``.
- ``start()`` also builds the exchange calendars of the watchlist's markets in a daemon thread
  (``markets.warm``), in parallel and never waiting on it, so the first market status a page shows
  is a cache hit (``timings["warm_calendars_s"]`` says how long they took).
- ``store`` and ``watchlist`` (what pages use) sit on a MongoDB client whose every operation ends
  within ``STOCKMON_MONGO_TIMEOUT`` seconds; the pipeline's own client waits at most
  ``STOCKMON_MONGO_WRITE_TIMEOUT`` seconds per reply (see ``pipeline.wiring.connect``).
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import socket
import threading
import time

import pymongo

from .config import Settings
from .embedded.stack import LocalStack
from .embedded.supervisor import Supervisor
from .embedded.trimmer import Trimmer
from .errors import explain
from .health.snapshot import (
    MONGO_PING_S,
    Health,
    HealthMonitor,
    KafkaProbe,
    alerts_of,
    consumer_of,
    degraded,
    live_parts,
    snapshot,
)
from .heartbeat import process_id
from .markets import calendars as markets
from .markets.calendars import market_for
from .sources.registry import REGISTRY
from .store import Store
from .watchlist import Entry, Watchlist
from .wiring import App, Connection, build_app, connect, prepare

log = logging.getLogger(__name__)

STATES = ("stopped", "starting", "running", "paused", "error")


class NotConnected(RuntimeError):
    """The runtime has no connection to the servers (it is stopped or could not start)."""


def configure_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in (
        "kafka",
        "apscheduler.executors",
        "apscheduler.scheduler",
        "pymongo",
        "urllib3",
        "yfinance",
        "peewee",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def at_exit(fn) -> None:
    """Run ``fn`` when the interpreter exits, before ``concurrent.futures`` joins its workers (an
    APScheduler job, such as a backfill, would otherwise run to its end first). ``threading``'s hook
    is private but kept since Python 3.9; plain ``atexit`` is the fallback."""
    register = getattr(threading, "_register_atexit", None)
    try:
        if register is not None:
            register(fn)
            return
    except RuntimeError:  # the interpreter is already shutting down
        pass
    atexit.register(fn)


class Runtime:
    def __init__(self, settings: Settings | None = None):
        self.settings = settings or Settings.load()
        self.state = "stopped"
        self.error: str | None = None
        self.started_at: float | None = None
        self.timings: dict[str, float] = {}
        self.process_id = process_id()
        self.kafka_bootstrap: str | None = None
        self.mongodb_uri: str | None = None
        self._stack: LocalStack | None = None
        self._supervisor: Supervisor | None = None
        self._trimmer: Trimmer | None = None
        self._conn: Connection | None = None
        self._app: App | None = None
        self._probe = KafkaProbe(self.settings)
        self._monitor = HealthMonitor(self._snapshot, ping=self._ping_mongo)
        self._lock = threading.RLock()
        self._exit_hook = False

    @property
    def instance_id(self) -> str:
        """Stable across restarts of this app on this machine and data folder (static membership)."""
        digest = hashlib.sha1(str(self.settings.data_dir).encode()).hexdigest()[:8]
        return f"app-{socket.gethostname()}-{digest}"

    @property
    def mode(self) -> str:
        return "embedded" if self.settings.embedded else "external"

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self, pipeline: bool | None = None) -> Runtime:
        """Connect (starting the local stack if embedded), prepare topics and indexes, start the pipeline."""
        with self._lock:
            if self.state in ("running", "paused", "starting"):
                return self
            self.state, self.error = "starting", None
            if not self._exit_hook:
                at_exit(self.stop)
                self._exit_hook = True
            started = threading.Event()
            threading.Thread(
                target=self._warm_calendars, args=(started,), name="warm-calendars", daemon=True
            ).start()
            t0 = time.perf_counter()
            try:
                if self._conn is None:
                    self._connect()
                self.timings["connect_s"] = round(time.perf_counter() - t0, 2)
                prepare(self.connection)
                run_pipeline = self.settings.autostart if pipeline is None else pipeline
                if run_pipeline:
                    self._start_pipeline()
                self.state = "running" if run_pipeline else "stopped"
                self.started_at = time.time()
                self.timings["start_s"] = round(time.perf_counter() - t0, 2)
                log.info("runtime %s in %.2fs (%s mode)", self.state, self.timings["start_s"], self.mode)
            except Exception as exc:  # every failure becomes a sentence for the page
                self.state = "error"
                self.error = explain(exc)
                log.exception("runtime start failed")
            started.set()
            self._monitor.start()
        return self

    def _warm_calendars(self, started: threading.Event) -> None:
        """Build the exchange calendars of the watchlist's markets in the background while the runtime
        starts (the configured watchlist at once, the stored one once connected), so the first page
        that shows a market status does not pay for them. Never raises, never delays ``start``."""
        try:
            t0 = time.perf_counter()
            n = markets.warm(market_for(s) for s in self.settings.watchlist)
            started.wait(self.settings.stack_timeout + 60)
            conn = self._conn
            if conn is not None:
                n += markets.warm(market_for(e.symbol, e.timezone or None) for e in conn.watchlist.entries())
            self.timings["warm_calendars_s"] = round(time.perf_counter() - t0, 2)
            log.info("runtime: %d market calendars ready in %.2fs", n, self.timings["warm_calendars_s"])
        except Exception:  # an optimisation: the pages build what they need on first use
            log.warning("runtime: warming the market calendars failed", exc_info=True)

    def _connect(self) -> None:
        s = self.settings
        kafka, mongodb = s.kafka_bootstrap_servers, s.mongodb_uri
        if s.embedded:
            self._stack = LocalStack(s.data_dir, timeout=s.stack_timeout).start()
            self._supervisor = Supervisor(self._stack).start()
            kafka, mongodb = kafka or self._stack.kafka_bootstrap, mongodb or self._stack.mongodb_uri
            if s.embedded_kafka:  # an external broker keeps its own retention
                if self._trimmer is not None:
                    self._trimmer.stop()
                self._trimmer = Trimmer(kafka, s, self._stack.kafka_footprint).start()
        assert kafka and mongodb  # external mode means both are configured
        self.kafka_bootstrap, self.mongodb_uri = kafka, mongodb
        self._conn = connect(s, kafka, mongodb)

    def _start_pipeline(self) -> None:
        conn = self.connection
        self._app = build_app(conn, self.instance_id).start()
        known = REGISTRY[self.settings.source].known_names
        names = known() if known is not None else None
        if conn.watchlist.seed(self.settings.watchlist, self.settings.source, names):
            for symbol in self.settings.watchlist:
                self._app.producer.request_backfill(symbol, self.settings.source)

    def pause(self) -> None:
        with self._lock:
            if self.state == "running" and self._app is not None:
                self._app.pause()
                self.state = "paused"

    def resume(self) -> None:
        with self._lock:
            if self.state == "paused" and self._app is not None:
                self._app.resume()
                self.state = "running"
            elif self.state in ("stopped", "error"):
                self.start(pipeline=True)

    def stop(self) -> None:
        """Stop the pipeline, close the clients, stop the embedded servers. Idempotent."""
        with self._lock:
            steps: dict[str, float] = {}
            t0 = time.perf_counter()
            self._monitor.stop()
            if self._app is not None:
                steps.update(self._app.stop())
                self._app = None
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            if self._trimmer is not None:
                self._trimmer.stop()
                self._trimmer = None
            if self._supervisor is not None:
                self._supervisor.stop()
                self._supervisor = None
            if self._stack is not None:
                t1 = time.perf_counter()
                self._stack.stop()
                self._stack = None
                steps["servers"] = time.perf_counter() - t1
            if steps:
                log.info(
                    "runtime stopped in %.1fs (%s)",
                    time.perf_counter() - t0,
                    ", ".join(f"{k} {v:.1f}s" for k, v in steps.items()),
                )
            self.state = "stopped"

    # -- parts, for the pages -------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._conn is not None

    @property
    def connection(self) -> Connection:
        """Raises ``NotConnected`` while the runtime has no connection."""
        if self._conn is None:
            raise NotConnected("the pipeline is not connected to MongoDB; start it on the Overview page")
        return self._conn

    @property
    def store(self) -> Store:
        """The pages' store: every operation ends within ``mongo_timeout`` s (``Connection.page_store``)."""
        return self.connection.page_store

    @property
    def watchlist(self) -> Watchlist:
        """The pages' watchlist, on the pages' store."""
        return self.connection.page_watchlist

    @property
    def pipeline(self) -> App:
        """The running (or paused) pipeline's parts; raises ``NotConnected`` while it is stopped."""
        if self._app is None:
            raise NotConnected(f"the pipeline is {self.state}")
        return self._app

    @property
    def producing(self) -> bool:
        """True while the pipeline runs or is paused (new symbols get backfilled)."""
        return self._app is not None

    def add_symbol(self, text: str, source: str | None = None) -> Entry:
        """Add to the watchlist and backfill through Kafka; raises ``WatchlistError`` with a reason."""
        entry = self.watchlist.add(text, source or self.settings.source)
        app = self._app
        if app is not None:
            with pymongo.timeout(self.settings.mongo_timeout):  # a page waits on this: the pages' deadline
                app.producer.request_backfill(entry.symbol, entry.source)
        return entry

    # -- reads ----------------------------------------------------------------------------------------
    def counters(self) -> dict[str, int | None]:
        """This process's published, stored, dead_lettered and lag (consumer lag, messages; None until
        the consumer has measured it, so a first start does not read "published 2,480, lag 0"); zeros
        while the pipeline is stopped. In-memory: no I/O."""
        app = self._app
        if app is None:
            return {"published": 0, "stored": 0, "dead_lettered": 0, "lag": 0}
        consumer = app.consumer.snapshot()
        return {
            "published": app.producer.snapshot()["published"],
            "stored": consumer.get("stored", 0),
            "dead_lettered": consumer.get("dead_lettered", 0),
            "lag": consumer.get("lag_total"),  # None: not measured yet
        }

    def degraded(self) -> str | None:
        """A sentence while the pipeline runs but is not whole (its consumer crashed and is restarting,
        or restarted recently), else None. In-memory: no I/O."""
        return degraded(self.state, consumer_of(self._app))

    def alerts(self) -> dict:
        """{"engine": AlertEngine snapshot or None, "channels": {channel: counters}}; no I/O."""
        return dict(alerts_of(self._app))

    def health(self) -> Health:
        """JSON-able snapshot (see ``pipeline.health``); never raises. While the runtime runs it is the
        background snapshot (at most ~1 s old while read, see ``HealthMonitor``) with the in-memory parts as of now: no I/O, no wait on
        a server. Before ``start()``, after ``stop()`` and on a runtime's first read it is computed
        here, bounded in time (a few seconds at worst)."""
        live = live_parts(
            state=self.state,
            error=self.error,
            started_at=self.started_at,
            timings=self.timings,
            app=self._app,
        )
        if not self._monitor.running:
            self._monitor.refresh()
        return self._monitor.read(live)

    def mongo_down_since(self) -> float | None:
        """Epoch seconds since when MongoDB does not answer the health check, from the latest
        background snapshot (no I/O); None while it answers or before the first check. A page asks
        before reading MongoDB: that counts as reading health (``HealthMonitor.touch``)."""
        self._monitor.touch()
        latest = self._monitor.latest()
        mongo = (latest or {}).get("mongo") or {}
        return mongo.get("down_since") if not mongo.get("ok") else None

    def _ping_mongo(self) -> str | None:
        """MongoDB's version through the pages' client, within the health check's deadline; None
        without a connection. Raises ``PyMongoError`` when it does not answer."""
        conn = self._conn
        if conn is None:
            return None
        return conn.page_store.ping(timeout_s=min(MONGO_PING_S, self.settings.mongo_timeout))

    def _snapshot(self) -> Health:
        """A full snapshot with its (bounded) I/O: what ``HealthMonitor`` runs in the background."""
        s = self.settings
        conn = self._conn
        supervisor = self._supervisor
        return snapshot(
            s,
            state=self.state,
            error=self.error,
            started_at=self.started_at,
            timings=self.timings,
            process_id=self.process_id,
            kafka_bootstrap=self.kafka_bootstrap or s.kafka_bootstrap_servers or "",
            mongodb_uri=self.mongodb_uri or s.mongodb_uri or "",
            probe=self._probe,
            store=conn.page_store if conn is not None else None,
            stack=self._stack,
            restarts=supervisor.restarts if supervisor is not None else {},
            app=self._app,
            footprint=self._trimmer.snapshot() if self._trimmer is not None else None,
        )
