"""The Alerts page under AppTest: empty, with rules and fired alerts (price context chart, acknowledge,
filter), creating / editing / disabling / deleting rules with clear errors, the read-only demo, and
MongoDB down (before and after start). Also the toast every page shows."""

from datetime import timedelta

import pytest
from streamlit.testing.v1 import AppTest
from support.alerts import ticks
from support.market_data import seed_bars
from support.pages import MONGO_DOWN, PAGES, assert_clean, configure, plain, plotly_specs, texts

from pipeline.alerts import AlertEngine, RuleBook
from pipeline.models import utcnow
from pipeline.store import Store
from pipeline.watchlist import Watchlist

PAGE = str(PAGES["alerts"])


def open_page(state: dict | None = None) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    for k, v in (state or {}).items():
        at.session_state[k] = v
    return at.run()


def seeded(settings, symbols=("AAPL", "MSFT")) -> Store:
    store = Store.from_uri(settings.mongodb_uri, settings.db)
    store.ensure_indexes()
    Watchlist(store.watchlist, None).seed(list(symbols), "simulated")
    return store


def fire(store, settings, symbol="AAPL", level=None) -> dict:
    last = store.prices.find_one({"symbol": symbol, "interval": "tick"}, sort=[("ts", -1)])["close"]
    rule = RuleBook(store).create(
        {"symbol": symbol, "kind": "price_above", "level": level or round(last * 1.01, 2), "note": "breakout"}
    )
    events = ticks(symbol, [last, last * 1.02])
    store.write_events(events)
    AlertEngine(store, settings, refresh_s=0).on_stored(events)
    return store.db["alert_events"].find_one({"rule_id": rule.id})


def button(at, label_start: str):
    return next(b for b in at.button if b.label.startswith(label_start))


def field(widgets, label: str):
    return next(w for w in widgets if w.label == label)


def test_empty_page_explains_what_to_do(stack, tmp_path, app_env, monkeypatch):
    settings = configure(stack, tmp_path, app_env, monkeypatch)
    seeded(settings)
    at = open_page()
    assert_clean(at)
    page = texts(at)
    assert "No rules yet. Create one below" in page
    assert "No alert yet. Alerts appear here" in page
    assert "Not configured: set STOCKMON_ALERT_WEBHOOK_URLS" in page
    assert "Not configured: set STOCKMON_SMTP_HOST and STOCKMON_ALERT_EMAIL_TO" in page
    assert "The pipeline is not running, so no rule is being evaluated." in page
    assert [m.value for m in at.metric] == ["0", "0", "0"]


def test_fired_alerts_with_price_context_acknowledge_and_filter(stack, tmp_path, app_env, monkeypatch):
    settings = configure(stack, tmp_path, app_env, monkeypatch)
    store = seeded(settings)
    seed_bars(store, ["AAPL", "MSFT"], days=0.1)
    first = fire(store, settings, "AAPL")
    fire(store, settings, "MSFT")
    at = open_page()
    assert_clean(at)
    table = at.dataframe[0].value
    assert list(table["Symbol"]) == ["MSFT", "AAPL"] and not table["Seen"].any()
    assert table.loc[table["Symbol"] == "AAPL", "Alert"].item() == first["message"]
    assert table["Delivery"].eq("in app only").all()
    assert [m.value for m in at.metric][:2] == ["2", "2"]
    spec = plotly_specs(at)[0]
    assert len(spec["data"][0]["x"]) >= 3, "the price around the alert is drawn"
    assert spec["data"][1]["mode"] == "markers", "with a marker where it fired"
    rules = at.dataframe[1].value
    assert set(rules["Condition"]) == {
        f"AAPL price rises above {first['level']:,.2f}",
        f"MSFT price rises above {store.db['alert_rules'].find_one({'symbol': 'MSFT'})['level']:,.2f}",
    }
    assert rules["State"].str.contains("fired 1×").all()
    # filter by symbol (and it lands in the URL)
    at.multiselect(key="alerts_symbols").set_value(["AAPL"]).run()
    assert list(at.dataframe[0].value["Symbol"]) == ["AAPL"] and at.query_params["symbol"] in (
        "AAPL",
        ["AAPL"],
    )
    button(at, "✔✔ Acknowledge all shown (1)").click().run()
    assert_clean(at)
    assert "Acknowledged 1 alert(s)." in texts(at)
    assert store.db["alert_events"].find_one({"_id": first["_id"]})["acked"] is True
    assert store.db["alert_events"].count_documents({"acked": False}) == 1
    at.toggle(key="alerts_unacked").set_value(True).run()
    assert "No new alert for these symbols yet." in texts(at)


def test_create_edit_disable_delete_rules_with_clear_errors(stack, tmp_path, app_env, monkeypatch):
    settings = configure(stack, tmp_path, app_env, monkeypatch)
    store = seeded(settings)
    at = open_page()
    # a price rule with no level: refused with a sentence, nothing stored
    at.selectbox(key="rule_kind___new__").set_value("price_above").run()
    button(at, "➕ Create rule").click().run()
    assert_clean(at)
    assert "The rule was not saved:\n- level is required" in plain(at.error[0].value)
    assert store.db["alert_rules"].count_documents({}) == 0
    # a % move rule
    at.selectbox(key="rule_kind___new__").set_value("pct_change").run()
    field(at.selectbox, "Symbol").set_value("MSFT")
    field(at.number_input, "Move (%)").set_value(2.5)
    field(at.number_input, "Within (minutes)").set_value(10)
    field(at.number_input, "Cooldown (minutes)").set_value(30)
    field(at.text_input, "Note").set_value("earnings week")
    button(at, "➕ Create rule").click().run()
    assert_clean(at)
    assert "Created: MSFT moves up or down 2.5% within 10 min." in texts(at)
    assert "is not on the watchlist" not in texts(at)
    doc = store.db["alert_rules"].find_one({})
    assert (doc["kind"], doc["pct"], doc["window_s"], doc["cooldown_s"], doc["note"]) == (
        "pct_change",
        2.5,
        600,
        1800,
        "earnings week",
    )
    assert field(at.text_input, "Note").value == "", "the form is empty again for the next rule"
    # edit it: a wrong window is refused, a right one saved
    at.selectbox(key="rule_target").set_value(doc["_id"]).run()
    assert (
        field(at.number_input, "Move (%)").value == 2.5
        and field(at.text_input, "Note").value == "earnings week"
    )
    field(at.number_input, "Within (minutes)").set_value(0.1)
    button(at, "💾 Save changes").click().run()
    assert "window (seconds) must be at least 10" in plain(at.error[0].value)
    field(at.number_input, "Within (minutes)").set_value(30)
    button(at, "💾 Save changes").click().run()
    assert "Saved: MSFT moves up or down 2.5% within 30 min." in texts(at)
    assert store.db["alert_rules"].find_one({})["window_s"] == 1800
    # disable, then delete
    at.selectbox(key="rule_target").set_value(doc["_id"]).run()
    button(at, "⏸️ Disable").click().run()
    assert store.db["alert_rules"].find_one({})["enabled"] is False
    assert at.dataframe[-1].value["State"].item() == "⏸️ disabled"
    at.selectbox(key="rule_target").set_value(doc["_id"]).run()
    button(at, "Delete the rule").click().run()
    assert_clean(at)
    assert "Deleted: MSFT moves up or down 2.5% within 30 min." in texts(at)
    assert store.db["alert_rules"].count_documents({}) == 0


def test_demo_mode_is_read_only_for_visitors(stack, tmp_path, app_env, monkeypatch):
    settings = configure(stack, tmp_path, app_env, monkeypatch, demo_mode=True)
    store = seeded(settings)
    seed_bars(store, ["AAPL"], days=0.05)
    fire(store, settings, "AAPL")
    at = open_page()
    assert_clean(at)
    assert (
        "read-only public demo: creating, changing and acknowledging alerts needs the admin password"
        in texts(at)
    )
    assert button(at, "➕ Create rule").disabled
    assert button(at, "✔✔ Acknowledge all shown").disabled
    assert all(b.disabled for b in at.button if b.label == "Send test")


def test_mongodb_down_is_a_sentence(stack, tmp_path, app_env, monkeypatch):
    configure(stack, tmp_path, app_env, monkeypatch, mongodb_uri=MONGO_DOWN)
    at = open_page()
    assert_clean(at)
    assert at.error[0].value.startswith("The pipeline could not start. MongoDB is not reachable.")


def test_mongodb_dying_after_start_is_a_sentence(stack, tmp_path, app_env, monkeypatch):
    settings = configure(stack, tmp_path, app_env, monkeypatch)
    seeded(settings)
    at = open_page()
    assert_clean(at)
    from ui.runtime import get_runtime

    runtime = get_runtime()
    dead = Store.from_uri(MONGO_DOWN, settings.db, timeout_s=0.5)
    runtime.connection.store, runtime.watchlist.collection = dead, dead.watchlist
    import streamlit as st

    st.cache_data.clear()
    at.run()
    assert_clean(at)
    assert "MongoDB did not answer while reading the alert rules" in texts(at)


@pytest.mark.parametrize("name", list(PAGES))
def test_every_page_toasts_a_new_alert_once_per_session(name, stack, tmp_path, app_env, monkeypatch):
    from ui import alerts_toast

    monkeypatch.setattr(alerts_toast, "_failed_at", [0.0])  # forget a dead server of an earlier test
    settings = configure(stack, tmp_path, app_env, monkeypatch)
    store = seeded(settings)
    seed_bars(store, ["AAPL"], days=0.05)
    at = AppTest.from_file(str(PAGES[name]), default_timeout=60).run()
    assert_clean(at)
    assert not at.toast
    alert = fire(store, settings, "AAPL")
    import streamlit as st

    st.cache_data.clear()
    at.run()
    assert [t.value for t in at.toast] == [f"**Alert** · {alert['message']}"]
    st.cache_data.clear()
    at.run()
    assert not at.toast, "each alert is toasted once per session"
    # a new session (a reload, another tab) does not toast it again: the sidebar counts it instead
    st.cache_data.clear()
    again = AppTest.from_file(str(PAGES[name]), default_timeout=60).run()
    assert_clean(again)
    assert not again.toast
    again.run()
    assert not again.toast, "an alert fired before the session is not toasted in it"
    assert alerts_toast.unacked_line() == "1 unacknowledged alert (last 15 min)"
    assert store.db["alert_events"].find_one({"_id": alert["_id"]})["fired_at"] > utcnow() - timedelta(
        minutes=1
    )
