"""Forecast page through AppTest, on forecasts the real job stored in the real embedded MongoDB: a
random walk draws the naive forecast with the sentence; a trend + season series draws the winning
model's point forecast; bands, the table with its naive row, the coverage chart, the CSV, staleness."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from support.forecast import Entry, bar_docs, simulated_daily, trend_season
from support.pages import app, assert_clean, configure, fragments, plotly_specs, seeded_store, texts, tick

from pipeline import queries
from pipeline.forecast.backtest import settings_hash
from pipeline.forecast.job import ForecastJob

LATER = datetime(2027, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def series():
    return {"AAPL": simulated_daily("AAPL", 260), "TRND": trend_season(), "TINY": trend_season()}


@pytest.fixture
def seeded(stack, tmp_path, app_env, monkeypatch, series):
    settings = configure(stack, tmp_path, app_env, monkeypatch)
    with seeded_store(settings, ["AAPL", "TRND", "TINY"]) as (store, _):
        for symbol, (closes, dates) in series.items():
            n = 100 if symbol == "TINY" else len(closes)
            store.bars.insert_many(bar_docs(symbol, closes[:n], dates[:n]))
        job = ForecastJob(store, lambda: [Entry("AAPL"), Entry("TRND"), Entry("TINY")], clock=lambda: LATER)
        tally = job.run()
        assert tally["done"] == 2 and tally["skipped"] == 1, tally
        yield settings, store


def names(spec: dict) -> list[str]:
    return [t.get("name") for t in spec["data"]]


def test_random_walk_draws_naive_with_the_sentence(seeded):
    started = time.perf_counter()
    at = app("forecast", query={"symbol": "AAPL", "h": "5"}).run()
    took = time.perf_counter() - started
    print(f"\nForecast page render from stored documents (AppTest, cold): {took * 1000:.0f} ms")
    assert_clean(at)
    words = texts(at)
    assert (
        "No model beat 'next close = last close' for AAPL at 5 sessions over the last 27 origins (best: "
        in words
    )
    assert "Not investment advice" in words and "as of" in words
    fan, cover = plotly_specs(at)
    assert names(fan) == ["95% band", "80% band", "50% band", "Daily close", "Naive forecast"]
    forecast_y = fan["data"][-1]["y"]
    assert len(set(round(v, 6) for v in forecast_y)) == 1  # naive: flat from the last close
    assert names(cover)[0] == "nominal = empirical" and len(cover["data"]) == 6
    table = at.dataframe[0].value
    assert "Naive" in table["Model"].tolist() and len(table) == 5
    assert table["MASE"].is_monotonic_increasing
    assert [b.label for b in at.get("download_button")] == ["⬇️ Download the backtest as CSV"]
    for word in ("buy", "sell"):
        assert word not in words.lower()


def test_trend_series_draws_the_winning_model(seeded):
    at = app("forecast", query={"symbol": "TRND", "h": "5"}).run()
    assert_clean(at)
    fan, _ = plotly_specs(at)
    line = names(fan)[-1]
    assert line.endswith(" forecast") and line != "Naive forecast", names(fan)
    y = fan["data"][-1]["y"]
    assert y[-1] > y[0] * 1.02  # the trend carried forward
    assert "beat 'next close = last close' for TRND at 5 sessions" in texts(at)

    at = app("forecast", query={"symbol": "TRND", "h": "20"}).run()
    assert_clean(at)
    assert at.radio[0].value == 20 and "for TRND at 20 sessions" in texts(at)
    assert (at.dataframe[0].value["Origins"] == 24).all()
    at = app("forecast", query={"symbol": "NOPE", "h": "banana"}).run()  # junk in the URL: defaults
    assert_clean(at)
    assert at.selectbox[0].value == "AAPL" and at.radio[0].value == 5


def test_short_history_says_how_many_sessions(seeded):
    at = app("forecast", query={"symbol": "TINY"}).run()
    assert_clean(at)
    assert "TINY has 100 stored daily sessions; forecasts need at least 250." in texts(at)
    assert not fragments(at, "until_changed")  # a final "short" result: nothing to wait for, no polling


def test_a_symbol_without_a_forecast_says_when_one_comes(stack, tmp_path, app_env, monkeypatch):
    """Before the job has stored anything (the pipeline not started here): a sentence saying when
    forecasts are computed, and the button to compute one now; no chart, no error."""
    settings = configure(stack, tmp_path, app_env, monkeypatch)
    with seeded_store(settings, ["AAPL"]):
        at = app("forecast", query={"symbol": "AAPL"}).run()
        assert_clean(at)
        assert "No forecast is stored for AAPL yet." in texts(at)
        assert "when a symbol's history is backfilled" in texts(at)
        assert [b.label for b in at.button] == ["Compute now"] and not plotly_specs(at)


def short_then_ok(settings, store, series, ready):
    """IBM's walk-through: a "short" result stored from its first 2 sessions; ``ready(doc)`` says
    why the page waits (a backfill that finished after it, or Compute now); then the full history
    is stored and forecast. The page, opened on the short result, draws the forecast by itself."""
    closes, dates = series["AAPL"]
    job = ForecastJob(store, lambda: [Entry("IBM")], clock=lambda: LATER)
    store.bars.insert_many(bar_docs("IBM", closes[:2], dates[:2]))
    assert job.run(["IBM"])["skipped"] == 1
    short = queries.latest_forecast(store, "IBM", settings_hash())
    assert short["status"] == "short"
    state = ready(short)
    at = app("forecast", query={"symbol": "IBM", "h": "5"}, state=state).run()
    assert_clean(at)
    assert "IBM has 2 stored daily sessions" in texts(at) and "This page draws the chart" in texts(at)
    assert not plotly_specs(at)
    tick(at, "until_changed")  # nothing new stored: still waiting, still polling
    assert_clean(at)
    assert "This page draws the chart" in texts(at) and not plotly_specs(at)
    store.bars.insert_many(bar_docs("IBM", closes[2:], dates[2:]))
    assert job.run(["IBM"])["done"] == 1
    tick(at, "until_changed")  # the page's own refresh, same session: the forecast is drawn
    assert_clean(at)
    assert "Backtest at 5 sessions" in [s.value for s in at.subheader], texts(at)
    assert len(plotly_specs(at)) == 2 and "IBM has 2 stored" not in texts(at)


def test_a_short_result_older_than_the_backfill_is_redrawn_when_the_forecast_comes(
    stack, tmp_path, app_env, monkeypatch, series
):
    settings = configure(stack, tmp_path, app_env, monkeypatch)
    with seeded_store(settings, ["IBM"]) as (store, _):

        def backfill_done_after(short):
            store.request_backfill("IBM", "simulated")
            store.update_backfill(
                "IBM", status="done", finished_at=short["computed_at"] + timedelta(seconds=1)
            )
            return {}

        short_then_ok(settings, store, series, backfill_done_after)


def test_compute_now_on_a_short_result_waits_for_the_new_one(stack, tmp_path, app_env, monkeypatch, series):
    settings = configure(stack, tmp_path, app_env, monkeypatch)
    with seeded_store(settings, ["IBM"]) as (store, _):
        # "Compute now" pressed on the short result (the job itself is not running in this test)
        short_then_ok(
            settings,
            store,
            series,
            lambda short: {"forecast_asked": {"IBM": ("short", str(short["computed_at"]))}},
        )
