"""A status per pipeline component, in the spirit of Burrow: OK / WARN / ERR / STALL (and STOP).

Pure functions of the runtime's health snapshot (and, for the consumer, a short history of lag
samples); no Streamlit, no I/O.

Rules (each status carries a one-sentence reason):
- Kafka, MongoDB: OK when they answer, else ERR; a MongoDB that stopped answering says since when
  ("not answering since 14:03:12 UTC", ``mongo_down``).
- A component that failed and works again says so for a while after ("last error 3 min ago,
  recovered: ...", from the snapshot's ``incidents``); the error never shows as current once it is
  over (``recovered``).
- Producer job (one per source): STOP when paused or not running; ERR when the last run raised;
  WARN when some symbols failed or events wait to be re-sent; STALL when the job has not run for
  three poll intervals (30 s at least) although it should have; else OK. Lost events are ERR.
- Consumer (Burrow's evaluation over the lag window): STOP when paused or not running in a running
  pipeline; ERR when the thread died (with the crash and where it was) or writes keep failing;
  WARN while it is degraded (restarted after a crash within the last minutes); STALL when lag stays above zero and
  does not shrink while *nothing is committed* over the window (or no commit for 60 s with lag);
  WARN when lag grows although commits advance (falling behind) or is older than 30 s; else OK.
- Kafka log: WARN for ``RECENT_REGRESSION_S`` after the broker lost the tail of its log (the producer
  found acknowledged events missing and re-published them, or the consumer's offset was beyond the
  log's end and it rewound), while lost events wait to be re-published, or when acknowledged events
  left the replay buffer early because it was full; else OK with the size of the replay buffer.
- Dead letters: WARN when messages were dead-lettered by this process, else OK.
- Bar builder: ERR on a failing run, STALL when marks wait and it has not run for 30 s, WARN when
  its lag (the oldest unbuilt mark's age) exceeds one poll interval plus one builder period (its
  wait ``every_s`` plus its last run's duration; the promise: the newest 1m bar is at most that
  behind the newest tick), else OK.
- Backfills: WARN when one failed, else OK. Local stack: ERR when a server process is gone, WARN
  when one had to be restarted, else OK.
- Broker footprint (embedded broker): WARN when its snapshot or memory is over the cap or messages over
  the budget are kept because they are not stored yet, ERR when the trimmer's last run failed, else OK;
  ``topic_holds`` is the sentence "the topic holds the last ..." from the oldest retained message.
- Stream (a source reporting ``connected``, e.g. ``yahoo_stream``): OK while connected (WARN when
  frames were bad or symbols never got a message), ERR while disconnected with the reason.
- Forecast job: ERR when its last run had failures (the first one named), else OK with its last run,
  duration and symbols done.
- Alerts: the engine is ERR when its last batch failed; each delivery channel is ERR while its latest
  attempt failed, WARN when some attempts failed, else OK.
- The one line (``summary``, the Overview's): 🔴 naming each server that does not answer (⏳ while
  the pipeline is starting: they are coming up with it), else 🟠
  while the pipeline is degraded, else 🟢 "All systems OK" while it runs, else its state (paused,
  stopped, starting, error) with "servers OK".
- Market hours (``fixed_hours``): a sentence naming the markets whose exchange calendar could not be
  built and that fall back to fixed weekday hours (no holidays, half days or lunch breaks), else None.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from .. import timetext

if TYPE_CHECKING:  # the snapshot module pulls in pymongo and the store; these rules only read its shape
    from .snapshot import Health, Incident

LEVELS = ("OK", "WARN", "STOP", "STALL", "ERR")  # by severity
BADGES = {"OK": "🟢 OK", "WARN": "🟡 WARN", "STOP": "⏸️ STOP", "STALL": "🟠 STALL", "ERR": "🔴 ERR"}


@dataclass(frozen=True)
class ComponentStatus:
    component: str
    level: str
    reason: str

    @property
    def badge(self) -> str:
        return BADGES[self.level]


def worst(statuses) -> str:
    return max((s.level for s in statuses), key=LEVELS.index, default="OK")


class LagHistory:
    """Recent (time, lag_total, last_commit_at) samples of the consumer, shared by all sessions."""

    def __init__(self, keep_s: float = 300.0):
        self.keep_s = keep_s
        self.samples: deque[tuple[float, int, float | None]] = deque(maxlen=2000)
        self._lock = threading.Lock()

    def add(self, consumer: dict | None, now: float | None = None) -> None:
        if not consumer:
            return
        now = time.time() if now is None else now
        with self._lock:
            if self.samples and now - self.samples[-1][0] < 0.5:
                return
            if consumer.get("lag_total") is None:  # unknown is not zero: no sample
                return
            self.samples.append((now, int(consumer["lag_total"]), consumer.get("last_commit_at")))
            while self.samples and now - self.samples[0][0] > self.keep_s:
                self.samples.popleft()

    def window(
        self, seconds: float = 60.0, now: float | None = None
    ) -> list[tuple[float, int, float | None]]:
        now = time.time() if now is None else now
        with self._lock:
            return [s for s in self.samples if now - s[0] <= seconds]


def clock(epoch: float) -> str:
    """An epoch time as "HH:MM:SS UTC" (what status sentences say)."""
    return timetext.local_time(datetime.fromtimestamp(epoch, UTC))


def mongo_down(health: Health) -> str | None:
    """ "MongoDB not answering since HH:MM:SS UTC" while the health check gets no answer (with the
    reason when known), else None."""
    m = health.get("mongo") or {}
    if m.get("ok") or not m.get("down_since"):
        return None
    why = f" {m['error']}" if m.get("error") else ""
    return f"MongoDB not answering since {clock(m['down_since'])}.{why}"


SUMMARY_STATES = {"paused": "⏸️", "stopped": "⏹️", "starting": "⏳", "error": "🔴"}


def servers_down(health: Health) -> list[str]:
    """One phrase per server the health check found not answering ("Kafka is not reachable"), Kafka
    first; empty when both answer."""
    kafka, mongo = health.get("kafka"), health.get("mongo")
    answers = {"Kafka": bool(kafka and kafka["ok"]), "MongoDB": bool(mongo and mongo.get("ok"))}
    return [f"{name} is not reachable" for name, ok in answers.items() if not ok]


def summary(health: Health, state: str, degraded: str | None) -> tuple[str, bool]:
    """(the servers and the pipeline in one line, whether it needs the user's attention): a server
    down comes first, then a degraded pipeline, then the pipeline's state (see the module)."""
    down = servers_down(health)
    if down and state == "starting":  # not an outage: the servers are coming up with the pipeline
        return "⏳ Pipeline starting · connecting to the servers", False
    if down:
        return f"🔴 {'; '.join(down)} · pipeline {state}", True
    if degraded:
        return "🟠 Pipeline degraded · servers OK", True
    if state == "running":
        return "🟢 All systems OK · pipeline running", False
    return f"{SUMMARY_STATES.get(state, '⚪')} Pipeline {state} · servers OK", state == "error"


def incident(health: Health, name: str) -> Incident | None:
    """The snapshot's incident of component ``name`` ("mongo", "consumer", "bars", "producer · <job>")."""
    return (health.get("incidents") or {}).get(name)


def recovered(health: Health, name: str, now: float | None = None) -> str:
    """ "last error 3 min ago, recovered: <error>" while component ``name`` recovered recently, else ""."""
    found = incident(health, name)
    if not found or found.get("recovered_at") is None:
        return ""
    now = time.time() if now is None else now
    return f"last error {timetext.since(found['recovered_at'], now)}, recovered: {str(found['error'])[:160]}"


def _with(reason: str, note: str) -> str:
    return f"{reason} · {note}" if note else reason


def kafka(health: Health) -> ComponentStatus:
    k = health.get("kafka")
    if k and k.get("ok"):
        return ComponentStatus("Kafka", "OK", f"answers at {k.get('bootstrap')}")
    bootstrap = k.get("bootstrap") if k else None
    return ComponentStatus("Kafka", "ERR", f"does not answer at {bootstrap or 'unknown address'}")


def mongo(health: Health, now: float | None = None) -> ComponentStatus:
    m = health.get("mongo") or {}
    if m.get("ok"):
        return ComponentStatus(
            "MongoDB", "OK", _with(f"answers (version {m.get('version')})", recovered(health, "mongo", now))
        )
    if m.get("down_since"):
        return ComponentStatus(
            "MongoDB", "ERR", f"not answering since {clock(m['down_since'])}: {m.get('error')}"
        )
    return ComponentStatus("MongoDB", "ERR", m.get("error") or "does not answer")


def producer(health: Health, poll_seconds: float, now: float | None = None) -> list[ComponentStatus]:
    now = time.time() if now is None else now
    snap = health.get("producer")
    if not snap:
        return [
            ComponentStatus("Producer", "STOP", f"not running (pipeline {health.get('state', 'stopped')})")
        ]
    if snap.get("paused"):
        return [ComponentStatus("Producer", "STOP", "paused")]
    if not snap.get("running"):
        return [ComponentStatus("Producer", "ERR", "the scheduler is not running")]
    out = []
    late_after = max(3 * poll_seconds, 30.0)
    for name, job in sorted((snap.get("jobs") or {}).items()):
        component = f"Producer · {name}"
        err = job.get("last_error")
        failing = [s for s, row in (job.get("per_symbol") or {}).items() if row.get("last_error")]
        if err and "symbol(s) failed" not in err:
            out.append(ComponentStatus(component, "ERR", f"last run failed: {err}"))
        elif job.get("last_run") is None or now - job["last_run"] > late_after:
            since = (
                "never ran" if job.get("last_run") is None else f"no run for {now - job['last_run']:.0f} s"
            )
            out.append(ComponentStatus(component, "STALL", since))
        elif err:
            names = ", ".join(sorted(failing)[:5])
            out.append(ComponentStatus(component, "WARN", f"{err}: {names}" if names else err))
        else:
            out.append(
                ComponentStatus(
                    component,
                    "OK",
                    _with(
                        f"{job.get('published', 0):,} events published, last run "
                        f"{timetext.since(job['last_run'], now)}",
                        recovered(health, f"producer · {name}", now),
                    ),
                )
            )
    if not out:
        out.append(ComponentStatus("Producer", "OK", "running; no enabled symbols to fetch"))
    if snap.get("lost_overflow"):
        out.append(
            ComponentStatus(
                "Producer · publisher", "ERR", f"{snap['lost_overflow']:,} events lost (retry buffer full)"
            )
        )
    elif snap.get("pending"):
        out.append(
            ComponentStatus(
                "Producer · publisher", "WARN", f"{snap['pending']:,} events waiting to be re-sent to Kafka"
            )
        )
    return out


def streams(health: Health, now: float | None = None) -> list[ComponentStatus]:
    """One status per streaming source (see the module rules)."""
    now = time.time() if now is None else now
    out = []
    for name, info in sorted(((health.get("producer") or {}).get("sources") or {}).items()):
        if not isinstance(info, dict) or "connected" not in info:
            continue
        component = f"Stream · {name}"
        if (health.get("producer") or {}).get("paused"):
            out.append(ComponentStatus(component, "STOP", "paused with the pipeline (connection closed)"))
            continue
        if not info["connected"]:
            why = info.get("last_error") or "not connected yet"
            out.append(
                ComponentStatus(
                    component, "ERR", f"disconnected ({info.get('reconnects', 0)} reconnects): {why}"
                )
            )
            continue
        silent = [s for s, t in (info.get("last_message") or {}).items() if t is None]
        text = (
            f"connected {timetext.since(info.get('connected_since'), now)}, "
            f"{info.get('messages_per_s', 0):g} messages/s, {info.get('reconnects', 0)} reconnects, "
            f"{info.get('gaps_repaired', 0)} gaps repaired"
        )
        if info.get("bad_frames"):
            out.append(
                ComponentStatus(component, "WARN", f"{text}; {info['bad_frames']:,} bad frames dead-lettered")
            )
        elif silent and info.get("connected_since") and now - info["connected_since"] > 60:
            out.append(
                ComponentStatus(
                    component, "WARN", f"{text}; no message yet for {', '.join(sorted(silent)[:5])}"
                )
            )
        else:
            out.append(ComponentStatus(component, "OK", text))
    return out


def consumer(
    health: Health, samples: list[tuple[float, int, float | None]], now: float | None = None
) -> ComponentStatus:
    now = time.time() if now is None else now
    snap = health.get("consumer")
    name = "Consumer"
    if not snap:
        return ComponentStatus(name, "STOP", f"not running (pipeline {health.get('state', 'stopped')})")
    if snap.get("paused"):
        return ComponentStatus(name, "STOP", "paused")
    if not snap.get("running"):
        return ComponentStatus(
            name,
            "ERR",
            snap.get("degraded")
            or f"the consumer thread stopped: {snap.get('last_error') or 'no reason recorded'}",
        )
    if snap.get("retrying_since"):
        why = f": {snap['last_error']}" if snap.get("last_error") else ""
        return ComponentStatus(
            name, "ERR", f"writes failing for {now - snap['retrying_since']:.0f} s, retrying{why}"
        )
    if snap.get("degraded"):
        return ComponentStatus(name, "WARN", str(snap["degraded"]))
    if snap.get("lag_total") is None:
        return ComponentStatus(
            name,
            "OK",
            f"lag unknown (the broker has not reported offsets yet), "
            f"{snap.get('per_second_1m', 0):.1f} events/s over the last minute",
        )
    lag = int(snap["lag_total"])
    last_commit = snap.get("last_commit_at")
    if len(samples) >= 3 and samples[-1][0] - samples[0][0] >= 8:
        lags = [s[1] for s in samples]
        commits = {s[2] for s in samples}
        no_commit = len(commits) == 1
        if min(lags) > 0 and lags[-1] >= lags[0] and no_commit:
            span = samples[-1][0] - samples[0][0]
            return ComponentStatus(
                name, "STALL", f"lag {lags[-1]:,} not shrinking and nothing committed for {span:.0f} s"
            )
        if lags[-1] > lags[0] and lags[-1] > 0 and not no_commit:
            return ComponentStatus(
                name,
                "WARN",
                f"falling behind: lag grew from {lags[0]:,} to {lags[-1]:,} "
                f"in {samples[-1][0] - samples[0][0]:.0f} s",
            )
    if lag > 0 and last_commit is not None and now - last_commit > 60:
        return ComponentStatus(
            name, "STALL", f"lag {lag:,} and nothing committed for {now - last_commit:.0f} s"
        )
    oldest = max((snap.get("lag_seconds") or {}).values(), default=0.0)
    if oldest > 30:
        return ComponentStatus(name, "WARN", f"lag {lag:,} messages, the oldest waiting {oldest:.0f} s")
    return ComponentStatus(
        name,
        "OK",
        _with(
            f"lag {lag:,}, {snap.get('per_second_1m', 0):.1f} events/s over the last minute",
            recovered(health, "consumer", now),
        ),
    )


RECENT_REGRESSION_S = 600.0


def kafka_log(health: Health, now: float | None = None) -> ComponentStatus | None:
    """The producer's replay of what the broker lost and the consumer's rewinds (None when neither
    runs). Reads ``Producer.snapshot()["replay"]`` and ``PriceConsumer.snapshot()``."""
    now = time.time() if now is None else now
    replay = (health.get("producer") or {}).get("replay")
    consumer = health.get("consumer") or {}
    if not replay and not consumer:
        return None
    replay = replay or {}
    lost = replay.get("last_regression")
    rewind = consumer.get("last_rewind")
    recent = [e for e in (lost, rewind) if e and now - e.get("at", 0) < RECENT_REGRESSION_S]
    if recent:
        parts = []
        if lost:
            parts.append(
                f"the broker lost the tail of its log {timetext.since(lost['at'], now)} (partition "
                f"{lost['partition']}: acknowledged up to offset {lost['acknowledged_end']:,}, the log "
                f"ended at {lost['log_end']:,}); {replay.get('republished', 0):,} event(s) re-published"
            )
        if replay.get("waiting"):
            parts.append(f"{replay['waiting']:,} waiting to be re-published")
        if rewind:
            parts.append(
                f"the consumer rewound {consumer.get('log_regressions', 0)}× (last: partition "
                f"{rewind['partition']} offset {rewind['offset']:,} beyond the log's end "
                f"{rewind['log_end']:,}, re-read from {rewind['to']:,})"
            )
        return ComponentStatus("Kafka log", "WARN", "; ".join(parts))
    if replay.get("waiting"):
        return ComponentStatus(
            "Kafka log", "WARN", f"{replay['waiting']:,} lost event(s) waiting to be re-published"
        )
    if replay.get("unprotected"):
        return ComponentStatus(
            "Kafka log",
            "WARN",
            f"{replay['unprotected']:,} acknowledged event(s) left the replay buffer early (it was full)",
        )
    if not replay:
        return ComponentStatus("Kafka log", "OK", "no log regression seen by the consumer")
    return ComponentStatus(
        "Kafka log",
        "OK",
        f"{replay.get('kept', 0):,} acknowledged event(s) kept {replay.get('window_s', 0):.0f} s for "
        f"replay ({replay.get('kept_bytes', 0) / 1024:,.0f} KB); {replay.get('regressions', 0)} log "
        "regression(s) so far",
    )


def dead_letters(health: Health) -> ComponentStatus:
    snap = health.get("consumer") or {}
    n = int(snap.get("dead_lettered") or 0)
    if n:
        latest = (snap.get("recent_dead_letters") or [{}])[-1].get("reason")
        return ComponentStatus(
            "Dead-letter topic",
            "WARN",
            f"{n:,} message(s) dead-lettered" + (f"; latest: {latest}" if latest else ""),
        )
    return ComponentStatus("Dead-letter topic", "OK", "nothing dead-lettered by this process")


def bar_builder(
    health: Health, now: float | None = None, poll_seconds: float | None = None
) -> ComponentStatus:
    now = time.time() if now is None else now
    snap = health.get("bars")
    if not snap:
        return ComponentStatus("Bar builder", "STOP", "not running")
    if snap.get("last_error"):
        return ComponentStatus("Bar builder", "ERR", snap["last_error"])
    if snap.get("pending_marks") and (snap.get("last_run") is None or now - snap["last_run"] > 30):
        return ComponentStatus(
            "Bar builder", "STALL", f"{snap['pending_marks']} bar range(s) waiting and no run for 30 s"
        )
    lag = snap.get("lag_s")
    if lag is not None and poll_seconds is not None:
        period = float(snap.get("every_s") or 1.0) + float(snap.get("last_duration_s") or 0.0)
        if lag > poll_seconds + period:
            return ComponentStatus(
                "Bar builder",
                "WARN",
                f"bars {lag:.0f} s behind the stored prices (more than poll {poll_seconds:g} s + "
                f"builder period {period:.1f} s); {snap.get('pending_marks') or 0} range(s) waiting",
            )
    behind = f", {lag:.1f} s behind" if lag is not None else ""
    return ComponentStatus(
        "Bar builder",
        "OK",
        _with(
            f"{snap.get('bars_written', 0):,} bars written in {snap.get('runs', 0):,} runs{behind}",
            recovered(health, "bars", now),
        ),
    )


def backfills(docs: list[dict]) -> ComponentStatus:
    failed = [d.get("symbol") for d in docs if d.get("status") == "failed"]
    running = [d.get("symbol") for d in docs if d.get("status") in ("queued", "running")]
    if failed:
        return ComponentStatus("Backfills", "WARN", f"failed for {', '.join(map(str, failed[:5]))}")
    if running:
        return ComponentStatus("Backfills", "OK", f"in progress for {', '.join(map(str, running[:5]))}")
    return ComponentStatus("Backfills", "OK", f"{len(docs)} done" if docs else "none requested yet")


def stack(health: Health) -> ComponentStatus | None:
    if health.get("mode") != "embedded":
        return None
    rows = health.get("stack") or []
    dead = [r["name"] for r in rows if not r.get("alive")]
    restarts = health.get("restarts") or {}
    if dead:
        return ComponentStatus("Local stack", "ERR", f"{', '.join(dead)} not running")
    if any(restarts.values()):
        return ComponentStatus(
            "Local stack", "WARN", "restarted: " + ", ".join(f"{k} ×{v}" for k, v in restarts.items() if v)
        )
    return ComponentStatus("Local stack", "OK", f"{len(rows)} server process(es) alive")


def topic_holds(fp: dict | None, now: float | None = None) -> str | None:
    """ "The topic holds the last 2 h 10 min (oldest message sent 12:40:05 UTC); at 100 events/s the
    200 MB cap holds about 5 h." from ``footprint.Trimmer.snapshot()``; None without one. The first
    part is measured (the oldest retained message's own timestamp), the second an estimate (the
    cap's trimmed size over the measured ingest rate and snapshot bytes per message)."""
    if not fp:
        return None
    now = now or time.time()
    oldest = fp.get("oldest_at")
    if oldest is None:
        text = "The topic holds no message yet."
    else:
        sent = time.strftime("%H:%M:%S", time.gmtime(oldest))
        text = f"The topic holds the last {timetext.age(now - oldest)} (oldest message sent {sent} UTC)."
    rate, capacity = fp.get("rate_per_s"), fp.get("capacity_s")
    if rate and capacity:
        text += f" At {rate:,.0f} events/s the {fp['cap_mb']:g} MB cap holds about {timetext.age(capacity)}."
    return text


def footprint(health: Health) -> ComponentStatus | None:
    fp = health.get("footprint")
    if not fp:
        return None
    if fp.get("last_error"):
        return ComponentStatus("Broker footprint", "ERR", f"trimming failed: {fp['last_error']}")
    size = f"snapshot {fp.get('snapshot_mb') or 0:g} MB, memory {fp.get('broker_rss_mb') or 0:g} MB"
    if fp.get("held"):
        return ComponentStatus(
            "Broker footprint",
            "WARN",
            f"{size}: {fp['held']:,} message(s) over the {fp['cap_mb']:g} MB cap's budget are kept: not "
            "stored in MongoDB yet, or under 2 min old",
        )
    if fp.get("over_cap"):
        return ComponentStatus("Broker footprint", "WARN", f"{size}: over the {fp['cap_mb']:g} MB cap")
    return ComponentStatus("Broker footprint", "OK", f"{size} (cap {fp['cap_mb']:g} MB)")


def alerts(health: Health) -> list[ComponentStatus]:
    """The alert engine (ERR if its last batch failed) and each delivery channel (ERR while its latest
    attempt failed, WARN if any attempt failed, OK otherwise)."""
    snap = health.get("alerts")
    engine = snap.get("engine") if snap else None
    if not snap or engine is None:
        return []
    out = [
        ComponentStatus("Alerts engine", "ERR", engine["last_error"])
        if engine.get("last_error")
        else ComponentStatus(
            "Alerts engine",
            "OK",
            f"{engine.get('active_rules', 0)} active rule(s), {engine.get('fired', 0):,} fired",
        )
    ]
    for name, ch in (snap.get("channels") or {}).items():
        label = f"Alerts · {name}"
        failing = ch.get("last_error") and (ch.get("last_error_at") or 0) > (ch.get("last_ok_at") or 0)
        if failing:
            out.append(ComponentStatus(label, "ERR", str(ch["last_error"])[:200]))
        elif ch.get("failed"):
            out.append(ComponentStatus(label, "WARN", f"{ch['failed']} failed, {ch.get('sent', 0)} sent"))
        else:
            out.append(
                ComponentStatus(label, "OK", f"{ch.get('sent', 0)} sent, {ch.get('pending', 0)} waiting")
            )
    return out


def forecast_job(health: Health, now: float | None = None) -> ComponentStatus | None:
    """The forecast job (issue 14): ERR when its last run had failures, else OK with its last run,
    duration and symbols done; None while the pipeline is stopped."""
    snap = health.get("forecasts")
    if snap is None:
        return None
    if snap.get("last_run") is None:
        return ComponentStatus(
            "Forecast job", "OK", "running its first pass" if snap.get("running") else "not run yet"
        )
    took = f"last run {clock(snap['last_run'])} in {snap.get('duration_s') or 0:.1f} s"
    counts = f"{snap.get('done', 0)} done, {snap.get('skipped', 0)} with too little history"
    if snap.get("failed"):
        first = next(iter((snap.get("failures") or {}).items()), ("", ""))
        return ComponentStatus(
            "Forecast job", "ERR", f"{took}: {snap['failed']} failed ({first[0]}: {first[1]}), {counts}"
        )
    return ComponentStatus("Forecast job", "OK", f"{took}: {counts}")


def evaluate(
    health: Health, samples, poll_seconds: float, backfill_docs: list[dict], now: float | None = None
) -> list[ComponentStatus]:
    out = [
        kafka(health),
        mongo(health, now),
        *producer(health, poll_seconds, now),
        *streams(health, now),
        consumer(health, samples, now),
        dead_letters(health),
        bar_builder(health, now, poll_seconds),
        backfills(backfill_docs),
        *alerts(health),
    ]
    local = stack(health)
    if local is not None:
        out.append(local)
    log_status = kafka_log(health, now)
    if log_status is not None:
        out.append(log_status)
    broker = footprint(health)
    if broker is not None:
        out.append(broker)
    job = forecast_job(health, now)
    if job is not None:
        out.append(job)
    return out


def fixed_hours(health: Health) -> str | None:
    """The markets on fixed hours (the snapshot's ``fixed_hours``: MIC -> reason) in one sentence, or
    None when every market trades on its exchange calendar. The reasons themselves are the page's."""
    mics = sorted(health.get("fixed_hours") or {})
    if not mics:
        return None
    return (
        f"{len(mics)} market{'s' if len(mics) != 1 else ''} on fixed weekday hours (no holidays, half days "
        f"or lunch breaks) because the exchange calendar could not be built: {', '.join(mics)}"
    )
