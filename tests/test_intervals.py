"""Intervals are defined once: names, spans, bar starts and the roll-up chain, and every provider
mapping is keyed by those names."""

from datetime import UTC, datetime, timedelta, timezone

from pipeline.alerts.kinds import TIMEFRAMES
from pipeline.intervals import INTERVALS, INTRADAY_BARS, LADDER, LIVE_INTERVALS, NAMES, STORED
from pipeline.sources import alphavantage, yahoo

TS = datetime(2026, 11, 26, 14, 37, 42, 123456, tzinfo=UTC)  # a Thursday


def test_names_spans_and_labels():
    assert NAMES == ("tick", "1m", "2m", "5m", "15m", "30m", "1h", "1d", "1wk")
    assert {n: i.seconds for n, i in INTERVALS.items()} == {
        "tick": 0,
        "1m": 60,
        "2m": 120,
        "5m": 300,
        "15m": 900,
        "30m": 1800,
        "1h": 3600,
        "1d": 86400,
        "1wk": 7 * 86400,
    }
    assert INTERVALS["15m"].label == "15 minutes" and INTERVALS["1wk"].span == timedelta(weeks=1)
    assert INTRADAY_BARS == ("1m", "2m", "5m", "15m", "30m", "1h")


def test_bar_starts_are_utc_aligned():
    floors = {n: i.floor(TS) for n, i in INTERVALS.items()}
    assert floors["tick"] == TS
    assert floors["1m"] == datetime(2026, 11, 26, 14, 37, tzinfo=UTC)
    assert floors["2m"] == datetime(2026, 11, 26, 14, 36, tzinfo=UTC)
    assert floors["5m"] == datetime(2026, 11, 26, 14, 35, tzinfo=UTC)
    assert floors["15m"] == datetime(2026, 11, 26, 14, 30, tzinfo=UTC)
    assert floors["30m"] == datetime(2026, 11, 26, 14, 30, tzinfo=UTC)
    assert floors["1h"] == datetime(2026, 11, 26, 14, tzinfo=UTC)
    assert floors["1d"] == datetime(2026, 11, 26, tzinfo=UTC)
    assert floors["1wk"] == datetime(2026, 11, 23, tzinfo=UTC), "weeks start on Monday"
    local = TS.astimezone(timezone(timedelta(hours=9)))  # an aware non-UTC time floors to the same UTC start
    assert INTERVALS["1d"].floor(local) == floors["1d"] and INTERVALS["1d"].floor(local).tzinfo == UTC


def test_rollup_chain_and_what_each_interval_is_read_from():
    assert STORED == ("1m", "5m", "1h", "1d")
    assert [INTERVALS[n].parent for n in STORED] == ["tick", "1m", "5m", "1h"]
    assert {n: INTERVALS[n].level for n in LADDER} == {
        "1m": "1m",
        "5m": "5m",
        "15m": "5m",
        "30m": "5m",
        "1h": "1h",
        "1d": "1d",
        "1wk": "1d",
    }
    for name in STORED[1:]:  # a stored level is a whole number of its parent's bars
        parent = INTERVALS[INTERVALS[name].parent]
        assert INTERVALS[name].seconds % parent.seconds == 0


def test_every_other_interval_table_is_keyed_by_the_shared_names():
    for table in (LADDER, LIVE_INTERVALS, TIMEFRAMES, yahoo.LIMITS, alphavantage.AV_INTERVAL):
        assert set(table) <= set(NAMES), table
