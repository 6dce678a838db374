"""Pipeline benchmark on the embedded stack (figures, not assertions).

Measures in one run, against the same servers:
  ceiling   raw pymongo insert_many of the same documents into a collection with the same unique index
  pipeline  sustained end-to-end throughput: producer sends as fast as it can while our consumer
            (and the bar builder, as in the app) runs; events/s from first send to last stored
  naive     a naive consumer: one insert_one per message, Kafka auto-commit
  latency   produce -> stored at a steady 200 events/s: p50/p95/p99

Usage: python bench/bench_pipeline.py [--events 40000] [--naive-events 4000] [--seconds 20]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline import bus
from pipeline.bars import BarBuilder
from pipeline.config import Settings
from pipeline.consumer import PriceConsumer
from pipeline.embedded.stack import LocalStack
from pipeline.models import PriceEvent
from pipeline.runtime import configure_logging
from pipeline.store import Store

NO_BUILDER = bool(os.environ.get("NO_BUILDER"))
SYMBOLS = [f"S{i:02d}" for i in range(20)]


def events(n: int, start: datetime) -> list[PriceEvent]:
    out = []
    for i in range(n):
        ts = start + timedelta(milliseconds=50 * i)
        price = 100 + (i % 500) * 0.01
        out.append(PriceEvent.tick(SYMBOLS[i % len(SYMBOLS)], ts, price, 10 + i % 7, "bench", fetched_at=ts))
    return out


def settings_for(stack: LocalStack, tag: str, data: Path) -> Settings:
    return Settings.load(
        env={},
        secrets_paths=[],
        kafka_bootstrap_servers=stack.kafka_bootstrap,
        mongodb_uri=stack.mongodb_uri,
        db=f"bench_{tag}",
        topic_prices=f"bench.{tag}",
        topic_dead_letter=f"bench.{tag}.dlq",
        consumer_group=f"bench-{tag}",
        data_dir=data,
        partitions=3,
    )


def prepare(settings: Settings) -> Store:
    store = Store.from_uri(settings.mongodb_uri, settings.db, timeout_s=10)
    store.client.drop_database(settings.db)
    store.ensure_indexes()
    bus.create_topics(settings.kafka_bootstrap_servers, settings)
    return store


def ceiling(stack, data, evs) -> float:
    settings = settings_for(stack, "ceiling", data)
    store = prepare(settings)
    docs = [e.to_document() for e in evs]
    t0 = time.perf_counter()
    for i in range(0, len(docs), 2000):
        store.prices.insert_many(docs[i : i + 2000], ordered=False)
    rate = len(docs) / (time.perf_counter() - t0)
    store.client.drop_database(settings.db)
    return rate


def send_all(settings, evs, rate_per_s: float | None = None) -> None:
    producer = bus.producer(settings.kafka_bootstrap_servers, settings)
    t0 = time.perf_counter()
    for i, e in enumerate(evs):
        producer.send(settings.topic_prices, key=e.symbol.encode(), value=e.to_json_bytes())
        if rate_per_s:
            wait = t0 + (i + 1) / rate_per_s - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
    producer.flush()
    producer.close()


def run_pipeline(stack, data, evs, tag: str, rate_per_s: float | None = None):
    settings = settings_for(stack, tag, data)
    store = prepare(settings)
    consumer = PriceConsumer(settings.kafka_bootstrap_servers, settings, store)
    builder = BarBuilder(store, busy=consumer.backlogged)
    threads = [threading.Thread(target=consumer.run, daemon=True)] + (
        [threading.Thread(target=builder.run, daemon=True)] if not NO_BUILDER else []
    )
    for t in threads:
        t.start()
    time.sleep(3)  # group join, so the clock measures data, not the rebalance
    t0 = time.perf_counter()
    sender = threading.Thread(target=send_all, args=(settings, evs, rate_per_s))
    sender.start()
    while consumer.tally.counts.get("stored", 0) < len(evs):
        time.sleep(0.01)
    elapsed = time.perf_counter() - t0
    sender.join()
    consumer.stop()
    builder.stop()
    for t in threads:
        t.join(30)
    snap = consumer.snapshot()
    store.client.drop_database(settings.db)
    return len(evs) / elapsed, snap


def naive(stack, data, evs) -> float:
    """One insert_one per message with auto-commit: what a first tutorial consumer looks like."""
    settings = settings_for(stack, "naive", data)
    store = prepare(settings)
    consumer = bus.consumer(
        settings.kafka_bootstrap_servers,
        settings,
        settings.consumer_group,
        [settings.topic_prices],
        enable_auto_commit=True,
    )
    send_all(settings, evs)
    import json

    stored, t0 = 0, None
    while stored < len(evs):
        for records in consumer.poll(timeout_ms=500).values():
            for r in records:
                t0 = t0 or time.perf_counter()
                doc = json.loads(r.value)
                store.prices.insert_one(doc)
                stored += 1
    rate = stored / (time.perf_counter() - t0)
    consumer.close()
    store.client.drop_database(settings.db)
    return rate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=40000)
    parser.add_argument("--naive-events", type=int, default=4000)
    parser.add_argument(
        "--seconds", type=float, default=20.0, help="duration of the 200 events/s latency run"
    )
    args = parser.parse_args()
    configure_logging()
    start = datetime(2026, 11, 2, 14, 30, tzinfo=UTC)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        stack = LocalStack(data / "stack").start()
        try:
            evs = events(args.events, start)
            top = ceiling(stack, data, evs)
            ours, snap = run_pipeline(stack, data, evs, "throughput")
            slow = naive(stack, data, events(args.naive_events, start))
            steady = events(int(200 * args.seconds), start + timedelta(days=1))
            _, lat = run_pipeline(stack, data, steady, "latency", rate_per_s=200)
        finally:
            stack.stop()
    e2e = lat["end_to_end"]
    print(f"events                          {args.events}")
    print(f"ceiling  insert_many            {top:10.0f} docs/s")
    print(
        f"pipeline produce->stored        {ours:10.0f} events/s   ratio to ceiling {ours / top:.2f} (goal >= 0.8)"
    )
    print(f"naive    insert_one+autocommit  {slow:10.0f} events/s   ours / naive = {ours / slow:.1f}x")
    print(
        f"batch write latency             p50 {snap['write_latency']['p50_ms']} ms, p99 {snap['write_latency']['p99_ms']} ms"
    )
    print(
        f"latency at 200 events/s         p50 {e2e['p50_ms']} ms, p95 {e2e['p95_ms']} ms, p99 {e2e['p99_ms']} ms "
        f"(goal p99 <= 500 ms, {e2e['count']} samples)"
    )


if __name__ == "__main__":
    main()
