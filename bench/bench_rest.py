"""CPU at rest of a default first start, per process and per thread (figures, not assertions).

Each variant runs in its own process on its own embedded stack (new data folder), with the defaults
(the 6-symbol watchlist, 2 days of 1-minute and 365 days of daily backfill, a 2 s poll) unless
``--symbols`` / ``--poll`` say otherwise. Once every backfill is stored and every symbol's 1m bars
follow its ticks (as ``bench_steady``'s "current"), and the forecast job's first run (a minute after
the start, it fits every symbol's models) is over, plus ``--settle`` seconds, it measures over
``--seconds``:

- CPU seconds (user + system) of the app process (the runtime, as ``streamlit run Home.py`` runs
  it, without Streamlit's own server) and of each embedded server with its children, as % of one core;
- CPU per consumed event (ms) and the fixed part: the regression of CPU on events is not attempted
  here; run two ``--poll`` values and compare (``--symbols 50 --poll 1`` is issue 20's second goal);
- each thread's share of the app's CPU, by Python thread name (native threads by their ``comm``).

The baseline, measured in the same run, is ``--variant before``: the periods and waits of the code
before issue 20, put back by ``use_before`` (health snapshot and MongoDB ping every 1 s with or
without a reader, bars every 1 s, the consumer without its idle rest: kafka-python's poll loop, which
noida-db answers at once). ``after`` is the code as it is.

Usage: python bench/bench_rest.py [--seconds 60] [--settle 20] [--symbols 6] [--poll 2]
                                  [--variant both|before|after]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

CURRENT_S = 10.0  # "current": a symbol's newest 1m bar within this many seconds of its newest tick
DEFAULT_SYMBOLS = 6

#: Symbols beyond the default watchlist for ``--symbols N`` (the simulator knows them all).
MORE = (
    "AMD INTC ORCL IBM CSCO ADBE CRM QCOM TXN AVGO PYPL NFLX UBER SHOP SQ BA CAT DE GE HON MMM "
    "JPM BAC WFC C GS MS V MA AXP KO PEP MCD SBUX NKE WMT COST HD LOW TGT DIS CMCSA T VZ XOM CVX "
    "PFE MRK JNJ ABBV LLY UNH"
).split()


def use_before() -> None:
    """Put back the periods and waits of the code before issue 20 (the baseline only)."""
    from pipeline import consumer
    from pipeline.health import snapshot as health

    health.REFRESH_S = 1.0
    health.IDLE_REFRESH_S = 1.0  # every second whether or not a page reads health
    consumer.IDLE_POLL_S = 0.0  # kafka-python's poll(timeout): a fetch loop against noida-db


def thread_names() -> dict[int, str]:
    """{native thread id: name} of this process: Python's names, else the kernel's ``comm``."""
    names = {t.native_id: t.name for t in threading.enumerate() if t.native_id is not None}
    for task in Path("/proc/self/task").iterdir():
        tid = int(task.name)
        if tid not in names:
            try:
                names[tid] = "native:" + (task / "comm").read_text().strip()
            except OSError:
                names[tid] = f"native:{tid}"
    return names


def thread_cpu() -> dict[int, float]:
    """{native thread id: CPU seconds (user + system)} of this process's live threads."""
    import psutil

    return {t.id: t.user_time + t.system_time for t in psutil.Process().threads()}


def group(name: str) -> str:
    """A thread's row in the table: numbered pool threads share one row."""
    for prefix in ("ThreadPoolExecutor", "kafka-python-producer", "stockmon-notify"):
        if name.startswith(prefix):
            return prefix + "*"
    return name


def server_cpu(data: Path) -> dict[str, float]:
    """{server name: CPU seconds so far} of the embedded servers, their children included."""
    import psutil

    out: dict[str, float] = {}
    servers = json.loads((data / "stack.json").read_text())["servers"]
    for name, info in servers.items():
        try:
            proc = psutil.Process(info["pid"])
            total = 0.0
            for p in [proc, *proc.children(recursive=True)]:
                t = p.cpu_times()
                total += t.user + t.system
            out[name] = total
        except psutil.Error:
            out[name] = 0.0
    return out


def child(
    variant: str, seconds: float, settle_s: float, symbols_n: int, poll_s: float, timeout_s: float
) -> dict:
    import logging

    from support.bars import backfills_done, bar_lags

    from pipeline.config import DEFAULT_WATCHLIST, Settings
    from pipeline.runtime import Runtime

    logging.basicConfig(level=logging.WARNING)
    if variant == "before":
        use_before()
    watchlist = list(DEFAULT_WATCHLIST)
    watchlist += [s for s in MORE if s not in watchlist][: max(0, symbols_n - len(watchlist))]
    watchlist = watchlist[:symbols_n]
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        settings = Settings.load(
            env={},
            secrets_paths=[],
            data_dir=data,
            sim_seed=7,
            watchlist=tuple(watchlist),
            poll_seconds=poll_s,
            **({"bar_period_s": 1.0} if variant == "before" else {}),
        )
        t0 = time.monotonic()
        runtime = Runtime(settings).start()
        try:
            assert runtime.state == "running", runtime.error
            store, builder = runtime.store, runtime.pipeline.ingest.bars
            current_s = None
            while time.monotonic() - t0 < timeout_s:
                if backfills_done(store, watchlist):
                    lags = bar_lags(store, watchlist)
                    if max(lags.values()) <= CURRENT_S and (builder.snapshot()["lag_s"] or 0) <= CURRENT_S:
                        current_s = time.monotonic() - t0
                        break
                time.sleep(0.5)
            while not backfills_done(store, watchlist):
                time.sleep(0.5)
            forecasts = runtime.pipeline.forecasts  # its first run fits models for every symbol: not rest
            while forecasts is not None and (forecasts.stats["runs"] < 1 or forecasts.stats["running"]):
                time.sleep(0.5)
            forecast_s = None if forecasts is None else round(forecasts.stats["duration_s"], 1)
            time.sleep(settle_s)
            consumer = runtime.pipeline.consumer
            events0 = consumer.tally.counts.get("consumed", 0)
            threads0, srv0, app0 = thread_cpu(), server_cpu(data), time.process_time()
            w0 = time.monotonic()
            time.sleep(seconds)  # the measured window: this thread sleeps, so it costs nothing
            wall = time.monotonic() - w0
            threads1, srv1, app1 = thread_cpu(), server_cpu(data), time.process_time()
            names = thread_names()
            events = consumer.tally.counts.get("consumed", 0) - events0
        finally:
            runtime.store.client.drop_database(settings.db)
            runtime.stop()
    per_thread: dict[str, float] = {}
    for tid, cpu in threads1.items():
        used = cpu - threads0.get(tid, 0.0)
        if used > 0:
            key = group(names.get(tid, f"gone:{tid}"))
            per_thread[key] = per_thread.get(key, 0.0) + used
    app_cpu = app1 - app0
    servers = {k: srv1.get(k, 0.0) - srv0.get(k, 0.0) for k in srv1}
    return {
        "variant": variant,
        "symbols": symbols_n,
        "poll_s": poll_s,
        "current_s": None if current_s is None else round(current_s, 1),
        "forecast_s": forecast_s,
        "window_s": round(wall, 1),
        "events": events,
        "events_per_s": round(events / wall, 2),
        "threads": len(names),
        "app_pct": round(100 * app_cpu / wall, 2),
        "servers_pct": {k: round(100 * v / wall, 2) for k, v in servers.items()},
        "total_pct": round(100 * (app_cpu + sum(servers.values())) / wall, 2),
        "app_ms_per_event": round(1000 * app_cpu / max(events, 1), 3),
        "per_thread_pct": {
            k: round(100 * v / wall, 2) for k, v in sorted(per_thread.items(), key=lambda kv: -kv[1])
        },
    }


def run_child(variant: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", variant]
    for flag in ("seconds", "settle", "symbols", "poll", "timeout"):
        cmd += [f"--{flag}", str(getattr(args, flag))]
    out = subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, timeout=args.timeout + args.seconds + 600
    )
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode or not lines:
        raise SystemExit(f"{variant} run failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(lines[-1])


def report(results: dict[str, dict]) -> None:
    """One row per figure and per thread, a column per variant and, with both, before/after."""
    variants = list(results)
    first = results[variants[0]]
    print(
        f"{first['symbols']} symbols, {first['poll_s']} s poll, window {first['window_s']} s "
        "(CPU as % of one core)"
    )
    header = (
        f"{'':40}" + "".join(f"{v:>10}" for v in variants) + ("  before/after" if len(variants) == 2 else "")
    )
    print(header)

    def row(label: str, values: list) -> None:
        cells = "".join(f"{'-' if v is None else v:>10}" for v in values)
        ratio = ""
        if len(values) == 2 and all(isinstance(v, int | float) for v in values) and values[1]:
            ratio = f"  {values[0] / values[1]:10.1f}x"
        print(f"{label[:40]:40}{cells}{ratio}")

    row("start to bars current (s)", [results[v]["current_s"] for v in variants])
    row("first forecast run (s, before the window)", [results[v]["forecast_s"] for v in variants])
    row("events/s consumed", [results[v]["events_per_s"] for v in variants])
    row("threads in the app process", [results[v]["threads"] for v in variants])
    row("app process", [results[v]["app_pct"] for v in variants])
    for server in sorted({s for v in variants for s in results[v]["servers_pct"]}):
        row(f"server: {server}", [results[v]["servers_pct"].get(server) for v in variants])
    row("TOTAL app + servers", [results[v]["total_pct"] for v in variants])
    row("app CPU ms per consumed event", [results[v]["app_ms_per_event"] for v in variants])
    print("app threads (% of one core):")
    names: list[str] = []
    for v in variants:
        names += [n for n in results[v]["per_thread_pct"] if n not in names]
    for name in names:
        row(f"  {name}", [results[v]["per_thread_pct"].get(name, 0.0) for v in variants])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60.0, help="measured window")
    parser.add_argument("--settle", type=float, default=20.0, help="wait after bars are current")
    parser.add_argument("--symbols", type=int, default=DEFAULT_SYMBOLS)
    parser.add_argument("--poll", type=float, default=2.0, help="live poll period (s)")
    parser.add_argument("--timeout", type=float, default=300.0, help="give up waiting for current bars")
    parser.add_argument("--variant", choices=("both", "before", "after"), default="both")
    parser.add_argument("--child", choices=("before", "after"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = child(args.child, args.seconds, args.settle, args.symbols, args.poll, args.timeout)
        print(json.dumps(result), flush=True)
        return
    variants = ["before", "after"] if args.variant == "both" else [args.variant]
    report({v: run_child(v, args) for v in variants})


if __name__ == "__main__":
    main()
