"""First live prices with 50 symbols polled from Yahoo (the fake Yahoo server, on the embedded stack):
seconds from the app's start until the first and until every symbol has a stored tick, while the
daily and 1-minute backfills of all 50 run under the default request budget (30 a minute, 300 an
hour). Two phases in the same run: quote polling (one request per 50 symbols, the product's poll
mode) and, as the baseline, chart polling (one request per symbol, what poll mode sent before).
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

from pipeline.runtime import Runtime, configure_logging
from pipeline.sources import yahoo
from pipeline.stack import LocalStack

FIFTY = tuple(f"B{i:02d}" for i in range(50))


def phase(stack: LocalStack, data: Path, live: str, ceiling_s: float) -> dict:
    """Start the app polling ``FIFTY`` with ``live`` ("quote" or "chart"); watch the stored ticks."""
    original = yahoo.YahooSource.__init__

    def forced(self, *args, **kwargs):  # the baseline: poll mode as it was, one chart per symbol
        kwargs["live"] = live if kwargs.get("live") == "quote" else kwargs.get("live", "chart")
        original(self, *args, **kwargs)

    yahoo.YahooSource.__init__ = forced  # type: ignore[method-assign]
    try:
        with FakeMarket() as market:
            market.instruments.update({s: replace(market.instruments["AAPL"], symbol=s) for s in FIFTY})
            settings = settings_for(
                stack,
                f"first-{live}",
                data,
                source="yfinance",
                yahoo_live="poll",
                yahoo_url=market.url,
                poll_seconds=2.0,
                watchlist=FIFTY,
                backfill_days_daily=365,
                backfill_days_1m=1,
            )
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
                requests = {
                    "quote": market.count("/v7/finance/quote"),
                    "chart": len(market.chart_requests()),
                }
                plan = runtime.pipeline.producer.snapshot()["poll_intervals"].get("yfinance", {})
            finally:
                runtime.stop()
    finally:
        yahoo.YahooSource.__init__ = original  # type: ignore[method-assign]
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
            rows = {live: phase(stack, data, live, args.ceiling) for live in ("quote", "chart")}
        finally:
            stack.stop()

    def s(v):
        return f"{v:.1f} s" if v is not None else f"> {args.ceiling:g} s"

    print(
        f"\n50 symbols polled from Yahoo (fake), backfills running, default budget; ceiling {args.ceiling:g} s"
    )
    print(
        f"{'polling':<22}{'first tick':>12}{'every symbol':>15}{'with a tick':>13}{'poll every':>12}  requests"
    )
    for live, r in rows.items():
        name = "quote API (now)" if live == "quote" else "chart API (baseline)"
        print(
            f"{name:<22}{s(r['first']):>12}{s(r['every']):>15}{r['symbols']:>10}/50"
            f"{(r['interval'] or 0):>10.0f} s  {r['requests']}"
        )
    base, now = rows["chart"]["every"], rows["quote"]["every"]
    if base and now:
        print(f"ratio every-symbol (baseline / now): {base / now:.1f}x")


if __name__ == "__main__":
    main()
