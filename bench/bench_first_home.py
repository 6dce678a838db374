"""First Home render after start, with and without the runtime warming the exchange calendars.

Each round is a fresh Python process (the calendars are cached per process) that renders Home once
through Streamlit's AppTest as ``streamlit run`` would: embedded servers started in a new data folder,
a watchlist on five markets and ``STOCKMON_SIM_HOURS=calendar`` (so every status is a calendar lookup):
  start     ``Runtime.start()`` (the embedded servers, topics and indexes, the pipeline), s
  render    the rest of the first ``at.run()``: Home itself, s
  second    a second ``at.run()`` in the same process (everything cached): the floor, s
  calendars of the first run, the time Home's own thread spent getting session tables (building
            them, or waiting for the warm-up's build), s
  cold      ``markets.warm`` replaced by a no-op (what the first Home render paid before)
  warm      as shipped: the runtime builds the calendars in a daemon thread while it starts

Usage: python bench/bench_first_home.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WATCHLIST = "AAPL 7203.T VOD.L SAP.DE BTC-USD"

CHILD = r"""
import json, os, sys, time
sys.path.insert(0, os.getcwd())
import threading
from pipeline.markets import calendars as markets
if os.environ["BENCH_WARM"] == "0":
    markets.warm = lambda *a, **k: 0
spent = [0.0]  # seconds the page's threads spent getting session tables (building or waiting)
real_table = markets.session_table
def timed_table(*a, **k):
    if threading.current_thread().name == "warm-calendars":
        return real_table(*a, **k)
    t = time.perf_counter()
    try:
        return real_table(*a, **k)
    finally:
        spent[0] += time.perf_counter() - t
markets.session_table = timed_table
from streamlit.testing.v1 import AppTest
at = AppTest.from_file("pages/home.py", default_timeout=300)
t0 = time.perf_counter()
at.run()
first = time.perf_counter() - t0
assert not at.exception, at.exception
from ui.runtime import _runtime
rt = _runtime()
t0 = time.perf_counter()
at.run()
second = time.perf_counter() - t0
start = rt.timings.get("start_s", 0.0)
print(json.dumps({"first": first, "start": start, "render": first - start, "second": second,
                  "calendars": spent[0],
                  "warm_s": rt.timings.get("warm_calendars_s")}))
rt.stop()
"""


def one(folder: Path, warm: bool) -> dict:
    drop = ("KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URI")
    env = {
        **{k: v for k, v in os.environ.items() if k not in drop},
        "STOCKMON_DATA_DIR": str(folder / uuid.uuid4().hex[:8]),
        "STOCKMON_WATCHLIST": WATCHLIST,
        "STOCKMON_SIM_HOURS": "calendar",
        "STOCKMON_BACKFILL_DAYS_1M": "0",
        "STOCKMON_BACKFILL_DAYS_DAILY": "0",
        "BENCH_WARM": "1" if warm else "0",
    }
    out = subprocess.run(
        [sys.executable, "-c", CHILD], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs: dict[str, list[dict]] = {"cold": [], "warm": []}
        for _ in range(args.rounds):  # interleaved, so machine load hits both alike
            for name in runs:
                runs[name].append(one(Path(tmp), warm=name == "warm"))
    med = {
        n: {
            k: statistics.median(r[k] for r in rs)
            for k in ("first", "start", "render", "second", "calendars")
        }
        for n, rs in runs.items()
    }
    for name, m in med.items():
        print(
            f"{name:5} first Home run {m['first']:.2f} s = start {m['start']:.2f} s + render {m['render']:.2f} s"
            f" · second run {m['second']:.2f} s · calendars in the first render {m['calendars']:.3f} s"
            f"  (median of {args.rounds})"
        )
    print("calendars warm this many s after start began:", [r["warm_s"] for r in runs["warm"]])
    print(f"render ratio warm/cold: {med['warm']['render'] / med['cold']['render']:.2f}")
    print("all rounds:", json.dumps(runs))


if __name__ == "__main__":
    main()
