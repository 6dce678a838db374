"""Series for the forecast tests: the simulator's daily random walk and a constructed trend +
seasonality series, as (closes, session dates)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np

from pipeline.sources.simulated import SimulatedSource

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def simulated_daily(symbol: str, sessions: int, seed: int = 7) -> tuple[list[float], list[date]]:
    """The last ``sessions`` daily closes of ``symbol`` from the simulator (its random walk: no
    predictable structure), with their session dates, oldest first."""
    src = SimulatedSource(seed=seed, clock=lambda: NOW)
    result = src.backfill(symbol, NOW - timedelta(days=int(sessions * 1.6) + 30), NOW, "1d")
    events = sorted(result.events, key=lambda e: e.ts)[-sessions:]
    assert len(events) == sessions, f"simulator gave {len(events)} daily bars for {symbol}"
    return [float(e.close) for e in events], [e.ts.date() for e in events]


def trend_season(n: int = 260, seed: int = 3) -> tuple[list[float], list[date]]:
    """Closes with a real trend (+0.3%/session) and a 20-session cycle (1%) on top of a random walk
    (1%/session): predictable enough for a model to beat naive, noisy enough that the bands are
    honest (a noiseless trend makes every 95% band cover 100%, which the champion rule rejects)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    y = np.log(100) + 0.003 * t + 0.01 * np.sin(2 * np.pi * t / 20) + np.cumsum(rng.normal(0, 0.01, n))
    start = date(2025, 1, 1)
    return [float(v) for v in np.exp(y)], [start + timedelta(days=int(k)) for k in t]


def bar_docs(symbol: str, closes: list[float], dates: list[date]) -> list[dict]:
    """Daily bars as the ``bars`` collection stores them (UTC midnight of the session date)."""
    from pipeline.markets.calendars import day_key

    return [
        {
            "symbol": symbol,
            "interval": "1d",
            "ts": day_key(d),
            "open": c,
            "high": c,
            "low": c,
            "close": c,
            "volume": 0.0,
        }
        for c, d in zip(closes, dates, strict=True)
    ]


class Entry:
    """The two fields of a watchlist entry the forecast job reads."""

    def __init__(self, symbol: str, timezone: str = "America/New_York"):
        self.symbol, self.timezone = symbol, timezone
