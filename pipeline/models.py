"""Price events: the one shape every part of the pipeline agrees on.

Guarantees:
- ``validate(raw)`` returns a ``PriceEvent`` or raises ``InvalidEvent`` whose ``reason`` says, in one
  short sentence, what is wrong. Nothing invalid gets past it: non-finite or non-positive prices,
  high < low, open/close outside [low, high], negative volume, numbers beyond ``MAX_NUMBER``,
  timestamps before 1970 (``MIN_TS``) or more than a minute in the future (epoch milliseconds,
  microseconds or nanoseconds passed as seconds are named as such), an unknown schema version, a
  symbol outside ``SYMBOL_PATTERN``, an unknown interval.
- ``validate`` and ``decode`` never raise anything but ``InvalidEvent``, whatever they are given
  (any JSON value, any bytes): an unexpected error while checking a field becomes an ``InvalidEvent``
  whose reason names that field. Property-tested with Hypothesis in ``tests/test_models.py``.
- An interval is one of ``pipeline.intervals.INTERVALS`` (``tick`` is one observed price, the others OHLCV bars).
- All timestamps are timezone-aware UTC on the way in and on the way out (wire: ISO-8601 with ``Z``;
  MongoDB: BSON dates, which are UTC).
- ``decode(to_json_bytes())`` and ``validate(to_document())`` give the event back exactly (to the
  millisecond BSON keeps); ``to_document`` is the MongoDB document whose
  business key is (symbol, interval, ts).
"""

from __future__ import annotations

import json
import math
import re
import time
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

#: The earliest timestamp an event may carry (UTC). Together with ``MAX_FUTURE`` this is the plausible
#: range that also catches epoch milliseconds passed as seconds (they land tens of thousands of years
#: ahead).
MIN_TS = datetime(1970, 1, 1, tzinfo=UTC)

#: How far ahead ``to_utc`` accepts epoch numbers (its caller checks the finer ``MAX_FUTURE``); beyond it
#: a number is read as milliseconds/microseconds/nanoseconds passed as seconds, or refused.
_EPOCH_AHEAD_S = 7 * 86400.0

#: The largest magnitude a price or volume may have; also keeps a 400-digit integer from overflowing.
MAX_NUMBER = 1e15

#: Longest text field accepted (source, exchange, currency, timezone).
MAX_TEXT = 64


class InvalidEvent(ValueError):
    """An event that must not be stored; ``reason`` is a short human sentence."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def utcnow() -> datetime:
    return datetime.now(UTC)


#: What a ticker may look like, in words for refusals.
SYMBOL_HELP = (
    "use 1-20 characters from A-Z, 0-9 and . - ^ =, at least one letter or digit "
    "(for example AAPL, BRK-B, 7203.T, ^GSPC, EURUSD=X)"
)
#: How many characters of a refused entry a reason quotes.
ECHO_LIMIT = 40


def normalize_symbol(text: object) -> str:
    """A ticker from whatever a user, a file or a provider gave: stripped and upper-cased, matching
    ``SYMBOL_PATTERN``. Only ASCII is accepted *before* upper-casing, so no Unicode case mapping can
    turn one letter into others (``"ﬁ".upper()`` is ``"FI"``).

    Raises ``InvalidEvent`` with a reason that quotes the entry clipped to ``ECHO_LIMIT`` characters
    when it is not text, empty, not ASCII, or does not match the pattern."""
    raw = text.strip() if isinstance(text, str) else ""
    if not raw:
        raise InvalidEvent("a ticker is required (for example AAPL)")
    shown = repr(raw if len(raw) <= ECHO_LIMIT else raw[:ECHO_LIMIT] + "…")
    if not raw.isascii():
        raise InvalidEvent(f"{shown} is not a valid ticker: only ASCII characters; {SYMBOL_HELP}")
    symbol = raw.upper()
    if not SYMBOL_PATTERN.match(symbol):
        raise InvalidEvent(f"{shown} is not a valid ticker: {SYMBOL_HELP}")
    return symbol


def to_utc(value: Any, name: str = "ts") -> datetime:
    """Parse an ISO-8601 string, epoch seconds (int/float) or a datetime into an aware UTC datetime.

    Naive datetimes and ISO strings without an offset are taken as UTC. Raises ``InvalidEvent`` (and
    nothing else) when ``value`` is not a timestamp or cannot be represented: an unparsable string, a
    year outside 1..9999 after conversion to UTC (``0001-01-01T00:00:00+05:00``), a non-finite or
    negative number, or a number more than a week ahead of now, which is named as epoch
    milliseconds/microseconds/nanoseconds when it reads as a plausible date in one of those units.
    """
    try:
        if isinstance(value, datetime):
            dt = value
        elif isinstance(value, str):
            try:
                dt = datetime.fromisoformat(value[:64].replace("Z", "+00:00"))
            except ValueError:
                raise InvalidEvent(f"{name} {value[:64]!r} is not an ISO-8601 timestamp") from None
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            dt = datetime.fromtimestamp(_epoch_seconds(value, name), UTC)
        else:
            raise InvalidEvent(f"{name} is missing or not a timestamp")
        if dt.tzinfo is None:  # BSON dates come back naive but are UTC
            dt = dt.replace(tzinfo=UTC)
        return dt.astimezone(UTC)
    except InvalidEvent:
        raise
    except (ValueError, OverflowError, OSError, TypeError) as exc:  # e.g. year 0 after the offset
        raise InvalidEvent(
            f"{name} {_short(value)} cannot be represented in UTC ({exc.__class__.__name__}: {str(exc)[:80]})"
        ) from None


def _epoch_seconds(value: int | float, name: str) -> float:
    """``value`` as a float of epoch seconds in [0, now + a week]; ``InvalidEvent`` otherwise."""
    try:
        seconds = float(value)
    except OverflowError:  # a 400-digit integer
        raise InvalidEvent(f"{name} {_short(value)} is not a plausible epoch time (too large)") from None
    if not math.isfinite(seconds):
        raise InvalidEvent(f"{name} is not finite ({seconds})")
    if seconds < 0:
        raise InvalidEvent(f"{name} {_short(value)} is before 1970 (negative epoch seconds)")
    limit = time.time() + _EPOCH_AHEAD_S
    if seconds > limit:
        for unit, per_second in (("milliseconds", 1e3), ("microseconds", 1e6), ("nanoseconds", 1e9)):
            if MIN_TS.timestamp() < seconds / per_second <= limit:
                as_date = iso(datetime.fromtimestamp(seconds / per_second, UTC))
                raise InvalidEvent(
                    f"{name} {_short(value)} looks like epoch {unit} ({as_date} if read so); "
                    "send epoch seconds or an ISO-8601 string"
                )
        raise InvalidEvent(f"{name} {_short(value)} is not a plausible epoch time (beyond a week from now)")
    return seconds


def _short(value: Any) -> str:
    """``repr(value)`` cut to 40 characters, for reasons (a 400-digit number is not echoed whole)."""
    try:
        text = repr(value)
    except ValueError:  # int repr beyond sys.get_int_max_str_digits
        return f"<{type(value).__name__} too long to show>"
    return text if len(text) <= 40 else text[:37] + "..."


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
    try:
        number = float(value)
    except OverflowError:  # an integer with hundreds of digits
        raise InvalidEvent(f"{name} {_short(value)} is out of range (at most {MAX_NUMBER:g})") from None
    if not math.isfinite(number):
        raise InvalidEvent(f"{name} is not finite ({number})")
    if abs(number) > MAX_NUMBER:
        raise InvalidEvent(f"{name} {number:g} is out of range (at most {MAX_NUMBER:g})")
    return number


def _text(raw: Mapping[str, Any], name: str, default: str) -> str:
    value = raw.get(name, default)
    if value is None:
        return default
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise InvalidEvent(f"{name} must be a short string")
    return value


def _timestamp(raw: Mapping[str, Any], name: str, now: datetime, default: Any = None) -> datetime:
    """Field ``name`` as UTC within [``MIN_TS``, ``now`` + ``MAX_FUTURE``]; ``InvalidEvent`` otherwise."""
    ts = to_utc(raw.get(name, default), name)
    if ts < MIN_TS:
        raise InvalidEvent(f"{name} {iso(ts)} is before 1970")
    if ts - now > MAX_FUTURE:
        raise InvalidEvent(f"{name} {iso(ts)} is more than a minute in the future")
    return ts


def validate(raw: Any, now: datetime | None = None) -> PriceEvent:
    """Check a decoded message or document and return the event.

    Raises ``InvalidEvent`` and only ``InvalidEvent``: its ``reason`` names the field at fault. An
    unexpected error while checking a field (a bug, or a value no rule foresaw) becomes an
    ``InvalidEvent`` naming that field too, so a caller can always dead-letter with a reason.
    """
    checking = {"field": "message"}
    try:
        return _validate(raw, now, checking)
    except InvalidEvent:
        raise
    except Exception as exc:  # the contract: every failure becomes a reason
        raise InvalidEvent(
            f"{checking['field']} could not be checked ({exc.__class__.__name__}: {str(exc)[:120]})"
        ) from exc


def _validate(raw: Any, now: datetime | None, checking: dict[str, str]) -> PriceEvent:
    if isinstance(raw, PriceEvent):
        raw = raw.to_document()
    if not isinstance(raw, Mapping):
        raise InvalidEvent("message is not a JSON object")
    checking["field"] = "schema"
    schema = raw.get("schema")
    if isinstance(schema, bool) or not isinstance(schema, (int, float)) or schema not in SUPPORTED_SCHEMAS:
        raise InvalidEvent(
            f"unknown schema version {_short(schema)} (supported: {sorted(SUPPORTED_SCHEMAS)})"
        )
    checking["field"] = "symbol"
    symbol = raw.get("symbol")
    if not isinstance(symbol, str) or not SYMBOL_PATTERN.match(symbol):
        raise InvalidEvent(f"symbol {_short(symbol)} does not match {SYMBOL_PATTERN.pattern}")
    checking["field"] = "interval"
    interval = raw.get("interval")
    if not isinstance(interval, str) or interval not in INTERVALS:
        raise InvalidEvent(f"interval {_short(interval)} is not one of {', '.join(INTERVALS)}")
    checking["field"] = "open/high/low/close"
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
    checking["field"] = "volume"
    volume = _number(raw, "volume")
    if volume < 0:
        raise InvalidEvent(f"volume must not be negative, got {volume}")
    checking["field"] = "ts"
    now = now or utcnow()
    ts = _timestamp(raw, "ts", now)
    checking["field"] = "fetched_at"
    fetched_at = to_utc(raw.get("fetched_at", now), "fetched_at")
    if fetched_at < MIN_TS:
        raise InvalidEvent(f"fetched_at {iso(fetched_at)} is before 1970")
    checking["field"] = "source"
    source = _text(raw, "source", "")
    if not source:
        raise InvalidEvent("source is missing")
    checking["field"] = "exchange/currency/timezone"
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
        schema=int(schema),
    )


def decode(value: Any, now: datetime | None = None) -> PriceEvent:
    """Decode a Kafka message value (UTF-8 JSON bytes) and validate it.

    Raises ``InvalidEvent`` and nothing else, whatever ``value`` is: a tombstone (None), bytes that are
    not UTF-8 or not JSON, numbers or nesting the parser refuses (``RecursionError``, over-long
    integers), and every rule of ``validate``.
    """
    if value is None:
        raise InvalidEvent("message has no value (tombstone)")
    try:
        raw = json.loads(value)
    except (ValueError, TypeError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError too
        raise InvalidEvent(f"value is not JSON: {exc.__class__.__name__}: {str(exc)[:80]}") from None
    return validate(raw, now=now)
