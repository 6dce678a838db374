"""One clock for the whole test run: real, or shifted to a chosen instant.

``pytest --clock=2026-11-26T15:00Z`` (or ``STOCKMON_TEST_NOW=...``) runs every test as if the run had
started at that instant, with the clock ticking on from there (``time-machine``'s ``travel(...,
tick=True)``): ``datetime.now``, ``date.today``, ``time.time`` and everything built on them move;
``time.monotonic`` and ``time.perf_counter`` do not, so waits and ceilings still measure real time.

The shift is one fixed offset (``STOCKMON_TEST_CLOCK_OFFSET``, seconds) decided once by the process
that starts pytest and handed down through the environment, so xdist workers and every Python child a
test starts (a consumer process, the Streamlit server, the MongoDB-wire server) read the same shifted
time: the folder ``clockhook/`` goes on ``PYTHONPATH`` and its ``sitecustomize`` applies the offset at
interpreter start. Non-Python children (the broker binary) keep the real clock, as a remote server
would.

Tests that need an instant of their own pass a ``ManualClock`` to the code under test (its
``clock=`` argument); ``--clock`` is for proving that nothing *else* reads the calendar day.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

NOW_ENV = "STOCKMON_TEST_NOW"
OFFSET_ENV = "STOCKMON_TEST_CLOCK_OFFSET"
HOOK_DIR = Path(__file__).resolve().parent / "clockhook"

#: Instants worth running the suite at (README/CONTRIBUTING), always the *next* one after today's real
#: date: a Saturday (15:00 UTC, also Tokyo's midnight), a Monday before the US open (13:00 UTC), a
#: weekday the New York Stock Exchange is closed for a holiday (16:00 UTC). Future, not fixed dates:
#: the embedded broker keeps the real clock, so events stamped days in the past would be deleted by
#: its time retention and committed offsets expired (measured with 2026-11-26 on 2026-12-06: four
#: tests failed for that reason alone); a fixed date would turn into a past one a week later.
PRESETS = ("saturday", "monday-before-us-open", "us-holiday")


def preset(name: str, today: date | None = None) -> str | None:
    """The ISO instant of preset ``name`` after ``today`` (default: the real UTC date), or None when
    ``name`` is not a preset (then it is an instant itself)."""
    today = today or datetime.now(UTC).date()
    if name == "saturday":
        day = today + timedelta(days=(5 - today.weekday()) % 7 or 7)
        return f"{day.isoformat()}T15:00:00+00:00"
    if name == "monday-before-us-open":
        day = today + timedelta(days=(0 - today.weekday()) % 7 or 7)
        return f"{day.isoformat()}T13:00:00+00:00"
    if name == "us-holiday":
        import exchange_calendars as xc  # type: ignore[import-untyped]

        end = today + timedelta(days=400)
        nyse = xc.get_calendar("XNYS", start=today.isoformat(), end=end.isoformat())
        sessions = {t.date() for t in nyse.sessions}
        days = (today + timedelta(days=k) for k in range(1, 400))
        day = next(d for d in days if d.weekday() < 5 and d not in sessions)
        return f"{day.isoformat()}T16:00:00+00:00"
    return None


#: Topic retention (hours) of a shifted run: a year, the most ``STOCKMON_RETENTION_HOURS`` allows.
SHIFTED_RETENTION_HOURS = 24.0 * 365


def shifted() -> bool:
    """Is this run's clock shifted (``--clock``)?"""
    return bool(os.environ.get(OFFSET_ENV))


def parse_instant(text: str) -> datetime:
    """An ISO 8601 instant (``Z`` or an offset; a bare date is midnight UTC) as an aware datetime.
    Raises ValueError for anything else."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def offset_for(instant: str) -> float:
    """Seconds to add to the real clock so that it reads ``instant`` now."""
    return parse_instant(instant).timestamp() - time.time()


def export(instant: str | None) -> float | None:
    """Decide the run's offset (once: an offset already in the environment wins, so xdist workers
    and children agree with the process that started them) and hand it down through the environment.
    Returns the offset in seconds, or None when the run uses the real clock."""
    if OFFSET_ENV not in os.environ:
        if not instant:
            return None
        os.environ[OFFSET_ENV] = repr(offset_for(instant))
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(HOOK_DIR) not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([str(HOOK_DIR), *paths])
    return float(os.environ[OFFSET_ENV])


def apply() -> object | None:
    """Shift this process's clock by the exported offset, unless ``clockhook/sitecustomize`` already
    did at interpreter start; returns the traveller (None when the clock is real)."""
    hook = sys.modules.get("sitecustomize")
    if getattr(hook, "TRAVELLER", None) is not None:
        return hook.TRAVELLER  # type: ignore[union-attr]
    raw = os.environ.get(OFFSET_ENV)
    if not raw:
        return None
    import time_machine

    traveller = time_machine.travel(time.time() + float(raw), tick=True)
    traveller.start()
    return traveller


class ManualClock:
    """A clock a test moves by hand, for code that takes a ``clock=`` callable.

    Calling it gives ``now`` (an aware UTC datetime; default: the run's clock at creation, itself
    shifted under ``--clock``); ``tick(seconds)`` moves it on; ``seconds()`` is the same instant as
    epoch seconds (float), for code whose clock returns ``time.time()``-style numbers.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start if start is not None else datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now

    def seconds(self) -> float:
        return self.now.timestamp()


def travel(instant: datetime):
    """A context manager that moves this process's wall clock to ``instant`` (ticking on), for a test
    whose own ``ManualClock`` is ahead of the run's clock: the code under test also checks events
    against the wall clock (``validate``: no timestamp more than a minute in the future), so the two
    must agree. Nests inside ``--clock``'s shift and undoes itself on exit."""
    import time_machine

    return time_machine.travel(instant, tick=True)
