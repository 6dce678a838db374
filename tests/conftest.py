"""Shared fixtures: the real local stack (noida-db Kafka + SecantusDB MongoDB) on free ports in
temporary folders, per-test isolated settings on it, and the rule that in CI (``CI=true``) a missing
part fails the test instead of skipping it."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest

from pipeline.config import Settings
from pipeline.stack import LocalStack, StackError

ROOT = Path(__file__).resolve().parents[1]

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("STOCKMON_CHROMIUM", "/usr/bin/chromium")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, reason: str) -> None:
    """Skip off CI, fail in CI, when a part the test needs is missing."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required part missing in CI: {reason}")
    pytest.skip(reason)


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


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def make_settings(stack: LocalStack, tmp_path: Path, **overrides) -> Settings:
    values = dict(
        kafka_bootstrap_servers=stack.kafka_bootstrap,
        mongodb_uri=stack.mongodb_uri,
        db=unique("t").replace("-", "_"),
        topic_prices=unique("prices"),
        topic_dead_letter=unique("dlq"),
        consumer_group=unique("group"),
        data_dir=tmp_path / "data",
        partitions=3,
        poll_seconds=0.5,
        backfill_days_1m=0,
        backfill_days_daily=0,
        sim_seed=7,
    )
    values.update(overrides)
    return Settings.load(env={}, secrets_paths=[], **values)


@pytest.fixture
def settings(stack, tmp_path) -> Settings:
    return make_settings(stack, tmp_path)


@pytest.fixture
def store(settings):
    from pipeline.store import Store

    s = Store.from_uri(settings.mongodb_uri, settings.db)
    s.ensure_indexes()
    yield s
    s.client.drop_database(settings.db)
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
    return CHROMIUM


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a child process (or AppTest) use exactly these settings."""
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers or "",
        "MONGODB_URI": settings.mongodb_uri or "",
        "STOCKMON_DB": settings.db,
        "STOCKMON_TOPIC_PRICES": settings.topic_prices,
        "STOCKMON_TOPIC_DEAD_LETTER": settings.topic_dead_letter,
        "STOCKMON_CONSUMER_GROUP": settings.consumer_group,
        "STOCKMON_DATA_DIR": str(settings.data_dir),
        "STOCKMON_PARTITIONS": str(settings.partitions),
        "STOCKMON_POLL_SECONDS": str(settings.poll_seconds),
        "STOCKMON_BACKFILL_DAYS_1M": str(settings.backfill_days_1m),
        "STOCKMON_BACKFILL_DAYS_DAILY": str(settings.backfill_days_daily),
        "STOCKMON_SOURCE": settings.source,
        "STOCKMON_WATCHLIST": ",".join(settings.watchlist),
        "STOCKMON_DEMO_MODE": str(settings.demo_mode).lower(),
        "STOCKMON_AUTOSTART": str(settings.autostart).lower(),
        "STOCKMON_MAX_HISTORY_DAYS": str(settings.max_history_days),
    }
    if settings.sim_seed is not None:
        env["STOCKMON_SIM_SEED"] = str(settings.sim_seed)
    if settings.admin_password:
        env["STOCKMON_ADMIN_PASSWORD"] = settings.admin_password
    return {k: v for k, v in env.items() if v != ""}


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
