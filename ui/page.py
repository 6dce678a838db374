"""What every page does first, and how every page fails.

Guarantees:
- ``setup`` configures the page (wide layout, title, icon), gets the one shared runtime, stops the
  page with a sentence and a "Try again" button if the runtime could not start, draws the sidebar
  (pipeline state, "degraded" while the consumer is down or recently restarted, "MongoDB not
  answering since HH:MM:SS" while the health check gets no answer, demo-mode sign-in)
  and starts the toasts of new alerts (``ui.alerts_toast``): every page does all of it, in this order.
- Inside ``with sentences("doing X"):`` no exception reaches the browser as a traceback: a MongoDB
  problem becomes a warning that says the page will retry (at once, without asking MongoDB, while
  the health check finds it not answering: ``ui.data.MongoNotAnswering``; the page then reloads by
  itself within ``RELOAD_CHECK_S`` of MongoDB answering again), anything else an error
  sentence; the details go to the server log. ``st.stop``/``st.rerun`` pass through untouched.
- A message an action leaves before ``st.rerun()`` (``flash``) is drawn by ``show_flash`` on the run
  that follows: once, or on every run for a set number of seconds; a new ``flash`` replaces it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import contextmanager

import streamlit as st
from pymongo.errors import PyMongoError

from pipeline.config import APP_NAME as APP_NAME  # the one definition; pages read page.APP_NAME
from pipeline.errors import explain
from pipeline.health.rules import clock
from pipeline.runtime import Runtime
from ui import alerts_toast, auth, navigation
from ui.alerts_toast import alert_toasts
from ui.data import MongoNotAnswering, StoreUnavailable
from ui.runtime import get_runtime, show_start_error

log = logging.getLogger("stockmon.pages")

HOME = navigation.spec("home")
WATCHLIST = navigation.spec("watchlist")
LIVE = navigation.spec("live")
HEALTH = navigation.spec("health")
ALERTS = navigation.spec("alerts")

STATE_LABELS = {
    "running": "🟢 running",
    "paused": "⏸️ paused",
    "stopped": "⏹️ stopped",
    "starting": "⏳ starting",
    "error": "🔴 error",
}
#: The sidebar's state while the pipeline runs but its consumer crashed and is restarting (or just did).
DEGRADED_LABEL = "🟠 degraded"
MONGO_DOWN_LABEL = "🔴"
SIDEBAR_REFRESH_S = 5  # seconds between redraws of the sidebar's pipeline state
RELOAD_CHECK_S = 2  # while MongoDB does not answer, a stopped page checks this often whether it is back


def setup(title: str, icon: str) -> Runtime:
    """Set up a page titled ``title`` (the browser tab reads "title · Stock Monitor", or just the app's
    name on the overview) and return the shared runtime; stops the page if the runtime cannot start."""
    navigation.through_frame()
    page_title = title if title == APP_NAME else f"{title} · {APP_NAME}"
    st.set_page_config(page_title=page_title, page_icon=icon, layout="wide")
    runtime = get_runtime()
    show_start_error(runtime)
    with st.sidebar:
        _pipeline_state(runtime)
    auth.sidebar(runtime.settings)
    alert_toasts()  # new alerts as toasts on every page
    return runtime


@st.fragment(run_every=SIDEBAR_REFRESH_S)
def _pipeline_state(runtime: Runtime) -> None:
    """The sidebar's pipeline state, and the count of recent unacknowledged alerts; redrawn on its
    own every few seconds (a page that only reruns a fragment would keep a stale state otherwise).
    The state is in memory; the alert count is one cached query shared by every session (2 s),
    skipped for 30 s after a failure and while MongoDB is known not to answer."""
    degraded = runtime.degraded()
    label = DEGRADED_LABEL if degraded else STATE_LABELS.get(runtime.state, runtime.state)
    st.caption(
        f"Pipeline {label} · {'embedded servers' if runtime.mode == 'embedded' else 'external servers'}",
        help=degraded,
    )
    down = runtime.mongo_down_since()  # the background health check's finding
    if down is not None:
        st.caption(f"{MONGO_DOWN_LABEL} MongoDB not answering since {clock(down)}")
        return
    unacked = alerts_toast.unacked_line()  # the recent unacknowledged alerts, toasted or not
    if unacked:
        link(ALERTS, unacked, icon="🔔")


def halted_notice(runtime: Runtime) -> None:
    """One line while the pipeline fetches nothing (paused or stopped), so a chart that stands still
    is not taken for a quiet market; nothing while it runs or starts (an error has its own page)."""
    if runtime.state in ("paused", "stopped"):
        st.info(
            f"The pipeline is {runtime.state}: no new prices are fetched, so what you see here stands "
            f"still. {'Resume' if runtime.state == 'paused' else 'Start'} it on the Overview page.",
            icon=STATE_LABELS[runtime.state].split()[0],
        )


@st.fragment(run_every=RELOAD_CHECK_S)
def _reload_when_mongo_answers() -> None:
    """Rerun the whole page once the health check finds MongoDB answering again (a page stopped by
    the outage may have no refreshing part of its own left)."""
    if get_runtime().mongo_down_since() is None:
        st.rerun(scope="app")


def viewer_timezone() -> str | None:
    """The browser's IANA time zone (``st.context.timezone``), None when the browser does not say
    (AppTest, old browsers): market times are then shown in the exchange's zone only."""
    try:
        tz = st.context.timezone
    except Exception:  # no browser context (bare script run)
        return None
    return str(tz) if tz else None


@contextmanager
def sentences(doing: str):
    try:
        yield
    except StoreUnavailable as exc:
        st.info(f"Nothing to show yet: {exc}.")
        st.stop()
    except MongoNotAnswering as exc:
        st.warning(f"{exc} Nothing could be read while {doing}; the page reloads once it answers.", icon="⚠️")
        _reload_when_mongo_answers()
        st.stop()
    except PyMongoError as exc:
        log.warning("MongoDB failed while %s", doing, exc_info=True)
        st.warning(
            f"MongoDB did not answer while {doing}. {explain(exc)} The page tries again on its next refresh.",
            icon="⚠️",
        )
        st.stop()
    except Exception:  # the one place where anything becomes a sentence
        log.exception("page failed while %s", doing)
        st.error(f"Something went wrong while {doing}. The details are in the server log.")
        st.stop()


def link(page: navigation.PageSpec, label: str, icon: str | None = None) -> None:
    """A link to ``page`` (one of ``ui.navigation.PAGES``), with the page's icon unless ``icon`` is
    given; plain text where no navigation registered the page (a page run alone under AppTest)."""
    try:
        st.page_link(page.file, label=label, icon=icon or page.icon)
    except Exception:  # AppTest runs a page without its siblings registered
        st.markdown(f"→ **{label}**")


#: How ``show_flash`` draws a message of each kind by default (the text is Markdown: our own words only).
FLASH_DRAW: dict[str, Callable[[str], object]] = {
    "success": st.success,
    "warning": st.warning,
    "error": st.error,
}


def flash(key: str, *messages: tuple[str, str]) -> None:
    """Keep ``messages`` ((kind, text) pairs) under ``key`` in the session for ``show_flash`` on the
    page's next run (the one a ``st.rerun()`` after an action starts), replacing what was kept there."""
    st.session_state[key] = (time.monotonic(), list(messages))


def show_flash(key: str, keep_s: float | None = None, draw: Callable[[str, str], None] | None = None) -> None:
    """Draw the messages ``flash`` kept under ``key``, in order: once (``keep_s`` None: the first run
    that shows them takes them away) or on every run until ``keep_s`` seconds after they were kept.
    ``draw(kind, text)`` draws one message; by default ``FLASH_DRAW[kind](text)``."""
    if keep_s is None:
        _, messages = st.session_state.pop(key, (0.0, []))
    else:
        said_at, messages = st.session_state.get(key, (0.0, []))
        if time.monotonic() - said_at >= keep_s:
            messages = []
    for kind, text in messages:
        if draw is None:
            FLASH_DRAW[kind](text)
        else:
            draw(kind, text)
