"""What every page does first, and how every page fails.

Guarantees:
- ``setup`` configures the page (wide layout, title, icon), gets the one shared runtime, stops the
  page with a sentence and a "Try again" button if the runtime could not start, draws the sidebar
  (pipeline state, "degraded" while the consumer is down or recently restarted, demo-mode sign-in)
  and starts the toasts of new alerts (``ui.alerts_toast``): every page does all of it, in this order.
- Inside ``with sentences("doing X"):`` no exception reaches the browser as a traceback: a MongoDB
  problem becomes a warning that says the page will retry, anything else an error sentence; the
  details go to the server log. ``st.stop``/``st.rerun`` pass through untouched.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager

import streamlit as st
from pymongo.errors import PyMongoError

from pipeline.runtime import Runtime, explain
from ui import auth, navigation
from ui.alerts_toast import alert_toasts
from ui.data import StoreUnavailable
from ui.runtime import get_runtime, show_start_error

log = logging.getLogger("stockmon.pages")

HOME = navigation.spec("home")
WATCHLIST = navigation.spec("watchlist")
LIVE = navigation.spec("live")
HISTORY = navigation.spec("history")
ALERTS = navigation.spec("alerts")
HEALTH = navigation.spec("health")

STATE_LABELS = {
    "running": "🟢 running",
    "paused": "⏸️ paused",
    "stopped": "⏹️ stopped",
    "starting": "⏳ starting",
    "error": "🔴 error",
}
#: The sidebar's state while the pipeline runs but its consumer crashed and is restarting (or just did).
DEGRADED_LABEL = "🟠 degraded"


APP_NAME = "Stock Monitor"


def setup(title: str, icon: str) -> Runtime:
    """Set up a page titled ``title`` (the browser tab reads "title · Stock Monitor", or just the app's
    name on the overview) and return the shared runtime; stops the page if the runtime cannot start."""
    navigation.through_frame()
    page_title = title if title == APP_NAME else f"{title} · {APP_NAME}"
    st.set_page_config(page_title=page_title, page_icon=icon, layout="wide")
    runtime = get_runtime()
    show_start_error(runtime)
    degraded = runtime.degraded()
    label = DEGRADED_LABEL if degraded else STATE_LABELS.get(runtime.state, runtime.state)
    with st.sidebar:
        st.caption(
            f"Pipeline {label} · {'embedded servers' if runtime.mode == 'embedded' else 'external servers'}",
            help=degraded,
        )
    auth.sidebar(runtime.settings)
    alert_toasts()  # new alerts as toasts on every page
    return runtime


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
