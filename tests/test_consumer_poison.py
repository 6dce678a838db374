"""Issue 9, found-item 1 through the consumer: one message can never stop storage.

- the case file (``ts`` in epoch milliseconds) is dead-lettered with a reason, the good events behind it
  are stored, in the app's thread and in ``python -m pipeline consume``;
- a burst of poison of every kind into a running pipeline: all dead-lettered, the good event after
  them stored within seconds, the consumer alive throughout;
- a message MongoDB refuses for good (not a transient error) is dead-lettered at stage ``store``;
- a crash inside the consumer loop: it comes back by itself, and health and sidebar said "degraded".
"""

from __future__ import annotations

import json
import math
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bson.errors import InvalidDocument
from kafka import KafkaProducer
from support.base import make_settings
from support.pages import app, assert_clean, configure, texts
from support.pipeline import (
    consume_until_idle,
    jsonl,
    make_events,
    read_topic,
    start_consumer_process,
    wait_for,
)

from pipeline import bus
from pipeline.health import rules as h
from pipeline.health.status import collect
from pipeline.models import PriceEvent
from pipeline.runtime import Runtime
from pipeline.store import Store

CASE = (Path(__file__).parent / "data" / "cases" / "kafka_poison_epoch_ms_ts.json").read_bytes()


def send_raw(settings, messages: list[tuple[bytes, bytes | None]]) -> None:
    """Send (key, value) pairs as they are, with an independent producer, in order."""
    raw = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    try:
        for key, value in messages:
            raw.send(settings.topic_prices, key=key, value=value).get(timeout=30)
    finally:
        raw.close()


def letters_by_value(settings) -> dict[bytes | None, dict[str, str]]:
    return {m.value: bus.read_headers(m.headers) for m in read_topic(settings, settings.topic_dead_letter)}


def good_behind_the_case(n: int = 10) -> list[PriceEvent]:
    """Events of the case file's symbol, so they land on its partition behind it."""
    return make_events(n, symbols=("AAPL",))


def test_the_case_file_is_dead_lettered_and_the_events_behind_it_are_stored(settings, store, topics):
    good = good_behind_the_case()
    send_raw(settings, [(b"AAPL", CASE)] + [(b"AAPL", e.to_json_bytes()) for e in good])
    consumer = consume_until_idle(settings, store)
    assert store.prices.count_documents({}) == len(good)
    assert consumer.tally.counts["dead_lettered"] == 1 and consumer.state.crashes == 0
    headers = letters_by_value(settings)[CASE]
    assert headers["stockmon.reason"].startswith("ts 1795185000000 looks like epoch milliseconds")
    assert headers["stockmon.stage"] == "validate"
    assert headers["stockmon.original.topic"] == settings.topic_prices
    assert headers["stockmon.original.offset"] == "0"
    assert collect(settings)["lag"] == 0  # committed: a restarted consumer does not meet it again
    again = consume_until_idle(settings, store, idle_s=1.0)
    assert again.tally.counts.get("consumed", 0) == 0


def test_the_consume_process_survives_the_case_file(settings, store, topics):
    good = good_behind_the_case()
    send_raw(settings, [(b"AAPL", CASE)] + [(b"AAPL", e.to_json_bytes()) for e in good])
    proc = start_consumer_process(settings, "--exit-when-idle", "3")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    summary = jsonl(out)
    assert (summary["stored"], summary["dead_lettered"]) == (len(good), 1), summary
    assert store.prices.count_documents({}) == len(good)


class RefusingStore(Store):
    """A real store that refuses, for good, every batch holding an event with volume 666 (as MongoDB
    refuses a document it cannot encode): not a transient error, retrying cannot help."""

    def write_events(self, events):
        if any(e.volume == 666 for e in events):
            raise InvalidDocument("cannot encode object: volume 666 (refused for the test)")
        return super().write_events(events)


def test_a_message_the_store_refuses_for_good_is_dead_lettered_and_the_rest_stored(settings, store, topics):
    good = good_behind_the_case(12)
    refused = good[5].with_(volume=666)
    send_raw(settings, [(b"AAPL", e.to_json_bytes()) for e in good[:5] + [refused] + good[6:]])
    refusing = RefusingStore(store.client, settings.db)
    consumer = consume_until_idle(settings, refusing, poison_attempts=3)
    assert store.prices.count_documents({}) == len(good) - 1
    assert store.prices.count_documents({"volume": 666}) == 0
    assert consumer.tally.counts["dead_lettered"] == 1 and consumer.state.crashes == 0
    headers = letters_by_value(settings)[refused.to_json_bytes()]
    assert headers["stockmon.stage"] == "store"
    assert headers["stockmon.reason"].startswith("storing failed 3 times: InvalidDocument: cannot encode")
    assert headers["stockmon.original.offset"] == "5"
    assert collect(settings)["lag"] == 0


def poison_burst(good: PriceEvent) -> list[tuple[bytes, bytes | None, str | tuple[str, ...]]]:
    """(key, value, expected words of the reason) for every kind of poison seen in the wild."""
    wire = good.to_wire()

    def js(**changes) -> bytes:
        return json.dumps({**wire, **changes}).encode()

    def raw_number(name: str, text: str) -> bytes:
        return json.dumps(wire).replace(f'"{name}": {json.dumps(wire[name])}', f'"{name}": {text}').encode()

    return [
        (b"AAPL", CASE, "looks like epoch milliseconds"),
        (b"AAPL", js(ts=int(good.ts.timestamp() * 1000)), "looks like epoch milliseconds"),
        (b"AAPL", js(ts=int(good.ts.timestamp() * 1_000_000)), "looks like epoch microseconds"),
        (b"AAPL", js(close=math.nan, high=math.nan), "is not finite"),
        (b"AAPL", raw_number("close", "Infinity"), "close is not finite"),
        (b"AAPL", raw_number("volume", "-Infinity"), "volume is not finite"),
        (
            b"AAPL",
            raw_number("high", "9" * 400),
            ("high 9999999999999999999999999", "is out of range (at most 1e+15)"),
        ),
        (
            b"AAPL",
            raw_number("ts", "1" * 400),
            ("ts 1111111111111111111111", "is not a plausible epoch time"),
        ),
        (b"AAPL", raw_number("volume", "1" * 5000), "value is not JSON: ValueError"),
        (b"AAPL", js(ts="0001-01-01T00:00:00+05:00"), "cannot be represented in UTC"),
        (b"AAPL", js(symbol=["AAPL"]), "symbol ['AAPL'] does not match"),
        (b"AAPL", js(schema={"v": 1}), "unknown schema version {'v': 1}"),
        (b"AAPL", js(interval=["tick"]), "interval ['tick'] is not one of"),
        (b"AAPL", js(open="100.0"), "open is missing or not a number"),
        (b"AAPL", js(fetched_at={"$date": 0}), "fetched_at is missing or not a timestamp"),
        (b"AAPL", b"[" * 50_000 + b"]" * 50_000, "value is not JSON: RecursionError"),
        (b"AAPL", json.dumps([[{"a": [[[]]]}]]).encode(), "message is not a JSON object"),
        (b"AAPL", b'{"symbol": "\xc3\x28AAPL"}', "value is not JSON: UnicodeDecodeError"),
        (b"AAPL", b"\xff\xfe\x00garbage", "value is not JSON"),
        (b"AAPL", b"symbol=AAPL,close=100", "value is not JSON: JSONDecodeError"),
        (b"AAPL", b"", "value is not JSON"),
        (b"AAPL", None, "tombstone"),
    ]


def test_a_burst_of_poison_into_a_running_pipeline_is_dead_lettered_and_storage_goes_on(stack, tmp_path):
    settings = make_settings(stack, tmp_path, watchlist=("MSFT",), poll_seconds=0.5)
    runtime = Runtime(settings).start()
    try:
        assert runtime.state == "running", runtime.error
        consumer = runtime.pipeline.consumer
        wait_for(
            lambda: consumer.snapshot().get("stored", 0) > 0, 60, what="the pipeline storing simulated prices"
        )
        alive, watching = [], threading.Event()

        def watch() -> None:  # the consumer stays up the whole time, sampled every 50 ms
            while not watching.is_set():
                snap = consumer.snapshot()
                alive.append(snap["running"] and snap["crashes"] == 0)
                time.sleep(0.05)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        now = datetime.now(UTC).replace(microsecond=0)
        good = PriceEvent.tick("AAPL", now - timedelta(seconds=5), 123.25, 7, "test", fetched_at=now)
        burst = poison_burst(good)
        t0 = time.monotonic()
        send_raw(settings, [(k, v) for k, v, _ in burst] + [(b"AAPL", good.to_json_bytes())])
        stored = wait_for(
            lambda: runtime.store.prices.find_one({"symbol": "AAPL", "interval": "tick"}),
            60,
            every_s=0.05,
            what="the good event behind the poison to be stored",
        )
        took = time.monotonic() - t0
        assert stored["close"] == 123.25 and stored["ts"].replace(tzinfo=UTC) == good.ts
        wait_for(
            lambda: consumer.snapshot().get("dead_lettered", 0) >= len(burst), 60, what="all dead-lettered"
        )
        watching.set()
        watcher.join(5)
        assert alive and all(alive), "the consumer stopped or crashed during the burst"
        letters = letters_by_value(settings)
        assert len(letters) == len(burst)
        for _, value, words in burst:
            headers = letters[value]
            for word in (words,) if isinstance(words, str) else words:
                assert word in headers["stockmon.reason"], (value[:60] if value else value, headers)
            assert headers["stockmon.stage"] == "validate"
            assert headers["stockmon.original.topic"] == settings.topic_prices
        assert consumer.snapshot()["degraded"] is None and runtime.degraded() is None
        assert h.dead_letters(runtime.health()).level == "WARN"
        print(f"good event stored {took:.2f} s after the burst of {len(burst)} poison messages was sent")
        assert took < 30, f"the good event took {took:.1f} s"
    finally:
        runtime.stop()


def crash_once(consumer) -> dict:
    """Make the consumer's loop raise once, from inside (its next batch's write raises an error that
    no handler expects); returns a dict that gets "fired" once it did."""
    original, fired = consumer._store, {}

    def store_then_crash(*args):
        if not fired:
            fired["at"] = time.time()
            raise RuntimeError("injected crash inside the consumer loop")
        return original(*args)

    consumer._store = store_then_crash
    return fired


def test_a_crashed_consumer_loop_comes_back_and_health_says_degraded_meanwhile(stack, tmp_path):
    settings = make_settings(stack, tmp_path, watchlist=("MSFT",), poll_seconds=0.5)
    runtime = Runtime(settings).start()
    try:
        assert runtime.state == "running", runtime.error
        consumer = runtime.pipeline.consumer
        consumer.restart_backoff_s = 4.0  # long enough to look at it while it is down
        wait_for(lambda: consumer.snapshot().get("stored", 0) > 0, 60, what="the pipeline storing")
        assert runtime.degraded() is None
        fired = crash_once(consumer)
        wait_for(lambda: fired, 60, every_s=0.05, what="the injected crash")
        down = wait_for(
            lambda: (s := consumer.snapshot())["restarting_at"] and not s["running"] and s,
            60,
            every_s=0.05,
            what="the consumer down after the crash",
        )
        assert down["crashes"] == 1 and down["lag_total"] is None  # unknown while down, not 0
        crash = down["last_crash"]
        assert crash["error"] == "RuntimeError: injected crash inside the consumer loop"
        assert crash["stage"] == "store" and crash["offset"] >= 0 and crash["partition"] >= 0
        health = runtime.health()
        status = h.consumer(health, [])
        assert status.level == "ERR" and "the consumer crashed at partition" in status.reason, status
        assert "restarting in" in status.reason and "RuntimeError" in status.reason
        assert health["degraded"] and "crashed" in health["degraded"]
        assert runtime.state == "running" and runtime.degraded()
        # it comes back by itself and stores again, the crashed batch included (it was not committed)
        before = consumer.snapshot().get("stored", 0)
        wait_for(lambda: consumer.snapshot()["running"], 60, what="the consumer to restart")
        wait_for(lambda: consumer.snapshot().get("stored", 0) > before, 60, what="storing after the restart")
        # lag is the broker's figure again (every partition, the idle ones included), not a default 0
        wait_for(lambda: consumer.snapshot()["lag_total"] is not None, 60, what="the broker's lag figure")
        assert set(consumer.snapshot()["lag"]) == set(range(settings.partitions))
        after = runtime.health()
        assert h.consumer(after, []).level == "WARN" and "restarted" in after["degraded"]
        assert after["consumer"]["crashes"] == 1
    finally:
        runtime.stop()


def test_the_health_page_and_sidebar_say_degraded_after_a_crash(stack, tmp_path, app_env, monkeypatch):
    configure(stack, tmp_path, app_env, monkeypatch, autostart=True, watchlist=("MSFT",))
    at = app("health", timeout=90).run()
    assert_clean(at)
    from ui.runtime import get_runtime

    runtime = get_runtime()
    consumer = runtime.pipeline.consumer
    assert "degraded" not in at.sidebar.caption[0].value
    consumer.restart_backoff_s = 4.0
    wait_for(lambda: consumer.snapshot().get("stored", 0) > 0, 60, what="the pipeline storing")
    crash_once(consumer)
    wait_for(lambda: consumer.snapshot()["last_crash"], 60, every_s=0.05, what="the injected crash")
    at.run()
    assert_clean(at)
    assert at.sidebar.caption[0].value.startswith("Pipeline 🟠 degraded")
    assert "Pipeline degraded: the consumer" in texts(at)
    assert "pipeline running, degraded" in texts(at)
    table = at.dataframe[0].value.set_index("Component")
    assert table.loc["Consumer", "Status"] in ("🔴 ERR", "🟡 WARN"), table.to_string()
    assert "RuntimeError: injected crash" in table.loc["Consumer", "Why"]
    if table.loc["Consumer", "Status"] == "🔴 ERR":  # the page ran while it was down: lag is unknown
        assert [m.value for m in at.metric if m.label == "Lag (messages)"] == ["unknown"]
    wait_for(lambda: consumer.snapshot()["running"], 60, what="the consumer to restart")
    at.run()
    table = at.dataframe[0].value.set_index("Component")
    assert table.loc["Consumer", "Status"] == "🟡 WARN" and "restarted" in table.loc["Consumer", "Why"]


def test_lag_unknown_is_said_and_never_counted_as_zero():
    snap = {"running": True, "paused": False, "lag_total": None, "lag": {}, "per_second_1m": 0.0}
    status = h.consumer({"state": "running", "consumer": snap}, [], 1000.0)
    assert status.level == "OK" and status.reason.startswith("lag unknown"), status
    history = h.LagHistory()
    history.add(snap, now=1000.0)
    assert history.window(60, now=1000.0) == []
    down = {**snap, "running": False, "degraded": "the consumer crashed at partition 0 offset 7 (store): X"}
    assert h.consumer({"state": "running", "consumer": down}, [], 1000.0).reason == down["degraded"]
