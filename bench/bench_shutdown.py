"""Shutdown benchmark: seconds from Ctrl+C (SIGINT) or SIGTERM to the whole app gone, both embedded
servers included, while the first start's backfill is publishing. Figures only, no assertions; the
goal is 10 s (issue 8). tests/test_shutdown.py checks the same stop for leftovers and logged errors.

Usage: python bench/bench_shutdown.py [--runs 3]
"""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from support.shutdown import stop_during_backfill

GOAL_S = 10.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="stops per signal")
    args = parser.parse_args()
    for sig in (signal.SIGINT, signal.SIGTERM):
        times = []
        for i in range(args.runs):
            with tempfile.TemporaryDirectory() as tmp:
                stopped = stop_during_backfill(sig, Path(tmp), Path(tmp) / f"server-{i}.log")
            times.append(stopped.seconds)
            left = f", still running: {stopped.left}" if stopped.left else ""
            print(f"{sig.name} run {i + 1}: everything gone after {stopped.seconds:5.1f} s{left}", flush=True)
        median = statistics.median(times)
        print(
            f"{sig.name}: median {median:.1f} s, max {max(times):.1f} s over {len(times)} runs; "
            f"ratio of median to the {GOAL_S:.0f} s goal {median / GOAL_S:.2f}"
        )


if __name__ == "__main__":
    main()
