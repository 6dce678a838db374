"""The publisher: sends events to the prices topic and keeps every acknowledged one until the log is
known to hold it (split out of ``producer``, which schedules the jobs that call it).

Guarantees (see ``Publisher``): a send that fails is kept and retried on the next publish (at most
``MAX_PENDING``; an overflow is counted as lost, never silent); an acknowledged record stays in a
replay buffer for ``replay_window_s`` after a log check that followed its acknowledgement, and is
re-published first when the topic's log regressed below it (the embedded broker restarted from its
last snapshot, a real Kafka's unclean leader election, a restored backup).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from kafka.errors import KafkaTimeoutError

from .metrics import Rate, Tally
from .models import PriceEvent

log = logging.getLogger(__name__)

MAX_PENDING = 50_000  # unacknowledged events kept for the next publish; more are counted as lost
#: How often the publisher compares the topic's end offsets with what it had acknowledged (seconds).
LOG_CHECK_S = 1.0


class Message(NamedTuple):
    """One record as sent: the key (symbol) and the JSON value, in bytes."""

    key: bytes
    value: bytes

    @classmethod
    def of(cls, event: PriceEvent) -> Message:
        return cls(event.symbol.encode(), event.to_json_bytes())


@dataclass(slots=True)
class Acked:
    """An acknowledged record kept for replay: when (monotonic s), where (partition, offset), what."""

    at: float
    partition: int
    offset: int
    message: Message


# [embedded-broker workaround] the replay buffer: noida-db saves its log 1-2 s after a change
# (pipeline.embedded); it also covers a real Kafka's unclean leader election
class Publisher:
    """Sends events to the prices topic, keeps what the broker did not acknowledge, and re-publishes
    what it acknowledged but then lost.

    Guarantee (at-least-once across a broker that loses its tail): every acknowledged record is kept
    in a replay buffer for ``replay_window_s`` after the last successful log check that followed its
    acknowledgement. The log is checked every ``LOG_CHECK_S`` by a thread (``start()``) through
    ``log_ends`` (``bus.LogEnds``) and on every acknowledgement: a partition whose end offset went
    below what was acknowledged there, or a send acknowledged at a lower offset than an earlier one,
    is a *log regression* (the embedded broker restarted from its last snapshot, an unclean leader
    election, a restored backup). The kept records at or beyond the regression point are re-published
    first, before anything new; duplicates are harmless (the store writes idempotently by key).

    Limits: the window must cover how long the broker may hold an acknowledged record only in memory
    (noida-db saves 1-2 s after a change; default 10 s). While the broker does not answer, nothing leaves the
    buffer, so an outage of any length is covered. The buffer holds at most ``max_replay`` records
    (about 0.6 KB each); older ones are dropped unprotected and counted (``replay_unprotected``).
    A regression hidden before the next check (other producers refill the log past our offsets
    within ``LOG_CHECK_S`` and we send nothing to that partition meanwhile) is not detected. What this
    process holds is lost if the process itself dies.
    """

    def __init__(
        self,
        kafka_producer,
        topic: str,
        log_ends: Callable[[], dict[int, int]] | None = None,
        replay_window_s: float = 10.0,
        max_replay: int = 100_000,
        check_s: float = LOG_CHECK_S,
    ):
        """``log_ends``: returns {partition: end offset} of ``topic`` or raises while the broker does not
        answer; without it only acknowledgements at a lower offset detect a regression."""
        self.kafka = kafka_producer
        self.topic = topic
        self.pending: deque[Message] = deque()  # not acknowledged: sent again on the next run
        self.replay: deque[Message] = deque()  # acknowledged, then lost by the broker: sent first
        self.tally = Tally()
        self.rate = Rate()
        self.log_ends = log_ends
        self.replay_window_s = replay_window_s
        self.max_replay = max_replay
        self.check_s = check_s
        self.last_regression: dict | None = None
        self.check_error: str | None = None
        self._kept: deque[Acked] = deque()  # acknowledged, in acknowledgement order
        self._kept_bytes = 0
        self._ends: dict[int, int] = {}  # per partition: one past the highest acknowledged offset
        self._generation: dict[int, int] = defaultdict(int)  # per partition: regressions seen
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Called after a publish the broker acknowledged at least one record of, with partition -> the
        #: offset after the last record acknowledged there: the app wires its consumer's ``wake`` here,
        #: so a record is fetched as soon as it is in the log.
        self.on_acked: Callable[[dict[int, int]], None] | None = None

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> Publisher:
        """Check the log every ``check_s`` in a daemon thread (re-publishing what it lost)."""
        if self.log_ends is not None and self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="stockmon-log-check", daemon=True)
            self._thread.start()
        return self

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop the log check thread (the Kafka producer is the caller's to close)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        close = getattr(self.log_ends, "close", None)
        if close is not None:
            close()

    def _watch(self) -> None:
        while not self._stop.wait(self.check_s):
            try:
                self.check()
            except Exception:  # the check must never die; the next one tries again
                log.exception("log check failed")

    # -- sending ------------------------------------------------------------------------------------
    def publish(self, events: Sequence[PriceEvent], timeout_s: float = 30.0) -> int:
        """Send ``events`` after any lost records to re-publish and any left over from a failed run;
        return how many of ``events`` and the left-overs were acknowledged (re-published records count
        as ``republished``, not again as ``published``)."""
        with self._lock:
            replay = [(m, True) for m in self.replay] + [(m, False) for m in self.pending]
            self.replay.clear()
            self.pending.clear()
            batch = replay + [(Message.of(e), False) for e in events]
            if not batch:  # nothing to send: no flush, so an idle caller never waits on others' sends
                return 0
            futures = [
                (m, again, self.kafka.send(self.topic, key=m.key, value=m.value)) for m, again in batch
            ]
            deadline = time.monotonic() + timeout_s  # one deadline for the whole batch, not per event
            try:
                self.kafka.flush(timeout=timeout_s)
            except Exception as exc:  # kafka-python raises KafkaTimeoutError and friends
                log.warning("flush failed: %s", exc)
            ok = again_ok = 0
            acked_ends: dict[int, int] = {}  # partition -> the offset after the last acknowledged record
            for message, again, future in futures:
                try:
                    meta = future.get(timeout=max(0.0, deadline - time.monotonic()) or 0.001)
                    if meta is None:  # kafka-python 3.0.1 can hand back None for an unfinished send
                        raise KafkaTimeoutError("the send was not acknowledged in time")
                except Exception as exc:  # keep it for the next run, count it
                    self.tally.add("send_failed")
                    self.tally.reason(
                        symbol=message.key.decode("utf-8", "replace"),
                        reason=f"send failed: {exc.__class__.__name__}: {exc}",
                    )
                    (self.replay if again else self.pending).append(message)
                    continue
                again_ok += again
                ok += not again
                self._acknowledged(message, meta.partition, meta.offset)
                acked_ends[meta.partition] = max(acked_ends.get(meta.partition, 0), meta.offset + 1)
            overflow = len(self.pending) - MAX_PENDING
            if overflow > 0:
                for _ in range(overflow):
                    self.pending.popleft()
                self.tally.add("lost_overflow", overflow)
                log.error("retry buffer overflow: %d events lost", overflow)
            self.tally.add("published", ok)
            self.tally.add("republished", again_ok)
            self.rate.add(ok)
        if acked_ends and self.on_acked is not None:
            try:
                self.on_acked(acked_ends)
            except Exception:  # a listener must never fail a publish
                log.exception("on_acked listener failed")
        return ok

    def _acknowledged(self, message: Message, partition: int, offset: int) -> None:
        """Keep an acknowledged record; one acknowledged below an earlier one means the log regressed."""
        if offset < self._ends.get(partition, 0):
            self._regressed(partition, offset, "a send was acknowledged at a lower offset than before")
        self._ends[partition] = offset + 1
        self._kept.append(Acked(time.monotonic(), partition, offset, message))
        self._kept_bytes += len(message.value)
        while len(self._kept) > self.max_replay:
            self._kept_bytes -= len(self._kept.popleft().message.value)
            self.tally.add("replay_unprotected")

    def _regressed(self, partition: int, log_end: int, how: str) -> None:
        """The broker's log of ``partition`` ends at ``log_end`` now: queue the kept records it lost."""
        lost = [a for a in self._kept if a.partition == partition and a.offset >= log_end]
        if lost:
            self._kept = deque(a for a in self._kept if a.partition != partition or a.offset < log_end)
            self._kept_bytes -= sum(len(a.message.value) for a in lost)
            self.replay.extend(a.message for a in lost)
        acked_end = self._ends.get(partition, 0)
        self._ends[partition] = log_end
        self._generation[partition] += 1
        self.tally.add("log_regressions")
        self.tally.add("replay_queued", len(lost))
        self.last_regression = {
            "at": time.time(),
            "partition": partition,
            "acknowledged_end": acked_end,
            "log_end": log_end,
            "replayed": len(lost),
            "how": how,
        }
        log.error(
            "the broker lost the tail of %s[%d]: acknowledged up to offset %d, the log ends at %d (%s); "
            "re-publishing %d kept event(s)",
            self.topic,
            partition,
            acked_end,
            log_end,
            how,
            len(lost),
        )

    def check(self) -> int:
        """Compare the topic's end offsets with what was acknowledged, queue what the broker lost, drop
        kept records older than the window, and re-publish at once whatever waits (lost records and
        failed sends). Return how many lost records were queued. Never raises for a broker that does
        not answer (``check_error`` says why; nothing is dropped then)."""
        if self.log_ends is None:
            return 0
        with self._lock:
            asked_at = time.monotonic()
            acked = dict(self._ends)
            generation = dict(self._generation)
        try:
            ends = self.log_ends()
        except Exception as exc:
            self.check_error = f"{exc.__class__.__name__}: {str(exc)[:200]}"
            return 0
        queued = 0
        with self._lock:
            self.check_error = None
            self.tally.add("log_checks")
            for partition, end in ends.items():
                if end < acked.get(partition, 0) and self._generation[partition] == generation.get(
                    partition, 0
                ):
                    before = len(self.replay)
                    self._regressed(partition, end, "the log ends below what was acknowledged")
                    queued += len(self.replay) - before
            horizon = asked_at - self.replay_window_s
            while self._kept and self._kept[0].at < horizon:
                self._kept_bytes -= len(self._kept.popleft().message.value)
            waiting = bool(self.replay or self.pending)
        if waiting:
            self.publish([], timeout_s=10.0)  # short: stop() waits for this thread
        return queued

    def snapshot(self) -> dict:
        """The replay buffer and the log regressions seen (for health). Takes no lock: ``publish``
        holds one while it waits for a broker that may be down, and health must not wait."""
        counts = self.tally.snapshot()["counts"]
        last = self.last_regression
        return {
            "kept": len(self._kept),
            "kept_bytes": self._kept_bytes,
            "window_s": self.replay_window_s,
            "waiting": len(self.replay),
            "regressions": counts.get("log_regressions", 0),
            "queued": counts.get("replay_queued", 0),
            "republished": counts.get("republished", 0),
            "unprotected": counts.get("replay_unprotected", 0),
            "last_regression": dict(last) if last else None,
            "check_error": self.check_error,
            "checks": counts.get("log_checks", 0),
        }
