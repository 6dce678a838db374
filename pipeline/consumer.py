"""The consumer: Kafka prices topic -> validate -> MongoDB, at-least-once in, exactly-once in effect.

Guarantees (in the vocabulary of MongoDB's Kafka sink connector):
- Write model: one unordered bulk upsert per polled batch, keyed by (symbol, interval, ts); a
  duplicate is a replay and a stale revision never overwrites a newer one (see ``store``).
- Offsets are committed only after MongoDB acknowledged the batch and the dead-letter producer
  acknowledged every dead-lettered message. A crash at any point redelivers, and redelivery has no
  effect on what is stored.
- ``errors.tolerance=all`` for data: anything undecodable or invalid goes to the dead-letter topic with
  the reason and the original topic/partition/offset in headers (stage ``validate``), then is
  committed. Decoding never raises anything but ``InvalidEvent`` (see ``models.decode``); an
  unexpected error there is dead-lettered too.
- Transient server errors are not data errors: while MongoDB is down (connection failures, timeouts,
  retryable write errors; see ``transient``) the batch is retried with capped exponential backoff,
  nothing is committed and nothing is lost.
- Any other write error is retried ``poison_attempts`` times (3) with a short backoff; if it persists,
  the batch is written one event at a time and each event that still fails ``poison_attempts`` times
  is dead-lettered with the error as its reason (stage ``store``): one message cannot stop storage.
- ``on_stored`` (optional) sees every stored batch before its offsets are committed; a transient
  error there retries the batch, any other is logged and counted (``on_stored_errors``).
- ``run_supervised()`` never ends before ``stop()`` (or ``max_idle_s``): if ``run()`` raises or
  returns unexpectedly it records why and where (``state.last_crash``: error, stage, partition,
  offset), reopens the Kafka clients and runs again after a capped exponential backoff (1 s, 2 s, ...
  30 s). ``snapshot()["degraded"]`` says so while it is down and for ``DEGRADED_FOR_S`` after.
- A committed offset or position beyond the log's end (the broker lost the tail of its log: the
  embedded broker restarted from its last snapshot, an unclean leader election) is a *log regression*,
  not a reason to skip: the client runs with ``auto_offset_reset='none'``, and on the broker's
  ``OffsetOutOfRange`` the consumer rewinds to the first record whose timestamp is at most
  ``REWIND_MARGIN_S`` older than the last record it stored from that partition (kept in memory and in
  each commit's metadata), or to the start of the log when it knows none; never to the end. Records
  re-read that way are replays (no effect). Counted as ``log_regressions``, the latest in
  ``snapshot()["last_rewind"]``. An offset below the log start (retention removed unread records)
  moves to the start, as ``earliest`` would, and is counted as ``retention_gaps``. A group that has
  never committed starts at the beginning. Limit: if the log is refilled past our position before
  our next fetch (within one fetch round trip of the broker's restart) the broker reports no error
  and the records in between are not detected; the producer re-publishes lost records first, so
  those are then replays of what was stored already.
- A static member (``instance_id``) that has not become a stable group member for ``JOIN_STUCK_S``
  while the coordinator is known abandons the round: its Kafka client is closed (a static member
  sends no LeaveGroup) and opened again, which sends a fresh JoinGroup (counted as ``rejoins``, the
  latest in ``snapshot()["last_rejoin"]``). The client is only replaced between batches and never
  while paused. [embedded-broker workaround] noida-db 0.2.3 never answers either JoinGroup when a
  second member's request reaches it as its first member's initial join delay (~300 ms) ends: on
  this machine 6 of 7 pairs started 310-320 ms apart got no answer until the probe ended (120 s;
  a member would wait out the rebalance timeout, 300 s), each having sent one JoinGroup and logged
  nothing else; a new JoinGroup completes the round.
  Dynamic members are not watched (closing one mid-join sends a LeaveGroup that would queue behind
  the unanswered join).
- Lag is the broker's figure (the high watermark of the last fetch response minus our position);
  ``snapshot()["lag_total"]`` is None while it is unknown (no fetch answered yet for some assigned
  partition, or the loop is down), never 0 by default.
"""

from __future__ import annotations

import functools
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from kafka import TopicPartition
from kafka.errors import CommitFailedError, KafkaError, NoOffsetForPartitionError, OffsetOutOfRangeError
from kafka.structs import OffsetAndMetadata
from pymongo.errors import ConnectionFailure, ExecutionTimeout, PyMongoError, WTimeoutError

from . import bus
from .metrics import Latency, Rate, Tally
from .models import InvalidEvent, PriceEvent, decode
from .store import Store

log = logging.getLogger(__name__)

#: How long after a crash of the consumer loop ``snapshot()["degraded"]`` still says so (seconds).
DEGRADED_FOR_S = 120.0
#: After a log regression, re-read from this long before the last stored record's timestamp (seconds):
#: covers producers' clock skew and records created before the broker died but delivered after.
REWIND_MARGIN_S = 60.0
#: A static member not stable this long is sent into the group again from a new client (seconds).
#: A healthy round takes the broker's join delay (0.3 s embedded), the other members' next heartbeat
#: (``heartbeat_interval_ms`` 2 s) and their next poll (0.5 s when idle, longer while a batch's write
#: is retried): 30 s is far beyond that on a loaded machine unless MongoDB is down, when a member
#: that waits is only re-opened (harmless for a static member), and far below the 300 s the broker
#: would otherwise let it wait. None turns the watchdog off.
JOIN_STUCK_S = 30.0
#: [embedded-broker workaround] How long the loop rests after a poll of a stable group found nothing
#: new, unless ``wake()`` ends the rest sooner (seconds). noida-db 0.2.3 answers an empty FetchRequest
#: at once whatever its ``max_wait_ms`` (1 ms measured with 500 ms asked), so kafka-python's
#: ``poll(timeout_ms)`` fetched ~780 times a second and the consumer's two threads used 84% of a core
#: with six symbols at rest. Resting here, a record from another process waits at most two rests
#: (the rest's own fetch is collected by the next poll); the app's own producer calls ``wake()``
#: after each acknowledged publish with the offsets acknowledged, so the records it published to this
#: member's partitions are fetched at once (``AWAIT_ACKED_S``). Each rest costs one empty fetch (~1 ms of CPU here). A Kafka that honours the
#: fetch wait needs no rest (``STOCKMON_CONSUMER_IDLE_S`` = 0); with the rest, records another process
#: publishes (``python -m pipeline produce``) wait up to twice it there too.
IDLE_POLL_S = 0.25
#: After a ``wake()`` that names no offsets (``pause()``, ``stop()``, a producer that does not say), how
#: long the fetch the next poll sends is given before the poll that collects it (seconds): noida-db
#: answers in 1-2 ms here. A wake with the acknowledged offsets waits for those records instead.
WAKE_FETCH_S = 0.01
#: How long records an acknowledgement announced (``wake(ends)``) are awaited with kafka-python's wait
#: before the loop gives up on them (seconds): they may belong to a partition another member took
#: over, or a rewind may have moved past them. Without a bound a lost expectation would spin forever.
AWAIT_ACKED_S = 2.0


def transient(exc: BaseException) -> bool:
    """True for errors that say "the server is unavailable, try again" rather than "this data cannot be
    stored": lost connections, timeouts, Kafka errors, and MongoDB errors labelled retryable."""
    if isinstance(exc, (ConnectionFailure, ExecutionTimeout, WTimeoutError, KafkaError, OSError)):
        return True
    if isinstance(exc, PyMongoError):
        return exc.has_error_label("RetryableWriteError") or exc.has_error_label("TransientTransactionError")
    return False


def _server_error(exc: Exception) -> bool:
    """True for any error a server raised (MongoDB, Kafka, the network): worth another try."""
    return isinstance(exc, (PyMongoError, KafkaError, OSError))


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
    lag_known: bool = False
    crashes: int = 0
    last_crash: dict | None = None  # {"at", "error", "stage", "partition", "offset"}
    restarting_at: float | None = None  # epoch seconds of the next restart while down after a crash
    last_rewind: dict | None = None  # {"at", "partition", "offset", "log_start", "log_end", "to"}
    last_rejoin: dict | None = None  # {"at", "waited_s"}: the latest join abandoned as stuck


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
        poison_attempts: int = 3,
        restart_backoff_s: float = 1.0,
        max_restart_backoff_s: float = 30.0,
        join_stuck_s: float | None = JOIN_STUCK_S,
        clock: Callable[[], float] = time.monotonic,
        idle_poll_s: float | None = None,
        **consumer_options,
    ):
        """``instance_id`` makes this a static group member (KIP-345): a restarted process with the same
        id takes over its partitions at once instead of waiting for the dead member to expire (the
        embedded broker never expires one, so restarts there need it). ``poison_attempts``: how many
        times a non-transient write error may repeat before the events are written one by one and the
        failing ones dead-lettered. ``restart_backoff_s``/``max_restart_backoff_s``: the first and the
        largest pause of ``run_supervised`` before it restarts a crashed loop (seconds). ``join_stuck_s``:
        how long a static member may stay out of a stable group before its client is re-opened (seconds,
        ``JOIN_STUCK_S``; None: never); ``clock`` (monotonic seconds) times it. ``idle_poll_s``: the rest
        after a poll that found nothing (seconds, ``IDLE_POLL_S``; 0 leaves the wait to the broker's
        ``fetch_max_wait_ms``, as with a broker that honours it)."""
        self.settings = settings
        self.store = store
        self.group = group or settings.consumer_group
        self.on_stored = on_stored
        self.max_backoff_s = max_backoff_s
        self.poison_attempts = max(1, poison_attempts)
        self.restart_backoff_s = restart_backoff_s
        self.max_restart_backoff_s = max_restart_backoff_s
        self.join_stuck_s = join_stuck_s
        self.idle_poll_s = IDLE_POLL_S if idle_poll_s is None else idle_poll_s
        self._clock = clock
        self._joining_since: float | None = None
        if instance_id:
            consumer_options.setdefault("group_instance_id", instance_id)
        consumer_options.setdefault("auto_offset_reset", "none")  # out of range: we decide (_rewind)
        self.instance_id = instance_id
        self._bootstrap = bootstrap
        self._consumer_options = consumer_options
        self._where: dict = {}  # stage, partition and offset of the records being handled (for crashes)
        self._last_ts: dict[TopicPartition, int] = {}  # newest stored record's timestamp (ms) per partition
        self._open()
        self.state = ConsumerState()
        self.tally = Tally()
        self.rate = Rate()
        self.write_latency = Latency()
        self.end_to_end = Latency()
        self._stop = threading.Event()
        self._pause = threading.Event()
        self._wake = threading.Event()  # set by wake(): records were just published
        self._acked: dict[int, tuple[int, float]] = {}  # partition -> (end offset announced, monotonic s)
        self._seen: dict[int, int] = {}  # partition -> end offset polled so far (the loop's thread only)
        self._acked_lock = threading.Lock()

    def _open(self) -> None:
        """(Re)create the Kafka consumer and the dead-letter producer (``run`` closes both on exit)."""
        self._joining_since = None
        self._seen = {}  # a new client starts from the committed offsets: what was polled may come again
        self.kafka = bus.consumer(
            self._bootstrap, self.settings, self.group, [self.settings.topic_prices], **self._consumer_options
        )
        self.dlq = bus.producer(self._bootstrap, self.settings, client_id="stockmon-dead-letter")

    # -- control ------------------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def wake(self, ends: Mapping[int, int] | None = None) -> None:
        """Records were just acknowledged by the broker: end the loop's idle rest and fetch them now.
        ``ends`` (partition -> the offset after the last acknowledged record), when given, makes the
        loop wait for exactly those records with kafka-python's wait (which their arrival ends) for up
        to ``AWAIT_ACKED_S`` instead of one short poll: a fetch slower than ``WAKE_FETCH_S`` on a
        loaded machine then no longer costs a whole idle rest. Thread-safe and cheap; the app's
        publisher calls it after each acknowledged publish (``Publisher.on_acked``)."""
        if ends:
            now = self._clock()
            with self._acked_lock:
                for partition, end in ends.items():
                    held = self._acked.get(partition)
                    # a higher end restarts the wait; the same or a lower one does not (acknowledgements
                    # of two threads can arrive out of order, and a log that lost records which will
                    # never come must not be awaited for ever: AWAIT_ACKED_S bounds it)
                    if held is None or end > held[0]:
                        self._acked[partition] = (end, now)
        self._wake.set()

    def _awaiting(self) -> bool:
        """True while an assigned partition has acknowledged records (``wake(ends)``) this loop has not
        polled yet, announced less than ``AWAIT_ACKED_S`` ago; expired or reached ones are dropped."""
        if not self._acked:
            return False
        now = self._clock()
        assigned = {tp.partition for tp in self.kafka.assignment()}
        with self._acked_lock:  # _acked is written by the producer's thread; _seen only by this loop
            for partition, (end, at) in list(self._acked.items()):
                if self._seen.get(partition, -1) >= end or now - at > AWAIT_ACKED_S:
                    del self._acked[partition]
            return any(p in assigned for p in self._acked)

    @property
    def stopping(self) -> bool:
        """True once ``stop()`` was called."""
        return self._stop.is_set()

    def pause(self) -> None:
        self._pause.set()
        self._wake.set()  # a resting loop pauses now
        self.state.paused = True

    def resume(self) -> None:
        self._pause.clear()
        self.state.paused = False

    # -- loop ---------------------------------------------------------------------------------------
    def run_supervised(self, max_idle_s: float | None = None) -> None:
        """``run()`` until ``stop()`` (or ``max_idle_s`` of no data), restarting it whenever it raises or
        returns by itself: the error and the partition/offset it was on go to ``state.last_crash``,
        the log and ``snapshot()["degraded"]``; the next attempt waits 1 s, 2 s, 4 s ... (at most
        ``max_restart_backoff_s``; back to the first step after a minute of healthy running). Never
        raises (``BaseException``s such as ``KeyboardInterrupt`` excepted)."""
        delay = self.restart_backoff_s
        opened = True
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                if not opened:
                    self._open()
                    opened = True
                self.run(max_idle_s=max_idle_s)
                if self._stop.is_set() or max_idle_s is not None:
                    return
                error = "the consumer loop returned without being stopped"
            except Exception as exc:
                error = f"{exc.__class__.__name__}: {str(exc)[:300]}"
                log.exception("consumer loop crashed at %s; restarting", self._where or "start")
            opened = False  # run() closed the clients (or _open failed)
            if time.monotonic() - started > 60:
                delay = self.restart_backoff_s
            self._record_crash(error, delay)
            if self._stop.wait(delay):
                break
            delay = min(self.max_restart_backoff_s, delay * 2)
        self.state.restarting_at = None

    def _record_crash(self, error: str, delay: float) -> None:
        where = dict(self._where)
        self.state.crashes += 1
        self.state.last_crash = {"at": time.time(), "error": error, **where}
        self.state.restarting_at = time.time() + delay
        at = (
            f" at partition {where['partition']} offset {where['offset']} ({where.get('stage')})"
            if "partition" in where
            else ""
        )
        self.state.last_error = f"consumer loop crashed{at}: {error}"
        self.state.lag, self.state.lag_seconds, self.state.lag_known = {}, {}, False

    def run(self, max_idle_s: float | None = None) -> None:
        """Poll and store until ``stop()`` (or, for tests and batch jobs, ``max_idle_s`` of no data).

        Pipelined one batch deep: while batch N is written by the writer thread, batch N+1 is polled
        and decoded here. Batch N's offsets are committed (from this thread, as kafka-python requires)
        only after its write succeeded, and before batch N+1 is handed to the writer. After ``stop()``
        the batch being written is finished and committed; one polled meanwhile is not written (nor
        committed: the next owner of its partitions gets it again).
        """
        self.state.running = True
        self.state.restarting_at = None
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
                    self._poll(200)  # keeps group membership alive
                    self._watch_join(reopen=False)  # records fetched now would be dropped unpaused
                    continue
                if self.kafka.paused():
                    self.kafka.resume(*self.kafka.paused())
                records = self._next(inflight is not None)
                batch = [r for rs in records.values() for r in rs]
                decoded = self._decode(batch) if batch else None  # overlaps the in-flight write
                if inflight is not None and (batch or inflight[0].done() or not records):
                    self._finish(*inflight)
                    inflight = None
                if decoded is not None and not self._stop.is_set():  # else: uncommitted, redelivered
                    self._mark("store", batch)
                    inflight = (writer.submit(self._store, *decoded), batch)
                if batch or inflight or not self.kafka.assignment() or any(self.state.lag.values()):
                    # idle counts once partitions are ours and none is known to lag
                    idle_since = time.monotonic()
                elif max_idle_s is not None and time.monotonic() - idle_since > max_idle_s:
                    break
                self._watch_join(reopen=inflight is None)  # a batch in flight has offsets to commit
                self._update_lag()
            if inflight is not None:
                self._finish(*inflight)
        except BaseException:
            self.state.running = False  # said at once; closing the clients below can take seconds
            raise
        finally:
            writer.shutdown(wait=True)
            self.state.running = False
            self._close()

    def _next(self, writing: bool) -> dict:
        """The next records of a running (unpaused) loop. While the group is stable, a poll without a
        wait collects what the last fetch brought and sends the next fetch; while a batch is being
        written, the loop then finishes the write (the fetch flies meanwhile). Otherwise, if it
        brought nothing and no partition is known to lag, rest ``idle_poll_s`` or until ``wake()``. With
        a known lag, or records an acknowledgement announced on an assigned partition and not polled yet
        (``wake(ends)``, for at most ``AWAIT_ACKED_S``), kafka-python's wait, which their arrival ends.
        After a wake without offsets: poll, give the fetch it sent ``WAKE_FETCH_S`` and poll again
        (never a fetch loop: the records may be another member's). While joining or with the coordinator unknown (or ``idle_poll_s``
        0): kafka-python's own wait, as before. See ``IDLE_POLL_S``."""
        if self.idle_poll_s <= 0 or not self._stable():
            return self._poll(100 if writing else 500)
        if writing:  # a wake stays set for after the write
            return self._poll(0)
        woken = self._wake.is_set()
        if woken:  # cleared only when seen: a wake() after the check ends the rest below at once
            self._wake.clear()
        if any(self.state.lag.values()) or self._awaiting():  # records this member will get: the fetch
            return self._poll(100)  # brings them, and their arrival ends kafka-python's wait
        records = self._poll(0)
        if records:
            return records
        if woken:
            self._stop.wait(WAKE_FETCH_S)
            return self._poll(0)
        self._wake.wait(self.idle_poll_s)
        return records

    def _stable(self) -> bool:
        """True when this member holds partitions in a stable group whose coordinator is known, that
        it need not rejoin, and whose every partition a fetch has reported on (``state.lag_known``).
        A poll without a wait completes neither a join (each one started another round: commits then
        failed with RebalanceInProgress) nor the committed-offset lookup that gives a newly assigned
        partition its position (a restarted member fetched 3 of its 4 partitions and went idle)."""
        coordinator = getattr(self.kafka, "_coordinator", None)
        return bool(
            self.state.lag_known
            and self.kafka.assignment()
            and coordinator is not None
            and not coordinator.coordinator_unknown()
            and not coordinator.rebalance_in_progress()
            and not coordinator.need_rejoin()
        )

    def _poll(self, timeout_ms: int) -> dict:
        """``poll``, with the offsets the broker cannot serve placed by us instead of by a reset policy:
        a partition without a committed offset starts at the beginning; one out of range is rewound
        (``_rewind``). Returns {} after placing them (the next poll fetches from there)."""
        try:
            records = self.kafka.poll(timeout_ms=timeout_ms)
            for tp, rs in records.items():
                if rs:
                    self._seen[tp.partition] = max(self._seen.get(tp.partition, -1), rs[-1].offset + 1)
            return records
        except NoOffsetForPartitionError as exc:
            partitions = list(exc.args[0]) if exc.args else list(self.kafka.assignment())
            self.kafka.seek_to_beginning(*partitions)
            for tp in partitions:
                self._seen.pop(tp.partition, None)
        except OffsetOutOfRangeError as exc:
            try:
                self._rewind(dict(exc.args[0]) if exc.args else {})
            except KafkaError as error:  # the broker went away again: the next fetch raises again
                self.state.last_error = f"rewinding after a log regression failed, retrying: {error}"
                log.warning("%s", self.state.last_error)
        return {}

    def _watch_join(self, reopen: bool = True) -> None:
        """Time how long this static member has been out of a stable group, and re-open its client
        once that is ``join_stuck_s`` and ``reopen`` allows it (see the module docstring). Called
        after every poll. kafka-python has no public membership state: ``_coordinator``'s
        ``rebalance_in_progress()`` (kafka-python >= 3.0.1) is true from just before a JoinGroup is
        sent until a poll collects the SyncGroup's answer, through the client's own retries."""
        coordinator = getattr(self.kafka, "_coordinator", None)
        joining = (
            self.join_stuck_s is not None
            and self.instance_id is not None
            and coordinator is not None
            and coordinator.rebalance_in_progress()
            and not coordinator.coordinator_unknown()  # broker down: reconnecting is kafka-python's job
        )
        now = self._clock()
        if not joining:
            self._joining_since = None
            return
        if self._joining_since is None:
            self._joining_since = now
        waited = now - self._joining_since
        if not reopen or self.join_stuck_s is None or waited < self.join_stuck_s:
            return
        log.warning(
            "group %s: this member has not been let into the group for %.0f s; joining again",
            self.group,
            waited,
        )
        self.tally.add("rejoins")
        self.state.last_rejoin = {"at": time.time(), "waited_s": round(waited, 1)}
        self._joining_since = None
        try:
            self.kafka.close(autocommit=False)
        except Exception as exc:  # closing must not stop the rejoin
            log.debug("close before rejoin: %s", exc)
        # if this raises (the broker went away meanwhile) run() ends and run_supervised re-opens
        self.kafka = bus.consumer(
            self._bootstrap, self.settings, self.group, [self.settings.topic_prices], **self._consumer_options
        )
        self._seen = {}  # the new client starts from the committed offsets, as in _open()

    # [embedded-broker workaround] a restarted noida-db can return a shorter log (pipeline.embedded)
    def _rewind(self, out_of_range: dict[TopicPartition, int]) -> None:
        """Place each partition whose fetch offset the broker has not (any more) in its log."""
        if not out_of_range:
            return
        tps = list(out_of_range)
        starts, ends = self.kafka.beginning_offsets(tps), self.kafka.end_offsets(tps)
        for tp, offset in out_of_range.items():
            start, end = starts.get(tp, 0), ends.get(tp, 0)
            if offset < start:  # retention removed records before we read them: what 'earliest' does
                self.tally.add("retention_gaps")
                self.state.last_error = (
                    f"partition {tp.partition}: offsets {offset}-{start - 1} were removed by retention "
                    "before they were read"
                )
                log.error("%s", self.state.last_error)
                self.kafka.seek(tp, start)
                self._seen[tp.partition] = start
                continue
            ts = self._last_ts.get(tp) or self._committed_ts(tp)
            target = start
            if ts is not None:
                found = self.kafka.offsets_for_times({tp: max(0, ts - int(REWIND_MARGIN_S * 1000))}).get(tp)
                target = found.offset if found is not None else end
            target = max(start, min(target, end, offset))
            self.kafka.seek(tp, target)
            self._seen[tp.partition] = target
            self.tally.add("log_regressions")
            self.state.last_rewind = {
                "at": time.time(),
                "partition": tp.partition,
                "offset": offset,
                "log_start": start,
                "log_end": end,
                "to": target,
            }
            log.error(
                "partition %d: offset %d is beyond the log's end %d (the broker lost the tail of its "
                "log); re-reading from offset %d",
                tp.partition,
                offset,
                end,
                target,
            )

    def _committed_ts(self, tp: TopicPartition) -> int | None:
        """The newest stored record's timestamp (ms) that our last commit of ``tp`` recorded, if any."""
        try:
            meta = self.kafka.committed(tp, metadata=True)
            return int(json.loads(meta.metadata)["ts"]) if meta is not None and meta.metadata else None
        except (KafkaError, ValueError, KeyError, TypeError):
            return None

    def _mark(self, stage: str, records) -> None:
        """Remember where the loop is (for a crash report): the first record of what is handled."""
        if records:
            self._where = {"stage": stage, "partition": records[0].partition, "offset": records[0].offset}

    def _decode(self, batch) -> tuple[list[PriceEvent], list, list]:
        """Split a polled batch into (events, their records, [(record, reason, stage)] to dead-letter)."""
        self.tally.add("consumed", len(batch))
        good: list[PriceEvent] = []
        records: list = []
        bad: list = []
        for record in batch:
            self._where = {"stage": "decode", "partition": record.partition, "offset": record.offset}
            try:
                good.append(decode(record.value))
                records.append(record)
            except InvalidEvent as exc:
                bad.append((record, exc.reason, "validate"))
            except Exception as exc:  # decode promises InvalidEvent only; a bug must not stop storage
                log.exception("decode raised %s", exc.__class__.__name__)
                bad.append(
                    (record, f"decoding failed: {exc.__class__.__name__}: {str(exc)[:200]}", "validate")
                )
        return good, records, bad

    def _store(self, good: list[PriceEvent], records: list, bad: list) -> bool:
        """Runs on the writer thread. True once MongoDB and the dead-letter topic acknowledged."""
        bad = list(bad)
        stored = self._write_or_isolate(good, records, bad)
        if stored is None:
            return False
        if bad and not self._retry("dead-letter", lambda: self._dead_letter(bad)):
            return False
        self.rate.add(stored)
        return True

    def _write_or_isolate(self, events: list[PriceEvent], records: list, bad: list) -> int | None:
        """Write ``events``; on a non-transient error that repeats ``poison_attempts`` times, write them
        one by one and append each that still fails to ``bad`` (stage ``store``). Return how many were
        written, or None when stopped while retrying (nothing to commit)."""
        failures, delay = 0, 0.2
        while True:
            outcome = self._attempt("write", lambda: self._write(events))
            if outcome is None:
                return len(events)
            if outcome is False:
                return None
            failures += 1
            if failures < self.poison_attempts:
                if self._stop.wait(delay):
                    return None
                delay *= 2
                continue
            log.warning(
                "a batch of %d failed %d times (%s): writing it one event at a time",
                len(events),
                failures,
                outcome,
            )
            written = 0
            for event, record in zip(events, records, strict=True):
                self._mark("store", [record])
                failures, delay = 0, 0.2
                while True:
                    single = self._attempt("write", functools.partial(self._write, [event]))
                    if single is None:
                        written += 1
                        break
                    if single is False:
                        return None
                    failures += 1
                    if failures >= self.poison_attempts:
                        reason = f"storing failed {failures} times: {single}"
                        bad.append((record, reason, "store"))
                        break
                    if self._stop.wait(delay):
                        return None
                    delay *= 2
            return written

    def _attempt(
        self,
        what: str,
        action: Callable[[], None],
        retryable: Callable[[Exception], bool] = transient,
        give_up: bool = True,
    ) -> str | bool | None:
        """Run ``action``, retrying the errors ``retryable`` accepts with capped backoff until it
        succeeds or the consumer stops. None: done; False: stopped; a string: another error's
        description (with ``give_up``; without it that error is raised)."""
        delay = 0.2
        while True:
            try:
                action()
                if self.state.retrying_since is not None:
                    log.info("%s recovered after %.1fs", what, time.time() - self.state.retrying_since)
                self.state.retrying_since = None
                return None
            except Exception as exc:
                text = f"{exc.__class__.__name__}: {str(exc)[:200]}"
                if not retryable(exc):
                    if not give_up:
                        raise
                    self.tally.add(f"{what}_errors")
                    self.state.last_error = f"{what} failed: {text}"
                    log.warning("%s failed (not transient): %s", what, text)
                    return text
                self.tally.add(f"{what}_retries")
                self.state.last_error = f"{what} failed, retrying: {text}"
                self.state.retrying_since = self.state.retrying_since or time.time()
                log.warning("%s failed (retry in %.1fs): %s", what, delay, exc)
                if self._stop.wait(delay + random.uniform(0, delay / 2)):
                    return False
                delay = min(self.max_backoff_s, delay * 2)

    def _finish(self, future, batch) -> None:
        """Wait for a batch's write; commit its offsets only if it was stored. A write that raised is
        reported at that batch's ``store`` stage: the loop may have moved on to decoding the next
        batch meanwhile, and the crash happened in this one."""
        try:
            stored = future.result()
        except Exception:
            self._mark("store", batch)
            raise
        if not stored:
            return  # stopped while retrying: nothing committed, the batch will be redelivered
        offsets: dict[TopicPartition, int] = {}  # next offset to read, per partition
        for r in batch:
            tp = TopicPartition(r.topic, r.partition)
            offsets[tp] = max(offsets.get(tp, 0), r.offset + 1)
            if r.timestamp and r.timestamp > 0:
                self._last_ts[tp] = max(self._last_ts.get(tp, 0), r.timestamp)
        try:
            self.kafka.commit(
                {
                    tp: OffsetAndMetadata(off, json.dumps({"ts": self._last_ts.get(tp)}), -1)
                    for tp, off in offsets.items()
                }
            )
            self.state.last_commit_at = time.time()
            self._where = {}
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
            try:
                self.on_stored(events)
            except Exception as exc:
                if transient(exc):
                    raise  # the batch is retried: writes are idempotent, the hook sees it again
                self.tally.add("on_stored_errors")
                log.exception("on_stored failed (the batch stays stored)")

    def _dead_letter(self, bad) -> None:
        futures = []
        for record, reason, stage in bad:
            headers = bus.dead_letter_headers(reason, record.topic, record.partition, record.offset, stage)
            futures.append(
                self.dlq.send(
                    self.settings.topic_dead_letter, key=record.key, value=record.value, headers=headers
                )
            )
        self.dlq.flush(timeout=30)
        for f in futures:
            f.get(timeout=30)  # raises if the broker did not acknowledge
        for record, reason, stage in bad:
            self.tally.add("dead_lettered")
            self.tally.reason(reason=reason, stage=stage, partition=record.partition, offset=record.offset)

    def _retry(self, what: str, action: Callable[[], None]) -> bool:
        """Run ``action`` until it succeeds (True) or the consumer is stopped (False), retrying server
        errors (MongoDB, Kafka, OS); any other error is raised (the supervised loop restarts)."""
        return self._attempt(what, action, retryable=_server_error, give_up=False) is None

    def _update_lag(self) -> None:
        """Lag per assigned partition from the broker's figure: the high watermark its last fetch
        response carried, minus our position. A partition no fetch has reported yet has no lag entry
        (unknown), and ``state.lag_known`` stays False until every assigned partition has one."""
        lag, seconds = {}, {}
        now = time.time()
        assignment = self.kafka.assignment()
        for tp in assignment:
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
        self.state.lag_known = bool(assignment) and len(lag) == len(assignment)
        self.state.assigned = sorted(tp.partition for tp in assignment)

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
    def degraded(self, now: float | None = None) -> str | None:
        """A sentence while the loop is down after a crash or for ``DEGRADED_FOR_S`` after it came
        back; None otherwise."""
        s, crash = self.state, self.state.last_crash
        if crash is None:
            return None
        now = time.time() if now is None else now
        where = (
            f" at partition {crash['partition']} offset {crash['offset']} ({crash.get('stage')})"
            if "partition" in crash
            else ""
        )
        if s.restarting_at is not None and not s.running:
            wait = max(0.0, s.restarting_at - now)
            return f"the consumer crashed{where}: {crash['error']}; restarting in {wait:.0f} s"
        if now - crash["at"] < DEGRADED_FOR_S:
            return (
                f"the consumer restarted {now - crash['at']:.0f} s ago ({s.crashes} crash(es)); "
                f"last{where}: {crash['error']}"
            )
        return None

    def snapshot(self) -> dict:
        s = self.state
        lag_known = s.running and s.lag_known
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
            "lag_total": sum(s.lag.values()) if lag_known else None,  # None: unknown, never 0 by default
            "crashes": s.crashes,
            "last_crash": dict(s.last_crash) if s.last_crash else None,
            "restarting_at": s.restarting_at,
            "last_rewind": dict(s.last_rewind) if s.last_rewind else None,
            "last_rejoin": dict(s.last_rejoin) if s.last_rejoin else None,
            "degraded": self.degraded(),
            **self.tally.snapshot()["counts"],
            "recent_dead_letters": self.tally.snapshot()["recent"][-10:],
            "throughput": self.rate.series(),
            "per_second_1m": round(self.rate.per_second(60), 2),
            "write_latency": self.write_latency.snapshot(),
            "end_to_end": self.end_to_end.snapshot(),
        }
