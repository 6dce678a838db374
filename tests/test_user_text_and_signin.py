"""Issue 9, found-item 8: what users type is data (tickers refused whole kinds, refusals clipped and
grouped, Markdown escaped), and the demo's admin password cannot be guessed without limit."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime

import pytest
from support.base import drop_database
from support.clock import ManualClock
from support.pages import app, assert_clean, configure, plain

from pipeline.models import SYMBOL_PATTERN, InvalidEvent, normalize_symbol
from pipeline.store import Store
from pipeline.usertext import ECHO_LIMIT, clip
from pipeline.watchlist import Watchlist, WatchlistError
from ui import auth
from ui import format as fmt
from ui.watchlist_edit import MAX_LISTED, Outcome

HOSTILE = ["$where", '{"$gt": ""}', "![x](http://127.0.0.1:9/p.png)", "<b>x</b>"]


# -- tickers ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["^GSPC", "BRK-B", "EURUSD=X", "7203.T", "BTC-USD", " aapl ", "vod.l", "A"])
def test_real_tickers_stay_valid(text):
    assert SYMBOL_PATTERN.match(normalize_symbol(text))


@pytest.mark.parametrize(
    "text", [".", "^", "=", "---", "-.^=", "ﬁ", "ＡＡＰＬ", "A\nB", "Ä", "A" * 21, "", "   ", *HOSTILE]
)
def test_non_symbols_are_refused(text):
    with pytest.raises(InvalidEvent, match="ticker"):
        normalize_symbol(text)


def test_the_ligature_is_not_turned_into_letters_and_punctuation_alone_is_not_a_symbol():
    """``"ﬁ".upper()`` is ``"FI"``: it used to be accepted as the ticker FI."""
    with pytest.raises(InvalidEvent, match="only ASCII"):
        normalize_symbol("ﬁ")
    for text in (".", "^", "=", "---", "AAPL\n"):
        assert SYMBOL_PATTERN.match(text) is None


def test_a_long_entry_is_clipped_in_its_refusal(store):
    entry = "X" * 5000
    with pytest.raises(WatchlistError) as info:
        Watchlist(store.watchlist, lambda source, symbol: None).add(entry, "simulated")
    text = str(info.value)
    assert len(text) < 300 and "X" * ECHO_LIMIT + "…" in text and "X" * (ECHO_LIMIT + 1) not in text
    assert clip("abc", 2) == "ab…" and clip("ab", 2) == "ab"


def test_many_refusals_are_one_message_with_the_rows_listed():
    out = Outcome(errors={f"BAD{i}!": "is not a valid ticker" for i in range(500)})
    messages = out.messages()
    assert len(messages) == 1 and messages[0][0] == "error"
    lines = messages[0][1].splitlines()
    assert lines[0] == "500 rows were not added:" and lines[1] == "BAD0!: is not a valid ticker"
    assert len(lines) == 1 + MAX_LISTED + 1 and lines[-1] == f"…and {500 - MAX_LISTED} more"
    long = Outcome(errors={"Y" * 5000: "too long"}).messages()
    assert long == [("error", "Y" * ECHO_LIMIT + "…: too long")]


# -- Markdown --------------------------------------------------------------------------------------
def test_literal_escapes_every_markdown_and_latex_trigger():
    for text in [*HOSTILE, "see http://x.example/a`b and www.example.com or me@example.com", "`x`"]:
        escaped = fmt.literal(text)
        assert plain(escaped) == text  # shown character for character
        outside_code = re.sub(r"(?<![\\`])(`+).+?\1", "", escaped)
        for ch in "$![]()<>{}:@":  # nothing left for Markdown, LaTeX, HTML or autolinks to act on
            assert ch not in outside_code.replace("\\" + ch, ""), (text, escaped)
    assert fmt.literal("a\nb") == "a  \nb"
    assert fmt.literal("    code?") == "&#32;&#32;&#32;&#32;code\\?"
    assert fmt.literal("http://127.0.0.1:9/p.png") == "`http://127.0.0.1:9/p.png`"


def test_refusals_on_the_watchlist_page_show_the_entry_literally(stack, tmp_path, app_env, monkeypatch):
    settings = configure(stack, tmp_path, app_env, monkeypatch)
    store = Store.from_uri(settings.mongodb_uri, settings.db)
    try:
        rows = [{"symbol": text} for text in HOSTILE]
        at = app("watchlist", state={"wl_editor_0": {"added_rows": rows}}).run()
        assert_clean(at)
        assert len(at.error) == 1, [e.value for e in at.error]
        source = at.error[0].value  # the Markdown the browser renders
        shown = plain(source)  # what it shows
        assert shown.startswith("4 rows were not added:\n")
        for text in HOSTILE:
            assert f"\n{text}: {text!r} is not a valid ticker" in shown  # character for character
        outside_code = re.sub(r"(?<![\\`])(`+).+?\1", "", source)
        for ch in "$![]()<>{}":  # nothing left for Markdown, LaTeX or HTML to act on
            assert ch not in outside_code.replace("\\" + ch, "")
        assert store.watchlist.count_documents({}) == 0
    finally:
        drop_database(store.client, settings.db)
        store.close()


# -- sign-in ---------------------------------------------------------------------------------------


#: Where the sign-in guard's clock starts (epoch seconds 1.8e9, 2027-01-15 08:00 UTC).
SIGN_IN_T0 = datetime.fromtimestamp(1_800_000_000, UTC)


def test_the_guard_slows_then_locks_out_and_the_right_password_waits_for_the_end():
    clock = ManualClock(SIGN_IN_T0)
    guard = auth.SignInGuard(clock=clock.seconds)
    keys = ["ip:203.0.113.9", "session:a"]
    checked, waits, lock_message = 0, [], None
    start = clock.seconds()
    for _ in range(30):  # 30 wrong passwords in a row from a patient client that waits as told
        why = guard.refusal(keys)
        if why is None:
            checked += 1
            guard.failed(keys)
        elif why.startswith("Too many wrong passwords: wait"):
            waits.append(int(why.split("wait ")[1].split(" s")[0]))
            clock.tick(waits[-1])
        else:
            lock_message = why
    assert checked == auth.MAX_FAILURES, "only 10 passwords were ever looked at"
    assert waits == [1, 2, 4, 8, 16, 30], "the delays grow before the lockout"
    assert clock.seconds() - start == sum(waits)
    assert lock_message and lock_message.startswith(
        "Sign-in is locked after 10 wrong passwords: try again at"
    )
    # the right password during the lockout: refused, from another session of the same IP too
    assert guard.refusal(["ip:203.0.113.9", "session:b"]) == lock_message
    clock.tick(auth.LOCKOUT_S - 60)
    assert guard.refusal(keys).startswith("Sign-in is locked")
    clock.tick(61)
    assert guard.refusal(keys) is None  # over: a fresh start
    guard.succeeded(keys)
    assert guard.refusal(keys) is None and guard.delay_after(3) == 0 and guard.delay_after(4) == 1.0
    assert guard.delay_after(100) == auth.MAX_DELAY_S


def test_the_guard_is_bounded_in_memory():
    guard = auth.SignInGuard(clock=ManualClock(SIGN_IN_T0).seconds, max_clients=100)
    for i in range(1000):
        guard.failed([f"ip:{i}"])
    assert len(guard) == 100


def test_thirty_wrong_passwords_on_the_page_are_slowed_then_locked_out(
    stack, tmp_path, app_env, monkeypatch, caplog
):
    settings = configure(stack, tmp_path, app_env, monkeypatch, demo_mode=True, admin_password="s3cret")
    clock = ManualClock(SIGN_IN_T0)
    monkeypatch.setattr(auth, "GUARD", auth.SignInGuard(clock=clock.seconds))
    caplog.set_level(logging.WARNING, logger="ui.auth")
    at = app("watchlist").run()
    assert_clean(at)

    def sign_in(password: str) -> list[str]:
        at.text_input[0].input(password)
        next(b for b in at.button if b.label == "Sign in").click().run()
        return [e.value for e in at.error]

    try:
        seen = []
        for _ in range(30):  # one try every 5 s
            clock.tick(5)
            seen += sign_in("wrong")
        assert sum(m.startswith("That password is not right") for m in seen) == auth.MAX_FAILURES - 1
        assert any(m.startswith("Too many wrong passwords: wait") for m in seen), "slowed"
        assert any(m.startswith("Sign-in is locked after 10 wrong passwords") for m in seen), "locked"
        assert "admin sign-in locked for 15 min after 10 wrong passwords" in caplog.text
        # the right password is refused until the lockout ends, with when to retry
        refused = sign_in("s3cret")
        assert refused and refused[0].startswith("Sign-in is locked after 10 wrong passwords: try again at")
        assert "Signed in as admin" not in [s.value for s in at.success]
        assert at.data_editor[0].editing_mode == "fixed"
        clock.tick(auth.LOCKOUT_S)
        assert sign_in("s3cret") == []
        assert_clean(at)
        assert any(s.value.startswith("Signed in as admin") for s in at.success)
    finally:
        drop_database(Store.from_uri(settings.mongodb_uri, settings.db).client, settings.db)


def test_a_database_name_the_server_would_refuse_is_a_sentence_on_the_page(
    stack, tmp_path, app_env, monkeypatch
):
    """``STOCKMON_DB='$where'`` used to end in a pymongo traceback; now the page says which key is
    wrong, with the value shown literally (no LaTeX from its ``$``)."""
    configure(stack, tmp_path, app_env, monkeypatch)
    monkeypatch.setenv("STOCKMON_DB", "$where")
    at = app("watchlist").run()
    assert not at.exception
    assert len(at.error) == 1
    assert plain(at.error[0].value).startswith(
        "Configuration error: STOCKMON_DB='$where' is not a valid MongoDB database name: it contains '$'"
    )
