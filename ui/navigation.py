"""The one list of the app's pages: file, title, icon, URL path and menu section of each.

Guarantees:
- ``PAGES`` is the only place a page's file name or URL is written down. ``Home.py`` builds the
  navigation menu from it (``menu()``), ``ui.page.link`` links to its entries, and the tests run and
  visit exactly these pages.
- Every file is ``pages/<key>.py`` relative to the repository root (where ``Home.py`` is), and the
  page's URL path is its ``key`` (the first page is the default and is served at the root URL "/").
  Keeping the URL path equal to the file's stem also lets Streamlit's AppTest find a page by file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streamlit.navigation.page import StreamlitPage


@dataclass(frozen=True)
class PageSpec:
    """One page: ``key`` (file stem and URL path), menu ``title``, emoji ``icon`` and menu ``section``."""

    key: str
    title: str
    icon: str
    section: str

    @property
    def file(self) -> str:
        """The page's script, relative to the repository root (the entry point's folder)."""
        return f"pages/{self.key}.py"

    @property
    def default(self) -> bool:
        """The first page of the list is the one served at the root URL."""
        return self is PAGES[0]

    @property
    def url_path(self) -> str:
        """The path after the app's base URL: "" for the default page, else the key."""
        return "" if self.default else self.key


MONITOR = "Monitor"
ALERTS_AND_HEALTH = "Alerts & health"

PAGES: tuple[PageSpec, ...] = (
    PageSpec("home", "Overview", "🏠", MONITOR),
    PageSpec("watchlist", "Watchlist", "📋", MONITOR),
    PageSpec("live", "Live", "📈", MONITOR),
    PageSpec("history", "History", "🗂️", MONITOR),
    PageSpec("insights", "Insights", "🔭", MONITOR),
    PageSpec("forecast", "Forecast", "🔮", MONITOR),
    PageSpec("alerts", "Alerts", "🔔", ALERTS_AND_HEALTH),
    PageSpec("health", "Pipeline health", "🩺", ALERTS_AND_HEALTH),
)


def spec(key: str) -> PageSpec:
    """The page with this key; KeyError names the known keys when there is none."""
    for p in PAGES:
        if p.key == key:
            return p
    raise KeyError(f"no page {key!r}; pages are {[p.key for p in PAGES]}")


def menu() -> dict[str, list[StreamlitPage]]:
    """``st.Page`` objects grouped by section, in list order, for ``st.navigation``."""
    import streamlit as st

    sections: dict[str, list[StreamlitPage]] = {}
    for p in PAGES:
        sections.setdefault(p.section, []).append(
            st.Page(p.file, title=p.title, icon=p.icon, url_path=p.key, default=p.default)
        )
    return sections


def through_frame() -> None:
    """Make sure a page runs inside ``Home.py``'s navigation; call it before a page draws anything.

    Streamlit keeps its legacy routing for a ``pages/`` folder until an ``st.navigation`` call has run
    in the server process: a page URL opened before anyone opened "/" runs ``pages/<key>.py`` alone,
    with a menu of file names. Then this declares the real menu (which switches the process to
    ``st.navigation`` for good) and reruns, so that ``Home.py`` runs the same page. Outside that case
    (inside the frame, or a page file run alone under AppTest) it does nothing.
    """
    import streamlit as st

    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # a Streamlit without the legacy pages-folder routing
        return
    if getattr(PagesManager, "uses_pages_directory", False):
        st.navigation(menu())
        st.rerun()
