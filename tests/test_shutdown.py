"""Ctrl+C in the middle of the first start's backfill: ``streamlit run Home.py`` with nothing
configured (embedded servers, the default watchlist, a long history to fetch) is opened by a client
session (the websocket message a browser sends on load), and SIGINT arrives while the backfill is
still publishing. The app and every process it started (the noida-db and SecantusDB servers
included) must be gone, nothing may be logged at ERROR level or as a traceback on the way out, and
the stack's state file is removed. SIGTERM (what a service manager sends) the same.

The time it takes is printed here and measured against the 10 s goal by bench/bench_shutdown.py:
the test's ceiling is generous so that a loaded machine cannot fail it."""

from __future__ import annotations

import signal

import pytest
from support.shutdown import stop_during_backfill

pytestmark = pytest.mark.starts_server  # starts its own stack or app processes inline

CEILING_S = 60.0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_the_first_backfill_stops_everything_cleanly(sig, tmp_path, artifacts):
    stopped = stop_during_backfill(sig, tmp_path, artifacts / f"shutdown-{sig.name}-server.log", CEILING_S)
    print(f"everything gone {stopped.seconds:.1f}s after {sig.name}")
    assert not stopped.left, f"still running {stopped.seconds:.0f}s after {sig.name}: {stopped.left}"
    text = stopped.log_path.read_text(errors="replace")
    bad = [ln for ln in text.splitlines() if " ERROR " in ln or "Traceback" in ln or "CRITICAL" in ln]
    assert not bad, "\n".join(bad[:20])
    assert not (tmp_path / "data" / "stack.json").exists()
