"""In-app alert notifications: a toast on every open page when an alert fires.

Every page gets it from ``ui.page.setup``, which calls ``alert_toasts()`` once the page is set up.

Guarantees:
- Every ~3 s (a fragment, so the rest of the page does not rerun) the page looks in MongoDB's fired
  alerts (``pipeline.alerts.events``) for unacknowledged alerts of the last 15 minutes and toasts the
  ones that fired while this browser session was open: each alert once, at most three toasts at a
  time plus one "…and N more". Alerts that fired before the session began are not toasted again
  (a reload or a new tab is a new session: the walk-through saw the same toast after every reload
  for 15 minutes, covering a phone's title); the sidebar counts them instead ("🔔 1 unacknowledged
  alert", ``unacked_line``) until they are acknowledged on the Alerts page.
- Many sessions share one query per ~2 s (``st.cache_data``).
- Never breaks a page: with MongoDB down or the pipeline stopped it quietly shows nothing (the page
  itself says what is wrong), and after a failed look it waits 30 s before asking again, so a dead
  server does not stall every page every 3 s.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

import streamlit as st

from pipeline.alerts import events
from pipeline.models import to_utc, utcnow

log = logging.getLogger(__name__)

SEEN_KEY = "stockmon_alert_toasts_seen"
START_KEY = "stockmon_alert_toasts_since"  # when this session began looking (aware UTC)
LOOKBACK = timedelta(minutes=15)
MAX_TOASTS = 3
ROWS = 50  # the newest unacknowledged alerts looked at
BACK_OFF_S = 30.0  # after a failed look, pages stop asking for a while (a dead server must not stall them)
_failed_at = [0.0]


@st.cache_data(ttl=2, show_spinner=False, max_entries=16)
def _recent_unacked(key: str) -> list[dict]:
    from ui.data import store

    rows = events.unacked_since(store(), utcnow() - LOOKBACK, limit=ROWS)
    return [
        {
            "id": r["_id"],
            "symbol": r.get("symbol", ""),
            "message": r.get("message", ""),
            "fired_at": r.get("fired_at"),
        }
        for r in rows
    ]


def _show() -> None:
    started = st.session_state.setdefault(START_KEY, utcnow())  # before any look, failed or not
    if time.monotonic() - _failed_at[0] < BACK_OFF_S:
        return
    try:
        from ui.data import store_key

        rows = _recent_unacked(store_key())
    except Exception as exc:  # the page reports MongoDB trouble itself
        _failed_at[0] = time.monotonic()
        log.debug("alert toasts skipped: %s", exc)
        return
    if SEEN_KEY not in st.session_state:  # this session's first look: what fired before the session
        # began is counted in the sidebar, not toasted again; what fired since (while a first look
        # failed, say) is toasted below
        st.session_state[SEEN_KEY] = {r["id"] for r in rows if _before(r.get("fired_at"), started)}
    seen: set = st.session_state[SEEN_KEY]
    # on every look, not only the first: an alert fired before the session may reach a later look
    new = [r for r in rows if r["id"] not in seen and not _before(r.get("fired_at"), started)]
    if not new:
        return
    for row in reversed(new[:MAX_TOASTS]):  # oldest of the newest first, so the newest ends on top
        st.toast(f"**Alert** · {row['message']}", icon="🔔", duration="long")
    if len(new) > MAX_TOASTS:
        st.toast(
            f"…and {len(new) - MAX_TOASTS} more alert(s): see the Alerts page.", icon="🔔", duration="long"
        )
    seen.update(r["id"] for r in new)


def _before(fired_at, started) -> bool:
    """``fired_at`` (as MongoDB returns it: aware or naive UTC, or missing) is before ``started``."""
    if fired_at is None:
        return True
    return to_utc(fired_at) < started


def unacked_line() -> str | None:
    """ "2 unacknowledged alerts (last 15 min)" for the sidebar, None when there are none or
    MongoDB cannot say (the page says what is wrong itself). Shares the toasts' cached query."""
    if time.monotonic() - _failed_at[0] < BACK_OFF_S:
        return None
    try:
        from ui.data import store_key

        rows = _recent_unacked(store_key())
    except Exception:  # like a failed toast look: pages stop asking for a while
        _failed_at[0] = time.monotonic()
        return None
    if not rows:
        return None
    n = len(rows)
    more = "+" if n >= ROWS else ""
    return f"{n}{more} unacknowledged alert{'s' if n != 1 else ''} (last {int(LOOKBACK.total_seconds() // 60)} min)"


@st.fragment(run_every=3)
def _poll() -> None:
    _show()


def alert_toasts() -> None:
    """Show new alerts as toasts on this page, now and every ~3 s while it is open."""
    _poll()
