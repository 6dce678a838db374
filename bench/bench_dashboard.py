"""Dashboard benchmark: how fast the pages are with 20 symbols x 30 days of 1-minute bars stored.

    python bench/bench_dashboard.py [--symbols 20] [--days 30] [--runs 3] [--fresh] [--no-browser]

What it does, on the embedded stack (noida-db Kafka + SecantusDB MongoDB) in ``--data-dir``:
1. Stores N symbols x D days of 1-minute bars and their 5m/1h/1d rollups straight into ``bars``
   (the documents the bar builder writes), once; later runs reuse them and top up the last hours.
2. ``AppTest`` run time of Live and History (cold cache and warm cache), and, as the naive baseline
   measured in the same run on the same data, pulling the raw 1-minute points into pandas and
   resampling there.
3. Plotly payload of one Live chart vs a naive one (every 1-minute bar of the window, no cap).
4. In Chromium (``streamlit run Home.py``): time to the first drawn chart on Live and History, and
   the bytes the server sends per Live refresh (websocket frames between two ``script_finished``
   messages), default view and the heaviest view (5 days, every indicator).

Goals (issue 4): History over 30 days of 20 symbols renders in under 2 s; a Live refresh sends
under 200 KB. Figures are printed and written to ``test-artifacts/bench-dashboard.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.chdir(ROOT)

from pymongo.errors import BulkWriteError
from support.market_data import seed_bars

from pipeline import queries
from pipeline.config import Settings
from pipeline.embedded.stack import LocalStack
from pipeline.intervals import INTERVALS
from pipeline.models import to_utc
from pipeline.store import Store
from pipeline.watchlist import Watchlist
from ui.indicators import INDICATORS, warmup
from ui.navigation import spec

DB = "stockmon_bench"
PAGES = {key: ROOT / spec(key).file for key in ("live", "history", "insights")}
INSIGHTS_DB = "stockmon_bench_insights"
BENCHMARK = "^GSPC"


def log(msg: str) -> None:
    print(msg, flush=True)


def ensure_data(store: Store, symbols: list[str], days: int, fresh: bool) -> dict:
    meta = store.db["bench_meta"].find_one({"_id": "seed"})
    want = {"symbols": symbols, "days": days}
    if fresh or not meta or {k: meta.get(k) for k in want} != want:
        log(f"storing {len(symbols)} symbols x {days} days of 1-minute bars and rollups (first run only)…")
        store.client.drop_database(DB)
        store.ensure_indexes()
        t0 = time.perf_counter()
        docs = 0
        for i, symbol in enumerate(symbols):
            frame = seed_bars(store, [symbol], days=days, seed=i, price=40 + 15 * i)
            docs += int(len(frame) * (1 + 1 / 5 + 1 / 60 + 1 / 1440))
            log(f"  {symbol}: {docs:,} docs, {docs / (time.perf_counter() - t0):,.0f} docs/s")
        Watchlist(store.watchlist, None).seed(symbols, "simulated")
        seconds = time.perf_counter() - t0
        store.db["bench_meta"].replace_one(
            {"_id": "seed"},
            {**want, "end": datetime.now(UTC), "docs": docs, "seconds": seconds},
            upsert=True,
        )
        return {
            "seeded_docs": docs,
            "seed_seconds": round(seconds, 1),
            "seed_docs_per_s": round(docs / seconds),
        }
    end = meta["end"]
    gap = datetime.now(UTC) - end
    if gap > timedelta(minutes=10):  # top up so Live's windows have recent bars
        log(f"topping up the last {gap}…")
        for i, symbol in enumerate(symbols):
            try:
                seed_bars(
                    store,
                    [symbol],
                    days=min(gap.total_seconds() / 86400 + 0.01, days),
                    seed=100 + i,
                    price=40 + 15 * i,
                    ticks=False,
                )
            except BulkWriteError:
                pass  # buckets at the seam exist already
        store.db["bench_meta"].update_one({"_id": "seed"}, {"$set": {"end": datetime.now(UTC)}})
    return {"seeded_docs": meta.get("docs"), "seed_seconds": meta.get("seconds"), "reused": True}


def apptest_times(page: str, query: dict, runs: int) -> dict:
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    cold, warm = [], []
    for _ in range(runs):
        st.cache_data.clear()
        for bucket in (cold, warm):
            at = AppTest.from_file(str(PAGES[page]), default_timeout=120)
            for k, v in query.items():
                at.query_params[k] = v
            t0 = time.perf_counter()
            at.run()
            bucket.append(time.perf_counter() - t0)
            assert not at.exception, [e.value for e in at.exception]
            assert at.get("plotly_chart"), f"{page} drew no chart: {[i.value for i in at.info]}"
    return {
        "cold_s": round(statistics.median(cold), 3),
        "warm_s": round(statistics.median(warm), 3),
        "cold_all": [round(x, 3) for x in cold],
    }


def insights_data(store: Store, symbols: list[str], fresh: bool) -> dict:
    """20 symbols + the benchmark: a year of daily bars (to a week ago) plus 5 days of 1-minute bars
    with their 5m/1h/1d rollups (the recent days), as a watchlist would hold them; seeded once."""
    from support.market_data import seed_daily

    meta = store.db["bench_meta"].find_one({"_id": "seed"})
    if (
        not fresh
        and meta
        and meta.get("symbols") == symbols
        and to_utc(meta["end"]) > datetime.now(UTC) - timedelta(hours=12)
    ):
        now = datetime.now(UTC)  # a running pipeline's fresh ticks, so quotes find them at once
        store.prices.insert_many(
            [
                {
                    "symbol": s,
                    "interval": "tick",
                    "ts": now,
                    "open": 100.0,
                    "high": 100.0,
                    "low": 100.0,
                    "close": 100.0,
                    "volume": 1.0,
                    "source": "simulated",
                    "fetched_at": now,
                    "schema": 1,
                }
                for s in [*symbols, BENCHMARK]
            ]
        )
        return {"reused": True, "docs": meta.get("docs")}
    store.client.drop_database(INSIGHTS_DB)
    store.ensure_indexes()
    t0 = time.perf_counter()
    everyone = [*symbols, BENCHMARK]
    daily = seed_daily(store, everyone, sessions=255, end=datetime.now(UTC) - timedelta(days=6))
    minutes = seed_bars(store, everyone, days=5)
    Watchlist(store.watchlist, None).seed(everyone, "simulated")
    docs = len(daily) + int(len(minutes) * (1 + 1 / 5 + 1 / 60 + 1 / 1440))
    store.db["bench_meta"].replace_one(
        {"_id": "seed"}, {"symbols": symbols, "end": datetime.now(UTC), "docs": docs}, upsert=True
    )
    return {"docs": docs, "seed_seconds": round(time.perf_counter() - t0, 1)}


def insights_bench(store: Store, symbols: list[str], runs: int, fresh: bool) -> dict:
    """AppTest cold/warm render of Insights for every symbol against ^GSPC over 1Y, the JSON bytes of
    each chart (what st.plotly_chart sends), and as the baseline measured in the same run, History
    over the same symbols and year (a page that only draws one comparison chart)."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    report: dict = {"data": insights_data(store, symbols, fresh)}
    query = {"symbols": ",".join(symbols), "benchmark": BENCHMARK, "range": "1Y"}
    report["render"] = apptest_times("insights", query, runs)
    st.cache_data.clear()
    at = AppTest.from_file(str(PAGES["insights"]), default_timeout=120)
    for k, v in query.items():
        at.query_params[k] = v
    at.run()
    names = ["treemap", "vs_benchmark", "correlation", "drawdown", "histogram"]
    specs = [c.proto.spec for c in at.get("plotly_chart")]
    report["chart_kb"] = {n: round(len(s.encode()) / 1000, 1) for n, s in zip(names, specs, strict=False)}
    start = (datetime.now(UTC) - timedelta(days=365)).date().isoformat()
    report["baseline_history_1y"] = apptest_times(
        "history",
        {
            "symbols": ",".join(symbols),
            "start": start,
            "end": datetime.now(UTC).date().isoformat(),
            "interval": "1d",
        },
        runs,
    )
    return report


def insights_lines(r: dict) -> list[str]:
    cold, warm, base = r["render"]["cold_s"], r["render"]["warm_s"], r["baseline_history_1y"]["cold_s"]
    worst = max(r["chart_kb"].values())
    return [
        f"AppTest Insights 20 symbols + {BENCHMARK}, 1Y daily (+5 d of 1m): cold {cold:.2f}s  warm {warm:.2f}s "
        f"(goal < 1.5 s cold: {'met' if cold < 1.5 else 'MISSED'}); baseline History same symbols 1Y daily: "
        f"cold {base:.2f}s -> Insights = {cold / max(base, 1e-9):.1f}x",
        "Insights chart JSON (KB): "
        + ", ".join(f"{k} {v}" for k, v in r["chart_kb"].items())
        + f" (goal < 150 KB each: {'met' if worst < 150 else 'MISSED'})",
    ]


def naive_history(store: Store, symbols: list[str], start: datetime, end: datetime) -> dict:
    """What a page that resamples in pandas would do: every raw 1-minute point over the wire."""
    import pandas as pd

    t0 = time.perf_counter()
    frames = []
    for s in symbols:
        rows = list(
            store.bars.find(
                {"symbol": s, "interval": "1m", "ts": {"$gte": start, "$lt": end}},
                {"_id": 0, "symbol": 1, "ts": 1, "open": 1, "high": 1, "low": 1, "close": 1, "volume": 1},
            )
        )
        frames.append(pd.DataFrame(rows))
    raw = pd.concat(frames, ignore_index=True)
    raw["ts"] = pd.to_datetime(raw["ts"], utc=True)
    out = (
        raw.set_index("ts")
        .groupby("symbol")
        .resample("1h")
        .agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
        .dropna()
    )
    return {"seconds": round(time.perf_counter() - t0, 3), "raw_points": len(raw), "bars": len(out)}


def payloads(store: Store, symbol: str) -> dict:
    """Plotly JSON of one Live chart as the page builds it vs every 1-minute bar of the window (the
    naive one also without typed arrays: ISO date strings and doubles, as a plain figure would be)."""
    from ui import charts

    out = {}
    everything = list(INDICATORS)
    for label, window, interval, cap, indicators in (
        ("live_default_2h_1m", timedelta(hours=2), "1m", charts.live_point_cap([]), []),
        ("live_5d_all_indicators", timedelta(days=5), "1m", charts.live_point_cap(everything), everything),
        ("naive_5d_1m_uncapped", timedelta(days=5), "1m", 10**6, everything),
    ):
        result = queries.recent_bars(
            store, [symbol], interval, window, warmup=warmup(indicators), max_points=cap
        )
        fig = charts.candles(
            result.of(symbol),
            symbol=symbol,
            interval_s=INTERVALS[result.interval].seconds,
            indicators=indicators,
            tz="America/New_York",
            visible_from=datetime.now(UTC) - window,
        )
        text = fig.to_json() if not label.startswith("naive") else plain_json(fig)
        out[label] = {
            "interval": result.interval,
            "points": charts.figure_points(fig),
            "kb": round(len(text) / 1024, 1),
        }
    return out


def plain_json(fig) -> str:
    """The figure as a plain one would be sent: ISO date strings and lists of doubles."""
    import numpy as np
    import pandas as pd

    spec = fig.to_plotly_json()
    for trace in spec["data"]:
        for key, value in list(trace.items()):
            if isinstance(value, np.ndarray):
                if key == "x":
                    trace[key] = pd.to_datetime(value, unit="ms").strftime("%Y-%m-%dT%H:%M:%S").tolist()
                else:
                    trace[key] = value.astype("float64").tolist()
    return json.dumps(spec, default=str)


def browser(env: dict, symbols: list[str], artifacts: Path) -> dict:
    """Two servers: the pipeline stopped (page speed alone), then running with every symbol ticking
    (page speed under write load, and the bytes each Live refresh sends when bars really change)."""
    out: dict = {}
    out["idle"] = browser_phase(
        {**env, "STOCKMON_AUTOSTART": "false"}, symbols, artifacts, refresh_bytes=False
    )
    out["live"] = browser_phase(
        {**env, "STOCKMON_AUTOSTART": "true", "STOCKMON_POLL_SECONDS": "1"},
        symbols,
        artifacts,
        refresh_bytes=True,
    )
    return out


def browser_phase(env: dict, symbols: list[str], artifacts: Path, refresh_bytes: bool) -> dict:
    from playwright.sync_api import expect, sync_playwright
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from support.streamlit_server import CHROMIUM_ARGS, streamlit_server

    out: dict = {}
    chromium = os.environ.get("STOCKMON_CHROMIUM", "/usr/bin/chromium")
    with streamlit_server(env, artifacts / "bench-server.log") as (url, _):
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = b.new_page(viewport={"width": 1366, "height": 900})
            frames: list[tuple[int, str, tuple, bool]] = []  # (bytes, message type, delta path, is a chart)

            def on_ws(ws):
                def got(payload):
                    data = payload if isinstance(payload, bytes) else payload.encode()
                    kind, path, chart = "?", (), False
                    try:
                        msg = ForwardMsg.FromString(data)
                        kind, path = msg.WhichOneof("type"), tuple(msg.metadata.delta_path)
                        chart = (
                            kind == "delta"
                            and msg.delta.WhichOneof("type") == "new_element"
                            and msg.delta.new_element.WhichOneof("type") == "plotly_chart"
                        )
                    except Exception:
                        pass
                    frames.append((len(data), kind, path, chart))

                ws.on("framereceived", got)

            page.on("websocket", on_ws)

            def first_chart(path: str) -> float:
                t0 = time.monotonic()
                page.goto(f"{url}/{path}")
                page.locator(".js-plotly-plot .cartesianlayer .trace").first.wait_for(timeout=120_000)
                return round(time.monotonic() - t0, 3)

            live = f"Live?symbols={symbols[0]}&interval=1m&window=2h"
            out["live_first_chart_first_visit_s"] = first_chart(live)  # includes the runtime's start
            out["live_first_chart_s"] = statistics.median(first_chart(live) for _ in range(3))
            history = f"History?symbols={','.join(symbols)}&interval=auto"
            out["history_20_symbols_first_chart_s"] = statistics.median(
                first_chart(history) for _ in range(3)
            )
            page.screenshot(path=str(artifacts / "bench-history.png"))
            if not refresh_bytes:
                b.close()
                return out

            def per_refresh(path: str, seconds: float, setup=None) -> dict:
                """Bytes per run of the Live chart's fragment: all frames between two script_finished
                messages of a run that (re)draws the chart; other fragments' runs (alert toasts) are
                counted apart."""
                first_chart(path)
                if setup:
                    setup()
                page.wait_for_timeout(2500)
                frames.clear()
                page.wait_for_timeout(seconds * 1000)
                runs, current = [], []
                for frame in frames:
                    current.append(frame)
                    if frame[1] == "script_finished":
                        runs.append(current)
                        current = []
                # a Live run draws the chart, or refers to it by hash when the browser has it cached
                live_runs = [r for r in runs if any(f[3] or f[1] == "ref_hash" for f in r)]
                sizes = [sum(f[0] for f in r) for r in live_runs]
                return {
                    "refreshes": len(sizes),
                    "avg_kb": round(statistics.mean(sizes) / 1024, 1) if sizes else None,
                    "max_kb": round(max(sizes) / 1024, 1) if sizes else None,
                    "other_runs": len(runs) - len(sizes),
                    "seconds": seconds,
                }

            out["live_refresh_default"] = per_refresh(live, 16)

            def all_indicators():
                for name in INDICATORS:
                    page.get_by_role("button", name=name, exact=True).click()
                    page.wait_for_timeout(300)
                expect(page.locator(".js-plotly-plot .yaxislayer-above").nth(3)).to_be_attached(
                    timeout=30_000
                )

            out["live_refresh_5d_all_indicators"] = per_refresh(
                f"Live?symbols={symbols[0]}&interval=1m&window=5d", 16, all_indicators
            )
            out["live_refresh_8_symbols_lines_1d"] = per_refresh(
                f"Live?symbols={','.join(symbols[:8])}&interval=1m&window=1d", 16
            )
            page.screenshot(path=str(artifacts / "bench-live.png"))
            b.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--symbols", type=int, default=20)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "stockmon-bench")
    parser.add_argument("--fresh", action="store_true", help="re-seed even if the data is there")
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--only-insights", action="store_true", help="just the Insights figures (issue 13)")
    args = parser.parse_args()
    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    symbols = [f"SYM{i:02d}" for i in range(args.symbols)]

    stack = LocalStack(args.data_dir / "stack", timeout=120).start()
    try:
        settings = Settings.load(
            env={},
            secrets_paths=[],
            kafka_bootstrap_servers=stack.kafka_bootstrap,
            mongodb_uri=stack.mongodb_uri,
            db=DB,
            data_dir=args.data_dir / "app",
            topic_prices="bench.prices",
            topic_dead_letter="bench.dlq",
            consumer_group="bench",
            autostart=False,
            backfill_days_1m=0,
            backfill_days_daily=0,
        )
        if args.only_insights:
            from support.base import settings_env

            os.environ.update(
                {**settings_env(settings), "STOCKMON_DB": INSIGHTS_DB, "STOCKMON_AUTOSTART": "false"}
            )
            store = Store.from_uri(settings.mongodb_uri, INSIGHTS_DB, timeout_s=30)
            result = insights_bench(store, symbols, args.runs, args.fresh)
            store.close()
            print("\n".join(["", "== dashboard benchmark: Insights =="] + insights_lines(result)))
            (artifacts / "bench-insights.json").write_text(json.dumps(result, indent=2, default=str))
            return
        store = Store.from_uri(settings.mongodb_uri, DB, timeout_s=30)
        report: dict = {"symbols": args.symbols, "days": args.days, "machine_cpus": os.cpu_count()}
        report["data"] = ensure_data(store, symbols, args.days, args.fresh)

        from support.base import settings_env

        env = {**settings_env(settings), "STOCKMON_AUTOSTART": "false"}
        os.environ.update(env)
        now = datetime.now(UTC)
        start = datetime.combine((now - timedelta(days=args.days)).date(), datetime.min.time(), UTC)
        today = now.date().isoformat()

        log("AppTest run times…")
        report["apptest"] = {
            "live_1_symbol_2h_1m": apptest_times(
                "live", {"symbols": symbols[0], "interval": "1m", "window": "2h"}, args.runs
            ),
            "live_8_symbols_lines_1d": apptest_times(
                "live", {"symbols": ",".join(symbols[:8]), "interval": "5m", "window": "1d"}, args.runs
            ),
            "history_20_symbols_30d_auto": apptest_times(
                "history",
                {
                    "symbols": ",".join(symbols),
                    "start": start.date().isoformat(),
                    "end": today,
                    "interval": "auto",
                },
                args.runs,
            ),
            "history_1_symbol_30d_15m": apptest_times(
                "history",
                {"symbols": symbols[0], "start": start.date().isoformat(), "end": today, "interval": "15m"},
                args.runs,
            ),
        }
        t0 = time.perf_counter()
        ours = queries.bars(store, symbols, "1h", start, now)
        report["history_query"] = {
            "seconds": round(time.perf_counter() - t0, 3),
            "bars": len(ours.frame),
            "interval": ours.interval,
        }
        log("naive baseline: raw 1-minute points into pandas…")
        report["naive_history"] = naive_history(store, symbols, start, now)
        report["payload"] = payloads(store, symbols[0])
        if not args.no_browser:
            log("browser…")
            report["browser"] = browser(env, symbols, artifacts)
        store.close()
    finally:
        stack.stop()

    a, naive = report["apptest"], report["naive_history"]
    hist = a["history_20_symbols_30d_auto"]
    lines = [
        f"data: {args.symbols} symbols x {args.days} days of 1m bars "
        f"({report['data'].get('seeded_docs') or 0:,} stored docs incl. rollups)",
        f"AppTest Live   1 symbol 2h/1m:      cold {a['live_1_symbol_2h_1m']['cold_s']:.2f}s  "
        f"warm {a['live_1_symbol_2h_1m']['warm_s']:.2f}s",
        f"AppTest Live   8 symbols 1d lines:  cold {a['live_8_symbols_lines_1d']['cold_s']:.2f}s  "
        f"warm {a['live_8_symbols_lines_1d']['warm_s']:.2f}s",
        f"AppTest History 20 symbols 30d:     cold {hist['cold_s']:.2f}s  warm {hist['warm_s']:.2f}s  "
        f"(goal < 2 s: {'met' if hist['cold_s'] < 2 else 'MISSED'})",
        f"AppTest History 1 symbol 30d 15m:   cold {a['history_1_symbol_30d_15m']['cold_s']:.2f}s",
        f"history query (MongoDB, 1h, 20 symbols): {report['history_query']['seconds']:.2f}s for "
        f"{report['history_query']['bars']:,} bars",
        f"naive baseline (raw 1m into pandas, resample): {naive['seconds']:.2f}s for {naive['raw_points']:,} points "
        f"-> {naive['seconds'] / max(report['history_query']['seconds'], 1e-9):.0f}x the MongoDB aggregation, "
        f"{naive['seconds'] / max(hist['cold_s'], 1e-9):.1f}x the whole History page",
    ]
    pay = report["payload"]
    lines.append(
        f"Live chart JSON: default {pay['live_default_2h_1m']['kb']} KB "
        f"({pay['live_default_2h_1m']['points']} pts); 5d+indicators {pay['live_5d_all_indicators']['kb']} KB "
        f"({pay['live_5d_all_indicators']['points']} pts at {pay['live_5d_all_indicators']['interval']}); "
        f"naive uncapped {pay['naive_5d_1m_uncapped']['kb']} KB ({pay['naive_5d_1m_uncapped']['points']} pts) "
        f"= {pay['naive_5d_1m_uncapped']['kb'] / pay['live_5d_all_indicators']['kb']:.1f}x"
    )
    if "browser" in report:
        idle, busy = report["browser"]["idle"], report["browser"]["live"]
        lines += [
            f"browser, pipeline stopped: first Live chart {idle['live_first_chart_s']:.2f}s "
            f"({idle['live_first_chart_first_visit_s']:.2f}s on the very first visit, incl. runtime start); "
            f"first History chart, 20 symbols x 30 days: {idle['history_20_symbols_first_chart_s']:.2f}s",
            f"browser, pipeline running (20 symbols ticking every second): first Live chart "
            f"{busy['live_first_chart_s']:.2f}s; first History chart {busy['history_20_symbols_first_chart_s']:.2f}s",
        ]
        for key in (
            "live_refresh_default",
            "live_refresh_5d_all_indicators",
            "live_refresh_8_symbols_lines_1d",
        ):
            r = busy[key]
            ok = r["max_kb"] is not None and r["max_kb"] < 200
            lines.append(
                f"bytes per Live refresh [{key.removeprefix('live_refresh_')}]: avg {r['avg_kb']} KB, "
                f"max {r['max_kb']} KB over {r['refreshes']} refreshes in {r['seconds']} s "
                f"(goal < 200 KB: {'met' if ok else 'MISSED'})"
            )
    print("\n".join(["", "== dashboard benchmark =="] + lines))
    (artifacts / "bench-dashboard.json").write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
