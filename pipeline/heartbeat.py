"""Heartbeats: every pipeline process (the app, and each ``python -m pipeline produce|consume``)
writes a small snapshot of itself to MongoDB's ``heartbeats`` collection, so the health page sees
scaled-out processes too.

Guarantees: one document per process (``_id`` = host:pid), rewritten every ``every_s`` seconds with
``at`` (UTC); ``pipeline.queries.processes`` reports one whose last beat is older than ``stale_s`` as gone. A failed
write is logged and retried on the next beat; it never stops the process. ``stop()`` waits for a beat
under way before it deletes the document, so a clean exit leaves none behind.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable

from .models import utcnow

log = logging.getLogger(__name__)


def process_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Heartbeat:
    def __init__(self, collection, role: str, snapshot: Callable[[], dict], every_s: float = 5.0):
        """``collection``: ``Store.heartbeats``."""
        self.collection = collection
        self.role = role
        self.snapshot = snapshot
        self.every_s = every_s
        self.id = process_id()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stockmon-heartbeat", daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def beat(self) -> None:
        doc = {
            "_id": self.id,
            "role": self.role,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "at": utcnow(),
            **self.snapshot(),
        }
        self.collection.replace_one({"_id": self.id}, doc, upsert=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.beat()
            except Exception as exc:  # health reporting must never stop the pipeline
                log.debug("heartbeat failed: %s", exc)
            self._stop.wait(self.every_s)

    def stop(self, wait_s: float = 10.0) -> None:
        """Stop beating and delete this process's document (a clean exit is not a dead process). The
        beat under way, if any, is waited for first (up to ``wait_s``): its upsert landing after the
        delete left a stale document behind (seen in a CI run of the two-consumer test)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(wait_s)
        try:
            self.collection.delete_one({"_id": self.id})
        except Exception:
            pass
