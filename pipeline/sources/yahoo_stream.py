"""Yahoo's streamer (push, sub-second) as a source: one long-lived WebSocket per process.

Wire format (``yfinance.WebSocket``, schema in yfinance's ``pricing.proto``): JSON text frames
``{"message": <base64 protobuf PricingData>}``; the client sends ``{"subscribe": [...]}`` and
``{"unsubscribe": [...]}``. The connection is made by ``yfinance.WebSocket(url=...)`` (present with
this API since yfinance 1.4; our floor is 1.7 for the request budget); frames are read with a timeout so a silent stall is seen.

Guarantees:
- One connection per instance (``make_source`` builds one per process), opened only while symbols are
  wanted. ``fetch(symbols)`` (the producer's job, every poll interval) sets the wanted symbols; the
  listener subscribes to added ones and unsubscribes removed ones within ``RECV_SLICE_S`` of that
  call, and after every reconnect subscribes to all of them again. ``fetch`` itself publishes nothing
  of the stream: pushed frames go to Kafka from the stream's own publisher thread as soon as they
  arrive (``attach``), batched only by what arrived meanwhile.
- ``make_source`` builds it for ``yahoo_stream`` and, by default (``STOCKMON_YAHOO_LIVE=stream``), for
  ``yfinance``: each source name in use holds its own connection (one per process when the watchlist
  uses one of the two names, as it normally does).
- A pushed frame becomes one ``tick`` event (``source="yahoo_stream"``): ``ts`` is the provider's
  trade time (``time``, epoch ms), ``fetched_at`` the time the frame was received (UTC). ``price``
  (a 32-bit float) is rounded to the frame's ``price_hint`` decimals (2 if absent, 4 below 10), so
  189.97999572753906 is stored as 189.98. ``volume`` comes from the frame's cumulative
  ``day_volume`` by ``tick_volume.TickVolume``: a session's figure gives each tick its increase
  since the symbol's previous frame (0 for the first frame a process sees of a session, the whole
  figure for the first frame of a new session date); for crypto (``quote_type`` CRYPTOCURRENCY, or
  a 24/7 market) the figure is a *rolling 24-hour* one and a tick gets its increase only over a gap
  of at most ``tick_volume.ROLLING_GAP_S`` (no daily reset at 00:00 UTC). Daily crypto volume
  comes from the provider's daily bar (``bars``), not from the sum of these deltas.
  Unknown protobuf fields are ignored. A second frame of a symbol within the same millisecond as its
  previous one (two trades, or a volume update) is stamped 1 ms later, since ticks are keyed by
  (symbol, ts) at MongoDB's millisecond resolution and it would otherwise be dropped with its volume.
- A bad frame (binary, not JSON, no ``message``, not base64, not a PricingData, no symbol, a price
  or time that does not validate) is counted by reason and dead-lettered (stage ``stream``) with its
  reason in the headers; it never stops the listener. No exception ends the listener thread: every
  failure is recorded and followed by a reconnect with exponential backoff and jitter.
- A connection that stays silent for ``stall_s`` while a subscribed symbol's market is open (the
  ``market_open`` hook, by default ``market_open_now``: regular sessions from ``markets``' exchange
  calendars, crypto 24/7, FX 24/5) is treated as dropped. Only silence while a market is open counts:
  a night, weekend, holiday or lunch break without frames is no stall, and the clock starts again
  from zero with each frame. After each reconnect, every subscribed symbol whose
  last tick is older than ``repair_after_s`` gets one REST request (1m bars since the minute of its
  last tick, ``priority=REPAIR`` in the request budget) and the complete minutes up to the reconnect
  are published as 1m bars: the bar builder merges them with the ticks (a source bar is
  authoritative for open and volume), so no minute is missing or doubled.
- Symbols the stream does not cover (no frame for ``uncovered_s`` while connected) are fetched by
  REST from ``fetch`` at most once per ``uncovered_s`` each, under the same budget.
- While no connection has been up for ``stall_s`` with symbols wanted (a network that blocks
  WebSockets, a streamer that is down), ``fetch`` falls back to polling them all by Yahoo's quote
  API (``YahooSource.quotes``: one request per 50 symbols, ticks with volume) every
  ``fallback_every_s`` (what the REST budget sustains, at least 5 s); it stops as soon as a
  connection is up. ``health()["fallback"]`` says since when and how often.
- ``health()`` gives: connected, connected since, messages/s over the last minute, last message per
  symbol, reconnects, gaps repaired, bad frames by reason, subscriptions, and latency p50/p95 over
  the last minute of trade→received and received→Kafka (ms).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import yfinance as yf
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from websockets.exceptions import ConnectionClosed
from yfinance.pricing_pb2 import PricingData

from .. import bus
from ..markets.calendars import market_for, market_status
from ..metrics import Rate
from ..models import InvalidEvent, PriceEvent, iso, normalize_symbol, utcnow, validate
from .backoff import Backoff
from .base import FetchResult, SymbolInfo
from .budget import REPAIR
from .tick_volume import TickVolume
from .yahoo import YahooSource

log = logging.getLogger(__name__)

DEFAULT_URL = "wss://streamer.finance.yahoo.com/?version=2"
#: How long one read waits before the listener looks at subscriptions and the stall clock again (s).
RECV_SLICE_S = 0.25
#: Yahoo's own client re-sends its subscription this often (yfinance AsyncWebSocket heartbeat), s.
RESUBSCRIBE_S = 15.0
MARKET_HOURS = {0: "pre", 1: "regular", 2: "post", 3: "extended"}


class _QuietConnectErrors(logging.Filter):
    """yfinance logs every failed connect with a traceback; we record it in health instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Failed to connect to WebSocket")


logging.getLogger("yfinance").addFilter(_QuietConnectErrors())


class BadFrame(ValueError):
    """A frame that cannot become a tick; ``reason`` says why (one short sentence)."""

    def __init__(self, reason: str, kind: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.kind = kind or reason  # what health counts by (the reason without the symbol)


class Stalled(ConnectionError):
    """No frame for ``stall_s`` while a subscribed market is open."""


class _Client(yf.WebSocket):
    """yfinance's synchronous client plus a read with a timeout (its ``listen`` blocks forever)."""

    def receive(self, timeout: float) -> str | bytes:
        """The next frame; ``TimeoutError`` when none came within ``timeout`` s, ``ConnectionClosed``
        when the server went away."""
        if self._ws is None:
            raise ConnectionError("not connected")
        return self._ws.recv(timeout=timeout)


def market_open_now(symbols: Sequence[str], now: datetime | None = None) -> bool:
    """True when any symbol's market is in regular trading at ``now`` (aware; default: the current
    instant), per ``markets.market_status`` of ``market_for(symbol)``: the exchange's calendar
    (holidays, early closes, lunch breaks are closed), 24/7 for crypto, 24/5 for FX. Pre-market and
    after-hours do not count (trading is too thin there for silence to mean a dead connection).
    The default ``market_open`` hook of ``YahooStreamSource``."""
    now = now or utcnow()
    return any(market_status(market_for(symbol), now).is_open for symbol in symbols)


class _Window:
    """Latency samples (s) of the last ``window_s`` seconds, as p50/p95 in ms."""

    def __init__(self, window_s: float = 60.0, keep: int = 20000):
        self.window_s = window_s
        self.samples: deque[tuple[float, float]] = deque(maxlen=keep)
        self._lock = threading.Lock()

    def add(self, seconds: float, now: float | None = None) -> None:
        with self._lock:
            self.samples.append((time.time() if now is None else now, seconds))

    def snapshot(self) -> dict:
        cutoff = time.time() - self.window_s
        with self._lock:
            data = sorted(s for t, s in self.samples if t >= cutoff)
        if not data:
            return {"count": 0}

        def pct(p: float) -> float:
            return round(data[min(len(data) - 1, int(p * len(data)))] * 1000, 1)

        return {"count": len(data), "p50_ms": pct(0.5), "p95_ms": pct(0.95), "p99_ms": pct(0.99)}


#: The REST fallback never polls more often than this while the stream is down (seconds).
FALLBACK_MIN_EVERY_S = 5.0
#: Yahoo's ``QuoteType`` value for crypto pairs (``CRYPTOCURRENCY``), whose ``day_volume`` is a
#: rolling 24-hour figure (yfinance's ``pricing.proto`` carries the field; the enum is Yahoo's).
CRYPTOCURRENCY = 41


class Decoder:
    """Frames -> tick events, keeping the per-symbol cumulative day volume (one per stream)."""

    def __init__(self, source: str = "yahoo_stream"):
        self.source = source
        self._volumes = TickVolume()
        self._last_ms: dict[str, int] = {}  # per symbol: the trade time (epoch ms) of its last tick
        self.quotes: dict[str, dict] = {}  # the last decoded quote per symbol (health)

    def decode(self, frame: str | bytes, received_at: datetime) -> PriceEvent:
        """One tick event from one frame; raises ``BadFrame`` (only) with the reason."""
        if isinstance(frame, bytes):
            raise BadFrame("binary frame; Yahoo sends JSON text")
        try:
            outer = json.loads(frame)
        except (ValueError, RecursionError):
            raise BadFrame(f"frame is not JSON: {frame[:40]!r}", "frame is not JSON") from None
        message = outer.get("message") if isinstance(outer, dict) else None
        if not isinstance(message, str) or not message:
            raise BadFrame("frame has no 'message' with base64 text")
        try:
            payload = base64.b64decode(message, validate=True)
        except (binascii.Error, ValueError):
            raise BadFrame("'message' is not base64") from None
        data = PricingData()
        try:
            data.ParseFromString(payload)
        except (DecodeError, RuntimeWarning, ValueError) as exc:
            raise BadFrame(
                f"payload is not a PricingData protobuf ({exc})", "not a PricingData protobuf"
            ) from None
        if not data.id:
            raise BadFrame("PricingData without an id (symbol)")
        try:
            symbol = normalize_symbol(data.id)
        except InvalidEvent as exc:
            raise BadFrame(f"id: {exc.reason}", "id is not a ticker") from None
        price = float(data.price)
        if not math.isfinite(price) or price <= 0:
            raise BadFrame(f"{symbol}: price {price} is not a positive number", "price not positive")
        if data.time <= 0:
            raise BadFrame(f"{symbol}: no trade time", "no trade time")
        hint = int(data.price_hint) if 0 < data.price_hint <= 8 else (4 if price < 10 else 2)
        price = round(price, hint)
        market = market_for(symbol)
        # A tick is stored under (symbol, "tick", ts) at MongoDB's millisecond resolution: a second
        # message of a symbol in the same millisecond (two trades, or a volume update) would be dropped
        # there as a duplicate with its volume, so it is stamped 1 ms after the previous one instead.
        time_ms = int(data.time)
        last_ms = self._last_ms.get(symbol)
        if last_ms is not None and last_ms - 1000 < time_ms <= last_ms:
            time_ms = last_ms + 1
        self._last_ms[symbol] = max(time_ms, last_ms or 0)
        try:
            ts = datetime.fromtimestamp(time_ms / 1000, UTC)
            event = validate(
                dict(
                    symbol=symbol,
                    interval="tick",
                    ts=ts,
                    open=price,
                    high=price,
                    low=price,
                    close=price,
                    volume=0.0,
                    source=self.source,
                    fetched_at=received_at,
                    exchange=(data.exchange or market.exchange)[:64],
                    currency=(data.currency or market.currency)[:64],
                    timezone=market.timezone,
                    schema=1,
                ),
                now=received_at,
            )
        except (InvalidEvent, ValueError, OverflowError, OSError) as exc:
            raise BadFrame(f"{symbol}: {getattr(exc, 'reason', exc)}", "tick does not validate") from None
        if data.quote_type == CRYPTOCURRENCY or market.always_open:
            volume = self._volumes.rolling(symbol, ts, int(data.day_volume))
        else:
            volume = self._volumes.session(symbol, ts, market.timezone, int(data.day_volume))
        self.quotes[symbol] = {
            "price": price,
            "day_high": round(float(data.day_high), hint) if data.day_high else None,
            "day_low": round(float(data.day_low), hint) if data.day_low else None,
            "day_volume": int(data.day_volume),
            "market_hours": MARKET_HOURS.get(int(data.market_hours), str(data.market_hours)),
            "time": iso(ts),
        }
        return event.with_(volume=float(volume))


class YahooStreamSource:
    """The ``yahoo_stream`` source; see the module docstring for what it guarantees."""

    name = "yahoo_stream"
    official_daily = True  # its daily bars come from Yahoo's chart API (``rest``)

    def __init__(
        self,
        rest: YahooSource,
        url: str = DEFAULT_URL,
        *,
        stall_s: float = 30.0,
        repair_after_s: float = 1.0,
        uncovered_s: float = 120.0,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        market_open: Callable[[Sequence[str]], bool] = market_open_now,
        name: str = "yahoo_stream",
    ):
        """``name``: the source name it serves (``yahoo_stream``, or ``yfinance`` when that source's
        live prices are streamed, ``STOCKMON_YAHOO_LIVE=stream``); ticks always carry
        ``source="yahoo_stream"``, where they came from."""
        self.name = name
        self.rest = rest
        self.url = url
        self.stall_s = float(stall_s)
        self.repair_after_s = float(repair_after_s)
        self.uncovered_s = float(uncovered_s)
        self.market_open = market_open
        self.decoder = Decoder("yahoo_stream")
        self._backoff = Backoff(backoff_base, backoff_max)
        self._wanted: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._publisher_thread: threading.Thread | None = None
        self._outbox: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._publish: Callable[[Sequence[PriceEvent]], int] | None = None
        self._dead_letter: Callable[[bytes, str], None] | None = None
        self._client: _Client | None = None
        # health
        self.connected_since: float | None = None
        self.reconnects = 0
        self.gaps_repaired = 0
        self.repair_failures = 0
        self.last_error: str | None = None
        self.bad_frames: Counter = Counter()
        self.messages = Rate(bucket_s=1.0, window_s=120.0)
        self.last_message: dict[str, float] = {}  # symbol -> epoch s of its last good frame
        self._last_tick: dict[str, datetime] = {}  # symbol -> trade time of its last tick
        self._rest_polled: dict[str, float] = {}
        self._down_since: float | None = None  # since when symbols are wanted and no connection is up
        self._fallback_at = 0.0  # when the last fallback poll ran (epoch s)
        self.fallback_polls = 0
        self.trade_to_received = _Window()
        self.received_to_kafka = _Window()
        self.published = 0
        self._started = time.time()  # messages/s is over the last minute, or since the start if shorter

    # -- wiring -----------------------------------------------------------------------------------
    def attach(
        self, publish: Callable[[Sequence[PriceEvent]], int], dead_letter: Callable[[bytes, str], None]
    ):
        """Where ticks (``publish(events) -> acknowledged``) and bad frames (``dead_letter(raw,
        reason)``) go; starts the listener and publisher threads (idempotent)."""
        self._publish, self._dead_letter = publish, dead_letter
        self._started = time.time()
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self._listen, name="stockmon-stream", daemon=True)
                self._publisher_thread = threading.Thread(
                    target=self._publish_loop, name="stockmon-stream-publish", daemon=True
                )
                self._thread.start()
                self._publisher_thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Close the connection and end both threads (what is queued is published first)."""
        self._stop.set()
        client = self._client
        if client is not None:
            try:
                client.close()
            except Exception:
                pass
        for thread in (self._thread, self._publisher_thread):
            if thread is not None:
                thread.join(timeout_s)

    # -- Source -----------------------------------------------------------------------------------
    def fetch(self, symbols: Sequence[str]) -> FetchResult:
        """Set the wanted subscriptions; return REST data for symbols the stream does not cover."""
        result = FetchResult()
        wanted = result.symbols(symbols)
        with self._lock:
            self._wanted = set(wanted)
        now = time.time()
        if self.connected_since is None:
            return self._fallback(wanted, now, result)
        self._down_since = None
        if now - self.connected_since < self.uncovered_s:
            return result
        silent = [
            s
            for s in wanted
            if now - self.last_message.get(s, 0.0) > self.uncovered_s
            and now - self._rest_polled.get(s, 0.0) > self.uncovered_s
        ]
        if silent:
            for s in silent:
                self._rest_polled[s] = now
            result.extend(self.rest.fetch(silent))
            result.events = [e for e in result.events if e.interval != "tick"]  # ticks come from the stream
        return result

    def fallback_every_s(self, symbols: int) -> float:
        """How often the REST fallback polls ``symbols`` symbols while the stream is down (s): what the
        REST source's request budget sustains, at least ``FALLBACK_MIN_EVERY_S``."""
        return max(FALLBACK_MIN_EVERY_S, self.rest.quote_interval(symbols))

    def _fallback(self, wanted: list[str], now: float, result: FetchResult) -> FetchResult:
        """While no connection is up for ``stall_s`` (a network that blocks WebSockets, a streamer
        that is down), poll the wanted symbols by REST at the rate the budget sustains, ticks
        included (there are no pushed ones)."""
        if not wanted:
            self._down_since = None
            return result
        if self._down_since is None:
            self._down_since = now
        if now - self._down_since < self.stall_s or now - self._fallback_at < self.fallback_every_s(
            len(wanted)
        ):
            return result
        self._fallback_at = now
        self.fallback_polls += 1
        return result.extend(self.rest.quotes(wanted))

    def backfill(self, symbol: str, start: datetime, end: datetime, interval: str) -> FetchResult:
        return self.rest.backfill(symbol, start, end, interval)

    def lookup(self, symbol: str) -> SymbolInfo:
        return self.rest.lookup(symbol)

    def health(self) -> dict:
        now = time.time()
        with self._lock:
            wanted = sorted(self._wanted)
        client = self._client
        return {
            "source": self.name,
            "live": "stream",
            "url": self.url,
            "connected": self.connected_since is not None,
            "connected_since": self.connected_since,
            "fallback": {  # REST polling while the stream is down (None while it is up)
                "since": self._down_since,
                "polling": self._down_since is not None and now - self._down_since >= self.stall_s,
                "polls": self.fallback_polls,
                "every_s": self.fallback_every_s(max(1, len(wanted))),
            }
            if self._down_since is not None
            else None,
            "subscribed": sorted(client._subscriptions) if client is not None else [],
            "wanted": wanted,
            "messages_per_s": round(self.messages.per_second(min(60.0, max(1.0, now - self._started))), 2),
            "last_message": {s: self.last_message.get(s) for s in wanted},
            "reconnects": self.reconnects,
            "gaps_repaired": self.gaps_repaired,
            "repair_failures": self.repair_failures,
            "bad_frames": sum(self.bad_frames.values()),
            "bad_frame_reasons": dict(self.bad_frames.most_common(10)),
            "published": self.published,
            "last_error": self.last_error,
            "latency": {
                "trade_to_received": self.trade_to_received.snapshot(),
                "received_to_kafka": self.received_to_kafka.snapshot(),
            },
            "quotes": dict(self.decoder.quotes),
            "rest": self.rest.health(),
            "checked_at": now,
            **self._backoff.snapshot(),
        }

    # -- the listener -----------------------------------------------------------------------------
    def _listen(self) -> None:
        ever_connected = False
        while not self._stop.is_set():
            with self._lock:
                wanted = set(self._wanted)
            if not wanted:
                self._stop.wait(RECV_SLICE_S)
                continue
            try:
                self._session(ever_connected)
            except Exception as exc:  # every failure: record, back off, reconnect; never a dead thread
                if self._stop.is_set():
                    break
                self.last_error = f"{type(exc).__name__}: {str(exc)[:200]}"
                log.warning("stream: %s", self.last_error)
            finally:
                if self.connected_since is not None:
                    ever_connected = True
                self.connected_since = None
                client, self._client = self._client, None
                if client is not None:
                    try:
                        client.close()
                    except Exception:
                        pass
            if not self._stop.is_set():
                self._stop.wait(self._backoff.hit(self.last_error or "disconnected"))

    def _session(self, reconnect: bool) -> None:
        client = _Client(self.url, verbose=False)
        self._client = client
        with self._lock:
            wanted = set(self._wanted)
        client.subscribe(sorted(wanted))  # connects (yfinance), then sends the subscription
        self.connected_since = time.time()
        if reconnect:
            self.reconnects += 1
            self._schedule_repair(datetime.now(UTC))
        open_silence = 0.0  # seconds without a frame while a subscribed market was open
        last_check = time.monotonic()
        last_subscribe = time.monotonic()
        while not self._stop.is_set():
            with self._lock:
                wanted = set(self._wanted)
            have = set(client._subscriptions)
            if wanted - have:
                client.subscribe(sorted(wanted - have))
                last_subscribe = time.monotonic()
            if have - wanted:
                client.unsubscribe(sorted(have - wanted))
            if time.monotonic() - last_subscribe > RESUBSCRIBE_S and wanted:
                client.subscribe([])  # yfinance re-sends the whole subscription
                last_subscribe = time.monotonic()
            try:
                frame = client.receive(RECV_SLICE_S)
            except TimeoutError:
                now = time.monotonic()
                if wanted and self.market_open(sorted(wanted)):
                    open_silence += now - last_check
                last_check = now
                if open_silence > self.stall_s:
                    raise Stalled(f"no message for {open_silence:.1f}s while the market is open") from None
                continue
            except ConnectionClosed as exc:
                raise ConnectionError(f"the streamer closed the connection ({exc})") from None
            open_silence, last_check = 0.0, time.monotonic()
            self._on_frame(frame, wanted)

    def _on_frame(self, frame: str | bytes, wanted: set[str]) -> None:
        received = datetime.now(UTC)
        try:
            event = self.decoder.decode(frame, received)
        except BadFrame as exc:
            self.bad_frames[exc.kind] += 1
            raw = frame if isinstance(frame, bytes) else frame.encode("utf-8", "replace")
            self._outbox.put(("dead", (raw[:100_000], exc.reason)))
            return
        self._backoff.ok()
        self.messages.add(1)
        self.last_message[event.symbol] = time.time()
        self._last_tick[event.symbol] = event.ts
        self.trade_to_received.add(max(0.0, (received - event.ts).total_seconds()))
        if event.symbol in wanted:  # a late frame for an unsubscribed symbol is not stored
            self._outbox.put(("tick", event))

    # -- gap repair -------------------------------------------------------------------------------
    def _schedule_repair(self, reconnected_at: datetime) -> None:
        with self._lock:
            wanted = set(self._wanted)
        gaps = {
            s: ts
            for s, ts in self._last_tick.items()
            if s in wanted and (reconnected_at - ts).total_seconds() >= self.repair_after_s
        }
        if gaps:
            threading.Thread(
                target=self._repair, args=(gaps, reconnected_at), name="stockmon-stream-repair", daemon=True
            ).start()

    def _repair(self, gaps: dict[str, datetime], until: datetime) -> None:
        for symbol, last in gaps.items():
            start = last.replace(second=0, microsecond=0)
            try:
                result = self.rest.backfill(symbol, start, until, "1m", priority=REPAIR)
            except Exception as exc:  # a repair never takes the stream down
                result = FetchResult(errors={symbol: f"{type(exc).__name__}: {exc}"})
            bars = [e for e in result.events if start <= e.ts and e.ts + timedelta(minutes=1) <= until]
            if result.errors and not result.events:
                self.repair_failures += 1
                self.last_error = f"gap repair of {symbol}: {next(iter(result.errors.values()))}"
                continue
            self.gaps_repaired += 1
            for bar in bars:
                self._outbox.put(("repair", bar))

    # -- publishing -------------------------------------------------------------------------------
    def _publish_loop(self) -> None:
        while not (self._stop.is_set() and self._outbox.empty()):
            try:
                first = self._outbox.get(timeout=1.0)
            except queue.Empty:
                if self._publish is not None:
                    try:  # nothing new: re-send what the broker did not acknowledge last time, if any
                        self._publish([])
                    except Exception as exc:
                        self.last_error = f"publish: {type(exc).__name__}: {exc}"
                continue
            items = [first]
            while True:
                try:
                    items.append(self._outbox.get_nowait())
                except queue.Empty:
                    break
            events = [payload for kind, payload in items if kind != "dead"]
            dead = [payload for kind, payload in items if kind == "dead"]
            try:
                if events and self._publish is not None:
                    self.published += self._publish(events)
                    done = time.time()
                    for e in events:
                        if e.interval == "tick":
                            self.received_to_kafka.add(max(0.0, done - e.fetched_at.timestamp()), done)
                for raw, reason in dead:
                    if self._dead_letter is not None:
                        self._dead_letter(raw, reason)
            except Exception as exc:  # the publisher keeps what it could not send; we keep going
                self.last_error = f"publish: {type(exc).__name__}: {exc}"
                log.exception("stream publish failed")


def dead_letter_sender(kafka_producer, topic: str, timeout_s: float = 10.0) -> Callable[[bytes, str], None]:
    """A ``dead_letter(raw, reason)`` that sends a bad frame to the dead-letter topic (stage
    ``stream``, original topic ``yahoo_stream``, partition/offset -1) and waits for the ack."""

    def send(raw: bytes, reason: str) -> None:
        headers = bus.dead_letter_headers(reason, "yahoo_stream", -1, -1, stage="stream")
        kafka_producer.send(topic, value=raw, headers=headers).get(timeout=timeout_s)

    return send
