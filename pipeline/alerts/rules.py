"""Alert rules: what a person asks to be told about, validated, and kept in MongoDB (``Store.alert_rules``).

Guarantees:
- ``validate(raw)`` returns a ``Rule`` or raises ``RuleError`` whose ``errors`` maps each wrong field
  to one sentence a person can act on ("level must be a positive number, got -5"); ``str(exc)``
  joins them. Nothing invalid is ever stored: ``RuleBook.create``/``update`` validate first.
- Kinds and their parameters are the registry ``kinds.KINDS`` (price above / below / crossing a
  level, % change over a window or since the previous close, volume spike, RSI, SMA cross). A rule
  keeps its kind's parameters in ``params``; stored, they are top-level fields of the document. Every
  rule also has ``enabled``, ``cooldown_s``, an optional ``expires_at``, a ``note`` and the external
  ``channels`` it notifies.
- ``Rule.version`` is a hash of the *condition* (symbol, kind and its parameters): editing the
  condition re-arms the rule; editing note, cooldown, expiry, channels or enabled does not.
- Timestamps are aware UTC.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from ..models import InvalidEvent, normalize_symbol, to_utc, utcnow
from .kinds import KINDS, PARAM_NAMES, Param

CHANNELS = ("webhook", "email")
MAX_COOLDOWN_S = 30 * 86400
MAX_NOTE = 500
COOLDOWN = Param("cooldown_s", "cooldown (seconds)", "Cooldown (minutes)", 0, MAX_COOLDOWN_S, integer=True)


class RuleError(ValueError):
    """A rule was refused; ``errors`` maps each field to what is wrong with it."""

    def __init__(self, errors: Mapping[str, str]):
        self.errors = dict(errors)
        super().__init__("; ".join(self.errors.values()))


@dataclass
class Rule:
    symbol: str
    kind: str
    params: dict[str, Any] = field(default_factory=dict)  # the kind's parameters, by name
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
            **{p.name: self.params.get(p.name) for p in KINDS[self.kind].params},
        }

    @property
    def version(self) -> str:
        text = json.dumps(self.condition, sort_keys=True, default=str)
        return hashlib.sha1(text.encode()).hexdigest()[:12]

    def expired(self, at: datetime | None = None) -> bool:
        return self.expires_at is not None and (at or utcnow()) >= self.expires_at

    def active(self, at: datetime | None = None) -> bool:
        return self.enabled and not self.expired(at)

    def to_raw(self) -> dict:
        """The rule as one flat mapping (what ``validate`` reads): parameters beside the other fields."""
        raw = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "params"}
        return {**raw, **self.params}

    def to_document(self) -> dict:
        doc = self.to_raw()
        doc["_id"] = doc.pop("id")
        doc["channels"] = list(self.channels)
        doc["version"] = self.version
        return doc

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Rule:
        names = {f.name for f in fields(cls)} - {"params"}
        values = {k: v for k, v in doc.items() if k in names}
        kind = KINDS.get(str(doc.get("kind")))
        wanted = [p.name for p in kind.params] if kind else PARAM_NAMES
        values["params"] = {n: doc[n] for n in wanted if doc.get(n) is not None}
        values["id"] = str(doc.get("_id", doc.get("id", "")))
        values["channels"] = tuple(doc.get("channels") or ())
        for name in ("expires_at", "created_at", "updated_at"):
            if values.get(name) is not None:
                values[name] = to_utc(values[name], name)
        return cls(**values)


def describe(rule: Rule) -> str:
    """One line for people: 'AAPL price rises above 200.00'."""
    kind = KINDS.get(rule.kind)
    return kind.describe(rule.symbol, rule.params) if kind else f"{rule.symbol} {rule.kind}"


# -- validation ------------------------------------------------------------------------------------
def validate(raw: Mapping[str, Any], now: datetime | None = None, new: bool = True) -> Rule:
    """Check a rule given as a mapping (form values, JSON, a stored document) and return it.

    ``new`` rules must not already be expired. Unknown keys are ignored; parameters the kind does not
    use are dropped, so a stored rule never carries a stale parameter."""
    now = now or utcnow()
    errors: dict[str, str] = {}
    kind = KINDS.get(str(raw.get("kind")))
    raw = {**(kind.defaults if kind else {}), **{k: v for k, v in raw.items() if v is not None}}
    try:
        symbol = normalize_symbol(str(raw.get("symbol") or ""))
    except InvalidEvent as exc:
        errors["symbol"] = exc.reason if raw.get("symbol") else "symbol is required (for example AAPL)"
        symbol = ""
    if kind is None:
        errors["kind"] = f"kind {raw.get('kind')!r} is not one of: {', '.join(KINDS)}"
        raise RuleError(errors)
    params = kind.parse(raw, errors)
    cooldown = COOLDOWN.parse({"cooldown_s": raw.get("cooldown_s", 0)}, errors)
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
        kind=kind.name,
        params=params,
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
    """CRUD over the rules (and a rule's evaluation state, on delete).

    Every refusal is a ``RuleError``; MongoDB failures surface as ``PyMongoError``."""

    def __init__(self, store, max_rules: int = 200):
        """``store``: a ``pipeline.store.Store`` (its ``alert_rules`` and ``alert_state``)."""
        self.rules = store.alert_rules
        self.state = store.alert_state
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
        merged = {**old.to_raw(), **dict(raw), "id": rule_id}
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
