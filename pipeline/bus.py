"""Kafka access: topics, the producer and consumer factories, offsets and the dead-letter format.

Guarantees:
- ``ensure_topics`` creates the prices and dead-letter topics with the configured partitions and
  retention, and is idempotent (an existing topic is left as it is and reported).
- Every client gets the security pass-through of ``Settings.kafka_options()``.
- The producer is idempotent with ``acks='all'`` and gzips its batches; messages are keyed by symbol
  so each symbol keeps its order within one partition.
- ``LogEnds`` reads a topic's end offsets for the producer's log check (a broker that lost the tail
  of its log shows an end below what it acknowledged); it reconnects by itself after a restart.
- ``dead_letter_headers`` carries the reason and the original topic/partition/offset, so a
  dead-lettered message can always be traced back to where it came from.
- kafka-python 3's warning that one step of its network loop ran over 0.1 s ("It is blocking the
  event loop") is logged only from ``SLOW_STEP_LOG_S`` (1 s) up: on 2 cores the app's own threads
  hold the GIL that long while backfills run, and a first start printed 49 of them (0.1-0.3 s) into
  the user's terminal with nothing wrong. A step of a second or more still warns (a real hang).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError, TopicAlreadyExistsError

log = logging.getLogger(__name__)

SLOW_STEP_LOG_S = 1.0  # kafka-python's slow-step warnings below this are not logged (see the module)
_STEP = re.compile(r"ran for (\d+(?:\.\d+)?)s")


class SlowStepFilter(logging.Filter):
    """Drops kafka-python's "Task … ran for 0.227s (>0.100s threshold) … blocking the event loop"
    warnings under ``SLOW_STEP_LOG_S`` seconds (see the module); every other record passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        found = _STEP.search(record.getMessage()) if "blocking the event loop" in str(record.msg) else None
        return found is None or float(found.group(1)) >= SLOW_STEP_LOG_S


logging.getLogger("kafka.net.selector").addFilter(SlowStepFilter())

#: The consumer's fetch wait (ms); see ``consumer``.
CONSUMER_FETCH_MAX_WAIT_MS = 50


def admin_client(bootstrap: str, settings, timeout_s: float = 10.0) -> KafkaAdminClient:
    return KafkaAdminClient(
        bootstrap_servers=bootstrap,
        request_timeout_ms=int(timeout_s * 1000),
        bootstrap_timeout_ms=int(timeout_s * 1000),
        client_id="stockmon-admin",
        **settings.kafka_options(),
    )


def producer(bootstrap: str, settings, **overrides) -> KafkaProducer:
    options: dict[str, Any] = dict(  # KafkaProducer keyword options
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=5,
        retries=5,
        request_timeout_ms=15000,
        client_id="stockmon-producer",
        # gzip (zlib, no extra package): the embedded broker keeps every batch in RAM and in its
        # snapshot; gzip batches of price events cost 8x less there (107 vs 900 bytes of snapshot per
        # event, measured), so the same cap holds 8x more time (see pipeline.embedded.trimmer).
        compression_type="gzip",
        reconnect_backoff_max_ms=2000,
    )
    options.update(settings.kafka_options())
    options.update(overrides)
    return KafkaProducer(**options)


def consumer(
    bootstrap: str, settings, group: str | None, topics: Iterable[str] = (), **overrides
) -> KafkaConsumer:
    options: dict[str, Any] = dict(  # KafkaConsumer keyword options
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=10000,
        heartbeat_interval_ms=2000,
        max_poll_records=5000,
        # how long the broker may hold a fetch that finds nothing new (kafka-python's default: 500 ms).
        # The embedded noida-db 0.2.3 ignores it and answers an empty fetch at once (1 ms measured),
        # so there the consumer rests between empty polls instead (consumer.IDLE_POLL_S). A real
        # Kafka answers as soon as a record arrives (fetch_min_bytes 1): 50 ms only sets how often an
        # idle consumer fetches (~20/s).
        fetch_max_wait_ms=CONSUMER_FETCH_MAX_WAIT_MS,
        # a group whose leader assigned nothing (its metadata did not show a just-created topic's
        # partitions yet) only rejoins when the metadata changes, which kafka-python re-reads every
        # 5 min by default; re-read every 10 s (one small request per consumer). (Members left with
        # no partitions in the two-consumer tests had another cause: see consumer.JOIN_STUCK_S.)
        metadata_max_age_ms=10_000,
        client_id="stockmon-consumer",
        reconnect_backoff_max_ms=2000,
    )
    options.update(settings.kafka_options())
    options.update(overrides)
    c = KafkaConsumer(**options)
    if topics:
        c.subscribe(list(topics))
    return c


def ensure_topics(admin: KafkaAdminClient, settings) -> dict[str, str]:
    """Create the product's topics; return {topic: 'created' | 'exists'}."""
    retention_ms = str(int(settings.retention_hours * 3600 * 1000))
    wanted = {
        settings.topic_prices: settings.partitions,
        settings.topic_dead_letter: 1,
    }
    existing = set(admin.list_topics())
    outcome = {}
    for topic, partitions in wanted.items():
        if topic in existing:
            outcome[topic] = "exists"
            continue
        try:
            admin.create_topics(
                {
                    topic: {
                        "num_partitions": partitions,
                        "replication_factor": -1,
                        "configs": {"retention.ms": retention_ms},
                    }
                }
            )
            outcome[topic] = "created"
        except TopicAlreadyExistsError:  # a concurrent process won the race
            outcome[topic] = "exists"
    try:
        admin.wait_for_topics(list(wanted), timeout_ms=10000)
    except (KafkaError, AttributeError) as exc:  # older clients lack wait_for_topics
        log.debug("wait_for_topics: %s", exc)
    return outcome


def create_topics(bootstrap: str, settings) -> dict[str, str]:
    """``ensure_topics`` with a short-lived admin client of its own."""
    admin = admin_client(bootstrap, settings)
    try:
        return ensure_topics(admin, settings)
    finally:
        admin.close()


def partitions_of(admin: KafkaAdminClient, topic: str) -> list[TopicPartition]:
    described = admin.describe_topics([topic])
    if not described or described[0].get("error_code"):
        return []
    return [TopicPartition(topic, p["partition_index"]) for p in described[0]["partitions"]]


def end_offsets(admin: KafkaAdminClient, topic: str) -> dict[int, int]:
    """Latest offset of each partition of ``topic`` (0 for an empty or missing topic)."""
    from kafka.admin import OffsetSpec

    tps = partitions_of(admin, topic)
    if not tps:
        return {}
    result = admin.list_partition_offsets({tp: OffsetSpec.LATEST for tp in tps})
    return {tp.partition: int(getattr(info, "offset", info)) for tp, info in result.items()}


def committed_offsets(admin: KafkaAdminClient, group: str, topic: str) -> dict[int, int]:
    try:
        groups = admin.list_group_offsets({group: None})
    except KafkaError:
        return {}
    return {
        tp.partition: meta.offset
        for tp, meta in groups.get(group, {}).items()
        if tp.topic == topic and meta.offset is not None and meta.offset >= 0
    }


class LogEnds:
    """Calls to ``end_offsets`` of one topic through an admin client opened on first use and reopened
    after any failure (a restarted broker). Calling it returns {partition: end offset} or raises
    ``KafkaError``/``OSError`` while the broker does not answer. ``close()`` is idempotent."""

    def __init__(self, bootstrap: str, settings, topic: str, timeout_s: float = 5.0):
        self.bootstrap, self.settings, self.topic, self.timeout_s = bootstrap, settings, topic, timeout_s
        self._admin: KafkaAdminClient | None = None

    def __call__(self) -> dict[int, int]:
        if self._admin is None:
            self._admin = admin_client(self.bootstrap, self.settings, self.timeout_s)
        try:
            return end_offsets(self._admin, self.topic)
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            try:
                admin.close()
            except Exception as exc:  # closing must not mask the real error
                log.debug("admin close: %s", exc)


def group_lag(admin: KafkaAdminClient, group: str, topic: str) -> dict[int, int]:
    """Messages not yet committed by ``group``, per partition."""
    ends = end_offsets(admin, topic)
    done = committed_offsets(admin, group, topic)
    return {p: max(0, end - done.get(p, 0)) for p, end in ends.items()}


def dead_letter_headers(
    reason: str, topic: str, partition: int, offset: int, stage: str = "validate"
) -> list:
    return [
        ("stockmon.reason", reason.encode("utf-8", "replace")[:1000]),
        ("stockmon.stage", stage.encode()),
        ("stockmon.original.topic", topic.encode()),
        ("stockmon.original.partition", str(partition).encode()),
        ("stockmon.original.offset", str(offset).encode()),
    ]


def read_headers(headers) -> dict[str, str]:
    return {k: (v or b"").decode("utf-8", "replace") for k, v in (headers or [])}
