"""What every kind of test needs: the repository root, the artifacts folder, the rule that in CI
(``CI=true``) a missing part fails the test instead of skipping it, and settings isolated per test
on the shared local stack."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from pipeline.config import Settings
from pipeline.embedded.stack import LocalStack
from support import clock

ROOT = Path(__file__).resolve().parents[2]

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
    if clock.shifted():
        # The broker binary keeps the real clock: to it, a record stamped by a shifted run is days
        # old or in the future, and time retention would delete it unread. Keep topics a year.
        values["retention_hours"] = clock.SHIFTED_RETENTION_HOURS
    values.update(overrides)
    return Settings.load(env={}, secrets_paths=[], **values)


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
        "STOCKMON_EMBEDDED_RETENTION_MB": str(settings.embedded_retention_mb),
        "STOCKMON_RETENTION_HOURS": str(settings.retention_hours),
    }
    if settings.sim_seed is not None:
        env["STOCKMON_SIM_SEED"] = str(settings.sim_seed)
    if settings.admin_password:
        env["STOCKMON_ADMIN_PASSWORD"] = settings.admin_password
    return {k: v for k, v in env.items() if v != ""}


def drop_database(client, name: str, within_s: float = 60.0) -> None:
    """Drop a test's database, retrying a transient failure (a pool reset cancels operations in
    flight: ``_OperationCancelled`` in a teardown on a loaded machine) for up to ``within_s``
    seconds; the last error is raised after that."""
    import time

    from pymongo.errors import PyMongoError

    deadline = time.monotonic() + within_s
    while True:
        try:
            client.drop_database(name)
            return
        except PyMongoError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
