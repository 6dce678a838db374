"""The embedded local stack: a Kafka-protocol broker (noida-db) and a MongoDB-wire server (SecantusDB)
run as child processes on free loopback ports, with their data under one data folder.

Guarantees:
- ``LocalStack.start()`` returns only when both servers really answer (a kafka-python metadata
  request, a pymongo ping), or raises ``StackError`` whose message includes the tail of the failing
  server's log.
- One owner per data folder: the owner holds an exclusive ``flock`` on ``stack.lock`` for as long as
  it runs; a second process gets ``StackBusy`` naming the owner's pid. Readers (``status``,
  ``python -m pipeline produce|consume``) read ``stack.json`` without the lock and never start
  servers.
- Leftovers of a crashed run (recorded in ``stack.json``) are reused when they still answer, and
  killed and replaced when they do not.
- ``stop()`` signals every server's whole process group at once (SIGTERM, a grace period so the
  broker can save its snapshot, then SIGKILL) and forgets them; it is idempotent.
- ``pipeline.embedded.supervisor.Supervisor`` restarts an owned server that died, on its old port.
- SecantusDB is GPL-2.0: it is only ever run as a separate process through its console script and
  never imported.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import closing
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import StackError as StackError  # told to a person by explain(); defined there

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
STATE_FILE = "stack.json"
LOCK_FILE = "stack.lock"
KAFKA = "kafka"
MONGO = "mongodb"
SERVERS = (KAFKA, MONGO)


class StackBusy(StackError):
    """Another process owns this data folder."""


@dataclass
class ServerInfo:
    name: str
    pid: int
    port: int
    started_at: float
    log: str
    reused: bool = False

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def port_open(port: int, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


def tail(path: str | Path, lines: int = 20) -> str:
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:]) or "(empty log)"


def noida_binary() -> list[str]:
    """The real noida-db binary (not its Python wrapper, which would not forward signals)."""
    try:
        from importlib.resources import files

        path = files("noida_db").joinpath("noida-db")
        if path.is_file():
            os.chmod(str(path), 0o755)
            return [str(path)]
    except ModuleNotFoundError:
        pass
    found = shutil.which("noida-db")
    if not found:
        raise StackError("noida-db is not installed: pip install -r requirements.txt")
    return [found]


def secantus_command() -> list[str]:
    candidate = Path(sys.executable).with_name("secantusd-py")
    found = str(candidate) if candidate.exists() else shutil.which("secantusd-py")
    if not found:
        raise StackError("SecantusDB is not installed: pip install -r requirements.txt")
    return [found]


def kafka_answers(bootstrap: str, timeout: float = 3.0, **options) -> str | None:
    """Return the broker's API version string if a metadata request succeeds, else None."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            request_timeout_ms=int(timeout * 1000),
            bootstrap_timeout_ms=int(timeout * 1000),
            **options,
        )
    except (KafkaError, OSError, ValueError):
        return None
    try:
        admin.list_topics()  # a real metadata round trip (noida-db lacks DescribeCluster)
        version = getattr(getattr(admin, "_manager", None), "broker_version", None)
        return ".".join(map(str, version)) if version else "unknown"
    except (KafkaError, OSError):
        return None
    finally:
        admin.close()


def mongo_answers(uri: str, timeout: float = 3.0) -> str | None:
    """Return the server version if a ping succeeds, else None."""
    import pymongo
    from pymongo.errors import PyMongoError

    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
        uri, serverSelectionTimeoutMS=int(timeout * 1000), connectTimeoutMS=int(timeout * 1000)
    )
    try:
        client.admin.command("ping")
        return client.server_info().get("version", "unknown")
    except PyMongoError:
        return None
    finally:
        client.close()


class LocalStack:
    """Own (``start``/``stop``) or read (``read_state``) the embedded servers of one data folder."""

    def __init__(self, data_dir: str | Path, timeout: float = 60.0):
        self.data_dir = Path(data_dir)
        self.timeout = timeout
        self.servers: dict[str, ServerInfo] = {}
        self._lock_fd: int | None = None
        self._procs: dict[str, subprocess.Popen] = {}

    # -- addresses --------------------------------------------------------------------------------
    @property
    def kafka_bootstrap(self) -> str:
        return self.servers[KAFKA].address

    @property
    def mongodb_uri(self) -> str:
        return f"mongodb://{self.servers[MONGO].address}/?directConnection=true"

    # -- state file -------------------------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return self.data_dir / STATE_FILE

    def read_state(self) -> dict[str, ServerInfo]:
        """What ``stack.json`` records (possibly from a crashed run); never starts anything."""
        try:
            raw = json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return {}
        out = {}
        for name in SERVERS:
            entry = raw.get("servers", {}).get(name)
            if isinstance(entry, dict):
                try:
                    out[name] = ServerInfo(
                        **{k: entry[k] for k in ("name", "pid", "port", "started_at", "log")}
                    )
                except (KeyError, TypeError):
                    continue
        return out

    def owner_pid(self) -> int | None:
        try:
            pid = json.loads(self.state_path.read_text()).get("owner_pid")
        except (OSError, ValueError):
            return None
        return pid if isinstance(pid, int) and pid_alive(pid) else None

    def _write_state(self) -> None:
        data = {"owner_pid": os.getpid(), "servers": {n: asdict(s) for n, s in self.servers.items()}}
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        tmp.replace(self.state_path)

    # -- lock -------------------------------------------------------------------------------------
    def _acquire_lock(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            owner = self.owner_pid()
            who = f"process {owner}" if owner else "another process"
            raise StackBusy(
                f"{who} already runs the local stack in {self.data_dir}. Stop it first, "
                "or give this instance its own STOCKMON_DATA_DIR."
            ) from None
        os.set_inheritable(fd, False)
        self._lock_fd = fd

    def start_lock_only(self) -> LocalStack:
        """Take ownership of the folder without starting anything (to clean up leftovers)."""
        self._acquire_lock()
        return self

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing drops the flock
            self._lock_fd = None

    @property
    def owned(self) -> bool:
        return self._lock_fd is not None

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> LocalStack:
        self._acquire_lock()
        try:
            leftovers = self.read_state()
            for name in SERVERS:
                self.servers[name] = self._reuse(leftovers.get(name)) or self._spawn(name)
                self._write_state()
            for name in SERVERS:
                self._wait_healthy(self.servers[name])
        except BaseException:
            self.stop()
            raise
        return self

    def _healthy(self, info: ServerInfo, timeout: float = 3.0) -> bool:
        if not pid_alive(info.pid) or not port_open(info.port):
            return False
        if info.name == KAFKA:
            return kafka_answers(info.address, timeout) is not None
        return mongo_answers(f"mongodb://{info.address}/?directConnection=true", timeout) is not None

    def _reuse(self, info: ServerInfo | None) -> ServerInfo | None:
        if info is None:
            return None
        if self._healthy(info):
            log.info("reusing leftover %s (pid %s, port %s)", info.name, info.pid, info.port)
            info.reused = True
            return info
        if pid_alive(info.pid):
            log.warning("replacing unhealthy leftover %s (pid %s)", info.name, info.pid)
            self._kill_group(info.pid, grace=5.0)
        return None

    def _spawn(self, name: str, port: int | None = None) -> ServerInfo:
        port = port or free_port()
        folder = self.data_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        log_path = self.data_dir / f"{name}.log"
        if name == KAFKA:
            cmd = noida_binary() + [
                "start",
                "--only",
                "kafka",
                "--host",
                HOST,
                "--kafka-port",
                str(port),
                "--data-dir",
                str(folder),
            ]
        else:
            cmd = secantus_command() + [
                "--host",
                HOST,
                "--port",
                str(port),
                "--storage-path",
                str(folder),
                "--log-level",
                "WARNING",
            ]
        with open(log_path, "ab") as out:
            out.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(cmd)}\n".encode())
            out.flush()
            proc = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=folder,
                start_new_session=True,
            )
        self._procs[name] = proc
        log.info("started %s (pid %s, port %s)", name, proc.pid, port)
        return ServerInfo(name=name, pid=proc.pid, port=port, started_at=time.time(), log=str(log_path))

    def _wait_healthy(self, info: ServerInfo) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if not pid_alive(info.pid):
                raise StackError(
                    f"{info.name} exited during start-up. Last lines of {info.log}:\n{tail(info.log)}"
                )
            if port_open(info.port) and self._healthy(info, timeout=2.0):
                return
            time.sleep(0.2)
        raise StackError(
            f"{info.name} did not answer on {info.address} within {self.timeout:.0f} s. "
            f"Last lines of {info.log}:\n{tail(info.log)}"
        )

    @staticmethod
    def _signaller(pid: int):
        """A function sending a signal to ``pid``'s process group (or to ``pid`` alone if it does not
        lead one); None if the process is gone."""
        try:
            pgid = os.getpgid(pid)
        except ProcessLookupError:
            return None

        def send(sig: int) -> None:
            try:
                if pgid == pid:
                    os.killpg(pgid, sig)
                else:
                    os.kill(pid, sig)
            except ProcessLookupError:
                pass

        return send

    @classmethod
    def _kill_group(cls, pid: int, grace: float) -> None:
        cls._kill_all([pid], grace)

    @classmethod
    def _kill_all(cls, pids: list[int], grace: float) -> None:
        """SIGTERM every group at once, wait up to ``grace`` s for all leaders, then SIGKILL the groups
        (they may hold helpers even when the leader is gone)."""
        senders = [(pid, send) for pid in pids if (send := cls._signaller(pid)) is not None]
        for _, send in senders:
            send(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while any(pid_alive(pid) for pid, _ in senders) and time.monotonic() < deadline:
            time.sleep(0.05)
        for _, send in senders:
            send(signal.SIGKILL)

    def stop(self, grace: float = 10.0) -> None:
        """Stop the servers this process owns (SIGTERM to all at once, up to ``grace`` s, SIGKILL) and
        release the folder."""
        if not self.owned:
            return
        infos = [self.servers.pop(name) for name in reversed(SERVERS) if name in self.servers]
        for info in infos:
            log.info("stopping %s (pid %s)", info.name, info.pid)
        self._kill_all([info.pid for info in infos], grace)
        for info in infos:
            proc = self._procs.pop(info.name, None)
            if proc is not None:
                try:
                    proc.wait(timeout=1)
                except subprocess.TimeoutExpired:
                    pass
        try:
            self.state_path.unlink()
        except FileNotFoundError:
            pass
        self._release_lock()

    def stop_server(self, name: str, grace: float = 10.0) -> None:
        """Stop one owned server but remember its port (outage drills, supervised restarts)."""
        info = self.servers[name]
        self._kill_group(info.pid, grace)
        proc = self._procs.pop(name, None)
        if proc is not None:
            proc.wait(timeout=5)

    def restart_server(self, name: str) -> ServerInfo:
        """(Re)start one owned server on the port it had, so clients reconnect on their own."""
        if not self.owned:
            raise StackError("only the owner of the data folder can restart its servers")
        old = self.servers[name]
        if pid_alive(old.pid):
            self._kill_group(old.pid, grace=10.0)
        deadline = time.monotonic() + 10
        while port_open(old.port) and time.monotonic() < deadline:
            time.sleep(0.1)
        info = self._spawn(name, port=old.port)
        self.servers[name] = info
        self._write_state()
        self._wait_healthy(info)
        return info

    def kafka_footprint(self) -> tuple[int | None, float | None]:
        """The embedded broker's snapshot file size (bytes; ``kafka.json`` in its data folder, rewritten
        whole every ~1-2 s while messages arrive) and its resident memory (MiB); None where unknown."""
        try:
            snapshot: int | None = (self.data_dir / KAFKA / "kafka.json").stat().st_size
        except OSError:
            snapshot = None
        info = self.servers.get(KAFKA)
        return snapshot, rss_mb(info.pid) if info is not None else None

    def dead_servers(self) -> list[str]:
        """Owned servers whose process is gone (the runtime's supervisor restarts them)."""
        return [n for n, info in self.servers.items() if not pid_alive(info.pid)] if self.owned else []

    # -- introspection ----------------------------------------------------------------------------
    def describe(self) -> list[dict]:
        """pid, port, uptime, RSS and liveness of each server (for health and ``stack status``)."""
        rows = []
        for name, info in (self.servers or self.read_state()).items():
            rows.append(
                {
                    "name": name,
                    "pid": info.pid,
                    "port": info.port,
                    "alive": pid_alive(info.pid),
                    "uptime_s": round(time.time() - info.started_at, 1),
                    "rss_mb": rss_mb(info.pid),
                    "log": info.log,
                }
            )
        return rows


def rss_mb(pid: int) -> float | None:
    """Resident memory of a process and its descendants, in MiB (None if unknown)."""
    try:
        import psutil

        proc = psutil.Process(pid)
        total = proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(recursive=True))
        return round(total / 2**20, 1)
    except Exception:  # introspection must never break health
        return None
