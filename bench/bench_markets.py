"""Cost of the market status of a 50-symbol watchlist (what Home computes on every 5 s refresh).

Measured in the same run:
  first     the first lookup of each market: builds its session table from exchange_calendars
  status    ``symbol_status`` for 50 symbols (10 markets x 5) once the tables are built: a binary
            search in a cached table per symbol
  baseline  the same 50 answers asked of exchange_calendars directly (``is_open_on_minute`` and
            ``next_open`` on already-built calendars), i.e. without our session tables
  glance    ``ui.tables.watchlist_glance`` for the 50 symbols (status, badge, stale, currency)

Usage: python bench/bench_markets.py [--rounds 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd

from pipeline.markets import calendars as markets
from pipeline.sources import registry
from ui import tables

SYMBOLS = [
    "AAPL",
    "MSFT",
    "7203.T",
    "VOD.L",
    "SAP.DE",
    "BTC-USD",
    "EURUSD=X",
    "0005.HK",
    "MC.PA",
    "^GSPC",
] * 5


@dataclass
class Entry:
    symbol: str
    source: str = "yfinance"
    enabled: bool = True
    name: str = ""
    exchange: str = ""
    currency: str = ""
    timezone: str = ""


def timed(fn, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    import exchange_calendars as xc

    now = datetime.now(UTC)
    t = time.perf_counter()
    for s in SYMBOLS:
        registry.symbol_status(s, now, "yfinance")
    first = (time.perf_counter() - t) * 1000

    status = timed(lambda: [registry.symbol_status(s, now, "yfinance") for s in SYMBOLS], args.rounds)

    cals = {m.mic: xc.get_calendar(m.mic) for m in (markets.market_for(s) for s in SYMBOLS) if m.mic}
    ts = pd.Timestamp(now).floor("min")

    def direct() -> None:
        for s in SYMBOLS:
            mic = markets.market_for(s).mic
            if mic:
                cal = cals[mic]
                if not cal.is_open_on_minute(ts, ignore_breaks=False):
                    cal.next_open(ts)

    baseline = timed(direct, max(10, args.rounds // 10))
    entries = [Entry(s) for s in SYMBOLS]
    quotes = pd.DataFrame([{"symbol": s, "last": 100.0, "age_s": 5.0} for s in dict.fromkeys(SYMBOLS)])
    glance = timed(lambda: tables.watchlist_glance(entries, quotes, {}, 2.0, now), max(10, args.rounds // 10))
    print(f"first lookups (builds {len(cals)} calendars + FX/crypto): {first:8.1f} ms")
    print(f"status of 50 symbols (cached tables):         {status:8.3f} ms")
    print(
        f"baseline, exchange_calendars directly:        {baseline:8.3f} ms  ({baseline / status:.0f}x ours)"
    )
    print(f"watchlist_glance of 50 symbols:               {glance:8.3f} ms")
    print(f"fixed-hours fallbacks: {markets.fixed_hours_reasons() or 'none'}")


if __name__ == "__main__":
    main()
