"""Shared fixtures: the real local stack (noida-db Kafka + SecantusDB MongoDB) on free ports in
temporary folders and per-test isolated settings on it; the run's clock (``--clock``); and the test
tiers, derived from what each test needs (``support/tiers.py``). Plain helpers live in
``tests/support``."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from support import clock, tiers
from support.base import ARTIFACTS, CHROMIUM, drop_database, make_settings, require, settings_env
from support.streamlit_server import CEILING_MS

from pipeline.config import Settings
from pipeline.embedded.stack import LocalStack, StackError


def pytest_addoption(parser):
    parser.addoption(
        "--clock",
        default=None,
        metavar="INSTANT",
        help="run as if the run started at this ISO 8601 instant (e.g. 2026-11-26T16:00Z), the clock "
        f"ticking on from there; default ${clock.NOW_ENV} or the real clock. Presets: "
        + ", ".join(clock.PRESETS)
        + " (each the next one after today).",
    )


def pytest_configure(config):
    instant = config.getoption("--clock") or os.environ.get(clock.NOW_ENV) or None
    instant = (clock.preset(instant) or instant) if instant else None
    if clock.export(instant) is not None:
        clock.apply()
    tiers.register(config)


def pytest_report_header(config):
    from datetime import UTC, datetime

    shifted = clock.export(None) is not None
    return f"clock: {'shifted to ' if shifted else 'real, '}{datetime.now(UTC).isoformat(timespec='seconds')}"


def pytest_collection_modifyitems(config, items):
    tiers.assign(items)
    tiers.heaviest_files_first(items)


@pytest.fixture(autouse=True)
def _unit_tests_use_no_network(request, monkeypatch):
    """A test of the ``unit`` tier that opens a network socket fails with a sentence saying so."""
    if request.node.get_closest_marker("unit") is not None:
        tiers.forbid_network(monkeypatch, request.node.nodeid)
    yield


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    """One embedded stack for the whole session (tests isolate themselves by db/topic names)."""
    folder = tmp_path_factory.mktemp("stack")
    try:
        s = LocalStack(folder, timeout=60).start()
    except StackError as exc:
        require(False, f"local stack could not start: {exc}")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def private_stack(tmp_path_factory):
    """An embedded stack of the test module's own, for tests that freeze or kill its servers: the
    session's ``stack`` stays healthy for every other test on the worker."""
    folder = tmp_path_factory.mktemp("private-stack")
    try:
        s = LocalStack(folder, timeout=60).start()
    except StackError as exc:
        require(False, f"local stack could not start: {exc}")
    yield s
    s.stop()


@pytest.fixture
def settings(stack, tmp_path) -> Settings:
    return make_settings(stack, tmp_path)


@pytest.fixture
def store(settings):
    from pipeline.store import Store

    s = Store.from_uri(settings.mongodb_uri, settings.db)
    s.ensure_indexes()
    yield s
    drop_database(s.client, settings.db)
    s.close()


@pytest.fixture
def topics(settings):
    from pipeline import bus

    admin = bus.admin_client(settings.kafka_bootstrap_servers, settings)
    bus.ensure_topics(admin, settings)
    yield admin
    admin.close()


@pytest.fixture(scope="session")
def chromium_path() -> str:
    require(shutil.which(CHROMIUM) is not None or Path(CHROMIUM).exists(), f"{CHROMIUM} is not installed")
    import importlib.util

    require(importlib.util.find_spec("playwright") is not None, "playwright is not installed")
    from playwright.sync_api import expect

    expect.set_options(timeout=CEILING_MS)  # a ceiling for every expect(), not a wait
    return CHROMIUM


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def app_env(monkeypatch):
    """Apply a settings environment for AppTest and clear the cached runtime before and after."""
    import streamlit as st

    def apply(settings: Settings) -> None:
        for key, value in settings_env(settings).items():
            monkeypatch.setenv(key, value)

    st.cache_resource.clear()
    st.cache_data.clear()
    yield apply
    st.cache_resource.clear()  # releases (stops) the runtime the page started
    st.cache_data.clear()
