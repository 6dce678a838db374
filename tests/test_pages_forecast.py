"""Forecast page through AppTest, on forecasts the real job stored in the real embedded MongoDB: a
random walk draws the naive forecast with the sentence; a trend + season series draws the winning
model's point forecast; bands, the table with its naive row, the coverage chart, the CSV, staleness."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from support.forecast import Entry, bar_docs, simulated_daily, trend_season
from support.pages import (
    app,
    assert_clean,
    configure,
    fragments,
    full_runs,
    plotly_specs,
    seeded_store,
    texts,
    tick,
)

from pipeline import queries
from pipeline.forecast.backtest import settings_hash
from pipeline.forecast.job import ForecastJob

LATER = datetime(2027, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def series():
    # seed 1: a walk on which no model beats naive at 1, 5 or 20 sessions (seed 7 let Theta win at 5 by
    # chance once daily history stopped having holidays)
    return {"AAPL": simulated_daily("AAPL", 260, seed=1), "TRND": trend_season(), "TINY": trend_season()}


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
        "No model beat 'next close = last close' for AAPL at 5 sessions by 2% with honest 95% bands over "
        "the last 27 origins; the closest was " in words
    )
    assert "against naive's " in words and "(best: " not in words
    assert "MASE below 1" not in words and "Hyndman & Koehler 2006" in words
    table = at.dataframe[0].value
    naive_mase = table.set_index("Model").loc["Naive", "MASE"]
    assert f"so 'next close = last close' itself scores {naive_mase:.2f} here" in words  # the table's figure
    assert "scores above 1" not in words
    assert "Not investment advice" in words and "as of" in words
    fan, cover = plotly_specs(at)
    assert names(fan) == ["95% band", "80% band", "50% band", "Daily close", "Naive forecast"]
    forecast_y = fan["data"][-1]["y"]
    assert len(set(round(v, 6) for v in forecast_y)) == 1  # naive: flat from the last close
    assert len(forecast_y) == 6  # the chosen horizon (5 sessions) from the last close, not all 20
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
    assert len(y) == 6 and y[-1] > y[0] * 1.01  # the trend (+0.3%/session) carried 5 sessions forward
    assert "beat 'next close = last close' for TRND at 5 sessions" in texts(at)

    at = app("forecast", query={"symbol": "TRND", "h": "20"}).run()
    assert_clean(at)
    assert at.radio[0].value == 20 and "for TRND at 20 sessions" in texts(at)
    assert (at.dataframe[0].value["Origins"] == 24).all()
    assert len(plotly_specs(at)[0]["data"][-1]["y"]) == 21  # 20 sessions after the last close
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


def producing(monkeypatch) -> None:
    """The page as while the pipeline runs (these tests start none): a short result may be replaced."""
    from pipeline.runtime import Runtime

    monkeypatch.setattr(Runtime, "producing", property(lambda self: True))


def short_then_ok(settings, store, series, ready, monkeypatch):
    """IBM's walk-through: a "short" result stored from its first 2 sessions; ``ready(doc)`` says
    why the page waits (a backfill that finished after it, or Compute now); then the full history
    is stored and forecast. The page, opened on the short result, draws the forecast by itself."""
    closes, dates = series["AAPL"]
    producing(monkeypatch)
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
    runs = full_runs(monkeypatch)
    tick(at, "until_changed")  # nothing new stored: still waiting, still polling
    assert_clean(at)
    assert not runs  # the fragment alone looked again; the rest of the page stayed as drawn
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

        short_then_ok(settings, store, series, backfill_done_after, monkeypatch)


def test_compute_now_on_a_short_result_waits_for_the_new_one(stack, tmp_path, app_env, monkeypatch, series):
    settings = configure(stack, tmp_path, app_env, monkeypatch)
    with seeded_store(settings, ["IBM"]) as (store, _):
        # "Compute now" pressed on the short result (the job itself is not running in this test)
        short_then_ok(
            settings,
            store,
            series,
            lambda short: {"forecast_asked": {"IBM": (("short", str(short["computed_at"])), time.time())}},
            monkeypatch,
        )


def test_a_short_result_nothing_will_replace_does_not_poll(stack, tmp_path, app_env, monkeypatch, series):
    """Review of the polling: a short result whose backfill finished long ago (its forecast attempt
    was made; a restart lost the job's queue), a Compute now older than ASK_WAIT_S, or a stopped
    pipeline: the page shows the stored sentence and Compute now, and polls nothing."""
    settings = configure(stack, tmp_path, app_env, monkeypatch)
    with seeded_store(settings, ["IBM"]) as (store, _):
        closes, dates = series["AAPL"]
        computed = datetime(2026, 1, 5, tzinfo=UTC)
        job = ForecastJob(store, lambda: [Entry("IBM")], clock=lambda: computed)
        store.bars.insert_many(bar_docs("IBM", closes[:2], dates[:2]))
        job.run(["IBM"])
        short = queries.latest_forecast(store, "IBM", settings_hash())
        store.request_backfill("IBM", "simulated")
        store.update_backfill("IBM", status="done", finished_at=computed + timedelta(seconds=1))
        stale_ask = {"forecast_asked": {"IBM": (("short", str(short["computed_at"])), time.time() - 600)}}
        for running in (False, True):
            if running:
                producing(monkeypatch)
            at = app("forecast", query={"symbol": "IBM", "h": "5"}, state=stale_ask).run()
            assert_clean(at)
            assert "IBM has 2 stored daily sessions" in texts(at) and "This page draws" not in texts(at)
            assert not fragments(at, "until_changed"), running
            assert [b.label for b in at.button] == ["Compute now"]


@pytest.mark.parametrize("horizon", [1, 5, 20])
def test_the_fan_ends_at_the_chosen_horizon_and_labels_the_last_close(horizon):
    """Walk-through: with "Horizon 5" the fan ran 20 sessions (to January) and its "as of" label sat
    under the dotted marker. The path and every band stop at the horizon; the label says "last close"
    and ends left of the marker."""
    import pandas as pd

    from pipeline.forecast.models import HORIZONS
    from ui import forecast as view

    steps = max(HORIZONS)
    doc = {
        "as_of": "2026-12-04",
        "last_close": 100.0,
        "dates": [f"2026-12-{d:02d}" for d in range(7, 7 + steps)],
        "paths": {"naive": [100.0] * steps},
        "half": {str(level): [0.01 * (k + 1) for k in range(steps)] for level in (50, 80, 95)},
    }
    history = pd.DataFrame({"ts": pd.to_datetime(["2026-12-03", "2026-12-04"]), "close": [99.0, 100.0]})
    fig = view.fan(history, doc, "naive", horizon)
    by_name = {t.name: t for t in fig.data}
    assert len(by_name["Naive forecast"].x) == horizon + 1
    assert str(by_name["Naive forecast"].x[-1]) == doc["dates"][horizon - 1]
    for level in (95, 80, 50):
        assert len(by_name[f"{level}% band"].x) == 2 * (horizon + 1)
    assert len(by_name["Daily close"].x) == 2
    (label,) = fig.layout.annotations
    assert label.text == "last close" and label.xanchor == "right" and label.xshift < 0


def test_coverage_lines_that_coincide_stay_distinguishable_and_the_y_axis_fits_the_data():
    """Walk-through: five models measured the same coverage, so one line hid the others, and the
    y-axis started at 40 for data between 58 and 96."""
    import pandas as pd

    from ui import forecast as view

    labels = ["Naive", "Random walk with drift", "Exponential smoothing", "Theta", "ARIMA"]
    rows = pd.DataFrame({"label": labels, "cover80": [0.58] * 5, "cover95": [0.96] * 5})
    fig = view.coverage(rows)
    lines = [t for t in fig.data if t.name in labels]
    assert len(lines) == 5
    looks = {(t.marker.symbol, t.marker.size, t.line.dash) for t in lines}
    assert len({t.marker.symbol for t in lines}) == 5 and len({t.line.dash for t in lines}) == 5, looks
    assert all(list(t.x) == [80, 95] and list(t.y) == pytest.approx([58.0, 96.0]) for t in lines)  # no jitter
    lo, hi = fig.layout.yaxis.range
    assert 50 < lo < 58 and 96 < hi <= 102, (lo, hi)  # the data and the diagonal (80, 95), a margin
