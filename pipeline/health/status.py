"""The status contract behind ``python -m pipeline status --json``.

Guarantees: ``collect(settings)`` never starts a server. In embedded mode it reads the data folder's
``stack.json`` (the running app's servers); with nothing running it still answers, with ``ok: false``.
The object always has these keys (scripts depend on them; extend, never rename):
``mode, kafka{bootstrap, ok}, mongo{uri (password masked), ok}, topics{prices, dead_letter},
published, stored{SYMBOL: n}, dead_lettered, lag, pids{name: pid}``.
"""

from __future__ import annotations

import logging
import os
from typing import NotRequired, TypedDict

from .. import bus
from ..config import Settings, mask_uri
from ..embedded.stack import KAFKA, MONGO, LocalStack, kafka_answers, pid_alive
from . import rules
from .snapshot import Health

log = logging.getLogger(__name__)


class KafkaStatus(TypedDict):
    bootstrap: str  # "" when unknown
    ok: bool


class MongoStatus(TypedDict):
    uri: str  # password masked; "" when unknown
    ok: bool
    version: NotRequired[str]  # the server's, when it answered


class TopicsStatus(TypedDict):
    prices: str
    dead_letter: str


class StatusReport(TypedDict):
    """The JSON object of ``python -m pipeline status --json`` (counts are messages/documents)."""

    mode: str  # "embedded" | "external"
    kafka: KafkaStatus
    mongo: MongoStatus
    topics: TopicsStatus
    published: int
    stored: dict[str, int]  # symbol -> stored price documents
    dead_lettered: int
    lag: int
    pids: dict[str, int]  # server name (and "app") -> pid
    lag_by_partition: dict[str, int]  # partition number as text -> lag
    errors: list[str]
    pid: NotRequired[int]  # this process; set by collect() before returning
    verdicts: NotRequired[list[Verdict]]  # set by collect(): the Health page's rules on what it saw


class Verdict(TypedDict):
    """One component's status as the Health page's rules (``rules``) give it."""

    component: str
    level: str  # OK | WARN | STOP | STALL | ERR
    reason: str


def verdicts(report: StatusReport) -> list[Verdict]:
    """The Health page's verdicts for what a process outside the app can see: Kafka, MongoDB and, in
    embedded mode, the local servers, by the same rule functions (``rules.kafka``, ``rules.mongo``,
    ``rules.stack``) applied to a snapshot built from ``report``. The producer, consumer and bar
    builder rules need the running app's history and stay on the page."""
    health: Health = {
        "mode": report["mode"],
        "kafka": {"bootstrap": report["kafka"]["bootstrap"], "ok": report["kafka"]["ok"], "version": None},
        "mongo": {
            "uri": report["mongo"]["uri"],
            "ok": report["mongo"]["ok"],
            "version": report["mongo"].get("version"),
        },
        "stack": [{"name": name, "alive": name in report["pids"]} for name in (KAFKA, MONGO)],
        "restarts": {},
    }
    if not report["mongo"]["ok"]:
        failed = [e for e in report["errors"] if e.startswith("mongodb")]
        health["mongo"]["error"] = failed[0] if failed else "does not answer"
    found = [rules.kafka(health), rules.mongo(health), rules.stack(health)]
    return [{"component": v.component, "level": v.level, "reason": v.reason} for v in found if v is not None]


def endpoints(settings: Settings) -> tuple[str | None, str | None, dict[str, int]]:
    """Kafka bootstrap and MongoDB URI to use (embedded: from the running stack), and its pids."""
    kafka, mongo, pids = settings.kafka_bootstrap_servers, settings.mongodb_uri, {}
    if settings.embedded:
        stack = LocalStack(settings.data_dir)
        servers = stack.read_state()
        for name, info in servers.items():
            if pid_alive(info.pid):
                pids[name] = info.pid
        owner = stack.owner_pid()
        if owner:
            pids["app"] = owner
        if not kafka and KAFKA in pids:
            kafka = servers[KAFKA].address
        if not mongo and MONGO in pids:
            mongo = f"mongodb://{servers[MONGO].address}/?directConnection=true"
    return kafka, mongo, pids


def collect(settings: Settings) -> StatusReport:
    """Probe Kafka and MongoDB (short timeouts) and return the status object; never raises for an
    unreachable server (the reason goes to ``errors``)."""
    kafka, mongo, pids = endpoints(settings)
    out: StatusReport = {
        "mode": "embedded" if settings.embedded else "external",
        "kafka": {"bootstrap": kafka or "", "ok": False},
        "mongo": {"uri": mask_uri(mongo), "ok": False},
        "topics": {"prices": settings.topic_prices, "dead_letter": settings.topic_dead_letter},
        "published": 0,
        "stored": {},
        "dead_lettered": 0,
        "lag": 0,
        "pids": pids,
        "lag_by_partition": {},
        "errors": [],
    }
    if kafka and kafka_answers(kafka, timeout=3.0, **settings.kafka_options()):
        out["kafka"]["ok"] = True
        admin = bus.admin_client(kafka, settings, timeout_s=5.0)
        try:
            out["published"] = sum(bus.end_offsets(admin, settings.topic_prices).values())
            out["dead_lettered"] = sum(bus.end_offsets(admin, settings.topic_dead_letter).values())
            lag = bus.group_lag(admin, settings.consumer_group, settings.topic_prices)
            out["lag"] = sum(lag.values())
            out["lag_by_partition"] = {str(p): n for p, n in sorted(lag.items())}
        except Exception as exc:  # report, do not crash the status command
            out["errors"].append(f"kafka: {exc}")
        finally:
            admin.close()
    elif kafka:
        out["errors"].append(f"kafka at {kafka} does not answer")
    else:
        out["errors"].append(
            "no running local stack" if settings.embedded else "KAFKA_BOOTSTRAP_SERVERS unset"
        )
    if mongo:
        from ..store import Store

        store = Store.from_uri(
            mongo, settings.db, timeout_s=3.0, socket_timeout_s=settings.mongo_write_timeout
        )
        try:
            out["mongo"]["version"] = store.ping()
            out["mongo"]["ok"] = True
            out["stored"] = dict(sorted(store.count_by_symbol().items()))
        except Exception as exc:
            out["errors"].append(f"mongodb: {exc.__class__.__name__}")
        finally:
            store.close()
    out["pid"] = os.getpid()
    out["verdicts"] = verdicts(out)
    return out
