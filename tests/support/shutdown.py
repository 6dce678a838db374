"""Ctrl+C on a running app, measured: start ``streamlit run Home.py`` with nothing configured and a
long first backfill, open a session like a browser tab, wait until the backfill is publishing, send
a signal, and time until the app and every process it started (both embedded servers) are gone.
Used by tests/test_shutdown.py (a generous ceiling, plus the log checks) and bench/bench_shutdown.py
(the figure against the 10 s goal)."""

from __future__ import annotations

import json
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from support.pipeline import wait_for
from support.streamlit_server import streamlit_server


@dataclass
class Stopped:
    """What one stop looked like: seconds from the signal until no process of the tree ran, the
    processes still running at ``ceiling_s`` ("pid name"), and the server log's path."""

    seconds: float
    left: list[str]
    log_path: Path


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


def stop_during_backfill(sig: signal.Signals, tmp: Path, log_path: Path, ceiling_s: float = 60.0) -> Stopped:
    """Run the app on a fresh data folder under ``tmp``, send ``sig`` while the first backfill runs,
    and watch the whole process tree for at most ``ceiling_s`` seconds."""
    data = tmp / "data"
    env = {
        "STOCKMON_DATA_DIR": str(data),
        "STOCKMON_SIM_SEED": "3",
        "STOCKMON_BACKFILL_DAYS_1M": "30",  # the longest history allowed: the backfill outlasts the wait
        "STOCKMON_BACKFILL_DAYS_DAILY": "3650",
    }
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
            while alive(tree) and time.monotonic() < t0 + ceiling_s:
                proc.poll()  # reap the app (our child) so it does not linger as a zombie
                time.sleep(0.05)
            took = time.monotonic() - t0
            left = [f"{p.pid} {p.name()}" for p in alive(tree)]
        finally:
            session.close()
    return Stopped(took, left, log_path)
