"""Indicators and statistics over OHLCV bars: pure pandas/numpy, no I/O, no Streamlit.

Guarantees:
- Every indicator returns a Series/DataFrame on the same index as its input, in the same order.
  Warm-up rows where an indicator is not yet defined are NaN: never zero, never a guess.
- No function mutates its input.
- Conventions (the usual ones, so numbers match other tools): SMA/EMA over ``close``; EMA is the
  recursive form with ``alpha = 2 / (n + 1)`` seeded at the first value; Bollinger Bands are the SMA
  +/- ``k`` population standard deviations; VWAP is anchored at each session (local calendar day)
  on the typical price ``(high + low + close) / 3``; RSI uses Wilder's smoothing
  (``alpha = 1 / n``, seeded at the first change); MACD is EMA(12) - EMA(26) with an EMA(9) signal line.
- ``stats`` computes its return, volatility and drawdown with ``pipeline.insights`` (their one home).
  Its volatility is annualised by the convention it is given, by default ``insights.OBSERVED``: the
  *observed* number of bars per year (bars / elapsed years), so the figure is right for 24/7 markets,
  exchange sessions and any interval alike.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from pipeline import insights


def sma(close: pd.Series, n: int = 20) -> pd.Series:
    return close.rolling(n, min_periods=n).mean()


def ema(close: pd.Series, n: int = 20) -> pd.Series:
    out = close.ewm(span=n, adjust=False).mean()
    out.iloc[: max(0, n - 1)] = np.nan  # the first n-1 values are all seed and no average yet
    return out


def bollinger(close: pd.Series, n: int = 20, k: float = 2.0) -> pd.DataFrame:
    mid = sma(close, n)
    std = close.rolling(n, min_periods=n).std(ddof=0)
    return pd.DataFrame({"mid": mid, "upper": mid + k * std, "lower": mid - k * std}, index=close.index)


def vwap(bars: pd.DataFrame, sessions: pd.Series | None = None) -> pd.Series:
    """Session-anchored VWAP. ``sessions`` labels each row's session (default: calendar day of ``ts``
    or of the index); pass local dates to anchor at the exchange's day."""
    typical = (bars["high"] + bars["low"] + bars["close"]) / 3.0
    volume = bars["volume"].astype(float)
    if sessions is None:
        ts = pd.to_datetime(bars["ts"]) if "ts" in bars else pd.Series(bars.index, index=bars.index)
        sessions = ts.dt.date if hasattr(ts, "dt") else ts
    sessions = pd.Series(np.asarray(sessions), index=bars.index)
    pv = (typical * volume).groupby(sessions).cumsum()
    cv = volume.groupby(sessions).cumsum()
    return (pv / cv.where(cv > 0)).rename("vwap")


def rsi(close: pd.Series, n: int = 14) -> pd.Series:
    delta = close.diff()
    gain = delta.clip(lower=0.0)
    loss = -delta.clip(upper=0.0)
    avg_gain = gain.ewm(alpha=1.0 / n, adjust=False, min_periods=n).mean()
    avg_loss = loss.ewm(alpha=1.0 / n, adjust=False, min_periods=n).mean()
    with np.errstate(divide="ignore", invalid="ignore"):
        rs = avg_gain / avg_loss
        out = 100.0 - 100.0 / (1.0 + rs)
    out = out.where(avg_loss != 0, np.where(avg_gain > 0, 100.0, 50.0))  # only gains: 100; flat: 50
    out[avg_gain.isna() | avg_loss.isna()] = np.nan
    return out.rename("rsi")


def macd(close: pd.Series, fast: int = 12, slow: int = 26, signal: int = 9) -> pd.DataFrame:
    line = ema(close, fast) - ema(close, slow)
    sig = line.ewm(span=signal, adjust=False).mean()  # leading NaNs: seeded at the first MACD value
    first = line.first_valid_index()
    if first is not None:
        pos = line.index.get_loc(first)
        if not isinstance(pos, (int, np.integer)):  # a slice or mask: the label is not unique
            raise ValueError(f"macd needs an index without duplicates; {first!r} occurs more than once")
        sig.iloc[: pos + signal - 1] = np.nan
    return pd.DataFrame({"macd": line, "signal": sig, "hist": line - sig}, index=close.index)


def normalise(close: pd.Series) -> pd.Series:
    """Divide by the first valid value: 1.0 at the start of the range."""
    first = close.first_valid_index()
    if first is None:
        return close * np.nan
    base = close.loc[first]
    return close / base if base else close * np.nan


def stats(bars: pd.DataFrame, per_year: insights.PerYear = insights.OBSERVED) -> dict[str, Any]:
    """Return, annualised volatility (``per_year``), max drawdown, average volume, best/worst period
    of one series.

    ``bars`` has columns ``ts`` (aware or naive datetimes, ascending), ``close`` and ``volume``.
    Percentages are in percent. Values that need more data than there is are ``None``.
    """
    frame = bars.dropna(subset=["close"]).sort_values("ts")
    out: dict[str, Any] = {
        "bars": int(len(frame)),
        "first": None,
        "last": None,
        "return_pct": None,
        "volatility_pct": None,
        "max_drawdown_pct": None,
        "avg_volume": None,
        "best_pct": None,
        "best_at": None,
        "worst_pct": None,
        "worst_at": None,
    }
    if frame.empty:
        return out
    close = pd.Series(
        frame["close"].astype(float).to_numpy(), index=pd.DatetimeIndex(pd.to_datetime(frame["ts"]))
    )
    out["first"], out["last"] = float(close.iloc[0]), float(close.iloc[-1])
    out["avg_volume"] = float(frame["volume"].astype(float).mean())
    deepest = insights.max_drawdown(close)
    out["max_drawdown_pct"] = deepest.pct if deepest else None
    if len(close) < 2:
        return out
    out["return_pct"] = insights.range_return(close)
    simple = insights.simple_returns(close)
    best, worst = int(np.argmax(simple.to_numpy())), int(np.argmin(simple.to_numpy()))
    out["best_pct"], out["best_at"] = float(simple.iloc[best] * 100.0), simple.index[best]
    out["worst_pct"], out["worst_at"] = float(simple.iloc[worst] * 100.0), simple.index[worst]
    out["volatility_pct"] = insights.volatility(close, per_year)
    return out


def stats_table(frame: pd.DataFrame, per_year: insights.PerYear = insights.OBSERVED) -> pd.DataFrame:
    """``stats`` per symbol of a long frame (symbol, ts, close, volume), one row per symbol."""
    rows = []
    for symbol, group in frame.groupby("symbol", sort=False):
        rows.append({"symbol": symbol, **stats(group, per_year)})
    columns = [
        "symbol",
        "bars",
        "first",
        "last",
        "return_pct",
        "volatility_pct",
        "max_drawdown_pct",
        "avg_volume",
        "best_pct",
        "best_at",
        "worst_pct",
        "worst_at",
    ]
    return pd.DataFrame(rows, columns=columns)
