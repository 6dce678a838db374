"""The embedded stack: start/stop, leftovers of a crashed run, the one-owner lock, the CLI."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from pipeline.embedded.stack import (
    KAFKA,
    MONGO,
    LocalStack,
    StackBusy,
    kafka_answers,
    mongo_answers,
    pid_alive,
)

pytestmark = pytest.mark.starts_server  # starts its own stack or app processes inline

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_start_answers_and_stop_leaves_nothing(tmp_path):
    stack = LocalStack(tmp_path / "d", timeout=60).start()
    pids = {n: s.pid for n, s in stack.servers.items()}
    try:
        assert kafka_answers(stack.kafka_bootstrap) == "3.3"
        assert mongo_answers(stack.mongodb_uri)
        state = json.loads((tmp_path / "d" / "stack.json").read_text())
        assert state["owner_pid"] == os.getpid()
        assert {n: s["pid"] for n, s in state["servers"].items()} == pids
    finally:
        stack.stop()
    assert not any(pid_alive(p) for p in pids.values())
    assert not (tmp_path / "d" / "stack.json").exists()
    stack.stop()  # idempotent


def test_second_owner_gets_a_clear_message(tmp_path):
    first = LocalStack(tmp_path, timeout=60).start()
    try:
        with pytest.raises(StackBusy, match=f"process {os.getpid()} already runs the local stack"):
            LocalStack(tmp_path).start()
    finally:
        first.stop()


def _crash_owner(tmp_path):
    """Start a stack in a child process and SIGKILL that process, leaving its servers behind."""
    code = (
        f"import sys, time; sys.path.insert(0, {ROOT!r}); from pipeline.embedded.stack import LocalStack; "
        f"LocalStack({str(tmp_path)!r}, timeout=60).start(); print('up', flush=True); time.sleep(600)"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "up"
    child.send_signal(signal.SIGKILL)
    child.wait()
    return LocalStack(tmp_path).read_state()


def test_healthy_leftovers_are_reused(tmp_path):
    leftovers = _crash_owner(tmp_path)
    assert all(pid_alive(s.pid) for s in leftovers.values())
    stack = LocalStack(tmp_path, timeout=60).start()
    try:
        assert stack.servers[KAFKA].pid == leftovers[KAFKA].pid and stack.servers[KAFKA].reused
        assert stack.servers[MONGO].pid == leftovers[MONGO].pid and stack.servers[MONGO].reused
    finally:
        stack.stop()
    assert not any(pid_alive(s.pid) for s in leftovers.values())


def test_unhealthy_leftovers_are_replaced(tmp_path):
    leftovers = _crash_owner(tmp_path)
    os.killpg(leftovers[MONGO].pid, signal.SIGSTOP)  # alive but not answering
    try:
        stack = LocalStack(tmp_path, timeout=60).start()
        try:
            assert stack.servers[MONGO].pid != leftovers[MONGO].pid
            assert not pid_alive(leftovers[MONGO].pid)
            assert mongo_answers(stack.mongodb_uri)
        finally:
            stack.stop()
    finally:
        for info in leftovers.values():
            try:
                os.killpg(info.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_start_failure_includes_log_tail(tmp_path, monkeypatch):
    import pipeline.embedded.stack as stack_mod

    monkeypatch.setattr(
        stack_mod,
        "secantus_command",
        lambda: [sys.executable, "-c", "import sys; print('boom: storage is corrupt'); sys.exit(3)"],
    )
    with pytest.raises(
        stack_mod.StackError, match="(?s)mongodb exited during start-up.*boom: storage is corrupt"
    ):
        LocalStack(tmp_path, timeout=20).start()
    assert not (tmp_path / "stack.json").exists()


def test_cli_stack_up_status_down(tmp_path):
    env = {**os.environ, "STOCKMON_DATA_DIR": str(tmp_path)}
    up = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "stack", "up", "--json"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        lines = []
        while not "".join(lines).strip().endswith("}"):
            lines.append(up.stdout.readline())
        info = json.loads("".join(lines))
        assert info["kafka"].startswith("127.0.0.1:")
        status = subprocess.run(
            [sys.executable, "-m", "pipeline", "stack", "status", "--json"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert status.returncode == 0, status.stderr
        servers = json.loads(status.stdout)["servers"]
        assert {s["name"] for s in servers} == {KAFKA, MONGO} and all(s["alive"] for s in servers)
        pids = [s["pid"] for s in servers]
        down = subprocess.run(
            [sys.executable, "-m", "pipeline", "stack", "down"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert down.returncode == 0, down.stderr
        assert up.wait(timeout=30) == 0
        deadline = time.monotonic() + 60  # a ceiling; they stop within seconds
        while any(pid_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(pid_alive(p) for p in pids)
    finally:
        if up.poll() is None:
            up.kill()
