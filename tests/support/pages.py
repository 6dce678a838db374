"""Helpers for the page tests: find a page file, run it under AppTest with isolated settings, and
check that nothing reached the page as a traceback."""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

from streamlit.testing.v1 import AppTest

from support.base import ROOT, drop_database, make_settings
from ui.navigation import PAGES as SPECS

# Every page file by key ("home", "watchlist", "live", ...), from the app's one list of pages.
PAGES = {p.key: ROOT / p.file for p in SPECS}
MONGO_DOWN = "mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=800"


def configure(stack, tmp_path, app_env, monkeypatch, autostart: bool = False, **overrides):
    """Settings on the test stack, applied to the environment the page's runtime reads."""
    settings = make_settings(stack, tmp_path, autostart=autostart, **overrides)
    app_env(settings)
    return settings


@contextmanager
def seeded_store(settings, watchlist, with_bars=(), days: int = 1):
    """A store with ``watchlist`` seeded and ``days`` of bars for ``with_bars``; dropped afterwards."""
    from pipeline.store import Store
    from pipeline.watchlist import Watchlist
    from support.market_data import seed_bars

    store = Store.from_uri(settings.mongodb_uri, settings.db)
    store.ensure_indexes()
    Watchlist(store.watchlist, None).seed(list(watchlist), "simulated")
    frame = seed_bars(store, list(with_bars), days=days) if with_bars else None
    try:
        yield store, frame
    finally:
        drop_database(store.client, settings.db)
        store.close()


def app(page: str, timeout: float = 60, query: dict | None = None, state: dict | None = None) -> AppTest:
    at = AppTest.from_file(str(PAGES[page]), default_timeout=timeout)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    for key, value in (state or {}).items():
        at.session_state[key] = value
    return at


def texts(at: AppTest) -> str:
    """Every sentence on the page (alerts, markdown, captions)."""
    parts = []
    for kind in ("success", "info", "warning", "error", "markdown", "caption"):
        parts += [str(e.value) for e in getattr(at, kind)]
    return "\n".join(parts)


def assert_clean(at: AppTest) -> None:
    """No exception element and no traceback text anywhere on the page."""
    assert not at.exception, [e.value for e in at.exception]
    page = texts(at)
    assert "Traceback" not in page and 'File "' not in page, page


def plotly_specs(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def trace_lengths(spec: dict) -> list[int]:
    out = []
    for trace in spec["data"]:
        x = trace.get("x")
        if x is not None:
            out.append(len(values(x)))
    return out


def values(array) -> list:
    """A trace array as a list, decoding plotly's typed-array encoding ({dtype, bdata})."""
    if isinstance(array, dict) and "bdata" in array:
        import base64

        import numpy as np

        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=np.dtype(array["dtype"])).tolist()
    return list(array or [])


def path(page: str) -> Path:
    return PAGES[page]


def plain(markdown: str) -> str:
    """What a browser shows for text escaped by ``ui.format.literal`` (AppTest gives the Markdown
    source): backslash escapes, code spans and hard line breaks undone."""
    import re

    out, at = [], 0
    for m in re.finditer(r"(?<![\\`])(`+)(.+?)(?<!`)\1(?!`)", markdown):
        out.append(re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown[at : m.start()]))
        code = m.group(2)
        out.append(code[1:-1] if code.startswith(" ") and code.endswith(" ") and code.strip() else code)
        at = m.end()
    out.append(re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown[at:]))
    return "".join(out).replace("  \n", "\n").replace("&#32;", " ")


def market_icons(symbol: str, *instants) -> set[str]:
    """The icons the pages give ``symbol``'s exchange at each aware instant, from its real calendar
    (a test takes one instant before and one after its run, so a session opening in between is no flake)."""
    from pipeline.markets.calendars import market_for, market_status
    from ui import markets as market_text

    return {market_text.badge(market_status(market_for(symbol), t)).split()[0] for t in instants}


def exchange_open(symbol: str, *instants) -> bool | None:
    """True if ``symbol``'s exchange is open at every instant, False if at none, None if it changed."""
    from pipeline.markets.calendars import market_for, market_status

    states = {market_status(market_for(symbol), t).is_open for t in instants}
    return states.pop() if len(states) == 1 else None


STREAMLIT_TESTED = "1.67."  # tick() drives Streamlit internals as they are in this version


def fragments(at: AppTest, name: str) -> list[str]:
    """Ids of the fragments the last run registered from the page's function called ``name``."""

    def cell(c):
        try:
            return c.cell_contents
        except ValueError:  # an empty closure cell (a variable not bound yet)
            return None

    def wraps(fragment) -> bool:
        cells = [cell(c) for c in getattr(fragment, "__closure__", None) or ()]
        return any(getattr(c, "__name__", None) == name for c in cells)

    return [i for i, f in at._fragment_storage._fragments.items() if wraps(f)]


def full_runs(monkeypatch) -> list[int]:
    """A list that grows by one each time a page runs from its top (every page calls
    ``ui.page.setup`` first): a fragment-scoped rerun leaves it as it was."""
    from ui import page

    runs: list[int] = []
    setup = page.setup

    def counted(*args, **kwargs):
        runs.append(1)
        return setup(*args, **kwargs)

    monkeypatch.setattr(page, "setup", counted)
    return runs


def tick(at: AppTest, name: str, timeout: float | None = None) -> AppTest:
    """What the browser does when the timer of the page's ``st.fragment(run_every=...)`` function
    ``name`` fires: it sends a rerun with that fragment's ``fragment_id`` and ``is_auto_rerun``
    (``AppSession.request_rerun``), and only the fragment runs, in the same session (AppTest has no
    timer of its own). A fragment that calls ``st.rerun()`` turns it into a full run, as in the
    browser. Fails when the last run registered no such fragment (the page would never look again by
    itself), when the run did not start fragment-scoped, or on a Streamlit this was not written for."""
    from unittest.mock import patch

    import streamlit
    from streamlit.runtime.scriptrunner import RerunData, ScriptRunnerEvent
    from streamlit.testing.v1 import app_test, local_script_runner

    assert streamlit.__version__.startswith(STREAMLIT_TESTED), (
        f"tests/support/pages.tick drives Streamlit {STREAMLIT_TESTED}x internals (AppTest's "
        f"LocalScriptRunner, RerunData, the fragment storage); Streamlit {streamlit.__version__} is "
        "installed: check them again and update STREAMLIT_TESTED"
    )
    ids = fragments(at, name)
    assert ids, f"the page registered no {name} fragment: nothing would refresh it without a reload"
    fired = ids[0]
    requests: list[RerunData] = []
    runners: list = []

    def from_timer(**fields):  # both requests a run makes (the runner's first one and run()'s)
        data = RerunData(**fields, fragment_id=fired, is_auto_rerun=True)
        requests.append(data)
        return data

    class Recorded(local_script_runner.LocalScriptRunner):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            runners.append(self)

    with (
        patch.object(local_script_runner, "RerunData", from_timer),
        patch.object(app_test, "LocalScriptRunner", Recorded),
    ):
        at.run(timeout=timeout)
    assert requests and len(runners) == 1, "tick's patches were not used: AppTest runs differently now"
    started = [
        d.get("fragment_ids_this_run")
        for e, d in zip(runners[0].events, runners[0].event_data, strict=True)
        if e == ScriptRunnerEvent.SCRIPT_STARTED
    ]
    assert started and started[0] == [fired], f"the run was not scoped to the {name} fragment: {started}"
    return at
