"""Streaming benchmark on the embedded stack (figures, not assertions).

Measures in one run, against the same servers and the local fakes (tests/support: the fake HTTP
market and the fake streamer speaking Yahoo's frames):
  stream    pushed tick -> stored in MongoDB (acknowledged, from the consumer's on_stored hook) at
            50 symbols x 2 ticks/s for --seconds: p50/p95/p99 (goal p99 <= 250 ms); the price age
            (now - newest stored tick's trade time, sampled every 0.5 s); REST chart requests at the
            fake server during the steady state, per hour; the app process's CPU. Baseline in the same
            run: the same phase without the consumer's idle rest (kafka-python's own poll loop, which
            noida-db answers at once: the code before issue 20); beside it: received -> stored and the MongoDB calls (insert, bar marks) per batch
  fetch     Kafka alone: produced -> polled at 50 records/s, consumer fetch wait 500 ms vs 50 ms
            (kafka-python's poll; noida-db 0.2.3 does not hold an empty fetch, so the two differ little)
  polling   yfinance with STOCKMON_YAHOO_LIVE=poll, 6 symbols, STOCKMON_POLL_SECONDS=2 (the default), for
            --poll-seconds: its price age the same way, and REST requests per hour, (a) under the
            default request budget (the interval is raised to what 1,500/h sustains) and (b) with the
            budget lifted (what polling at the default interval costs without one)

Usage: python bench/bench_stream.py [--seconds 60] [--poll-seconds 30]   (--poll-seconds 0: no polling phases)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from support.fake_market import FakeMarket, Instrument
from support.fake_streamer import FakeStreamer

from pipeline import bus
from pipeline import consumer as consumer_module
from pipeline.config import Settings
from pipeline.embedded.stack import LocalStack
from pipeline.runtime import Runtime, configure_logging

SIX = ("AAPL", "MSFT", "GOOG", "AMZN", "NVDA", "META")


def settings_for(stack: LocalStack, tag: str, data: Path, **kw) -> Settings:
    return Settings.load(
        env={},
        secrets_paths=[],
        kafka_bootstrap_servers=stack.kafka_bootstrap,
        mongodb_uri=stack.mongodb_uri,
        db=f"bench_{tag}",
        topic_prices=f"bench.{tag}",
        topic_dead_letter=f"bench.{tag}.dlq",
        consumer_group=f"bench-{tag}",
        data_dir=data / tag,
        partitions=3,
        backfill_days_1m=0,
        backfill_days_daily=0,
        **kw,
    )


def pct(values: list[float], p: float) -> float:
    data = sorted(values)
    return data[min(len(data) - 1, int(p * len(data)))] if data else float("nan")


def sample_ages(runtime: Runtime, symbols, stop: threading.Event, out: list[float]) -> None:
    """Every 0.5 s: now minus the trade time of each symbol's newest stored tick (s)."""
    while not stop.wait(0.5):
        now = datetime.now(UTC)
        for s in symbols:
            doc = runtime.store.prices.find_one({"symbol": s, "interval": "tick"}, sort=[("ts", -1)])
            if doc:
                out.append((now - doc["ts"].replace(tzinfo=UTC)).total_seconds())


@contextmanager
def consumer_options(**overrides):
    """The pipeline's consumer built with ``overrides`` (the baseline: kafka-python's defaults)."""
    original = bus.consumer
    bus.consumer = lambda *a, **k: original(*a, **{**k, **overrides})
    try:
        yield
    finally:
        bus.consumer = original


@contextmanager
def idle_poll(seconds: float):
    """The pipeline's consumer with ``IDLE_POLL_S`` at ``seconds`` (0: no rest between polls)."""
    original = consumer_module.IDLE_POLL_S
    consumer_module.IDLE_POLL_S = seconds
    try:
        yield
    finally:
        consumer_module.IDLE_POLL_S = original


def fetch_phase(stack, data, wait_ms: int, n: int = 300) -> dict:
    """Kafka alone: produced (acknowledged) -> returned by the consumer's poll, one record every
    20 ms on a 3-partition topic, with the consumer's fetch wait at ``wait_ms``."""
    settings = settings_for(stack, f"fetch{wait_ms}", data)
    bus.create_topics(settings.kafka_bootstrap_servers, settings)
    consumer = bus.consumer(
        settings.kafka_bootstrap_servers,
        settings,
        settings.consumer_group,
        [settings.topic_prices],
        fetch_max_wait_ms=wait_ms,
    )
    producer = bus.producer(settings.kafka_bootstrap_servers, settings)
    while not consumer.assignment():
        consumer.poll(100)
    consumer.poll(100)
    done = threading.Event()

    def produce() -> None:
        for i in range(n):
            producer.send(settings.topic_prices, key=f"S{i % 50}".encode(), value=repr(time.time()).encode())
            producer.flush()
            time.sleep(0.02)
        done.set()

    thread = threading.Thread(target=produce)
    thread.start()
    latencies: list[float] = []
    while len(latencies) < n:
        records = consumer.poll(500)
        now = time.time()
        latencies.extend(now - float(r.value) for rs in records.values() for r in rs)
        if done.is_set() and not records:
            break
    thread.join()
    consumer.close()
    producer.close()
    return {p: pct(latencies, q) * 1000 for p, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))}


def stream_phase(stack, data, seconds: float, tag: str = "stream") -> dict:
    symbols = [f"B{i:02d}" for i in range(50)]
    with FakeMarket() as market, FakeStreamer(market, tick_s=0.5) as streamer:
        for i, s in enumerate(symbols):
            market.instruments[s] = Instrument(s, 20.0 + i, s)
        settings = settings_for(
            stack,
            tag,
            data,
            source="yahoo_stream",
            yahoo_url=market.url,
            yahoo_stream_url=streamer.url,
            watchlist=tuple(symbols),
        )
        runtime = Runtime(settings).start()
        latencies: list[float] = []
        received: list[float] = []  # received by the source -> stored (the part the pipeline owns)
        consumer = runtime.pipeline.consumer
        inner = consumer.on_stored

        def on_stored(events) -> None:
            now = datetime.now(UTC)
            ticks = [e for e in events if e.interval == "tick"]
            latencies.extend((now - e.ts).total_seconds() for e in ticks)
            received.extend((now - e.fetched_at).total_seconds() for e in ticks if e.fetched_at)
            if inner is not None:
                inner(events)

        consumer.on_stored = on_stored
        stages: dict[str, list[float]] = {"insert": [], "marks": []}
        store = consumer.store
        for name, attr in (("insert", "prices"), ("marks", "bar_marks")):
            coll = getattr(store, attr)
            method = "insert_many" if name == "insert" else "bulk_write"
            original = getattr(coll, method)

            def timed(*a, _o=original, _n=name, **k):
                t = time.perf_counter()
                try:
                    return _o(*a, **k)
                finally:
                    stages[_n].append(time.perf_counter() - t)

            setattr(coll, method, timed)
        try:
            while streamer.subscribed() != set(symbols):
                time.sleep(0.1)
            time.sleep(3)  # warm-up: group join and first batches are not the steady state
            latencies.clear()
            received.clear()
            consumer.write_latency.samples.clear()
            for v in stages.values():
                v.clear()
            rest_before = len(market.chart_requests()) + market.count("/v7/finance/quote")
            ages: list[float] = []
            stop = threading.Event()
            sampler = threading.Thread(target=sample_ages, args=(runtime, symbols[:6], stop, ages))
            sampler.start()
            t0, cpu0 = time.monotonic(), time.process_time()
            time.sleep(seconds)
            elapsed = time.monotonic() - t0
            cpu = time.process_time() - cpu0
            stop.set()
            sampler.join()
            rest = len(market.chart_requests()) + market.count("/v7/finance/quote") - rest_before
            pushed = len(streamer.pushed)
            health = runtime.pipeline.producer.snapshot()["sources"]["yahoo_stream"]
            writes = consumer.write_latency.snapshot()
        finally:
            runtime.stop()
    return {
        "ticks": len(latencies),
        "pushed": pushed,
        "cpu_pct": 100 * cpu / elapsed,
        "p50": pct(latencies, 0.5) * 1000,
        "p95": pct(latencies, 0.95) * 1000,
        "p99": pct(latencies, 0.99) * 1000,
        "age_p50": pct(ages, 0.5),
        "age_p95": pct(ages, 0.95),
        "rest_per_hour": rest * 3600 / elapsed,
        "latency": health["latency"],
        "received": {p: pct(received, q) * 1000 for p, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))},
        "writes": writes,
        "stages": {n: (len(v), pct(v, 0.5) * 1000, pct(v, 0.95) * 1000) for n, v in stages.items()},
    }


def poll_phase(stack, data, seconds: float, tag: str, **budget) -> dict:
    with FakeMarket() as market:
        settings = settings_for(
            stack,
            tag,
            data,
            source="yfinance",
            yahoo_live="poll",
            yahoo_url=market.url,
            poll_seconds=2.0,
            watchlist=SIX,
            **budget,
        )
        runtime = Runtime(settings).start()
        try:
            while not runtime.store.prices.count_documents({"interval": "tick"}):
                time.sleep(0.1)
            rest_before = len(market.chart_requests()) + market.count("/v7/finance/quote")
            ages: list[float] = []
            stop = threading.Event()
            sampler = threading.Thread(target=sample_ages, args=(runtime, SIX, stop, ages))
            sampler.start()
            t0 = time.monotonic()
            time.sleep(seconds)
            elapsed = time.monotonic() - t0
            stop.set()
            sampler.join()
            rest = len(market.chart_requests()) + market.count("/v7/finance/quote") - rest_before
            interval = runtime.pipeline.producer.snapshot()["poll_intervals"].get("yfinance", {})
        finally:
            runtime.stop()
    return {
        "age_p50": pct(ages, 0.5),
        "age_p95": pct(ages, 0.95),
        "rest_per_hour": rest * 3600 / elapsed,
        "interval": interval.get("used_s"),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60.0, help="streaming phase")
    parser.add_argument(
        "--poll-seconds", type=float, default=30.0, help="each polling phase (0: skip the polling phases)"
    )
    args = parser.parse_args()
    configure_logging()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        stack = LocalStack(data / "stack").start()
        try:
            fetch = {wait: fetch_phase(stack, data, wait) for wait in (500, 50)}
            with idle_poll(0.0):  # before issue 20: kafka-python's poll loop (noida-db answers at once)
                base = stream_phase(stack, data, args.seconds, "stream_base")
            s = stream_phase(stack, data, args.seconds)
            if args.poll_seconds:
                budgeted = poll_phase(stack, data, args.poll_seconds, "poll_budget")
                free = poll_phase(
                    stack,
                    data,
                    args.poll_seconds,
                    "poll_free",
                    yahoo_per_minute=10000,
                    yahoo_per_hour=1000000,
                )
        finally:
            stack.stop()
    print(
        f"stream, 50 symbols x 2 ticks/s for {args.seconds:g}s: {s['ticks']} ticks stored of {s['pushed']} pushed"
    )
    print(
        f"pushed tick -> stored       p50 {s['p50']:.0f} ms, p95 {s['p95']:.0f} ms, p99 {s['p99']:.0f} ms "
        "(goal p99 <= 250 ms)"
    )
    print(
        f"  baseline (no idle rest: kafka-python's poll loop, before issue 20): p50 {base['p50']:.0f} ms, "
        f"p95 {base['p95']:.0f} ms, p99 {base['p99']:.0f} ms; ratio p99 {s['p99'] / base['p99']:.2f}x"
    )
    print(
        f"app process CPU while streaming: {s['cpu_pct']:.1f}% of one core "
        f"(baseline {base['cpu_pct']:.1f}%; ratio {s['cpu_pct'] / max(base['cpu_pct'], 1e-3):.2f}x)"
    )
    for wait, f in fetch.items():
        print(
            f"Kafka alone, produced -> polled, consumer fetch wait {wait} ms: p50 {f['p50']:.0f} ms, "
            f"p95 {f['p95']:.0f} ms, p99 {f['p99']:.0f} ms"
        )
    print(f"stream stages (last minute) {s['latency']}")
    r = s["received"]
    print(
        f"received -> stored          p50 {r['p50']:.0f} ms, p95 {r['p95']:.0f} ms, p99 {r['p99']:.0f} ms "
        f"(MongoDB writes: {s['writes']})"
    )
    print(
        "MongoDB calls (n, p50 ms, p95 ms): "
        + ", ".join(f"{k} {v[0]} {v[1]:.0f} {v[2]:.0f}" for k, v in s["stages"].items())
    )
    print(f"price age, stream           p50 {s['age_p50']:.2f} s, p95 {s['age_p95']:.2f} s")
    if not args.poll_seconds:
        print(f"REST requests/hour at steady state: stream (50 symbols) {s['rest_per_hour']:.0f}")
        return
    print(
        f"price age, polling          p50 {budgeted['age_p50']:.2f} s, p95 {budgeted['age_p95']:.2f} s "
        f"(6 symbols, interval {budgeted['interval']} s under the budget)"
    )
    print(
        f"price age, polling no budget p50 {free['age_p50']:.2f} s, p95 {free['age_p95']:.2f} s "
        f"(interval {free['interval']} s); ratio to stream p50: {free['age_p50'] / max(s['age_p50'], 1e-3):.1f}x"
    )
    print(
        f"REST requests/hour at steady state: stream (50 symbols) {s['rest_per_hour']:.0f}, "
        f"polling 6 symbols under the budget {budgeted['rest_per_hour']:.0f}, "
        f"polling 6 symbols at 2 s without a budget {free['rest_per_hour']:.0f}"
    )


if __name__ == "__main__":
    main()
