"""A fake Yahoo Finance streamer for tests and demos: a WebSocket server speaking Yahoo's frames.

Wire format (what ``wss://streamer.finance.yahoo.com/?version=2`` speaks and ``yfinance.WebSocket``
reads): the client sends JSON text ``{"subscribe": [symbols]}`` / ``{"unsubscribe": [symbols]}``; the
server pushes JSON text frames ``{"type": "pricing", "message": <base64 of a protobuf PricingData>}``
(schema: yfinance's ``pricing.proto``). Every frame also carries an extra protobuf field (number 99)
that the real schema does not know: clients must ignore unknown fields.

Prices come from the fake HTTP market's deterministic ``price_at`` (``tests/support/fake_market.py``),
so a REST repair of a gap and the pushed ticks describe the same market. Prices are float32 on the
wire (as Yahoo's), ``time`` is epoch milliseconds, ``day_volume`` is cumulative per symbol since the
streamer's session began (its first frame per symbol carries ``day_volume`` 0, the opening print) and
survives dropped connections; ``new_session()`` starts a new day (volume back to 0).

Faults, switchable while it runs: ``drop()`` closes every connection (the server keeps accepting),
``stop()``/``start()`` takes the server down and back on the same port, ``silent`` pushes nothing
while connections stay open, ``send_garbage(n)`` mixes ``n`` malformed frames (of ``GARBAGE_KINDS``,
in turn) among the good ones, ``skip(symbol)`` never pushes that symbol. Everything pushed is
recorded in ``pushed`` (good frames) and ``garbage_sent``.
"""

from __future__ import annotations

import base64
import itertools
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve
from yfinance.pricing_pb2 import PricingData

from support.fake_market import INSTRUMENTS, FakeMarket, Instrument, price_at

#: field 99, varint 1: not in pricing.proto
UNKNOWN_FIELD = b"\x98\x06\x01"

GARBAGE_KINDS = (
    "not json",
    "no message",
    "not base64",
    "not protobuf",
    "no id",
    "zero price",
    "binary frame",
)


@dataclass
class Pushed:
    symbol: str
    price: float  # the float32 value as a Python float (189.97999572753906)
    time_ms: int
    day_volume: int
    price_hint: int


@dataclass
class _Conn:
    ws: ServerConnection
    symbols: set[str] = field(default_factory=set)


class FakeStreamer:
    """``FakeStreamer(market).start()``; ``url`` is the ws:// address to give the client."""

    def __init__(self, market: FakeMarket | None = None, tick_s: float = 0.25):
        self.market = market
        self.tick_s = tick_s
        self.silent = False
        self.skipped: set[str] = set()
        self.pushed: list[Pushed] = []
        self.garbage_sent: list[str] = []
        self.subscribe_log: list[tuple[str, tuple[str, ...]]] = []
        self.connections_accepted = 0
        self._garbage_left = 0
        self._kinds = itertools.cycle(GARBAGE_KINDS)
        self._volume: dict[str, int] = {}
        self._conns: list[_Conn] = []
        self._lock = threading.Lock()
        self._port = 0
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> FakeStreamer:
        """Listen (again, on the same port after a ``stop``)."""
        quiet = logging.getLogger("fake-streamer")  # not every open/close at INFO in the test output
        quiet.setLevel(logging.WARNING)
        self._server = serve(self._handle, "127.0.0.1", self._port, logger=quiet)
        self._port = self._server.socket.getsockname()[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-streamer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and close every connection."""
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        self.drop()

    def __enter__(self) -> FakeStreamer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self._port}/?version=2"

    # -- faults ---------------------------------------------------------------------------------
    def drop(self) -> None:
        """Close every open connection (the client sees the server close)."""
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            try:
                conn.ws.close()
            except Exception:
                pass

    def send_garbage(self, n: int) -> None:
        with self._lock:
            self._garbage_left += n

    def skip(self, symbol: str) -> None:
        self.skipped.add(symbol)

    def new_session(self) -> None:
        with self._lock:
            self._volume.clear()

    # -- inspection -----------------------------------------------------------------------------
    def subscribed(self) -> set[str]:
        with self._lock:
            return set().union(*(c.symbols for c in self._conns)) if self._conns else set()

    def pushed_for(self, symbol: str) -> list[Pushed]:
        with self._lock:
            return [p for p in self.pushed if p.symbol == symbol]

    # -- serving --------------------------------------------------------------------------------
    def _handle(self, ws: ServerConnection) -> None:
        conn = _Conn(ws)
        with self._lock:
            self._conns.append(conn)
            self.connections_accepted += 1
        next_push = time.monotonic()
        try:
            while True:
                try:
                    text = ws.recv(timeout=max(0.0, next_push - time.monotonic()))
                    self._command(conn, text)
                except TimeoutError:
                    pass
                if time.monotonic() >= next_push:
                    next_push = max(next_push + self.tick_s, time.monotonic())
                    if not self.silent:
                        self._push(conn)
        except ConnectionClosed:
            pass
        finally:
            with self._lock:
                if conn in self._conns:
                    self._conns.remove(conn)

    def _command(self, conn: _Conn, text: str | bytes) -> None:
        try:
            command = json.loads(text)
        except ValueError:
            return
        if not isinstance(command, dict):
            return
        with self._lock:
            for verb in ("subscribe", "unsubscribe"):
                symbols = command.get(verb)
                if isinstance(symbols, list):
                    self.subscribe_log.append((verb, tuple(map(str, symbols))))
                    if verb == "subscribe":
                        conn.symbols.update(map(str, symbols))
                    else:
                        conn.symbols.difference_update(map(str, symbols))

    def _push(self, conn: _Conn) -> None:
        for symbol in sorted(conn.symbols):
            if symbol in self.skipped:
                continue
            with self._lock:
                garbage = self._garbage_left > 0
                if garbage:
                    self._garbage_left -= 1
                    kind = next(self._kinds)
                    self.garbage_sent.append(kind)
            if garbage:
                conn.ws.send(_garbage(kind, symbol))
            frame = self._frame(symbol)
            if frame is not None:
                conn.ws.send(frame)

    def _frame(self, symbol: str) -> str | None:
        inst = INSTRUMENTS.get(symbol) or Instrument(symbol, 100.0, symbol)
        now = self.market.now() if self.market is not None else time.time()
        price = float(np.float32(price_at(inst, now)))
        hint = 4 if price < 10 else 2
        with self._lock:
            first = symbol not in self._volume
            size = 0 if first else 1 + (int(now * 1000) + len(self.pushed)) % 500
            day_volume = self._volume.get(symbol, 0) + size
            self._volume[symbol] = day_volume
            self.pushed.append(Pushed(symbol, price, int(now * 1000), day_volume, hint))
        data = PricingData(
            id=symbol,
            price=price,
            time=int(now * 1000),
            currency=inst.currency,
            exchange=inst.exchange_name,
            quote_type=8,
            market_hours=1,
            day_volume=day_volume,
            day_high=price * 1.01,
            day_low=price * 0.99,
            last_size=size,
            price_hint=hint,
        )
        payload = data.SerializeToString() + UNKNOWN_FIELD
        return json.dumps({"type": "pricing", "message": base64.b64encode(payload).decode()})


def _garbage(kind: str, symbol: str) -> str | bytes:
    def frame(data: PricingData) -> str:
        return json.dumps({"type": "pricing", "message": base64.b64encode(data.SerializeToString()).decode()})

    if kind == "not json":
        return "{not json"
    if kind == "no message":
        return json.dumps({"type": "pricing"})
    if kind == "not base64":
        return json.dumps({"type": "pricing", "message": "%%% not base64 %%%"})
    if kind == "not protobuf":
        return json.dumps({"type": "pricing", "message": base64.b64encode(b"\xff\xff\xff").decode()})
    if kind == "no id":
        return frame(PricingData(price=1.0, time=int(time.time() * 1000)))
    if kind == "zero price":
        return frame(PricingData(id=symbol, price=0.0, time=int(time.time() * 1000)))
    return b"\x00binary"
