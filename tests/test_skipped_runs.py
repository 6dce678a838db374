"""A quiet terminal (issue 20): APScheduler's per-run "skipped" warnings are counted per job, not
logged every poll period. Driven by a real ``BackgroundScheduler`` (no servers)."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED
from apscheduler.schedulers.background import BackgroundScheduler
from support.pipeline import wait_for

from pipeline.producer import BACKFILL_EXECUTOR, SKIPPED_RUNS_FILTER, JobStats, Producer


def scheduler_counting(into: SimpleNamespace, **job_defaults) -> BackgroundScheduler:
    """A scheduler whose skipped runs go to ``Producer._skipped`` with ``into`` as the producer."""
    scheduler = BackgroundScheduler(timezone=UTC, job_defaults={"max_instances": 1, **job_defaults})
    scheduler.add_listener(lambda e: Producer._skipped(into, e), EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED)  # type: ignore[arg-type]
    return scheduler


def test_a_run_due_while_the_previous_still_runs_is_counted_and_not_logged(caplog):
    caplog.set_level(logging.DEBUG, logger="apscheduler")
    producer = SimpleNamespace(skipped_runs={}, jobs={})
    started, release = threading.Event(), threading.Event()

    def slow_fetch() -> None:
        started.set()
        release.wait(60)

    scheduler = scheduler_counting(producer)
    scheduler.start()
    try:
        job = scheduler.add_job(
            slow_fetch, "interval", hours=1, id="fetch:simulated", next_run_time=datetime.now(UTC)
        )
        assert started.wait(30), "the first run never started"
        for _ in range(3):  # three more runs fall due while the first one still runs
            seen = producer.skipped_runs.get("fetch:simulated", 0)
            job.modify(next_run_time=datetime.now(UTC))
            scheduler.wakeup()
            wait_for(lambda s=seen: producer.skipped_runs.get("fetch:simulated", 0) > s, 30, what="a skip")
    finally:
        release.set()
        scheduler.shutdown(wait=True)
    assert producer.skipped_runs == {"fetch:simulated": 3}
    assert isinstance(producer.jobs["simulated"], JobStats) and producer.jobs["simulated"].skipped == 3
    assert producer.jobs["simulated"].snapshot()["skipped"] == 3
    said = [r.getMessage() for r in caplog.records]
    assert not [m for m in said if "skipped" in m or "missed" in m], said


def test_a_run_that_starts_too_late_is_counted_and_not_logged(caplog):
    caplog.set_level(logging.DEBUG, logger="apscheduler")
    producer = SimpleNamespace(skipped_runs={}, jobs={})
    scheduler = scheduler_counting(producer, misfire_grace_time=1, coalesce=True)
    scheduler.start()
    try:
        late = datetime.now(UTC) - timedelta(minutes=5)
        scheduler.add_job(lambda: None, "date", run_date=late, id="backfill:AAPL", executor="default")
        wait_for(lambda: producer.skipped_runs.get("backfill:AAPL"), 30, what="a missed run")
    finally:
        scheduler.shutdown(wait=True)
    assert producer.skipped_runs == {"backfill:AAPL": 1}
    assert producer.jobs == {}  # only fetch jobs have a row of their own
    said = [r.getMessage() for r in caplog.records]
    assert not [m for m in said if "missed" in m], said


def test_other_apscheduler_warnings_still_reach_the_log():
    record = logging.LogRecord(
        f"apscheduler.executors.{BACKFILL_EXECUTOR}",
        logging.ERROR,
        __file__,
        1,
        'Job "%s" raised an exception',
        ("x",),
        None,
    )
    assert SKIPPED_RUNS_FILTER.filter(record)
    for name in (
        "apscheduler.scheduler",
        "apscheduler.executors.default",
        f"apscheduler.executors.{BACKFILL_EXECUTOR}",
    ):
        assert SKIPPED_RUNS_FILTER in logging.getLogger(name).filters
