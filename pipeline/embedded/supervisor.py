"""The supervisor of the embedded servers: a server of the local stack that died is started again on
the port it had, so Kafka and MongoDB clients reconnect by themselves.

Guarantees: checks every ``every_s`` seconds in one daemon thread; a restart that fails is logged
and tried again on the next check (the Health page shows the server down meanwhile); ``restarts``
counts per server; ``stop()`` returns once no restart is under way (or after ``timeout`` s).
"""

from __future__ import annotations

import logging
import threading

from .stack import LocalStack

log = logging.getLogger(__name__)


class Supervisor:
    """Restarts an owned server of ``stack`` that died, on the port it had, so clients reconnect by
    themselves. Checks every ``every_s`` seconds in a daemon thread; ``restarts`` counts per server.
    ``stop()`` returns once no restart is under way (or after ``timeout`` s), so the owner can then
    stop the stack without the supervisor bringing a server back."""

    def __init__(self, stack: LocalStack, every_s: float = 2.0):
        self.stack = stack
        self.every_s = every_s
        self.restarts: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stockmon-supervisor", daemon=True)

    def start(self) -> Supervisor:
        self._thread.start()
        return self

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            for name in self.stack.dead_servers():
                if self._stop.is_set():
                    return
                log.error("embedded %s died; restarting it on port %s", name, self.stack.servers[name].port)
                try:
                    self.stack.restart_server(name)
                    self.restarts[name] = self.restarts.get(name, 0) + 1
                except Exception:  # keep supervising; the health page shows it down
                    log.exception("restart of %s failed", name)
