"""Alert evaluation cost: ingestion throughput with 100 active rules vs none, in the same run.

On one embedded stack, the same events go through producer -> Kafka -> consumer -> MongoDB (with the
bar builder running, as in the app) in three set-ups, each on a fresh topic and database:
  none      the consumer without an alert engine (the pipeline as it was)
  engine    the engine plugged in (``on_stored``) with no rule
  rules     the engine with 100 active rules (5 per symbol, 20 symbols, every kind, cooldown 60 s),
            levels inside the price range so they fire all along
  quiet     the same 100 rules with levels outside the price range: evaluated on every price, they
            hardly ever change state (what most rules do most of the time)
Each measurement gets a fresh embedded stack; the order alternates between rounds and each figure is
the median of ``--rounds`` runs. Throughput is events/s from first send to last stored. Because a
shared machine makes absolute figures noisy, it also prints the hook's share of the writer thread's
busy time (write + hook), which is what bounds ingestion and is far steadier.

Usage: python bench/bench_alerts.py [--events 40000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline import bus
from pipeline.alerts import AlertEngine, RuleBook
from pipeline.alerts import ensure_indexes as ensure_alert_indexes
from pipeline.bars import BarBuilder
from pipeline.config import Settings
from pipeline.consumer import PriceConsumer
from pipeline.embedded.stack import LocalStack
from pipeline.models import PriceEvent, utcnow
from pipeline.runtime import configure_logging
from pipeline.store import Store

SYMBOLS = [f"S{i:02d}" for i in range(20)]
KINDS = [
    {"kind": "price_above", "level": 102.5},
    {"kind": "price_below", "level": 101.0},
    {"kind": "price_cross", "level": 103.0},
    {"kind": "pct_change", "pct": 2.0, "window_s": 60, "direction": "either"},
    {"kind": "pct_since_close", "pct": 1.0, "direction": "up"},
    {"kind": "volume_spike", "factor": 1.5, "lookback_min": 5},
    {"kind": "rsi_above", "level": 60, "period": 14, "timeframe": "1m"},
    {"kind": "sma_cross", "fast": 5, "slow": 20, "timeframe": "1m", "direction": "either"},
]


def events(n: int) -> list[PriceEvent]:
    """Ticks 50 ms apart (1 s apart per symbol), a saw-tooth 100.00..104.99, ending now."""
    start = utcnow() - timedelta(milliseconds=50 * n + 1000)
    out = []
    for i in range(n):
        ts = start + timedelta(milliseconds=50 * i)
        out.append(
            PriceEvent.tick(
                SYMBOLS[i % len(SYMBOLS)], ts, 100 + (i % 500) * 0.01, 10 + i % 7, "bench", fetched_at=ts
            )
        )
    return out


def rules(n: int, quiet: bool = False) -> list[dict]:
    """``n`` rules over the symbols, every kind; ``quiet`` moves levels out of the price range (they are
    evaluated on every price but hardly ever change state), else they flip and fire all along."""
    out = []
    for i in range(n):
        raw = {
            "symbol": SYMBOLS[i % len(SYMBOLS)],
            **KINDS[(i // len(SYMBOLS) + i) % len(KINDS)],
            "cooldown_s": 60,
            "channels": [],
        }
        if quiet:
            raw.update(
                {"level": raw["level"] * (1.5 if raw["kind"] != "price_below" else 0.5)}
                if "level" in raw and raw["kind"].startswith("price")
                else {}
            )
            raw.update(
                {"pct": 50.0} if "pct" in raw else {}, **({"factor": 100.0} if "factor" in raw else {})
            )
            raw.update({"level": 99.0} if raw["kind"] == "rsi_above" else {})
            if raw["kind"] == "sma_cross":
                raw.update({"kind": "price_cross", "level": 500.0})
                for k in ("fast", "slow", "timeframe", "direction"):
                    raw.pop(k)
        out.append(raw)
    return out


def run(
    stack: LocalStack, data: Path, evs: list[PriceEvent], tag: str, mode: str, n_rules: int
) -> tuple[float, dict]:
    settings = Settings.load(
        env={},
        secrets_paths=[],
        kafka_bootstrap_servers=stack.kafka_bootstrap,
        mongodb_uri=stack.mongodb_uri,
        db=f"bench_alerts_{tag}",
        topic_prices=f"bench.alerts.{tag}",
        topic_dead_letter=f"bench.alerts.{tag}.dlq",
        consumer_group=f"bench-alerts-{tag}",
        data_dir=data,
        partitions=3,
        alert_max_age_s=0,
    )
    store = Store.from_uri(settings.mongodb_uri, settings.db, timeout_s=10)
    store.client.drop_database(settings.db)
    store.ensure_indexes()
    ensure_alert_indexes(store)
    bus.create_topics(settings.kafka_bootstrap_servers, settings)
    engine = None
    if mode != "none":  # engine, quiet, rules
        book = RuleBook(store, max_rules=1000)
        for raw in rules(n_rules, quiet=mode == "quiet"):
            book.create(raw)
        engine = AlertEngine(store, settings)
    consumer = PriceConsumer(
        settings.kafka_bootstrap_servers, settings, store, on_stored=engine.on_stored if engine else None
    )
    if engine:
        engine.bind(consumer)
    builder = BarBuilder(store, busy=consumer.backlogged)
    threads = [
        threading.Thread(target=consumer.run, daemon=True),
        threading.Thread(target=builder.run, daemon=True),
    ]
    for t in threads:
        t.start()
    time.sleep(3)  # group join: the clock measures data, not the rebalance
    producer = bus.producer(settings.kafka_bootstrap_servers, settings)
    t0 = time.perf_counter()
    for e in evs:
        producer.send(settings.topic_prices, key=e.symbol.encode(), value=e.to_json_bytes())
    producer.flush()
    while consumer.tally.counts.get("stored", 0) < len(evs):
        time.sleep(0.01)
    elapsed = time.perf_counter() - t0
    producer.close()
    consumer.stop()
    builder.stop()
    for t in threads:
        t.join(30)
    snap = engine.snapshot() if engine else {}
    snap["alerts_stored"] = store.alert_events.count_documents({})
    snap["write_latency"] = consumer.snapshot()["write_latency"]
    # the writer thread is the bottleneck: how much of its busy time the alert hook takes
    write_s = sum(consumer.write_latency.samples)
    hooks = list(engine.eval_latency.samples) if engine else []
    hook_s = sum(hooks)
    snap["hook_share"] = hook_s / (write_s + hook_s) if write_s + hook_s else 0.0
    # the same without the first batch, which loads each symbol's recent history once
    steady = sum(hooks[1:])
    writes = list(consumer.write_latency.samples)[1:]
    snap["hook_share_steady"] = steady / (sum(writes) + steady) if writes else 0.0
    store.client.drop_database(settings.db)
    store.close()
    return len(evs) / elapsed, snap


MODES = {"none": 0, "engine": 0, "quiet": 100, "rules": 100}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=40000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rules", type=int, default=100)
    args = parser.parse_args()
    configure_logging()
    figures: dict[str, list[float]] = {m: [] for m in MODES}
    shares: dict[str, list[float]] = {m: [] for m in MODES}
    steady: dict[str, list[float]] = {m: [] for m in MODES}
    last: dict[str, dict] = {}
    order = list(MODES)
    for r in range(args.rounds):
        for mode in order if r % 2 == 0 else order[::-1]:
            # a fresh embedded stack per measurement: the embedded MongoDB slows down as a process
            # accumulates dropped databases, which would otherwise favour whichever mode runs first
            with tempfile.TemporaryDirectory() as tmp:
                data = Path(tmp)
                stack = LocalStack(data / "stack").start()
                try:
                    rate, snap = run(
                        stack, data, events(args.events), f"{mode}{r}", mode, args.rules if MODES[mode] else 0
                    )
                finally:
                    stack.stop()
            figures[mode].append(rate)
            shares[mode].append(snap["hook_share"])
            steady[mode].append(snap["hook_share_steady"])
            last[mode] = snap
            print(
                f"  round {r + 1} {mode:6s} {rate:8.0f} events/s  (batch write p50 "
                f"{snap['write_latency'].get('p50_ms')} ms)",
                flush=True,
            )
    med = {m: statistics.median(v) for m, v in figures.items()}
    none = med["none"]
    print(
        f"events per run                          {args.events} ticks, {len(SYMBOLS)} symbols, "
        f"median of {args.rounds} round(s), a fresh stack per run"
    )
    share = {m: 100 * statistics.median(v) for m, v in shares.items()}
    later = {m: 100 * statistics.median(v) for m, v in steady.items()}
    print(f"no alert engine                         {none:8.0f} events/s")
    print(
        f"engine, no rule                         {med['engine']:8.0f} events/s   ratio to none {med['engine'] / none:.3f}"
        f"   hook {share['engine']:.1f}% of writer time ({later['engine']:.1f}% after the first batch)"
    )
    print(
        f"engine, {args.rules} rules, quiet               {med['quiet']:8.0f} events/s   ratio to none {med['quiet'] / none:.3f}"
        f"   hook {share['quiet']:.1f}% of writer time ({later['quiet']:.1f}% after the first batch)"
    )
    print(
        f"engine, {args.rules} rules, firing all along    {med['rules']:8.0f} events/s   ratio to none {med['rules'] / none:.3f}"
        f"   hook {share['rules']:.1f}% of writer time ({later['rules']:.1f}% after the first batch)"
    )
    for mode in ("quiet", "rules"):
        s = last[mode]
        print(
            f"  {mode}: {s['evaluated']:,} rule checks, {s['alerts_stored']} alerts stored, {s['suppressed']} held by "
            f"cooldown; hook per batch p50 {s['batch_latency'].get('p50_ms')} ms, p99 {s['batch_latency'].get('p99_ms')} "
            f"ms; batch write p50 {s['write_latency'].get('p50_ms')} ms"
        )


if __name__ == "__main__":
    main()
