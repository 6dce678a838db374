"""First live prices with 50 symbols polled from Yahoo's quote API (the fake Yahoo server, on the
embedded stack): seconds from the app's start until the first and until every symbol has a stored
tick, under the default request budget (30 a minute, 300 an hour), while the daily (365 days) and
1-minute (1 day) backfills of all 50 run, against the baseline of the same start without backfills
in the same run. A ratio near 1 means live prices do not wait behind backfills (before backfills had
threads of their own, this run's backfill phase had no tick after 150 s).
Figures only, no assertions.

Usage: python bench/bench_first_live.py [--ceiling 150]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))

from bench_stream import settings_for
from support.fake_market import FakeMarket

from pipeline.embedded.stack import LocalStack
from pipeline.runtime import Runtime, configure_logging

FIFTY = tuple(f"B{i:02d}" for i in range(50))


def phase(stack: LocalStack, data: Path, backfills: bool, ceiling_s: float) -> dict:
    """Start the app polling ``FIFTY`` (with or without backfills); watch the stored ticks."""
    with FakeMarket() as market:
        market.instruments.update({s: replace(market.instruments["AAPL"], symbol=s) for s in FIFTY})
        settings = settings_for(
            stack,
            f"first-{'backfills' if backfills else 'alone'}",
            data,
            source="yfinance",
            yahoo_live="poll",
            yahoo_url=market.url,
            poll_seconds=2.0,
            watchlist=FIFTY,
        )
        if backfills:
            settings = replace(settings, backfill_days_daily=365, backfill_days_1m=1)
        t0 = time.monotonic()
        runtime = Runtime(settings).start()
        first = every = None
        try:
            while time.monotonic() - t0 < ceiling_s:
                have = len(runtime.store.prices.distinct("symbol", {"interval": "tick"}))
                if have and first is None:
                    first = time.monotonic() - t0
                if have == len(FIFTY):
                    every = time.monotonic() - t0
                    break
                time.sleep(0.5)
            have = len(runtime.store.prices.distinct("symbol", {"interval": "tick"}))
            requests = {"quote": market.count("/v7/finance/quote"), "chart": len(market.chart_requests())}
            plan = runtime.pipeline.producer.snapshot()["poll_intervals"].get("yfinance", {})
        finally:
            runtime.stop()
    return {
        "first": first,
        "every": every,
        "symbols": have,
        "requests": requests,
        "interval": plan.get("used_s"),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ceiling", type=float, default=150.0, help="seconds each phase may take")
    args = parser.parse_args()
    configure_logging()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        stack = LocalStack(data / "stack").start()
        try:
            rows = {b: phase(stack, data, b, args.ceiling) for b in (False, True)}
        finally:
            stack.stop()

    def s(v):
        return f"{v:.1f} s" if v is not None else f"> {args.ceiling:g} s"

    print(
        f"\n50 symbols polled from Yahoo (fake), backfills running, default budget; ceiling {args.ceiling:g} s"
    )
    print(
        f"{'start':<22}{'first tick':>12}{'every symbol':>15}{'with a tick':>13}{'poll every':>12}  requests"
    )
    for backfills, r in rows.items():
        name = "with backfills" if backfills else "no backfills (baseline)"
        print(
            f"{name:<22}{s(r['first']):>12}{s(r['every']):>15}{r['symbols']:>10}/50"
            f"{(r['interval'] or 0):>10.0f} s  {r['requests']}"
        )
    base, loaded = rows[False]["every"], rows[True]["every"]
    if base and loaded:
        print(f"every symbol with a tick, with backfills / without: {loaded / base:.2f}x")


if __name__ == "__main__":
    main()
