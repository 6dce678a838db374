"""Forecast job cost: N symbols x 500 daily bars, every model and horizon, on the embedded stack.

One embedded stack; the simulator's daily bars (its random walk) for ``--symbols`` symbols are
stored in ``bars``, then:
  baseline  the same walk-forward harness with the naive model only (reading, origins, bands,
            scoring): what the job costs without the library fits
  job       ``ForecastJob.run()``: every model (naive, drift, ETS, Theta, ARIMA with its order
            search), GARCH bands, horizons 1/5/20, stored in MongoDB
  page      the Forecast page's reads and figures from the stored documents (latest forecast,
            backtest rows, 270 days of daily bars, fan chart, coverage chart, table), median of 20
Prints wall time, peak RSS of this process (MB, ``resource.getrusage``) and the job/baseline ratio;
``--symbols 10`` and a linear extrapolation to 50 when the machine is too loaded for the full run.

Usage: python bench/bench_forecast.py [--symbols 50] [--bars 500]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline import queries
from pipeline.embedded.stack import LocalStack
from pipeline.forecast.backtest import backtest
from pipeline.forecast.job import ForecastJob
from pipeline.markets.calendars import day_key
from pipeline.sources.simulated import SimulatedSource
from pipeline.store import Store
from ui import forecast as view

NOW = datetime(2026, 6, 1, tzinfo=UTC)


class Entry:
    def __init__(self, symbol: str):
        self.symbol, self.timezone = symbol, "America/New_York"


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def seed(store: Store, symbols: list[str], bars: int) -> dict[str, tuple[list[float], list]]:
    src = SimulatedSource(seed=11, clock=lambda: NOW)
    out = {}
    for symbol in symbols:
        events = sorted(
            src.backfill(symbol, NOW - timedelta(days=int(bars * 1.6) + 30), NOW, "1d").events,
            key=lambda e: e.ts,
        )
        events = events[-bars:]
        store.bars.insert_many(
            [
                {
                    "symbol": symbol,
                    "interval": "1d",
                    "ts": day_key(e.ts.date()),
                    "open": e.open,
                    "high": e.high,
                    "low": e.low,
                    "close": e.close,
                    "volume": e.volume,
                }
                for e in events
            ]
        )
        out[symbol] = ([e.close for e in events], [e.ts.date() for e in events])
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--symbols", type=int, default=50)
    ap.add_argument("--bars", type=int, default=500)
    args = ap.parse_args()
    symbols = [f"B{i:02d}" for i in range(args.symbols)]
    with tempfile.TemporaryDirectory() as tmp:
        stack = LocalStack(Path(tmp) / "stack").start()
        try:
            store = Store.from_uri(stack.mongodb_uri, "bench_forecast", timeout_s=10)
            store.ensure_indexes()
            series = seed(store, symbols, args.bars)
            print(f"seeded {len(symbols)} symbols x {args.bars} daily bars; peak RSS {peak_mb():.0f} MB")

            t0 = time.perf_counter()
            for closes, dates in series.values():
                backtest(closes, dates, models=("naive",))
            baseline = time.perf_counter() - t0
            print(f"baseline (naive only, no storage): {baseline:.1f} s")

            job = ForecastJob(
                store, lambda: [Entry(s) for s in symbols], clock=lambda: datetime(2027, 1, 1, tzinfo=UTC)
            )
            t0 = time.perf_counter()
            tally = job.run()
            wall = time.perf_counter() - t0
            print(
                f"job: {wall:.1f} s for {tally['done']} symbols ({wall / max(tally['done'], 1):.2f} s/symbol), "
                f"{tally['failed']} failed; peak RSS {peak_mb():.0f} MB; {wall / baseline:.1f}x the naive-only baseline"
            )
            if args.symbols < 50:
                print(
                    f"extrapolated to 50 symbols: {wall / args.symbols * 50:.0f} s (linear: symbols run one after another)"
                )

            times = []
            for _ in range(20):
                t0 = time.perf_counter()
                doc = queries.latest_forecast(store, symbols[0], job.settings)
                assert doc is not None
                rows = queries.forecast_backtest(store, symbols[0], doc["as_of"], job.settings)
                as_of = datetime.fromisoformat(doc["as_of"]).replace(tzinfo=UTC)
                hist = queries.bars(
                    store, [symbols[0]], "1d", as_of - timedelta(days=270), as_of + timedelta(days=1)
                ).frame
                hist = hist.assign(ts=hist["ts"].dt.tz_convert(None))
                at5 = rows[rows["horizon"] == 5]
                view.fan(hist, doc, doc["champions"]["5"]["model"]).to_json()
                view.coverage(at5).to_json()
                view.table(at5)
                times.append(time.perf_counter() - t0)
            print(
                f"page reads + figures from stored documents: median {statistics.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms (goal < 1 s)"
            )
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
