"""The runtime: one object per process that owns the servers' connections and the pipeline.

Guarantees:
- ``start()`` never raises for an environment problem (a server down, a port taken, a folder owned by
  another process): it records a sentence in ``health()["error"]`` and can be called again.
- Embedded mode (``KAFKA_BOOTSTRAP_SERVERS`` or ``MONGODB_URI`` unset) starts the local stack for what
  is not configured; external mode only connects.
- Topics and indexes are created idempotently on every start.
- Exactly one producer scheduler and one consumer thread per runtime; ``stop()`` stops them, then
  the local stack, and is idempotent (also registered with ``atexit``). Background threads never
  touch Streamlit.
- ``health()`` is a JSON-able snapshot that is safe to call from any thread at any time.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import threading
import time
from typing import Any

from . import bus, queries
from .alerts import AlertEngine, Notifier
from .alerts import ensure_indexes as ensure_alert_indexes
from .bars import BarBuilder
from .config import Settings, mask_uri
from .consumer import PriceConsumer
from .heartbeat import Heartbeat
from .producer import Producer
from .sources import make_source
from .stack import LocalStack, StackError, kafka_answers
from .store import Store
from .watchlist import Watchlist

log = logging.getLogger(__name__)

STATES = ("stopped", "starting", "running", "paused", "error")


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


class Runtime:
    def __init__(self, settings: Settings | None = None):
        self.settings = settings or Settings.load()
        self.stack: LocalStack | None = None
        self.store: Store | None = None
        self.watchlist: Watchlist | None = None
        self.producer: Producer | None = None
        self.consumer: PriceConsumer | None = None
        self.bar_builder: BarBuilder | None = None
        self.heartbeat: Heartbeat | None = None
        self.alerts: AlertEngine | None = None
        self.notifier: Notifier | None = None
        self.kafka_bootstrap: str | None = None
        self.mongodb_uri: str | None = None
        self.state = "stopped"
        self.error: str | None = None
        self.started_at: float | None = None
        self.timings: dict[str, float] = {}
        self.process_id = f"{socket.gethostname()}:{os.getpid()}"
        self._consumer_thread: threading.Thread | None = None
        self._lock = threading.RLock()
        self._lookup_sources: dict[str, Any] = {}
        self._atexit = False
        self._supervisor: threading.Thread | None = None
        self._stopping = threading.Event()
        self.restarts: dict[str, int] = {}
        self._kafka_probe: tuple[str, float, str | None] | None = None

    @property
    def instance_id(self) -> str:
        """Stable across restarts of this app on this machine and data folder (static membership)."""
        import hashlib

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
            if not self._atexit:
                atexit.register(self.stop)
                self._atexit = True
            t0 = time.perf_counter()
            try:
                self._connect()
                self.timings["connect_s"] = round(time.perf_counter() - t0, 2)
                self._prepare()
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
        return self

    def _connect(self) -> None:
        s = self.settings
        if s.embedded:
            self.stack = LocalStack(s.data_dir, timeout=s.stack_timeout).start()
            self._stopping.clear()
            self._supervisor = threading.Thread(
                target=self._supervise, name="stockmon-supervisor", daemon=True
            )
            self._supervisor.start()
        self.kafka_bootstrap = s.kafka_bootstrap_servers or self.stack.kafka_bootstrap
        self.mongodb_uri = s.mongodb_uri or self.stack.mongodb_uri
        self.store = Store.from_uri(self.mongodb_uri, s.db)
        self.watchlist = Watchlist(self.store.watchlist, self.lookup, s.max_symbols)

    def _supervise(self, every_s: float = 2.0) -> None:
        """Restart an embedded server that died, on its old port (clients reconnect by themselves)."""
        while not self._stopping.wait(every_s):
            stack = self.stack
            if stack is None:
                return
            for name in stack.dead_servers():
                log.error("embedded %s died; restarting it on port %s", name, stack.servers[name].port)
                try:
                    with self._lock:
                        if self._stopping.is_set():
                            return
                        stack.restart_server(name)
                    self.restarts[name] = self.restarts.get(name, 0) + 1
                except Exception:  # keep supervising; the health page shows it down
                    log.exception("restart of %s failed", name)

    def _prepare(self) -> None:
        self.store.ping()
        self.store.ensure_indexes()
        ensure_alert_indexes(self.store)
        self.topics = bus.create_topics(self.kafka_bootstrap, self.settings)

    def _start_pipeline(self) -> None:
        s = self.settings
        self.producer = Producer(self.kafka_bootstrap, s, self.store, self.watchlist, self._make_source)
        self.notifier = Notifier(self.store, s).start()
        self.alerts = AlertEngine(self.store, s, on_fired=self.notifier.wake)
        self.consumer = PriceConsumer(
            self.kafka_bootstrap, s, self.store, instance_id=self.instance_id, on_stored=self.alerts.on_stored
        )
        self.alerts.bind(self.consumer)
        self._consumer_thread = threading.Thread(
            target=self.consumer.run, name="stockmon-consumer", daemon=True
        )
        self._consumer_thread.start()
        self.bar_builder = BarBuilder(self.store, busy=self.consumer.backlogged)
        self._bars_thread = threading.Thread(target=self.bar_builder.run, name="stockmon-bars", daemon=True)
        self._bars_thread.start()
        self.producer.start()
        self.heartbeat = Heartbeat(self.store.heartbeats, "app", self._beat).start()
        if self.watchlist.seed(s.watchlist, s.source):
            for symbol in s.watchlist:
                self.producer.request_backfill(symbol, s.source)

    def _make_source(self, name: str):
        return make_source(name, self.settings, last_prices=self.store.last_closes)

    def lookup(self, source_name: str, symbol: str):
        """Confirm a ticker with its source (used by the watchlist)."""
        if self.producer is not None:
            return self.producer.source(source_name).lookup(symbol)
        src = self._lookup_sources.get(source_name)
        if src is None:
            src = self._lookup_sources[source_name] = self._make_source(source_name)
        return src.lookup(symbol)

    def add_symbol(self, text: str, source: str | None = None):
        """Add to the watchlist and backfill through Kafka; raises ``WatchlistError`` with a reason."""
        entry = self.watchlist.add(text, source or self.settings.source)
        if self.producer is not None:
            self.producer.request_backfill(entry.symbol, entry.source)
        return entry

    def pause(self) -> None:
        with self._lock:
            if self.state == "running" and self.producer:
                self.producer.pause()
                self.consumer.pause()
                self.state = "paused"

    def resume(self) -> None:
        with self._lock:
            if self.state == "paused" and self.producer:
                self.producer.resume()
                self.consumer.resume()
                self.state = "running"
            elif self.state in ("stopped", "error"):
                self.start(pipeline=True)

    def stop(self) -> None:
        """Stop producer, consumer and (if owned) the local stack. Idempotent."""
        self._stopping.set()
        with self._lock:
            if self.heartbeat is not None:
                self.heartbeat.stop()
                self.heartbeat = None
            if self.producer is not None:
                self.producer.stop()
                self.producer = None
            if self.consumer is not None:
                self.consumer.stop()
                if self._consumer_thread is not None:
                    self._consumer_thread.join(timeout=15)
                self.consumer = None
            if self.notifier is not None:
                self.notifier.stop()
                self.notifier = None
            self.alerts = None
            if self.bar_builder is not None:
                self.bar_builder.stop()
                self._bars_thread.join(timeout=30)
                self.bar_builder = None
            if self.store is not None:
                self.store.close()
                self.store = None
            if self.stack is not None:
                self.stack.stop()
                self.stack = None
            self.state = "stopped"

    def _kafka_version(self, bootstrap: str, ttl_s: float = 5.0) -> str | None:
        """Broker check, cached a few seconds: pages refresh health often and a down broker costs 2 s."""
        cached = self._kafka_probe
        if cached and cached[0] == bootstrap and time.monotonic() - cached[1] < ttl_s:
            return cached[2]
        version = kafka_answers(bootstrap, timeout=2.0, **self.settings.kafka_options())
        self._kafka_probe = (bootstrap, time.monotonic(), version)
        return version

    def _beat(self) -> dict:
        consumer, producer = self.consumer, self.producer
        return {
            "state": self.state,
            "published": producer.snapshot()["published"] if producer else 0,
            "stored": consumer.tally.counts.get("stored", 0) if consumer else 0,
            "assigned": consumer.state.assigned if consumer else [],
        }

    # -- health -------------------------------------------------------------------------------------
    def health(self) -> dict:
        s = self.settings
        kafka_bootstrap = self.kafka_bootstrap or s.kafka_bootstrap_servers or ""
        mongo_uri = self.mongodb_uri or s.mongodb_uri or ""
        snap: dict[str, Any] = {
            "mode": self.mode,
            "state": self.state,
            "error": self.error,
            "started_at": self.started_at,
            "timings": dict(self.timings),
            "process_id": self.process_id,
            "kafka": {"bootstrap": kafka_bootstrap, "ok": False, "version": None},
            "mongo": {"uri": mask_uri(mongo_uri), "ok": False, "version": None},
            "topics": {"prices": s.topic_prices, "dead_letter": s.topic_dead_letter},
            "stack": self.stack.describe() if self.stack else [],
            "restarts": dict(self.restarts),
            "data_dir": str(s.data_dir) if s.embedded else None,
            "demo_mode": s.demo_mode,
            "source": s.source,
        }
        if kafka_bootstrap:
            version = self._kafka_version(kafka_bootstrap)
            snap["kafka"].update(ok=version is not None, version=version)
        store = self.store
        if store is not None:
            try:
                snap["mongo"].update(ok=True, version=store.ping())
            except Exception as exc:
                snap["mongo"]["error"] = explain(exc)
        producer, consumer = self.producer, self.consumer
        snap["producer"] = producer.snapshot() if producer else None
        snap["consumer"] = consumer.snapshot() if consumer else None
        builder = self.bar_builder
        snap["bars"] = builder.snapshot() if builder else None
        alerts, notifier = self.alerts, self.notifier
        snap["alerts"] = {
            "engine": alerts.snapshot() if alerts else None,
            "channels": notifier.snapshot() if notifier else {},
        }
        if store is not None and snap["mongo"]["ok"]:
            try:
                snap["backfills"], snap["processes"] = queries.backfills(store), queries.processes(store)
            except Exception:
                snap.setdefault("backfills", [])
        return snap


def explain(exc: BaseException) -> str:
    """Turn an exception into a sentence for a person (details stay in the log)."""
    from kafka.errors import KafkaError
    from pymongo.errors import PyMongoError, ServerSelectionTimeoutError

    from .config import ConfigError

    if isinstance(exc, (StackError, ConfigError)):
        return str(exc)
    if isinstance(exc, ServerSelectionTimeoutError):
        return (
            "MongoDB is not reachable. Check that the server runs and that MONGODB_URI is right "
            f"({exc.__class__.__name__})."
        )
    if isinstance(exc, PyMongoError):
        return f"MongoDB refused the request: {str(exc)[:200]}"
    if isinstance(exc, KafkaError):
        return (
            f"Kafka is not reachable or refused the request ({exc.__class__.__name__}). Check that the "
            "broker runs and that KAFKA_BOOTSTRAP_SERVERS is right."
        )
    return f"{exc.__class__.__name__}: {str(exc)[:300]}"
