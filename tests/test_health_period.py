"""The health snapshot's period (issue 20): every second while a page reads it, every ten seconds
while none does, and at once on the first read after such a pause."""

from __future__ import annotations

from pipeline.health.snapshot import HealthMonitor


def test_health_is_refreshed_every_second_while_read_and_every_ten_while_not():
    monitor = HealthMonitor(lambda: {}, every_s=1.0, idle_every_s=10.0, active_s=30.0)  # type: ignore[arg-type,return-value]
    assert monitor.period_s == 1.0  # just made: counts as read
    monitor._read_at -= 31.0  # nobody read for 31 s
    assert monitor.period_s == 10.0
    assert not any(w.is_set() for w in monitor._wakes)
    monitor.touch()  # the first read after the pause: both loops refresh at once
    assert monitor.period_s == 1.0 and all(w.is_set() for w in monitor._wakes)
    for wake in monitor._wakes:
        wake.clear()
    monitor.touch()  # a read within the active window does not wake anything
    assert not any(w.is_set() for w in monitor._wakes)
