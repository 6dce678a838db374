"""Freeze a server process (SIGSTOP) for the duration of a ``with`` block: the fault of a hung
MongoDB, whose connections stay open and answer nothing. The process (and its whole process group,
when it leads one, as the local stack's servers do) is always continued (SIGCONT) on the way out,
whatever the block raised, so no other test can inherit a frozen server."""

from __future__ import annotations

import os
import signal
import time
from contextlib import contextmanager


def _signal(pid: int, sig: int) -> None:
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


@contextmanager
def frozen(pid: int):
    """SIGSTOP ``pid`` (its process group if it leads one); yield the monotonic time it was frozen;
    SIGCONT it on exit."""
    _signal(pid, signal.SIGSTOP)
    try:
        yield time.monotonic()
    finally:
        _signal(pid, signal.SIGCONT)
