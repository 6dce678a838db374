"""Watchlist page through AppTest: editor edits (add, duplicate, bad format, unknown ticker, fix a
pending row, delete, disable), backfill progress, import/export, demo mode, empty and MongoDB down."""

from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.base import drop_database
from support.pages import MONGO_DOWN, app, assert_clean, configure, exchange_open, market_icons, plain, texts

from pipeline.store import Store
from pipeline.watchlist import Watchlist

# AppTest.data_editor set streamlit's floor (1.67): these page tests also run at the floors (.ci/min_versions.py)
pytestmark = pytest.mark.floors

EDITOR = "wl_editor_0"


@pytest.fixture
def seeded(stack, tmp_path, app_env, monkeypatch):
    csv_file = tmp_path / "bars.csv"
    csv_file.write_text(
        "symbol,interval,ts,open,high,low,close,volume\nCSVONLY,1m,2025-01-02T15:00:00Z,10,11,9,10.5,100\n"
    )
    monkeypatch.setenv("STOCKMON_CSV_PATH", str(csv_file))
    settings = configure(stack, tmp_path, app_env, monkeypatch)
    store = Store.from_uri(settings.mongodb_uri, settings.db)
    store.ensure_indexes()
    Watchlist(store.watchlist, None).seed(["AAPL", "MSFT", "GOOG"], "simulated")
    yield settings, store
    drop_database(store.client, settings.db)
    store.close()


def symbols(store) -> list[str]:
    return [d["_id"] for d in store.watchlist.find().sort("added_at", 1)]


def edit(added=(), edited=None, deleted=()) -> dict:
    return {EDITOR: {"added_rows": list(added), "edited_rows": edited or {}, "deleted_rows": list(deleted)}}


def test_watchlist_shows_entries_and_backfill_progress(seeded):
    _, store = seeded
    store.backfills.insert_one(
        {
            "_id": "MSFT",
            "symbol": "MSFT",
            "source": "simulated",
            "status": "running",
            "done": 1,
            "total": 4,
            "published": 1234,
        }
    )
    before = datetime.now(UTC)
    at = app("watchlist").run()
    after = datetime.now(UTC)
    assert_clean(at)
    table = at.data_editor[0].value
    assert table["symbol"].tolist() == ["AAPL", "MSFT", "GOOG"]
    assert table.set_index("symbol").loc["MSFT", "backfill"] == 25.0
    assert "backfilling (1/4)" in table.set_index("symbol").loc["MSFT", "status"]
    market = table.set_index("symbol").loc["AAPL", "market"]  # NYSE's real state, not "open 24/7"
    assert "24/7" not in market and market.split()[0] in market_icons("AAPL", before, after)
    nyse_open = exchange_open("AAPL", before, after)
    if nyse_open is not None:  # the simulator's prices move anyway: said once, while NYSE is closed
        assert (texts(at).count("Simulated prices: NYSE/NASDAQ is closed") == 1) is (not nyse_open)
    (bar,) = at.get("progress")
    assert bar.value == 25 and "MSFT" in bar.text and "1,234 bars sent" in bar.text
    assert at.data_editor[0].editing_mode == "dynamic"
    assert "3 of at most 50 symbols · 3 enabled" in texts(at)


def test_adding_rows_adds_good_tickers_and_keeps_bad_ones_with_their_reason(seeded):
    _, store = seeded
    at = app(
        "watchlist",
        state=edit(
            added=[
                {"symbol": "nvda"},
                {"symbol": "AAPL"},
                {"symbol": "BAD!"},
                {"symbol": "ZZZZ", "source": "csv"},
                {"source": "simulated"},
            ]
        ),
    ).run()
    assert_clean(at)
    assert symbols(store) == ["AAPL", "MSFT", "GOOG", "NVDA"]
    assert "Added NVDA (the pipeline is stopped: start it on the Overview page to fetch prices)." in [
        s.value for s in at.success
    ]
    errors = "\n".join(plain(e.value) for e in at.error)
    assert "AAPL: AAPL is already on the watchlist" in errors
    assert "BAD!: 'BAD!' is not a valid ticker" in errors
    assert "ZZZZ:" in errors and "csv" in errors.lower()
    table = at.data_editor[0].value
    pending = table.iloc[4:]
    assert pending["symbol"].tolist() == ["AAPL", "BAD!", "ZZZZ"]
    assert len(pending) == 3  # the row without a ticker is not a change yet
    assert all(s.startswith("❌ not added: ") for s in pending["status"])
    at.run()  # the rerun a finished backfill causes must not take the outcome away
    assert any(s.value.startswith("Added NVDA") for s in at.success)
    assert "BAD!" in plain("\n".join(e.value for e in at.error))


def test_a_new_empty_row_is_left_alone_while_the_user_types(seeded):
    _, store = seeded
    at = app("watchlist", state=edit(added=[{"source": "simulated", "enabled": True}])).run()
    assert_clean(at)
    assert symbols(store) == ["AAPL", "MSFT", "GOOG"]
    assert not at.error and not at.success
    assert "wl_editor_0" in at.session_state  # same editor, not reset


def test_fixing_a_pending_row_adds_it(seeded):
    _, store = seeded
    at = app("watchlist", state=edit(added=[{"symbol": "BAD!"}])).run()
    assert at.data_editor[0].value["symbol"].tolist() == ["AAPL", "MSFT", "GOOG", "BAD!"]
    at.session_state["wl_editor_1"] = {
        "added_rows": [],
        "edited_rows": {3: {"symbol": "meta"}},
        "deleted_rows": [],
    }
    at.run()
    assert_clean(at)
    assert symbols(store) == ["AAPL", "MSFT", "GOOG", "META"]
    assert at.data_editor[0].value["symbol"].tolist() == ["AAPL", "MSFT", "GOOG", "META"]


def test_delete_disable_and_switch_source(seeded):
    _, store = seeded
    at = app("watchlist", state=edit(edited={0: {"enabled": False}, 2: {"source": "csv"}}, deleted=[1])).run()
    assert_clean(at)
    docs = {d["_id"]: d for d in store.watchlist.find()}
    assert set(docs) == {"AAPL", "GOOG"}
    assert docs["AAPL"]["enabled"] is False
    assert docs["GOOG"]["source"] == "simulated"  # the csv file does not know GOOG: refused with a reason
    assert "Removed MSFT." in [s.value for s in at.success]
    assert any("GOOG" in e.value and "csv cannot serve GOOG" in e.value for e in at.error)
    assert "1 enabled" in texts(at)


def test_rename_a_stored_row(seeded):
    _, store = seeded
    app("watchlist", state=edit(edited={1: {"symbol": "IBM"}})).run()
    assert symbols(store) == ["AAPL", "GOOG", "IBM"]


def test_import_text_and_export(seeded):
    _, store = seeded
    at = app("watchlist").run()
    at.text_area[0].input("TSLA, amd BAD!")
    next(b for b in at.button if b.label == "Import").click().run()
    assert_clean(at)
    assert symbols(store)[-2:] == ["TSLA", "AMD"]
    assert [s.value for s in at.success] == [
        "Added TSLA (the pipeline is stopped: start it on the Overview page to fetch prices)."
    ]
    assert [w.value for w in at.warning] == [  # the simulator has no AMD: said, not a success
        "Added AMD (the pipeline is stopped: start it on the Overview page to fetch prices). The simulator does not know this ticker, so its prices are invented; check the "
        "spelling, or pick a real source on this page."
    ]
    assert [e.value for e in at.error] == [
        "1 row not imported:"
    ]  # one grouped message, rows listed literally
    assert any(c.value.startswith("line 1: BAD!:") for c in at.code)
    assert [b.label for b in at.get("download_button")] == ["⬇️ Export as CSV"]
    assert "AAPL MSFT GOOG TSLA AMD" in [c.value for c in at.code]


def test_demo_mode_is_read_only_until_the_admin_signs_in(stack, tmp_path, app_env, monkeypatch):
    settings = configure(stack, tmp_path, app_env, monkeypatch, demo_mode=True, admin_password="s3cret")
    store = Store.from_uri(settings.mongodb_uri, settings.db)
    Watchlist(store.watchlist, None).seed(["AAPL"], "simulated")
    at = app("watchlist", state=edit(added=[{"symbol": "NVDA"}])).run()
    assert_clean(at)
    assert "read-only public demo" in texts(at)
    assert at.data_editor[0].editing_mode == "fixed"
    assert symbols(store) == ["AAPL"]  # the edit state was ignored
    at.text_input[0].input("wrong")
    next(b for b in at.button if b.label == "Sign in").click().run()
    assert "That password is not right." in [e.value for e in at.error]
    at.text_input[0].input("s3cret")
    next(b for b in at.button if b.label == "Sign in").click().run()
    assert_clean(at)
    assert at.data_editor[0].editing_mode == "dynamic"
    assert "Signed in as admin" in texts(at)
    drop_database(store.client, settings.db)


def test_empty_watchlist_says_what_to_do(stack, tmp_path, app_env, monkeypatch):
    configure(stack, tmp_path, app_env, monkeypatch)
    at = app("watchlist").run()
    assert_clean(at)
    assert "The watchlist is empty. Type a ticker" in texts(at)
    assert at.data_editor[0].value.empty


def test_watchlist_mongodb_down_is_a_sentence(stack, tmp_path, app_env, monkeypatch):
    configure(stack, tmp_path, app_env, monkeypatch, mongodb_uri=MONGO_DOWN)
    at = app("watchlist").run()
    assert_clean(at)
    assert at.error[0].value.startswith("The pipeline could not start. MongoDB is not reachable.")


CASES = Path(__file__).parent / "data" / "cases"


def test_an_excel_saved_watchlist_csv_with_a_byte_order_mark(seeded):
    _, store = seeded
    text = (CASES / "watchlist_bom.csv").read_bytes().decode("utf-8")  # as pasted: the BOM kept
    assert text.startswith("\ufeffsymbol")
    at = app("watchlist").run()
    at.text_area[0].input(text)
    next(b for b in at.button if b.label == "Import").click().run()
    assert_clean(at)
    assert symbols(store) == ["AAPL", "MSFT", "GOOG", "IBM", "ORCL"]  # no header words as tickers
    docs = {d["_id"]: d for d in store.watchlist.find({"_id": {"$in": ["IBM", "ORCL"]}})}
    assert (docs["IBM"]["source"], docs["IBM"]["enabled"]) == ("simulated", True)
    assert (docs["ORCL"]["source"], docs["ORCL"]["enabled"]) == ("simulated", False)
    assert any(
        w.value.startswith("Added IBM, ORCL (the pipeline is stopped")
        and "The simulator does not know these" in w.value
        for w in at.warning
    )
    assert not list(at.error)


def test_rejected_import_rows_are_one_message_listing_them_literally(seeded):
    _, store = seeded
    rows = [
        "TICKER;Source;Enabled",
        "IBM;simulated;maybe",
        '{"$gt": ""};simulated;true',
        "$where;simulated;true",
    ]
    rows += [f"BAD{i}!;simulated;true" for i in range(30)] + ["Z" * 5000 + ";simulated;true"]
    rows += ["AAPL;simulated;true", "ORCL;simulated;no"]
    at = app("watchlist").run()
    at.text_area[0].input("\r\n".join(rows))
    next(b for b in at.button if b.label == "Import").click().run()
    assert_clean(at)
    assert symbols(store)[-1] == "ORCL" and "IBM" not in symbols(store)
    assert [e.value for e in at.error] == ["35 rows not imported:"]
    listing = next(c.value for c in at.code if c.value.startswith("line 2:")).splitlines()
    assert len(listing) == 35 and max(map(len, listing)) < 300  # a 5,000-character entry is cut short
    assert listing[0] == "line 2: IBM: enabled 'maybe' is not true or false"
    assert listing[1].startswith('line 3: {"$gt": ""}: ') and listing[2].startswith("line 4: $where: ")
    assert listing[-2].startswith("line 35: " + "Z" * 39 + "…: ")
    assert listing[-1] == "line 36: AAPL: AAPL is already on the watchlist"


UNKNOWN_ONE = (
    "Added NOTATICKER (the pipeline is stopped: start it on the Overview page to fetch prices). The simulator does not know this ticker, so its prices are invented; check the "
    "spelling, or pick a real source on this page."
)


def test_a_ticker_the_simulator_does_not_know_is_added_with_a_warning_not_a_success(seeded):
    _, store = seeded
    at = app("watchlist", state=edit(added=[{"symbol": "notaticker"}, {"symbol": "NVDA"}])).run()
    assert_clean(at)
    assert symbols(store)[-2:] == ["NOTATICKER", "NVDA"]  # still added: the simulator models any ticker
    assert [w.value for w in at.warning] == [UNKNOWN_ONE]
    assert [s.value for s in at.success] == [
        "Added NVDA (the pipeline is stopped: start it on the Overview page to fetch prices)."
    ]
    at.run()  # the flash survives the next rerun as the success does
    assert [w.value for w in at.warning] == [UNKNOWN_ONE]


def test_switching_a_row_to_a_source_that_does_not_know_it_warns_not_a_plain_update(seeded):
    from dataclasses import asdict

    from pipeline.watchlist import Entry

    _, store = seeded
    store.watchlist.insert_one({"_id": "CSVONLY", **asdict(Entry("CSVONLY", "csv"))})
    at = app("watchlist", state=edit(edited={3: {"source": "simulated"}})).run()
    assert_clean(at)
    assert store.watchlist.find_one({"_id": "CSVONLY"})["source"] == "simulated"
    assert [w.value for w in at.warning] == [
        "Updated CSVONLY. The simulator does not know this ticker, so its prices are invented; check the "
        "spelling, or pick a real source on this page."
    ]
    assert not any("Updated" in s.value for s in at.success)


def test_an_import_names_the_tickers_the_simulator_does_not_know_in_one_warning(seeded):
    _, store = seeded
    at = app("watchlist").run()
    at.text_area[0].input("NOTATICKER zzzz NVDA")
    next(b for b in at.button if b.label == "Import").click().run()
    assert_clean(at)
    assert symbols(store)[-3:] == ["NOTATICKER", "ZZZZ", "NVDA"]
    assert [w.value for w in at.warning] == [
        "Added NOTATICKER, ZZZZ (the pipeline is stopped: start it on the Overview page to fetch prices). The simulator does not know these tickers, so their prices are "
        "invented; check the spelling, or pick a real source on this page."
    ]
    assert [s.value for s in at.success] == [
        "Added NVDA (the pipeline is stopped: start it on the Overview page to fetch prices)."
    ]


def upload_and_import(at, name: str):
    (uploader,) = at.file_uploader
    uploader.upload(name, (CASES / name).read_bytes(), "text/csv")
    next(b for b in at.button if b.label == "Import").click().run()
    assert_clean(at)


def test_an_uploaded_price_history_is_refused_whole_and_adds_nothing(seeded):
    _, store = seeded
    at = app("watchlist").run()
    upload_and_import(at, "daily_SAP.DE.csv")
    assert symbols(store) == ["AAPL", "MSFT", "GOOG"]
    assert store.backfills.count_documents({}) == 0
    assert [plain(e.value) for e in at.error] == [
        "This file looks like price history (Date, Open, High, Low, Close, …), not a watchlist: a "
        "watchlist file needs a Symbol (or Ticker) column, or one ticker per line."
    ]
    assert not at.success and not at.warning
    assert at.file_uploader[0].value is not None  # refused, not imported: the file stays to be replaced


def test_the_uploader_is_emptied_after_an_import_so_import_again_adds_nothing(seeded):
    _, store = seeded
    at = app("watchlist").run()
    upload_and_import(at, "watchlist_bom.csv")
    assert symbols(store) == ["AAPL", "MSFT", "GOOG", "IBM", "ORCL"]
    (uploader,) = at.file_uploader
    assert uploader.value is None and uploader.key != "wl_upload_0"  # a new, empty uploader
    next(b for b in at.button if b.label == "Import").click().run()
    assert_clean(at)
    assert symbols(store) == ["AAPL", "MSFT", "GOOG", "IBM", "ORCL"]
    assert not at.error  # no "IBM is already on the watchlist": nothing was imported again
    assert "Nothing to import" in texts(at)
