"""The producer: APScheduler jobs fetch from each source and publish validated events to Kafka.

Guarantees:
- One ``BackgroundScheduler`` per producer, one interval job per source in use (``max_instances=1``,
  ``coalesce=True``: a slow source skips runs instead of piling them up). The job set follows the
  watchlist: a symbol added with a new source gets a job on the next sync, without a restart.
- Events are published keyed by symbol (per-symbol order) by an idempotent ``acks='all'`` producer.
  A send that fails after the client's own retries is kept and retried on the next run; none is
  dropped silently (if the retry buffer overflows, the loss is counted and reported in health).
- Per job and per symbol: published, rejected (with reasons), last run, next run, duration, last error.
- A streaming source (one with ``attach``, e.g. ``yahoo_stream``) is attached to the publisher when it
  is first used: it publishes pushed ticks itself, and its interval job only tells it the symbols.
  When no symbol uses it any more it is told an empty list; ``pause()`` and ``stop()`` stop it
  (its connection closes), ``resume()`` starts it again.
- A source with ``min_interval(n)`` (a request budget) is never polled more often than that for its
  ``n`` symbols: the job runs every ``max(STOCKMON_POLL_SECONDS, floor)`` s, re-planned on every sync
  (``snapshot()["poll_intervals"]`` says which applies).
- Backfills publish a symbol's history through the same topic, with progress in MongoDB. ``stop()``
  is noticed between chunks (one day of 1m bars each): the backfill is marked ``interrupted``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from . import bus
from .metrics import Rate, Tally
from .models import PriceEvent, utcnow
from .sources import Source
from .sources.base import FetchResult
from .store import Store
from .watchlist import Watchlist

log = logging.getLogger(__name__)

MAX_PENDING = 50_000
SYNC_SECONDS = 3.0


class Publisher:
    """Sends events to the prices topic and keeps what the broker did not acknowledge."""

    def __init__(self, kafka_producer, topic: str):
        self.kafka = kafka_producer
        self.topic = topic
        self.pending: deque[PriceEvent] = deque()
        self.tally = Tally()
        self.rate = Rate()
        self._lock = threading.Lock()

    def publish(self, events: Sequence[PriceEvent], timeout_s: float = 30.0) -> int:
        """Send ``events`` (after any left over from a failed run); return how many were acknowledged."""
        with self._lock:
            batch = list(self.pending) + list(events)
            self.pending.clear()
            futures = [
                (e, self.kafka.send(self.topic, key=e.symbol.encode(), value=e.to_json_bytes()))
                for e in batch
            ]
            deadline = time.monotonic() + timeout_s  # one deadline for the whole batch, not per event
            try:
                self.kafka.flush(timeout=timeout_s)
            except Exception as exc:  # kafka-python raises KafkaTimeoutError and friends
                log.warning("flush failed: %s", exc)
            ok = 0
            for event, future in futures:
                try:
                    future.get(timeout=max(0.0, deadline - time.monotonic()) or 0.001)
                    ok += 1
                except Exception as exc:  # keep it for the next run, count it
                    self.tally.add("send_failed")
                    self.tally.reason(
                        symbol=event.symbol, reason=f"send failed: {exc.__class__.__name__}: {exc}"
                    )
                    self.pending.append(event)
            overflow = len(self.pending) - MAX_PENDING
            if overflow > 0:
                for _ in range(overflow):
                    self.pending.popleft()
                self.tally.add("lost_overflow", overflow)
                log.error("retry buffer overflow: %d events lost", overflow)
            self.tally.add("published", ok)
            self.rate.add(ok)
            return ok


class JobStats:
    def __init__(self, name: str):
        self.name = name
        self.runs = 0
        self.last_run: float | None = None
        self.duration_s: float | None = None
        self.last_error: str | None = None
        self.published = 0
        self.rejected = 0
        self.per_symbol: dict[str, dict] = defaultdict(
            lambda: {"published": 0, "errors": 0, "last_error": None, "last_ok": None}
        )

    def snapshot(self) -> dict:
        return {
            "name": self.name,
            "runs": self.runs,
            "last_run": self.last_run,
            "duration_s": self.duration_s,
            "last_error": self.last_error,
            "published": self.published,
            "rejected": self.rejected,
            "per_symbol": {k: dict(v) for k, v in self.per_symbol.items()},
        }


class Producer:
    """Schedules fetch jobs per source and backfills; publishes through one ``Publisher``."""

    def __init__(
        self,
        bootstrap: str,
        settings,
        store: Store,
        watchlist: Watchlist,
        source_factory: Callable[[str], Source],
    ):
        self.settings = settings
        self.store = store
        self.watchlist = watchlist
        self.source_factory = source_factory
        self.sources: dict[str, Source] = {}
        self.publisher = Publisher(bus.producer(bootstrap, settings), settings.topic_prices)
        self.jobs: dict[str, JobStats] = {}
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": ThreadPoolExecutor(4)},
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": 30},
        )
        self._source_lock = threading.Lock()
        self._running_jobs = 0
        self._jobs_idle = threading.Condition()
        self._stopping = threading.Event()
        self.poll_intervals: dict[str, dict] = {}

    def _tracked(self, fn: Callable) -> Callable:
        """Count a job while it runs, so ``stop`` can wait for it before shutting the scheduler down."""

        def run(*args):
            with self._jobs_idle:
                self._running_jobs += 1
            try:
                return fn(*args)
            finally:
                with self._jobs_idle:
                    self._running_jobs -= 1
                    self._jobs_idle.notify_all()

        run.__name__ = getattr(fn, "__name__", "job")
        return run

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> None:
        self.scheduler.start()
        self.sync_jobs()  # first jobs now, not after the first sync interval
        self.scheduler.add_job(self._tracked(self.sync_jobs), "interval", seconds=SYNC_SECONDS, id="sync")

    def pause(self) -> None:
        self.scheduler.pause()
        for src in list(self.sources.values()):
            if hasattr(src, "attach"):  # a paused pipeline takes no pushed prices either
                src.stop()  # type: ignore[attr-defined]

    def resume(self) -> None:
        self.scheduler.resume()
        for src in list(self.sources.values()):
            if hasattr(src, "attach"):
                self._attach(src)

    @property
    def paused(self) -> bool:
        from apscheduler.schedulers.base import STATE_PAUSED

        return self.scheduler.state == STATE_PAUSED

    def stop(self, wait_s: float = 30.0) -> None:
        """Stop scheduling, let running jobs finish (up to ``wait_s``), then shut the scheduler down.

        APScheduler's ``shutdown(wait=True)`` holds its job-store lock while it joins the workers, so
        a job that touches the scheduler at that moment (``sync_jobs``) would deadlock it: pausing
        first and waiting for our own count of running jobs avoids that.
        """
        self._stopping.set()
        for src in list(self.sources.values()):
            if hasattr(src, "attach"):  # a streaming source: close its connection and threads
                try:
                    src.stop()  # type: ignore[attr-defined]
                except Exception as exc:
                    log.warning("stream stop: %s", exc)
        if self.scheduler.running:
            self.scheduler.pause()
            with self._jobs_idle:
                self._jobs_idle.wait_for(lambda: self._running_jobs == 0, timeout=wait_s)
                idle = self._running_jobs == 0
            self.scheduler.shutdown(wait=idle)
        try:
            self.publisher.kafka.close(timeout=5)
        except Exception as exc:
            log.debug("producer close: %s", exc)

    # -- jobs ---------------------------------------------------------------------------------------
    def source(self, name: str) -> Source:
        with self._source_lock:
            if name not in self.sources:
                self.sources[name] = self.source_factory(name)
                if hasattr(self.sources[name], "attach"):
                    self._attach(self.sources[name])
            return self.sources[name]

    def _attach(self, stream) -> None:
        """Start a streaming source: it publishes what is pushed as it arrives, bad frames dead-lettered."""
        from .sources.yahoo_stream import dead_letter_sender

        stream.attach(
            self.publisher.publish, dead_letter_sender(self.publisher.kafka, self.settings.topic_dead_letter)
        )

    def _poll_interval(self, name: str, symbols: int) -> float:
        """``STOCKMON_POLL_SECONDS``, or the floor the source's request budget sustains if higher."""
        floor_of = getattr(self.source(name), "min_interval", None)
        floor = float(floor_of(symbols)) if callable(floor_of) else 0.0
        used = max(float(self.settings.poll_seconds), floor)
        self.poll_intervals[name] = {
            "setting_s": float(self.settings.poll_seconds),
            "floor_s": round(floor, 2),
            "used_s": round(used, 2),
            "symbols": symbols,
        }
        return used

    def sync_jobs(self) -> None:
        """Make the set of fetch jobs match the sources the enabled watchlist uses."""
        if self._stopping.is_set():
            return
        try:
            by_source = self.watchlist.symbols_by_source()
            wanted = set(by_source)
        except Exception as exc:  # MongoDB down: keep the jobs we have
            log.warning("watchlist unavailable, keeping current jobs: %s", exc)
            return
        current = {
            j.id.removeprefix("fetch:") for j in self.scheduler.get_jobs() if j.id.startswith("fetch:")
        }
        for name in wanted - current:
            self.jobs.setdefault(name, JobStats(name))
            self.scheduler.add_job(
                self._tracked(self.run_fetch),
                "interval",
                args=[name],
                id=f"fetch:{name}",
                seconds=self._poll_interval(name, len(by_source[name])),
                next_run_time=datetime.now(UTC),
            )
            log.info("fetch job for %s started", name)
        for name in wanted & current:  # the budget's floor moves with the number of symbols
            seconds = self._poll_interval(name, len(by_source[name]))
            job = self.scheduler.get_job(f"fetch:{name}")
            interval = getattr(getattr(job, "trigger", None), "interval", None)
            if job is not None and interval is not None and abs(interval.total_seconds() - seconds) > 0.01:
                self.scheduler.reschedule_job(f"fetch:{name}", trigger="interval", seconds=seconds)
        for name in current - wanted:
            self.scheduler.remove_job(f"fetch:{name}")
            self.poll_intervals.pop(name, None)
            stream = self.sources.get(name)
            if stream is not None and hasattr(stream, "attach"):
                stream.fetch([])  # nothing to stream: unsubscribe
            log.info("fetch job for %s stopped (no symbols)", name)

    def run_fetch(self, source_name: str) -> int:
        if self._stopping.is_set():  # queued before stop(): nothing new is fetched once stopping
            return 0
        stats = self.jobs.setdefault(source_name, JobStats(source_name))
        t0 = time.perf_counter()
        stats.runs += 1
        stats.last_run = time.time()
        try:
            symbols = self.watchlist.symbols_by_source().get(source_name, [])
            if not symbols:
                return 0
            result = self.source(source_name).fetch(symbols)
            self._account(stats, result)
            sent = self.publisher.publish(result.events)
            stats.published += sent
            stats.last_error = None if not result.errors else f"{len(result.errors)} symbol(s) failed"
            return sent
        except Exception as exc:  # a job must never die; the reason goes to health
            stats.last_error = f"{exc.__class__.__name__}: {exc}"
            log.exception("fetch job %s failed", source_name)
            return 0
        finally:
            stats.duration_s = round(time.perf_counter() - t0, 3)

    def _account(self, stats: JobStats, result: FetchResult) -> None:
        now = time.time()
        for event in result.events:
            stats.per_symbol[event.symbol]["published"] += 1
            stats.per_symbol[event.symbol]["last_ok"] = now
        for symbol, reason in result.errors.items():
            row = stats.per_symbol[symbol]
            row["errors"] += 1
            row["last_error"] = reason
            stats.rejected += 1
            self.publisher.tally.reason(symbol=symbol, reason=reason)

    # -- backfill -----------------------------------------------------------------------------------
    def request_backfill(self, symbol: str, source_name: str) -> None:
        """Queue a one-off job that publishes ``symbol``'s history; progress is recorded in the store's backfill record."""
        self.store.request_backfill(symbol, source_name)
        self.scheduler.add_job(
            self._tracked(self.run_backfill),
            args=[symbol, source_name],
            id=f"backfill:{symbol}",
            replace_existing=True,
            next_run_time=datetime.now(UTC),
            # queued behind others (4 workers, a request budget) it may start minutes late: it must
            # still run, not be dropped as "missed" after the default 30 s grace
            misfire_grace_time=None,
        )

    def backfill_plan(self, now: datetime) -> list[tuple[str, datetime, datetime]]:
        s = self.settings
        plan = []
        if s.backfill_days_daily:
            plan.append(
                ("1d", now - timedelta(days=s.backfill_days_daily), now - timedelta(days=s.backfill_days_1m))
            )
        if s.backfill_days_1m:
            for day in range(int(s.backfill_days_1m), 0, -1):  # one chunk per day: visible progress
                plan.append(("1m", now - timedelta(days=day), now - timedelta(days=day - 1)))
        return plan

    def run_backfill(self, symbol: str, source_name: str) -> int:
        now = utcnow().replace(second=0, microsecond=0)
        plan = self.backfill_plan(now)
        record = self.store.update_backfill
        record(symbol, status="running", total=len(plan), started_at=utcnow())
        published = 0
        errors: list[str] = []
        try:
            source = self.source(source_name)
            status = None
            for i, (interval, start, end) in enumerate(plan, 1):
                if self._stopping.is_set():
                    status, errors = "interrupted", errors + ["the app stopped before the backfill finished"]
                    break
                result = source.backfill(symbol, start, end, interval)
                errors.extend(result.errors.values())
                published += self.publisher.publish(result.events)
                record(symbol, done=i, published=published)
            status = status or ("done" if published or not errors else "failed")
            record(
                symbol,
                status=status,
                finished_at=utcnow(),
                error="; ".join(sorted(set(errors)))[:500] or None,
            )
        except Exception as exc:
            log.exception("backfill of %s failed", symbol)
            record(symbol, status="failed", error=str(exc)[:500], finished_at=utcnow())
        return published

    # -- health -------------------------------------------------------------------------------------
    def snapshot(self) -> dict:
        jobs = {}
        for job in self.scheduler.get_jobs() if self.scheduler.running else []:
            if job.id.startswith("fetch:"):
                name = job.id.removeprefix("fetch:")
                stats = self.jobs.get(name, JobStats(name)).snapshot()
                stats["next_run"] = job.next_run_time.timestamp() if job.next_run_time else None
                jobs[name] = stats
        with self._source_lock:
            sources = {}
            for name, src in self.sources.items():
                try:
                    sources[name] = src.health()
                except Exception as exc:
                    sources[name] = {"error": str(exc)}
        pub = self.publisher.tally.snapshot()
        return {
            "running": self.scheduler.running,
            "paused": self.paused,
            "jobs": jobs,
            "sources": sources,
            "published": pub["counts"].get("published", 0),
            "send_failed": pub["counts"].get("send_failed", 0),
            "lost_overflow": pub["counts"].get("lost_overflow", 0),
            "pending": len(self.publisher.pending),
            "recent_errors": pub["recent"][-20:],
            "throughput": self.publisher.rate.series(),
            "poll_intervals": dict(self.poll_intervals),
        }
