"""The producer side: delivery failures are kept and retried, the watchlist drives the running jobs,
a new symbol is checked with its source and backfilled through Kafka with progress in health."""

import time

import pytest
from support.base import drop_database, make_settings
from support.fake_market import FakeMarket
from support.pipeline import make_events, read_topic, wait_for, wait_quiet

from pipeline import bus
from pipeline.embedded.stack import KAFKA, LocalStack
from pipeline.publisher import Publisher
from pipeline.runtime import Runtime
from pipeline.watchlist import WatchlistError


@pytest.mark.starts_server  # a LocalStack of its own, started inline
def test_sends_that_fail_while_the_broker_is_down_are_kept_and_delivered_later(tmp_path):
    stack = LocalStack(tmp_path / "s", timeout=60).start()
    try:
        settings = make_settings(stack, tmp_path)
        bus.create_topics(settings.kafka_bootstrap_servers, settings)
        publisher = Publisher(
            bus.producer(
                settings.kafka_bootstrap_servers,
                settings,
                request_timeout_ms=2000,
                max_block_ms=2000,
                retries=1,
            ),
            settings.topic_prices,
        )
        acked: list[dict[int, int]] = []
        publisher.on_acked = acked.append  # the app wires its consumer's wake here
        assert publisher.publish(make_events(10)) == 10
        # a fresh topic: the offset after each partition's last record is its record count
        assert len(acked) == 1 and sum(acked[0].values()) == 10
        stack.stop_server(KAFKA)
        events = make_events(25, symbols=("IBM",))
        t0 = time.monotonic()
        assert publisher.publish(events, timeout_s=3) == 0
        print(f"failed publish took {time.monotonic() - t0:.1f}s")
        snap = publisher.tally.snapshot()
        assert len(publisher.pending) == 25 and snap["counts"]["send_failed"] == 25
        assert "send failed" in snap["recent"][-1]["reason"]
        stack.restart_server(KAFKA)
        t0 = time.monotonic()
        delivered = 0
        deadline = time.monotonic() + 60
        while delivered < 25 and time.monotonic() < deadline:  # the next runs retry what was kept
            delivered += publisher.publish([], timeout_s=5)
        assert delivered == 25 and not publisher.pending
        assert len(acked) >= 2  # the redelivery woke the consumer too
        print(f"redelivered {time.monotonic() - t0:.1f}s after the broker came back")
        records = read_topic(settings, settings.topic_prices)
        msft = [r for r in records if r.key == b"IBM"]
        assert len(msft) >= 25  # at-least-once: nothing lost (a timed-out send may have landed too)
        assert {r.value for r in msft} == {e.to_json_bytes() for e in events}
        publisher.kafka.close()
    finally:
        stack.stop()


@pytest.fixture
def running(stack, tmp_path):
    settings = make_settings(
        stack, tmp_path, watchlist=("AAPL",), poll_seconds=0.3, backfill_days_1m=1, backfill_days_daily=10
    )
    runtime = Runtime(settings).start()
    assert runtime.state == "running", runtime.error
    yield runtime
    drop_database(runtime.store.client, settings.db)
    runtime.stop()


def test_watchlist_changes_reach_the_running_producer(running):
    store = running.store
    wait_for(
        lambda: store.prices.count_documents({"symbol": "AAPL", "interval": "tick"}) > 3,
        60,
        what="AAPL ticks",
    )
    entry = running.add_symbol("vod.l", "simulated")
    assert (entry.symbol, entry.exchange, entry.currency) == ("VOD.L", "London Stock Exchange", "GBp")
    # backfill through Kafka, progress visible in health
    wait_for(
        # "backfills" is in the snapshot only when MongoDB answered its reads (pipeline.health.snapshot.Health)
        lambda: any(
            b["symbol"] == "VOD.L" and b["status"] == "done" for b in running.health().get("backfills", [])
        ),
        60,
        what="VOD.L backfill",
    )
    backfill = wait_for(
        lambda: next((b for b in running.health().get("backfills", []) if b["symbol"] == "VOD.L"), None),
        60,
        what="VOD.L's backfill record in the health snapshot",
    )
    assert backfill["done"] == backfill["total"] == 2 and backfill["published"] > 1000
    # "done" is published to Kafka; the consumer stores it after that
    wait_for(
        lambda: store.prices.count_documents({"symbol": "VOD.L", "interval": "1d"}) >= 5,
        60,
        what="VOD.L daily bars stored",
    )
    wait_for(
        lambda: store.prices.count_documents({"symbol": "VOD.L", "interval": "tick"}) > 3,
        60,
        what="VOD.L ticks",
    )
    # disabling stops the fetches without a restart
    running.watchlist.update("VOD.L", enabled=False)
    before = wait_quiet(lambda: store.prices.count_documents({"symbol": "VOD.L", "interval": "tick"}))
    time.sleep(2.0)  # watch for ticks that should not come (AAPL gets ~6 in this time)
    assert store.prices.count_documents({"symbol": "VOD.L", "interval": "tick"}) == before
    assert store.prices.count_documents({"symbol": "AAPL", "interval": "tick"}) > 10
    # pause stops everything, resume starts it again
    running.pause()
    paused_at = wait_quiet(lambda: store.prices.count_documents({"symbol": "AAPL"}))
    time.sleep(1.5)  # watch for prices that should not come
    assert store.prices.count_documents({"symbol": "AAPL"}) == paused_at
    running.resume()
    wait_for(lambda: store.prices.count_documents({"symbol": "AAPL"}) > paused_at, 60, what="resume")


def test_watchlist_refuses_with_sentences(running):
    with pytest.raises(WatchlistError, match="is not a valid ticker"):
        running.add_symbol("not a ticker", "simulated")
    with pytest.raises(WatchlistError, match="AAPL is already on the watchlist"):
        running.add_symbol("aapl", "simulated")
    with pytest.raises(WatchlistError, match="unknown source 'bloomberg'"):
        running.add_symbol("IBM", "bloomberg")


def test_unknown_ticker_is_refused_by_its_source(stack, tmp_path):
    with FakeMarket() as market:
        settings = make_settings(stack, tmp_path, yahoo_url=market.url, autostart=False)
        runtime = Runtime(settings).start()
        try:
            market.set_yahoo("unknown", "NOPE")
            with pytest.raises(WatchlistError, match="Yahoo Finance does not know NOPE"):
                runtime.add_symbol("NOPE", "yfinance")
            entry = runtime.add_symbol("7203.T", "yfinance")
            assert entry.currency == "JPY" and entry.timezone == "Asia/Tokyo"
            assert [e.symbol for e in runtime.watchlist.entries()] == ["7203.T"]
        finally:
            drop_database(runtime.store.client, settings.db)
            runtime.stop()


def test_produce_command_runs_the_jobs_as_a_separate_process(settings, store, topics):
    import os
    import signal
    import subprocess
    import sys

    from support.base import ROOT, settings_env

    from pipeline.watchlist import Watchlist

    Watchlist(store.watchlist, lookup=None).seed(["NVDA", "^GSPC"], "simulated")
    env = {**os.environ, **settings_env(settings)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "produce"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def published():
            return sum(bus.end_offsets(topics, settings.topic_prices).values())

        wait_for(lambda: published() >= 12, 60, what="the producer process to publish")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    keys = {r.key for r in read_topic(settings, settings.topic_prices)}
    assert keys == {b"NVDA", b"^GSPC"}
