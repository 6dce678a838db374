"""Exponential backoff with jitter, shared by the network sources.

Guarantees: after ``hit()`` the wait is ``min(max, base * 2**(n-1))`` seconds scaled by a random factor
in [0.75, 1.25] (n = consecutive hits); ``ok()`` resets it; ``left()`` is 0 when calls are allowed.
Thread-safe. Time is ``time.monotonic`` (wall-clock jumps do not shorten or stretch a backoff).
"""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime, timedelta

from ..models import iso


class Backoff:
    def __init__(self, base: float, maximum: float, seed: int | None = None):
        self.base = float(base)
        self.maximum = float(maximum)
        self.failures = 0
        self.reason: str | None = None
        self._until = 0.0
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def hit(self, reason: str, at_least: float = 0.0) -> float:
        """Record a throttle; return the seconds to wait (at least ``at_least``)."""
        with self._lock:
            self.failures += 1
            delay = min(self.maximum, self.base * 2 ** (self.failures - 1)) * self._rng.uniform(0.75, 1.25)
            delay = max(delay, at_least)
            self._until = max(self._until, time.monotonic() + delay)
            self.reason = reason
            return delay

    def ok(self) -> None:
        with self._lock:
            self.failures, self._until, self.reason = 0, 0.0, None

    def left(self) -> float:
        with self._lock:
            return max(0.0, self._until - time.monotonic())

    def until_utc(self) -> datetime | None:
        left = self.left()
        return datetime.now(UTC) + timedelta(seconds=left) if left > 0 else None

    def snapshot(self) -> dict:
        until = self.until_utc()
        return {
            "backoff_until": iso(until) if until else None,
            "backoff_seconds_left": round(self.left(), 1),
            "consecutive_throttles": self.failures,
            "throttle_reason": self.reason,
        }
