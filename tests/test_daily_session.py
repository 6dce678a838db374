"""Daily bars are the exchange's regular session (issue 19, kind 4), on AAPL's 2024-10-02 as Yahoo
reports it: the 15:59 minute closed at 226.81, the official close (closing auction) is 226.78, and
the session's volume is 32,880,600 while the regular minutes add up to ~18 % less. Yahoo's 1m chart
with ``includePrePost`` also holds 04:00-09:30 and 16:00-20:00 rows: they must never change the day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pipeline.bars import SETTLED, BarBuilder
from pipeline.markets.calendars import market_for, regular_session
from pipeline.models import PriceEvent

DAY = datetime(2024, 10, 2).date()
OPEN, CLOSE = (
    datetime(2024, 10, 2, 13, 30, tzinfo=UTC),
    datetime(2024, 10, 2, 20, 0, tzinfo=UTC),
)  # 09:30-16:00 EDT
OFFICIAL = dict(open=225.89, high=227.37, low=223.02, close=226.78, volume=32_880_600.0)  # Yahoo's daily bar


def minute(ts: datetime, o: float, h: float, lo: float, c: float, v: float, fetched: datetime) -> PriceEvent:
    return PriceEvent(
        symbol="AAPL", interval="1m", ts=ts, open=o, high=h, low=lo, close=c, volume=v,
        source="yfinance", fetched_at=fetched, exchange="NasdaqGS", currency="USD", timezone="America/New_York",
    )  # fmt: skip


def the_days_minutes(fetched: datetime) -> list[PriceEvent]:
    """04:00-20:00 EDT: pre-market lower than the session's low, after-hours higher than its high."""
    out = []
    t = datetime(2024, 10, 2, 8, 0, tzinfo=UTC)  # 04:00 EDT
    while t < datetime(2024, 10, 3, 0, 0, tzinfo=UTC):  # 20:00 EDT
        if t < OPEN:  # pre-market
            out.append(minute(t, 222.5, 222.6, 222.0, 222.4, 900.0, fetched))
        elif t >= CLOSE:  # after-hours
            out.append(minute(t, 227.9, 228.0, 227.8, 227.95, 1_500.0, fetched))
        else:
            k = int((t - OPEN).total_seconds() // 60)  # 0..389
            o = 225.89 if k == 0 else 225.0 + (k % 7) * 0.3
            c = 226.81 if k == 389 else 225.1 + (k % 5) * 0.35
            h = 227.37 if k == 200 else max(o, c) + 0.05
            lo = 223.02 if k == 100 else min(o, c) - 0.05
            out.append(minute(t, o, h, lo, c, 69_000.0, fetched))
        t += timedelta(minutes=1)
    return out


def day_bar(store) -> dict:
    """The stored daily bar of 2024-10-02 (the official-days answer brings the days before it too)."""
    (bar,) = list(
        store.bars.find({"symbol": "AAPL", "interval": "1d", "session": DAY.isoformat()}, {"_id": 0})
    )
    return bar


def test_the_calendar_gives_the_regular_session():
    assert regular_session(market_for("AAPL"), DAY) == (OPEN, CLOSE)
    assert regular_session(market_for("AAPL"), datetime(2024, 10, 5).date()) is None  # a Saturday


def test_from_minutes_the_day_is_the_regular_session_and_provisional(store):
    store.write_events(the_days_minutes(fetched=CLOSE + timedelta(hours=4, minutes=5)))
    BarBuilder(store).run_once()
    bar = day_bar(store)
    assert bar["session"] == "2024-10-02" and bar["provisional"] is True
    assert (bar["open"], bar["high"], bar["low"], bar["close"]) == (
        225.89,
        227.37,
        223.02,
        226.81,
    )  # not 222/228
    assert bar["volume"] == 390 * 69_000.0  # the regular minutes only: 26.9 M of the session's 32.9 M


def test_the_providers_bar_fetched_after_the_close_is_the_official_day(store):
    store.write_events(the_days_minutes(fetched=CLOSE + timedelta(hours=4, minutes=5)))
    early = CLOSE + timedelta(minutes=5)  # before the auction settled: merged, still provisional
    daily = dict(
        symbol="AAPL", interval="1d", ts=datetime(2024, 10, 2, 4, 0, tzinfo=UTC), source="yfinance",
        exchange="NasdaqGS", currency="USD", timezone="America/New_York",
    )  # fmt: skip
    store.write_events(
        [PriceEvent(**daily, **{**OFFICIAL, "close": 226.80, "volume": 30_000_000.0}, fetched_at=early)]
    )
    BarBuilder(store).run_once()
    bar = day_bar(store)
    assert bar["provisional"] is True and bar["close"] == 226.81 and bar["volume"] == 30_000_000.0
    store.write_events([PriceEvent(**daily, **OFFICIAL, fetched_at=CLOSE + SETTLED + timedelta(minutes=1))])
    BarBuilder(store).run_once()
    bar = day_bar(store)
    assert bar["provisional"] is False
    assert {k: bar[k] for k in OFFICIAL} == pytest.approx(OFFICIAL)  # 226.78 and the auction's volume
    print(f"\nAAPL 2024-10-02: minutes' close 226.81, stored now {bar['close']}; volume {bar['volume']:,.0f}")


# -- the official bar is fetched once the session has settled ---------------------------------------
def test_the_settled_day_follows_the_exchange_calendar():
    from pipeline.official_days import settled_day

    assert settled_day("AAPL", CLOSE + SETTLED) == (DAY, CLOSE)
    assert settled_day("AAPL", CLOSE + SETTLED - timedelta(seconds=1))[0] == datetime(2024, 10, 1).date()
    saturday = datetime(2024, 10, 5, 15, 0, tzinfo=UTC)
    assert settled_day("AAPL", saturday)[0] == datetime(2024, 10, 4).date()  # Friday's session
    assert settled_day("BTC-USD", datetime(2024, 10, 3, 0, 30, tzinfo=UTC))[0] == DAY  # the UTC day


def test_the_official_bar_of_a_watched_day_is_fetched_once_after_it_settled(store, tmp_path):
    """The real Yahoo source against the fake market (wire format): a day the monitor built from its
    minutes becomes the provider's official bar after one request, and is not asked for again."""
    from support.fake_market import FakeMarket

    from pipeline.official_days import RETRY_S, OfficialDays
    from pipeline.sources.yahoo import YahooSource

    store.write_events(the_days_minutes(fetched=CLOSE - timedelta(minutes=1)))
    BarBuilder(store).run_once()
    assert day_bar(store)["provisional"] is True
    now = [CLOSE + SETTLED + timedelta(minutes=5)]
    with FakeMarket() as fake:
        source = YahooSource(tmp_path / "yf-cache", timeout=10.0, base_url=fake.url)
        job = OfficialDays(
            store,
            lambda: {"yfinance": ["AAPL"]},
            lambda name: source,
            lambda events: (store.write_events(events), len(events))[1],
            clock=lambda: now[0],
        )
        fake.set_yahoo("rate_limit")  # refused first: no bar, tried again only after RETRY_S
        assert job.run() == 0 and job.counts["fetched"] == 1
        fake.set_yahoo("normal")
        now[0] += timedelta(seconds=RETRY_S / 2)
        assert job.run() == 0 and job.counts["fetched"] == 1
        now[0] += timedelta(seconds=RETRY_S / 2 + 1)
        source._backoff.ok()  # the 429's backoff is the source's own business, not this test's
        assert job.run() >= 1  # the day, and the settled days before it in the same answer
        asked = len(fake.chart_requests("AAPL"))
        now[0] += timedelta(hours=3)
        assert job.run() == 0 and len(fake.chart_requests("AAPL")) == asked  # done: never asked again
    BarBuilder(store).run_once()
    bar = day_bar(store)
    from pipeline.markets.calendars import session_date
    from pipeline.models import to_utc

    (served,) = [
        d
        for d in store.prices.find({"symbol": "AAPL", "interval": "1d"})
        if session_date(to_utc(d["ts"]), "America/New_York") == DAY
    ]
    assert bar["provisional"] is False
    assert (bar["close"], bar["volume"]) == (served["close"], served["volume"])  # the provider's day
    assert job.snapshot()["official"] == 1


def test_a_date_without_a_session_gets_no_daily_bar_from_its_minutes(store):
    """The simulator ticks around the clock by default: its Saturday minutes stay intraday bars, but a
    daily bar of a Saturday made Sunday's change compare with Saturday and a forecast start from a day
    NYSE never traded (the first-five-minutes walk-through, issue 22)."""
    saturday = datetime(2024, 10, 5, 14, 0, tzinfo=UTC)
    fetched = saturday + timedelta(hours=2)
    store.write_events(
        [
            minute(saturday + timedelta(minutes=k), 226.0, 226.5, 225.5, 226.2, 100.0, fetched)
            for k in range(90)
        ]
    )
    # a provisional Saturday bar an older version built from such minutes goes when the date is rebuilt
    store.bars.insert_one(
        {"symbol": "AAPL", "interval": "1d", "ts": datetime(2024, 10, 5, tzinfo=UTC), "open": 1.0,
         "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0, "provisional": True, "session": "2024-10-05"}
    )  # fmt: skip
    builder = BarBuilder(store)
    builder.run_once()
    assert store.bars.count_documents({"symbol": "AAPL", "interval": "1h"}) >= 2  # the hours are kept
    assert store.bars.count_documents({"symbol": "AAPL", "interval": "1d"}) == 0
    # a live weekend rebuilds that date every few seconds: the date is cleared once per builder
    deletes = []
    real = store.bars.delete_many
    store.bars = type("Counted", (), {"__getattr__": lambda _, name: getattr(real.__self__, name),
                                      "delete_many": lambda _, q: deletes.append(q) or real(q)})()  # fmt: skip
    store.write_events([minute(saturday + timedelta(minutes=95), 226.0, 226.5, 225.5, 226.2, 100.0, fetched)])
    builder.run_once()
    assert deletes == [] and store.bars.count_documents({"symbol": "AAPL", "interval": "1h"}) >= 2
