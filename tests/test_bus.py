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


def test_slow_steps_under_a_second_are_not_logged_longer_ones_are():
    gate = bus.SlowStepFilter()
    assert not gate.filter(record(slow(0.227))) and not gate.filter(record(slow(0.999)))
    assert gate.filter(record(slow(1.0))) and gate.filter(record(slow(4.5)))
    assert gate.filter(record("Task left RUNNING after step; demoting to UNSCHEDULED"))
    # installed on kafka-python's selector logger (read, not emitted through: another test or library
    # may have reconfigured that logger's level or handlers in this worker)
    assert any(isinstance(f, bus.SlowStepFilter) for f in logging.getLogger("kafka.net.selector").filters)
    # what a logger with it passes on to its handlers
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda r: seen.append(r.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("test_bus.selector")
    logger.propagate, logger.disabled = False, False
    logger.setLevel(logging.WARNING)
    logger.addFilter(gate)
    logger.addHandler(handler)
    try:
        logger.warning(slow(0.3))
        logger.warning(slow(2.0))
    finally:
        logger.removeHandler(handler)
        logger.removeFilter(gate)
    assert seen == [slow(2.0)]
