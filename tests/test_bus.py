"""kafka-python's slow-step warnings: under a second they are the GIL busy with the app's own threads
on 2 cores (a first start printed 49 of them, 0.1-0.3 s), not a hang; from a second up they still warn."""

from __future__ import annotations

import logging

from pipeline import bus


def record(msg: str) -> logging.LogRecord:
    return logging.LogRecord("kafka.net.selector", logging.WARNING, __file__, 1, msg, None, None)


def slow(seconds: float) -> str:
    return (
        f"Task <Task ...> ran for {seconds:.3f}s (>0.100s threshold). It is blocking the event loop -- likely "
        "a tight sync loop inside a coroutine. Other pollers will time out."
    )


def test_slow_steps_under_a_second_are_not_logged_longer_ones_are(caplog):
    gate = bus.SlowStepFilter()
    assert not gate.filter(record(slow(0.227))) and not gate.filter(record(slow(0.999)))
    assert gate.filter(record(slow(1.0))) and gate.filter(record(slow(4.5)))
    assert gate.filter(record("Task left RUNNING after step; demoting to UNSCHEDULED"))
    # installed on kafka-python's selector logger: what reaches the handlers
    selector = logging.getLogger("kafka.net.selector")
    with caplog.at_level(logging.WARNING, logger="kafka.net.selector"):
        selector.warning(slow(0.3))
        selector.warning(slow(2.0))
    assert [r.getMessage() for r in caplog.records] == [slow(2.0)]
