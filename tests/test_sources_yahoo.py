"""The yfinance source against the fake Yahoo server: real shapes, every failure mode a reason."""

from __future__ import annotations

import math
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from support.fake_market import FakeMarket
from support.pipeline import wait_for
from yfinance.data import YfData

from pipeline.config import Settings
from pipeline.models import utcnow, validate
from pipeline.sources import make_source
from pipeline.sources.base import SourceError, UnknownSymbol
from pipeline.sources.yahoo import YahooSource

TIMEOUT = 30.0  # a ceiling for the fake server's answers: a 7-day 1m chart is 10,000 rows for yfinance to parse, which took over 10 s on a loaded machine
HANG_TIMEOUT = 3.0  # what the hang tests wait for, per call (the fake server never answers then)
NO_DATA = "No data found, symbol may be delisted"


@pytest.fixture(scope="module")
def server():
    with FakeMarket(hang_seconds=20) as fake:
        yield fake


@pytest.fixture
def fake(server):
    server.set_yahoo("normal")
    server.release_hanging()
    server.clear()
    yield server
    server.set_yahoo("normal")
    server.release_hanging()


@pytest.fixture
def source(fake, tmp_path):
    return YahooSource(tmp_path / "yf-cache", timeout=TIMEOUT, base_url=fake.url, backoff_base=0.4)


def minutes_into_local_day(t: datetime, tz: str) -> int:
    """1m bars from local midnight up to and including the minute of ``t``, in zone ``tz``."""
    local = t.astimezone(ZoneInfo(tz))
    return local.hour * 60 + local.minute + 1


def by(result, symbol, interval):
    return [e for e in result.events if e.symbol == symbol and e.interval == interval]


def test_fetch_gives_recent_1m_bars_and_a_tick_with_the_exchange_from_the_chart_meta(source, fake, tmp_path):
    before = utcnow()
    result = source.fetch(["AAPL", "7203.T", "VOD.L"])
    assert result.errors == {}
    now = utcnow()
    for symbol, currency, tz, exchange in (
        ("AAPL", "USD", "America/New_York", "NasdaqGS"),
        ("7203.T", "JPY", "Asia/Tokyo", "Tokyo"),
        ("VOD.L", "GBp", "Europe/London", "LSE"),
    ):
        bars, ticks = by(result, symbol, "1m"), by(result, symbol, "tick")
        # period=1d is the exchange's day so far: the fake trades around the clock, so in the first
        # minutes after local midnight there are fewer than five bars (the still-forming one counts)
        assert len(ticks) == 1
        assert len(bars) in {min(5, minutes_into_local_day(t, tz)) for t in (before, now)}
        assert [b.ts for b in bars] == sorted(b.ts for b in bars)
        assert all(b.ts.second == 0 and b.ts.microsecond == 0 for b in bars)
        assert now - bars[-1].ts < timedelta(minutes=2)  # the still-forming minute is included
        assert ticks[0].close == bars[-1].close  # Yahoo's live row was merged into the last bar
        for event in bars + ticks:
            validate(event)
            assert (event.currency, event.timezone, event.exchange) == (currency, tz, exchange)
            assert event.source == "yfinance"
    hosts = {r.host for r in fake.requests}
    assert {"fc.yahoo.com", "query2.finance.yahoo.com"} <= hosts  # every Yahoo host came here
    assert fake.count("/v8/finance/chart/AAPL", interval="1m", range="1d") == 1
    assert (tmp_path / "yf-cache" / "tkr-tz.db").exists()  # yfinance's cache lives under cache_dir


def test_unknown_symbol_is_a_per_symbol_reason_and_lookup_says_so(source):
    result = source.fetch(["AAPL", "NOPE"])
    assert result.errors == {"NOPE": f"Yahoo Finance does not know NOPE: {NO_DATA}"}
    assert len(by(result, "AAPL", "1m")) == 5
    with pytest.raises(UnknownSymbol, match=f"Yahoo Finance does not know NOPE: {NO_DATA}"):
        source.lookup("NOPE")
    info = source.lookup("aapl")
    assert (info.symbol, info.name, info.exchange, info.currency, info.timezone) == (
        "AAPL",
        "Apple Inc.",
        "NasdaqGS",
        "USD",
        "America/New_York",
    )
    with pytest.raises(UnknownSymbol):
        source.lookup("not a ticker")


def test_empty_chart_is_a_reason(source, fake):
    fake.set_yahoo("empty")
    result = source.fetch(["AAPL", "MSFT"])
    assert result.events == []
    assert result.errors == {s: f"Yahoo returned no bars for {s} (empty chart)" for s in ("AAPL", "MSFT")}


def test_all_nan_rows_are_a_reason_and_some_nan_rows_are_dropped(source, fake):
    fake.set_yahoo("nan", "MSFT")
    result = source.fetch(["AAPL", "MSFT"])
    assert "all without prices (NaN)" in result.errors["MSFT"] and "AAPL" not in result.errors
    fake.set_yahoo("some_nan")
    result = source.fetch(["AAPL"])
    assert result.errors == {} and len(by(result, "AAPL", "1m")) >= 3
    assert all(math.isfinite(e.close) for e in result.events)
    assert source.health()["nan_rows_dropped"] > 0


def test_http_429_backs_off_exponentially_without_requests_in_between(source, fake):
    fake.set_yahoo("rate_limit")
    result = source.fetch(["AAPL", "MSFT"])
    assert set(result.errors) == {"AAPL", "MSFT"} and not result.events
    assert result.errors["AAPL"].startswith("rate limited by Yahoo (HTTP 429), retry in ")
    health = source.health()
    assert health["consecutive_throttles"] == 1 and health["backoff_until"] is not None
    sent = len(fake.requests)
    again = source.fetch(["AAPL", "MSFT"])
    assert again.errors["AAPL"].startswith("rate limited by Yahoo, retry in ")
    with pytest.raises(SourceError, match="rate limited"):
        source.lookup("AAPL")
    assert len(fake.requests) == sent  # nothing was sent during the backoff
    time.sleep(source.health()["backoff_seconds_left"] + 0.05)
    source.fetch(["AAPL"])  # still 429: the second backoff is longer
    assert source.health()["consecutive_throttles"] == 2
    assert source.health()["backoff_seconds_left"] > 0.4 * 2 * 0.75 - 0.1
    fake.set_yahoo("normal")
    time.sleep(source.health()["backoff_seconds_left"] + 0.05)
    recovered = source.fetch(["AAPL"])
    assert recovered.errors == {} and recovered.events
    assert source.health()["consecutive_throttles"] == 0 and source.health()["backoff_until"] is None


def test_a_429_costs_one_request_and_never_becomes_the_crumb(source, fake):
    """Issue 19, kind 6. yfinance 1.7 alone: one refused call sent 9 requests (cookie, crumb, chart,
    then the consent page, cookie, crumb and chart again) and kept "Edge: Too Many Requests" as its
    crumb, sent with every later request for the life of the process."""
    fake.set_yahoo("rate_limit")
    fake.clear()
    refused = source.fetch(["AAPL"])
    assert refused.errors["AAPL"].startswith("rate limited by Yahoo (HTTP 429)")
    assert [r.path for r in fake.requests] == ["/"]  # the first refusal, and nothing after it
    assert source.health()["requests_withheld"] > 0 and source.health()["crumb_resets"] == 1
    assert YfData()._crumb is None  # not the refusal's body
    fake.set_yahoo("normal")
    fake.clear()
    wait_for(lambda: source._backoff.left() <= 0, 10, what="the backoff to end")
    recovered = source.fetch(["AAPL"])
    assert recovered.errors == {} and recovered.events
    assert fake.count("/v1/test/getcrumb") == 1  # a fresh crumb, fetched once
    assert {r.params.get("crumb") for r in fake.chart_requests("AAPL")} == {"fakeCrumb/123"}
    fake.set_yahoo("rate_limit", "MSFT")  # a refusal of one symbol's chart in a call for two
    fake.clear()
    wait_for(lambda: source._backoff.left() <= 0, 10, what="the backoff to end")
    both = source.fetch(["AAPL", "MSFT"])
    assert both.errors["MSFT"].startswith("rate limited by Yahoo (HTTP 429)")
    refusals = [r for r in fake.requests if r.path.startswith("/v8/finance/chart/MSFT")]
    assert len(refusals) == 1, [r.path for r in fake.requests]


def test_a_hanging_server_costs_one_timeout_not_more(fake, tmp_path):
    source = YahooSource(tmp_path / "yf-cache", timeout=HANG_TIMEOUT, base_url=fake.url, backoff_base=0.4)
    fake.set_yahoo("hang")
    started = time.monotonic()
    result = source.fetch(["AAPL", "MSFT", "GOOG"])
    assert time.monotonic() - started < HANG_TIMEOUT + 2
    assert result.errors == {
        s: f"no answer from Yahoo within {HANG_TIMEOUT:g}s" for s in ("AAPL", "MSFT", "GOOG")
    }
    started = time.monotonic()
    backfill = source.backfill("AAPL", utcnow() - timedelta(days=20), utcnow(), "1m")
    assert time.monotonic() - started < HANG_TIMEOUT + 2 and "no answer" in backfill.errors["AAPL"]
    started = time.monotonic()
    with pytest.raises(SourceError, match="no answer"):
        source.lookup("AAPL")
    assert time.monotonic() - started < HANG_TIMEOUT + 2


def test_a_hanging_symbol_does_not_take_the_others_down(fake, tmp_path):
    source = YahooSource(tmp_path / "yf-cache", timeout=HANG_TIMEOUT, base_url=fake.url, backoff_base=0.4)
    fake.set_yahoo("hang", "MSFT")
    result = source.fetch(["AAPL", "MSFT"])
    assert "no answer" in result.errors["MSFT"] and len(by(result, "AAPL", "1m")) == 5


def test_backfill_1m_respects_yahoos_7_and_30_day_limits(source, fake):
    now = utcnow()
    result = source.backfill("AAPL", now - timedelta(days=20), now, "1m")
    assert result.errors == {}
    main = [r for r in fake.chart_requests("AAPL") if r.params.get("interval") == "1m"]
    assert len(main) == 3  # 7 + 7 + 6 days
    assert all(int(r.params["period2"]) - int(r.params["period1"]) <= 7 * 86400 for r in main)
    assert abs(len(result.events) - 20 * 1440) <= 3
    stamps = [e.ts for e in result.events]
    assert stamps == sorted(set(stamps))
    fake.clear()
    clipped = source.backfill("AAPL", now - timedelta(days=45), now, "1m")
    assert clipped.errors["AAPL"].startswith("Yahoo keeps 1m bars for the last 30 days only")
    assert len(fake.chart_requests("AAPL")) == 5 and len(clipped.events) > 29 * 1440


def test_backfill_daily_is_one_request_with_local_midnight_bars(source, fake):
    now = utcnow()
    result = source.backfill("VOD.L", now - timedelta(days=400), now, "1d")
    assert result.errors == {}
    assert (
        len(
            [
                r
                for r in fake.chart_requests("VOD.L")
                if r.params.get("interval") == "1d" and "period1" in r.params
            ]
        )
        == 1
    )
    assert 270 <= len(result.events) <= 290
    for bar in result.events:
        local = bar.ts.astimezone(ZoneInfo("Europe/London"))
        assert (local.hour, local.minute) == (0, 0) and local.weekday() < 5
        assert bar.currency == "GBp"
    assert "use one of" in source.backfill("AAPL", now - timedelta(days=1), now, "7m").errors["AAPL"]
    assert source.backfill("NOPE", now - timedelta(days=5), now, "1d").errors == {
        "NOPE": f"Yahoo Finance does not know NOPE: {NO_DATA}"
    }


def test_two_instances_with_different_servers_do_not_mix(source, fake, tmp_path):
    with FakeMarket() as other:
        second = YahooSource(tmp_path / "other-cache", timeout=TIMEOUT, base_url=other.url)
        for _ in range(2):
            assert not source.fetch(["AAPL"]).errors
            assert not second.fetch(["MSFT"]).errors
        assert {r.path.rsplit("/", 1)[-1] for r in fake.chart_requests()} == {"AAPL"}
        assert {r.path.rsplit("/", 1)[-1] for r in other.chart_requests()} == {"MSFT"}


def test_make_source_builds_it_from_settings(fake, tmp_path):
    """Polling is what ``STOCKMON_YAHOO_LIVE=poll`` asks for; by default yfinance's live prices stream."""
    values = dict(source="yfinance", data_dir=tmp_path, yahoo_url=fake.url, http_timeout=TIMEOUT)
    streamed = make_source("yfinance", Settings.load(env={}, secrets_paths=[], **values))
    assert type(streamed).__name__ == "YahooStreamSource" and streamed.name == "yfinance"
    settings = Settings.load(env={}, secrets_paths=[], yahoo_live="poll", **values)
    source = make_source("yfinance", settings)
    assert isinstance(source, YahooSource) and source.cache_dir == tmp_path / "yfinance-cache"
    assert source.fetch(["AAPL"]).errors == {}
    assert source.health()["base_url"] == fake.url


@pytest.mark.starts_server  # a local fake server, started inline
def test_an_unreachable_server_is_a_reason(tmp_path):
    with FakeMarket() as gone:
        url = gone.url
    source = YahooSource(tmp_path / "c", timeout=TIMEOUT, base_url=url)
    started = time.monotonic()
    reason = source.fetch(["AAPL"]).errors["AAPL"]
    assert (
        reason.startswith("cannot reach Yahoo (ConnectionError)") and time.monotonic() - started < TIMEOUT + 2
    )


@pytest.mark.starts_server  # a local fake server, started inline
def test_a_quote_is_stamped_with_yahoos_market_time_never_the_fetch_time(tmp_path):
    """Issue 9 ("prices carry their own age"): the tick's ``ts`` is ``regularMarketTime``, so a quote
    from a market that has not traded for two days is two days old, whenever it was fetched."""
    then = time.time() - 2 * 86400
    with FakeMarket(now=lambda: then) as old:
        source = YahooSource(tmp_path / "yf-cache", timeout=TIMEOUT, base_url=old.url)
        result = source.fetch(["AAPL"])
    ticks = by(result, "AAPL", "tick")
    assert len(ticks) == 1, result.errors
    tick = ticks[0]
    assert tick.ts == datetime.fromtimestamp(int(then), UTC)
    assert tick.fetched_at - tick.ts > timedelta(days=1, hours=23)


# -- batched quotes (STOCKMON_YAHOO_LIVE=poll, and the streamer's fallback) ---------------------------


@pytest.fixture
def quoting(fake, tmp_path):
    return YahooSource(
        tmp_path / "yf-cache", timeout=TIMEOUT, base_url=fake.url, backoff_base=0.4, live="quote"
    )


def test_fifty_symbols_cost_one_quote_request_and_each_gets_a_tick_at_yahoos_market_time(quoting, fake):
    """Issue 19, kind 5: polling sent one chart request per symbol (1,500 an hour for 6 symbols at
    the default poll). Yahoo's quote API serves many symbols per request: 50 cost one."""
    symbols = [s for s in fake.instruments if s != "BTC-USD"]
    fake.instruments.update(  # 50 listed symbols in all (the fake's own plus made-up ones)
        {f"T{i}": replace(fake.instruments["AAPL"], symbol=f"T{i}") for i in range(50 - len(symbols))}
    )
    try:
        wanted = [s for s in fake.instruments if s != "BTC-USD"][:50]
        before = time.time()
        result = quoting.fetch(wanted)
        after = time.time()
        assert result.errors == {}
        assert fake.count("/v7/finance/quote") == 1 and fake.chart_requests() == []
        quote = fake.requests[-1]
        assert quote.params["symbols"].split(",") == wanted and quote.params["crumb"] == "fakeCrumb/123"
        ticks = {e.symbol: e for e in result.events}
        assert set(ticks) == set(wanted) and {e.interval for e in result.events} == {"tick"}
        toyota = ticks["7203.T"]
        assert (toyota.currency, toyota.timezone, toyota.exchange) == ("JPY", "Asia/Tokyo", "Tokyo")
        assert (
            int(before) <= toyota.ts.timestamp() <= after and toyota.ts.microsecond == 0
        )  # regularMarketTime
        assert ticks["VOD.L"].currency == "GBp"
        assert all(e.volume == 0 for e in result.events)  # first figure of the session: not ours
        again = quoting.fetch(wanted)  # ticks only for quotes whose market time moved on
        assert fake.count("/v7/finance/quote") == 2 and again.errors == {}
    finally:
        for i in range(60):
            fake.instruments.pop(f"T{i}", None)


@pytest.mark.starts_server  # a fake market of its own, on a hand-moved clock
def test_quote_volume_is_the_increase_of_the_session_figure_and_extended_hours_are_their_own_tick(
    tmp_path,
):
    """The fake's clock is moved by hand from a fixed past midday (New York 10:00 on a Friday, so
    no tick is in the future and no session starts meanwhile): a tick's volume is exactly the
    increase of ``regularMarketVolume`` between polls; a poll that finds the same time and figure
    gives no tick, the same time with a higher figure a tick 1 ms later (the closing auction)."""
    clock = [datetime(2026, 11, 20, 15, 0, tzinfo=UTC).timestamp()]
    with FakeMarket(now=lambda: clock[0]) as fake:
        quoting = YahooSource(tmp_path / "yf", timeout=TIMEOUT, base_url=fake.url, live="quote")

        def figure() -> int:
            return json_body(fake._quotes({"symbols": "AAPL"}))["quoteResponse"]["result"][0][
                "regularMarketVolume"
            ]

        first = quoting.fetch(["AAPL"])
        assert [e.volume for e in first.events] == [0.0]  # joined mid-session: not ours
        before = figure()
        clock[0] += 120
        (tick,) = quoting.fetch(["AAPL"]).events
        assert figure() > before and tick.volume == figure() - before
        assert tick.ts.timestamp() == int(clock[0])  # Yahoo's regularMarketTime, not the fetch time
        again = quoting.fetch(["AAPL"])  # the clock did not move: nothing new traded
        assert again.events == [] and again.errors == {}
        fake.volume_bonus["AAPL"] = 5000  # the same market time, a higher figure
        (auction,) = quoting.fetch(["AAPL"]).events
        assert auction.ts == tick.ts + timedelta(milliseconds=1) and auction.volume == 5000
        fake.set_market_state("AAPL", "POST")
        clock[0] += 30
        regular, extended = sorted(quoting.fetch(["AAPL"]).events, key=lambda e: e.ts)
        assert extended.ts > regular.ts and extended.close == pytest.approx(regular.close * 1.01, abs=0.011)
        assert extended.volume == 0  # Yahoo's quote has no post-market volume


@pytest.mark.starts_server
def test_a_crypto_quotes_rolling_figure_gives_only_its_increase(tmp_path):
    clock = [datetime(2026, 11, 20, 23, 59, 30, tzinfo=UTC).timestamp()]
    with FakeMarket(now=lambda: clock[0]) as fake:
        quoting = YahooSource(tmp_path / "yf", timeout=TIMEOUT, base_url=fake.url, live="quote")
        fake.volume_bonus["BTC-USD"] = 88_700_000_000  # a rolling 24-hour figure, in USD
        assert [e.volume for e in quoting.fetch(["BTC-USD"]).events] == [0.0]
        clock[0] += 40  # past 00:00 UTC: no session start for a rolling figure
        fake.volume_bonus["BTC-USD"] += 1_000_000
        (tick,) = quoting.fetch(["BTC-USD"]).events
        assert 1_000_000 - 1_000 <= tick.volume <= 1_000_000 + 1_000  # the increase, not the figure


def test_an_unknown_symbol_in_a_batch_is_its_own_reason_and_the_others_are_quoted(quoting, fake):
    result = quoting.fetch(["AAPL", "NOPE", "MSFT"])
    assert {e.symbol for e in result.events} == {"AAPL", "MSFT"}
    assert result.errors == {"NOPE": "Yahoo Finance does not know NOPE: not in its quote answer"}
    assert fake.count("/v7/finance/quote") == 1


def test_a_429_on_the_quote_api_costs_one_request_and_backs_off(quoting, fake):
    fake.set_yahoo("rate_limit", "AAPL")
    fake.clear()
    refused = quoting.fetch(["AAPL", "MSFT"])
    assert not refused.events and refused.errors["MSFT"].startswith("rate limited by Yahoo (HTTP 429)")
    quotes_sent = fake.count("/v7/finance/quote")
    assert quotes_sent == 1 and quoting.health()["crumb_resets"] == 1
    again = quoting.fetch(["AAPL", "MSFT"])
    assert again.errors["AAPL"].startswith("rate limited by Yahoo, retry in ")
    assert fake.count("/v7/finance/quote") == quotes_sent  # nothing sent during the backoff
    fake.set_yahoo("normal")
    wait_for(lambda: quoting._backoff.left() <= 0, 10, what="the backoff to end")
    assert quoting.fetch(["AAPL", "MSFT"]).errors == {}


def test_a_429_on_the_first_batch_gives_every_later_batch_its_reason_too(quoting, fake):
    fake.instruments.update({f"T{i}": replace(fake.instruments["AAPL"], symbol=f"T{i}") for i in range(60)})
    try:
        fake.set_yahoo("rate_limit", "T0")
        fake.clear()
        wanted = [f"T{i}" for i in range(60)]
        refused = quoting.fetch(wanted)
        assert set(refused.errors) == set(wanted) and not refused.events
        assert fake.count("/v7/finance/quote") == 1
        fake.set_yahoo("normal")
        wait_for(lambda: quoting._backoff.left() <= 0, 10, what="the backoff to end")
        fake.clear()
        served = quoting.fetch(wanted)
        assert served.errors == {} and len(served.events) == 60
        batches = [
            r.params["symbols"].split(",") for r in fake.requests if r.path.startswith("/v7/finance/quote")
        ]
        assert [len(b) for b in batches] == [50, 10]
    finally:
        for i in range(60):
            fake.instruments.pop(f"T{i}", None)


def test_the_quote_budget_is_one_slot_per_batch_and_never_waits(fake, tmp_path):
    from pipeline.sources.budget import RequestBudget

    budget = RequestBudget(((2, 60.0),))
    source = YahooSource(tmp_path / "yf", timeout=TIMEOUT, base_url=fake.url, budget=budget, live="quote")
    assert source.min_interval(6) == source.quote_interval(6) == 60.0  # 1 request on half of 2 a minute
    assert source.min_interval(51) == 120.0  # two batches
    assert source.fetch(["AAPL", "MSFT", "IBM"]).errors == {}
    assert source.fetch(["AAPL"]).errors == {}
    spent = source.fetch(["AAPL", "MSFT"])
    assert not spent.events and spent.errors["AAPL"].startswith("request budget spent")
    assert fake.count("/v7/finance/quote") == 2


def test_make_source_polls_quotes_in_poll_mode(fake, tmp_path):
    values = dict(source="yfinance", data_dir=tmp_path, yahoo_url=fake.url, http_timeout=TIMEOUT)
    polled = make_source("yfinance", Settings.load(env={}, secrets_paths=[], yahoo_live="poll", **values))
    assert isinstance(polled, YahooSource) and polled.live == "quote"
    streamed = make_source("yfinance", Settings.load(env={}, secrets_paths=[], **values))
    assert streamed.rest.live == "chart"  # type: ignore[attr-defined]  # uncovered symbols get 1m bars
    with pytest.raises(ValueError, match="live must be one of"):
        YahooSource(tmp_path / "yf", live="stream")


def json_body(answer):
    import json

    return json.loads(answer[2])
