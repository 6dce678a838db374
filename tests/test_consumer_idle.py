"""The consumer's idle rest (issue 20): with a stable group it never loops on fetches the broker
answers at once, a ``wake()`` ends the rest, and a write in flight, a known lag, a join or a paused
loop never wait on it. Stand-in Kafka clients (no server): what ``_next`` asks of them is recorded."""

from __future__ import annotations

import threading

import pytest
from support.kafka_standins import PARTITION, Record, stand_ins
from support.pipeline import wait_for

from pipeline.consumer import AWAIT_ACKED_S, PriceConsumer

LONG_REST_S = 60.0  # a rest that would time the test out: ended only by wake() or not taken at all


@pytest.fixture
def member(monkeypatch):
    opened, settings = stand_ins(monkeypatch)
    c = PriceConsumer("unused:9092", settings, store=None, idle_poll_s=LONG_REST_S)  # type: ignore[arg-type]
    c.state.lag_known = True  # every partition has been fetched: a stable member
    return c, opened[0]


def in_thread(fn) -> threading.Thread:
    thread = threading.Thread(target=fn, daemon=True)
    thread.start()
    return thread


def test_an_empty_poll_rests_until_a_wake_and_then_collects_without_a_fetch_loop(member):
    c, client = member
    resting = in_thread(lambda: c._next(writing=False))
    wait_for(lambda: client.polls == [0], 30, what="one poll without a wait")
    assert resting.is_alive()  # resting, not fetching again
    c.wake()
    resting.join(30)
    assert not resting.is_alive(), "wake() did not end the rest"
    client.answers = [{}, {PARTITION: [Record(0)]}]  # the wake's poll sends the fetch, the next collects it
    assert c._next(writing=False) == {PARTITION: [Record(0)]}
    assert client.polls == [0, 0, 0]  # never kafka-python's poll(timeout) loop while stable


def test_a_wake_before_the_poll_is_not_lost(member):
    c, client = member
    c.wake()
    done = in_thread(lambda: c._next(writing=False))
    done.join(30)
    assert not done.is_alive() and client.polls == [0, 0]


def test_a_write_in_flight_or_a_known_lag_never_rests(member):
    c, client = member
    c.wake()
    assert c._next(writing=True) == {} and client.polls == [0]
    assert c._wake.is_set()  # kept for after the write
    c._wake.clear()
    c.state.lag = {0: 5000}  # this member's own backlog: kafka-python's wait, which its records end
    done = in_thread(lambda: c._next(writing=False))
    done.join(30)
    assert not done.is_alive() and client.polls == [0, 100]


@pytest.mark.parametrize("state", ["joining", "unknown", "rejoin", "unfetched"])
def test_a_group_that_is_not_stable_is_left_to_kafka_pythons_wait(member, state):
    c, client = member
    if state == "unfetched":  # a partition without a position yet: its committed offset is looked up
        c.state.lag_known = False
    else:
        setattr(client._coordinator, state, True)
    assert c._next(writing=False) == {} and client.polls == [500]
    assert c._next(writing=True) == {} and client.polls == [500, 100]


def test_pause_and_stop_end_a_rest(member):
    c, client = member
    for end in (c.pause, c.stop):
        c._wake.clear()
        polled = len(client.polls)
        resting = in_thread(lambda: c._next(writing=False))
        wait_for(lambda p=polled: len(client.polls) == p + 1, 30, what="a poll, then a rest")
        assert resting.is_alive()
        end()
        resting.join(30)
        assert not resting.is_alive(), f"{end.__name__} did not end the rest"


def test_records_an_acknowledgement_announced_are_awaited_with_kafka_pythons_wait(member):
    """A wake with the acknowledged offsets waits for exactly those records with poll(100) (their
    arrival ends it) however slow the fetch, not one 10 ms look followed by a whole rest; once they
    are polled the loop rests again."""
    c, client = member
    c.wake({0: 3})  # offsets 0..2 of partition 0 acknowledged
    client.answers = [{}, {}, {PARTITION: [Record(0), Record(1)]}]  # a slow fetch: two empty polls
    assert c._next(writing=False) == {} and c._next(writing=False) == {}
    assert c._next(writing=False) == {PARTITION: [Record(0), Record(1)]}
    assert client.polls == [100, 100, 100]
    client.answers = [{PARTITION: [Record(2)]}]
    assert c._next(writing=False) == {PARTITION: [Record(2)]} and client.polls[-1] == 100
    resting = in_thread(lambda: c._next(writing=False))  # all three seen: rest again
    wait_for(lambda: client.polls[4:] == [0], 30, what="one poll without a wait")
    assert resting.is_alive()
    c.wake()
    resting.join(30)
    assert not resting.is_alive(), "wake() did not end the rest"


def test_records_that_never_come_are_awaited_at_most_await_acked_s(monkeypatch):
    """Records announced on another member's partition are never awaited; records that never come
    (the log lost them, or a rewind moved past them) are given up after AWAIT_ACKED_S, and announcing
    the same end again does not restart that wait (the loop would spin on fetches for ever)."""
    opened, settings = stand_ins(monkeypatch)
    now = [1000.0]
    c = PriceConsumer(
        "unused:9092",
        settings,
        store=None,  # type: ignore[arg-type]
        idle_poll_s=LONG_REST_S,
        clock=lambda: now[0],
    )
    c.wake({7: 4})  # partition 7 is another member's
    assert not c._awaiting()
    c.wake({0: 10, 7: 4})  # one publish acknowledged on this member's partition and another's
    assert c._awaiting()
    for _ in range(3):  # acknowledgements keep coming for an end the log no longer reaches
        now[0] += AWAIT_ACKED_S / 2
        c.wake({0: 10})
    assert not c._awaiting() and c._acked == {}
    c.wake({0: 11})  # a higher end: awaited again
    assert c._awaiting()
    c.wake({0: 9})  # a late, lower acknowledgement (another thread's) changes nothing
    assert c._acked[0][0] == 11
