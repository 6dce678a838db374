"""Footprint soak at the figures the old soak test used (figures, not assertions): the app's real
pipeline on its own embedded servers, 50 simulated symbols polled every second (~100 events/s) for
``--seconds`` (300 by default) under a ``--cap-mb`` cap (24) with a ``--high`` snapshot budget share
(0.10; ``LOW`` keeps the same 0.85 ratio to it). Prints the snapshot and the broker's RSS every 30 s,
when the first trim came, the worst snapshot after it, and the drain. tests/test_footprint.py asserts
the same guarantees on a run compressed in time.

Usage: python bench/bench_footprint.py [--seconds 300] [--cap-mb 24] [--high 0.10] [--poll 1.0]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from support.footprint import pause_and_drain, sample_footprint

from pipeline.config import Settings
from pipeline.embedded import trimmer as footprint
from pipeline.runtime import Runtime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--cap-mb", type=float, default=24.0)
    parser.add_argument("--high", type=float, default=0.10, help="snapshot budget share of the cap")
    parser.add_argument("--poll", type=float, default=1.0, help="poll period, seconds")
    parser.add_argument("--symbols", type=int, default=50)
    args = parser.parse_args()
    footprint.HIGH, footprint.LOW = args.high, args.high * 0.85
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.load(
            env={},
            secrets_paths=[],
            data_dir=Path(tmp) / "data",
            watchlist=tuple(f"S{i:02d}" for i in range(args.symbols)),
            max_symbols=max(50, args.symbols),
            poll_seconds=args.poll,
            backfill_days_1m=0,
            backfill_days_daily=0,
            sim_seed=7,
            embedded_retention_mb=args.cap_mb,
        )
        runtime = Runtime(settings).start()
        try:
            assert runtime.state == "running", runtime.error
            soak = sample_footprint(runtime, args.seconds, every_s=1.0)
            t_drain = time.monotonic()
            counters = pause_and_drain(runtime)
            drain_s = time.monotonic() - t_drain
        finally:
            runtime.stop()
    budget = args.cap_mb * args.high
    print(
        f"{args.symbols} symbols at {args.poll:g} s for {args.seconds:.0f} s, cap {args.cap_mb:g} MiB "
        f"(snapshot budget {budget:.2f} MiB)"
    )
    samples, first_trim, fp = soak.samples, soak.first_trim, soak.footprint
    for at, size, rss in samples[::30] + samples[-1:]:
        print(f"  t={at:5.0f} s  snapshot {size:6.2f} MiB  broker RSS {rss:6.1f} MiB")
    after = [s for at, s, _ in samples if first_trim is not None and at > first_trim + 10]
    print(f"  first trim at {first_trim} s; worst snapshot after it {max(after, default=None)} MiB")
    print(
        f"  worst snapshot {max(s for _, s, _ in samples):.2f} MiB, worst RSS {max(r for *_, r in samples):.1f} MiB"
    )
    print(f"  footprint {fp}")
    print(f"  drained in {drain_s:.1f} s: {counters}; {counters['published'] / args.seconds:.0f} events/s")


if __name__ == "__main__":
    main()
