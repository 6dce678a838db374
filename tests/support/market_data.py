"""Synthetic stored history for page tests and the dashboard benchmark.

``seed_bars`` writes 1-minute bars and their 5m/1h/1d rollups *straight into* the ``bars``
collection (the same documents the consumer's rollup produces: UTC buckets, open=first, high=max,
low=min, close=last, volume=sum), which is much faster than sending them through Kafka. It also
writes the last minute as ``tick`` events into ``prices`` so quotes see a live price.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

LEVELS = {"5m": "5min", "1h": "1h", "1d": "1D"}


def minute_bars(
    symbol: str, start: datetime, minutes: int, price: float = 100.0, seed: int = 0
) -> pd.DataFrame:
    """A random walk of ``minutes`` 1-minute OHLCV bars from ``start`` (UTC, minute-aligned)."""
    rng = np.random.default_rng([seed, sum(map(ord, symbol))])
    steps = rng.normal(0, 0.0008, minutes)
    close = price * np.exp(np.cumsum(steps))
    open_ = np.concatenate([[price], close[:-1]])
    spread = np.abs(rng.normal(0, 0.0004, minutes)) * close
    high = np.maximum(open_, close) + spread
    low = np.minimum(open_, close) - spread
    volume = rng.integers(100, 5000, minutes).astype(float)
    ts = pd.date_range(start, periods=minutes, freq="min", tz="UTC")
    return pd.DataFrame(
        {
            "symbol": symbol,
            "ts": ts,
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
        }
    )


def rollup(frame: pd.DataFrame, rule: str) -> pd.DataFrame:
    out = []
    for symbol, g in frame.groupby("symbol", sort=False):
        r = (
            g.set_index("ts")
            .resample(rule, label="left", closed="left")
            .agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
            .dropna()
        )
        r["symbol"] = symbol
        out.append(r.reset_index())
    return pd.concat(out, ignore_index=True) if out else frame.iloc[0:0]


def docs(frame: pd.DataFrame, interval: str) -> list[dict]:
    records = frame[["symbol", "ts", "open", "high", "low", "close", "volume"]].to_dict("records")
    for r in records:
        r["ts"] = r["ts"].to_pydatetime()
        r["interval"] = interval
        r["n"] = 1
    return records


def seed_bars(
    store,
    symbols: Sequence[str],
    days: float = 1.0,
    end: datetime | None = None,
    seed: int = 0,
    batch: int = 20_000,
    ticks: bool = True,
    price: float | None = None,
) -> pd.DataFrame:
    """Store ``days`` of 1m bars (and rollups) ending at ``end`` (default: this minute) for ``symbols``.
    Returns the 1-minute frame that was written. Start prices are 50, 90, 130, ... unless ``price``."""
    end = (end or datetime.now(UTC)).replace(second=0, microsecond=0)
    minutes = int(days * 1440)
    start = end - timedelta(minutes=minutes - 1)
    frame = pd.concat(
        [
            minute_bars(s, start, minutes, price=price or 50 + 40 * i, seed=seed)
            for i, s in enumerate(symbols)
        ],
        ignore_index=True,
    )
    batches = [docs(frame, "1m")] + [docs(rollup(frame, rule), level) for level, rule in LEVELS.items()]
    for level_docs in batches:
        for i in range(0, len(level_docs), batch):
            store.bars.insert_many(level_docs[i : i + batch], ordered=False)
    if ticks:
        last = frame.groupby("symbol").tail(1)
        now = datetime.now(UTC)
        store.prices.insert_many(
            [
                {
                    "symbol": r.symbol,
                    "interval": "tick",
                    "ts": min(r.ts.to_pydatetime() + timedelta(seconds=30), now),
                    "open": r.close,
                    "high": r.close,
                    "low": r.close,
                    "close": r.close,
                    "volume": 10.0,
                    "source": "simulated",
                    "fetched_at": now,
                    "schema": 1,
                }
                for r in last.itertuples()
            ]
        )
    return frame


def seed_daily(
    store,
    symbols: Sequence[str],
    sessions: int = 300,
    end: datetime | None = None,
    seed: int = 0,
    weekdays_only: bool = True,
) -> pd.DataFrame:
    """Store ``sessions`` daily bars per symbol (``interval`` 1d, ``ts`` UTC midnight of the session
    date, as the bar builder keys them) ending at ``end``'s date (default today), weekdays only
    unless told otherwise. A random walk of about 1.2 % a day; start prices 50, 90, 130, ...
    Returns the frame written (symbol, ts, open, high, low, close, volume)."""
    last = (end or datetime.now(UTC)).date()
    freq = "B" if weekdays_only else "D"
    dates = pd.date_range(end=pd.Timestamp(last), periods=sessions, freq=freq, tz="UTC")
    frames = []
    for i, symbol in enumerate(symbols):
        rng = np.random.default_rng([seed, sum(map(ord, symbol))])
        close = (50 + 40 * i) * np.exp(np.cumsum(rng.normal(0.0003, 0.012, sessions)))
        open_ = np.concatenate([[close[0]], close[:-1]])
        spread = np.abs(rng.normal(0, 0.004, sessions)) * close
        frames.append(
            pd.DataFrame(
                {
                    "symbol": symbol,
                    "ts": dates,
                    "open": open_,
                    "high": np.maximum(open_, close) + spread,
                    "low": np.minimum(open_, close) - spread,
                    "close": close,
                    "volume": rng.integers(10_000, 500_000, sessions).astype(float),
                }
            )
        )
    frame = pd.concat(frames, ignore_index=True)
    store.bars.insert_many(docs(frame, "1d"), ordered=False)
    return frame
