"""Cached data loaders for the pages: thin wrappers around ``pipeline.queries``.

Guarantees:
- Every loader is an ``st.cache_data`` function with a short ttl (live data 1 s, quotes 3 s, history
  30 s), keyed by the store (MongoDB URI + database) and its arguments, so many browser sessions
  looking at the same thing cost one query.
- Loaders raise ``pymongo.errors.PyMongoError`` (or ``StoreUnavailable``) and never show anything;
  pages turn failures into sentences with ``ui.page.sentences``.
- No loader waits on a dead server: the store pages get ends every operation within
  ``STOCKMON_MONGO_TIMEOUT`` seconds, and while the background health check finds MongoDB not
  answering, ``store()`` and ``watchlist_entries()`` raise ``MongoNotAnswering`` at once, without
  asking it ("MongoDB not answering since HH:MM:SS UTC").
- ``collection_details`` is computed in a background thread: the page gets the last answer
  immediately, ``None`` until the first one. Against external servers it is recounted at most once
  a minute while a page asks; the embedded server, which walks whole collections to count and
  answers nothing else meanwhile, counts only on ``count_collections()`` (a button) and without
  sizes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import pymongo
import streamlit as st

from pipeline import queries
from pipeline.runtime import Runtime

log = logging.getLogger(__name__)


class StoreUnavailable(RuntimeError):
    """The runtime has no MongoDB connection (it is stopped or could not start)."""


class MongoNotAnswering(RuntimeError):
    """The health check finds MongoDB not answering; ``str(exc)`` says since when."""


def _runtime() -> Runtime:
    from ui.runtime import get_runtime

    return get_runtime()


def _answering(runtime: Runtime) -> None:
    """Raise ``MongoNotAnswering`` while the background health check gets no answer (no I/O)."""
    since = runtime.mongo_down_since()
    if since is not None:
        from pipeline.health.rules import clock

        raise MongoNotAnswering(f"MongoDB not answering since {clock(since)}.")


def store():
    """The pages' store; raises ``StoreUnavailable`` or ``MongoNotAnswering`` instead of waiting."""
    runtime = _runtime()
    if not runtime.connected:
        raise StoreUnavailable("the pipeline is not connected to MongoDB; start it on the Overview page")
    _answering(runtime)
    return runtime.store


def store_key() -> str:
    runtime = _runtime()
    return f"{runtime.mongodb_uri}|{runtime.settings.db}"


@st.cache_data(ttl=1, show_spinner=False, max_entries=256)
def live_bars(
    key: str, symbols: tuple[str, ...], interval: str, window_s: int, warmup: int, max_points: int
) -> queries.BarsResult:
    return queries.recent_bars(
        store(), symbols, interval, timedelta(seconds=window_s), warmup=warmup, max_points=max_points
    )


@st.cache_data(ttl=30, show_spinner=False, max_entries=128)
def history_bars(
    key: str, symbols: tuple[str, ...], interval: str, start: datetime, end: datetime, max_points: int
) -> queries.BarsResult:
    return queries.bars(store(), symbols, interval, start, end, max_points=max_points)


@st.cache_data(ttl=30, show_spinner=False, max_entries=128)
def auto_interval(
    key: str, symbols: tuple[str, ...], start: datetime, end: datetime
) -> tuple[str, str | None]:
    """History's "auto": the finest interval covering the whole range (``queries.auto_covering``)."""
    return queries.auto_covering(store(), symbols, start, end)


@st.cache_data(ttl=3, show_spinner=False, max_entries=64)
def quotes(key: str, symbols: tuple[str, ...]) -> pd.DataFrame:
    return queries.quotes(store(), symbols)


@st.cache_data(ttl=60, show_spinner=False, max_entries=64)
def fx_rates(key: str, pairs: tuple[str, ...], days: int = 40) -> dict:
    """Daily FX closes by session date for the last ``days`` days, for the base-currency views
    (``queries.fx_rates``)."""
    return queries.fx_rates(store(), pairs, days=days)


@st.cache_data(ttl=60, show_spinner=False, max_entries=64)
def repairs(key: str, symbols: tuple[str, ...], start: datetime, end: datetime) -> list[dict]:
    """The stored repairs of provider data in a range (``queries.repairs``)."""
    return queries.repairs(store(), symbols, start, end)


@st.cache_data(ttl=60, show_spinner=False, max_entries=64)
def corporate_actions(key: str, symbols: tuple[str, ...]) -> list[dict]:
    """The stored splits and dividends of ``symbols`` (``queries.corporate_actions``)."""
    return queries.corporate_actions(store(), symbols)


@st.cache_data(ttl=30, show_spinner=False, max_entries=64)
def sparklines(key: str, symbols: tuple[str, ...]) -> dict[str, list[float]]:
    return queries.sparklines(store(), symbols)


def watchlist_entries(enabled_only: bool = False) -> list:
    runtime = _runtime()
    if not runtime.connected:
        raise StoreUnavailable("the pipeline is not connected to MongoDB; start it on the Overview page")
    _answering(runtime)
    return runtime.watchlist.entries(enabled_only=enabled_only)


def backfills() -> list[dict]:
    return queries.backfills(store())


class Periodic:
    """Runs ``fn`` in a background thread at most every ``every_s`` seconds while ``get()`` is called
    (``every_s=None``: only after ``request()``); neither blocks."""

    def __init__(self, fn: Callable[[], Any], every_s: float | None = 60.0):
        self.fn = fn
        self.every_s = every_s
        self.value: Any = None
        self.at: float | None = None
        self.error: str | None = None
        self._running = False
        self._lock = threading.Lock()

    def get(self) -> tuple[Any, float | None, str | None]:
        """(last value, epoch seconds it was computed, error sentence or None); starts a run when due."""
        with self._lock:
            due = self.every_s is not None and (self.at is None or time.time() - self.at > self.every_s)
            if due:
                self._start()
            return self.value, self.at, self.error

    def request(self) -> None:
        """Start a run now (unless one runs already)."""
        with self._lock:
            self._start()

    @property
    def running(self) -> bool:
        return self._running

    def _start(self) -> None:  # under the lock
        if not self._running:
            self._running = True
            threading.Thread(target=self._run, name="stockmon-periodic", daemon=True).start()

    def _run(self) -> None:
        try:
            value, error = self.fn(), None
        except Exception as exc:  # reported on the page as a sentence
            log.warning("background query failed: %s", exc)
            value, error = self.value, f"{exc.__class__.__name__}: {str(exc)[:200]}"
        with self._lock:
            self.value, self.error, self.at, self._running = value, error, time.time(), False


@st.cache_resource(show_spinner=False)
def _collection_worker(key: str) -> Periodic:
    runtime = _runtime()
    embedded = runtime.mode == "embedded"

    def run():
        if not runtime.connected:
            raise StoreUnavailable("not connected")
        # off the page's path, and slow on big collections: the pipeline's longer deadline, not the pages'
        with pymongo.timeout(runtime.settings.mongo_write_timeout):
            return queries.collection_details(runtime.store, sizes=not embedded)

    return Periodic(run, every_s=None if embedded else 60.0)


def collection_details() -> tuple[list[dict] | None, float | None, str | None]:
    """(rows of ``queries.collection_details``, epoch seconds counted, error) as last counted."""
    return _collection_worker(store_key()).get()


def count_collections() -> None:
    """Count the collections now, in the background (the embedded server counts only when asked)."""
    _collection_worker(store_key()).request()


def counting_collections() -> bool:
    return _collection_worker(store_key()).running


@st.cache_resource(show_spinner=False)
def lag_history(key: str):
    """Consumer lag samples shared by every session of this process (for STALL/WARN over a window)."""
    from pipeline.health.rules import LagHistory

    return LagHistory()


@st.cache_data(ttl=60, show_spinner=False, max_entries=64)
def daily_summary(key: str, symbols: tuple[str, ...]) -> dict[str, dict]:
    """Sessions, first/last session and all-time high close per symbol (``queries.daily_summary``)."""
    return queries.daily_summary(store(), symbols)
