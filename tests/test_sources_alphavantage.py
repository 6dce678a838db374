"""The Alpha Vantage source against the fake server: budget first, throttles are never data."""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from alpha_vantage.alphavantage import AlphaVantage
from support.clock import ManualClock
from support.fake_market import FakeMarket

from pipeline.config import Settings
from pipeline.models import utcnow, validate
from pipeline.sources import make_source
from pipeline.sources.alphavantage import BUDGET_FILE, AlphaVantageSource
from pipeline.sources.base import SourceError, UnknownSymbol
from pipeline.watchlist import Entry
from ui import tables

CASES = Path(__file__).parent / "data" / "cases"

KEY = "TESTKEY123"
TIMEOUT = 10.0  # a ceiling for the fake server's answers: they come in milliseconds, even on a busy machine
HANG_TIMEOUT = 1.0  # what the hang test waits for, per call (the fake server never answers then)


@pytest.fixture(scope="module")
def server():
    with FakeMarket(hang_seconds=20) as fake:
        yield fake


@pytest.fixture
def fake(server):
    server.set_av("normal")
    server.release_hanging()
    server.clear()
    yield server
    server.set_av("normal")
    server.release_hanging()


def make(fake, tmp_path, **kw) -> AlphaVantageSource:
    options = dict(
        api_key=KEY,
        timeout=TIMEOUT,
        per_minute=100,
        per_day=25,
        base_url=fake.url,
        state_dir=tmp_path,
        min_refresh=0,
        backoff_base=0.3,
    )
    options.update(kw)
    return AlphaVantageSource(**options)


def quotes(fake) -> int:
    return fake.count("/query", function="GLOBAL_QUOTE")


def test_a_quote_is_a_tick_stamped_at_its_sessions_close_and_a_daily_bar(fake, tmp_path):
    source = make(fake, tmp_path)
    result = source.fetch(["IBM", "VOD.L"])
    assert result.errors == {}
    tick = next(e for e in result.events if e.symbol == "IBM" and e.interval == "tick")
    day = next(e for e in result.events if e.symbol == "IBM" and e.interval == "1d")
    raw = fake._global_quote(fake.instruments["IBM"], "IBM")
    # the quote's own time: its latest trading day's close in New York, or now while that session runs
    close = datetime.combine(
        date.fromisoformat(raw["07. latest trading day"]), dt_time(16), ZoneInfo("America/New_York")
    )
    assert tick.ts == min(close, tick.fetched_at) and tick.volume == 0
    assert day.close == tick.close == float(raw["05. price"]) and day.volume == float(raw["06. volume"])
    local = day.ts.astimezone(ZoneInfo("America/New_York"))
    assert local.date().isoformat() == raw["07. latest trading day"] and (local.hour, local.minute) == (0, 0)
    for event in result.events:
        validate(event)
    asked = {r.params["symbol"] for r in fake.requests}
    assert asked == {"IBM", "VOD.LON"}  # Yahoo-style .L becomes Alpha Vantage's .LON
    assert source.health()["budget_day_left"] == 23


def test_a_stale_quote_carries_its_own_date_and_shows_stale(fake, tmp_path, store):
    """Issue 9 case ``av_stale_global_quote.json``: a GLOBAL_QUOTE whose latest trading day is
    2024-03-01 used to be stamped with the fetch time and shown as "live, 0.2 s old"."""
    from pipeline import queries

    fake.set_av_quote("IBM", json.loads((CASES / "av_stale_global_quote.json").read_text()))
    try:
        source = make(fake, tmp_path)
        result = source.fetch(["IBM"])
    finally:
        fake.set_av_quote("IBM", None)
    assert result.errors == {}
    tick = next(e for e in result.events if e.interval == "tick")
    day = next(e for e in result.events if e.interval == "1d")
    stamped = datetime(2024, 3, 1, 21, 0, tzinfo=UTC)  # 16:00 in New York (EST) that day
    assert tick.ts == stamped and tick.close == 40.9 and tick.fetched_at > stamped + timedelta(days=365)
    assert day.ts == datetime(2024, 3, 1, 5, 0, tzinfo=UTC) and (day.open, day.high, day.low) == (
        41,
        41.5,
        40.2,
    )
    for event in result.events:
        validate(event)

    # stored, then read the way the Home page reads it
    store.write_events(result.events)
    stored = store.prices.find_one({"symbol": "IBM", "interval": "tick"})
    assert stored["ts"].replace(tzinfo=UTC) == stamped
    now = utcnow()
    quotes = queries.quotes(store, ["IBM"], now)
    row = quotes.iloc[0]
    assert row["last"] == 40.9 and row["as_of"] == stamped
    glance = tables.watchlist_glance([Entry("IBM", source="alpha_vantage")], quotes, {}, 60.0, now)
    assert glance.iloc[0]["Status"] == "🟠 stale (2024-03-01)"
    assert glance.iloc[0]["Updated"] == "2024-03-01"


def test_quote_time_without_a_known_zone_is_the_date_at_midnight_utc():
    from pipeline.sources.alphavantage import quote_time

    now = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)  # Monday 10:00 in New York: the session runs
    assert quote_time(date(2024, 3, 1), None, None, now) == datetime(2024, 3, 1, tzinfo=UTC)
    assert quote_time(date(2024, 3, 1), "Asia/Tokyo", dt_time(15, 30), now) == datetime(
        2024, 3, 1, 6, 30, tzinfo=UTC
    )
    assert quote_time(date(2026, 1, 5), "America/New_York", dt_time(16), now) == now


def test_unknown_and_unsupported_symbols(fake, tmp_path):
    source = make(fake, tmp_path)
    result = source.fetch(["XYZ", "^GSPC", "BTC-USD"])
    assert result.errors["XYZ"] == "Alpha Vantage does not know XYZ (empty Global Quote)"
    assert result.errors["^GSPC"].startswith("Alpha Vantage has no quotes for ^GSPC")
    assert "BTC-USD" in result.errors
    assert quotes(fake) == 1  # only XYZ was asked
    with pytest.raises(UnknownSymbol, match="does not know XYZ"):
        source.lookup("XYZ")
    assert source.lookup("IBM").timezone == "America/New_York"


def test_the_day_budget_is_checked_before_any_request_and_survives_a_restart(fake, tmp_path):
    clock = ManualClock()
    source = make(fake, tmp_path, per_day=3, budget_clock=clock)
    for _ in range(3):
        assert source.fetch(["IBM"]).errors == {}
    assert quotes(fake) == 3
    refused = source.fetch(["IBM"])
    tomorrow = (clock.now + timedelta(days=1)).date().isoformat()
    assert (
        refused.errors["IBM"]
        == f"Alpha Vantage budget used up (3/day); next call at {tomorrow}T00:00:00.000Z"
    )
    assert refused.events == [] and quotes(fake) == 3  # no HTTP request once exhausted
    with pytest.raises(SourceError, match="budget used up"):
        source.lookup("IBM")
    assert json.loads((tmp_path / BUDGET_FILE).read_text()) == {clock.now.date().isoformat(): 3}
    restarted = make(fake, tmp_path, per_day=3, budget_clock=clock)
    assert restarted.health()["budget_day_left"] == 0
    assert "budget used up" in restarted.fetch(["IBM"]).errors["IBM"] and quotes(fake) == 3
    clock.now += timedelta(days=1)  # a new UTC date has a new budget
    assert restarted.fetch(["IBM"]).errors == {} and quotes(fake) == 4


def test_the_minute_budget_refuses_and_recovers(fake, tmp_path):
    clock = ManualClock()
    source = make(fake, tmp_path, per_minute=2, budget_clock=clock)
    result = source.fetch(["IBM", "MSFT", "AAPL"])
    assert len(result.errors) == 1 and "(2/min)" in next(iter(result.errors.values()))
    assert quotes(fake) == 2
    clock.now += timedelta(seconds=61)
    assert len(source.fetch(["IBM", "MSFT", "AAPL"]).errors) == 1 and quotes(fake) == 4
    # the refused symbol rotates, so every symbol gets quoted
    assert {r.params["symbol"] for r in fake.requests} == {"IBM", "MSFT", "AAPL"}


def test_min_refresh_spares_the_budget_quietly(fake, tmp_path):
    source = make(fake, tmp_path, min_refresh=60)
    assert source.fetch(["IBM"]).events
    again = source.fetch(["IBM"])
    assert again.events == [] and again.errors == {} and quotes(fake) == 1


@pytest.mark.parametrize("mode, key", [("note", "Note"), ("information", "Information")])
def test_throttle_replies_are_never_data_and_start_a_backoff(fake, tmp_path, mode, key):
    source = make(fake, tmp_path)
    fake.set_av(mode)
    result = source.fetch(["IBM"])
    assert result.events == []
    assert result.errors["IBM"].startswith(f'Alpha Vantage throttled the request ("{key}"')
    assert KEY not in result.errors["IBM"]  # the key in Alpha Vantage's text is masked
    health = source.health()
    assert health["backoff_until"] is not None and health["consecutive_throttles"] == 1
    if mode == "information":  # "25 requests per day": the server's word spends the local day budget
        assert health["budget_day_left"] == 0
    sent = len(fake.requests)
    during = source.fetch(["IBM"])
    assert "retry in" in during.errors["IBM"] and len(fake.requests) == sent
    fake.set_av("normal")
    time.sleep(health["backoff_seconds_left"] + 0.05)
    if mode == "note":
        assert source.fetch(["IBM"]).errors == {}
        assert source.health()["consecutive_throttles"] == 0


def test_a_hanging_server_cannot_hang_the_caller(fake, tmp_path):
    source = make(fake, tmp_path, timeout=HANG_TIMEOUT)
    fake.set_av("hang")
    for call in (
        lambda: source.fetch(["IBM", "MSFT"]).errors,
        lambda: source.backfill("IBM", utcnow() - timedelta(hours=1), utcnow(), "1m").errors,
    ):
        started = time.monotonic()
        errors = call()
        assert time.monotonic() - started < HANG_TIMEOUT + 2
        assert all(
            reason == f"no answer from Alpha Vantage within {HANG_TIMEOUT:g}s" for reason in errors.values()
        )
    started = time.monotonic()
    with pytest.raises(SourceError, match="no answer"):
        source.lookup("IBM")
    assert time.monotonic() - started < HANG_TIMEOUT + 2


def test_missing_api_key_is_a_clear_error_without_requests(fake, tmp_path):
    source = make(fake, tmp_path, api_key=None)
    assert source.fetch(["IBM"]).errors["IBM"].startswith("ALPHAVANTAGE_API_KEY is not set")
    with pytest.raises(SourceError, match="ALPHAVANTAGE_API_KEY is not set"):
        source.lookup("IBM")
    assert fake.requests == [] and source.health()["api_key_set"] is False


def test_backfill_intraday_and_daily(fake, tmp_path):
    source = make(fake, tmp_path)
    now = utcnow()
    recent = source.backfill("IBM", now - timedelta(days=3), now, "1m")
    assert recent.errors == {} and len(recent.events) > 500
    assert fake.count("/query", function="TIME_SERIES_INTRADAY", interval="1min", outputsize="full") == 1
    assert all(now - timedelta(days=3) <= e.ts < now and e.ts.second == 0 for e in recent.events)
    for bar in recent.events:  # 04:00..20:00 New York time: the series' "US/Eastern" was honoured
        local = bar.ts.astimezone(ZoneInfo("America/New_York"))
        assert 4 <= local.hour < 20
    older = source.backfill("IBM", now - timedelta(days=40), now, "5m")
    assert older.errors == {}
    # one request per calendar month the 40 days touch: 2 on most days, 3 early in a month
    first = (now - timedelta(days=40)).date()
    months = {(first + timedelta(days=k)).strftime("%Y-%m") for k in range((now.date() - first).days + 1)}
    assert fake.count("/query", function="TIME_SERIES_INTRADAY", interval="5min") == len(months)
    assert {r.params.get("month") for r in fake.requests if r.params.get("interval") == "5min"} == months
    daily = source.backfill("IBM", now - timedelta(days=300), now, "1d")
    assert len(daily.events) == 100 and "last 100 trading days" in daily.errors["IBM"]
    assert (
        source.backfill("IBM", now - timedelta(days=3), now, "1wk")
        .errors["IBM"]
        .startswith("Alpha Vantage has no '1wk' history")
    )
    unknown = source.backfill("XYZ", now - timedelta(days=3), now, "1m")
    assert unknown.errors["XYZ"].startswith("Alpha Vantage refused: Invalid API call")


def test_two_instances_with_different_urls_do_not_fight(fake, tmp_path):
    default = AlphaVantage._ALPHA_VANTAGE_API_URL
    with FakeMarket() as other:
        a = make(fake, tmp_path / "a")
        b = make(other, tmp_path / "b")
        for _ in range(2):
            assert a.fetch(["IBM"]).errors == {} and b.fetch(["MSFT"]).errors == {}
        assert {r.params["symbol"] for r in fake.requests} == {"IBM"}
        assert {r.params["symbol"] for r in other.requests} == {"MSFT"}
    assert AlphaVantage._ALPHA_VANTAGE_API_URL == default  # the global was never touched


@pytest.mark.starts_server  # a local fake server, started inline
def test_an_unreachable_server_is_a_reason_without_the_key(tmp_path):
    with FakeMarket() as gone:
        url = gone.url
    source = AlphaVantageSource(KEY, TIMEOUT, 5, 25, base_url=url, state_dir=tmp_path, min_refresh=0)
    reason = source.fetch(["IBM"]).errors["IBM"]
    assert reason.startswith("cannot reach Alpha Vantage") and KEY not in reason
    assert KEY not in json.dumps(source.health())


def test_make_source_builds_it_from_settings(fake, tmp_path):
    settings = Settings.load(
        env={},
        secrets_paths=[],
        source="alpha_vantage",
        data_dir=tmp_path,
        alphavantage_api_key=KEY,
        alphavantage_url=fake.url,
        http_timeout=TIMEOUT,
    )
    source = make_source("alpha_vantage", settings)
    assert source.fetch(["IBM"]).errors == {}
    assert (tmp_path / BUDGET_FILE).exists()
    assert source.health()["per_day"] == 25 and source.health()["per_minute"] == 5
    json.dumps(source.health())  # the health snapshot is JSON-able
