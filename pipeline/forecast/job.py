"""The forecast job: after each exchange's close (and on demand), backtest and forecast every
enabled watchlist symbol with enough history, and store both.

Guarantees:
- A symbol's as-of is its latest *completed* session: a daily bar whose session is still trading
  (or, around the clock, today's) is left out. Only bars up to the as-of are read, so the stored
  result for an as-of is the same whether or not later bars exist (truncation invariance).
- A symbol with fewer than ``MIN_SESSIONS`` completed daily bars gets no forecast, only a stored
  sentence naming how many sessions are stored.
- Results go to ``forecasts`` / ``forecast_backtests`` through ``Store.write_forecast``, keyed by
  (symbol, as-of, settings hash[, model, horizon]): a rerun replaces, never duplicates.
- ``run_due`` (the scheduled check, every ``CHECK_SECONDS``) computes only symbols whose completed
  as-of has no stored result yet: that is "after each exchange's close" without one timer per
  exchange. ``request`` runs the given symbols now, on the same scheduler. A symbol that fails is
  counted with its reason; the others go on. A run stops between symbols once its scheduler is
  paused or stopping (one symbol takes seconds), so it never holds up the producer's stop.
- ``backfilled(symbol)`` (the producer calls it when a symbol's backfill is done) forecasts that
  symbol as soon as the consumer has stored at least ``MIN_SESSIONS`` of its daily sessions (looked
  at every ``BACKFILL_RETRY_S``), newest backfill first, so a first start shows forecasts within
  about a minute instead of after the next check. A history still short after ``BACKFILL_WAIT_S``
  is taken as it is (the "short" sentence is stored). ``prefer(symbol)`` puts a waiting symbol
  first (the Forecast page asks for the one it shows: on a first start the default symbol, the
  watchlist's first, was backfilled first and so computed last, 6 of 6).
- ``snapshot()`` (for Pipeline health and the Forecast page): last run (epoch s), its duration (s),
  symbols done, skipped and failed with reasons, whether a run is going on, the symbol being
  computed (``current``) and the backfilled symbols waiting (``waiting``). In memory, no I/O.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from ..markets.calendars import Market, day_key, market_for, market_status, session_date, sessions_between
from ..models import utcnow
from .backtest import MIN_SESSIONS, backtest, champion, forecast, settings_hash
from .models import HORIZONS

log = logging.getLogger(__name__)

CHECK_SECONDS = 900
FIRST_CHECK_SECONDS = 120  # after start: let the first backfills land before reading daily bars
HISTORY_DAYS = 1100  # calendar days of daily bars read (about 750 sessions)
MAX_SESSIONS = 750  # the newest sessions used (expanding-window backtests grow no further)
EXECUTOR = "forecast"  # the producer's scheduler executor for these jobs (producer.FORECAST_EXECUTOR)
#: After a symbol's backfill, how long the job waits for the consumer to store its daily history
#: before it takes a short history as final, and how often it looks meanwhile (seconds).
BACKFILL_WAIT_S = 120.0
BACKFILL_RETRY_S = 5.0


def completed_as_of(market: Market, now: datetime) -> date:
    """The latest session date at ``market`` whose daily bar is final at ``now`` (aware): today's
    once its session has closed, else the session before today from the exchange calendar (on a
    Sunday or a holiday Monday, Friday's; the day before today was a Saturday the walk-through saw
    a forecast start from)."""
    today = session_date(now, market.timezone)
    st = market_status(market, now)
    if st.state in ("closed", "post", "pre") and st.session == today and st.last_close is not None:
        return today  # today's session has closed
    before = sessions_between(market, today - timedelta(days=14), today - timedelta(days=1))
    return before[-1] if before else today - timedelta(days=1)


def future_dates(market: Market, last: date, n: int = max(HORIZONS)) -> list[date]:
    """The next ``n`` session dates after ``last`` from the market's calendar."""
    out = sessions_between(market, last + timedelta(days=1), last + timedelta(days=n * 2 + 30))[:n]
    d = out[-1] if out else last
    while len(out) < n:  # beyond the calendar's window: weekdays
        d += timedelta(days=1)
        if d.weekday() < 5:
            out.append(d)
    return out


class ForecastJob:
    """Runs forecasts for the watchlist; see the module. ``store`` is a ``pipeline.store.Store``,
    ``entries()`` returns the enabled watchlist entries (``symbol``, ``timezone``, ``currency``)."""

    def __init__(self, store, entries: Callable[[], Sequence[Any]], clock: Callable[[], datetime] = utcnow):
        self.store = store
        self.entries = entries
        self.clock = clock
        self.settings = settings_hash()
        self._lock = threading.Lock()
        self.stats: dict[str, Any] = {
            "runs": 0,
            "last_run": None,
            "duration_s": None,
            "done": 0,
            "skipped": 0,
            "failed": 0,
            "failures": {},
            "running": False,
            "current": None,
        }
        self._fresh: dict[str, float] = {}  # backfilled symbol -> when its backfill finished (monotonic s)
        self._preferred: str | None = None  # a waiting symbol someone is looking at: first in line
        self._fresh_running = False
        self._wake = threading.Event()
        self._computing = threading.Lock()  # one fit at a time in the process (two cores, seconds each)
        self._executor = "default"

    # -- scheduling ---------------------------------------------------------------------------------
    def attach(self, scheduler, wrap: Callable[[Callable], Callable] = lambda f: f) -> ForecastJob:
        """Register the periodic check on an APScheduler ``scheduler`` (the producer's); ``wrap`` lets
        the producer count the job so its stop waits for it."""
        self._scheduler, self._wrap = scheduler, wrap
        self._executor = EXECUTOR if EXECUTOR in getattr(scheduler, "_executors", {}) else "default"
        first = datetime.now(UTC) + timedelta(seconds=FIRST_CHECK_SECONDS)
        scheduler.add_job(
            wrap(self.run_due),
            "interval",
            seconds=CHECK_SECONDS,
            id="forecast",
            replace_existing=True,
            next_run_time=first,
            executor=self._executor,
        )
        with self._lock:  # symbols backfilled before the job was attached
            start = bool(self._fresh) and not self._fresh_running
            self._fresh_running = self._fresh_running or start
        if start:
            self._start_fresh()
        return self

    def request(self, symbols: Sequence[str] | None = None) -> None:
        """Compute ``symbols`` (default: every enabled one) now, in the scheduler's threads."""
        scheduler = getattr(self, "_scheduler", None)
        if scheduler is None:
            raise RuntimeError("the forecast job is not attached to a running scheduler")
        scheduler.add_job(
            self._wrap(self.run),
            args=[list(symbols) if symbols else None, True],
            id="forecast:now",
            replace_existing=True,  # a second click while one waits: one run
            executor=self._executor,
        )

    def backfilled(self, symbol: str) -> None:
        """``symbol``'s backfill is done: forecast it once its daily history is stored (see the module).
        Thread-safe; returns at once (the work runs on the scheduler; before ``attach``, it waits for it)."""
        with self._lock:
            self._fresh[symbol] = time.monotonic()
            start = not self._fresh_running and getattr(self, "_scheduler", None) is not None
            self._fresh_running = self._fresh_running or start  # two backfills at once: one loop
        self._wake.set()
        if start:
            self._start_fresh()

    def _start_fresh(self) -> None:
        self._scheduler.add_job(
            self._wrap(self._run_fresh),
            id="forecast:backfilled",
            replace_existing=True,
            executor=self._executor,
        )

    def _run_fresh(self) -> None:
        """Forecast the backfilled symbols whose daily history is stored, newest backfill first; look
        again every ``BACKFILL_RETRY_S`` (or when another backfill finishes) while some still wait.
        It ends only with nothing left to do (decided under the lock, so a backfill that finishes
        meanwhile is never left without a loop) or when the scheduler pauses or stops (``attach``
        or the next backfill starts it again). A failing look or forecast is logged and retried."""
        while True:
            with self._lock:
                if not self._fresh or self._halted():
                    self._fresh_running = False
                    return
                waiting = [(symbol, self._fresh[symbol]) for symbol in self._waiting()]
            try:
                ready = [
                    symbol
                    for symbol, finished in waiting
                    if time.monotonic() - finished > BACKFILL_WAIT_S
                    or self.store.bars.count_documents({"symbol": symbol, "interval": "1d"}) >= MIN_SESSIONS
                ]
                if ready:
                    with self._lock:
                        self._fresh.pop(ready[0], None)
                    self.run([ready[0]], force=False, retry_short=True, record=False)
                    continue
            except Exception:  # MongoDB away for a moment: look again after the pause below
                log.exception("forecast after backfill: looking again in %.0f s", BACKFILL_RETRY_S)
            self._wake.clear()
            self._wake.wait(BACKFILL_RETRY_S)

    def _halted(self) -> bool:
        """The scheduler this job runs on is paused or shutting down (``Producer.stop`` pauses it
        first and waits for running jobs): a run stops between symbols instead of holding the stop."""
        scheduler = getattr(self, "_scheduler", None)
        if scheduler is None:
            return False
        from apscheduler.schedulers.base import STATE_RUNNING

        return scheduler.state != STATE_RUNNING

    # -- work ---------------------------------------------------------------------------------------
    def run_due(self) -> dict:
        """Compute the symbols whose completed as-of has no stored result yet."""
        return self.run(None, force=False)

    def run(
        self,
        symbols: Sequence[str] | None = None,
        force: bool = True,
        now: datetime | None = None,
        retry_short: bool = False,
        record: bool = True,
    ) -> dict:
        """One run over ``symbols`` (default: enabled watchlist). Returns the tally ``{"done",
        "skipped", "failed", "failures": {symbol: reason}, "duration_s"}`` and, if ``record``, makes it
        the last run's in ``snapshot()`` (a forecast after a backfill only adds its failures there).
        ``force=False`` skips a symbol whose as-of has a stored result (with ``retry_short``, only an
        ``ok`` one: a "short" sentence stored while the history was still arriving is redone). One
        symbol is fitted at a time in the process (``_computing``), so runs never fit in parallel
        and a symbol another run has just stored is not fitted twice."""
        started, now = time.perf_counter(), now or self.clock()
        with self._lock:
            self.stats["running"] = True
        done = skipped = 0
        failures: dict[str, str] = {}
        try:
            entries = [e for e in self.entries() if symbols is None or e.symbol in symbols]
            for entry in entries:
                if self._halted():
                    break  # the producer is pausing or stopping: the rest waits for the next check
                with self._lock:
                    self.stats["current"] = entry.symbol
                market = market_for(entry.symbol, getattr(entry, "timezone", None) or None)
                as_of = completed_as_of(market, now)
                try:
                    stored = {
                        "symbol": entry.symbol,
                        "settings": self.settings,
                        "through": {"$gte": as_of.isoformat()},
                    }
                    if retry_short:
                        stored["status"] = "ok"
                    with self._computing:
                        if not force and self.store.forecasts.find_one(stored, {"_id": 1}):
                            continue
                        status = self.compute(entry.symbol, as_of, market)
                    done += status == "ok"
                    skipped += status == "short"
                except Exception as exc:  # one symbol's failure never stops the others
                    log.exception("forecast for %s failed", entry.symbol)
                    failures[entry.symbol] = f"{type(exc).__name__}: {exc}"[:300]
        finally:
            duration = time.perf_counter() - started
            with self._lock:
                if record:
                    self.stats.update(
                        runs=self.stats["runs"] + 1,
                        last_run=time.time(),
                        duration_s=duration,
                        done=done,
                        skipped=skipped,
                        failed=len(failures),
                        failures=failures,
                    )
                elif failures:  # a forecast after a backfill failed: shown beside the last run's
                    self.stats["failures"] = {**self.stats["failures"], **failures}
                    self.stats["failed"] = len(self.stats["failures"])
                if failures:  # when each symbol last failed (epoch s): what a page's request can compare
                    self.stats["failed_at"] = {
                        **self.stats.get("failed_at", {}),
                        **dict.fromkeys(failures, time.time()),
                    }
                self.stats.update(running=False, current=None)
        return {
            "done": done,
            "skipped": skipped,
            "failed": len(failures),
            "failures": failures,
            "duration_s": duration,
        }

    def compute(self, symbol: str, as_of: date, market: Market | None = None) -> str:
        """Backtest and forecast ``symbol`` from its daily bars up to ``as_of`` and store them.
        Returns ``ok``, or ``short`` when fewer than ``MIN_SESSIONS`` sessions are stored (then a
        sentence is stored instead). Raises ``PyMongoError`` / ValueError."""
        market = market or market_for(symbol)
        end = day_key(as_of) + timedelta(days=1)
        frame = self.store.bars_frame([symbol], "1d", end - timedelta(days=HISTORY_DAYS), end)
        frame = frame.dropna(subset=["close"])
        frame = frame[frame["close"] > 0].tail(MAX_SESSIONS)
        closes = [float(c) for c in frame["close"]]
        dates = [ts.date() for ts in frame["ts"]]
        last = dates[-1] if dates else as_of
        base = {
            "symbol": symbol,
            "as_of": last.isoformat(),  # the last session used
            "through": as_of.isoformat(),  # the completed session asked for (the bars may stop earlier)
            "settings": self.settings,
            "computed_at": utcnow(),
            "sessions": len(closes),
            "timezone": market.timezone,
            "currency": market.currency,
        }
        if len(closes) < MIN_SESSIONS:
            sentence = (
                f"{symbol} has {len(closes)} stored daily {'session' if len(closes) == 1 else 'sessions'}; "
                f"forecasts need at least {MIN_SESSIONS}."
            )
            self.store.write_forecast({**base, "status": "short", "sentence": sentence}, [])
            return "short"
        rows = backtest(closes, dates)
        fc = forecast(closes)
        doc = {
            **base,
            "status": "ok",
            "last_close": closes[-1],
            "dates": [d.isoformat() for d in future_dates(market, last)],
            **fc,
            "champions": {str(h): champion(rows, h, symbol) for h in HORIZONS},
        }
        keyed = [{**r, "symbol": symbol, "as_of": last.isoformat(), "settings": self.settings} for r in rows]
        self.store.write_forecast(doc, keyed)
        # a "short" sentence stored while the history was still arriving is obsolete now (with no bars
        # at all its as-of is the asked one, later than this forecast's, and it would be read first)
        self.store.forecasts.delete_many({"symbol": symbol, "settings": self.settings, "status": "short"})
        return "ok"

    def snapshot(self) -> dict:
        """The last run's tally for Pipeline health (see the module); no I/O."""
        with self._lock:
            return {**self.stats, "failures": dict(self.stats["failures"]), "waiting": self._waiting()}

    def _waiting(self) -> list[str]:
        """The backfilled symbols still waiting: the preferred one first, then newest backfill first
        (call with ``_lock`` held)."""
        return sorted(self._fresh, key=lambda s: (s == self._preferred, self._fresh[s]), reverse=True)

    def prefer(self, symbol: str) -> None:
        """Put ``symbol`` first among the waiting backfilled symbols (no effect when it is not
        waiting); thread-safe, returns at once."""
        with self._lock:
            self._preferred = symbol
