"""Price events: the one shape every part of the pipeline agrees on.

Guarantees:
- ``validate(raw)`` returns a ``PriceEvent`` or raises ``InvalidEvent`` whose ``reason`` says, in one
  short sentence, what is wrong. Nothing invalid gets past it: non-finite or non-positive prices,
  high < low, open/close outside [low, high], negative volume, timestamps more than a minute in the
  future, an unknown schema version, a symbol outside ``SYMBOL_PATTERN``, an unknown interval.
- An interval is one of ``pipeline.intervals.INTERVALS`` (``tick`` is one observed price, the others OHLCV bars).
- All timestamps are timezone-aware UTC on the way in and on the way out (wire: ISO-8601 with ``Z``;
  MongoDB: BSON dates, which are UTC).
- ``to_wire``/``from_wire`` round-trip exactly; ``to_document`` is the MongoDB document whose
  business key is (symbol, interval, ts).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from .intervals import INTERVALS

SCHEMA_VERSION = 1
SUPPORTED_SCHEMAS = frozenset({SCHEMA_VERSION})

#: Upper-case ASCII letters, digits and ``.-^=``, 1..20 characters, at least one of them a letter or
#: digit (``.``, ``^``, ``=`` or ``---`` alone are not symbols): AAPL, BRK-B, 7203.T, VOD.L, ^GSPC,
#: EURUSD=X, BTC-USD. ``\Z`` (not ``$``) so a trailing newline does not pass.
SYMBOL_PATTERN = re.compile(r"^(?=[A-Z0-9.\-^=]*[A-Z0-9])[A-Z0-9.\-^=]{1,20}\Z")

#: How far in the future a timestamp may be before it is rejected (clock skew allowance).
MAX_FUTURE = timedelta(minutes=1)


class InvalidEvent(ValueError):
    """An event that must not be stored; ``reason`` is a short human sentence."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def utcnow() -> datetime:
    return datetime.now(UTC)


def normalize_symbol(text: str) -> str:
    """Upper-case and strip a user-typed ticker; raise ``InvalidEvent`` if it cannot be a symbol."""
    symbol = (text or "").strip().upper()
    if not SYMBOL_PATTERN.match(symbol):
        raise InvalidEvent(
            f"{text!r} is not a valid ticker: use 1-20 characters from A-Z, 0-9 and . - ^ = "
            "(for example AAPL, BRK-B, 7203.T, ^GSPC, EURUSD=X)"
        )
    return symbol


def to_utc(value: Any, name: str = "ts") -> datetime:
    """Parse an ISO string, epoch seconds or datetime into an aware UTC datetime."""
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidEvent(f"{name} {value!r} is not an ISO-8601 timestamp") from None
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        dt = datetime.fromtimestamp(value, UTC)
    else:
        raise InvalidEvent(f"{name} is missing or not a timestamp")
    if dt.tzinfo is None:  # BSON dates come back naive but are UTC
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class PriceEvent:
    """One observed price (``interval='tick'``) or one OHLCV bar, in UTC."""

    symbol: str
    interval: str
    ts: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float
    source: str
    fetched_at: datetime = field(default_factory=utcnow)
    exchange: str = ""
    currency: str = "USD"
    timezone: str = "America/New_York"
    schema: int = SCHEMA_VERSION

    def __post_init__(self):
        # BSON dates and the wire format keep milliseconds: normalise here so that an event equals
        # itself after a round trip through Kafka or MongoDB.
        for name in ("ts", "fetched_at"):
            value = to_utc(getattr(self, name), name)
            object.__setattr__(self, name, value.replace(microsecond=value.microsecond // 1000 * 1000))

    @property
    def key(self) -> tuple[str, str, datetime]:
        return (self.symbol, self.interval, self.ts)

    @classmethod
    def tick(cls, symbol: str, ts: datetime, price: float, volume: float, source: str, **kw) -> PriceEvent:
        return cls(
            symbol=symbol,
            interval="tick",
            ts=ts,
            open=price,
            high=price,
            low=price,
            close=price,
            volume=volume,
            source=source,
            **kw,
        )

    def with_(self, **changes) -> PriceEvent:
        return replace(self, **changes)

    # -- wire (Kafka) ---------------------------------------------------------------------------
    def to_wire(self) -> dict:
        d = self.to_document()
        d["ts"] = iso(self.ts)
        d["fetched_at"] = iso(self.fetched_at)
        return d

    def to_json_bytes(self) -> bytes:
        return json.dumps(self.to_wire(), separators=(",", ":"), allow_nan=False).encode()

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any], now: datetime | None = None) -> PriceEvent:
        return validate(raw, now=now)

    # -- storage (MongoDB) ----------------------------------------------------------------------
    def to_document(self) -> dict:
        # field by field: dataclasses.asdict deep-copies and cost more than the database write here
        return {
            "symbol": self.symbol,
            "interval": self.interval,
            "ts": self.ts,
            "open": self.open,
            "high": self.high,
            "low": self.low,
            "close": self.close,
            "volume": self.volume,
            "source": self.source,
            "fetched_at": self.fetched_at,
            "exchange": self.exchange,
            "currency": self.currency,
            "timezone": self.timezone,
            "schema": self.schema,
        }


_NUMERIC = ("open", "high", "low", "close")


def _number(raw: Mapping[str, Any], name: str) -> float:
    value = raw.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidEvent(f"{name} is missing or not a number")
    value = float(value)
    if not math.isfinite(value):
        raise InvalidEvent(f"{name} is not finite ({value})")
    return value


def _text(raw: Mapping[str, Any], name: str, default: str) -> str:
    value = raw.get(name, default)
    if value is None:
        return default
    if not isinstance(value, str) or len(value) > 64:
        raise InvalidEvent(f"{name} must be a short string")
    return value


def validate(raw: Any, now: datetime | None = None) -> PriceEvent:
    """Check a decoded message or document and return the event; raise ``InvalidEvent`` otherwise."""
    if isinstance(raw, PriceEvent):
        raw = raw.to_document()
    if not isinstance(raw, Mapping):
        raise InvalidEvent("message is not a JSON object")
    schema = raw.get("schema")
    if schema not in SUPPORTED_SCHEMAS or isinstance(schema, bool):
        raise InvalidEvent(f"unknown schema version {schema!r} (supported: {sorted(SUPPORTED_SCHEMAS)})")
    symbol = raw.get("symbol")
    if not isinstance(symbol, str) or not SYMBOL_PATTERN.match(symbol):
        raise InvalidEvent(f"symbol {symbol!r} does not match {SYMBOL_PATTERN.pattern}")
    interval = raw.get("interval")
    if interval not in INTERVALS:
        raise InvalidEvent(f"interval {interval!r} is not one of {', '.join(INTERVALS)}")
    o, h, lo, c = (_number(raw, n) for n in _NUMERIC)
    for name, value in zip(_NUMERIC, (o, h, lo, c), strict=True):
        if value <= 0:
            raise InvalidEvent(f"{name} must be positive, got {value}")
    if h < lo:
        raise InvalidEvent(f"high {h} is below low {lo}")
    if not lo <= o <= h:
        raise InvalidEvent(f"open {o} is outside [low {lo}, high {h}]")
    if not lo <= c <= h:
        raise InvalidEvent(f"close {c} is outside [low {lo}, high {h}]")
    volume = _number(raw, "volume")
    if volume < 0:
        raise InvalidEvent(f"volume must not be negative, got {volume}")
    ts = to_utc(raw.get("ts"), "ts")
    now = now or utcnow()
    if ts - now > MAX_FUTURE:
        raise InvalidEvent(f"ts {iso(ts)} is more than a minute in the future")
    fetched_at = to_utc(raw.get("fetched_at", now), "fetched_at")
    source = _text(raw, "source", "")
    if not source:
        raise InvalidEvent("source is missing")
    return PriceEvent(
        symbol=symbol,
        interval=interval,
        ts=ts,
        open=o,
        high=h,
        low=lo,
        close=c,
        volume=volume,
        source=source,
        fetched_at=fetched_at,
        exchange=_text(raw, "exchange", ""),
        currency=_text(raw, "currency", "USD"),
        timezone=_text(raw, "timezone", "America/New_York"),
        schema=schema,
    )


def decode(value: bytes | None, now: datetime | None = None) -> PriceEvent:
    """Decode a Kafka message value; undecodable bytes raise ``InvalidEvent`` with a reason."""
    if value is None:
        raise InvalidEvent("message has no value (tombstone)")
    try:
        raw = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidEvent(f"value is not JSON: {exc.__class__.__name__}: {str(exc)[:80]}") from None
    return validate(raw, now=now)
