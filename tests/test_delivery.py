"""Exactly-once effect: replays, revisions, dead letters, crashes, a MongoDB outage, two consumers."""

import json
import math
import os
import signal
import time
from datetime import timedelta

import pytest
from pymongo.errors import ConnectionFailure
from support.base import drop_database, make_settings
from support.pipeline import (
    T0,
    Background,
    consume_until_idle,
    jsonl,
    make_events,
    publish,
    read_topic,
    start_consumer_process,
    stored_keys,
    wait_for,
    wait_for_members,
)

from pipeline import bus
from pipeline.embedded.stack import MONGO, LocalStack
from pipeline.health.status import collect
from pipeline.models import PriceEvent
from pipeline.store import Store

pytestmark = pytest.mark.starts_server  # starts its own stack or app processes inline


def test_store_replay_is_a_noop_and_older_revisions_never_win(store):
    events = make_events(50)
    first = store.write_events(events)
    again = store.write_events(events)
    assert (first.stored, first.duplicates) == (50, 0)
    assert (again.stored, again.duplicates) == (0, 50)
    bar = PriceEvent(
        symbol="AAPL",
        interval="1m",
        ts=T0,
        open=10,
        high=12,
        low=9,
        close=11,
        volume=100,
        source="test",
        fetched_at=T0 + timedelta(seconds=30),
    )
    newer = bar.with_(close=11.5, high=12.5, volume=180, fetched_at=T0 + timedelta(seconds=50))
    older = bar.with_(close=10.5, volume=90, fetched_at=T0 + timedelta(seconds=10))
    assert store.write_events([bar]).stored == 1
    assert store.write_events([newer]).stored == 1
    result = store.write_events([older])
    assert (result.stored, result.duplicates) == (0, 1)
    doc = store.prices.find_one({"symbol": "AAPL", "interval": "1m", "ts": T0})
    assert (doc["close"], doc["volume"]) == (11.5, 180)
    # within one batch the newest revision wins whatever the order
    result = store.write_events(
        [older.with_(ts=T0 + timedelta(minutes=1)), newer.with_(ts=T0 + timedelta(minutes=1))]
    )
    assert result.stored == 1
    assert store.prices.find_one({"interval": "1m", "ts": T0 + timedelta(minutes=1)})["close"] == 11.5


def test_rollup_bars_are_recomputed_not_incremented(store):
    from pipeline.bars import BarBuilder

    events = make_events(600, symbols=("AAPL",), step_s=1.0)  # 10 minutes of ticks
    builder = BarBuilder(store)
    store.write_events(events)
    builder.run_once()
    store.write_events(events)  # redelivery
    assert store.bar_marks.count_documents({}) == 1
    builder.run_once()
    builder.run_once()
    assert store.bar_marks.count_documents({}) == 0
    bars = store.bars_frame(["AAPL"], "1m", T0)
    assert len(bars) == 10
    first = [e for e in events if e.ts < T0 + timedelta(minutes=1)]
    row = bars.iloc[0]
    assert row["open"] == first[0].close and row["close"] == first[-1].close
    assert row["high"] == max(e.close for e in first) and row["low"] == min(e.close for e in first)
    assert row["volume"] == sum(e.volume for e in first)
    five = store.bars_frame(["AAPL"], "5m", T0)
    assert list(five["volume"]) == [sum(e.volume for e in events[:300]), sum(e.volume for e in events[300:])]
    hour = store.bars_frame(["AAPL"], "1h", T0 - timedelta(hours=1))
    day = store.bars_frame(["AAPL"], "1d", T0 - timedelta(days=1))
    assert hour["volume"].sum() == day["volume"].sum() == sum(e.volume for e in events)


def test_consumer_stores_exactly_what_was_published_and_replays_store_nothing(settings, store, topics):
    events = make_events(3000)
    publish(settings, events)
    first = consume_until_idle(settings, store)
    assert first.tally.counts["stored"] == 3000
    assert store.prices.count_documents({}) == 3000
    assert sorted(stored_keys(store)) == sorted(
        (e.symbol, e.interval, e.ts.replace(tzinfo=e.ts.tzinfo)) for e in events
    )
    status = collect(settings)
    assert status["published"] == 3000 and status["lag"] == 0
    assert status["stored"] == {s: 600 for s in ("AAPL", "MSFT", "7203.T", "BRK-B", "^GSPC")}
    # the same offsets consumed again (a new group starts from the beginning): nothing stored twice
    again = consume_until_idle(
        settings.__class__(**{**settings.__dict__, "consumer_group": settings.consumer_group + "-replay"}),
        store,
    )
    assert again.tally.counts["consumed"] == 3000
    assert again.tally.counts.get("stored", 0) == 0 and again.tally.counts["duplicates"] == 3000
    assert store.prices.count_documents({}) == 3000


def test_bad_messages_go_to_the_dead_letter_topic_with_reasons(settings, store, topics):
    from kafka import KafkaProducer

    good = make_events(10)
    raw = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)  # an independent producer
    wire = good[0].to_wire()
    bad = [
        (b"{not json", "value is not JSON"),
        (os.urandom(64), "value is not JSON"),
        (json.dumps({**wire, "schema": 99}).encode(), "unknown schema version 99"),
        (json.dumps({**wire, "close": math.nan, "high": math.nan}).encode(), "is not finite"),
        (json.dumps({**wire, "open": -1.0, "low": -1.0}).encode(), "must be positive"),
        (json.dumps({**wire, "symbol": "drop table"}).encode(), "does not match"),
    ]
    for i, event in enumerate(good):
        raw.send(settings.topic_prices, key=event.symbol.encode(), value=event.to_json_bytes())
        if i < len(bad):
            raw.send(settings.topic_prices, key=b"AAPL", value=bad[i][0])
    raw.flush()
    raw.close()
    consumer = consume_until_idle(settings, store)
    assert store.prices.count_documents({}) == 10
    assert consumer.tally.counts["dead_lettered"] == len(bad)
    letters = read_topic(settings, settings.topic_dead_letter)
    assert len(letters) == len(bad)
    by_value = {m.value: bus.read_headers(m.headers) for m in letters}
    for value, reason in bad:
        headers = by_value[value]
        assert reason in headers["stockmon.reason"]
        assert headers["stockmon.original.topic"] == settings.topic_prices
        assert int(headers["stockmon.original.offset"]) >= 0
    assert collect(settings)["lag"] == 0  # dead-lettered messages were committed
    assert collect(settings)["dead_lettered"] == len(bad)


def test_consumer_killed_mid_batch_and_restarted_stores_everything_once(settings, store, topics):
    n = 12000
    events = make_events(n)
    publish(settings, events)
    proc = start_consumer_process(settings, "--exit-when-idle", "30", "--instance-id", "worker-1")
    try:
        wait_for(lambda: store.prices.count_documents({}) >= 1500, 60, what="the first batches")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    mid = store.prices.count_documents({})
    assert 0 < mid < n, f"kill was not mid-stream ({mid})"
    proc = start_consumer_process(settings, "--exit-when-idle", "4", "--instance-id", "worker-1")
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err[-2000:]
    stats = jsonl(out)
    assert store.prices.count_documents({}) == n
    assert sum(d["volume"] for d in store.prices.find({}, {"volume": 1})) == sum(e.volume for e in events)
    assert stats["consumed"] >= n - mid  # it redelivered what was not committed
    assert collect(settings)["lag"] == 0


def test_mongodb_outage_loses_nothing_and_doubles_nothing(tmp_path):
    stack = LocalStack(tmp_path / "outage", timeout=60).start()
    try:
        settings = make_settings(stack, tmp_path)
        store = Store.from_uri(stack.mongodb_uri, settings.db, timeout_s=2)
        store.ensure_indexes()
        bus.create_topics(settings.kafka_bootstrap_servers, settings)
        from pipeline.consumer import PriceConsumer

        consumer = PriceConsumer(settings.kafka_bootstrap_servers, settings, store, max_backoff_s=1.0)
        runner = Background(consumer.run)
        runner.start()
        events = make_events(4000)
        producer = bus.producer(settings.kafka_bootstrap_servers, settings)

        def stream():  # ~200 events/s for 20 s
            for i in range(0, len(events), 40):
                publish(settings, events[i : i + 40], producer)
                time.sleep(0.2)

        feeder = Background(stream)
        feeder.start()
        wait_for(lambda: store.prices.count_documents({}) > 0, 60, what="the first events stored")
        stack.stop_server(MONGO)
        down_at = time.monotonic()
        wait_for(
            lambda: consumer.state.retrying_since is not None, 60, what="the consumer to notice the outage"
        )
        time.sleep(max(0.0, 10 - (time.monotonic() - down_at)))  # the scenario: MongoDB stays down ~10 s
        stack.restart_server(MONGO)
        outage = time.monotonic() - down_at
        feeder.join(60)
        producer.close()

        def stored() -> int | None:  # the test's own read may meet the pool reset by the restart
            try:
                return store.prices.count_documents({})
            except ConnectionFailure:
                return None

        wait_for(lambda: stored() == len(events), 90, what="all events stored")
        wait_for(lambda: collect(settings)["lag"] == 0, 60, what="the offsets committed")
        consumer.stop()
        runner.join(30)
        assert store.prices.count_documents({}) == len(events)
        assert consumer.tally.counts["write_retries"] >= 1
        assert collect(settings)["lag"] == 0
        print(f"MongoDB down for {outage:.1f}s; {consumer.tally.counts['write_retries']} write retries")
        store.close()
    finally:
        stack.stop()


def test_two_consumer_processes_split_partitions_and_store_each_event_once(stack, tmp_path):
    settings = make_settings(stack, tmp_path, partitions=4)
    store = Store.from_uri(settings.mongodb_uri, settings.db)
    store.ensure_indexes()
    bus.create_topics(settings.kafka_bootstrap_servers, settings)
    symbols = tuple(f"SYM{i}" for i in range(16))
    events = make_events(8000, symbols=symbols)
    procs = [start_consumer_process(settings, "--instance-id", f"worker-{i}") for i in range(2)]
    try:
        beats = wait_for_members(store, procs)  # both in the group, partitions split, before data arrives
        assert {b["pid"] for b in beats} == {p.pid for p in procs} and all(b["alive"] for b in beats)
        publish(settings, events)
        wait_for(lambda: store.prices.count_documents({}) == len(events), 120, what="every event stored")
        for p in procs:
            p.send_signal(signal.SIGTERM)  # a clean stop prints the process's counts
        results = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    stats = [jsonl(out) for out, _ in results]
    assert all(p.returncode == 0 for p in procs), [err[-1000:] for _, err in results]
    assert all(s["stored"] > 0 for s in stats), stats  # both members did real work
    assert sum(s["stored"] for s in stats) == len(events)
    assert store.prices.count_documents({}) == len(events)
    assert store.heartbeats.count_documents({}) == 0  # clean exits leave no stale process behind
    drop_database(store.client, settings.db)
    store.close()
