"""Helpers for pipeline tests: deterministic events, publishing, reading topics and collections."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

from pipeline import bus
from pipeline.consumer import PriceConsumer
from pipeline.models import PriceEvent
from support.base import ROOT, settings_env

T0 = datetime(2026, 11, 20, 14, 30, tzinfo=UTC)
SYMBOLS = ("AAPL", "MSFT", "7203.T", "BRK-B", "^GSPC")


def make_events(n: int, symbols=SYMBOLS, start: datetime = T0, step_s: float = 1.0) -> list[PriceEvent]:
    events = []
    for i in range(n):
        symbol = symbols[i % len(symbols)]
        price = 100 + (i % 97) * 0.25
        ts = start + timedelta(seconds=step_s * (i // len(symbols)))
        events.append(
            PriceEvent.tick(
                symbol, ts, price, volume=1 + i % 13, source="test", fetched_at=ts + timedelta(milliseconds=5)
            )
        )
    return events


def publish(settings, events, producer=None) -> int:
    own = producer is None
    producer = producer or bus.producer(settings.kafka_bootstrap_servers, settings)
    futures = [
        producer.send(settings.topic_prices, key=e.symbol.encode(), value=e.to_json_bytes()) for e in events
    ]
    producer.flush(timeout=60)
    for f in futures:
        f.get(timeout=30)
    if own:
        producer.close()
    return len(futures)


def consume_until_idle(settings, store, idle_s: float = 2.0, **kw) -> PriceConsumer:
    consumer = PriceConsumer(settings.kafka_bootstrap_servers, settings, store, **kw)
    consumer.run(max_idle_s=idle_s)
    return consumer


def read_topic(settings, topic: str, timeout_s: float = 5.0) -> list:
    c = bus.consumer(settings.kafka_bootstrap_servers, settings, group=None, topics=[topic])
    out, idle_since = [], time.monotonic()
    try:
        while time.monotonic() - idle_since < timeout_s:
            batch = c.poll(timeout_ms=500)
            for records in batch.values():
                out.extend(records)
                idle_since = time.monotonic()
    finally:
        c.close()
    return out


def stored_keys(store) -> list[tuple]:
    return [
        (d["symbol"], d["interval"], d["ts"])
        for d in store.prices.find({}, {"symbol": 1, "interval": 1, "ts": 1})
    ]


def start_consumer_process(settings, *extra: str, group: str | None = None) -> subprocess.Popen:
    env = {**os.environ, **settings_env(settings)}
    cmd = [sys.executable, "-m", "pipeline", "consume", *extra]
    if group:
        cmd += ["--group", group]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(predicate, timeout_s: float, every_s: float = 0.2, what: str = "condition"):
    """Call ``predicate`` every ``every_s`` seconds until it returns something truthy, and return
    that; AssertionError after ``timeout_s`` (a ceiling). A predicate that reads MongoDB and meets a
    transient network error (``AutoReconnect``: under load pymongo's monitor times out, clears the
    pool and cancels the reads in flight) counts as "not yet"; the last such error is named."""
    from pymongo.errors import AutoReconnect

    deadline = time.monotonic() + timeout_s
    transient: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except AutoReconnect as exc:
            transient, value = exc, None
        if value:
            return value
        time.sleep(every_s)
    also = f" (last transient error: {transient!r})" if transient is not None else ""
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}{also}")


class Background(threading.Thread):
    """Run a callable in a daemon thread and re-raise its exception on join."""

    def __init__(self, target, *args):
        super().__init__(daemon=True)
        self._call = (target, args)
        self.error = None

    def run(self):
        try:
            self._call[0](*self._call[1])
        except BaseException as exc:
            self.error = exc

    def join(self, timeout=None):
        super().join(timeout)
        if self.error:
            raise self.error


def jsonl(stdout: str) -> dict:
    return json.loads([ln for ln in stdout.splitlines() if ln.startswith("{")][-1])


def wait_for_members(store, procs: list[subprocess.Popen], timeout_s: float = 180) -> list[dict]:
    """Wait until every one of ``procs`` (consumer processes) beats with partitions assigned (so all
    of them are in the group and its rebalance is done); return their heartbeats. After
    ``timeout_s`` the processes are killed and AssertionError carries their heartbeats and the end
    of each one's log."""
    from pipeline.queries import processes

    count = len(procs)

    def members():
        beats = [b for b in processes(store) if b["role"] == "consume" and b["alive"]]
        return beats if len(beats) == count and all(b.get("assigned") for b in beats) else None

    try:
        return wait_for(members, timeout_s, what=f"{count} consumer processes with partitions")
    except AssertionError as exc:
        seen = [(b["pid"], b["alive"], b.get("assigned")) for b in processes(store)]
        logs = []
        for p in procs:
            p.kill()
            _, err = p.communicate(timeout=30)
            logs.append(f"--- pid {p.pid} ---\n{(err or '')[-3000:]}")
        raise AssertionError(
            f"{exc}; heartbeats (pid, alive, partitions): {seen}\n" + "\n".join(logs)
        ) from None


def wait_quiet(count, quiet_s: float = 2.0, timeout_s: float = 60) -> int:
    """Wait until ``count()`` has not changed for ``quiet_s`` seconds (what was in flight has landed);
    return that count. AssertionError if it still changes after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last, since = count(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = count()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return now
    raise AssertionError(f"still changing after {timeout_s}s (last count {last})")


def kill_server(stack, name: str) -> int:
    """SIGKILL one owned server of ``stack`` (its whole process group: no chance to save anything) and
    reap it; return the killed pid. The stack still records its port, so a ``Supervisor`` restarts it
    there."""
    import signal

    pid = stack.servers[name].pid
    os.killpg(os.getpgid(pid), signal.SIGKILL)
    proc = stack._procs.get(name)
    if proc is not None:
        proc.wait(timeout=30)
    return pid


def log_end(settings) -> int:
    """Sum of the prices topic's end offsets (raises while the broker does not answer)."""
    ends = bus.LogEnds(settings.kafka_bootstrap_servers, settings, settings.topic_prices)
    try:
        return sum(ends().values())
    finally:
        ends.close()
