"""The footprint soak's measurement, shared by tests/test_footprint.py (assertions on a run compressed
in time) and bench/bench_footprint.py (figures at the old soak's rate): sample the embedded broker
while the app runs, then pause it and wait until every published event was consumed."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from support.pipeline import wait_for


@dataclass
class Soak:
    """``samples``: (seconds since start, snapshot MiB, broker RSS MiB); ``first_trim``: seconds
    since start of the first trim (None if none came); ``footprint``: the health snapshot at the end."""

    samples: list[tuple[float, float, float]] = field(default_factory=list)
    first_trim: float | None = None
    footprint: dict = field(default_factory=dict)


def sample_footprint(runtime, seconds: float, every_s: float) -> Soak:
    """Sample the running app's embedded broker every ``every_s`` seconds for ``seconds`` (a
    measurement period, not a wait for a state)."""
    stack = runtime._stack
    assert stack is not None, "the footprint soak needs the embedded stack"
    soak = Soak()
    t0 = time.monotonic()
    while (elapsed := time.monotonic() - t0) < seconds:
        size, rss = stack.kafka_footprint()
        soak.samples.append((elapsed, (size or 0) / 2**20, rss or 0.0))
        fp = runtime.health()["footprint"] or {}
        if soak.first_trim is None and fp.get("trimmed"):
            soak.first_trim = elapsed
        time.sleep(every_s)
    soak.footprint = runtime.health()["footprint"] or {}
    return soak


def pause_and_drain(runtime, timeout_s: float = 480.0) -> dict:
    """Pause the app's producer (the consumer keeps running: pausing the whole app would pause it
    too, and a consumer behind at that moment would never catch up) and wait, up to ``timeout_s`` (a
    ceiling), until the consumer has consumed every published event with no lag; returns the app's
    counters plus ``consumed``. AssertionError with the last counters and the consumer's state when
    the ceiling passes."""
    app = runtime.pipeline
    app.producer.pause()
    consumer = app.consumer
    last: dict = {}

    def drained():
        c = runtime.counters()
        consumed = consumer.tally.counts.get("consumed", 0)
        last.update(c, consumed=consumed)
        return c["lag"] == 0 and consumed >= c["published"] and {**c, "consumed": consumed}

    try:
        return wait_for(drained, timeout_s, what="every published event consumed")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; counters {last}; consumer {consumer.snapshot()}") from None
