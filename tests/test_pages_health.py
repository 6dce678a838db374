"""Pipeline health: the Burrow-style status rules (pure), and the page through AppTest with the
pipeline running, stopped, and MongoDB down."""

import time
from pathlib import Path

import pytest
from support.pages import MONGO_DOWN, app, assert_clean, configure, plotly_specs, texts

from pipeline.health import rules as h

NOW = 1_000_000.0


def consumer(**kw):
    base = {
        "running": True,
        "paused": False,
        "lag_total": 0,
        "lag": {},
        "lag_seconds": {},
        "last_commit_at": NOW - 1,
        "per_second_1m": 12.5,
        "retrying_since": None,
        "last_error": None,
    }
    return {"state": "running", "consumer": {**base, **kw}}


def samples(lags, commits, every=5.0):
    return [
        (NOW - every * (len(lags) - 1 - i), lag, c)
        for i, (lag, c) in enumerate(zip(lags, commits, strict=False))
    ]


def test_consumer_ok_when_lag_is_zero():
    s = h.consumer(consumer(), samples([0, 0, 0], [NOW - 11, NOW - 6, NOW - 1]), NOW)
    assert s.level == "OK" and "12.5 events/s" in s.reason


def test_consumer_stall_when_lag_does_not_shrink_and_nothing_is_committed():
    s = h.consumer(
        consumer(lag_total=40, last_commit_at=NOW - 20), samples([30, 35, 40], [NOW - 20] * 3), NOW
    )
    assert s.level == "STALL" and "nothing committed" in s.reason


def test_consumer_warn_when_falling_behind_but_committing():
    s = h.consumer(consumer(lag_total=90), samples([10, 50, 90], [NOW - 11, NOW - 6, NOW - 1]), NOW)
    assert s.level == "WARN" and "falling behind" in s.reason


def test_consumer_ok_when_lag_shrinks_without_commits_in_a_short_window():
    s = h.consumer(consumer(lag_total=10), samples([30, 20, 10], [NOW - 3] * 3, every=1.0), NOW)
    assert s.level == "OK"


def test_consumer_stall_from_a_single_snapshot_after_a_minute_without_commit():
    s = h.consumer(consumer(lag_total=5, last_commit_at=NOW - 90), [], NOW)
    assert s.level == "STALL"


def test_consumer_err_and_stop():
    assert h.consumer(consumer(retrying_since=NOW - 12, last_error="write failed"), [], NOW).level == "ERR"
    assert h.consumer(consumer(running=False), [], NOW).level == "ERR"
    assert h.consumer(consumer(paused=True), [], NOW).level == "STOP"
    assert h.consumer({"state": "stopped", "consumer": None}, [], NOW).level == "STOP"


def test_producer_rules():
    job = {"last_run": NOW - 1, "published": 10, "last_error": None, "per_symbol": {}}
    snap = {"running": True, "paused": False, "jobs": {"simulated": job}, "pending": 0, "lost_overflow": 0}
    assert [s.level for s in h.producer({"producer": snap}, 2.0, NOW)] == ["OK"]
    assert h.producer({"producer": snap}, 2.0, NOW)[0].reason == "10 events published, last run 1 s ago"
    just_now = {**snap, "jobs": {"simulated": {**job, "last_run": NOW + 0.3}}}  # a run that began after NOW
    assert h.producer({"producer": just_now}, 2.0, NOW)[0].reason.endswith("last run 0 s ago")
    late = {**snap, "jobs": {"simulated": {**job, "last_run": NOW - 100}}}
    assert h.producer({"producer": late}, 2.0, NOW)[0].level == "STALL"
    some = {
        **snap,
        "jobs": {
            "yfinance": {
                **job,
                "last_error": "2 symbol(s) failed",
                "per_symbol": {"X": {"last_error": "no data"}, "Y": {"last_error": "x"}},
            }
        },
    }
    warn = h.producer({"producer": some}, 2.0, NOW)[0]
    assert warn.level == "WARN" and warn.reason == "2 symbol(s) failed: X, Y"
    broken = {**snap, "jobs": {"csv": {**job, "last_error": "OSError: gone"}}}
    assert h.producer({"producer": broken}, 2.0, NOW)[0].level == "ERR"
    pending = {**snap, "pending": 7}
    assert [s.level for s in h.producer({"producer": pending}, 2.0, NOW)] == ["OK", "WARN"]
    assert h.producer({"producer": {**snap, "paused": True}}, 2.0, NOW)[0].level == "STOP"


def test_other_components_and_the_worst_status():
    assert h.kafka({"kafka": {"ok": False, "bootstrap": "x:1"}}).level == "ERR"
    assert (
        h.dead_letters(
            {"consumer": {"dead_lettered": 3, "recent_dead_letters": [{"reason": "high below low"}]}}
        ).reason
        == "3 message(s) dead-lettered; latest: high below low"
    )
    assert h.backfills([{"symbol": "A", "status": "failed"}]).level == "WARN"
    assert h.bar_builder({"bars": {"pending_marks": 3, "last_run": NOW - 100}}, NOW).level == "STALL"
    assert h.stack({"mode": "embedded", "stack": [{"name": "kafka", "alive": False}]}).level == "ERR"
    assert h.stack({"mode": "external"}) is None
    statuses = [
        h.ComponentStatus("a", "OK", ""),
        h.ComponentStatus("b", "STALL", ""),
        h.ComponentStatus("c", "WARN", ""),
    ]
    assert h.worst(statuses) == "STALL"


def test_the_overviews_one_line_names_the_worst_first():
    """Issue 22 item 3: servers and pipeline in one line; it asks for attention (opens its details)
    only when something is wrong."""
    ok = {"kafka": {"ok": True, "bootstrap": "x:1"}, "mongo": {"ok": True, "uri": "mongodb://x"}}
    assert h.summary(ok, "running", None) == ("🟢 All systems OK · pipeline running", False)
    assert h.summary(ok, "paused", None) == ("⏸️ Pipeline paused · servers OK", False)
    assert h.summary(ok, "error", None) == ("🔴 Pipeline error · servers OK", True)
    assert h.summary(ok, "running", "the consumer restarted") == ("🟠 Pipeline degraded · servers OK", True)
    mongo_down = {**ok, "mongo": {"ok": False, "uri": "mongodb://x", "error": "timed out"}}
    assert h.summary(mongo_down, "running", "x") == ("🔴 MongoDB is not reachable · pipeline running", True)
    assert h.summary(mongo_down, "starting", None) == (
        "⏳ Pipeline starting · connecting to the servers",
        False,
    )
    both = {"kafka": {"ok": False, "bootstrap": "x:1"}, "mongo": {"ok": False}}
    assert h.servers_down(both) == ["Kafka is not reachable", "MongoDB is not reachable"]
    assert h.servers_down({}) == ["Kafka is not reachable", "MongoDB is not reachable"]


def test_a_count_on_request_runs_only_when_asked():
    """The embedded server counts only when asked (it answers nothing else while it walks the
    collections): ``Periodic(every_s=None)`` never starts from ``get()``, once from ``request()``."""
    import threading

    from ui.data import Periodic

    runs, done = [], threading.Event()

    def count():
        runs.append(1)
        done.set()
        return ["counted"]

    counter = Periodic(count, every_s=None)
    assert counter.get() == (None, None, None) and not counter.running
    assert not done.wait(0.3) and runs == []  # asked for the last answer only: nothing ran
    counter.request()
    assert done.wait(30)
    while counter.running:  # the value is stored just after fn returns
        done.wait(0.01)
    value, at, error = counter.get()
    assert value == ["counted"] and at is not None and error is None and runs == [1]


def test_lag_history_keeps_a_window():
    history = h.LagHistory(keep_s=30)
    for i in range(10):
        history.add({"lag_total": i, "last_commit_at": None}, now=NOW + i * 5)
    assert [s[1] for s in history.window(12, now=NOW + 45)] == [7, 8, 9]
    assert len(history.samples) == 7  # older than 30 s dropped


def test_health_page_with_the_pipeline_running(stack, tmp_path, app_env, monkeypatch):
    configure(stack, tmp_path, app_env, monkeypatch, autostart=True)
    components = ("Kafka", "MongoDB", "Producer · simulated", "Consumer", "Dead-letter topic", "Bar builder")

    def all_ok() -> bool:
        if not at.dataframe or "Overall: **🟢 OK**" not in texts(at) or not plotly_specs(at):
            return False  # (the throughput chart needs a few seconds of samples)
        table = at.dataframe[0].value.set_index("Component")
        return all(c in table.index and table.loc[c, "Status"] == "🟢 OK" for c in components)

    at = app("health", timeout=90).run()
    deadline = time.monotonic() + 60  # a ceiling: the pipeline gets there in seconds
    while not all_ok() and time.monotonic() < deadline:
        time.sleep(1)
        at.run()
    assert_clean(at)
    table = at.dataframe[0].value.set_index("Component")
    for component in components:
        assert table.loc[component, "Status"] == "🟢 OK", table.to_string()
    assert "Overall: **🟢 OK**" in texts(at)
    assert [m.label for m in at.metric][:4] == [
        "Published",
        "Waiting to re-send",
        "Send failures",
        "Lost (buffer full)",
    ]
    assert plotly_specs(at), "the throughput chart is drawn"
    assert "Nothing was dead-lettered" in texts(at)


def test_health_page_lists_the_csv_replays_rows_not_taken(stack, tmp_path, app_env, monkeypatch):
    path = tmp_path / "bars.csv"  # the case file: the same AAPL bar twice, the correction on line 3
    path.write_bytes((Path(__file__).parent / "data" / "cases" / "duplicate_bar_rows.csv").read_bytes())
    monkeypatch.setenv("STOCKMON_CSV_PATH", str(path))  # (settings_env does not carry it)
    configure(
        stack,
        tmp_path,
        app_env,
        monkeypatch,
        autostart=True,
        source="csv",
        csv_path=path,
        watchlist=("AAPL",),
    )

    def listed() -> list[str]:
        return [c.value for c in at.code if c.value.startswith("line 2:")]

    at = app("health", timeout=90).run()
    deadline = time.monotonic() + 60  # a ceiling: the producer's first run reports the source
    while not listed() and time.monotonic() < deadline:
        time.sleep(1)
        at.run()
    assert_clean(at)
    assert listed() == ["line 2: same AAPL 1m bar at 2024-03-05T15:37:00.000Z as line 3, which wins"]
    assert "Rows not taken (1)" in [e.label for e in at.expander]


def test_health_page_with_the_pipeline_stopped(stack, tmp_path, app_env, monkeypatch):
    configure(stack, tmp_path, app_env, monkeypatch)
    at = app("health").run()
    assert_clean(at)
    table = at.dataframe[0].value.set_index("Component")
    assert table.loc["Producer", "Status"] == "⏸️ STOP" and table.loc["Consumer", "Status"] == "⏸️ STOP"
    assert (
        "The producer is not running (pipeline stopped). Start the pipeline on the Overview page."
        in texts(at)
    )


def test_health_page_names_the_last_corporate_action_per_symbol(stack, tmp_path, app_env, monkeypatch):
    """Issue 19: the last split applied to the stored history, per watched symbol."""
    from datetime import UTC, datetime

    import streamlit as st
    from support.pages import seeded_store

    from pipeline import corporate_actions

    settings = configure(stack, tmp_path, app_env, monkeypatch)
    with seeded_store(settings, ["AAPL"]) as (store, _):
        at = app("health").run()
        assert "No split or dividend seen yet." in texts(at)
        seen = datetime(2022, 6, 6, 21, tzinfo=UTC)
        corporate_actions.record_and_apply(
            store,
            [
                {
                    "symbol": "AAPL",
                    "kind": "dividend",
                    "ex_date": "2022-05-06",
                    "amount": 0.23,
                    "seen_at": seen,
                },
                {"symbol": "AAPL", "kind": "split", "ex_date": "2022-06-06", "ratio": 20.0, "seen_at": seen},
            ],
        )
        st.cache_data.clear()  # the page caches these reads for a minute
        at = app("health").run()
        assert_clean(at)
        (rows,) = [d.value for d in at.dataframe if "Last action" in d.value.columns]
        row = rows.set_index("Symbol").loc["AAPL"]
        assert (row["Last action"], row["Ex-date"], row["Prices rescaled"]) == ("split 20:1", "2022-06-06", 0)
        assert row["Last split"] == "split 20:1 on 2022-06-06" and row["Split applied"] != ""


def test_health_page_mongodb_down_is_a_sentence(stack, tmp_path, app_env, monkeypatch):
    configure(stack, tmp_path, app_env, monkeypatch, mongodb_uri=MONGO_DOWN)
    at = app("health").run()
    assert_clean(at)
    assert at.error[0].value.startswith("The pipeline could not start. MongoDB is not reachable.")


@pytest.mark.parametrize("page", ["home", "watchlist", "live", "history", "health"])
def test_every_page_survives_mongodb_dying_after_start(page, stack, tmp_path, app_env, monkeypatch):
    """Start fine, then point the runtime's store at a dead server: a sentence, never a traceback."""
    from pipeline.store import Store
    from pipeline.watchlist import Watchlist

    settings = configure(stack, tmp_path, app_env, monkeypatch)
    Watchlist(Store.from_uri(settings.mongodb_uri, settings.db).watchlist, None).seed(["AAPL"], "simulated")
    at = app(page).run()
    assert_clean(at)
    from ui.runtime import get_runtime

    runtime = get_runtime()
    dead = Store.from_uri(MONGO_DOWN, settings.db, timeout_s=0.5)
    runtime.connection.page_store, runtime.watchlist.collection = dead, dead.watchlist  # what pages use
    import streamlit as st

    st.cache_data.clear()
    said = ("did not answer", "not reachable", "does not answer", "not answering since")
    deadline = time.monotonic() + 30  # a ceiling: the background health check notices within seconds
    while True:
        at.run()
        assert_clean(at)
        page_text = texts(at)
        if "MongoDB" in page_text and any(x in page_text for x in said) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert "MongoDB" in page_text and any(x in page_text for x in said), page_text


def test_alert_engine_and_channel_statuses():
    assert h.alerts({}) == []
    snap = {
        "alerts": {
            "engine": {"active_rules": 3, "fired": 7, "last_error": None},
            "channels": {
                "webhook": {"sent": 4, "failed": 0, "pending": 1},
                "email": {
                    "sent": 2,
                    "failed": 1,
                    "last_error": "535 auth failed",
                    "last_error_at": 10.0,
                    "last_ok_at": 20.0,
                },
                "slack": {
                    "sent": 0,
                    "failed": 2,
                    "last_error": "did not answer within 5 s",
                    "last_error_at": 30.0,
                    "last_ok_at": 5.0,
                },
            },
        }
    }
    statuses = {s.component: (s.level, s.reason) for s in h.alerts(snap)}
    assert statuses["Alerts engine"] == ("OK", "3 active rule(s), 7 fired")
    assert statuses["Alerts · webhook"] == ("OK", "4 sent, 1 waiting")
    assert statuses["Alerts · email"] == ("WARN", "1 failed, 2 sent")
    assert statuses["Alerts · slack"] == ("ERR", "did not answer within 5 s")
    snap["alerts"]["engine"]["last_error"] = "OperationFailure: boom"
    assert h.alerts(snap)[0].level == "ERR"


def test_fixed_hours_sentence_names_the_markets_whose_calendar_failed():
    assert h.fixed_hours({"fixed_hours": {}}) is None and h.fixed_hours({}) is None
    text = h.fixed_hours({"fixed_hours": {"XTAE": "boom", "XBOM": "bang"}})
    assert text.startswith("2 markets on fixed weekday hours") and text.endswith(": XBOM, XTAE")


def test_health_page_lists_markets_on_fixed_hours_and_why(stack, tmp_path, app_env, monkeypatch):
    """A calendar that really fails to build (a MIC exchange_calendars does not know) is listed."""
    from datetime import time as clock

    from pipeline.markets import calendars as markets

    bogus = markets.Market("Nowhere", "USD", "UTC", clock(9), clock(17), mic="XNOPE")
    configure(stack, tmp_path, app_env, monkeypatch)
    try:
        markets.session_table(bogus, 2026)  # falls back to fixed hours, with the library's reason
        reason = markets.fixed_hours_reasons()["XNOPE"]
        assert "could not build XNOPE" in reason

        def listed() -> list[str]:
            return [c.value for c in at.code if c.value.startswith("XNOPE: ")]

        at = app("health").run()
        deadline = time.monotonic() + 60  # a ceiling: the background snapshot refreshes every second
        while not listed() and time.monotonic() < deadline:
            time.sleep(0.5)
            at.run()
        assert_clean(at)
        assert listed() == [f"XNOPE: {reason}"]
        assert any("on fixed weekday hours" in e.label and "XNOPE" in e.label for e in at.expander)
    finally:
        markets.clear_cache()
