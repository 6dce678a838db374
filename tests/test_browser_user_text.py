"""Issue 9, found-item 8 in a real Chromium: what users type is shown character for character and a
Markdown image in an alert note is never fetched (no tracking pixel). Requests are recorded with
Playwright's ``page.on("request")``."""

from __future__ import annotations

from datetime import timedelta

import pytest
from support.base import drop_database, make_settings, settings_env
from support.streamlit_server import (
    CEILING_MS,
    CHROMIUM_ARGS,
    LAPTOP,
    no_exception,
    screenshot,
    streamlit_server,
)

from pipeline.alerts import RuleBook
from pipeline.alerts import events as alert_events
from pipeline.models import utcnow
from pipeline.store import Store
from ui.navigation import spec

pytestmark = pytest.mark.browser

HOSTILE = ["$where", '{"$gt": ""}', "![x](http://127.0.0.1:9/p.png)", "<b>x</b>"]
NOTE = " ".join(HOSTILE)


def test_hostile_symbols_and_notes_are_shown_literally_and_fetch_nothing(
    stack, tmp_path, chromium_path, artifacts
):
    from playwright.sync_api import expect, sync_playwright

    settings = make_settings(stack, tmp_path, watchlist=("AAPL",), autostart=False)
    store = Store.from_uri(settings.mongodb_uri, settings.db)
    store.ensure_indexes()
    rule = RuleBook(store).create({"symbol": "AAPL", "kind": "price_above", "level": 100.0, "note": NOTE})
    now = utcnow()
    alert_events.insert(
        store,
        [
            {
                "_id": alert_events.event_id(rule.id, "tick", now - timedelta(minutes=1)),
                "rule_id": rule.id,
                "symbol": "AAPL",
                "kind": "price_above",
                "level": 100.0,
                "price": 101.5,
                "interval": "tick",
                "ts": now - timedelta(minutes=1),
                "fired_at": now,
                "message": "AAPL is above 100.00 (last 101.50)",
                "description": "AAPL price rises above 100.00",
                "note": NOTE,
                "acked": False,
                "delivery": {},
            }
        ],
    )
    requests: list[str] = []
    try:
        with streamlit_server(settings_env(settings), artifacts / "user-text-server.log") as (url, _proc):
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport=LAPTOP)
                page.on("request", lambda r: requests.append(r.url))
                page.goto(f"{url}/{spec('alerts').url_path}")

                # the note under the fired alert: plain text, character for character, nothing rendered
                note = page.get_by_test_id("stText").filter(has_text="Note:")
                expect(note.first).to_be_visible(timeout=CEILING_MS)
                assert note.first.inner_text() == f"Note: {NOTE}"
                assert note.first.locator("img, b, a, .katex").count() == 0, note.first.inner_html()

                # symbols typed into the rule form: each refusal quotes it literally
                for text in HOSTILE:
                    box = page.get_by_label("Symbol", exact=True)
                    box.click()
                    page.keyboard.type(text)
                    page.keyboard.press("Enter")
                    page.get_by_role("button", name="➕ Create rule").click()
                    error = page.get_by_test_id("stAlertContentError").filter(
                        has_text="The rule was not saved"
                    )
                    expect(error.first).to_contain_text(f"{text!r} is not a valid ticker", timeout=CEILING_MS)
                    assert error.first.locator("img, b, a, .katex").count() == 0
                no_exception(page)
                screenshot(page, artifacts / "user-text-alerts.png")
                browser.close()
        fetched = [u for u in requests if "127.0.0.1:9/" in u or u.endswith("/p.png")]
        assert fetched == [], f"the browser fetched a user's image: {fetched}"
        assert requests, "requests were recorded"
        assert store.alert_rules.count_documents({}) == 1, "no rule with a hostile symbol was saved"
    finally:
        drop_database(store.client, settings.db)
        store.close()
