"""No acknowledged event is lost when the broker loses the tail of its log (issue 10, item 1).

The embedded broker (noida-db) keeps its log in memory and saves a snapshot every ~2 s: SIGKILLed
right after a burst, it comes back (restarted by the ``Supervisor`` on its port) without what was
acknowledged since its last save. The producer's ``Publisher`` re-publishes what the log lost; the
consumer rewinds when its committed offset is beyond the log's end instead of skipping. Everything
here runs on real servers: the broker crash tests on a stack of their own (its broker is killed).
"""

from __future__ import annotations

import time

import pytest
from support.base import drop_database, make_settings
from support.pipeline import Background, kill_server, log_end, make_events, stored_keys, wait_for, wait_quiet

from pipeline import bus
from pipeline.consumer import PriceConsumer
from pipeline.embedded.stack import KAFKA, LocalStack
from pipeline.embedded.supervisor import Supervisor
from pipeline.publisher import Publisher
from pipeline.store import Store

BURST = 20_000
TAIL = 2_000  # a further burst when the broker happened to save just before a kill
ROUNDS = 8  # at most this many kills per test: the broker saves ~1 s after a change, and a kill
#            after that loses nothing (then the test publishes a small tail and kills again)


@pytest.fixture(scope="module")
def crash_stack(tmp_path_factory):
    """A stack of this module's own, supervised as the app supervises it, whose broker tests kill."""
    stack = LocalStack(tmp_path_factory.mktemp("crash-stack"), timeout=60).start()
    supervisor = Supervisor(stack, every_s=0.5).start()
    yield stack, supervisor
    supervisor.stop()
    stack.stop()


@pytest.fixture
def parts(crash_stack, tmp_path):
    """Settings, store and the app's publisher (with its log check running) on the crash stack."""
    stack, supervisor = crash_stack
    settings = make_settings(stack, tmp_path)
    bus.create_topics(settings.kafka_bootstrap_servers, settings)
    store = Store.from_uri(settings.mongodb_uri, settings.db)
    store.ensure_indexes()
    publisher = Publisher(
        bus.producer(settings.kafka_bootstrap_servers, settings),
        settings.topic_prices,
        log_ends=bus.LogEnds(settings.kafka_bootstrap_servers, settings, settings.topic_prices),
        replay_window_s=settings.replay_window_s,
        max_replay=settings.replay_max_events,
    ).start()
    yield settings, store, publisher, stack, supervisor
    publisher.close()
    publisher.kafka.close(timeout=5)
    drop_database(store.client, settings.db)
    store.close()


def app_consumer(settings, store) -> tuple[PriceConsumer, Background]:
    """The consumer as the app runs it: a static group member under ``run_supervised``."""
    consumer = PriceConsumer(settings.kafka_bootstrap_servers, settings, store, instance_id="app-test")
    thread = Background(consumer.run_supervised)
    thread.start()
    return consumer, thread


def crash_and_restart(settings, stack, supervisor, publisher: Publisher) -> int:
    """SIGKILL the broker right away, wait for the supervisor's restart and the publisher's next log
    check; return how many acknowledged records the restarted log lacked (what the publisher found
    lost and re-published: without it, lost for good)."""
    restarts = supervisor.restarts.get(KAFKA, 0)
    queued = publisher.snapshot()["queued"]
    snap_file = stack.data_dir / "kafka" / "kafka.json"
    age = time.time() - snap_file.stat().st_mtime if snap_file.exists() else None
    print(f"killing; the broker's snapshot is {age} s old")
    kill_server(stack, KAFKA)
    t0 = time.monotonic()
    wait_for(lambda: supervisor.restarts.get(KAFKA, 0) > restarts, 90, what="the supervisor's restart")
    wait_for(lambda: _answer(lambda: log_end(settings) + 1), 60, what="the restarted broker")
    checks = publisher.snapshot()["checks"]
    wait_for(
        lambda: publisher.snapshot()["checks"] >= checks + 2, 60, what="two log checks after the restart"
    )
    lost = publisher.snapshot()["queued"] - queued
    print(f"broker restarted {time.monotonic() - t0:.1f} s after the kill; it had lost {lost:,} events")
    return lost


def _answer(fn):
    try:
        return fn()
    except Exception:  # the broker is still coming back
        return None


def wait_stored(store, n: int, timeout_s: float = 120) -> int:
    wait_for(lambda: store.prices.count_documents({}) >= n, timeout_s, what=f"{n:,} stored events")
    return wait_quiet(lambda: store.prices.count_documents({}), quiet_s=2.0, timeout_s=60)


def test_burst_then_kill_with_the_consumer_behind_loses_nothing(parts):
    settings, store, publisher, stack, supervisor = parts
    published = make_events(BURST)
    t0 = time.monotonic()
    assert publisher.publish(published, timeout_s=120) == BURST  # every send acknowledged
    print(f"published {BURST:,} in {time.monotonic() - t0:.1f} s")
    lost = crash_and_restart(settings, stack, supervisor, publisher)
    for round_ in range(1, ROUNDS):  # a snapshot may have landed just before the kill: kill again
        if lost:
            break
        tail = make_events(TAIL, symbols=(f"R{round_}",))
        assert publisher.publish(tail, timeout_s=60) == TAIL
        published += tail
        lost += crash_and_restart(settings, stack, supervisor, publisher)
    assert lost > 0, "the broker never lost its tail: the replay was not exercised"
    wait_for(
        lambda: publisher.snapshot()["republished"] >= lost and not publisher.replay,
        90,
        what="the lost tail re-published",
    )
    replay = publisher.snapshot()
    print(
        f"broker lost {lost:,} acknowledged events; {replay['republished']:,} re-published "
        f"({replay['regressions']} partition regression(s) detected)"
    )
    assert replay["last_regression"] is not None
    consumer, thread = app_consumer(settings, store)  # the consumer was behind: it starts only now
    try:
        t2 = time.monotonic()
        stored = wait_stored(store, len(published))
        print(f"consumer stored {stored:,} in {time.monotonic() - t2:.1f} s")
    finally:
        consumer.stop()
        thread.join(60)
    assert stored == len(published)  # 0 lost, 0 doubled
    assert set(stored_keys(store)) == {e.key for e in published}


def test_burst_then_kill_with_the_consumer_running_loses_nothing(parts):
    """The consumer runs through the burst and the crash: what it stored from the lost tail is
    published again (a replay, no effect), its position or commits beyond the restarted log's end are
    rewound, and the events published after the restart are all stored. (A consumer fully caught up
    before the kill cannot be arranged here: the broker saves about 1 s after a change and storing
    the tail takes longer, so such a kill lost nothing in 16 of 16 tries.)"""
    settings, store, publisher, stack, supervisor = parts
    consumer, thread = app_consumer(settings, store)
    try:
        wait_for(lambda: consumer.snapshot()["assigned"], 60, what="partitions assigned")
        published = make_events(BURST)
        assert publisher.publish(published, timeout_s=120) == BURST
        lost = crash_and_restart(settings, stack, supervisor, publisher)
        for round_ in range(1, ROUNDS):  # a snapshot may have landed just before the kill: kill again
            if lost:
                break
            tail = make_events(TAIL, symbols=(f"R{round_}",))
            assert publisher.publish(tail, timeout_s=60) == TAIL
            published += tail
            lost += crash_and_restart(settings, stack, supervisor, publisher)
        assert lost > 0, "the broker never lost its tail: the replay was not exercised"
        later = make_events(1000, symbols=("LATER",))  # published after the restart: none may be skipped
        publisher.publish(later, timeout_s=30)  # what fails now is re-sent by the log check
        wait_for(
            lambda: not publisher.pending and not publisher.replay, 90, what="every later event acknowledged"
        )
        published += later
        stored = wait_stored(store, len(published))
        replay, snap = publisher.snapshot(), consumer.snapshot()
        print(
            f"broker lost {lost:,} acknowledged events; {replay['republished']:,} re-published; "
            f"consumer rewinds: {snap.get('log_regressions', 0)} ({snap['last_rewind']}); stored {stored:,}"
        )
    finally:
        consumer.stop()
        thread.join(60)
    assert stored == len(published)  # 0 lost, 0 doubled, nothing published afterwards skipped
    assert set(stored_keys(store)) == {e.key for e in published}


def test_committed_offset_beyond_the_log_end_is_rewound_not_skipped(stack, tmp_path):
    """A group whose committed offsets lie beyond the log's end (what a broker that lost its tail
    leaves) reads everything published afterwards; one that recorded its last timestamp in the commit
    re-reads only from shortly before it, one that did not from the start."""
    from kafka import TopicPartition
    from kafka.structs import OffsetAndMetadata

    settings = make_settings(stack, tmp_path)
    bus.create_topics(settings.kafka_bootstrap_servers, settings)
    store = Store.from_uri(settings.mongodb_uri, settings.db)
    store.ensure_indexes()
    publisher = Publisher(bus.producer(settings.kafka_bootstrap_servers, settings), settings.topic_prices)
    try:
        before = make_events(600)
        assert publisher.publish(before) == len(before)
        admin = bus.admin_client(settings.kafka_bootstrap_servers, settings)
        ends = bus.end_offsets(admin, settings.topic_prices)
        admin.close()
        ahead = {TopicPartition(settings.topic_prices, p): end + 5000 for p, end in ends.items()}
        client = bus.consumer(settings.kafka_bootstrap_servers, settings, group=settings.consumer_group)
        client.assign(list(ahead))
        client.commit({tp: OffsetAndMetadata(off, "", -1) for tp, off in ahead.items()})  # no timestamp
        client.close()
        after = make_events(900, symbols=("NEW1", "NEW2", "NEW3", "NEW4"))
        assert publisher.publish(after) == len(after)  # lands below the committed offsets
        consumer = PriceConsumer(settings.kafka_bootstrap_servers, settings, store)
        consumer.run(max_idle_s=3)
        snap = consumer.snapshot()
        print(f"rewinds: {snap.get('log_regressions')}, last {snap['last_rewind']}")
        assert (
            snap.get("log_regressions", 0) == len([e for e in ends.values() if e]) or snap["log_regressions"]
        )
        assert set(stored_keys(store)) == {e.key for e in before + after}  # nothing skipped
        # the same group again, its commits now carry the last timestamp: a regression re-reads little
        store.prices.delete_many({})
        admin = bus.admin_client(settings.kafka_bootstrap_servers, settings)
        ends = bus.end_offsets(admin, settings.topic_prices)
        committed = bus.committed_offsets(admin, settings.consumer_group, settings.topic_prices)
        admin.close()
        client = bus.consumer(settings.kafka_bootstrap_servers, settings, group=settings.consumer_group)
        meta = {p: client.committed(TopicPartition(settings.topic_prices, p), metadata=True) for p in ends}
        meta = {p: m for p, m in meta.items() if committed.get(p) == ends[p] and ends[p]}
        assert meta and all('"ts": ' in m.metadata for m in meta.values())  # commits carry a timestamp
        client.assign([TopicPartition(settings.topic_prices, p) for p in ends])
        client.commit(
            {
                TopicPartition(settings.topic_prices, p): OffsetAndMetadata(ends[p] + 5000, m.metadata, -1)
                for p, m in meta.items()
            }
        )
        client.close()
        latest = make_events(300, symbols=("NEW5",), start=after[-1].ts)
        assert publisher.publish(latest) == len(latest)
        consumer = PriceConsumer(settings.kafka_bootstrap_servers, settings, store)
        consumer.run(max_idle_s=3)
        snap = consumer.snapshot()
        assert snap.get("log_regressions") == len(meta)
        assert snap["last_rewind"]["to"] <= snap["last_rewind"]["log_end"]
        assert {e.key for e in latest} <= set(stored_keys(store))  # nothing published afterwards skipped
        print(f"with a timestamp: re-read {snap.get('consumed', 0):,} records for {len(latest)} new")
    finally:
        publisher.kafka.close(timeout=5)
        drop_database(store.client, settings.db)
        store.close()


def test_health_says_when_the_broker_lost_its_tail_and_what_was_replayed():
    from pipeline.health import rules as h

    now = 1_000_000.0
    replay = {"kept": 1200, "kept_bytes": 300_000, "window_s": 10.0, "waiting": 0, "regressions": 0}
    replay.update(republished=0, unprotected=0, last_regression=None, check_error=None, checks=5)
    quiet = h.kafka_log({"producer": {"replay": replay}, "consumer": {}}, now)
    assert (
        quiet is not None and quiet.level == "OK" and "1,200 acknowledged event(s) kept 10 s" in quiet.reason
    )
    lost = {"at": now - 90, "partition": 1, "acknowledged_end": 8000, "log_end": 3611, "replayed": 4389}
    rewind = {"at": now - 80, "partition": 1, "offset": 8000, "log_start": 0, "log_end": 3611, "to": 3500}
    health = {
        "producer": {"replay": {**replay, "regressions": 1, "republished": 4389, "last_regression": lost}},
        "consumer": {"log_regressions": 1, "last_rewind": rewind},
    }
    status = h.kafka_log(health, now)
    assert status is not None and status.level == "WARN"
    assert "lost the tail of its log 1 min ago (partition 1: acknowledged up to offset 8,000" in status.reason
    assert "4,389 event(s) re-published" in status.reason and "re-read from 3,500" in status.reason
    assert status in h.evaluate(health | {"kafka": {}, "mongo": {}}, [], 1.0, [], now)
    later = h.kafka_log(health, now + h.RECENT_REGRESSION_S)
    assert later is not None and later.level == "OK"  # an old regression is history, not a warning
    assert h.kafka_log({"producer": None, "consumer": None}, now) is None


def test_a_broker_that_comes_back_shorter_in_external_mode_gets_the_lost_events_again(stack, tmp_path):
    """The same mechanism against any broker (here: the topic deleted and created again, as after a
    restore): the log check finds the end below what was acknowledged, and without a log check the
    first acknowledgement at a lower offset gives it away."""
    from support.pipeline import read_topic

    settings = make_settings(stack, tmp_path)
    assert not settings.embedded_kafka  # the app would only connect to this broker
    bus.create_topics(settings.kafka_bootstrap_servers, settings)

    def recreate_topic() -> None:
        admin = bus.admin_client(settings.kafka_bootstrap_servers, settings)
        try:
            admin.delete_topics([settings.topic_prices])
            wait_for(lambda: settings.topic_prices not in admin.list_topics(), 30, what="topic deleted")
        finally:
            admin.close()
        wait_for(lambda: _answer(lambda: bus.create_topics(settings.kafka_bootstrap_servers, settings)), 30)

    checked = Publisher(
        bus.producer(settings.kafka_bootstrap_servers, settings),
        settings.topic_prices,
        log_ends=bus.LogEnds(settings.kafka_bootstrap_servers, settings, settings.topic_prices),
    )
    unchecked = Publisher(bus.producer(settings.kafka_bootstrap_servers, settings), settings.topic_prices)
    try:
        first = make_events(400, symbols=("A", "B", "C", "D"))
        assert checked.publish(first) == len(first)
        recreate_topic()
        assert checked.check() == len(first)  # found lost, and re-published (what fails: next check)
        wait_for(
            lambda: checked.check() >= 0 and not checked.replay, 60, 0.5, what="every lost event re-sent"
        )
        assert checked.snapshot()["republished"] == len(first)
        assert {r.value for r in read_topic(settings, settings.topic_prices)} == {
            e.to_json_bytes() for e in first
        }
        second = make_events(300, symbols=("E", "F", "G"))
        assert unchecked.publish(second) == len(second)
        recreate_topic()
        probe = make_events(30, symbols=("E", "F", "G"), start=second[-1].ts)
        unchecked.publish(probe)  # acknowledged below the earlier offsets (the first sends may fail)
        wait_for(
            lambda: unchecked.publish([]) >= 0 and not unchecked.pending,
            60,
            0.5,
            what="the probe acknowledged",
        )
        assert unchecked.snapshot()["regressions"] >= 1
        wait_for(lambda: unchecked.publish([]) >= 0 and not unchecked.replay, 60, 0.5, what="re-sent")
        values = {r.value for r in read_topic(settings, settings.topic_prices)}
        assert {e.to_json_bytes() for e in second + probe} <= values
    finally:
        for p in (checked, unchecked):
            p.close()
            p.kafka.close(timeout=5)
