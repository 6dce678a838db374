"""pipeline.queries against the real embedded MongoDB-wire server: intervals served from the right
stored level and aggregated in MongoDB, the 5,000-point cap, quotes, sparklines and the CSV."""

import csv
import io
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest
from support.base import drop_database, unique
from support.market_data import rollup, seed_bars

from pipeline import queries as q
from pipeline.models import PriceEvent, validate

END = datetime(2025, 3, 5, 15, 0, tzinfo=UTC)  # a Wednesday


def test_plan_interval_widens_and_says_so():
    start = END - timedelta(days=30)
    assert q.plan_interval("1h", start, END) == ("1h", None)
    used, note = q.plan_interval("1m", start, END)
    assert used == "15m"  # 43,200 and 8,640 points are over 5,000; 2,880 is not
    assert "43,200 points per symbol" in note and "15 minutes" in note and "5,000" in note
    assert q.plan_interval("1m", END - timedelta(hours=2), END) == ("1m", None)
    assert q.auto_interval(start, END) == "1h"
    assert q.auto_interval(END - timedelta(days=1), END) == "1m"
    assert q.auto_interval(END - timedelta(days=3650), END) == "1wk"
    with pytest.raises(ValueError):
        q.plan_interval("7m", start, END)


def test_pipeline_reads_the_coarsest_level_and_regroups_in_mongodb():
    p15 = q.bar_pipeline("A", "15m", END - timedelta(days=1), END)
    assert p15[0]["$match"] == {
        "symbol": "A",
        "interval": "5m",
        "ts": {"$gte": END - timedelta(days=1), "$lt": END},
    }
    assert p15[2]["$group"]["_id"]["$dateTrunc"] == {"date": "$ts", "unit": "minute", "binSize": 15}
    p1h = q.bar_pipeline("A", "1h", END - timedelta(days=1), END)
    assert p1h[0]["$match"]["interval"] == "1h" and not any("$group" in s for s in p1h)
    wk = q.bar_pipeline("A", "1wk", END - timedelta(days=90), END)
    assert wk[0]["$match"]["interval"] == "1d"
    assert wk[2]["$group"]["_id"]["$dateTrunc"]["unit"] == "week"


def test_bar_queries_walk_the_index(seeded):
    store, _ = seeded
    plan = store.bars.find(q.bar_pipeline("AAA", "1h", END - timedelta(days=1), END)[0]["$match"]).explain()
    assert "IXSCAN" in str(plan["queryPlanner"]["winningPlan"])


@pytest.fixture(scope="module")
def seeded(stack):
    """Nine days of two symbols, stored once for the module (the embedded server stores ~5k docs/s)."""
    from pipeline.store import Store

    store = Store.from_uri(stack.mongodb_uri, unique("tq").replace("-", "_"))
    store.ensure_indexes()
    frame = seed_bars(store, ["AAA", "BBB"], days=9, end=END, ticks=False)
    yield store, frame
    drop_database(store.client, store.db.name)
    store.close()


@pytest.mark.parametrize("interval,rule", [("1m", None), ("15m", "15min"), ("1h", "1h"), ("1d", "1D")])
def test_bars_match_a_pandas_resample_of_the_minutes(seeded, interval, rule):
    store, minutes = seeded
    start, end = END - timedelta(days=2), END - timedelta(hours=3)
    result = q.bars(store, ["AAA", "BBB"], interval, start, end)
    assert result.interval == interval and result.note is None
    got = result.frame
    assert list(got.columns) == q.BAR_COLUMNS + (["session"] if interval == "1d" else [])
    assert set(got["interval"]) == {interval}
    if rule is None:
        want = minutes
    elif rule == "1D":  # stored daily bars are whole UTC days; the range selects those starting inside it
        want = rollup(minutes, rule)
    else:
        want = rollup(minutes, rule)
    want = (
        want[(want["ts"] >= start) & (want["ts"] < end)].sort_values(["symbol", "ts"]).reset_index(drop=True)
    )
    assert len(got) == len(want) > 0
    for col in ("open", "high", "low", "close", "volume"):
        assert got[col].to_numpy() == pytest.approx(want[col].to_numpy()), col
    assert (got["ts"].reset_index(drop=True) == want["ts"]).all()
    assert result.counts == {"AAA": len(want) // 2, "BBB": len(want) // 2}


def test_weekly_bars_start_on_monday_and_sum_the_days(seeded):
    store, minutes = seeded
    result = q.bars(store, ["AAA"], "1wk", END - timedelta(days=30), END)
    days = rollup(minutes[minutes.symbol == "AAA"], "1D")
    assert all(ts.weekday() == 0 for ts in result.frame["ts"])
    monday = result.frame.iloc[-1]
    week = days[days["ts"] >= monday["ts"]]
    assert monday["volume"] == pytest.approx(week["volume"].sum())
    assert monday["close"] == pytest.approx(week["close"].iloc[-1])


def test_max_points_widens_the_interval(seeded):
    store, _ = seeded
    result = q.bars(store, ["AAA"], "1m", END - timedelta(days=8), END, max_points=500)
    assert result.interval == "30m" and result.requested == "1m"  # 8 days: 768 at 15m, 384 at 30m
    assert "stay under 500" in result.note
    assert 300 < len(result.frame) <= 500


def test_recent_bars_include_warmup_before_the_window(seeded):
    store, _ = seeded
    result = q.recent_bars(store, ["AAA"], "5m", timedelta(hours=2), warmup=30, now=END)
    ts = result.frame["ts"]
    assert ts.min() <= END - timedelta(hours=2) - timedelta(minutes=5 * 29)
    assert ts.max() <= END


def test_csv_has_the_replay_columns_and_every_row_is_a_valid_event(seeded):
    store, _ = seeded
    result = q.bars(store, ["AAA", "BBB"], "1h", END - timedelta(days=1), END)
    text = q.to_csv(result.frame)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert text.splitlines()[0] == "symbol,interval,ts,open,high,low,close,volume"
    assert len(rows) == len(result.frame)
    for row, (_, want) in zip(rows, result.frame.iterrows(), strict=False):
        event = validate(
            {
                **row,
                **{k: float(row[k]) for k in ("open", "high", "low", "close", "volume")},
                "schema": 1,
                "source": "csv",
            }
        )
        assert event.ts == want["ts"].to_pydatetime() and event.close == want["close"]


def test_csv_of_daily_and_weekly_bars_has_their_session_dates(store):
    """SAP.DE's sessions of Easter week 2024 (Monday 1 April is a Xetra holiday), as a source stamps
    them (local midnight, 22:00 UTC the day before), through the real bar builder."""
    from pipeline.bars import BarBuilder
    from pipeline.markets.calendars import day_start_utc

    days = [date(2024, 4, d) for d in (2, 3, 4, 5, 8)]
    events = [
        validate(
            {
                "schema": 1,
                "source": "csv",
                "symbol": "SAP.DE",
                "interval": "1d",
                "ts": day_start_utc(d, "Europe/Berlin"),
                "open": 170.0 + i,
                "high": 172.0 + i,
                "low": 169.0 + i,
                "close": 171.0 + i,
                "volume": 1000.0,
            }
        )
        for i, d in enumerate(days)
    ]
    store.write_events(events)
    BarBuilder(store).run_once()
    start, end = datetime(2024, 3, 25, tzinfo=UTC), datetime(2024, 4, 13, tzinfo=UTC)
    daily = list(csv.DictReader(io.StringIO(q.to_csv(q.bars(store, ["SAP.DE"], "1d", start, end).frame))))
    assert [r["session"] for r in daily] == [d.isoformat() for d in days]
    assert [r["ts"][:10] for r in daily] == [d.isoformat() for d in days]  # never the UTC day before
    assert [float(r["close"]) for r in daily] == [171.0, 172.0, 173.0, 174.0, 175.0]
    weekly = list(csv.DictReader(io.StringIO(q.to_csv(q.bars(store, ["SAP.DE"], "1wk", start, end).frame))))
    # a week is dated by its first session: Tuesday 2 April (its bar starts on the holiday Monday)
    assert [(r["ts"][:10], r["session"]) for r in weekly] == [
        ("2024-04-01", "2024-04-02"),
        ("2024-04-08", "2024-04-08"),
    ]
    assert float(weekly[0]["volume"]) == 4000.0
    minutes = q.to_csv(q.bars(store, ["SAP.DE"], "1h", start, end).frame)
    assert minutes.splitlines()[0] == ",".join(q.BAR_COLUMNS)  # intraday bars: no session column


def test_bars_of_events_written_through_the_real_rollup(store):
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=45)
    events = [
        PriceEvent(
            symbol="RLP",
            interval="1m",
            ts=start + timedelta(minutes=i),
            open=10 + i,
            high=11 + i,
            low=9 + i,
            close=10.5 + i,
            volume=100 + i,
            source="test",
        )
        for i in range(45)
    ]
    store.write_events(events)
    from pipeline.bars import BarBuilder

    BarBuilder(store).run_once()
    result = q.bars(store, ["RLP"], "15m", start - timedelta(hours=1), start + timedelta(hours=1))
    frame = pd.DataFrame([e.to_document() for e in events])
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    want = rollup(frame, "15min")
    assert result.frame["close"].tolist() == pytest.approx(want["close"].tolist())
    assert result.frame["volume"].tolist() == pytest.approx(want["volume"].tolist())


def test_quotes_change_since_previous_close_day_range_and_age(store):
    frame = seed_bars(store, ["AAA", "BBB"], days=3)
    result = q.quotes(store, ["AAA", "BBB", "NONE"])
    assert result["symbol"].tolist() == ["AAA", "BBB", "NONE"]
    aaa = result.iloc[0]
    days = rollup(frame[frame.symbol == "AAA"], "1D")
    last_close = frame[frame.symbol == "AAA"]["close"].iloc[-1]
    assert aaa["last"] == pytest.approx(last_close)
    assert aaa["reference"] == "previous close"
    assert aaa["prev_close"] == pytest.approx(days["close"].iloc[-2])
    assert aaa["change"] == pytest.approx(last_close - days["close"].iloc[-2])
    assert aaa["change_pct"] == pytest.approx((last_close / days["close"].iloc[-2] - 1) * 100)
    assert aaa["day_high"] == pytest.approx(days["high"].iloc[-1])
    assert aaa["volume"] == pytest.approx(days["volume"].iloc[-1])
    assert 0 <= aaa["age_s"] < 120
    assert pd.isna(result.iloc[2]["last"]) and pd.isna(result.iloc[2]["change"])


def test_a_weekend_price_changes_against_fridays_close_not_the_day_before(store):
    """The simulator ticks on a Sunday (STOCKMON_SIM_HOURS=always): the newest session is Friday, so
    the change is against Friday's close and Friday's range is not stretched by Sunday's price. The
    walk-through saw TSLA "-13.84%" on a closed Sunday (Sunday against Saturday)."""
    thursday, friday = datetime(2026, 12, 3, tzinfo=UTC), datetime(2026, 12, 4, tzinfo=UTC)  # day keys
    for ts, close in ((thursday, 100.0), (friday, 102.0)):
        store.bars.insert_one(
            {"symbol": "AAPL", "interval": "1d", "ts": ts, "open": close - 1, "high": close + 1,
             "low": close - 2, "close": close, "volume": 1e6}
        )  # fmt: skip
    sunday = datetime(2026, 12, 6, 20, 0, tzinfo=UTC)  # 15:00 in New York
    store.prices.insert_one(
        {"symbol": "AAPL", "interval": "tick", "ts": sunday, "open": 110.0, "high": 110.0, "low": 110.0,
         "close": 110.0, "volume": 1.0, "source": "simulated", "fetched_at": sunday, "schema": 1}
    )  # fmt: skip
    row = q.quotes(store, ["AAPL"], now=sunday + timedelta(seconds=5)).iloc[0]
    assert row["last"] == 110.0 and row["prev_close"] == 102.0 and row["reference"] == "previous close"
    assert row["change"] == pytest.approx(8.0) and row["change_pct"] == pytest.approx(8.0 / 102.0 * 100)
    assert (row["day_low"], row["day_high"]) == (100.0, 103.0)  # Friday's range, not stretched to 110
    # during Friday's session the same stored days give the usual change against Thursday
    store.prices.delete_many({})
    friday_tick = datetime(2026, 12, 4, 18, 0, tzinfo=UTC)
    store.prices.insert_one(
        {"symbol": "AAPL", "interval": "tick", "ts": friday_tick, "open": 104.0, "high": 104.0,
         "low": 104.0, "close": 104.0, "volume": 1.0, "source": "simulated", "fetched_at": friday_tick,
         "schema": 1}
    )  # fmt: skip
    row = q.quotes(store, ["AAPL"], now=friday_tick + timedelta(seconds=5)).iloc[0]
    assert row["prev_close"] == 100.0 and row["day_high"] == 104.0


@pytest.mark.parametrize("symbol", ["7203.T", "VOD.L", "BTC-USD", "AAPL"])
def test_a_price_from_the_newest_daily_bar_changes_against_the_session_before(store, symbol):
    """Review: with only daily bars stored (a weekend, a symbol just backfilled), the last price is
    the newest bar's close; dated at UTC midnight after it, east of UTC that is the next local date,
    and the change compared Tokyo's close with itself (0.00 %)."""
    thursday, friday = datetime(2026, 12, 3, tzinfo=UTC), datetime(2026, 12, 4, tzinfo=UTC)  # day keys
    for ts, close in ((thursday, 100.0), (friday, 102.0)):
        store.bars.insert_one(
            {"symbol": symbol, "interval": "1d", "ts": ts, "open": close - 1, "high": close + 1,
             "low": close - 2, "close": close, "volume": 1e6}
        )  # fmt: skip
    saturday = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    row = q.quotes(store, [symbol], now=saturday).iloc[0]
    assert row["last"] == 102.0 and row["prev_close"] == 100.0 and row["change"] == pytest.approx(2.0)


def test_sparklines_fall_back_to_finer_levels_for_new_symbols(store):
    seed_bars(store, ["OLD"], days=3, ticks=False)
    seed_bars(store, ["NEW"], days=0.05, ticks=False)  # 72 minutes
    lines = q.sparklines(store, ["OLD", "NEW", "NONE"])
    assert 50 <= len(lines["OLD"]) <= 120
    assert len(lines["NEW"]) >= 12
    assert lines["NONE"] == []


def test_backfills_and_collection_details(store):
    store.backfills.insert_one(
        {
            "_id": "AAA",
            "symbol": "AAA",
            "status": "running",
            "done": 1,
            "total": 3,
            "requested_at": datetime.now(UTC),
        }
    )
    seed_bars(store, ["AAA"], days=0.01, ticks=False)
    assert q.backfills(store)[0]["status"] == "running"
    details = {d["collection"]: d for d in q.collection_details(store)}
    assert details["bars"]["documents"] >= 14 and "business_key" in details["bars"]["indexes"]
    # the embedded server's way: counts and index names, no sizes (collStats walks every document)
    quick = {d["collection"]: d for d in q.collection_details(store, sizes=False)}
    assert quick["bars"]["documents"] == details["bars"]["documents"] and quick["bars"]["size_mb"] is None
    assert quick["bars"]["indexes"] == details["bars"]["indexes"]
