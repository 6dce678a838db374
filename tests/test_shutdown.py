"""Ctrl+C in the middle of the first start's backfill: ``streamlit run Home.py`` with nothing
configured (embedded servers, the default watchlist, a long history to fetch) is opened by a client
session (the websocket message a browser sends on load), and SIGINT arrives while the backfill is still publishing. The app and every process it
started (the noida-db and SecantusDB servers included) must be gone within 10 s, and nothing may be
logged at ERROR level or as a traceback on the way out. SIGTERM (what a service manager sends) the same."""

from __future__ import annotations

import json
import signal
import time

import psutil
import pytest
from support.pipeline import wait_for
from support.streamlit_server import streamlit_server

STOP_WITHIN_S = 10.0


def alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    """The processes that still run (a zombie waiting for its parent to reap it has exited)."""
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            continue
    return out


def open_session(url: str):
    """Connect like a browser tab and ask for the Home script to run; return the open websocket
    once the script finished (the runtime has started by then)."""
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from websockets.sync.client import connect

    ws = connect(url.replace("http://", "ws://") + "/_stcore/stream", subprotocols=["streamlit"])
    rerun = BackMsg()
    rerun.rerun_script.query_string = ""
    ws.send(rerun.SerializeToString())
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        msg = ForwardMsg()
        msg.ParseFromString(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        if msg.WhichOneof("type") == "script_finished":
            return ws
    raise AssertionError("the Home script did not finish within 120 s")


def backfill_in_progress(data) -> bool:
    """True once some symbol's backfill has published part, not all, of its history."""
    import pymongo

    try:
        servers = json.loads((data / "stack.json").read_text())["servers"]
    except (OSError, ValueError, KeyError):
        return False
    client = pymongo.MongoClient(
        f"mongodb://127.0.0.1:{servers['mongodb']['port']}/?directConnection=true",
        serverSelectionTimeoutMS=2000,
    )
    try:
        docs = list(client["stockmon"]["backfills"].find())
    except pymongo.errors.PyMongoError:
        return False
    finally:
        client.close()
    return any(d.get("status") == "running" and 0 < d.get("done", 0) < d.get("total", 0) for d in docs)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_during_the_first_backfill_stops_everything_within_10_s(sig, tmp_path, artifacts):
    data = tmp_path / "data"
    env = {
        "STOCKMON_DATA_DIR": str(data),
        "STOCKMON_SIM_SEED": "3",
        "STOCKMON_BACKFILL_DAYS_1M": "30",  # the longest history allowed: the backfill outlasts the wait
        "STOCKMON_BACKFILL_DAYS_DAILY": "3650",
    }
    log_path = artifacts / f"shutdown-{sig.name}-server.log"
    with streamlit_server(env, log_path, drop=("KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URI")) as (url, proc):
        session = open_session(url)
        try:
            wait_for(lambda: backfill_in_progress(data), 60, every_s=0.3, what="the backfill to be running")
            app = psutil.Process(proc.pid)
            tree = [app, *app.children(recursive=True)]
            names = " ".join(c.name() for c in tree)
            assert "noida" in names and "secantus" in names, names  # both servers are in the tree
            t0 = time.monotonic()
            proc.send_signal(sig)
            deadline = t0 + STOP_WITHIN_S + 20  # watch a little longer to report how long it really took
            while alive(tree) and time.monotonic() < deadline:
                proc.poll()  # reap the app (our child) so it does not linger as a zombie
                time.sleep(0.05)
            took = time.monotonic() - t0
            left = [f"{p.pid} {p.name()}" for p in alive(tree)]
        finally:
            session.close()
    print(f"everything gone {took:.1f}s after {sig.name}")
    assert not left, f"still running {took:.0f}s after {sig.name}: {left}"
    assert took < STOP_WITHIN_S, f"the app took {took:.1f}s to stop"
    text = log_path.read_text(errors="replace")
    bad = [ln for ln in text.splitlines() if " ERROR " in ln or "Traceback" in ln or "CRITICAL" in ln]
    assert not bad, "\n".join(bad[:20])
    assert not (data / "stack.json").exists()
