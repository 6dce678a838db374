"""Steady-state benchmark of the app as a user first starts it (figures, not assertions).

Each strategy runs in its own process on its own embedded stack (new data folder), with the
defaults: the 6-symbol watchlist, 2 days of 1-minute and 365 days of daily backfill, a 2 s poll.

  current   time from ``Runtime.start()`` to "all bars current": every backfill done, every symbol's
            newest 1m bar within 10 s of its newest tick and no mark waiting longer than 10 s
  steady    over ``--seconds`` once current (or once the backfills are done, if it never is): CPU
            ms per consumed event of the app process, of the embedded servers and of both, % of
            one core, minutes rebuilt per builder run, bar lag (median and worst of samples every 5 s)

The baseline, measured in the same run, is ``--strategy old``: the marking of the code before
issue 10, reproduced here (one mark per symbol and kind, ``$min lo``, removed only if its ``seq``
did not change while it was rebuilt), so live ticks keep the backfilled range in every rebuild.

Usage: python bench/bench_steady.py [--seconds 60] [--timeout 240] [--strategy both|old|new]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

CURRENT_S = 10.0  # "current": a bar within this many seconds of its newest tick


def use_old_marks() -> None:
    """Swap in the marking and the run loop of the code before issue 10 (for the baseline only)."""
    from pymongo import UpdateOne

    from pipeline import bars as bars_module
    from pipeline.bars import MINUTE, BarBuilder
    from pipeline.models import to_utc, utcnow
    from pipeline.store import DAY_INPUTS, MINUTE_INPUTS, Store

    def mark_bars(self, events) -> None:
        ranges: dict[tuple[str, str], list[datetime]] = {}
        for e in events:
            kind = (
                "intraday" if e.interval in MINUTE_INPUTS else "daily" if e.interval in DAY_INPUTS else None
            )
            if kind is None:
                continue
            lo_hi = ranges.setdefault((e.symbol, kind), [e.ts, e.ts])
            lo_hi[0], lo_hi[1] = min(lo_hi[0], e.ts), max(lo_hi[1], e.ts)
        if ranges:
            now = utcnow()
            self.bar_marks.bulk_write(
                [
                    UpdateOne(
                        {"_id": f"{symbol}|{kind}"},
                        {
                            "$min": {"lo": lo, "since": now},
                            "$max": {"hi": hi},
                            "$inc": {"seq": 1},
                            "$set": {"symbol": symbol, "kind": kind, "marked_at": now},
                        },
                        upsert=True,
                    )
                    for (symbol, kind), (lo, hi) in ranges.items()
                ],
                ordered=False,
            )

    def run_once(self, interruptible: bool = False) -> int:
        t0 = time.perf_counter()
        written = minutes = 0
        stopped = self._stop.is_set if interruptible else (lambda: False)
        for mark in list(self.store.bar_marks.find()):
            if stopped():
                break
            lo, hi = to_utc(mark["lo"]), to_utc(mark["hi"])
            if mark["kind"] == "intraday":
                done, n = self.rebuild_intraday(mark["symbol"], lo, hi, stopped)
                minutes += int((MINUTE.floor(hi) - MINUTE.floor(lo)) / MINUTE.span) + 1 if done else 0
            else:
                done, n = True, self.rebuild_days(mark["symbol"], lo, hi)
            written += n
            if done:
                self.store.bar_marks.delete_one({"_id": mark["_id"], "seq": mark["seq"]})
        self.runs += 1
        self.bars_written += written
        self.minutes_rebuilt += minutes
        self.last_run_minutes, self.last_run_bars = minutes, written
        self.max_run_minutes = max(self.max_run_minutes, minutes)
        self.recent_minutes.append(minutes)
        self.last_run = time.time()
        self.last_duration_s = round(time.perf_counter() - t0, 3)
        return written

    Store.mark_bars = mark_bars  # type: ignore[method-assign]
    BarBuilder.run_once = run_once  # type: ignore[method-assign]
    assert bars_module.BarBuilder is BarBuilder


def server_cpu_s(data: Path) -> float:
    """CPU seconds (user + system) of the embedded servers and their children so far."""
    import psutil

    total = 0.0
    servers = json.loads((data / "stack.json").read_text())["servers"]
    for info in servers.values():
        try:
            proc = psutil.Process(info["pid"])
            for p in [proc, *proc.children(recursive=True)]:
                t = p.cpu_times()
                total += t.user + t.system
        except psutil.Error:
            pass
    return total


def child(strategy: str, seconds: float, timeout_s: float) -> dict:
    import logging

    from support.bars import backfills_done, bar_lags

    from pipeline.config import Settings
    from pipeline.runtime import Runtime

    logging.basicConfig(level=logging.WARNING)
    if strategy == "old":
        use_old_marks()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        settings = Settings.load(env={}, secrets_paths=[], data_dir=data, sim_seed=7)
        symbols = list(settings.watchlist)
        t0 = time.monotonic()
        runtime = Runtime(settings).start()
        try:
            assert runtime.state == "running", runtime.error
            store, builder = runtime.store, runtime.pipeline.ingest.bars
            started_s = time.monotonic() - t0
            current_s = None
            while time.monotonic() - t0 < timeout_s:
                if backfills_done(store, symbols):
                    lags = bar_lags(store, symbols)
                    snap = builder.snapshot()
                    if max(lags.values()) <= CURRENT_S and (snap["lag_s"] or 0) <= CURRENT_S:
                        current_s = time.monotonic() - t0
                        break
                time.sleep(0.5)
            while not backfills_done(store, symbols):  # never current: measure once history is in
                time.sleep(0.5)
            consumer = runtime.pipeline.consumer
            events0, runs0 = consumer.tally.counts.get("consumed", 0), builder.runs
            minutes0, app0, srv0 = builder.minutes_rebuilt, time.process_time(), server_cpu_s(data)
            w0 = time.monotonic()
            lag_samples: list[float] = []
            builder_lags: list[float] = []
            per_run_max, seen = 0, builder.runs
            while time.monotonic() - w0 < seconds:
                time.sleep(5.0)
                lag_samples.append(max(bar_lags(store, symbols).values()))
                builder_lags.append(builder.snapshot()["lag_s"] or 0.0)
                new_runs, seen = builder.runs - seen, builder.runs  # their figures: the deque's tail
                if new_runs:
                    per_run_max = max(per_run_max, *list(builder.recent_minutes)[-new_runs:])
            wall = time.monotonic() - w0
            app_cpu, srv_cpu = time.process_time() - app0, server_cpu_s(data) - srv0
            events = consumer.tally.counts.get("consumed", 0) - events0
            runs = builder.runs - runs0
        finally:
            runtime.store.client.drop_database(settings.db)
            runtime.stop()
    return {
        "strategy": strategy,
        "start_s": round(started_s, 1),
        "current_s": None if current_s is None else round(current_s, 1),
        "window_s": round(wall, 1),
        "events": events,
        "events_per_s": round(events / wall, 2),
        "app_cpu_ms_per_event": round(1000 * app_cpu / max(events, 1), 2),
        "server_cpu_ms_per_event": round(1000 * srv_cpu / max(events, 1), 2),
        "app_core_pct": round(100 * app_cpu / wall, 1),
        "server_core_pct": round(100 * srv_cpu / wall, 1),
        "builder_runs": runs,
        "minutes_per_run": round((builder.minutes_rebuilt - minutes0) / max(runs, 1), 1),
        "minutes_per_run_max": per_run_max,
        "bar_lag_median_s": round(statistics.median(lag_samples), 1) if lag_samples else None,
        "bar_lag_max_s": round(max(lag_samples), 1) if lag_samples else None,
        "builder_lag_max_s": round(max(builder_lags), 1) if builder_lags else None,
    }


def run_child(strategy: str, seconds: float, timeout_s: float) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        strategy,
        "--seconds",
        str(seconds),
        "--timeout",
        str(timeout_s),
    ]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s + seconds + 300)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode or not lines:
        raise SystemExit(f"{strategy} run failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60.0, help="steady-state window")
    parser.add_argument("--timeout", type=float, default=240.0, help="give up waiting for current bars")
    parser.add_argument("--strategy", choices=("both", "old", "new"), default="both")
    parser.add_argument("--child", choices=("old", "new"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.seconds, args.timeout)), flush=True)
        return
    strategies = ["old", "new"] if args.strategy == "both" else [args.strategy]
    report({s: run_child(s, args.seconds, args.timeout) for s in strategies}, args.timeout)


def report(results: dict[str, dict], timeout_s: float) -> None:
    """Print one row per figure, a column per strategy and, with both, the ratio old/new."""
    strategies = list(results)
    for r in results.values():
        r["total_cpu_ms_per_event"] = round(r["app_cpu_ms_per_event"] + r["server_cpu_ms_per_event"], 2)
    rows = [
        ("start to all bars current (s)", "current_s"),
        ("runtime start (s)", "start_s"),
        ("steady window (s)", "window_s"),
        ("events/s consumed", "events_per_s"),
        ("app CPU ms per event", "app_cpu_ms_per_event"),
        ("servers CPU ms per event", "server_cpu_ms_per_event"),
        ("app + servers CPU ms per event", "total_cpu_ms_per_event"),
        ("app CPU, % of one core", "app_core_pct"),
        ("servers CPU, % of one core", "server_core_pct"),
        ("builder runs in window", "builder_runs"),
        ("minutes rebuilt per run (mean)", "minutes_per_run"),
        ("minutes rebuilt per run (max)", "minutes_per_run_max"),
        ("bar lag median of samples (s)", "bar_lag_median_s"),
        ("bar lag worst sample (s)", "bar_lag_max_s"),
        ("builder lag worst sample (s)", "builder_lag_max_s"),
    ]
    print(
        f"{'':34}" + "".join(f"{s:>12}" for s in strategies) + ("   old/new" if len(strategies) == 2 else "")
    )
    for label, key in rows:
        values = [results[s][key] for s in strategies]
        cells = "".join(f"{'never' if v is None else v:>12}" for v in values)
        ratio = ""
        if len(values) == 2 and all(isinstance(v, int | float) for v in values) and values[1]:
            ratio = f"   {values[0] / values[1]:8.1f}x"
        print(f"{label:34}{cells}{ratio}")
    if "old" in results and results["old"]["current_s"] is None:
        print(
            f"(old: bars were not current within {timeout_s:.0f} s; steady figures measured after the backfills)"
        )


if __name__ == "__main__":
    main()
