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

    scheduler = scheduler_counting(producer, misfire_grace_time=None)  # a slow start is not a miss here
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
        scheduler.add_job(lambda: None, "date", run_date=late, id="fetch:yfinance", executor="default")
        wait_for(lambda: producer.skipped_runs.get("fetch:yfinance"), 30, what="a missed run")
    finally:
        scheduler.shutdown(wait=True)
    assert producer.skipped_runs == {"fetch:yfinance": 1}
    assert producer.jobs["yfinance"].skipped == 1
    said = [r.getMessage() for r in caplog.records]
    assert not [m for m in said if "missed" in m], said


def test_only_fetch_jobs_skips_are_kept_out_of_the_log_and_other_warnings_reach_it():
    def record(msg: str, *args) -> logging.LogRecord:
        return logging.LogRecord("apscheduler.scheduler", logging.WARNING, __file__, 1, msg, args, None)

    skipped = 'Execution of job "%s" skipped: maximum number of running instances reached (%d)'
    missed = 'Run time of job "%s" was missed by %s'
    fetch, backfill = SimpleNamespace(id="fetch:simulated"), SimpleNamespace(id="backfill:AAPL")
    assert not SKIPPED_RUNS_FILTER.filter(record(skipped, fetch, 1))
    assert not SKIPPED_RUNS_FILTER.filter(record(missed, fetch, timedelta(seconds=40)))
    assert SKIPPED_RUNS_FILTER.filter(record(skipped, backfill, 1))  # a dropped backfill still says so
    assert SKIPPED_RUNS_FILTER.filter(record(missed, backfill, timedelta(seconds=40)))
    assert SKIPPED_RUNS_FILTER.filter(record('Job "%s" raised an exception', fetch))
    for name in (
        "apscheduler.scheduler",
        "apscheduler.executors.default",
        f"apscheduler.executors.{BACKFILL_EXECUTOR}",
    ):
        assert SKIPPED_RUNS_FILTER in logging.getLogger(name).filters
