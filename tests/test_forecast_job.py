"""The forecast job against the real embedded MongoDB: stored results keyed by as-of and settings,
truncation invariance, the too-short sentence, the tally Pipeline health shows, the page's reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from support.forecast import Entry, bar_docs, simulated_daily, trend_season

from pipeline import queries
from pipeline.forecast.job import ForecastJob, completed_as_of, future_dates
from pipeline.markets.calendars import market_for

LATER = datetime(2027, 1, 1, tzinfo=UTC)


def strip(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k not in ("computed_at", "_id")}


def test_truncation_invariance_and_keys(store):
    closes, dates = simulated_daily("AAPL", 290)
    cut = 260
    store.bars.insert_many(bar_docs("AAPL", closes[:cut], dates[:cut]))
    job = ForecastJob(store, lambda: [Entry("AAPL")], clock=lambda: LATER)
    as_of = dates[cut - 1]
    assert job.compute("AAPL", as_of) == "ok"
    first = queries.latest_forecast(store, "AAPL", job.settings)
    rows_first = queries.forecast_backtest(store, "AAPL", as_of.isoformat(), job.settings)
    assert first is not None and first["as_of"] == as_of.isoformat() and first["status"] == "ok"
    assert len(rows_first) == 15 and set(rows_first["model"]) == {"naive", "drift", "ets", "theta", "arima"}
    assert len(first["dates"]) == 20 and first["dates"][0] > as_of.isoformat()
    assert set(first["half"]) == {"50", "80", "95"} and set(first["champions"]) == {"1", "5", "20"}

    store.bars.insert_many(bar_docs("AAPL", closes[cut:], dates[cut:]))  # later bars now exist
    assert job.compute("AAPL", as_of) == "ok"  # same as-of again: replaced, not added
    again = store.forecasts.find_one({"symbol": "AAPL", "as_of": as_of.isoformat()}, {"_id": 0})
    rows_again = queries.forecast_backtest(store, "AAPL", as_of.isoformat(), job.settings)
    assert strip(again) == strip(first)
    assert rows_again.equals(rows_first)
    assert store.forecasts.count_documents({"symbol": "AAPL"}) == 1
    assert store.forecast_backtests.count_documents({"symbol": "AAPL"}) == 15

    assert job.compute("AAPL", dates[-1]) == "ok"  # a later as-of is a new document
    newest = queries.latest_forecast(store, "AAPL", job.settings)
    assert newest["as_of"] == dates[-1].isoformat() and strip(newest) != strip(first)


def test_run_tally_short_history_and_failures(store):
    closes, dates = trend_season()
    store.bars.insert_many(bar_docs("TRND", closes, dates))
    store.bars.insert_many(bar_docs("TINY", closes[:120], dates[:120]))
    entries = [Entry("TRND"), Entry("TINY"), Entry("NOBARS")]
    job = ForecastJob(store, lambda: entries, clock=lambda: LATER)
    tally = job.run()
    assert tally["done"] == 1 and tally["skipped"] == 2 and tally["failed"] == 0, tally
    tiny = queries.latest_forecast(store, "TINY", job.settings)
    assert tiny["status"] == "short"
    assert tiny["sentence"] == "TINY has 120 stored daily sessions; forecasts need at least 250."
    snap = job.snapshot()
    assert snap["runs"] == 1 and snap["done"] == 1 and snap["duration_s"] > 0 and not snap["running"]
    trnd = queries.latest_forecast(store, "TRND", job.settings)
    assert trnd["champions"]["5"]["model"] != "naive"
    # the scheduled check skips what is already computed for the completed session
    assert job.run_due()["done"] == 0

    store.forecasts.drop_indexes()
    store.forecasts.insert_one({"symbol": "BAD"})  # unrelated junk does not matter ...
    broken = ForecastJob(store, lambda: [Entry("TRND")], clock=lambda: LATER)
    broken.store = None  # ... but a store that cannot be read is a failure with its reason
    tally = broken.run()
    assert tally["failed"] == 1 and "TRND" in tally["failures"]
    assert broken.snapshot()["failures"]["TRND"].startswith("AttributeError")


def test_completed_session_and_future_dates():
    nyse = market_for("AAPL")
    # Wednesday 2026-06-03 15:00 New York: open, so the latest final bar is Tuesday's
    assert completed_as_of(nyse, datetime(2026, 6, 3, 19, 0, tzinfo=UTC)).isoformat() == "2026-06-02"
    # the same day after the close: Wednesday's bar is final
    assert completed_as_of(nyse, datetime(2026, 6, 3, 21, 0, tzinfo=UTC)).isoformat() == "2026-06-03"
    # Sunday evening 2026-12-06 in New York (the walk-through's Monday 01:44 UTC): Friday's session,
    # not Saturday's non-session; Monday before the open after Thanksgiving week likewise
    assert completed_as_of(nyse, datetime(2026, 12, 7, 1, 44, tzinfo=UTC)).isoformat() == "2026-12-04"
    assert completed_as_of(nyse, datetime(2026, 11, 27, 13, 0, tzinfo=UTC)).isoformat() == "2026-11-25"
    days = future_dates(nyse, datetime(2026, 6, 30).date(), 5)
    assert [d.isoformat() for d in days] == [
        "2026-07-01",
        "2026-07-02",
        "2026-07-06",
        "2026-07-07",
        "2026-07-08",
    ]
    assert all(d.weekday() < 5 for d in future_dates(nyse, datetime(2026, 6, 30).date())) and timedelta


def test_health_row_of_the_forecast_job():
    from pipeline.health import rules as health

    assert health.forecast_job({}) is None  # pipeline stopped: no row
    assert (
        health.forecast_job({"forecasts": {"last_run": None, "running": True}}).reason
        == "running its first pass"
    )
    ok = health.forecast_job(
        {"forecasts": {"last_run": 1_800_000_000, "duration_s": 12.5, "done": 3, "skipped": 1, "failed": 0}}
    )
    assert ok.level == "OK" and "in 12.5 s: 3 done, 1 with too little history" in ok.reason
    bad = health.forecast_job(
        {"forecasts": {"last_run": 1_800_000_000, "duration_s": 1.0, "failed": 1, "failures": {"X": "boom"}}}
    )
    assert bad.level == "ERR" and "1 failed (X: boom)" in bad.reason


def test_on_demand_request_runs_on_the_scheduler(store):
    from apscheduler.schedulers.background import BackgroundScheduler
    from support.pipeline import wait_for

    closes, dates = trend_season()
    store.bars.insert_many(bar_docs("TRND", closes, dates))
    scheduler = BackgroundScheduler(timezone=UTC)
    scheduler.start()
    try:
        job = ForecastJob(store, lambda: [Entry("TRND")], clock=lambda: LATER).attach(scheduler)
        assert scheduler.get_job("forecast") is not None  # the periodic check is registered
        job.request(["TRND"])
        wait_for(lambda: job.snapshot()["runs"] >= 1, 300, what="the requested forecast run")
        assert job.snapshot()["done"] == 1
        assert queries.latest_forecast(store, "TRND", job.settings)["status"] == "ok"
    finally:
        scheduler.shutdown(wait=True)


def test_a_run_stops_between_symbols_when_the_scheduler_pauses(store):
    from apscheduler.schedulers.background import BackgroundScheduler

    closes, dates = trend_season()
    for s in ("A1", "A2"):
        store.bars.insert_many(bar_docs(s, closes, dates))
    scheduler = BackgroundScheduler(timezone=UTC)
    scheduler.start()
    try:
        job = ForecastJob(store, lambda: [Entry("A1"), Entry("A2")], clock=lambda: LATER).attach(scheduler)
        scheduler.pause()  # what Producer.stop does first
        assert job.run()["done"] == 0
        scheduler.resume()
        assert job.run()["done"] == 2
    finally:
        scheduler.shutdown(wait=True)


def test_a_backfilled_symbol_is_forecast_once_its_history_is_stored_newest_first(store, monkeypatch):
    """Issue 22: a first start shows forecasts without waiting for the periodic check. The job waits
    for the consumer to store the history (here: inserted after the backfills said done), takes the
    newest backfill first, redoes a "short" sentence the periodic check stored while the history was
    still arriving, and takes a history still short after BACKFILL_WAIT_S as it is."""
    from apscheduler.schedulers.background import BackgroundScheduler
    from support.pipeline import wait_for

    from pipeline.forecast import job as job_module

    closes, dates = trend_season()
    entries = [Entry("OLD"), Entry("NEW"), Entry("SHORT")]
    job = ForecastJob(store, lambda: entries, clock=lambda: LATER)
    assert job.run(["NEW"], force=False)["skipped"] == 1  # the periodic check, before NEW's bars came
    assert queries.latest_forecast(store, "NEW", job.settings)["status"] == "short"
    job.backfilled("OLD")
    job.backfilled("NEW")  # finished later: forecast first
    assert job.snapshot()["waiting"] == ["NEW", "OLD"]  # not attached yet: both wait
    job.prefer("OLD")  # the Forecast page shows OLD: it goes first
    assert job.snapshot()["waiting"] == ["OLD", "NEW"]
    job.prefer("ELSEWHERE")  # a page on a symbol that does not wait changes nothing else
    assert job.snapshot()["waiting"] == ["NEW", "OLD"]
    store.bars.insert_many(bar_docs("OLD", closes, dates))
    store.bars.insert_many(bar_docs("NEW", closes, dates))
    order: list[str] = []
    compute = job.compute

    def recorded(s, *a, **k):  # one real fit (NEW) is proof enough; OLD's order is what counts
        order.append(s)
        return compute(s, *a, **k) if s == "NEW" else "ok"

    monkeypatch.setattr(job, "compute", recorded)
    scheduler = BackgroundScheduler(timezone=UTC)
    scheduler.start()
    try:
        job.attach(scheduler)  # starts the loop for what was backfilled before
        wait_for(
            lambda: order == ["NEW", "OLD"] and not job.snapshot()["waiting"], 300, what="both forecasts"
        )
        wait_for(
            lambda: queries.latest_forecast(store, "NEW", job.settings)["status"] == "ok", 300, what="NEW"
        )
        monkeypatch.setattr(job, "compute", compute)
        monkeypatch.setattr(job_module, "BACKFILL_WAIT_S", 0.0)  # a history that never grows
        store.bars.insert_many(bar_docs("SHORT", closes[:40], dates[:40]))
        job.backfilled("SHORT")
        wait_for(lambda: queries.latest_forecast(store, "SHORT", job.settings), 60, what="the short sentence")
        assert queries.latest_forecast(store, "SHORT", job.settings)["status"] == "short"
        wait_for(lambda: not job._fresh_running, 60, what="the loop to end with nothing left")
        job.backfilled("OLD")  # a later backfill starts a new loop
        wait_for(lambda: not job.snapshot()["waiting"], 60, what="the next loop")
    finally:
        scheduler.shutdown(wait=True)
