"""Small thread-safe counters, rolling windows and latency percentiles for health snapshots.

Guarantees: every method is safe to call from any thread; snapshots are plain JSON-able dicts.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque


class Rate:
    """Counts per fixed bucket (default 10 s) over a rolling window (default 15 min)."""

    def __init__(self, bucket_s: float = 10.0, window_s: float = 900.0):
        self.bucket_s = bucket_s
        self.buckets: deque[list] = deque(maxlen=int(window_s / bucket_s))
        self._lock = threading.Lock()

    def add(self, n: int, now: float | None = None) -> None:
        now = time.time() if now is None else now
        start = now - now % self.bucket_s
        with self._lock:
            if self.buckets and self.buckets[-1][0] == start:
                self.buckets[-1][1] += n
            else:
                self.buckets.append([start, n])

    def series(self) -> list[dict]:
        """[{t: epoch seconds, per_s: events per second}] oldest first."""
        with self._lock:
            return [{"t": t, "per_s": n / self.bucket_s} for t, n in self.buckets]

    def per_second(self, last_s: float = 60.0) -> float:
        cutoff = time.time() - last_s
        with self._lock:
            total = sum(n for t, n in self.buckets if t >= cutoff)
        return total / last_s


class Latency:
    """Keeps the last N samples (seconds) and reports percentiles in milliseconds."""

    def __init__(self, keep: int = 2000):
        self.samples: deque[float] = deque(maxlen=keep)
        self._lock = threading.Lock()

    def add(self, seconds: float) -> None:
        with self._lock:
            self.samples.append(seconds)

    def extend(self, values) -> None:
        with self._lock:
            self.samples.extend(values)

    def snapshot(self) -> dict:
        with self._lock:
            data = sorted(self.samples)
        if not data:
            return {"count": 0}

        def pct(p: float) -> float:
            return round(data[min(len(data) - 1, int(p * len(data)))] * 1000, 1)

        return {
            "count": len(data),
            "p50_ms": pct(0.50),
            "p95_ms": pct(0.95),
            "p99_ms": pct(0.99),
            "max_ms": round(data[-1] * 1000, 1),
        }


class Tally:
    """Named counters plus the most recent reasons (for 'rejected because ...' listings)."""

    def __init__(self, keep_reasons: int = 50):
        self.counts: Counter = Counter()
        self.reasons: deque[dict] = deque(maxlen=keep_reasons)
        self._lock = threading.Lock()

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counts[name] += n

    def reason(self, **entry) -> None:
        with self._lock:
            self.reasons.append({"at": time.time(), **entry})

    def snapshot(self) -> dict:
        with self._lock:
            return {"counts": dict(self.counts), "recent": list(self.reasons)}
