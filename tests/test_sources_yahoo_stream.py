"""The yahoo_stream source against the local fake streamer (and the fake HTTP market for REST):
decoding Yahoo's frames, the whole pipeline to MongoDB, faults, and the watchlist following."""

from __future__ import annotations

import base64
import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from support.base import make_settings
from support.fake_market import FakeMarket
from support.fake_streamer import GARBAGE_KINDS, UNKNOWN_FIELD, FakeStreamer
from support.pipeline import read_topic, wait_for, wait_quiet
from yfinance.pricing_pb2 import PricingData

from pipeline import bus
from pipeline.runtime import Runtime
from pipeline.sources import make_source
from pipeline.sources.yahoo import YahooSource
from pipeline.sources.yahoo_stream import BadFrame, Decoder, YahooStreamSource, market_open_now

SIX = ("AAPL", "MSFT", "GOOG", "AMZN", "NVDA", "META")


def frame(symbol="AAPL", price=189.98, t_ms=None, day_volume=0, hint=2, extra=b"") -> str:
    t_ms = t_ms if t_ms is not None else int(time.time() * 1000)
    data = PricingData(id=symbol, price=price, time=t_ms, day_volume=day_volume, price_hint=hint)
    return json.dumps({"message": base64.b64encode(data.SerializeToString() + extra).decode()})


# -- decoding (no servers) -------------------------------------------------------------------------
def test_a_frame_becomes_a_tick_rounded_to_the_price_hint_with_trade_and_received_time():
    now = datetime.now(UTC)
    t_ms = int(now.timestamp() * 1000) - 250
    wire = float(np.float32(189.98))
    assert wire != 189.98  # the trap: 189.97999572753906
    event = Decoder().decode(frame(price=189.98, t_ms=t_ms, extra=UNKNOWN_FIELD), now)
    assert (event.symbol, event.interval, event.close, event.open) == ("AAPL", "tick", 189.98, 189.98)
    assert event.ts == datetime.fromtimestamp(t_ms / 1000, UTC)  # the provider's trade time
    assert abs((event.fetched_at - now).total_seconds()) < 0.001  # the time it was received
    assert Decoder().decode(frame("EURUSD=X", 1.08347, hint=4), now).close == 1.0835  # 4 decimals


def test_per_tick_volume_is_the_difference_of_cumulative_day_volume_reset_at_session_start():
    d = Decoder()
    day1 = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)  # 10:00 New York
    vols = []
    for i, dv in enumerate((1000, 1500, 1500, 1400, 2000)):  # 1400: a provider glitch, never negative
        t = day1 + timedelta(seconds=i)
        vols.append(
            d.decode(frame(t_ms=int(t.timestamp() * 1000), day_volume=dv), t + timedelta(seconds=1)).volume
        )
    # first frame: joined mid-session, its day so far is not ours; the glitch lowers no baseline, so
    # the ticks add up to the figure's increase (2000 - 1000), nothing counted twice
    assert vols == [0, 500, 0, 0, 500]
    day2 = day1 + timedelta(days=1)
    t2 = int(day2.timestamp() * 1000)
    assert d.decode(frame(t_ms=t2, day_volume=300), day2 + timedelta(seconds=1)).volume == 300


def test_two_frames_of_a_symbol_in_one_millisecond_are_two_ticks_with_their_volume():
    d = Decoder()
    at = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
    t_ms = int(at.timestamp() * 1000)
    got = [
        d.decode(frame(price=p, t_ms=t, day_volume=dv), at + timedelta(seconds=1))
        for p, t, dv in (
            (190.0, t_ms, 1000),
            (190.1, t_ms, 1300),
            (190.2, t_ms, 1500),
            (190.3, t_ms + 10, 1600),
        )
    ]
    stamps = [int(e.ts.timestamp() * 1000) for e in got]
    assert stamps == [t_ms, t_ms + 1, t_ms + 2, t_ms + 10]  # unique at MongoDB's ms resolution, in order
    assert [e.volume for e in got] == [0, 300, 200, 100]  # no volume lost to a duplicate key
    assert d.decode(frame("MSFT", t_ms=t_ms), at).ts == at  # another symbol keeps its own time


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b"\x00binary", "binary frame"),
        ("{nope", "not JSON"),
        (json.dumps({"type": "pricing"}), "no 'message'"),
        (json.dumps({"message": "%%%"}), "not base64"),
        (json.dumps({"message": base64.b64encode(b"\xff\xff\xff").decode()}), "not a PricingData"),
        (json.dumps({"message": base64.b64encode(PricingData(price=1).SerializeToString()).decode()}), "id"),
        (frame(price=0.0), "price 0.0"),
        (frame(t_ms=int((time.time() + 3600) * 1000)), "future"),
    ],
    ids=lambda value: value if isinstance(value, str) and len(value) < 20 else "",
)
def test_every_bad_frame_is_a_bad_frame_with_a_reason(raw, reason):
    with pytest.raises(BadFrame) as caught:
        Decoder().decode(raw, datetime.now(UTC))
    assert reason in caught.value.reason


# -- against the fake streamer, through Kafka into MongoDB -----------------------------------------
@pytest.fixture
def market():
    with FakeMarket() as fake:
        yield fake


@pytest.fixture
def streamer(market):
    with FakeStreamer(market, tick_s=0.25) as fake:
        yield fake


def stream_settings(stack, tmp_path, market, streamer, **kw):
    return make_settings(
        stack,
        tmp_path,
        source="yahoo_stream",
        yahoo_url=market.url,
        yahoo_stream_url=streamer.url,
        watchlist=kw.pop("watchlist", SIX),
        **kw,
    )


def src_health(runtime):
    return runtime.pipeline.producer.snapshot()["sources"]["yahoo_stream"]


def ticks(store, symbol):
    return list(store.prices.find({"symbol": symbol, "interval": "tick"}, {"_id": 0}).sort("ts", 1))


def test_end_to_end_ticks_garbage_and_the_watchlist_following(stack, tmp_path, market, streamer):
    settings = stream_settings(stack, tmp_path, market, streamer)
    runtime = Runtime(settings).start()
    try:
        assert runtime.state == "running", runtime.error
        store = runtime.store
        wait_for(lambda: streamer.subscribed() == set(SIX), 60, what="a subscription to the six symbols")
        charts_before = len(market.chart_requests())
        t0 = time.monotonic()
        wait_for(lambda: all(len(ticks(store, s)) >= 8 for s in SIX), 90, what="ticks of six symbols stored")
        streaming_s = time.monotonic() - t0

        # 50 garbage frames among good ones: each dead-lettered with a reason, ticks keep flowing
        stored_before = store.prices.count_documents({"interval": "tick"})
        streamer.send_garbage(50)
        wait_for(lambda: len(streamer.garbage_sent) == 50, 60, what="50 garbage frames sent")
        wait_for(
            lambda: store.prices.count_documents({"interval": "tick"}) > stored_before + 30,
            60,
            what="good ticks after the garbage",
        )
        health = runtime.pipeline.producer.snapshot()["sources"]["yahoo_stream"]
        assert health["bad_frames"] == 50, health["bad_frame_reasons"]
        dead = wait_for(
            lambda: (lambda r: r if len(r) >= 50 else None)(
                read_topic(settings, settings.topic_dead_letter, 2)
            ),
            60,
            what="50 dead letters",
        )
        headers = [bus.read_headers(r.headers) for r in dead]
        assert len(dead) == 50 and all(
            h["stockmon.stage"] == "stream" and h["stockmon.reason"] for h in headers
        )
        assert len({h["stockmon.reason"].split(":")[0] for h in headers}) >= len(GARBAGE_KINDS) - 1

        # the watchlist: add IBM, remove META; the subscription follows within one sync
        runtime.add_symbol("IBM", "yahoo_stream")
        runtime.watchlist.remove("META")
        wait_for(
            lambda: streamer.subscribed() == set(SIX) - {"META"} | {"IBM"}, 30, what="subscription follows"
        )
        wait_for(lambda: len(ticks(store, "IBM")) >= 3, 60, what="IBM ticks")
        meta_stopped = len(ticks(store, "META"))
        n_ibm = len(ticks(store, "IBM"))
        wait_for(lambda: len(ticks(store, "IBM")) >= n_ibm + 4, 60, what="more IBM ticks")
        assert len(ticks(store, "META")) == meta_stopped  # the removed symbol stopped

        # stored = pushed, rounded to the price hint; volumes sum to the final day volume
        streamer.silent = True
        for s in ("AAPL", "MSFT", "IBM"):
            pushed = streamer.pushed_for(s)
            count = len(pushed)
            try:
                wait_for(lambda s=s, n=count: len(ticks(store, s)) >= n, 30, what=f"every {s} frame stored")
            except AssertionError:
                have = {d["ts"].replace(tzinfo=UTC) for d in ticks(store, s)}
                lost = [p for p in pushed if datetime.fromtimestamp(p.time_ms / 1000, UTC) not in have]
                raise AssertionError(
                    f"{len(lost)} of {count} lost: {lost[:5]}; {src_health(runtime)}"
                ) from None
            stored = ticks(store, s)
            assert len(stored) == len(pushed)
            assert [d["close"] for d in stored] == [round(p.price, p.price_hint) for p in pushed]
            assert sum(d["volume"] for d in stored) == pushed[-1].day_volume
        # steady state: no REST request while streaming (lookups of IBM aside)
        extra = [
            (r.path.rsplit("/", 1)[1], r.params.get("interval"))
            for r in market.chart_requests()[charts_before:]
        ]
        assert extra and set(extra) == {("IBM", "1d")}, extra  # the lookup (and yfinance's time zone probe)
        print(f"\nstreamed {streaming_s:.1f}s with 0 chart requests; health latency {health['latency']}")
    finally:
        runtime.stop()


def test_drop_outage_and_restart_reconnect_resubscribe_and_repair_the_gap(stack, tmp_path, market, streamer):
    settings = stream_settings(stack, tmp_path, market, streamer, watchlist=("AAPL", "MSFT"))
    runtime = Runtime(settings).start()
    try:
        store = runtime.store
        wait_for(lambda: all(len(ticks(store, s)) >= 4 for s in ("AAPL", "MSFT")), 90, what="first ticks")
        charts_before = len(market.chart_requests())
        first = ticks(store, "AAPL")[0]["ts"]
        streamer.drop()  # the socket drops mid-stream, and the server stays away (silent) for 10 s
        streamer.stop()
        down = time.monotonic()
        wait_for(lambda: time.monotonic() - down >= 10, 15, what="10 s outage")  # a condition, not a sleep
        streamer.start()
        src = runtime.pipeline.producer.sources["yahoo_stream"]
        health = wait_for(
            lambda: (lambda h: h if h["gaps_repaired"] >= 2 else None)(src.health()), 60, what="repair"
        )
        assert health["reconnects"] >= 1 and health["connected"]
        assert streamer.subscribed() == {"AAPL", "MSFT"}  # re-subscribed by itself
        seen = market.chart_requests()[charts_before:]
        repairs = [r for r in seen if r.params.get("interval") == "1m"]
        assert sorted(r.path.rsplit("/", 1)[1] for r in repairs) == ["AAPL", "MSFT"]  # one per symbol
        probes = [r for r in seen if r not in repairs]  # yfinance's one-off time-zone probe per symbol
        assert all(r.params.get("range") == "1d" and r.params.get("interval") == "1d" for r in probes), probes
        budget = health["rest"]["budget"]
        assert budget["by_priority"]["repair"] == budget["total"] == len(seen)  # all counted, as repairs
        n = len(ticks(store, "AAPL"))
        wait_for(lambda: len(ticks(store, "AAPL")) >= n + 4, 60, what="ticks after the restart")
        last = ticks(store, "AAPL")[-1]["ts"]

        def minutes():
            docs = list(store.bars.find({"symbol": "AAPL", "interval": "1m"}, {"ts": 1}).sort("ts", 1))
            return [d["ts"] for d in docs]

        want = []
        m = first.replace(second=0, microsecond=0)
        while m <= last:
            want.append(m)
            m += timedelta(minutes=1)
        got = wait_for(
            lambda: (lambda ms: ms if set(want) <= set(ms) else None)(minutes()), 60, what="1m bars"
        )
        inside = [t for t in got if want[0] <= t <= want[-1]]
        assert inside == want and len(set(got)) == len(got)  # none missing, none doubled

        # pausing the pipeline closes the stream; resuming opens it again
        runtime.pause()
        wait_for(lambda: not streamer.subscribed(), 30, what="the stream closed on pause")
        paused_at = wait_quiet(lambda: len(ticks(store, "AAPL")), quiet_s=1.5)
        assert streamer.subscribed() == set()
        runtime.resume()
        wait_for(lambda: len(ticks(store, "AAPL")) > paused_at + 2, 60, what="ticks after resume")
    finally:
        runtime.stop()


def test_a_silent_connection_while_the_market_is_open_is_a_stall_and_reconnects(market, streamer, tmp_path):
    rest = YahooSource(tmp_path, timeout=5, base_url=market.url)
    src = YahooStreamSource(rest, streamer.url, stall_s=1.0, market_open=lambda symbols: True)
    got: list = []
    src.attach(lambda events: (got.extend(events), len(events))[1], lambda raw, reason: None)
    try:
        src.fetch(["AAPL"])
        wait_for(lambda: len(got) >= 3, 30, what="ticks")
        accepted = streamer.connections_accepted
        streamer.silent = True
        wait_for(lambda: streamer.connections_accepted > accepted, 30, what="a reconnect after the stall")
        assert "no message" in (src.health()["last_error"] or "")
        streamer.silent = False
        n = len(got)
        wait_for(lambda: len(got) > n + 2, 30, what="ticks after the stall")
    finally:
        src.stop()


@pytest.mark.parametrize(
    "symbols, at, is_open",
    [
        (["AAPL"], datetime(2026, 11, 25, 15, 0, tzinfo=UTC), True),  # Wednesday 10:00 New York
        (["AAPL"], datetime(2026, 11, 26, 15, 0, tzinfo=UTC), False),  # Thanksgiving: NYSE holiday
        (["AAPL"], datetime(2026, 11, 27, 19, 0, tzinfo=UTC), False),  # 14:00, after the 13:00 early close
        (["AAPL"], datetime(2026, 11, 25, 13, 0, tzinfo=UTC), False),  # 08:00: pre-market is no stall
        (["7203.T"], datetime(2026, 11, 25, 1, 0, tzinfo=UTC), True),  # 10:00 Tokyo
        (["7203.T"], datetime(2026, 11, 25, 3, 0, tzinfo=UTC), False),  # 12:00 Tokyo: lunch break
        (
            ["7203.T"],
            datetime(2026, 11, 23, 1, 0, tzinfo=UTC),
            False,
        ),  # Labour Thanksgiving Day: Tokyo closed
        (["BTC-USD"], datetime(2026, 11, 28, 12, 0, tzinfo=UTC), True),  # Saturday: crypto trades 24/7
        (["EURUSD=X"], datetime(2026, 11, 28, 12, 0, tzinfo=UTC), False),  # Saturday: FX 24/5 is shut
        (["EURUSD=X"], datetime(2026, 11, 29, 23, 0, tzinfo=UTC), True),  # Sunday 18:00 New York: open
        (["AAPL", "BTC-USD"], datetime(2026, 11, 26, 15, 0, tzinfo=UTC), True),  # any open market counts
    ],
)
def test_the_stall_clock_runs_only_while_a_subscribed_market_is_open(symbols, at, is_open):
    assert market_open_now(symbols, at) is is_open


def test_silence_while_the_market_is_closed_is_no_stall(market, streamer, tmp_path):
    """Silence is counted only over the listener's read slices in which a market was open: slices while
    closed add nothing, and a stall after opening needs ``stall_s`` of open silence of its own."""
    rest = YahooSource(tmp_path, timeout=5, base_url=market.url)
    state = {"open": False, "closed_calls": 0, "open_calls": 0}

    def hook(symbols):
        state["open_calls" if state["open"] else "closed_calls"] += 1
        return state["open"]

    src = YahooStreamSource(rest, streamer.url, stall_s=1.0, market_open=hook)
    got: list = []
    src.attach(lambda events: (got.extend(events), len(events))[1], lambda raw, reason: None)
    try:
        src.fetch(["AAPL"])
        wait_for(lambda: len(got) >= 2, 30, what="ticks")
        accepted = streamer.connections_accepted
        streamer.silent = True
        silent_since = time.monotonic()
        wait_for(lambda: state["closed_calls"] >= 12, 30, what="3 s of silent read slices, market closed")
        assert streamer.connections_accepted == accepted and src.health()["reconnects"] == 0
        state["open"] = True
        wait_for(lambda: streamer.connections_accepted > accepted, 30, what="a stall once the market is open")
        silent_s = time.monotonic() - silent_since
        error = src.health()["last_error"] or ""
        assert "while the market is open" in error, error
        counted = float(error.split("no message for ")[1].split("s ")[0])
        print(f"\nsilent {silent_s:.1f} s in all, {counted} s of it counted while open")
        assert 1.0 <= counted < silent_s - 2.0  # stall_s of open silence; the >= 3 s while closed not counted
    finally:
        src.stop()


def test_make_source_builds_the_stream_with_the_settings_address(stack, tmp_path, market, streamer):
    settings = stream_settings(stack, tmp_path, market, streamer, yahoo_per_minute=7)
    src = make_source("yahoo_stream", settings)
    assert isinstance(src, YahooStreamSource) and src.url == streamer.url
    assert src.health()["rest"]["budget"]["caps"][0]["limit"] == 7
    assert Counter(src.health()["rest"]["budget"]["by_priority"].values())[0] == 3  # nothing used yet


def test_yfinance_as_the_chosen_source_streams_by_default(stack, tmp_path, market, streamer):
    """Issue 12: the stream is the default live path whenever yfinance is the chosen source; the
    chart API is not polled (here every 0.5 s if it were) while the stream covers the symbols."""
    two = ("AAPL", "MSFT")
    settings = make_settings(
        stack,
        tmp_path,
        source="yfinance",
        yahoo_url=market.url,
        yahoo_stream_url=streamer.url,
        watchlist=two,
    )
    assert settings.yahoo_live == "stream"
    runtime = Runtime(settings).start()
    try:
        assert runtime.state == "running", runtime.error
        store = runtime.store
        wait_for(lambda: streamer.subscribed() == set(two), 60, what="a subscription to the watchlist")
        wait_for(lambda: all(len(ticks(store, s)) >= 3 for s in two), 60, what="streamed ticks stored")
        charts = len(market.chart_requests())
        jobs = runtime.pipeline.producer.snapshot()["jobs"]["yfinance"]["runs"]
        n = len(ticks(store, "AAPL"))
        wait_for(lambda: len(ticks(store, "AAPL")) >= n + 8, 60, what="more streamed ticks")

        def job_ran_twice():  # the job ran (it only set subscriptions) ...
            return runtime.pipeline.producer.snapshot()["jobs"]["yfinance"]["runs"] >= jobs + 2

        wait_for(job_ran_twice, 60, what="two more runs of the live job")
        snapshot = runtime.pipeline.producer.snapshot()
        assert len(market.chart_requests()) == charts  # ... and asked the chart API nothing
        health = snapshot["sources"]["yfinance"]
        assert health["live"] == "stream" and health["connected"] and health["published"] >= n + 8
        assert {t["source"] for t in ticks(store, "AAPL")} == {"yahoo_stream"}
    finally:
        runtime.stop()


@pytest.mark.starts_server  # its own fake market
def test_a_stream_that_never_connects_falls_back_to_budgeted_rest_polling(tmp_path):
    """Issue 19, kind 5: a network that blocks WebSockets gave the default stream mode no live prices
    at all. After ``stall_s`` without a connection the wanted symbols are polled by Yahoo's quote API
    (one request for all of them) at the pace the request budget sustains, and health says so."""
    import socket

    from pipeline.sources.budget import RequestBudget
    from pipeline.sources.yahoo_stream import FALLBACK_MIN_EVERY_S

    with socket.socket() as s:  # a port nobody listens on: every connection attempt is refused
        s.bind(("127.0.0.1", 0))
        dead = f"ws://127.0.0.1:{s.getsockname()[1]}/"
    with FakeMarket() as fake:
        rest = YahooSource(
            tmp_path / "yf", timeout=10.0, base_url=fake.url, budget=RequestBudget(((60, 60.0),))
        )
        src = YahooStreamSource(rest, dead, stall_s=1.0, market_open=lambda symbols: True)
        src.attach(lambda events: len(events), lambda raw, reason: None)
        try:
            assert src.fetch(["AAPL", "MSFT"]).events == []  # not down for stall_s yet
            assert src.health()["fallback"]["polling"] is False

            def polled():
                result = src.fetch(["AAPL", "MSFT"])
                return result.events and result

            result = wait_for(polled, 30, every_s=0.2, what="the REST fallback")
            ticks = {e.symbol for e in result.events if e.interval == "tick"}
            assert ticks == {"AAPL", "MSFT"} and {e.source for e in result.events} == {"yfinance"}
            health = src.health()
            assert health["connected"] is False and health["fallback"]["polling"] is True
            assert health["fallback"]["polls"] == 1 and health["fallback"]["every_s"] == max(
                FALLBACK_MIN_EVERY_S, 2.0
            )
            # one batched quote request for both symbols, no chart request
            assert (fake.count("/v7/finance/quote"), len(fake.chart_requests())) == (1, 0)
            assert src.fetch(["AAPL", "MSFT"]).events == []  # the next poll waits for its turn
            assert fake.count("/v7/finance/quote") == 1
        finally:
            src.stop()
