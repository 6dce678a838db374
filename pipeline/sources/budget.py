"""A request budget for one provider in one process: sliding-window caps and a priority queue.

Guarantees:
- No more than ``limit`` calls start inside any ``window_s`` seconds, for every (limit, window) pair
  (defaults for Yahoo's chart API: 60 a minute and 1,500 an hour per process, issue 12). A slot is
  taken *before* the call is made, so a failing call still counts (Yahoo counts it too).
- ``acquire(priority)`` blocks until a slot is free; waiters are served lowest ``priority`` first
  (``REPAIR`` before ``LIVE`` before ``BACKFILL``), first come first served within one priority.
- Backfills' own calls use at most ``limit - reserve(limit)`` of each cap (a quarter is kept): a live
  request or a repair finds a slot even while backfills queue, and a waiting backfill never blocks
  it. Polling intervals are planned on half of each cap (``LIVE_PLAN_SHARE``), so live polling at its
  floor never starves backfills either.
  ``try_acquire`` never waits (the live poll: a run without a slot reports a reason instead).
- ``acquire`` raises ``BudgetClosed`` once ``close()`` was called (a stopping producer) and
  ``BudgetTimeout`` after ``timeout_s``; it never returns without a slot.
- ``sustainable_interval(n)``: the shortest polling interval (s) at which ``n`` calls per poll stay
  within every cap forever.
- ``charge(n)`` records calls that were made without asking (yfinance's own probes); a cap can be
  exceeded by them once, never by callers that asked.
- Time is ``time.monotonic`` (wall-clock jumps neither free nor block slots). Thread-safe.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Sequence

#: Priorities: lower is served first.
REPAIR, LIVE, BACKFILL = 0, 1, 2
PRIORITY_NAMES = {REPAIR: "repair", LIVE: "live", BACKFILL: "backfill"}
#: The share of every cap that backfills never use: kept for live prices and gap repair, so a live
#: request is never queued behind backfills (50 symbols' backfills held the first live price back
#: 305 s, issue 19).
LIVE_RESERVE = 0.25
#: The share of every cap a polling interval is planned on: live polling at its floor leaves the
#: other half to backfills, official daily bars and repairs.
LIVE_PLAN_SHARE = 0.5


def reserve(limit: int) -> int:
    """Slots of a cap of ``limit`` that backfills leave to live prices and repairs."""
    return int(limit * LIVE_RESERVE)


class BudgetClosed(RuntimeError):
    """The budget was closed while waiting (the process is stopping)."""


class BudgetTimeout(TimeoutError):
    """No slot within the caller's ``timeout_s``."""


class RequestBudget:
    """Sliding-window request caps with a priority queue; see the module docstring."""

    def __init__(self, limits: Sequence[tuple[int, float]] = ((60, 60.0), (1500, 3600.0)), name: str = ""):
        if not limits or any(n < 1 or w <= 0 for n, w in limits):
            raise ValueError(f"limits must be (count >= 1, window_s > 0) pairs, got {limits!r}")
        self.name = name
        self.limits = tuple((int(n), float(w)) for n, w in limits)
        self._calls: deque[float] = deque()  # start times (monotonic) within the longest window
        self._kinds: deque[int] = deque()  # the priority of each of those calls
        self._longest = max(w for _, w in self.limits)
        self._cond = threading.Condition()
        self._waiting: list[tuple[int, int]] = []  # heap of (priority, ticket)
        self._tickets = itertools.count()
        self._closed = False
        self.total = 0
        self.by_priority: dict[str, int] = {name: 0 for name in PRIORITY_NAMES.values()}
        self.refused = 0  # try_acquire without a slot

    # -- taking slots ---------------------------------------------------------------------------
    def _wait_s(self, now: float, priority: int = LIVE) -> float:
        """Seconds until a call of ``priority`` may start (0 = now); lock held. A backfill may use
        each cap only up to ``limit - reserve(limit)``."""
        while self._calls and self._calls[0] <= now - self._longest:
            self._calls.popleft()
            self._kinds.popleft()
        wait = 0.0
        for limit, window in self.limits:
            inside = [t for t in self._calls if t > now - window]
            if len(inside) >= limit:
                wait = max(wait, inside[-limit] + window - now)
            if priority >= BACKFILL:  # backfills' own calls: at most limit - reserve(limit)
                usable = limit - reserve(limit)
                mine = [
                    t
                    for t, p in zip(self._calls, self._kinds, strict=True)
                    if p >= BACKFILL and t > now - window
                ]
                if usable <= 0:
                    continue
                if len(mine) >= usable:
                    wait = max(wait, mine[-usable] + window - now)
        return wait

    def _take(self, now: float, priority: int) -> None:
        self._calls.append(now)
        self._kinds.append(priority)
        self.total += 1
        key = PRIORITY_NAMES.get(priority, str(priority))
        self.by_priority[key] = self.by_priority.get(key, 0) + 1

    def try_acquire(self, priority: int = LIVE) -> bool:
        """Take a slot if one is free now and nobody more urgent waits; never blocks."""
        with self._cond:
            now = time.monotonic()
            if (
                self._closed
                or (self._waiting and self._waiting[0][0] <= priority)
                or self._wait_s(now, priority) > 0
            ):
                self.refused += 1
                return False
            self._take(now, priority)
            return True

    def acquire(self, priority: int = BACKFILL, timeout_s: float | None = None) -> float:
        """Wait for a slot (served by priority); return the seconds waited. Raises ``BudgetClosed``
        or ``BudgetTimeout``."""
        t0 = time.monotonic()
        deadline = None if timeout_s is None else t0 + timeout_s
        with self._cond:
            entry = (priority, next(self._tickets))
            heapq.heappush(self._waiting, entry)
            try:
                while True:
                    if self._closed:
                        raise BudgetClosed(f"{self.name or 'request'} budget closed")
                    now = time.monotonic()
                    wait = self._wait_s(now, priority)
                    if self._waiting[0] == entry and wait <= 0:
                        self._take(now, priority)
                        return now - t0
                    if deadline is not None and now >= deadline:
                        raise BudgetTimeout(f"no {self.name or 'request'} slot within {timeout_s:g}s")
                    nap = wait if self._waiting[0] == entry else 1.0
                    if deadline is not None:
                        nap = min(nap, deadline - now)
                    self._cond.wait(max(0.001, nap))
            finally:
                self._waiting.remove(entry)
                heapq.heapify(self._waiting)
                self._cond.notify_all()

    def charge(self, n: int, priority: int = LIVE) -> None:
        """Record ``n`` calls made without a slot (a library's own extra requests): they count
        against every cap from now on, so later callers wait for them."""
        with self._cond:
            now = time.monotonic()
            for _ in range(max(0, n)):
                self._take(now, priority)

    def close(self) -> None:
        """Wake every waiter with ``BudgetClosed``; later ``acquire`` calls raise at once."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # -- planning and health --------------------------------------------------------------------
    def sustainable_interval(self, calls_per_run: int, share: float = 1.0) -> float:
        """Shortest interval (s) between runs of ``calls_per_run`` calls that every cap sustains,
        using at most ``share`` of each (live polling plans on ``LIVE_PLAN_SHARE``)."""
        return max((window * calls_per_run / (limit * share) for limit, window in self.limits), default=0.0)

    def snapshot(self) -> dict:
        """JSON-able: per cap ``{limit, window_s, used, left}``, ``next_free_s`` (0 = now),
        ``waiting`` by priority name, totals."""
        with self._cond:
            now = time.monotonic()
            caps = []
            for limit, window in self.limits:
                used = sum(1 for t in self._calls if t > now - window)
                caps.append({"limit": limit, "window_s": window, "used": used, "left": max(0, limit - used)})
            waiting: dict[str, int] = {}
            for priority, _ in self._waiting:
                key = PRIORITY_NAMES.get(priority, str(priority))
                waiting[key] = waiting.get(key, 0) + 1
            return {
                "caps": caps,
                "next_free_s": round(self._wait_s(now), 1),
                "waiting": waiting,
                "total": self.total,
                "by_priority": dict(self.by_priority),
                "refused": self.refused,
            }
