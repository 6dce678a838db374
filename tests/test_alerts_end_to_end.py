"""Alerts end to end on the real stack: the simulated source steered across a level (``set_price``)
-> producer -> Kafka -> consumer -> MongoDB -> alert engine -> webhook. Exactly one alert per crossing,
re-armed after clearing, the cooldown respected; no duplicate when every offset is redelivered to a
restarted engine, nor when a consumer process is killed mid-stream and restarted."""

import signal

from support.alerts import Receiver, ticks
from support.base import drop_database, make_settings, unique
from support.pipeline import jsonl, publish, start_consumer_process, wait_for, wait_for_members

from pipeline.alerts import AlertEngine, RuleBook
from pipeline.consumer import PriceConsumer
from pipeline.runtime import Runtime
from pipeline.store import Store


def test_steered_price_fires_once_per_crossing_rearms_and_respects_cooldown(stack, tmp_path):
    with Receiver(script=[500]) as hook:
        settings = make_settings(
            stack,
            tmp_path,
            watchlist=("AAPL",),
            poll_seconds=0.2,
            alert_webhook_urls=(hook.url,),
            alert_backoff_s=0.2,
        )
        runtime = Runtime(settings).start()
        try:
            assert runtime.state == "running", runtime.error
            store = runtime.store
            book = RuleBook(store)
            plain = book.create(
                {"symbol": "AAPL", "kind": "price_above", "level": 1000, "channels": ["webhook"]}
            )
            cool = book.create(
                {
                    "symbol": "AAPL",
                    "kind": "price_above",
                    "level": 1000,
                    "cooldown_s": 3600,
                    "channels": ["webhook"],
                }
            )
            source = runtime.pipeline.producer.source("simulated")

            def steer(price: float) -> None:
                """The next tick is exactly ``price``: wait until it is stored (hence evaluated next)."""
                source.set_price("AAPL", price)
                wait_for(
                    lambda: store.prices.find_one({"symbol": "AAPL", "interval": "tick", "close": price}),
                    60,
                    what=f"the steered price {price} to be stored",
                )

            def alerts(rule):
                return list(store.db["alert_events"].find({"rule_id": rule.id}).sort("ts", 1))

            wait_for(
                lambda: (runtime.pipeline.consumer.snapshot().get("stored") or 0) > 0,
                30,
                what="the first prices",
            )
            steer(900.0)
            steer(1100.0)  # crossing 1
            wait_for(lambda: len(alerts(plain)) == 1 and len(alerts(cool)) == 1, 60, what="the first alerts")
            steer(1101.0)  # still above: nothing
            steer(901.0)  # clears: re-arms (every steered price is new, so we
            # can tell when that very tick was stored)
            steer(1102.0)  # crossing 2: the plain rule fires, the cooldown holds the other
            wait_for(lambda: len(alerts(plain)) == 2, 60, what="the second alert")
            steer(1103.0)
            assert [a["price"] for a in alerts(plain)] == [1100.0, 1102.0]
            assert [a["price"] for a in alerts(cool)] == [1100.0]
            state = store.db["alert_state"].find_one({"_id": cool.id})
            wait_for(
                lambda: store.db["alert_state"].find_one({"_id": cool.id})["suppressed"] == 1,
                60,
                what="the suppressed crossing to be recorded",
            )
            assert state["fired"] == 1
            wait_for(lambda: len(hook.received) == 3, 60, what="webhook deliveries")
            assert sorted(r["body"]["price"] for r in hook.received) == [1100.0, 1100.0, 1102.0]
            health = runtime.health()["alerts"]
            assert health["engine"]["fired"] == 3 and health["engine"]["suppressed"] == 1
            assert health["engine"]["duplicates"] == 0 and health["engine"]["errors"] == 0
            assert (
                health["channels"]["webhook"]["sent"] == 3 and health["channels"]["webhook"]["retries"] == 1
            )
            published = runtime.pipeline.producer.snapshot()["published"]
        finally:
            runtime.stop()

    # a restarted process whose every offset is redelivered (a new group reads from the start)
    store = Store.from_uri(settings.mongodb_uri, settings.db)
    try:
        engine = AlertEngine(store, settings)
        replay = settings.__class__(**{**settings.__dict__, "consumer_group": unique("replay")})
        consumer = PriceConsumer(replay.kafka_bootstrap_servers, replay, store, on_stored=engine.on_stored)
        engine.bind(consumer)
        consumer.run(max_idle_s=2)
        assert consumer.tally.counts["consumed"] >= published
        snap = engine.snapshot()
        assert snap["fired"] == 0 and snap["replays_skipped"] > 0, snap
        assert store.db["alert_events"].count_documents({}) == 3
    finally:
        drop_database(store.client, settings.db)
        store.close()


def test_consumer_process_killed_mid_stream_and_restarted_fires_each_crossing_once(settings, store, topics):
    symbols = ("AAPL", "MSFT", "NVDA", "META")
    book = RuleBook(store)
    for s in symbols:
        book.create({"symbol": s, "kind": "price_above", "level": 105, "channels": []})
    pattern = ([100.0] * 250 + [110.0] * 250) * 6  # 6 up-crossings per symbol
    per_symbol = [ticks(s, pattern, step_s=0.01) for s in symbols]
    events = [e for group in zip(*per_symbol, strict=False) for e in group]
    publish(settings, events)
    proc = start_consumer_process(settings, "--exit-when-idle", "30", "--instance-id", "alerts-1")
    try:
        wait_for(
            lambda: store.db["alert_events"].count_documents({}) >= len(symbols),
            60,
            every_s=0.05,
            what="the first alerts",
        )
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    mid = store.prices.count_documents({})
    before = store.db["alert_events"].count_documents({})
    assert 0 < mid < len(events), f"kill was not mid-stream ({mid})"
    proc = start_consumer_process(settings, "--exit-when-idle", "4", "--instance-id", "alerts-1")
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err[-2000:]
    assert store.prices.count_documents({}) == len(events)
    alerts = list(store.db["alert_events"].find())
    assert len(alerts) == 6 * len(symbols), len(alerts)
    for s, group in zip(symbols, per_symbol, strict=False):
        crossings = sorted(a["ts"] for a in alerts if a["symbol"] == s)
        assert crossings == [group[i].ts for i in range(250, len(pattern), 500)]
    restarted = jsonl(out)["alerts_fired"]
    assert restarted == len(alerts) - before, "the restart fired only what the killed process had not"
    print(f"killed after {mid} of {len(events)} prices and {before} alerts; the restart fired {restarted}")


def test_two_consumer_processes_split_the_symbols_and_fire_each_crossing_once(stack, tmp_path):
    from pipeline import bus

    settings = make_settings(stack, tmp_path, partitions=4)
    store = Store.from_uri(settings.mongodb_uri, settings.db)
    store.ensure_indexes()
    bus.create_topics(settings.kafka_bootstrap_servers, settings)
    symbols = tuple(f"SYM{i}" for i in range(8))
    book = RuleBook(store)
    for s in symbols:
        book.create({"symbol": s, "kind": "price_above", "level": 105, "channels": []})
    pattern = ([100.0] * 100 + [110.0] * 100) * 4  # 4 up-crossings per symbol
    events = [
        e for group in zip(*(ticks(s, pattern, step_s=0.05) for s in symbols), strict=False) for e in group
    ]
    procs = [start_consumer_process(settings, "--instance-id", f"alerts-{i}") for i in range(2)]
    try:
        wait_for_members(store, procs)  # both in the group, partitions split, before data arrives
        publish(settings, events)
        wait_for(lambda: store.prices.count_documents({}) == len(events), 120, what="every price stored")
        for p in procs:
            p.send_signal(signal.SIGTERM)  # a clean stop prints the process's counts
        results = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert all(p.returncode == 0 for p in procs), [err[-1000:] for _, err in results]
    fired = [jsonl(out)["alerts_fired"] for out, _ in results]
    alerts = list(store.db["alert_events"].find())
    try:
        assert all(n > 0 for n in fired), fired  # both members evaluated their share
        assert sum(fired) == len(alerts) == 4 * len(symbols)
        assert {s: sum(a["symbol"] == s for a in alerts) for s in symbols} == {s: 4 for s in symbols}
    finally:
        drop_database(store.client, settings.db)
        store.close()
