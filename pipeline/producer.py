"""The producer: APScheduler jobs fetch from each source and publish validated events to Kafka.

Guarantees:
- One ``BackgroundScheduler`` per producer, one interval job per source in use (``max_instances=1``,
  ``coalesce=True``: a slow source skips runs instead of piling them up). The job set follows the
  watchlist: a symbol added with a new source gets a job on the next sync, without a restart.
- Events are published keyed by symbol (per-symbol order) by an idempotent ``acks='all'`` producer.
  A send that fails after the client's own retries is kept and retried on the next run; none is
  dropped silently (if the retry buffer overflows, the loss is counted and reported in health).
- An acknowledged event is not lost when the broker loses the tail of its log (the embedded broker
  killed between two snapshots, or any broker that comes back shorter): the ``Publisher``
  (``pipeline.publisher``) keeps acknowledged events for a replay window, checks the topic's end
  offsets every second and re-publishes what the log lost (see ``Publisher`` for the limits). Health shows the regressions
  and the replays (``snapshot()["replay"]``).
- Per job and per symbol: published, rejected (with reasons), last run, next run, duration, last error.
- A streaming source (one with ``attach``, e.g. ``yahoo_stream``) is attached to the publisher when it
  is first used: it publishes pushed ticks itself, and its interval job only tells it the symbols.
  When no symbol uses it any more it is told an empty list; ``pause()`` and ``stop()`` stop it
  (its connection closes), ``resume()`` starts it again.
- ``pause()`` returns once nothing fetches or publishes any more (it waits for a fetch or a backfill
  chunk already under way, at most ``wait_s``, and says whether it got there): a count read after it
  (``snapshot()["published"]``) is final until ``resume()``. A job that starts while paused does
  nothing (a fetch is skipped; a backfill waits between chunks until ``resume()`` or ``stop()``).
  Not covered: re-sends of failed sends by the log check (``pending``, empty while the broker answers).
- Backfill jobs run on threads of their own (``BACKFILL_EXECUTOR``): the sync job, live fetches and
  the official-days job are never queued behind backfills waiting for request-budget slots.
- A source with ``min_interval(n)`` (a request budget) is never polled more often than that for its
  ``n`` symbols: the job runs every ``max(STOCKMON_POLL_SECONDS, floor)`` s, re-planned on every sync
  (``snapshot()["poll_intervals"]`` says which applies).
- Once a session has settled, each watched symbol's official daily bar of it is fetched and published
  (``pipeline.official_days``, every 10 min; ``snapshot()["official_days"]``).
- Backfills publish a symbol's history through the same topic, with progress in MongoDB. ``stop()``
  is noticed between chunks (one day of 1m bars each): the backfill is marked ``interrupted``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from . import bus, corporate_actions
from .models import utcnow
from .official_days import EVERY_S as OFFICIAL_EVERY_S
from .official_days import OfficialDays
from .publisher import Publisher
from .sources import Source, StreamingSource
from .sources.base import FetchResult
from .store import Store
from .watchlist import Watchlist

log = logging.getLogger(__name__)

SYNC_SECONDS = 3.0
#: The scheduler executor of backfill jobs (four threads); live fetches and the sync job use the
#: default pool, so a backfill waiting for request-budget slots never holds up a live price.
BACKFILL_EXECUTOR = "backfill"
#: The scheduler executor of the forecast job (two threads: its periodic check or "Compute now", and
#: the forecasts that follow backfills): minutes of model fitting never hold up a live fetch.
FORECAST_EXECUTOR = "forecast"


class SkippedRunsFilter(logging.Filter):
    """Drops APScheduler's per-run warnings that a *fetch* job's run was skipped ("maximum number of
    running instances reached", "was missed by"): on a loaded machine they repeated every poll
    period. The producer counts them instead (each fetch job's ``skipped``), and Pipeline health
    shows them with what to do. Other jobs' skips (a backfill or a forecast dropped) still log."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        if "maximum number of running instances reached" not in message and "was missed by" not in message:
            return True
        job = record.args[0] if isinstance(record.args, tuple) and record.args else None
        return not str(getattr(job, "id", "")).startswith("fetch:")


SKIPPED_RUNS_FILTER = SkippedRunsFilter()
for _name in (
    "scheduler",
    "executors.default",
    f"executors.{BACKFILL_EXECUTOR}",
    f"executors.{FORECAST_EXECUTOR}",
):
    logging.getLogger(f"apscheduler.{_name}").addFilter(SKIPPED_RUNS_FILTER)


class JobStats:
    def __init__(self, name: str):
        self.name = name
        self.runs = 0
        self.last_run: float | None = None
        self.duration_s: float | None = None
        self.last_error: str | None = None
        self.published = 0
        self.rejected = 0
        self.skipped = 0  # runs APScheduler skipped: the previous one still ran, or it started too late
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
            "skipped": self.skipped,
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
        self.publisher = Publisher(
            bus.producer(bootstrap, settings),
            settings.topic_prices,
            log_ends=bus.LogEnds(bootstrap, settings, settings.topic_prices),
            replay_window_s=settings.replay_window_s,
            max_replay=settings.replay_max_events,
        )
        self.jobs: dict[str, JobStats] = {}
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            # backfills have threads of their own: 50 of them waiting for request-budget slots held all
            # four shared threads, and neither the sync job (which creates the fetch jobs) nor a live
            # fetch ran for minutes
            executors={
                "default": ThreadPoolExecutor(4),
                BACKFILL_EXECUTOR: ThreadPoolExecutor(4),
                FORECAST_EXECUTOR: ThreadPoolExecutor(2),
            },
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": 30},
        )
        self.skipped_runs: dict[str, int] = {}  # per job id: runs APScheduler skipped (see _skipped)
        self.scheduler.add_listener(self._skipped, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED)
        self._source_lock = threading.Lock()
        self._running_jobs = 0
        self._jobs_idle = threading.Condition()
        self._stopping = threading.Event()
        #: Called with the symbol when a backfill finished with status "done" (the app wires its
        #: forecast job here: a first start shows forecasts as soon as the history is stored).
        self.on_backfilled: Callable[[str], None] | None = None
        self._paused = False  # guarded by _jobs_idle, like _busy
        self._busy = 0  # fetches and backfill chunks under way (see _step)
        self.poll_intervals: dict[str, dict] = {}
        self.official_days = OfficialDays(
            store,
            watchlist.symbols_by_source,
            self.source,
            self.publisher.publish,
            record=self.record_extras,
            allowed=lambda: not self._paused and not self._stopping.is_set(),
        )

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

    @contextmanager
    def _step(self, park: bool = False) -> Iterator[bool]:
        """One fetch-and-publish step (a fetch job's run, a backfill chunk): yields whether it may run.
        It may not while paused or stopping; with ``park`` it first waits until resumed (or stopping).
        Steps that run are counted until they end, so ``pause()`` can wait for them: APScheduler's
        pause only stops *new* runs, a job already submitted goes on publishing."""
        with self._jobs_idle:
            if park:
                self._jobs_idle.wait_for(lambda: not self._paused or self._stopping.is_set())
            allowed = not self._paused and not self._stopping.is_set()
            if allowed:
                self._busy += 1
        try:
            yield allowed
        finally:
            if allowed:
                with self._jobs_idle:
                    self._busy -= 1
                    self._jobs_idle.notify_all()

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> None:
        self.publisher.start()
        self.scheduler.start()
        self.sync_jobs()  # first jobs now, not after the first sync interval
        self.scheduler.add_job(self._tracked(self.sync_jobs), "interval", seconds=SYNC_SECONDS, id="sync")
        self.scheduler.add_job(  # first run one period from now: the start-up backfill has the settled days
            self._tracked(self.run_official_days), "interval", seconds=OFFICIAL_EVERY_S, id="official-days"
        )

    def run_official_days(self) -> int:
        """One run of ``OfficialDays`` as a producer step (nothing while paused or stopping)."""
        with self._step() as allowed:
            return self.official_days.run() if allowed else 0

    def pause(self, wait_s: float = 30.0) -> bool:
        """Stop fetching and publishing; return True once no fetch or backfill chunk is under way any
        more (so what was published is final until ``resume()``), False if one still is after
        ``wait_s`` (a slow source; it ends by itself, nothing new starts)."""
        with self._jobs_idle:
            self._paused = True
        self.scheduler.pause()
        for src in list(self.sources.values()):
            if isinstance(src, StreamingSource):  # a paused pipeline takes no pushed prices either
                src.stop()
        with self._jobs_idle:
            return self._jobs_idle.wait_for(lambda: self._busy == 0, timeout=wait_s)

    def resume(self) -> None:
        with self._jobs_idle:
            self._paused = False
            self._jobs_idle.notify_all()  # parked backfills go on
        self.scheduler.resume()
        for src in list(self.sources.values()):
            if isinstance(src, StreamingSource):
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
        with self._jobs_idle:
            self._jobs_idle.notify_all()  # a backfill parked by pause() ends as interrupted
        for src in list(self.sources.values()):
            if isinstance(src, StreamingSource):  # close its connection and threads
                try:
                    src.stop()
                except Exception as exc:
                    log.warning("stream stop: %s", exc)
        if self.scheduler.running:
            self.scheduler.pause()
            with self._jobs_idle:
                self._jobs_idle.wait_for(lambda: self._running_jobs == 0, timeout=wait_s)
                idle = self._running_jobs == 0
            self.scheduler.shutdown(wait=idle)
        self.publisher.close()
        try:
            self.publisher.kafka.close(timeout=5)
        except Exception as exc:
            log.debug("producer close: %s", exc)

    # -- jobs ---------------------------------------------------------------------------------------
    def source(self, name: str) -> Source:
        with self._source_lock:
            if name not in self.sources:
                self.sources[name] = self.source_factory(name)
                built = self.sources[name]
                if isinstance(built, StreamingSource):
                    self._attach(built)
            return self.sources[name]

    def _attach(self, stream: StreamingSource) -> None:
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
            if isinstance(stream, StreamingSource):
                stream.fetch([])  # nothing to stream: unsubscribe
            log.info("fetch job for %s stopped (no symbols)", name)

    def run_fetch(self, source_name: str) -> int:
        with self._step() as allowed:
            if not allowed:  # queued before pause() or stop(): nothing new is fetched then
                return 0
            return self._fetch(source_name)

    def _fetch(self, source_name: str) -> int:
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
            self.record_extras(result)
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

    def record_extras(self, result: FetchResult) -> None:
        """Store what a source's answer carried besides prices, before its prices are published: the
        repairs made to it and its splits and dividends (a new split applied to the stored history)."""
        self._record_repairs(result)
        self._record_actions(result)

    def _record_repairs(self, result: FetchResult) -> None:
        """Store the source's repairs (``Store.record_repairs``); a failed write is logged and
        counted, never a reason to hold the prices back (they are published repaired either way)."""
        if not result.repairs:
            return
        try:
            self.store.record_repairs(result.repairs)
        except Exception as exc:
            self.publisher.tally.add("repairs_not_recorded", len(result.repairs))
            log.warning("could not record %d repairs: %s", len(result.repairs), exc)

    def _record_actions(self, result: FetchResult) -> None:
        """Store the splits and dividends the source saw and apply each new split to the history
        stored before it (``corporate_actions.record_and_apply``), before the answer's own prices
        are published (they are the provider's adjusted history). A failure is logged and counted;
        the action is recorded again, and applied then, with the next answer that carries it."""
        if not result.actions:
            return
        try:
            corporate_actions.record_and_apply(self.store, result.actions, result.events)
        except Exception as exc:
            self.publisher.tally.add("actions_not_recorded", len(result.actions))
            log.warning("could not record %d corporate actions: %s", len(result.actions), exc)

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
            executor=BACKFILL_EXECUTOR,
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
                with self._step(park=True) as allowed:  # paused: wait here until resumed
                    if not allowed:  # stopping
                        status = "interrupted"
                        errors = errors + ["the app stopped before the backfill finished"]
                        break
                    result = source.backfill(symbol, start, end, interval)
                    errors.extend(result.errors.values())
                    self.record_extras(result)
                    published += self.publisher.publish(result.events)
                    record(symbol, done=i, published=published)
            status = status or ("done" if published or not errors else "failed")
            record(
                symbol,
                status=status,
                finished_at=utcnow(),
                error="; ".join(sorted(set(errors)))[:500] or None,
            )
            if status == "done" and self.on_backfilled is not None:
                try:
                    self.on_backfilled(symbol)
                except Exception:  # a listener must never turn a finished backfill into a failed one
                    log.exception("on_backfilled listener failed for %s", symbol)
        except Exception as exc:
            log.exception("backfill of %s failed", symbol)
            record(symbol, status="failed", error=str(exc)[:500], finished_at=utcnow())
        return published

    def _skipped(self, event) -> None:
        """APScheduler skipped a run of a fetch job (the previous one still ran, or the run started
        more than its grace time late): counted in the job's ``skipped`` instead of a log line per
        run (``SkippedRunsFilter`` drops those)."""
        self.skipped_runs[event.job_id] = self.skipped_runs.get(event.job_id, 0) + 1
        if event.job_id.startswith("fetch:"):
            name = event.job_id.removeprefix("fetch:")
            self.jobs.setdefault(name, JobStats(name)).skipped += 1

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
            "skipped_runs": dict(self.skipped_runs),
            "sources": sources,
            "published": pub["counts"].get("published", 0),
            "send_failed": pub["counts"].get("send_failed", 0),
            "lost_overflow": pub["counts"].get("lost_overflow", 0),
            "pending": len(self.publisher.pending),
            "replay": self.publisher.snapshot(),
            "recent_errors": pub["recent"][-20:],
            "throughput": self.publisher.rate.series(),
            "poll_intervals": dict(self.poll_intervals),
            "official_days": self.official_days.snapshot(),
        }
