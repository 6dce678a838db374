"""The simulated source: determinism, statistics close to real stocks, continuity, well-formed bars."""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from support.clock import ManualClock, travel

from pipeline.models import validate
from pipeline.sources.base import UnknownSymbol
from pipeline.sources.simulated import PROFILES, TRADING_SECONDS_PER_YEAR, SimulatedSource, profile_for

BIG6 = ["AAPL", "AMZN", "GOOG", "META", "NFLX", "NVDA"]
T0 = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)  # a Monday, 09:30 in New York


def run(source: SimulatedSource, clock: ManualClock, symbols, steps: int, seconds: float):
    """Closes (steps x symbols) and all events of ``steps`` fetches ``seconds`` apart."""
    closes, events = [], []
    for _ in range(steps):
        clock.tick(seconds)
        result = source.fetch(symbols)
        assert not result.errors
        ticks = {e.symbol: e for e in result.events if e.interval == "tick"}
        closes.append([ticks[s].close for s in symbols])
        events.extend(result.events)
    return np.array(closes), events


@pytest.fixture(scope="module")
def long_run():
    clock = ManualClock(T0)
    source = SimulatedSource(seed=11, clock=clock)
    closes, _ = run(source, clock, BIG6, 3000, 60.0)
    return np.diff(np.log(closes), axis=0)


def test_same_seed_same_events_and_other_seed_differs():
    a, b, c = ManualClock(T0), ManualClock(T0), ManualClock(T0)
    ea = run(SimulatedSource(seed=5, clock=a), a, ["AAPL", "MSFT"], 50, 2.0)[1]
    eb = run(SimulatedSource(seed=5, clock=b), b, ["AAPL", "MSFT"], 50, 2.0)[1]
    ec = run(SimulatedSource(seed=6, clock=c), c, ["AAPL", "MSFT"], 50, 2.0)[1]
    assert ea == eb
    assert [e.close for e in ea] != [e.close for e in ec]


def test_adding_a_symbol_does_not_change_another_symbols_path():
    a, b = ManualClock(T0), ManualClock(T0)
    alone = run(SimulatedSource(seed=9, clock=a), a, ["AAPL"], 30, 5.0)[0][:, 0]
    together = run(SimulatedSource(seed=9, clock=b), b, ["AAPL", "ZZZZ"], 30, 5.0)[0][:, 0]
    assert list(alone) == list(together)


def test_pairwise_correlation_is_between_0_3_and_0_6(long_run):
    corr = np.corrcoef(long_run.T)
    pairs = corr[np.triu_indices(len(BIG6), 1)]
    assert pairs.min() > 0.3 and pairs.max() < 0.6, pairs
    assert 0.38 < pairs.mean() < 0.52


def test_annualised_volatility_matches_the_profiles(long_run):
    dt = 60.0 / TRADING_SECONDS_PER_YEAR
    realised = long_run.std(axis=0) / math.sqrt(dt)
    for symbol, vol in zip(BIG6, realised, strict=False):
        assert abs(vol / PROFILES[symbol].sigma - 1) < 0.12, (symbol, vol)


def test_returns_have_fat_tails(long_run):
    z = (long_run - long_run.mean(axis=0)) / long_run.std(axis=0)
    excess_kurtosis = (z**4).mean() - 3
    assert excess_kurtosis > 1.0  # normal shocks would give ~0


def test_profiles_use_the_2013_2023_figures():
    assert (PROFILES["AAPL"].mu, PROFILES["AAPL"].sigma) == (0.22, 0.29)
    assert (PROFILES["NVDA"].mu, PROFILES["NVDA"].sigma) == (0.46, 0.45)
    unknown = profile_for("ZZZZ")
    assert (unknown.mu, unknown.sigma) == (0.08, 0.30)
    assert unknown.price == profile_for("ZZZZ").price  # derived from the name, deterministic
    assert profile_for("ZZZZ").price != profile_for("ZZZY").price
    assert profile_for("9999.T").price > 1000  # yen-scale price for a made-up Tokyo share


def test_continues_from_the_last_stored_price_and_asks_once():
    asked = []

    def last_prices(symbols):
        asked.append(list(symbols))
        return {"AAPL": 123.45}

    clock = ManualClock(T0)
    source = SimulatedSource(seed=1, last_prices=last_prices, clock=clock)
    first = source.fetch(["AAPL", "MSFT"])
    tick = {e.symbol: e for e in first.events if e.interval == "tick"}
    assert tick["AAPL"].close == 123.45 and tick["AAPL"].volume == 0
    assert tick["MSFT"].close == PROFILES["MSFT"].price  # nothing stored: the profile's start price
    clock.tick(2)
    second = source.fetch(["AAPL", "MSFT", "NVDA"])
    assert asked == [["AAPL", "MSFT"], ["NVDA"]]  # once per symbol
    aapl = next(e for e in second.events if e.symbol == "AAPL" and e.interval == "tick")
    assert abs(aapl.close / 123.45 - 1) < 0.01  # no jump


def test_a_failing_last_prices_callback_does_not_stop_the_feed():
    def broken(symbols):
        raise ConnectionError("store is down")

    source = SimulatedSource(seed=1, last_prices=broken, clock=ManualClock(T0))
    result = source.fetch(["AAPL"])
    assert not result.errors and len(result.events) == 2
    assert "store is down" in source.health()["last_error"]


def test_ticks_and_the_forming_bar_agree_and_bars_are_well_formed():
    clock = ManualClock(T0)
    source = SimulatedSource(seed=3, clock=clock)
    ticks, bars = defaultdict(list), {}
    for _ in range(599):  # 14:30:02 .. 14:49:58, 20 minutes of 2-second polls
        now = clock.tick(2.0)
        result = source.fetch(["AAPL", "NVDA"])
        assert not result.errors
        for event in result.events:
            validate(event)
            assert event.fetched_at == now
            if event.interval == "tick":
                assert event.ts == now
                ticks[(event.symbol, now.replace(second=0))].append(event)
            else:
                assert event.interval == "1m" and event.ts == now.replace(second=0, microsecond=0)
                bars[(event.symbol, event.ts)] = event  # later revisions replace earlier ones
    assert len(bars) == 2 * 20
    for key, bar in bars.items():
        minute = ticks[key]
        assert bar.open == minute[0].close and bar.close == minute[-1].close
        assert bar.high >= max(t.close for t in minute) and bar.low <= min(t.close for t in minute)
        assert bar.high >= max(bar.open, bar.close) and bar.low <= min(bar.open, bar.close)
        assert bar.volume == sum(t.volume for t in minute)


def test_volume_is_u_shaped_over_the_session_and_realistic_per_day():
    clock = ManualClock(T0 - timedelta(seconds=60))
    source = SimulatedSource(seed=4, clock=clock)
    source.fetch(["AAPL"])
    per_half_hour = defaultdict(float)
    for minute in range(390):  # 09:30 .. 16:00 New York time
        clock.tick(60)
        tick = next(e for e in source.fetch(["AAPL"]).events if e.interval == "tick")
        per_half_hour[minute // 30] += tick.volume
    opening, midday, closing = per_half_hour[0], per_half_hour[6], per_half_hour[12]
    assert opening > 2 * midday and closing > 2 * midday
    total = sum(per_half_hour.values())
    assert 0.6 < total / PROFILES["AAPL"].daily_volume < 1.4


def test_set_price_steers_the_next_tick_exactly():
    clock = ManualClock(T0)
    source = SimulatedSource(seed=2, clock=clock)
    source.fetch(["AAPL"])
    source.set_price("aapl", 250.0)
    clock.tick(1)
    tick = next(e for e in source.fetch(["AAPL"]).events if e.interval == "tick")
    assert tick.close == 250.0
    clock.tick(1)
    after = next(e for e in source.fetch(["AAPL"]).events if e.interval == "tick")
    assert abs(after.close / 250.0 - 1) < 0.01
    with pytest.raises(ValueError):
        source.set_price("AAPL", -1)


def test_clock_going_back_never_reopens_a_bar():
    clock = ManualClock(T0)
    source = SimulatedSource(seed=2, clock=clock)
    source.fetch(["AAPL"])
    clock.tick(90)
    late = source.fetch(["AAPL"]).events
    clock.tick(-80)
    again = source.fetch(["AAPL"]).events
    assert again[1].ts == late[1].ts  # still the newer minute, not the older one


def test_backfill_1m_ends_at_the_current_price_and_is_contiguous():
    clock = ManualClock(T0)
    source = SimulatedSource(seed=8, clock=clock)
    clock.tick(30)
    live = source.fetch(["AAPL"]).events[0]
    result = source.backfill("AAPL", clock.now - timedelta(days=1), clock.now, "1m")
    assert not result.errors
    bars = result.events
    assert 1439 <= len(bars) <= 1441
    assert bars[-1].close == live.close
    for a, b in itertools.pairwise(bars):
        assert b.ts - a.ts == timedelta(minutes=1) and b.open == a.close
        assert a.high >= max(a.open, a.close) and a.low <= min(a.open, a.close)
    assert all(b.ts.second == 0 for b in bars)


def test_backfill_is_deterministic_and_overlapping_windows_agree_in_shape():
    c1, c2 = ManualClock(T0), ManualClock(T0)
    s1, s2 = SimulatedSource(seed=21, clock=c1), SimulatedSource(seed=21, clock=c2)
    a = s1.backfill("MSFT", T0 - timedelta(hours=6), T0, "5m").events
    assert a == s2.backfill("MSFT", T0 - timedelta(hours=6), T0, "5m").events
    b = s1.backfill("MSFT", T0 - timedelta(hours=3), T0 - timedelta(hours=1), "5m").events
    ra = {x.ts: math.log(x.close / x.open) for x in a}
    overlap = [x for x in b if x.ts in ra]
    assert len(overlap) == 24
    for x in overlap:  # same shock per bar time, whatever the window
        assert abs(math.log(x.close / x.open) - ra[x.ts]) < 1e-3


def test_backfill_daily_has_weekdays_at_local_midnight_and_real_volatility():
    clock = ManualClock(T0)
    source = SimulatedSource(seed=13, clock=clock)
    bars = source.backfill("AAPL", T0 - timedelta(days=3 * 365), T0, "1d").events
    assert len(bars) > 700
    for bar in bars:
        local = bar.ts.astimezone(__import__("zoneinfo").ZoneInfo("America/New_York"))
        assert local.weekday() < 5 and (local.hour, local.minute) == (0, 0)
    closes = np.log([b.close for b in bars])
    vol = np.diff(closes).std() * math.sqrt(252)
    assert abs(vol / 0.29 - 1) < 0.2
    assert bars[-1].close == source.fetch(["AAPL"]).events[0].close
    # the exchange's sessions, in the default 24/7 mode too: no Thanksgiving, no weekend
    fall = source.backfill(
        "AAPL", datetime(2025, 11, 21, tzinfo=UTC), datetime(2025, 12, 1, tzinfo=UTC), "1d"
    )
    days = [b.ts.astimezone(__import__("zoneinfo").ZoneInfo("America/New_York")).date() for b in fall.events]
    assert [d.day for d in days] == [21, 24, 25, 26, 28]  # Thursday 2025-11-27: Thanksgiving
    weeks = source.backfill("AAPL", T0 - timedelta(days=70), T0, "1wk").events
    assert 10 <= len(weeks) <= 11 and all(w.interval == "1wk" for w in weeks)
    assert (
        source.backfill("AAPL", T0 - timedelta(days=1), T0, "7m")
        .errors["AAPL"]
        .startswith("the simulated source has no '7m' history")
    )


def test_backfill_refuses_absurd_ranges_with_a_reason():
    source = SimulatedSource(seed=1, clock=ManualClock(T0))
    result = source.backfill("AAPL", T0 - timedelta(days=3650), T0, "1m")
    assert not result.events and "too many" in result.errors["AAPL"]


def test_lookup_accepts_any_valid_symbol_and_names_its_market():
    source = SimulatedSource(seed=1)
    assert source.lookup("aapl").name == "Apple Inc."
    toyota = source.lookup("7203.T")
    assert (toyota.currency, toyota.timezone) == ("JPY", "Asia/Tokyo")
    vod = source.lookup("VOD.L")
    assert (vod.currency, vod.timezone) == ("GBp", "Europe/London")
    assert source.lookup("BTC-USD").timezone == "UTC"
    assert source.lookup("EURUSD=X").currency == "USD"
    assert source.lookup("ZZZZ").exchange == "NYSE/NASDAQ"
    with pytest.raises(UnknownSymbol):
        source.lookup("not a ticker")


def test_bad_symbols_become_errors_not_exceptions():
    result = SimulatedSource(seed=1, clock=ManualClock(T0)).fetch(["AAPL", "no good"])
    assert "no good" in result.errors and {e.symbol for e in result.events} == {"AAPL"}


def test_calendar_hours_trade_only_in_real_sessions():
    from datetime import UTC, date, datetime
    from zoneinfo import ZoneInfo

    now = [datetime(2026, 1, 6, 3, 0, tzinfo=UTC)]  # Tokyo lunch break, London and New York closed
    calendar = SimulatedSource(seed=7, clock=lambda: now[0], hours="calendar")
    result = calendar.fetch(["7203.T", "AAPL", "BTC-USD"])
    assert {e.symbol for e in result.events} == {"BTC-USD"} and result.errors == {}
    now[0] = datetime(2026, 1, 6, 4, 0, tzinfo=UTC)  # Tokyo afternoon session
    assert {e.symbol for e in calendar.fetch(["7203.T", "AAPL"]).events} == {"7203.T"}
    always = SimulatedSource(seed=7, clock=lambda: now[0])
    assert {e.symbol for e in always.fetch(["7203.T", "AAPL"]).events} == {"7203.T", "AAPL"}
    # history: no bar on Thanksgiving, none after the 13:00 early close, none in Tokyo's lunch
    now[0] = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    # validation's wall clock must agree with the source's (a --clock run may be earlier than it)
    with travel(now[0]):
        days = calendar.backfill("AAPL", datetime(2026, 11, 23, tzinfo=UTC), now[0], "1d").events
        assert [e.ts.astimezone(ZoneInfo("America/New_York")).date() for e in days] == [
            date(2026, 11, d) for d in (23, 24, 25, 27)
        ]
        minutes = calendar.backfill(
            "AAPL", datetime(2026, 11, 27, tzinfo=UTC), datetime(2026, 11, 28, tzinfo=UTC), "1m"
        )
        stamps = [e.ts for e in minutes.events]
        assert stamps[0] == datetime(2026, 11, 27, 14, 30, tzinfo=UTC) and stamps[-1] == datetime(
            2026, 11, 27, 17, 59, tzinfo=UTC
        )
        tokyo = calendar.backfill(
            "7203.T", datetime(2026, 11, 27, tzinfo=UTC), datetime(2026, 11, 27, 7, tzinfo=UTC), "5m"
        )
        assert not [
            e
            for e in tokyo.events
            if datetime(2026, 11, 27, 2, 30, tzinfo=UTC) <= e.ts < datetime(2026, 11, 27, 3, 30, tzinfo=UTC)
        ]
        assert len(tokyo.events) == (150 + 180) // 5  # 09:00-11:30 and 12:30-15:30 JST


def test_the_registry_says_which_tickers_the_simulator_knows_and_others_cannot_tell_offline():
    from pipeline.sources.registry import REGISTRY, knows

    assert knows("simulated", "AAPL") is True and knows("simulated", "^GSPC") is True
    assert knows("simulated", "NOTATICKER") is False  # still served (lookup works), with invented prices
    assert SimulatedSource(seed=1).lookup("NOTATICKER").symbol == "NOTATICKER"
    assert {name: knows(name, "AAPL") for name in REGISTRY if name != "simulated"} == dict.fromkeys(
        [n for n in REGISTRY if n != "simulated"]
    )
    assert knows("no_such_source", "AAPL") is None
    from pipeline.sources.registry import label

    assert label("simulated") == "The simulator" and label("csv") == "csv" and label("nope") == "nope"
