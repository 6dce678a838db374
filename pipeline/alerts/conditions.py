"""What each rule kind measures, and the sentence an alert says.

Guarantees:
- ``measure(rule)`` returns a closure ``(series, t, price) -> (result, value)``: a condition rule's
  result is True/False, a cross rule's is the side (+1 above, -1 below); ``(None, None)`` when the
  data does not allow an answer yet. It reads only the series as of ``t`` (see ``series``), so it
  is deterministic: the same price gives the same answer whenever it is evaluated.
- ``message(...)`` is one short sentence naming the symbol, what happened and the last price.
"""

from __future__ import annotations

from collections.abc import Callable

from .rules import Rule, _span, describe
from .series import Series


def _directional(pct: float, direction: str) -> Callable[[float], bool]:
    if direction == "up":
        return lambda change: change >= pct
    if direction == "down":
        return lambda change: change <= -pct
    return lambda change: abs(change) >= pct


def measure(rule: Rule) -> Callable[[Series, float, float], tuple]:
    """The rule's test as a closure ``(series, t, price) -> (result, value)``: a condition rule gives
    True/False, a cross rule the side (+1/-1); None when the data does not allow an answer yet."""
    k = rule.kind
    if k == "price_above":
        level = rule.level
        return lambda series, t, price: (price > level, price)
    if k == "price_below":
        level = rule.level
        return lambda series, t, price: (price < level, price)
    if k == "price_cross":
        level = rule.level
        return lambda series, t, price: ((None if price == level else 1 if price > level else -1), price)
    if k == "pct_change":
        window, test = rule.window_s, _directional(rule.pct, rule.direction)

        def pct_change(series, t, price):
            change = series.pct_change(t, price, window)
            return (None, None) if change is None else (test(change), change)

        return pct_change
    if k == "pct_since_close":
        test = _directional(rule.pct, rule.direction)

        def since_close(series, t, price):
            close = series.previous_close(t)
            if not close:
                return None, None
            change = (price / close - 1.0) * 100.0
            return test(change), change

        return since_close
    if k == "volume_spike":
        factor, lookback = rule.factor, rule.lookback_min

        def volume(series, t, price):
            ratio = series.volume_ratio(t, lookback)
            return (None, None) if ratio is None else (ratio >= factor, ratio)

        return volume
    if k in ("rsi_above", "rsi_below"):
        tf, period, level, above = rule.timeframe, rule.period, rule.level, k == "rsi_above"

        def rsi(series, t, price):
            value = series.rsi(tf, period, t, price)
            if value is None:
                return None, None
            return (value > level if above else value < level), value

        return rsi
    if k == "sma_cross":
        tf, fast_n, slow_n = rule.timeframe, rule.fast, rule.slow

        def sma(series, t, price):
            fast, slow = series.sma(tf, fast_n, t, price), series.sma(tf, slow_n, t, price)
            if fast is None or slow is None or fast == slow:
                return None, None
            return (1 if fast > slow else -1), fast - slow

        return sma
    raise ValueError(f"unknown rule kind {k!r}")


def message(rule: Rule, price: float, value: float | None, side: int | None) -> str:
    s, k = rule.symbol, rule.kind
    last = f"last {price:,.2f}"
    if k == "price_above":
        return f"{s} rose above {rule.level:,.2f} ({last})"
    if k == "price_below":
        return f"{s} fell below {rule.level:,.2f} ({last})"
    if k == "price_cross":
        return f"{s} crossed {'up' if side and side > 0 else 'down'} through {rule.level:,.2f} ({last})"
    if k == "pct_change":
        return f"{s} moved {value:+.2f}% within {_span(rule.window_s)} ({last})"
    if k == "pct_since_close":
        return f"{s} is {value:+.2f}% from the previous close ({last})"
    if k == "volume_spike":
        return f"{s} volume this minute is {value:.1f}× the average minute of the last {rule.lookback_min} min ({last})"
    if k in ("rsi_above", "rsi_below"):
        way = "above" if k == "rsi_above" else "below"
        return f"{s} RSI({rule.period}, {rule.timeframe}) is {value:.1f}, {way} {rule.level:g} ({last})"
    if k == "sma_cross":
        way = "above" if side and side > 0 else "below"
        return f"{s} SMA {rule.fast} crossed {way} SMA {rule.slow} on {rule.timeframe} bars ({last})"
    return f"{s}: {describe(rule)} ({last})"
