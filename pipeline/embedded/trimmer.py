"""The embedded broker's footprint: a size cap on what noida-db keeps, and how much time the topic holds.

noida-db keeps every retained message in memory and rewrites its whole log as one JSON snapshot every
~1-2 s while messages arrive. Measured here with the app's pipeline, 50 symbols at a 1 s poll (100
events/s): uncompressed, the snapshot grew 5.5 MiB and the broker's RSS 9 MiB a minute (about 8 GB of
snapshot at the 24 h retention); with the producer's gzip batches 0.76 and 1.8 MiB a minute (about 130
bytes of snapshot per event); rewriting the snapshot costs the broker about 0.3 % of a core per MiB.
Time retention alone (``STOCKMON_RETENTION_HOURS``) therefore lets the snapshot and the broker's
memory grow with the ingest rate. MongoDB is the system of record; the topic
only has to cover outages, so in embedded mode ``Trimmer`` keeps it under a size cap as well.

Guarantees (embedded mode only; an external broker keeps its configured retention and is never
trimmed):
- Every ``every_s`` seconds the snapshot file size is compared with its budget, ``HIGH`` x the cap
  (``STOCKMON_EMBEDDED_RETENTION_MB``): the broker builds each snapshot in memory, so its RSS is about
  the idle broker (~8 MiB) plus up to 2.4 x the snapshot (measured) and the snapshot may use only about
  a third of the cap (200 MiB: trims at 70 MiB, which holds about 1 h 20 min at 100 events/s and about
  22 h of the default watchlist). Above the budget, the oldest messages of the prices and dead-letter topics are deleted
  with DeleteRecords down to ``LOW`` x the cap. The estimate is the measured snapshot bytes per
  retained message (all topics of the broker), so it follows whatever the broker's format costs. When
  the broker's RSS reaches a new peak above ``RSS_HIGH`` x the cap, the budget is lowered for good to
  just under the snapshot size at that moment (freed memory is reused by the broker, not returned).
- Never deleted: a prices message the consumer group (``STOCKMON_CONSUMER_GROUP``) has not committed,
  i.e. not yet stored in MongoDB (a partition without a committed offset is not trimmed at all), and
  any message younger than ``MIN_KEEP_S`` (the producer's replay after a broker restart and the
  consumer's rewind after a log regression rely on the recent tail). While unstored messages alone
  exceed the budget (MongoDB down, a backfill burst) the topic stays over the cap: ``snapshot()``
  says so (``held``, ``over_cap``) and nothing is lost until the time retention applies.
- ``snapshot()`` is in-memory (no I/O) and JSON-able: the cap, the measured snapshot and RSS, the
  oldest retained prices message's timestamp (read from the message itself, the producer's send
  time), the ingest rate and the time the cap holds at that rate, and the trim counters.
- A broker that does not answer or refuses makes one run fail (``last_error``); the thread goes on.
  Times are epoch seconds (UTC).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import OffsetSpec

from .. import bus
from ..config import Settings

log = logging.getLogger(__name__)

MIB = 2**20
# The broker serialises its whole snapshot in memory before writing it (its RSS carries a buffer of up
# to twice the snapshot while it writes), so the snapshot may use well under half of the cap.
HIGH = 0.35  # trim when the snapshot passes this share of the cap...
LOW = 0.30  # ...down to this share (hysteresis: trims are batched, not every run)
RSS_HIGH = 0.90  # broker memory above this share of the cap: the snapshot may grow no further
MIN_KEEP_S = 120.0  # the newest two minutes are never trimmed
RATE_WINDOW_S = 120.0  # ingest rate over the last two minutes

Measure = Callable[[], tuple[int | None, float | None]]  # () -> (snapshot bytes, broker RSS MiB)


class Trimmer:
    """Keeps the embedded broker's snapshot and memory under ``settings.embedded_retention_mb`` MiB by
    trimming stored messages (see the module docstring); ``measure`` reads the snapshot size and RSS
    (``LocalStack.kafka_footprint``)."""

    def __init__(self, bootstrap: str, settings: Settings, measure: Measure, every_s: float = 5.0):
        self.bootstrap = bootstrap
        self.settings = settings
        self.measure = measure
        self.every_s = every_s
        self.cap_bytes = settings.embedded_retention_mb * MIB
        self._budget = self.cap_bytes * HIGH  # snapshot bytes; lowered for good if memory nears the cap
        self._rss_peak = 0.0
        self._admin: KafkaAdminClient | None = None
        self._reader: KafkaConsumer | None = None
        self._ends: deque[tuple[float, int]] = deque()  # (monotonic s, sum of the prices end offsets)
        self._floors: deque[tuple[float, dict[TopicPartition, int]]] = deque()  # end offsets over time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._snap: dict = {
            "cap_mb": settings.embedded_retention_mb,
            "snapshot_mb": None,
            "broker_rss_mb": None,
            "retained": None,
            "oldest_at": None,
            "rate_per_s": None,
            "capacity_s": None,
            "trimmed": 0,
            "trims": 0,
            "last_trim_at": None,
            "held": 0,
            "over_cap": False,
            "runs": 0,
            "last_run": None,
            "last_error": None,
        }

    # -- lifecycle ------------------------------------------------------------------------------------
    def start(self) -> Trimmer:
        self._thread = threading.Thread(target=self._run, name="stockmon-footprint", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        for client in (self._reader, self._admin):
            if client is not None:
                try:
                    client.close()
                except Exception:  # closing a client of a dead broker must not break shutdown
                    log.debug("closing a footprint client failed", exc_info=True)
        self._reader = self._admin = None

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.run_once()

    # -- one run --------------------------------------------------------------------------------------
    def run_once(self) -> dict:
        """Measure, trim if over the budget, read the oldest retained message; return ``snapshot()``.
        Never raises: a failure is recorded in ``last_error``."""
        try:
            update = self._step()
            update["last_error"] = None
        except Exception as exc:  # the broker is down or refused: try again next run
            log.warning("footprint run failed: %s", exc)
            update = {"last_error": f"{exc.__class__.__name__}: {str(exc)[:200]}"}
        with self._lock:
            self._snap.update(update)
            self._snap["runs"] += 1
            self._snap["last_run"] = time.time()
        return self.snapshot()

    def _step(self) -> dict:
        s = self.settings
        admin = self._admin = self._admin or bus.admin_client(self.bootstrap, s)
        now, mono = time.time(), time.monotonic()
        snapshot_bytes, rss = self.measure()
        # Every partition of every topic: the snapshot holds them all.
        topics = [t for t in admin.list_topics() if not t.startswith("__")]
        tps = [tp for t in topics for tp in bus.partitions_of(admin, t)]
        earliest = _offsets(admin, tps, OffsetSpec.EARLIEST)
        latest = _offsets(admin, tps, OffsetSpec.LATEST)
        count = {tp: max(0, latest.get(tp, 0) - earliest.get(tp, 0)) for tp in tps}
        total = sum(count.values())
        own_topics = (s.topic_prices, s.topic_dead_letter)
        own = [tp for tp in tps if tp.topic in own_topics]
        prices = [tp for tp in own if tp.topic == s.topic_prices]

        # What may go: stored (committed) prices, dead letters; never the newest MIN_KEEP_S.
        self._floors.append((mono, {tp: latest.get(tp, 0) for tp in own}))
        while len(self._floors) > 1 and mono - self._floors[1][0] >= MIN_KEEP_S:
            self._floors.popleft()
        old_enough = self._floors[0][1] if mono - self._floors[0][0] >= MIN_KEEP_S else {}
        committed = bus.committed_offsets(admin, s.consumer_group, s.topic_prices)
        limit = {}
        for tp in own:
            bound = old_enough.get(tp, 0)
            if tp.topic == s.topic_prices:
                bound = min(bound, committed.get(tp.partition, 0))
            limit[tp] = max(earliest.get(tp, 0), min(bound, latest.get(tp, 0)))

        trimmed, held = 0, 0
        if rss and snapshot_bytes and rss * MIB > self.cap_bytes * RSS_HIGH and rss > self._rss_peak:
            # The broker reuses freed memory but does not return it: holding the snapshot below its size
            # at this new peak stops the growth (once per new peak, so the budget does not ratchet down).
            self._budget = min(self._budget, snapshot_bytes * 0.95)
        self._rss_peak = max(self._rss_peak, rss or 0.0)
        budget = self._budget
        per_message = snapshot_bytes / total if snapshot_bytes and total else None
        if per_message and snapshot_bytes and snapshot_bytes > budget:
            target = budget * LOW / HIGH
            excess = math.ceil((snapshot_bytes - target) / per_message)
            own_total = sum(count[tp] for tp in own) or 1
            wanted = {tp: earliest.get(tp, 0) + math.ceil(excess * count[tp] / own_total) for tp in own}
            cut = {tp: min(wanted[tp], limit[tp]) for tp in own if min(wanted[tp], limit[tp]) > earliest[tp]}
            held = sum(max(0, wanted[tp] - limit[tp]) for tp in own)
            if cut:
                admin.delete_records(cut)
                trimmed = sum(off - earliest[tp] for tp, off in cut.items())
                earliest.update(cut)
                log.info(
                    "footprint: snapshot %.1f MiB over %.1f MiB budget; trimmed %d stored message(s)",
                    snapshot_bytes / MIB,
                    budget / MIB,
                    trimmed,
                )
        retained = sum(max(0, latest.get(tp, 0) - earliest.get(tp, 0)) for tp in own)

        # Ingest rate (prices messages/s) and what the cap holds at that rate.
        end_sum = sum(latest.get(tp, 0) for tp in prices)
        if self._ends and end_sum < self._ends[-1][1]:  # the broker lost its tail or was replaced
            self._ends.clear()
        self._ends.append((mono, end_sum))
        while len(self._ends) > 2 and mono - self._ends[1][0] >= RATE_WINDOW_S:
            self._ends.popleft()
        (t0, n0), (t1, n1) = self._ends[0], self._ends[-1]
        rate = (n1 - n0) / (t1 - t0) if t1 - t0 >= 10 else None
        capacity = self.cap_bytes * LOW / (rate * per_message) if rate and per_message else None

        with self._lock:
            totals = {
                "trimmed": self._snap["trimmed"] + trimmed,
                "trims": self._snap["trims"] + bool(trimmed),
            }
            last_trim_at = now if trimmed else self._snap["last_trim_at"]
        return {
            "snapshot_mb": round(snapshot_bytes / MIB, 2) if snapshot_bytes is not None else None,
            "broker_rss_mb": rss,
            "retained": retained,
            "budget_mb": round(budget / MIB, 2),
            "oldest_at": self._oldest(prices, earliest, latest),
            "rate_per_s": round(rate, 2) if rate is not None else None,
            "capacity_s": round(capacity) if capacity is not None else None,
            "last_trim_at": last_trim_at,
            "held": held,
            "over_cap": bool(
                (snapshot_bytes or 0) > self.cap_bytes or (rss or 0) * MIB > self.cap_bytes or held
            ),
            **totals,
        }

    def _oldest(
        self,
        tps: list[TopicPartition],
        earliest: dict[TopicPartition, int],
        latest: dict[TopicPartition, int],
    ) -> float | None:
        """Timestamp (epoch s) of the oldest message still in ``tps``: the first record at each
        partition's log start, read with a group-less consumer (nothing is committed)."""
        todo = {tp: earliest.get(tp, 0) for tp in tps if latest.get(tp, 0) > earliest.get(tp, 0)}
        if not todo:
            return None
        reader = self._reader
        if reader is None:
            reader = self._reader = bus.consumer(
                self.bootstrap,
                self.settings,
                group=None,
                client_id="stockmon-footprint",
                max_partition_fetch_bytes=64 * 1024,
                fetch_max_bytes=256 * 1024,
            )
        reader.assign(list(todo))
        for tp, offset in todo.items():
            reader.seek(tp, offset)
        first: dict[TopicPartition, int] = {}
        deadline = time.monotonic() + 5.0
        while len(first) < len(todo) and time.monotonic() < deadline:
            for tp, records in reader.poll(timeout_ms=500, max_records=500).items():
                if tp not in first and records:
                    first[tp] = records[0].timestamp
                    reader.pause(tp)
        reader.resume(*todo)
        stamps = [ms for ms in first.values() if ms and ms > 0]
        return min(stamps) / 1000.0 if stamps else None

    def snapshot(self) -> dict:
        """The figures above (JSON-able, no I/O): ``cap_mb``, ``snapshot_mb``, ``broker_rss_mb``,
        ``retained`` (messages in the two topics), ``oldest_at`` (epoch s of the oldest retained prices
        message), ``rate_per_s`` (prices messages/s over the last ~2 min), ``capacity_s`` (how long the
        cap's trimmed size holds at that rate), ``trimmed``/``trims``/``last_trim_at``, ``held``
        (messages over the budget kept because they are not stored or too new), ``over_cap``,
        ``runs``/``last_run``/``last_error``."""
        with self._lock:
            return dict(self._snap)


def _offsets(admin: KafkaAdminClient, tps: list[TopicPartition], spec) -> dict[TopicPartition, int]:
    if not tps:
        return {}
    result = admin.list_partition_offsets({tp: spec for tp in tps})
    return {tp: int(getattr(info, "offset", info)) for tp, info in result.items()}
