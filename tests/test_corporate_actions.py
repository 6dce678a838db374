"""Splits and dividends (issue 19, kind 1). AMZN's 20:1 split: days stored before it kept the old
scale (1898.01) while Yahoo served 94.90 for the same day, a false -95 % cliff in History, Insights
and forecasts. Here the split happens while the app runs, end to end: the fake Yahoo server (wire
format, ``events.splits``) -> the app's source -> Kafka -> MongoDB -> the bars History reads."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from support.base import make_settings
from support.fake_market import FakeMarket
from support.pipeline import wait_for

from pipeline import corporate_actions, queries
from pipeline.runtime import Runtime

NY = ZoneInfo("America/New_York")


def test_as_traded_and_dividend_adjusted_views_of_split_adjusted_bars():
    ts = pd.to_datetime(["2022-06-02", "2022-06-03", "2022-06-06", "2022-06-07"]).tz_localize(UTC)
    frame = pd.DataFrame(
        {"symbol": "AMZN", "interval": "1d", "ts": ts, "open": 94.0, "high": 95.0, "low": 93.0, "close": [94.9, 92.3, 124.8, 122.4],
         "volume": [2_000_000.0] * 4}
    )  # fmt: skip
    split = {"symbol": "AMZN", "kind": "split", "ex_date": "2022-06-06", "ratio": 20.0}
    traded = corporate_actions.as_traded(frame, [split])
    assert traded["close"].tolist() == pytest.approx([1898.0, 1846.0, 124.8, 122.4])
    assert traded["volume"].tolist() == [100_000.0, 100_000.0, 2_000_000.0, 2_000_000.0]
    dividend = {"symbol": "AMZN", "kind": "dividend", "ex_date": "2022-06-07", "amount": 1.248}
    adjusted = corporate_actions.dividend_adjusted(frame, [split, dividend])
    assert adjusted["close"].tolist() == pytest.approx([94.9 * 0.99, 92.3 * 0.99, 124.8 * 0.99, 122.4])
    other = corporate_actions.as_traded(frame.assign(symbol="MSFT"), [split])
    assert other["close"].tolist() == frame["close"].tolist()  # another symbol's split changes nothing


def test_a_split_seen_while_the_app_runs_rescales_the_stored_history_once(stack, tmp_path):
    with FakeMarket() as fake:
        settings = make_settings(
            stack, tmp_path, source="yfinance", yahoo_url=fake.url, yahoo_live="poll",
            watchlist=("AMZN",), backfill_days_daily=8, poll_seconds=2.0,
        )  # fmt: skip
        runtime = Runtime(settings).start()
        try:
            assert runtime.state == "running", runtime.error
            store = runtime.store

            def daily():
                return list(store.prices.find({"symbol": "AMZN", "interval": "1d"}).sort("ts", 1))

            wait_for(lambda: len(daily()) >= 5, 120, what="the daily backfill stored")
            stored = daily()
            ex_day = stored[-3]["ts"].astimezone(NY).date() if stored[-3]["ts"].tzinfo else None
            ex_day = ex_day or stored[-3]["ts"].replace(tzinfo=UTC).astimezone(NY).date()
            before = {d["ts"]: d["close"] for d in stored}
            fake.set_split("AMZN", datetime.combine(ex_day, time(9, 30), NY).timestamp(), 20, 1)
            # the official daily bar of the ex-date is the first answer that carries the split; it
            # holds that day only, so the days before it are on the new scale only if rescaled here
            assert runtime.pipeline.producer.official_days.fetch_day("yfinance", "AMZN", ex_day) >= 1

            start, end = stored[0]["ts"].replace(tzinfo=UTC) - timedelta(days=1), datetime.now(UTC)

            ex_key = pd.Timestamp(datetime.combine(ex_day, time(0), UTC))  # a daily bar's ts: UTC midnight

            def no_cliff():  # up to the ex-date (the fake's later days were served as traded before it)
                frame = queries.bars(store, ["AMZN"], "1d", start, end).frame
                frame = frame[frame["ts"] <= ex_key]
                closes = frame["close"].tolist()
                jumps = [b / a for a, b in zip(closes, closes[1:], strict=False)]
                one_scale = len(closes) >= 3 and max(closes) < 20 and max(jumps) < 1.5 and min(jumps) > 0.67
                return [frame] if one_scale else None

            (frame,) = wait_for(no_cliff, 120, what="History's daily bars on one scale")
            (split,) = queries.corporate_actions(store, ["AMZN"])
            assert (split["kind"], split["ex_date"], split["ratio"]) == ("split", ex_day.isoformat(), 20.0)
            assert split["applied_at"] is not None and split["rescaled"] >= 1
            after = {d["ts"]: d["close"] for d in daily()}
            for ts, close in before.items():
                ts_day = (ts if ts.tzinfo else ts.replace(tzinfo=UTC)).astimezone(NY).date()
                if ts_day < ex_day:  # rescaled here; the ex-date's own bar is the provider's
                    assert after[ts] == pytest.approx(close / 20, rel=0.02), ts
            traded = corporate_actions.as_traded(frame, [split])
            old = traded[
                traded["ts"] < pd.Timestamp(datetime.combine(ex_day, time(0), UTC))
            ]  # daily: UTC midnight
            assert old["close"].max() > 100  # as traded: the old scale, on demand
            # applied once: a second sighting, a re-application and the periodic re-run change nothing
            rescaled = corporate_actions.record_and_apply(store, [{**split, "seen_at": datetime.now(UTC)}])
            assert rescaled == []
            seen = split["seen_at"]
            seen = seen if seen.tzinfo else seen.replace(tzinfo=UTC)
            for _ in range(2):
                assert corporate_actions.apply_split(store, "AMZN", split["ex_date"], 20.0, seen) == 0
                assert corporate_actions.reapply_recent(store, datetime.now(UTC)) == 0
            assert {d["ts"]: d["close"] for d in daily()} == after
            (again,) = queries.corporate_actions(store, ["AMZN"])
            assert again["rescaled"] == split["rescaled"] and again["applied_at"] == split["applied_at"]
            print(
                f"\nsplit {ex_day} 20:1: {split['rescaled']} stored prices rescaled; daily closes {frame['close'].round(2).tolist()}"
            )
        finally:
            runtime.stop()
