"""Real recorded Yahoo chart responses (tests/data/yahoo-chart, from yahoo-finance2, MIT) served by the
fake market server: what is stored equals what the response says, on the exchange's session dates."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest
from support.fake_market import FakeMarket

from pipeline.bars import BarBuilder
from pipeline.markets import calendars as markets
from pipeline.markets.calendars import session_date
from pipeline.models import to_utc
from pipeline.sources.yahoo import YahooSource

RECORDED = Path(__file__).parent / "data" / "yahoo-chart"


def recording(name: str) -> dict:
    return json.loads((RECORDED / name).read_text(encoding="utf-8"))


def expected_bars(name: str) -> tuple[dict, list[tuple[date, float, float]]]:
    """(meta, [(session date, close, volume)]) of a recording, dated at the exchange."""
    result = recording(name)["body"]["chart"]["result"][0]
    meta, quote = result["meta"], result["indicators"]["quote"][0]
    tz = meta["exchangeTimezoneName"]
    rows = [
        (session_date(datetime.fromtimestamp(t, UTC), tz), c, v)
        for t, c, v in zip(
            result.get("timestamp") or [], quote.get("close") or [], quote.get("volume") or [], strict=True
        )
    ]
    return meta, rows


@pytest.fixture(scope="module")
def fake():
    with FakeMarket() as server:
        server.serve_recorded(*sorted(RECORDED.glob("*.json")))
        yield server


@pytest.fixture
def source(fake, tmp_path):
    return YahooSource(tmp_path / "yf-cache", timeout=10.0, base_url=fake.url)


CASES = [
    # file, symbol, requested start and end (UTC), session dates that must be stored
    ("chart-WSU.DE-2023-08-04-to-2023-08-09.json", "WSU.DE", "2023-08-04", "2023-08-09", 3),
    ("chart-OCDO.L-2020-01-01-to-2020-01-03.json", "OCDO.L", "2020-01-01", "2020-01-03", 1),
    ("chart-AAPL-2020-01-01-to-2020-01-03.json", "AAPL", "2020-01-01", "2020-01-03", 1),
    # 24/7 and 24/5: Yahoo also returns the bar starting at period2, outside the range
    ("chart-BTC-USD-2020-01-01-to-2020-01-03.json", "BTC-USD", "2020-01-01", "2020-01-03", 2),
    ("chart-EURUSD=X-2020-01-01-to-2020-01-03.json", "EURUSD=X", "2020-01-01", "2020-01-03", 2),
]


@pytest.mark.parametrize(("name", "symbol", "start", "end", "count"), CASES)
def test_every_recorded_bar_in_range_is_stored_as_recorded(name, symbol, start, end, count, source, store):
    meta, recorded = expected_bars(name)
    first, last = date.fromisoformat(start), date.fromisoformat(end)
    in_range = [r for r in recorded if first <= r[0] < last]
    assert len(in_range) == count  # the recording itself says so
    result = source.backfill(
        symbol,
        datetime.fromisoformat(start).replace(tzinfo=UTC),
        datetime.fromisoformat(end).replace(tzinfo=UTC),
        "1d",
    )
    assert result.errors == {}
    store.write_events(result.events)
    docs = sorted(store.prices.find({"symbol": symbol, "interval": "1d"}), key=lambda d: d["ts"])
    stored = [(session_date(to_utc(d["ts"]), d["timezone"]), d["close"], d["volume"]) for d in docs]
    assert stored == [(day, pytest.approx(close), float(volume)) for day, close, volume in in_range]
    for d in docs:
        assert (d["currency"], d["timezone"]) == (meta["currency"], meta["exchangeTimezoneName"])
    # the daily bars the pages read: one per session, on its session date, the date stored explicitly
    BarBuilder(store).run_once()
    days = list(store.bars.find({"symbol": symbol, "interval": "1d"}).sort("ts", 1))
    assert [d["session"] for d in days] == [day.isoformat() for day, _, _ in in_range]
    assert [to_utc(d["ts"]) for d in days] == [datetime.combine(day, time(0), UTC) for day, _, _ in in_range]
    assert [d["close"] for d in days] == [pytest.approx(close) for _, close, _ in in_range]


def test_the_empty_saturday_minute_chart_is_a_reason_not_an_error(source):
    body = recording("chart-AAPL-2025-02-01-to-2025-02-02-includePrePost-false-interval-1m.json")["body"]
    assert body["chart"]["result"][0]["indicators"]["quote"] == [{}]  # what the recording holds
    result = source.fetch(["AAPL"])  # served the Saturday answer: no timestamps, no prices
    assert result.events == []
    assert result.errors["AAPL"] == "Yahoo returned no bars for AAPL (empty chart)"
    health = source.health()
    assert health["backoff_seconds_left"] == 0 and health["consecutive_throttles"] == 0  # no throttling


def test_a_backfill_of_a_weekend_or_holiday_expects_no_bars(source):
    # the recorded empty Saturday answer, served for any AAPL minute request
    now = datetime.now(UTC)
    saturday = (now - timedelta(days=(now.weekday() - 5) % 7 or 7)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    weekend = source.backfill("AAPL", saturday, saturday + timedelta(days=2), "1m")
    assert weekend.events == [] and weekend.errors == {}  # nothing expected, nothing wrong
    wednesday = saturday - timedelta(days=3)
    if markets.market_status(
        markets.market_for("AAPL"), wednesday + timedelta(hours=15)
    ).is_open:  # not a holiday
        weekday = source.backfill("AAPL", wednesday, wednesday + timedelta(days=1), "1m")
        assert weekday.errors == {
            "AAPL": "Yahoo returned no bars for AAPL (empty chart)"
        }  # a session without bars
