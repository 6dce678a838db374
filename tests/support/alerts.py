"""Helpers for the alert tests: price sequences, a webhook receiver and an SMTP server on free ports."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pipeline.models import PriceEvent, utcnow


def ticks(
    symbol: str,
    prices,
    start: datetime | None = None,
    step_s: float = 1.0,
    volume: float = 100.0,
    volumes=None,
) -> list[PriceEvent]:
    """One tick per price, ``step_s`` apart from ``start`` (default: just long enough ago to end now)."""
    prices = list(prices)
    start = start or utcnow() - timedelta(seconds=step_s * len(prices) + 1)
    vols = list(volumes) if volumes is not None else [volume] * len(prices)
    return [
        PriceEvent.tick(
            symbol,
            start + timedelta(seconds=step_s * i),
            float(p),
            float(v),
            source="test",
            fetched_at=start + timedelta(seconds=step_s * i),
        )
        for i, (p, v) in enumerate(zip(prices, vols, strict=False))
    ]


class Receiver:
    """A webhook receiver (http.server in a thread). ``script`` is a list of behaviours consumed per
    request: an HTTP status to answer, or "hang" (answer nothing for ``hang_s``); then 200 forever."""

    def __init__(self, script=(), hang_s: float = 5.0):
        self.script = list(script)
        self.hang_s = hang_s
        self.received: list[dict] = []
        self.attempts = 0
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with outer._lock:
                    outer.attempts += 1
                    action = outer.script.pop(0) if outer.script else 200
                if action == "hang":
                    time.sleep(outer.hang_s)
                    return
                if action == 200:
                    with outer._lock:
                        outer.received.append(
                            {
                                "body": json.loads(body),
                                "content_type": self.headers["Content-Type"],
                                "authorization": self.headers.get("Authorization"),
                                "path": self.path,
                            }
                        )
                self.send_response(action)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook/secret-token"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


class Mailbox:
    """An aiosmtpd server on a free port that keeps what it receives."""

    def __init__(self, auth: tuple[str, str] | None = None):
        from aiosmtpd.controller import Controller

        from pipeline.embedded.stack import free_port

        self.messages = []
        outer = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                outer.messages.append(envelope)
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def __enter__(self):
        self.controller.start()
        return self

    def __exit__(self, *exc):
        self.controller.stop()
