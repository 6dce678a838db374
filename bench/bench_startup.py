"""Start-up benchmark: seconds from `streamlit run Home.py` to both servers shown healthy in a real
browser, cold (new data folder) and warm (the same folder again), and the embedded servers' memory
once the app has idled. Figures only, no assertions.

Usage: python bench/bench_startup.py [--idle 20]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from support.streamlit_server import CHROMIUM_ARGS, streamlit_server

from pipeline.embedded.stack import rss_mb


def one_start(data: Path, log: Path, idle_s: float = 0.0) -> tuple[float, dict]:
    from playwright.sync_api import expect, sync_playwright

    t0 = time.monotonic()
    env = {"STOCKMON_DATA_DIR": str(data)}
    with streamlit_server(env, log, drop=("KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URI")) as (url, _):
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(url)
            expect(page.get_by_text("Kafka is healthy at")).to_be_visible(timeout=60_000)
            expect(page.get_by_text("MongoDB is healthy at")).to_be_visible(timeout=60_000)
            elapsed = time.monotonic() - t0
            browser.close()
        memory = {}
        if idle_s:
            time.sleep(idle_s)
            servers = json.loads((data / "stack.json").read_text())["servers"]
            memory = {name: rss_mb(s["pid"]) for name, s in servers.items()}
    return elapsed, memory


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--idle", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        cold, _ = one_start(data, Path(tmp) / "cold.log")
        warm, memory = one_start(data, Path(tmp) / "warm.log", idle_s=args.idle)
    print(f"cold start to healthy status   {cold:5.1f} s")
    print(f"warm start to healthy status   {warm:5.1f} s   (ratio warm/cold {warm / cold:.2f})")
    for name, mb in memory.items():
        print(f"RSS of {name:<8} after {args.idle:.0f}s    {mb} MiB")


if __name__ == "__main__":
    main()
