"""The consumer: Kafka prices topic -> validate -> MongoDB, at-least-once in, exactly-once in effect.

Guarantees (in the vocabulary of MongoDB's Kafka sink connector):
- Write model: one unordered bulk upsert per polled batch, keyed by (symbol, interval, ts); a
  duplicate is a replay and a stale revision never overwrites a newer one (see ``store``).
- Offsets are committed only after MongoDB acknowledged the batch and the dead-letter producer
  acknowledged every dead-lettered message. A crash at any point redelivers, and redelivery has no
  effect on what is stored.
- ``errors.tolerance=all`` for data: anything undecodable or invalid goes to the dead-letter topic with
  the reason and the original topic/partition/offset in headers, then is committed. Server errors are
  not data errors: while MongoDB is down the batch is retried with capped exponential backoff,
  nothing is committed and nothing is lost.
- ``on_stored`` (optional) sees every stored batch before its offsets are committed.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from kafka import TopicPartition
from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata
from pymongo.errors import PyMongoError

from . import bus
from .metrics import Latency, Rate, Tally
from .models import InvalidEvent, PriceEvent, decode
from .store import Store

log = logging.getLogger(__name__)


@dataclass
class ConsumerState:
    running: bool = False
    paused: bool = False
    last_error: str | None = None
    last_batch_at: float | None = None
    last_commit_at: float | None = None
    retrying_since: float | None = None
    lag: dict[int, int] = field(default_factory=dict)
    lag_seconds: dict[int, float] = field(default_factory=dict)
    assigned: list[int] = field(default_factory=list)


class PriceConsumer:
    """One member of the consumer group. ``run()`` blocks; call it in a thread or a process."""

    def __init__(
        self,
        bootstrap: str,
        settings,
        store: Store,
        group: str | None = None,
        on_stored: Callable[[Sequence[PriceEvent]], None] | None = None,
        max_backoff_s: float = 10.0,
        instance_id: str | None = None,
        **consumer_options,
    ):
        """``instance_id`` makes this a static group member (KIP-345): a restarted process with the same
        id takes over its partitions at once instead of waiting for the dead member to expire (the
        embedded broker never expires one, so restarts there need it)."""
        self.settings = settings
        self.store = store
        self.group = group or settings.consumer_group
        self.on_stored = on_stored
        self.max_backoff_s = max_backoff_s
        if instance_id:
            consumer_options.setdefault("group_instance_id", instance_id)
        self.instance_id = instance_id
        self.kafka = bus.consumer(
            bootstrap, settings, self.group, [settings.topic_prices], **consumer_options
        )
        self.dlq = bus.producer(bootstrap, settings, client_id="stockmon-dead-letter")
        self.state = ConsumerState()
        self.tally = Tally()
        self.rate = Rate()
        self.write_latency = Latency()
        self.end_to_end = Latency()
        self._stop = threading.Event()
        self._pause = threading.Event()

    # -- control ------------------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    def pause(self) -> None:
        self._pause.set()
        self.state.paused = True

    def resume(self) -> None:
        self._pause.clear()
        self.state.paused = False

    # -- loop ---------------------------------------------------------------------------------------
    def run(self, max_idle_s: float | None = None) -> None:
        """Poll and store until ``stop()`` (or, for tests and batch jobs, ``max_idle_s`` of no data).

        Pipelined one batch deep: while batch N is written by the writer thread, batch N+1 is polled
        and decoded here. Batch N's offsets are committed (from this thread, as kafka-python requires)
        only after its write succeeded, and before batch N+1 is handed to the writer. After ``stop()``
        the batch being written is finished and committed; one polled meanwhile is not written (nor
        committed: the next owner of its partitions gets it again).
        """
        self.state.running = True
        idle_since = time.monotonic()
        writer = ThreadPoolExecutor(1, thread_name_prefix="stockmon-writer")
        inflight = None
        try:
            while not self._stop.is_set():
                if self._pause.is_set():
                    if inflight is not None:
                        self._finish(*inflight)
                        inflight = None
                    self.kafka.pause(*self.kafka.assignment())
                    self.kafka.poll(timeout_ms=200)  # keeps group membership alive
                    continue
                if self.kafka.paused():
                    self.kafka.resume(*self.kafka.paused())
                records = self.kafka.poll(timeout_ms=100 if inflight else 500)
                batch = [r for rs in records.values() for r in rs]
                decoded = self._decode(batch) if batch else None  # overlaps the in-flight write
                if inflight is not None and (batch or inflight[0].done() or not records):
                    self._finish(*inflight)
                    inflight = None
                if decoded is not None and not self._stop.is_set():  # else: uncommitted, redelivered
                    inflight = (writer.submit(self._store, *decoded), batch)
                if batch or inflight or not self.kafka.assignment():  # idle counts once partitions are ours
                    idle_since = time.monotonic()
                elif max_idle_s is not None and time.monotonic() - idle_since > max_idle_s:
                    break
                self._update_lag()
            if inflight is not None:
                self._finish(*inflight)
        finally:
            writer.shutdown(wait=True)
            self.state.running = False
            self._close()

    def _decode(self, batch) -> tuple[list[PriceEvent], list]:
        self.tally.add("consumed", len(batch))
        good: list[PriceEvent] = []
        bad = []
        for record in batch:
            try:
                good.append(decode(record.value))
            except InvalidEvent as exc:
                bad.append((record, exc.reason))
        return good, bad

    def _store(self, good: list[PriceEvent], bad: list) -> bool:
        """Runs on the writer thread. True once MongoDB and the dead-letter topic acknowledged."""
        if not self._retry("write", lambda: self._write(good)):
            return False
        if bad and not self._retry("dead-letter", lambda: self._dead_letter(bad)):
            return False
        self.rate.add(len(good))
        return True

    def _finish(self, future, batch) -> None:
        """Wait for a batch's write; commit its offsets only if it was stored."""
        if not future.result():
            return  # stopped while retrying: nothing committed, the batch will be redelivered
        offsets: dict[TopicPartition, int] = {}  # next offset to read, per partition
        for r in batch:
            tp = TopicPartition(r.topic, r.partition)
            offsets[tp] = max(offsets.get(tp, 0), r.offset + 1)
        try:
            self.kafka.commit({tp: OffsetAndMetadata(off, "", -1) for tp, off in offsets.items()})
            self.state.last_commit_at = time.time()
        except (CommitFailedError, KafkaError) as exc:
            # a rebalance moved the partitions: the new owner redelivers, idempotent writes absorb it
            self.tally.add("commit_failed")
            self.state.last_error = f"commit failed: {exc}"
            log.warning("commit failed after a stored batch (will be redelivered): %s", exc)
        now = time.time()
        self.state.last_batch_at = now
        self.end_to_end.extend(
            max(0.0, now - r.timestamp / 1000) for r in batch if r.timestamp and r.timestamp > 0
        )

    def _write(self, events: list[PriceEvent]) -> None:
        if not events:
            return
        t0 = time.perf_counter()
        result = self.store.write_events(events)
        self.write_latency.add(time.perf_counter() - t0)
        self.tally.add("stored", result.stored)
        self.tally.add("duplicates", result.duplicates)
        if self.on_stored is not None:
            self.on_stored(events)

    def _dead_letter(self, bad) -> None:
        futures = []
        for record, reason in bad:
            headers = bus.dead_letter_headers(reason, record.topic, record.partition, record.offset)
            futures.append(
                self.dlq.send(
                    self.settings.topic_dead_letter, key=record.key, value=record.value, headers=headers
                )
            )
        self.dlq.flush(timeout=30)
        for f in futures:
            f.get(timeout=30)  # raises if the broker did not acknowledge
        for record, reason in bad:
            self.tally.add("dead_lettered")
            self.tally.reason(reason=reason, partition=record.partition, offset=record.offset)

    def _retry(self, what: str, action: Callable[[], None]) -> bool:
        """Run ``action`` until it succeeds (True) or the consumer is stopped (False)."""
        delay = 0.2
        while True:
            try:
                action()
                if self.state.retrying_since is not None:
                    log.info("%s recovered after %.1fs", what, time.time() - self.state.retrying_since)
                self.state.retrying_since = None
                return True
            except (PyMongoError, KafkaError, OSError) as exc:
                self.tally.add(f"{what}_retries")
                self.state.last_error = f"{what} failed, retrying: {exc.__class__.__name__}: {str(exc)[:200]}"
                self.state.retrying_since = self.state.retrying_since or time.time()
                log.warning("%s failed (retry in %.1fs): %s", what, delay, exc)
                if self._stop.wait(delay + random.uniform(0, delay / 2)):
                    return False
                delay = min(self.max_backoff_s, delay * 2)

    def _update_lag(self) -> None:
        lag, seconds = {}, {}
        now = time.time()
        for tp in self.kafka.assignment():
            high = self.kafka.highwater(tp)
            if high is None:
                continue
            try:
                position = self.kafka.position(tp, timeout_ms=1000)
            except (KafkaError, TypeError):
                continue
            if position is None:  # no position fetched within the timeout
                continue
            lag[tp.partition] = max(0, high - position)
            last = self.state.last_batch_at or now
            seconds[tp.partition] = round(now - last, 1) if lag[tp.partition] else 0.0
        self.state.lag, self.state.lag_seconds = lag, seconds
        self.state.assigned = sorted(tp.partition for tp in self.kafka.assignment())

    def _close(self) -> None:
        for closer in (lambda: self.kafka.close(autocommit=False), lambda: self.dlq.close(timeout=5)):
            try:
                closer()
            except Exception as exc:  # closing must not mask the real exit reason
                log.debug("close: %s", exc)

    def backlogged(self, threshold: int = 2000) -> bool:
        """True while the last poll came back full or the lag is large: ingestion is catching up."""
        return sum(self.state.lag.values()) > threshold

    # -- health -------------------------------------------------------------------------------------
    def snapshot(self) -> dict:
        s = self.state
        return {
            "group": self.group,
            "instance_id": self.instance_id,
            "running": s.running,
            "paused": s.paused,
            "last_error": s.last_error,
            "retrying_since": s.retrying_since,
            "last_batch_at": s.last_batch_at,
            "last_commit_at": s.last_commit_at,
            "assigned": s.assigned,
            "lag": s.lag,
            "lag_seconds": s.lag_seconds,
            "lag_total": sum(s.lag.values()),
            **self.tally.snapshot()["counts"],
            "recent_dead_letters": self.tally.snapshot()["recent"][-10:],
            "throughput": self.rate.series(),
            "per_second_1m": round(self.rate.per_second(60), 2),
            "write_latency": self.write_latency.snapshot(),
            "end_to_end": self.end_to_end.snapshot(),
        }
