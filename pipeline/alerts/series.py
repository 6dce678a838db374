"""Recent prices of one symbol, in memory, and the measures alert rules are evaluated on.

Guarantees:
- Every measure is a function of the data *at or before* the time it is asked for (``at``), found by
  bisection: asking again later, after newer prices arrived (or after a restart reloaded them from
  MongoDB), gives the same answer. That is what makes re-evaluating a redelivered price reproduce
  the same decision, hence the same alert id.
- Prices are kept for ``horizon_s`` behind the newest one; bar closes per timeframe for the last
  ``keep`` buckets. Adding is O(1) amortised; every measure is O(log n), except an indicator's first
  use in a new bar, which is O(bars kept) once per bar.
- Buckets are UTC-aligned (as ``pipeline.intervals``' ``floor``); the day is the UTC day.
- Measures return ``None`` when the data does not allow an answer yet (not enough history); a rule
  then keeps its state.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable
from itertools import pairwise

from ..intervals import INTERVALS

DAY = INTERVALS["1d"].seconds


def bucket(t: float, span: int) -> int:
    return int(t // span) * span


class Series:
    def __init__(self, symbol: str, horizon_s: float = 120.0, keep: dict[str, int] | None = None):
        self.symbol = symbol
        self.horizon_s = float(horizon_s)
        self.keep = {"1d": 3, **(keep or {})}
        self.spans = {tf: INTERVALS[tf].seconds for tf in self.keep}
        self.ts: list[float] = []  # epoch seconds, ascending
        self.px: list[float] = []
        self.cum: list[float] = []  # cumulative volume up to and including each point
        self.base_cum = 0.0  # cumulative volume before the first kept point
        self.has_ticks = False
        self.closes: dict[str, dict[int, float]] = {tf: {} for tf in self.keep}
        self.buckets: dict[str, list[int]] = {tf: [] for tf in self.keep}
        self._cache: dict[tuple, tuple] = {}

    # -- data in ------------------------------------------------------------------------------------
    def add(self, t: float, price: float, volume: float, tick: bool = True) -> bool:
        """Append an observation; one not newer than the newest kept is ignored (False)."""
        if self.ts and t <= self.ts[-1]:
            return False
        self.ts.append(t)
        self.px.append(price)
        self.cum.append((self.cum[-1] if self.cum else self.base_cum) + max(0.0, volume))
        self.has_ticks = self.has_ticks or tick
        for tf in self.keep:
            self.set_close(tf, bucket(t, self.spans[tf]), price)
        if self.ts[0] < t - 1.5 * self.horizon_s - 60:
            self._trim(t)
        return True

    def set_close(self, tf: str, start: int, close: float) -> None:
        closes = self.closes[tf]
        if start not in closes:
            keys = self.buckets[tf]
            if keys and start < keys[-1]:
                insort(keys, start)
            else:
                keys.append(start)
            if len(keys) > self.keep[tf] + 2:
                for old in keys[: len(keys) - self.keep[tf] - 2]:
                    closes.pop(old, None)
                del keys[: len(keys) - self.keep[tf] - 2]
        closes[start] = close

    def load_bars(self, tf: str, rows: Iterable[tuple[float, float]]) -> None:
        """Closes of stored bars (bucket start epoch, close), oldest first; later ticks override them."""
        if tf not in self.keep:
            return
        for start, close in rows:
            self.set_close(tf, bucket(start, self.spans[tf]), close)

    def _trim(self, newest: float) -> None:
        cut = bisect_left(self.ts, newest - self.horizon_s - 60)
        if cut <= 0:
            return
        self.base_cum = self.cum[cut - 1]
        del self.ts[:cut], self.px[:cut], self.cum[:cut]

    # -- measures -----------------------------------------------------------------------------------
    def price_at(self, at: float) -> tuple[float, float] | None:
        """(ts, price) of the newest point at or before ``at``."""
        i = bisect_right(self.ts, at)
        return (self.ts[i - 1], self.px[i - 1]) if i else None

    def volume_between(self, start: float, end: float) -> float:
        """Volume of the points with ``start <= ts <= end``."""
        i0, i1 = bisect_left(self.ts, start), bisect_right(self.ts, end)
        if i1 <= i0:
            return 0.0
        before = self.cum[i0 - 1] if i0 > 0 else self.base_cum
        return self.cum[i1 - 1] - before

    def pct_change(self, at: float, price: float, window_s: float) -> float | None:
        """Percent change from the price ``window_s`` before ``at`` (None if that is not known or is
        more than two windows old, e.g. after a gap in the feed)."""
        ref = self.price_at(at - window_s)
        if ref is None or ref[0] < at - 2 * window_s or ref[1] <= 0:
            return None
        return (price / ref[1] - 1.0) * 100.0

    def previous_close(self, at: float) -> float | None:
        day = bucket(at, DAY)
        keys = self.buckets["1d"]
        i = bisect_left(keys, day)
        return self.closes["1d"][keys[i - 1]] if i else None

    def volume_ratio(self, at: float, lookback_min: int) -> float | None:
        """Volume of ``at``'s minute so far over the average minute of the ``lookback_min`` before."""
        minute = bucket(at, 60)
        start = minute - 60 * lookback_min
        if not self.ts or self.ts[0] > start + 60:
            return None  # the look-back is not covered yet
        average = self.volume_between(start, minute - 1e-6) / lookback_min
        if average <= 0:
            return None
        return self.volume_between(minute, at) / average

    def closed(self, tf: str, at: float, n: int) -> list[float]:
        """Closes of the last ``n`` bars that ended before ``at``'s bar, oldest first."""
        keys = self.buckets.get(tf, [])
        i = bisect_left(keys, bucket(at, INTERVALS[tf].seconds))
        return [self.closes[tf][k] for k in keys[max(0, i - n) : i]]

    def rsi(self, tf: str, period: int, at: float, price: float) -> float | None:
        """Wilder's RSI (as ``pipeline.analytics.rsi``) over closed bars plus the forming one at ``price``."""
        key = ("rsi", tf, period, bucket(at, INTERVALS[tf].seconds))
        state = self._cache.get(key)
        if state is None:
            closes = self.closed(tf, at, self.keep.get(tf, period * 5 + 1))
            gain = loss = None
            count = 0
            alpha = 1.0 / period
            for a, b in pairwise(closes):
                g, lo = max(b - a, 0.0), max(a - b, 0.0)
                gain = g if gain is None else (1 - alpha) * gain + alpha * g
                loss = lo if loss is None else (1 - alpha) * loss + alpha * lo
                count += 1
            state = (gain, loss, count, closes[-1] if closes else None)
            self._cache = {k: v for k, v in self._cache.items() if k[:3] != key[:3]}
            self._cache[key] = state
        gain, loss, count, last = state
        if last is None or count + 1 < period:
            return None
        alpha = 1.0 / period
        g, lo = max(price - last, 0.0), max(last - price, 0.0)
        gain = g if gain is None else (1 - alpha) * gain + alpha * g
        loss = lo if loss is None else (1 - alpha) * loss + alpha * lo
        if loss == 0:
            return 100.0 if gain > 0 else 50.0
        return 100.0 - 100.0 / (1.0 + gain / loss)

    def sma(self, tf: str, n: int, at: float, price: float) -> float | None:
        key = ("sma", tf, n, bucket(at, INTERVALS[tf].seconds))
        state = self._cache.get(key)
        if state is None:
            closes = self.closed(tf, at, n - 1)
            state = (sum(closes), len(closes))
            self._cache = {k: v for k, v in self._cache.items() if k[:3] != key[:3]}
            self._cache[key] = state
        total, count = state
        if count < n - 1:
            return None
        return (total + price) / n
