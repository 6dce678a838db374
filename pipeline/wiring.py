"""The one place that builds the pipeline's object graph from settings and server endpoints.

Every process role takes its parts from here, so the app and the scale-out commands cannot drift:

- ``connect(settings, kafka, mongodb_uri)`` -> ``Connection``: the store, the watchlist and the
  sources (shared by ticker lookups and the producer), plus ``page_store``/``page_watchlist`` on a
  second MongoDB client for pages and health, whose every operation ends within
  ``STOCKMON_MONGO_TIMEOUT`` seconds (the pipeline's client waits up to
  ``STOCKMON_MONGO_WRITE_TIMEOUT`` per reply: long writes may take time, but none waits forever). ``prepare(connection)`` makes the indexes and
  topics (idempotent); ``prepare_store`` only the indexes.
- role ``app`` (``Runtime``, inside Streamlit): ``App`` = producer + ingest + notifier + heartbeat.
- role ``produce`` (``python -m pipeline produce``): ``Produce`` = producer + heartbeat.
- role ``consume`` (``python -m pipeline consume``): ``Consume`` = ingest + heartbeat, where
  ``Ingest`` = consumer + bar builder + alert engine. In both roles the consumer runs under
  ``PriceConsumer.run_supervised``: a crashed loop is restarted with backoff and the crash recorded.

Guarantees:
- A role's dataclass holds exactly the parts it runs; no field is ever None.
- ``stop()`` of every role goes in dependency order: the heartbeat; no new work (producer jobs and
  backfills stop between chunks) while, at the same time, the consumer's in-flight batch is stored
  and committed, the bar builder stops between days and the alert engine is flushed; then delivery. Clients of
  the servers close after that (``Connection.close``); servers are never started or stopped here.
- Background threads are daemons and never touch Streamlit.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from pymongo.errors import PyMongoError

from . import bus
from .alerts import AlertEngine, Notifier
from .alerts import ensure_indexes as ensure_alert_indexes
from .bars import BarBuilder
from .config import Settings
from .consumer import PriceConsumer
from .forecast.job import ForecastJob
from .heartbeat import Heartbeat
from .markets.calendars import SymbolInfo
from .producer import Producer
from .sources import Source, make_source, yahoo_budget
from .store import Store
from .watchlist import Watchlist

log = logging.getLogger(__name__)


class Connection:
    """Clients of one Kafka cluster and one MongoDB database, with the watchlist and the sources.

    ``store``/``watchlist`` are the pipeline's; ``page_store``/``page_watchlist`` (the same
    collections on a client with a short per-operation deadline) are what pages and the health
    snapshot use, so a frozen MongoDB costs a page a few seconds, never a hang. Without ``page_store``
    both are the one ``store``."""

    def __init__(
        self, settings: Settings, kafka: str, mongodb_uri: str, store: Store, page_store: Store | None = None
    ):
        self.settings = settings
        self.kafka = kafka
        self.mongodb_uri = mongodb_uri
        self.store = store
        self.page_store = page_store or store
        self.watchlist = Watchlist(store.watchlist, self.lookup, settings.max_symbols)
        self.page_watchlist = Watchlist(self.page_store.watchlist, self.lookup, settings.max_symbols)
        self._sources: dict[str, Source] = {}
        self._lock = threading.Lock()
        self.yahoo_budget = yahoo_budget(settings)  # one Yahoo request budget per process

    def source(self, name: str) -> Source:
        """The one instance of source ``name`` in this process (raises ``ConfigError`` if unknown)."""
        with self._lock:
            if name not in self._sources:
                self._sources[name] = make_source(
                    name, self.settings, last_prices=self.store.last_closes, budget=self.yahoo_budget
                )
            return self._sources[name]

    def lookup(self, source_name: str, symbol: str) -> SymbolInfo:
        """Confirm a ticker with its source (the watchlist's check)."""
        return self.source(source_name).lookup(symbol)

    def close(self) -> None:
        self.store.close()
        if self.page_store is not self.store:
            self.page_store.close()


def connect(settings: Settings, kafka: str, mongodb_uri: str) -> Connection:
    """Clients only: nothing is created on the servers and nothing is sent yet. The pipeline's
    client waits ``mongo_write_timeout`` s per reply; the pages' one ends every operation within
    ``mongo_timeout`` s (see ``pipeline.store.connect``)."""
    timeout = settings.mongo_timeout
    store = Store.from_uri(mongodb_uri, settings.db, timeout, socket_timeout_s=settings.mongo_write_timeout)
    pages = Store.from_uri(
        mongodb_uri, settings.db, timeout, socket_timeout_s=timeout, operation_timeout=True
    )
    return Connection(settings, kafka, mongodb_uri, store, pages)


def prepare_store(conn: Connection) -> None:
    """Create the indexes the store and the alerts rely on (idempotent). Raises ``PyMongoError``."""
    conn.store.ensure_indexes()
    ensure_alert_indexes(conn.store)


def prepare(conn: Connection) -> dict[str, str]:
    """Ping MongoDB, create indexes and topics; return {topic: "created" | "exists"}. Raises
    ``PyMongoError`` / ``KafkaError`` when a server refuses or does not answer."""
    conn.store.ping()
    prepare_store(conn)
    return bus.create_topics(conn.kafka, conn.settings)


@dataclass
class Ingest:
    """Consumer (Kafka -> MongoDB), the bar builder beside it, the alert engine on its stored batches."""

    consumer: PriceConsumer
    bars: BarBuilder
    alerts: AlertEngine
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self, consumer_thread: bool = True) -> Ingest:
        """Run the bar builder (and, unless the caller runs the consumer itself, the consumer under
        ``run_supervised``: restarted with backoff whenever its loop crashes) in daemon threads."""
        targets = [("bars", self.bars.run)]
        if consumer_thread:
            targets.insert(0, ("consumer", self.consumer.run_supervised))
        for name, target in targets:
            thread = threading.Thread(target=target, name=f"stockmon-{name}", daemon=True)
            thread.start()
            self.threads.append(thread)
        return self

    def stop(self, timeout_s: float = 15.0) -> dict[str, float]:
        """Store and commit the in-flight batch, stop the bar builder, persist the alert engine;
        return the seconds each took (for the log)."""
        self.consumer.stop()
        self.bars.stop()
        took = {}
        for thread in self.threads:  # the consumer first: it drains its batch before it returns
            t0 = time.perf_counter()
            thread.join(timeout_s)
            took[thread.name.removeprefix("stockmon-")] = time.perf_counter() - t0
        self.threads = []
        try:
            self.alerts.flush()
        except PyMongoError as exc:  # the next process re-evaluates from the last persisted state
            log.warning("alert state not flushed on stop: %s", exc)
        return took

    def consumer_thread_gone(self) -> bool:
        """True when this ingest started a consumer thread and it ended although nobody stopped it."""
        return (
            any(t.name == "stockmon-consumer" and not t.is_alive() for t in self.threads)
            and not self.consumer.stopping
        )

    def counts(self) -> dict:
        return {
            "group": self.consumer.group,
            "stored": self.consumer.tally.counts.get("stored", 0),
            "assigned": self.consumer.state.assigned,
            "lag": sum(self.consumer.state.lag.values()),
        }


def build_ingest(
    conn: Connection, group: str | None = None, instance_id: str | None = None, on_fired=None
) -> Ingest:
    """Not started. ``instance_id`` makes the consumer a static group member (see ``PriceConsumer``)."""
    alerts = AlertEngine(conn.store, conn.settings, on_fired=on_fired)
    consumer = PriceConsumer(
        conn.kafka,
        conn.settings,
        conn.store,
        group=group,
        instance_id=instance_id,
        on_stored=alerts.on_stored,
        idle_poll_s=conn.settings.consumer_idle_s,
    )
    alerts.bind(consumer)
    return Ingest(
        consumer, BarBuilder(conn.store, every_s=conn.settings.bar_period_s, busy=consumer.backlogged), alerts
    )


def build_producer(conn: Connection) -> Producer:
    """Not started; its sources are the connection's."""
    return Producer(conn.kafka, conn.settings, conn.store, conn.watchlist, conn.source)


def _heartbeat(conn: Connection, role: str, snapshot) -> Heartbeat:
    return Heartbeat(conn.store.heartbeats, role, snapshot)


@dataclass
class App:
    """Everything the Streamlit app runs in its process."""

    producer: Producer
    ingest: Ingest
    notifier: Notifier
    heartbeat: Heartbeat
    forecasts: ForecastJob | None = None  # issue 14: runs on the producer's scheduler

    @property
    def consumer(self) -> PriceConsumer:
        return self.ingest.consumer

    def start(self) -> App:
        self.notifier.start()
        self.ingest.start()
        self.producer.start()
        if self.forecasts is not None:
            self.forecasts.attach(self.producer.scheduler, self.producer._tracked)
            self.producer.on_backfilled = self.forecasts.backfilled
        self.heartbeat.start()
        return self

    def pause(self) -> None:
        self.producer.pause()
        self.ingest.consumer.pause()

    def resume(self) -> None:
        self.producer.resume()
        self.ingest.consumer.resume()

    def stop(self) -> dict[str, float]:
        """Stop in order; return the seconds each step took (for the log). The producer and the
        ingest side are independent (Kafka sits between them), so they stop at the same time."""
        took: dict[str, float] = {}

        def timed(name: str, step) -> None:
            t0 = time.perf_counter()
            step()
            took[name] = time.perf_counter() - t0

        timed("heartbeat", self.heartbeat.stop)
        producer = threading.Thread(target=timed, args=("producer", self.producer.stop), name="stockmon-stop")
        producer.start()
        took.update(self.ingest.stop())
        producer.join()
        timed("notifier", self.notifier.stop)
        return took


def build_app(conn: Connection, instance_id: str) -> App:
    """Not started. Alerts fired by the engine wake the notifier at once; records the producer
    published wake the consumer at once."""
    notifier = Notifier(conn.store, conn.settings)
    producer = build_producer(conn)
    ingest = build_ingest(conn, instance_id=instance_id, on_fired=notifier.wake)
    producer.publisher.on_acked = ingest.consumer.wake

    def beat() -> dict:
        return {
            "state": "paused" if producer.paused else "running",
            "published": producer.snapshot()["published"],
            "stored": ingest.consumer.tally.counts.get("stored", 0),
            "assigned": ingest.consumer.state.assigned,
        }

    forecasts = ForecastJob(conn.store, lambda: conn.watchlist.entries(enabled_only=True))
    return App(producer, ingest, notifier, _heartbeat(conn, "app", beat), forecasts)


@dataclass
class Produce:
    """``python -m pipeline produce``: the producer's jobs in their own process."""

    producer: Producer
    heartbeat: Heartbeat

    def start(self) -> Produce:
        self.producer.start()
        self.heartbeat.start()
        return self

    def stop(self) -> None:
        self.heartbeat.stop()
        self.producer.stop()


def build_produce(conn: Connection) -> Produce:
    producer = build_producer(conn)
    beat = _heartbeat(conn, "produce", lambda: {"published": producer.snapshot()["published"]})
    return Produce(producer, beat)


@dataclass
class Consume:
    """``python -m pipeline consume``: one consumer-group member with its bar builder and alerts."""

    ingest: Ingest
    heartbeat: Heartbeat

    def run(self, max_idle_s: float | None = None) -> None:
        """Consume in this thread until ``ingest.consumer.stop()`` (or ``max_idle_s`` without
        messages), then stop in order and build the bars of everything stored."""
        self.ingest.start(consumer_thread=False)
        self.heartbeat.start()
        try:
            self.ingest.consumer.run_supervised(max_idle_s=max_idle_s)  # one poison message cannot end it
        finally:
            self.heartbeat.stop()
            self.ingest.stop()
        bars = self.ingest.bars
        bars.budget_s = None  # one pass over everything marked: leave no bar behind the stored prices
        bars.run_once(interruptible=False)


def build_consume(conn: Connection, group: str | None = None, instance_id: str | None = None) -> Consume:
    """Scale-out members evaluate alert rules too (alerts are deduplicated by id)."""
    ingest = build_ingest(conn, group=group, instance_id=instance_id)
    return Consume(ingest, _heartbeat(conn, "consume", ingest.counts))
