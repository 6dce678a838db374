"""The notifier: delivers fired alerts to the webhook and e-mail channels, off the ingestion path.

Guarantees:
- It works only from the fired alerts in MongoDB (``Store.alert_events``, ``delivery.<channel>.status == "pending"``), never
  from memory: an alert stored before a crash is delivered after the restart. Each channel runs in
  its own thread, so a hanging webhook never delays e-mail, and neither ever delays ingestion.
- At-least-once per channel: an alert is *leased* (``lease_until``) with an atomic update before it
  is sent, so two notifiers (two app processes) never send it at the same time; if a process dies
  mid-send the lease expires and it is sent again. Receivers can de-duplicate on the alert ``id``.
- Retries: attempt n failing schedules attempt n+1 after ``alert_backoff_s * 2**(n-1)`` seconds
  (capped at 5 minutes); after ``alert_retries`` attempts the channel is marked ``failed`` with the
  last error. For a webhook with several URLs, the ones already done are not posted again.
- ``snapshot()`` (for health) has, per channel: sent, failed, retries, the last error and when, the
  last success and how many alerts are pending (as of the end of the notifier's last pass: after
  ``stop()`` it leaves out everything delivered or failed). It does no I/O.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from datetime import timedelta

from pymongo import ReturnDocument
from pymongo.errors import PyMongoError

from ..metrics import Tally
from ..models import utcnow
from . import channels as ch
from .events import EPOCH

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 300.0


class Notifier:
    def __init__(
        self, store, settings, poll_s: float = 1.0, lease_s: float | None = None, owner: str | None = None
    ):
        self.events = store.alert_events
        self.settings = settings
        self.channels = ch.make(settings)
        self.poll_s = poll_s
        # a lease outlives the longest attempt (every URL timing out) with a margin
        longest = max(
            settings.alert_webhook_timeout * max(1, len(settings.alert_webhook_urls)),
            settings.smtp_timeout * 3,
        )
        self.lease_s = lease_s or longest + 30
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}"
        self.tally = {name: Tally(keep_reasons=20) for name in self.channels}
        self.status: dict[str, dict] = {
            name: {"last_ok_at": None, "last_error": None, "last_error_at": None} for name in self.channels
        }
        self.pending: dict[str, int | None] = {name: None for name in self.channels}
        self._counted_at: dict[str, float] = {name: 0.0 for name in self.channels}
        self._wake = {name: threading.Event() for name in self.channels}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> Notifier:
        for name in self.channels:
            t = threading.Thread(target=self._run, args=(name,), name=f"stockmon-notify-{name}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def wake(self) -> None:
        """New alerts were stored: look now instead of at the next poll."""
        for event in self._wake.values():
            event.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.wake()
        for t in self._threads:
            t.join(timeout)
        self._threads = []

    def _run(self, name: str) -> None:
        while not self._stop.is_set():
            try:
                self.run_once(name)
            except PyMongoError as exc:
                log.warning("notifier %s: MongoDB failed: %s", name, exc)
            except Exception:  # a delivery thread must not die
                log.exception("notifier %s failed", name)
            self._wake[name].wait(self.poll_s)
            self._wake[name].clear()

    # -- work ---------------------------------------------------------------------------------------
    def due(self, name: str, limit: int = 50) -> list[dict]:
        now = utcnow()
        return list(
            self.events.find(
                {f"delivery.{name}.status": "pending", f"delivery.{name}.next_at": {"$lte": now}}, {"_id": 1}
            )
            .sort("fired_at", 1)
            .limit(limit)
        )

    def run_once(self, name: str) -> int:
        """Deliver what is due on one channel; return how many were delivered.

        The pending count is taken after the deliveries, so once this returns it already leaves out
        what this pass delivered or failed (counted before them, a snapshot read between this pass
        and the next, e.g. after ``stop()``, still showed the alert just delivered as pending)."""
        delivered = claimed = 0
        for row in self.due(name):
            if self._stop.is_set():
                break
            doc = self._claim(name, row["_id"])
            if doc is None:
                continue
            claimed += 1
            if self._deliver(name, doc):
                delivered += 1
        if claimed or self.pending[name] or time.monotonic() - self._counted_at[name] >= 10:
            # counted here, on the notifier's thread, so that a health snapshot never waits for MongoDB
            self.pending[name] = self.events.count_documents({f"delivery.{name}.status": "pending"})
            self._counted_at[name] = time.monotonic()
        return delivered

    def _claim(self, name: str, alert_id: str) -> dict | None:
        now = utcnow()
        prefix = f"delivery.{name}"
        return self.events.find_one_and_update(
            {
                "_id": alert_id,
                f"{prefix}.status": "pending",
                f"{prefix}.next_at": {"$lte": now},
                f"{prefix}.lease_until": {"$lte": now},
            },
            {
                "$set": {
                    f"{prefix}.lease_until": now + timedelta(seconds=self.lease_s),
                    f"{prefix}.owner": self.owner,
                },
                "$inc": {f"{prefix}.attempts": 1},
            },
            return_document=ReturnDocument.AFTER,
        )

    def _deliver(self, name: str, doc: dict) -> bool:
        entry = doc["delivery"][name]
        attempt = int(entry.get("attempts", 1))
        prefix = f"delivery.{name}"
        done_before = frozenset(entry.get("done") or [])
        try:
            self.channels[name].send(doc, skip=done_before)
        except ch.DeliveryError as exc:
            done = sorted(done_before | set(exc.done))
            error = str(exc)
            self.status[name].update(last_error=error, last_error_at=time.time())
            final = attempt >= self.settings.alert_retries
            changes = {f"{prefix}.error": error, f"{prefix}.done": done, f"{prefix}.lease_until": EPOCH}
            if final:
                changes[f"{prefix}.status"] = "failed"
                self.tally[name].add("failed")
                self.tally[name].reason(alert=doc["_id"], error=error)
                log.warning(
                    "alert %s: %s failed for good after %d attempts: %s", doc["_id"], name, attempt, error
                )
            else:
                delay = min(MAX_BACKOFF_S, self.settings.alert_backoff_s * 2 ** (attempt - 1))
                changes[f"{prefix}.next_at"] = utcnow() + timedelta(seconds=delay)
                self.tally[name].add("retries")
                log.info(
                    "alert %s: %s attempt %d failed (retry in %.1fs): %s",
                    doc["_id"],
                    name,
                    attempt,
                    delay,
                    error,
                )
            self.events.update_one({"_id": doc["_id"]}, {"$set": changes})
            return False
        self.events.update_one(
            {"_id": doc["_id"]},
            {
                "$set": {
                    f"{prefix}.status": "delivered",
                    f"{prefix}.delivered_at": utcnow(),
                    f"{prefix}.error": None,
                    f"{prefix}.lease_until": EPOCH,
                }
            },
        )
        self.tally[name].add("sent")
        self.status[name]["last_ok_at"] = time.time()
        return True

    # -- health -------------------------------------------------------------------------------------
    def snapshot(self) -> dict:
        out = {}
        for name, target in self.channels.items():  # in memory only: safe to call from any page
            counts = self.tally[name].snapshot()
            out[name] = {
                "targets": target.targets(),
                "sent": counts["counts"].get("sent", 0),
                "failed": counts["counts"].get("failed", 0),
                "retries": counts["counts"].get("retries", 0),
                "pending": self.pending[name],
                "recent_failures": counts["recent"][-5:],
                **self.status[name],
            }
        return out
