"""A group join the coordinator leaves unanswered is sent again (``PriceConsumer._watch_join``).

The embedded broker (noida-db 0.2.3) never answers either JoinGroup when a second member's request
arrives as the first member's initial join delay (~300 ms) ends; both members then wait out the
whole rebalance timeout (300 s). The unit tests drive the watchdog with a hand-moved clock and a
stand-in Kafka client; the integration test makes pairs of real members join the real broker at
delays around that boundary and requires every pair to split the partitions.
"""

from __future__ import annotations

import threading
import time

import pytest
from support.base import drop_database, make_settings
from support.kafka_standins import stand_ins
from support.pipeline import wait_for

from pipeline import bus
from pipeline.consumer import JOIN_STUCK_S, PriceConsumer
from pipeline.store import Store


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def member(monkeypatch, tmp_path):
    opened, settings = stand_ins(monkeypatch)
    clock = Clock()
    c = PriceConsumer("unused:9092", settings, store=None, instance_id="m0", clock=clock)  # type: ignore[arg-type]
    return c, clock, opened


def test_a_join_unanswered_for_join_stuck_s_is_sent_again_from_a_new_client(member):
    c, clock, opened = member
    first = opened[0]
    first._coordinator.joining = True
    c._watch_join()  # the join is seen
    clock.now += JOIN_STUCK_S - 0.1
    c._watch_join()
    assert (len(opened), first.closed) == (1, False)  # not yet: a loaded rebalance may take seconds
    clock.now += 0.2
    c._watch_join()
    assert first.closed and len(opened) == 2 and c.kafka is opened[1]
    snap = c.snapshot()
    assert snap["rejoins"] == 1
    assert snap["last_rejoin"]["waited_s"] == pytest.approx(JOIN_STUCK_S + 0.1)


def test_a_join_that_completes_or_a_member_that_is_stable_is_never_reopened(member):
    c, clock, opened = member
    client = opened[0]
    for _ in range(3):  # joins that complete within the limit, one after another
        client._coordinator.joining = True
        c._watch_join()
        clock.now += JOIN_STUCK_S * 0.9
        c._watch_join()
        client._coordinator.joining = False
        c._watch_join()
    clock.now += 10 * JOIN_STUCK_S  # a stable member without partitions (more members than partitions)
    c._watch_join()
    assert len(opened) == 1 and not client.closed
    assert c.snapshot()["last_rejoin"] is None


def test_with_a_batch_in_flight_or_paused_the_reopen_waits_but_the_time_counts(member):
    c, clock, opened = member
    opened[0]._coordinator.joining = True
    c._watch_join(reopen=False)
    clock.now += JOIN_STUCK_S + 5
    c._watch_join(reopen=False)  # a batch's offsets still to commit (or paused): not now
    assert len(opened) == 1
    c._watch_join()  # the next poll without a batch in flight
    assert len(opened) == 2 and c.snapshot()["last_rejoin"]["waited_s"] == JOIN_STUCK_S + 5


def test_a_dynamic_member_or_a_disabled_watchdog_is_never_reopened(monkeypatch):
    opened, settings = stand_ins(monkeypatch)
    clock = Clock()
    dynamic = PriceConsumer("unused:9092", settings, store=None, clock=clock)  # type: ignore[arg-type]
    off = PriceConsumer(
        "unused:9092",
        settings,
        store=None,  # type: ignore[arg-type]
        instance_id="m1",
        join_stuck_s=None,
        clock=clock,
    )
    for client in opened:
        client._coordinator.joining = True
    for _ in range(3):
        dynamic._watch_join()
        off._watch_join()
        clock.now += JOIN_STUCK_S
    assert len(opened) == 2 and not any(client.closed for client in opened)


def test_while_the_coordinator_is_unknown_reconnecting_is_left_to_the_client(member):
    c, clock, opened = member
    client = opened[0]
    client._coordinator.joining = True
    client._coordinator.unknown = True  # broker down mid-join
    c._watch_join()
    clock.now += 5 * JOIN_STUCK_S
    c._watch_join()
    assert len(opened) == 1 and not client.closed


def test_pairs_joining_across_the_brokers_join_delay_always_split_the_partitions(stack, tmp_path):
    """Pairs of static members started 280-340 ms apart, around the broker's 300 ms initial join
    delay. Without the watchdog pairs started 305-320 ms apart waited out the whole rebalance
    timeout (this test then fails after 60 s: seen with ``join_stuck_s`` set out of reach); with it
    (``join_stuck_s`` 3 s here) every pair splits the 4 partitions. Whether a pair meets the race
    depends on the machine's timing (7 of 13 did on a quiet machine): the rejoins are printed, not
    asserted."""
    rejoined = []
    for delay_ms in range(280, 345, 5):
        settings = make_settings(stack, tmp_path, partitions=4)
        bus.create_topics(settings.kafka_bootstrap_servers, settings)
        store = Store.from_uri(settings.mongodb_uri, settings.db)
        members: list[PriceConsumer] = []
        failures: list[BaseException] = []
        threads = []

        def start(k: int, after_s: float, settings=settings, store=store, members=members, failures=failures):
            try:
                time.sleep(after_s)
                m = PriceConsumer(
                    settings.kafka_bootstrap_servers, settings, store, instance_id=f"m{k}", join_stuck_s=3.0
                )
                members.append(m)
                # as the app runs it: a crash of the loop (kafka-python 3.0.1, the floor, raises
                # struct.error decoding the empty assignment the broker's race can hand a member)
                # reopens the client and joins again; crashes are printed below
                m.run_supervised()
            except BaseException as exc:  # shown in the wait's message, not lost with the thread
                failures.append(exc)

        try:
            for k, after in enumerate((0.0, delay_ms / 1000)):
                threads.append(threading.Thread(target=start, args=(k, after), daemon=True))
                threads[-1].start()

            def split(members=members, failures=failures):
                if failures:
                    raise AssertionError(f"a member failed: {failures[0]!r}")
                return len(members) == 2 and all(len(m.kafka.assignment()) == 2 for m in members)

            wait_for(split, 60, what=f"two members {delay_ms} ms apart to hold 2 partitions each")
            rejoined.append(
                (
                    delay_ms,
                    sum(m.snapshot().get("rejoins", 0) for m in members),
                    sum(m.state.crashes for m in members),
                )
            )
        finally:
            for m in members:
                m.stop()
            for t in threads:
                t.join(30)
            drop_database(store.client, settings.db)
            store.close()
    print("(delay ms, rejoins, loop crashes restarted):", rejoined)
