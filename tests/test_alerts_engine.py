"""The alert engine against a real MongoDB, fed stored batches directly (what the consumer hook gets):
each rule kind's semantics, re-arming, cooldown, expiry, exactly once under replays, restarts and a
second engine, and a MongoDB failure in the middle of a flush."""

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from pymongo.errors import AutoReconnect
from support.alerts import ticks
from support.base import make_settings

from pipeline import analytics
from pipeline.alerts import AlertEngine, RuleBook, RuleError, validate
from pipeline.alerts.series import Series
from pipeline.models import utcnow


def engine(store, settings, **kw):
    return AlertEngine(store, settings, refresh_s=0.0, **kw)


def feed(eng, store, events, batch=50):
    for i in range(0, len(events), batch):
        part = events[i : i + batch]
        store.write_events(part)
        eng.on_stored(part)


def fired(store, rule_id=None):
    query = {"rule_id": rule_id} if rule_id else {}
    return list(store.db["alert_events"].find(query).sort("ts", 1))


def test_invalid_rules_are_rejected_with_a_message_per_field(store):
    book = RuleBook(store, max_rules=2)
    cases = [
        ({"symbol": "", "kind": "price_above", "level": 10}, "symbol", "symbol is required"),
        ({"symbol": "drop table", "kind": "price_above", "level": 10}, "symbol", "is not a valid ticker"),
        ({"symbol": "AAPL", "kind": "moon_phase"}, "kind", "kind 'moon_phase' is not one of"),
        ({"symbol": "AAPL", "kind": "price_above"}, "level", "level is required"),
        ({"symbol": "AAPL", "kind": "price_below", "level": -5}, "level", "level must be more than 0"),
        ({"symbol": "AAPL", "kind": "price_cross", "level": float("nan")}, "level", "finite number"),
        (
            {"symbol": "AAPL", "kind": "pct_change", "pct": "abc", "window_s": 900},
            "pct",
            "must be a number, got 'abc'",
        ),
        ({"symbol": "AAPL", "kind": "pct_change", "pct": 3, "window_s": 5}, "window_s", "at least 10"),
        (
            {"symbol": "AAPL", "kind": "pct_change", "pct": 3, "direction": "sideways"},
            "direction",
            "is not one of: up, down, either",
        ),
        (
            {"symbol": "AAPL", "kind": "volume_spike", "factor": 0.5},
            "factor",
            "volume factor must be more than 1",
        ),
        ({"symbol": "AAPL", "kind": "rsi_above", "level": 120}, "level", "RSI level must be"),
        ({"symbol": "AAPL", "kind": "rsi_below", "level": 30, "period": 2.5}, "period", "whole number"),
        ({"symbol": "AAPL", "kind": "sma_cross", "fast": 50, "slow": 20}, "fast", "fast SMA must be shorter"),
        (
            {"symbol": "AAPL", "kind": "sma_cross", "timeframe": "2m"},
            "timeframe",
            "timeframe '2m' is not one of",
        ),
        ({"symbol": "AAPL", "kind": "price_above", "level": 1, "cooldown_s": -1}, "cooldown_s", "at least 0"),
        (
            {
                "symbol": "AAPL",
                "kind": "price_above",
                "level": 1,
                "expires_at": utcnow() - timedelta(hours=1),
            },
            "expires_at",
            "expiry must be in the future",
        ),
        ({"symbol": "AAPL", "kind": "price_above", "level": 1, "note": "x" * 501}, "note", "at most 500"),
        (
            {"symbol": "AAPL", "kind": "price_above", "level": 1, "channels": ["sms"]},
            "channels",
            "unknown channel",
        ),
    ]
    for raw, field, words in cases:
        with pytest.raises(RuleError) as info:
            book.create(raw)
        assert field in info.value.errors, (raw, info.value.errors)
        assert words in info.value.errors[field], (raw, info.value.errors)
    assert store.db["alert_rules"].count_documents({}) == 0, "nothing invalid was stored"
    # several problems are reported together
    with pytest.raises(RuleError) as info:
        validate({"symbol": "??", "kind": "sma_cross", "fast": 9, "slow": 3, "timeframe": "7m"})
    assert set(info.value.errors) == {"symbol", "fast", "timeframe"}
    # a full book is refused with a sentence; editing keeps the id and validates too
    a = book.create({"symbol": "aapl", "kind": "price_above", "level": 10, "note": " hi "})
    assert (a.symbol, a.note, a.id) == ("AAPL", "hi", a.id) and a.id
    book.create({"symbol": "MSFT", "kind": "price_below", "level": 10})
    with pytest.raises(RuleError, match="already 2 rules"):
        book.create({"symbol": "NVDA", "kind": "price_below", "level": 10})
    with pytest.raises(RuleError, match="level must be more than 0"):
        book.update(a.id, {"level": 0})
    edited = book.update(a.id, {"level": 12.5})
    assert (
        edited.params["level"] == 12.5
        and edited.version != a.version
        and book.get(a.id).params["level"] == 12.5
    )
    with pytest.raises(RuleError, match="does not exist"):
        book.update("nope", {"level": 3})


def test_above_fires_once_per_crossing_rearms_and_respects_cooldown(store, settings):
    book = RuleBook(store)
    plain = book.create({"symbol": "AAPL", "kind": "price_above", "level": 105})
    cool = book.create({"symbol": "AAPL", "kind": "price_above", "level": 105, "cooldown_s": 30})
    below = book.create({"symbol": "AAPL", "kind": "price_below", "level": 95})
    prices = [100] * 5 + [106, 107, 106] + [100] * 3 + [108] * 3 + [100] * 2 + [110] + [100] * 40 + [111, 90]
    eng = engine(store, settings)
    feed(eng, store, ticks("AAPL", prices), batch=7)
    plain_alerts = fired(store, plain.id)
    assert [a["price"] for a in plain_alerts] == [106, 108, 110, 111], (
        "once per crossing, re-armed after each"
    )
    # 1 s apart: crossings at 5, 11 and 16 (both suppressed: within 30 s of 5), 57 (allowed again)
    assert [a["price"] for a in fired(store, cool.id)] == [106, 111]
    assert [a["price"] for a in fired(store, below.id)] == [90]
    first = plain_alerts[0]
    assert (
        first["_id"]
        == f"{plain.id}|tick|{first['ts'].isoformat(timespec='milliseconds').replace('+00:00', 'Z')}"
    )
    assert first["message"] == "AAPL is above 105.00 (last 106.00)" and first["acked"] is False
    assert first["symbol"] == "AAPL" and first["trigger"]["interval"] == "tick"
    snap = eng.snapshot()
    assert snap["fired"] == 7 and snap["suppressed"] == 2 and snap["duplicates"] == 0
    state = store.db["alert_state"].find_one({"_id": cool.id})
    assert state["armed"] is True and state["fired"] == 2 and state["suppressed"] == 2


def test_a_new_rule_fires_at_once_when_its_condition_already_holds_and_crosses_need_a_cross(store, settings):
    book = RuleBook(store)
    above = book.create({"symbol": "MSFT", "kind": "price_above", "level": 50})
    cross = book.create({"symbol": "MSFT", "kind": "price_cross", "level": 105})
    eng = engine(store, settings)
    feed(eng, store, ticks("MSFT", [110, 111, 104, 103, 106, 105, 104]))
    assert len(fired(store, above.id)) == 1
    assert [a["message"] for a in fired(store, cross.id)] == [
        "MSFT crossed down through 105.00 (last 104.00)",
        "MSFT crossed up through 105.00 (last 106.00)",
        "MSFT crossed down through 105.00 (last 104.00)",
    ]


def test_replays_restarts_and_a_second_engine_store_each_alert_once(store, settings):
    book = RuleBook(store)
    rule = book.create({"symbol": "AAPL", "kind": "price_cross", "level": 100})
    pattern = ([95] * 10 + [105] * 10) * 5
    events = ticks("AAPL", pattern, step_s=0.5)
    first = engine(store, settings)
    feed(first, store, events[:60], batch=9)
    assert len(fired(store)) == 5
    feed(first, store, events[:60], batch=13)  # Kafka redelivers what was stored: skipped
    assert len(fired(store)) == 5 and first.snapshot()["replays_skipped"] >= 60
    # "restart": a new engine reads the persisted state; the uncommitted tail is redelivered
    restarted = engine(store, settings)
    feed(restarted, store, events[40:], batch=11)
    # a second process evaluating the same prices from scratch (another group, a failover overlap)
    store.db["alert_state"].delete_many({})
    other = engine(store, settings)
    feed(other, store, events, batch=17)
    alerts = fired(store, rule.id)
    assert len(alerts) == 9, [a["message"] for a in alerts]  # 9 side changes in 100 prices
    assert len({a["_id"] for a in alerts}) == 9
    assert other.snapshot()["duplicates"] >= 5


def test_mongodb_failing_mid_flush_loses_no_alert(store, settings, monkeypatch):
    rule = RuleBook(store).create({"symbol": "AAPL", "kind": "price_above", "level": 100})
    eng = engine(store, settings)
    events = ticks("AAPL", [99, 101])
    from pipeline.alerts import events as ev

    real = ev.insert
    calls = {"n": 0}

    def flaky(db, docs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise AutoReconnect("connection reset")
        return real(db, docs)

    monkeypatch.setattr(ev, "insert", flaky)
    store.write_events(events)
    with pytest.raises(AutoReconnect):
        eng.on_stored(events)
    assert fired(store) == []
    eng.on_stored(events)  # the consumer retries the same batch
    assert [a["rule_id"] for a in fired(store)] == [rule.id]


def test_stale_prices_disabled_and_expired_rules_are_not_evaluated(store, settings):
    book = RuleBook(store)
    expiring = book.create(
        {
            "symbol": "AAPL",
            "kind": "price_above",
            "level": 100,
            "expires_at": utcnow() + timedelta(seconds=30),
        }
    )
    off = book.create({"symbol": "AAPL", "kind": "price_above", "level": 100, "enabled": False})
    old = ticks("AAPL", [101, 99, 101], start=utcnow() - timedelta(hours=2))
    eng = engine(store, settings)
    feed(eng, store, old)
    assert fired(store) == [] and eng.snapshot()["stale"] == 3
    late = ticks("AAPL", [99, 101], start=utcnow() + timedelta(seconds=40) - timedelta(seconds=5))
    feed(eng, store, late)
    assert fired(store) == []
    book.update(expiring.id, {"expires_at": None})
    book.set_enabled(off.id, True)
    feed(eng, store, ticks("AAPL", [101], start=utcnow() + timedelta(seconds=50)))
    assert sorted(a["rule_id"] for a in fired(store)) == sorted([expiring.id, off.id])


def test_pct_change_window_and_since_previous_close(store, settings):
    book = RuleBook(store)
    window = book.create(
        {"symbol": "AAPL", "kind": "pct_change", "pct": 3, "window_s": 60, "direction": "either"}
    )
    down = book.create(
        {"symbol": "AAPL", "kind": "pct_change", "pct": 3, "window_s": 60, "direction": "down"}
    )
    since = book.create({"symbol": "AAPL", "kind": "pct_since_close", "pct": 2, "direction": "up"})
    now = utcnow()
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    store.bars.insert_one(
        {
            "symbol": "AAPL",
            "interval": "1d",
            "ts": day - timedelta(days=1),
            "open": 99,
            "high": 101,
            "low": 98,
            "close": 100.0,
            "volume": 1,
        }
    )
    # 100 for two minutes, a jump to 103.5 (+3.5% in a minute), drift back, then a fall to 96
    prices = [100.0] * 120 + [103.5] * 30 + [101.0] * 90 + [96.0] * 10
    eng = engine(store, settings)
    feed(
        eng, store, ticks("AAPL", prices, start=max(day + timedelta(seconds=1), now - timedelta(seconds=260)))
    )
    moves = fired(store, window.id)
    assert [round(a["value"], 2) for a in moves] == [3.5, -4.95], [a["message"] for a in moves]
    assert moves[0]["message"].startswith("AAPL moved +3.50% within 1 min")
    assert [round(a["value"], 2) for a in fired(store, down.id)] == [-4.95]
    assert [a["message"] for a in fired(store, since.id)] == [
        "AAPL is +3.50% from the previous close (last 103.50)"
    ]


def test_volume_spike(store, settings):
    rule = RuleBook(store).create({"symbol": "NVDA", "kind": "volume_spike", "factor": 4, "lookback_min": 3})
    minute = utcnow().replace(second=0, microsecond=0) - timedelta(minutes=5)
    # 10 ticks a minute, 10 shares each (100 a minute), then a minute with five ticks of 80 shares
    volumes = [10] * 40 + [80] * 5 + [10] * 5 + [10] * 10
    events = ticks("NVDA", [100] * 60, start=minute, step_s=6, volumes=volumes)
    eng = engine(store, settings)
    feed(eng, store, events)
    alerts = fired(store, rule.id)
    assert len(alerts) == 1
    assert alerts[0]["ts"] == events[44].ts  # 5 x 80 = 400 >= 4 x 100 on the minute's 5th tick
    assert alerts[0]["message"].startswith(
        "NVDA volume this minute is 4.0× the average minute of the last 3 min"
    )


def test_rsi_matches_the_dashboard_indicator_and_sma_cross_fires_on_the_cross(store, tmp_path, stack):
    settings = make_settings(stack, tmp_path, alert_max_age_s=0)
    rng = np.random.default_rng(3)
    closes = list(100 * np.exp(np.cumsum(rng.normal(0, 0.01, 200))))
    series = Series("X", keep={"5m": 14 * 5 + 1})
    start = 1_700_000_100 - 1_700_000_100 % 300
    for i, c in enumerate(closes[:-1]):
        series.add(start + 300 * i + 10, c, 1.0)
    at = start + 300 * (len(closes) - 1) + 10
    ours = series.rsi("5m", 14, at, closes[-1])
    theirs = analytics.rsi(pd.Series(closes[-(14 * 5 + 2) :]), 14).iloc[-1]
    assert ours == pytest.approx(theirs, rel=1e-9)
    assert series.sma("5m", 20, at, closes[-1]) == pytest.approx(np.mean(closes[-20:]))

    book = RuleBook(store)
    up = book.create(
        {"symbol": "AAPL", "kind": "sma_cross", "fast": 3, "slow": 6, "timeframe": "1m", "direction": "up"}
    )
    hot = book.create({"symbol": "AAPL", "kind": "rsi_above", "level": 70, "period": 5, "timeframe": "1m"})
    t0 = utcnow().replace(second=0, microsecond=0) - timedelta(hours=1)
    minutes = [100 - i for i in range(10)] + [91 + 2 * i for i in range(10)]  # down, then up: one cross up
    feed(
        AlertEngine(store, settings, refresh_s=0.0),
        store,
        ticks("AAPL", minutes, start=t0 + timedelta(seconds=30), step_s=60),
    )
    crosses = fired(store, up.id)
    assert len(crosses) == 1 and "SMA 3 crossed above SMA 6 on 1m bars" in crosses[0]["message"]
    assert len(fired(store, hot.id)) == 1
