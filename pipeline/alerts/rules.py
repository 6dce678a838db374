"""Alert rules: what a person asks to be told about, validated, and kept in MongoDB ``alert_rules``.

Guarantees:
- ``validate(raw)`` returns a ``Rule`` or raises ``RuleError`` whose ``errors`` maps each wrong field
  to one sentence a person can act on ("level must be a positive number, got -5"); ``str(exc)``
  joins them. Nothing invalid is ever stored: ``RuleBook.create``/``update`` validate first.
- Kinds (``KINDS``): price above / below / crossing a level; % change over a time window; % change
  since the previous (UTC-day) close; volume spike (this minute's volume against the average minute
  of a look-back); RSI above / below a level; fast/slow SMA cross. Every rule also has ``enabled``,
  ``cooldown_s``, an optional ``expires_at``, a ``note`` and the external ``channels`` it notifies.
- ``Rule.version`` is a hash of the *condition* (symbol, kind and its parameters): editing the
  condition re-arms the rule; editing note, cooldown, expiry, channels or enabled does not.
- Timestamps are aware UTC.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any

from ..models import InvalidEvent, normalize_symbol, to_utc, utcnow

#: kind -> (label for people, condition fields it uses)
KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "price_above": ("Price rises above a level", ("level",)),
    "price_below": ("Price falls below a level", ("level",)),
    "price_cross": ("Price crosses a level (either way)", ("level",)),
    "pct_change": ("% change within a time window", ("pct", "window_s", "direction")),
    "pct_since_close": ("% change since the previous close", ("pct", "direction")),
    "volume_spike": ("Volume spike (× the recent average)", ("factor", "lookback_min")),
    "rsi_above": ("RSI rises above a level", ("level", "period", "timeframe")),
    "rsi_below": ("RSI falls below a level", ("level", "period", "timeframe")),
    "sma_cross": ("Fast SMA crosses the slow SMA", ("fast", "slow", "timeframe", "direction")),
}
#: rules that fire when their *side* changes (a cross) rather than when a condition becomes true
CROSS_KINDS = ("price_cross", "sma_cross")
DIRECTIONS = ("up", "down", "either")
TIMEFRAMES = {"1m": 60, "5m": 300, "1h": 3600, "1d": 86400}
CHANNELS = ("webhook", "email")
DEFAULTS = {
    "pct_change": {"window_s": 900, "direction": "either"},
    "pct_since_close": {"direction": "either"},
    "volume_spike": {"lookback_min": 20},
    "rsi_above": {"period": 14, "timeframe": "5m"},
    "rsi_below": {"period": 14, "timeframe": "5m"},
    "sma_cross": {"fast": 20, "slow": 50, "timeframe": "5m", "direction": "either"},
}
MAX_COOLDOWN_S = 30 * 86400
MAX_NOTE = 500


class RuleError(ValueError):
    """A rule was refused; ``errors`` maps each field to what is wrong with it."""

    def __init__(self, errors: Mapping[str, str]):
        self.errors = dict(errors)
        super().__init__("; ".join(self.errors.values()))


@dataclass
class Rule:
    symbol: str
    kind: str
    level: float | None = None  # price_* and rsi_*
    pct: float | None = None  # pct_change, pct_since_close: percent, e.g. 3.0
    window_s: int | None = None  # pct_change
    direction: str | None = None  # pct_*: up/down/either; sma_cross: up/down/either
    factor: float | None = None  # volume_spike: n x the average minute
    lookback_min: int | None = None  # volume_spike: minutes the average covers
    period: int | None = None  # rsi_*
    fast: int | None = None  # sma_cross
    slow: int | None = None
    timeframe: str | None = None  # rsi_*, sma_cross: bar size the indicator is computed on
    enabled: bool = True
    cooldown_s: int = 0
    expires_at: datetime | None = None
    note: str = ""
    channels: tuple[str, ...] = CHANNELS
    id: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def condition(self) -> dict:
        return {
            "symbol": self.symbol,
            "kind": self.kind,
            **{f: getattr(self, f) for f in KINDS[self.kind][1]},
        }

    @property
    def version(self) -> str:
        text = json.dumps(self.condition, sort_keys=True, default=str)
        return hashlib.sha1(text.encode()).hexdigest()[:12]

    def expired(self, at: datetime | None = None) -> bool:
        return self.expires_at is not None and (at or utcnow()) >= self.expires_at

    def active(self, at: datetime | None = None) -> bool:
        return self.enabled and not self.expired(at)

    def to_document(self) -> dict:
        doc = asdict(self)
        doc["_id"] = doc.pop("id")
        doc["channels"] = list(self.channels)
        doc["version"] = self.version
        return doc

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Rule:
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in doc.items() if k in names}
        values["id"] = str(doc.get("_id", doc.get("id", "")))
        values["channels"] = tuple(doc.get("channels") or ())
        for name in ("expires_at", "created_at", "updated_at"):
            if values.get(name) is not None:
                values[name] = to_utc(values[name], name)
        return cls(**values)


def describe(rule: Rule) -> str:
    """One line for people: 'AAPL price rises above 200.00'."""
    s, k = rule.symbol, rule.kind
    arrow = {"up": "up", "down": "down", "either": "up or down"}.get(rule.direction or "either")
    if k == "price_above":
        return f"{s} price rises above {rule.level:,.2f}"
    if k == "price_below":
        return f"{s} price falls below {rule.level:,.2f}"
    if k == "price_cross":
        return f"{s} price crosses {rule.level:,.2f}"
    if k == "pct_change":
        return f"{s} moves {arrow} {rule.pct:g}% within {_span(rule.window_s)}"
    if k == "pct_since_close":
        return f"{s} moves {arrow} {rule.pct:g}% from the previous close"
    if k == "volume_spike":
        return f"{s} volume this minute ≥ {rule.factor:g}× the average minute of the last {rule.lookback_min} min"
    if k in ("rsi_above", "rsi_below"):
        way = "above" if k == "rsi_above" else "below"
        return f"{s} RSI({rule.period}, {rule.timeframe}) {'rises' if way == 'above' else 'falls'} {way} {rule.level:g}"
    if k == "sma_cross":
        way = {"up": "crosses above", "down": "crosses below", "either": "crosses"}[
            rule.direction or "either"
        ]
        return f"{s} SMA {rule.fast} {way} SMA {rule.slow} ({rule.timeframe} bars)"
    return f"{s} {k}"


def _span(seconds: int | None) -> str:
    seconds = int(seconds or 0)
    if seconds % 3600 == 0 and seconds >= 3600:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0 and seconds >= 60:
        return f"{seconds // 60} min"
    return f"{seconds} s"


# -- validation ------------------------------------------------------------------------------------
def _fmt(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() else f"{x:g}"


def _num(
    raw: Mapping,
    name: str,
    errors: dict,
    low: float,
    high: float,
    what: str,
    integer: bool = False,
    low_open: bool = False,
):
    value = raw.get(name)
    if value is None or value == "":
        errors[name] = f"{what} is required"
        return None
    if isinstance(value, str):
        try:
            value = float(value.replace(",", "").strip())
        except ValueError:
            errors[name] = f"{what} must be a number, got {raw.get(name)!r}"
            return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        errors[name] = f"{what} must be a finite number, got {raw.get(name)!r}"
        return None
    if integer and value != int(value):
        errors[name] = f"{what} must be a whole number, got {value:g}"
        return None
    too_low = value <= low if low_open else value < low
    if too_low or value > high:
        lo = f"more than {_fmt(low)}" if low_open else f"at least {_fmt(low)}"
        errors[name] = f"{what} must be {lo} and at most {_fmt(high)}, got {_fmt(value)}"
        return None
    return int(value) if integer else float(value)


def validate(raw: Mapping[str, Any], now: datetime | None = None, new: bool = True) -> Rule:
    """Check a rule given as a mapping (form values, JSON, a stored document) and return it.

    ``new`` rules must not already be expired. Unknown keys are ignored; fields the kind does not use
    are dropped, so a stored rule never carries a stale parameter."""
    now = now or utcnow()
    errors: dict[str, str] = {}
    raw = {**DEFAULTS.get(str(raw.get("kind")), {}), **{k: v for k, v in raw.items() if v is not None}}
    try:
        symbol = normalize_symbol(str(raw.get("symbol") or ""))
    except InvalidEvent as exc:
        errors["symbol"] = exc.reason if raw.get("symbol") else "symbol is required (for example AAPL)"
        symbol = ""
    kind = raw.get("kind")
    if kind not in KINDS:
        errors["kind"] = f"kind {kind!r} is not one of: {', '.join(KINDS)}"
        raise RuleError(errors)
    values: dict[str, Any] = {}
    uses = KINDS[kind][1]
    if "level" in uses:
        if kind.startswith("rsi"):
            values["level"] = _num(raw, "level", errors, 0, 100, "RSI level", low_open=True)
            if values["level"] is not None and values["level"] >= 100:
                errors["level"] = "RSI level must be below 100 (RSI is between 0 and 100)"
        else:
            values["level"] = _num(raw, "level", errors, 0, 1e12, "level", low_open=True)
    if "pct" in uses:
        values["pct"] = _num(raw, "pct", errors, 0, 1000, "percent change", low_open=True)
    if "window_s" in uses:
        values["window_s"] = _num(raw, "window_s", errors, 10, 7 * 86400, "window (seconds)", integer=True)
    if "direction" in uses:
        direction = str(raw.get("direction") or "either").lower()
        if direction not in DIRECTIONS:
            errors["direction"] = f"direction {direction!r} is not one of: {', '.join(DIRECTIONS)}"
        values["direction"] = direction
    if "factor" in uses:
        values["factor"] = _num(raw, "factor", errors, 1, 1000, "volume factor", low_open=True)
    if "lookback_min" in uses:
        values["lookback_min"] = _num(
            raw, "lookback_min", errors, 2, 1440, "look-back (minutes)", integer=True
        )
    if "period" in uses:
        values["period"] = _num(raw, "period", errors, 2, 200, "RSI period", integer=True)
    if "fast" in uses:
        values["fast"] = _num(raw, "fast", errors, 1, 500, "fast SMA length", integer=True)
        values["slow"] = _num(raw, "slow", errors, 2, 1000, "slow SMA length", integer=True)
        if values["fast"] is not None and values["slow"] is not None and values["fast"] >= values["slow"]:
            errors["fast"] = (
                f"the fast SMA must be shorter than the slow one "
                f"(fast {values['fast']}, slow {values['slow']})"
            )
    if "timeframe" in uses:
        timeframe = str(raw.get("timeframe") or "")
        if timeframe not in TIMEFRAMES:
            errors["timeframe"] = f"timeframe {timeframe!r} is not one of: {', '.join(TIMEFRAMES)}"
        values["timeframe"] = timeframe
    cooldown = _num(
        {"cooldown_s": raw.get("cooldown_s", 0)},
        "cooldown_s",
        errors,
        0,
        MAX_COOLDOWN_S,
        "cooldown (seconds)",
        integer=True,
    )
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        errors["enabled"] = f"enabled must be true or false, got {enabled!r}"
    expires_at = raw.get("expires_at")
    if expires_at not in (None, ""):
        try:
            expires_at = to_utc(expires_at, "expiry")
            if new and expires_at <= now:
                errors["expires_at"] = "the expiry must be in the future (leave it empty for no expiry)"
        except InvalidEvent as exc:
            errors["expires_at"] = exc.reason
    else:
        expires_at = None
    note = raw.get("note") or ""
    if not isinstance(note, str) or len(note) > MAX_NOTE:
        errors["note"] = f"the note must be text of at most {MAX_NOTE} characters"
    channels = raw.get("channels", CHANNELS)
    if isinstance(channels, str):
        channels = [c for c in channels.replace(",", " ").split() if c]
    channels = tuple(channels or ())
    unknown = [c for c in channels if c not in CHANNELS]
    if unknown:
        errors["channels"] = f"unknown channel(s) {', '.join(map(str, unknown))}; use {', '.join(CHANNELS)}"
    if errors:
        raise RuleError(errors)
    return Rule(
        symbol=symbol,
        kind=kind,
        **values,
        enabled=enabled,
        cooldown_s=cooldown or 0,
        expires_at=expires_at,
        note=note.strip(),
        channels=channels,
        id=str(raw.get("id") or raw.get("_id") or ""),
        created_at=raw.get("created_at"),
        updated_at=raw.get("updated_at"),
    )


class RuleBook:
    """CRUD over ``alert_rules`` (and the rule's evaluation state in ``alert_state`` on delete/edit).

    Every refusal is a ``RuleError``; MongoDB failures surface as ``PyMongoError``."""

    def __init__(self, db, max_rules: int = 200):
        self.rules = db["alert_rules"]
        self.state = db["alert_state"]
        self.max_rules = max_rules

    def list(self, symbol: str | None = None) -> list[Rule]:
        query = {"symbol": symbol} if symbol else {}
        return [
            Rule.from_document(d) for d in self.rules.find(query).sort([("symbol", 1), ("created_at", 1)])
        ]

    def get(self, rule_id: str) -> Rule | None:
        doc = self.rules.find_one({"_id": rule_id})
        return Rule.from_document(doc) if doc else None

    def create(self, raw: Mapping[str, Any]) -> Rule:
        rule = validate(raw)
        if self.rules.count_documents({}) >= self.max_rules:
            raise RuleError(
                {"rules": f"there are already {self.max_rules} rules (the maximum); delete one first"}
            )
        now = utcnow()
        rule.id = rule.id or uuid.uuid4().hex[:12]
        rule.created_at = rule.updated_at = now
        self.rules.insert_one(rule.to_document())
        return rule

    def update(self, rule_id: str, raw: Mapping[str, Any]) -> Rule:
        old = self.get(rule_id)
        if old is None:
            raise RuleError({"id": f"rule {rule_id} does not exist (it may have been deleted)"})
        merged = {**asdict(old), **dict(raw), "id": rule_id}
        rule = validate(merged, new=merged.get("expires_at") != old.expires_at)
        rule.created_at, rule.updated_at = old.created_at, utcnow()
        self.rules.replace_one({"_id": rule_id}, rule.to_document())
        return rule

    def set_enabled(self, rule_id: str, enabled: bool) -> None:
        if not self.rules.update_one(
            {"_id": rule_id}, {"$set": {"enabled": bool(enabled), "updated_at": utcnow()}}
        ).matched_count:
            raise RuleError({"id": f"rule {rule_id} does not exist (it may have been deleted)"})

    def delete(self, rule_id: str) -> bool:
        self.state.delete_one({"_id": rule_id})
        return self.rules.delete_one({"_id": rule_id}).deleted_count == 1

    def states(self) -> dict[str, dict]:
        """Evaluation state per rule id (armed, fired count, last fired) for display."""
        return {d["_id"]: d for d in self.state.find()}
