"""The alert engine: evaluates every rule on the prices the consumer just stored.

Plugged in as ``PriceConsumer(on_stored=engine.on_stored)``, so it runs on the consumer's writer
thread after a batch is in MongoDB and *before* its offsets are committed.

Guarantees:
- Semantics per rule: a condition rule (above, below, % change, volume spike, RSI) fires when its
  condition becomes true while armed, then disarms; it re-arms when the condition is false again.
  A cross rule (price crossing a level, SMA cross) fires when the side changes (in the wanted
  direction); its first observation only records the side. A new rule starts armed, so a rule whose
  condition already holds fires on the next price. Within ``cooldown_s`` of its last alert (price
  time) a rule's crossing is *suppressed* (counted, not fired) and the rule still disarms.
  Expired or disabled rules are not evaluated. Time is the price's time, never the wall clock, so a
  re-evaluation decides the same way.
- Exactly once per crossing: an alert's id is derived from the rule and the triggering price's
  business key (``events.event_id``) and the alert's ``_id`` is unique. Each rule's state (armed,
  side, last alert, and the time of the newest price it evaluated) is persisted (``Store.alert_state``)
  whenever it changes and at least every ``flush_s``; prices not newer than that are skipped. After
  a redelivery, a restart or in a second consumer process, the prices that were not yet covered by
  the persisted state are evaluated again from that state and produce the same ids, so MongoDB
  keeps one alert. Alerts are written before the state, and both before the batch is committed; a
  failed write raises, so the consumer retries the batch and nothing is lost.
- Cheap: no MongoDB round trip per price. Per batch at most: the rule list (every ``refresh_s``),
  a one-off load of a symbol's recent prices and bars the first time it needs them, one insert of
  fired alerts and one bulk write of changed states. Symbols without rules cost one dict lookup.
- Prices older than ``alert_max_age_s`` (wall clock) are stored but not evaluated: a backfill or a
  long outage does not fire alerts about the past.
- A bug in a rule's evaluation is logged and counted; it never stops ingestion.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pymongo import UpdateOne
from pymongo.errors import BulkWriteError

from ..intervals import INTERVALS
from ..metrics import Latency, Tally
from ..models import PriceEvent, to_utc, utcnow
from . import events as ev
from .channels import configured
from .kinds import KINDS
from .rules import Rule, describe
from .series import Series

log = logging.getLogger(__name__)


@dataclass
class RuleState:
    rule_id: str
    symbol: str
    version: str
    armed: bool = True
    side: int | None = None
    last_t: float | None = None  # newest price time evaluated (epoch s)
    last_dt: datetime | None = None
    last_fired: float | None = None  # price time of the last alert
    fired: int = 0
    suppressed: int = 0
    value: float | None = None  # last measured value (price, %, ratio, RSI...)
    persisted_t: float | None = None  # last_t as stored

    def document(self) -> dict:
        return {
            "_id": self.rule_id,
            "symbol": self.symbol,
            "version": self.version,
            "armed": self.armed,
            "side": self.side,
            "last_ts": self.last_dt,
            "fired": self.fired,
            "suppressed": self.suppressed,
            "last_fired": datetime.fromtimestamp(self.last_fired, UTC) if self.last_fired else None,
            "value": self.value,
            "updated_at": utcnow(),
        }

    @classmethod
    def from_document(cls, doc: dict, rule: Rule) -> RuleState:
        last = to_utc(doc["last_ts"]) if doc.get("last_ts") else None
        state = cls(
            rule.id, rule.symbol, rule.version, last_t=last.timestamp() if last else None, last_dt=last
        )
        state.persisted_t = state.last_t
        if doc.get("version") == rule.version:  # an edited condition starts over, armed
            state.armed = bool(doc.get("armed", True))
            state.side = doc.get("side")
            state.last_fired = to_utc(doc["last_fired"]).timestamp() if doc.get("last_fired") else None
            state.fired, state.suppressed = int(doc.get("fired", 0)), int(doc.get("suppressed", 0))
            state.value = doc.get("value")
        return state


def needs(rules: Sequence[Rule]) -> tuple[float, dict[str, int]]:
    """History a symbol's rules need (``kinds.Kind.needs``): seconds of prices, and closes to keep per
    timeframe."""
    horizon = 120.0
    keep: dict[str, int] = {}
    for r in rules:
        need = KINDS[r.kind].needs(r.params)
        horizon = max(horizon, need.prices_s)
        for tf, n in need.closes.items():
            keep[tf] = max(keep.get(tf, 0), n)
    return horizon, keep


class AlertEngine:
    def __init__(
        self,
        store,
        settings,
        clock: Callable[[], float] = time.time,
        refresh_s: float = 2.0,
        flush_s: float = 10.0,
        on_fired: Callable[[], None] | None = None,
    ):
        self.store = store
        self.settings = settings
        self.clock = clock
        self.refresh_s = refresh_s
        self.flush_s = flush_s
        self.on_fired = on_fired
        self.max_age_s = settings.alert_max_age_s or None
        self.rules: dict[str, Rule] = {}
        self.by_symbol: dict[str, list[Rule]] = {}
        self.states: dict[str, RuleState] = {}
        self.series: dict[str, Series] = {}
        self.tally = Tally()
        self.eval_latency = Latency()
        self.last_error: str | None = None
        self.last_fired_at: float | None = None
        self._needs: dict[str, tuple[float, dict[str, int]]] = {}
        self._refreshed_at: float | None = None
        self._flushed_at = clock()
        self._pending: list[dict] = []
        self._dirty: set[str] = set()
        self._generation: Callable[[], object] | None = None
        self._last_generation: object = None
        self._lock = threading.Lock()

    def bind(self, consumer) -> AlertEngine:
        """Forget cached state whenever the consumer's partitions move (another process may have
        evaluated those symbols meanwhile); it is reloaded from MongoDB on the next batch."""
        self._generation = lambda: (
            tuple(consumer.state.assigned),
            consumer.tally.counts.get("commit_failed", 0),
        )
        return self

    # -- the hook -----------------------------------------------------------------------------------
    def on_stored(self, events: Sequence[PriceEvent]) -> None:
        """Evaluate a stored batch. Raises ``PyMongoError`` only (the consumer then retries the batch)."""
        t0 = time.perf_counter()
        with self._lock:
            if self._pending or self._dirty:
                self._flush(force=False)  # what a failed flush left behind
            self._refresh()
            self._check_generation()
            if self.by_symbol:
                observations = self._observations(events)
                if observations:
                    self._prepare(observations)
                    try:
                        self._evaluate(observations)
                    except Exception as exc:  # never stop ingestion for an alert bug
                        self.tally.add("errors")
                        self.last_error = f"{exc.__class__.__name__}: {str(exc)[:200]}"
                        log.exception("alert evaluation failed")
            self._flush(force=False)
        self.eval_latency.add(time.perf_counter() - t0)

    # -- rules and state --------------------------------------------------------------------------
    def _refresh(self, force: bool = False) -> None:
        now = self.clock()
        if not force and self._refreshed_at is not None and now - self._refreshed_at < self.refresh_s:
            return
        rules = {}
        for doc in self.store.alert_rules.find():
            try:
                rule = Rule.from_document(doc)
                if rule.kind not in KINDS:
                    raise ValueError(f"unknown kind {rule.kind!r}")
                rules[rule.id] = rule
            except Exception as exc:  # a hand-edited document must not stop the others
                self.tally.reason(rule=str(doc.get("_id")), error=f"unreadable rule: {exc}")
        self._refreshed_at = now
        by_symbol: dict[str, list[Rule]] = {}
        at = datetime.fromtimestamp(now, UTC)
        for rule in rules.values():
            if rule.enabled and not rule.expired(at):
                by_symbol.setdefault(rule.symbol, []).append(rule)
        self.rules, self.by_symbol = rules, by_symbol
        for rule_id in [i for i in self.states if i not in rules]:
            del self.states[rule_id]
            self._dirty.discard(rule_id)
        for rule in rules.values():
            state = self.states.get(rule.id)
            if state is not None and state.version != rule.version:  # condition edited: start over, armed
                self.states[rule.id] = RuleState(
                    rule.id, rule.symbol, rule.version, last_t=state.last_t, last_dt=state.last_dt
                )
                self._dirty.add(rule.id)
        self._needs = {symbol: needs(rs) for symbol, rs in by_symbol.items()}
        missing = [r for rs in by_symbol.values() for r in rs if r.id not in self.states]
        if missing:
            docs = {
                d["_id"]: d for d in self.store.alert_state.find({"_id": {"$in": [r.id for r in missing]}})
            }
            for rule in missing:
                doc = docs.get(rule.id)
                self.states[rule.id] = (
                    RuleState.from_document(doc, rule)
                    if doc
                    else RuleState(rule.id, rule.symbol, rule.version)
                )

    def _check_generation(self) -> None:
        if self._generation is None:
            return
        generation = self._generation()
        if generation != self._last_generation:
            if self._last_generation is not None:
                log.info("partitions moved: reloading alert state from MongoDB")
                self.tally.add("reloads")
            self._last_generation = generation
            self.states.clear()
            self.series.clear()
            self._refresh(force=True)

    # -- prices -------------------------------------------------------------------------------------
    def _observations(self, events: Sequence[PriceEvent]) -> dict[str, list[PriceEvent]]:
        out: dict[str, list[PriceEvent]] = {}
        by_symbol = self.by_symbol
        for e in events:
            if e.symbol in by_symbol and e.interval in ("tick", "1m"):
                out.setdefault(e.symbol, []).append(e)
        return out

    def _prepare(self, observations: dict[str, list[PriceEvent]]) -> None:
        """Load recent prices and bar closes for symbols seen for the first time (or needing more)."""
        for symbol, items in observations.items():
            horizon, keep = self._needs[symbol]
            series = self.series.get(symbol)
            if (
                series is not None
                and series.horizon_s >= horizon
                and all(series.keep.get(tf, 0) >= n for tf, n in keep.items())
            ):
                continue
            self.series[symbol] = self._load(symbol, horizon, keep, min(e.ts for e in items))
            self.tally.add("series_loads")

    def _load(self, symbol: str, horizon: float, keep: dict[str, int], first: datetime) -> Series:
        series = Series(symbol, horizon, keep)
        start = min(utcnow(), first) - timedelta(seconds=horizon + 60)
        for tf, n in keep.items():
            since = start - INTERVALS[tf].span * (n + 2)
            rows = self.store.bars.find(
                {"symbol": symbol, "interval": tf, "ts": {"$gte": since}}, {"_id": 0, "ts": 1, "close": 1}
            ).sort("ts", 1)
            series.load_bars(tf, ((to_utc(d["ts"]).timestamp(), d["close"]) for d in rows))
        fields = {"_id": 0, "ts": 1, "close": 1, "volume": 1}
        ticks = list(
            self.store.prices.find(
                {"symbol": symbol, "interval": "tick", "ts": {"$gte": start}}, fields
            ).sort("ts", 1)
        )
        rows, tick = (
            (ticks, True)
            if ticks
            else (
                list(
                    self.store.prices.find(
                        {"symbol": symbol, "interval": "1m", "ts": {"$gte": start}}, fields
                    ).sort("ts", 1)
                ),
                False,
            )
        )
        for d in rows:
            series.add(to_utc(d["ts"]).timestamp(), d["close"], d.get("volume") or 0.0, tick=tick)
        return series

    # -- evaluation ---------------------------------------------------------------------------------
    def _evaluate(self, observations: dict[str, list[PriceEvent]]) -> None:
        now = self.clock()
        max_age = self.max_age_s
        dirty, fire = self._dirty, self._fire
        evaluated = stale = replays = 0
        for symbol, items in observations.items():
            series = self.series[symbol]
            checks = [
                (rule, self.states[rule.id], KINDS[rule.kind].cross, KINDS[rule.kind].condition(rule.params))
                for rule in self.by_symbol[symbol]
            ]
            for e in items:
                tick = e.interval == "tick"
                if not tick and series.has_ticks:
                    continue  # the symbol's ticks are its price; its 1m bars only serve bar-only feeds
                t = e.ts.timestamp()
                series.add(t, e.close, e.volume, tick=tick)
                if max_age is not None and now - t > max_age:
                    stale += 1
                    continue
                price = e.close
                for rule, state, cross, fn in checks:
                    if state.last_t is not None and t <= state.last_t:
                        replays += 1
                        continue
                    state.last_t, state.last_dt = t, e.ts
                    if rule.expires_at is not None and e.ts >= rule.expires_at:
                        continue
                    evaluated += 1
                    result, value = fn(series, t, price)
                    if result is None:
                        continue
                    state.value = value
                    if cross:  # result is the side (+1 above, -1 below): fire when it changes
                        previous = state.side
                        if previous == result:
                            continue
                        state.side = result
                        dirty.add(rule.id)
                        direction = rule.params.get("direction")
                        if previous is not None and (
                            direction in (None, "either") or (direction == "up") == (result > 0)
                        ):
                            fire(rule, state, e, t, value, result)
                    elif result:
                        if state.armed:
                            state.armed = False
                            dirty.add(rule.id)
                            fire(rule, state, e, t, value, None)
                    elif not state.armed:
                        state.armed = True
                        dirty.add(rule.id)
        self.tally.add("evaluated", evaluated)
        if stale:
            self.tally.add("stale", stale)
        if replays:
            self.tally.add("replays_skipped", replays)

    def _fire(
        self, rule: Rule, state: RuleState, e: PriceEvent, t: float, value: float | None, side: int | None
    ) -> None:
        if state.last_fired is not None and t - state.last_fired < rule.cooldown_s:
            state.suppressed += 1
            self.tally.add("suppressed")
            return
        state.last_fired = t
        state.fired += 1
        now = datetime.fromtimestamp(self.clock(), UTC)
        wanted = configured(self.settings)
        delivery = {c: ev.delivery_entry(now) for c in rule.channels if wanted.get(c)}
        self._pending.append(
            {
                "_id": ev.event_id(rule.id, e.interval, e.ts),
                "rule_id": rule.id,
                "rule_version": rule.version,
                "symbol": rule.symbol,
                "kind": rule.kind,
                "description": describe(rule),
                "message": KINDS[rule.kind].message(rule.symbol, rule.params, e.close, value, side),
                "price": e.close,
                "value": value,
                "level": rule.params.get("level"),
                "ts": e.ts,
                "trigger": {"symbol": e.symbol, "interval": e.interval, "ts": e.ts},
                "fired_at": now,
                "note": rule.note,
                "acked": False,
                "acked_at": None,
                "delivery": delivery,
            }
        )

    # -- persistence ----------------------------------------------------------------------------------
    def _flush(self, force: bool) -> None:
        """Alerts first, then changed states, then (every ``flush_s``) the evaluated-up-to times."""
        if self._pending:
            new, duplicates = ev.insert(self.store, self._pending)
            self._pending = []
            self.tally.add("fired", new)
            if duplicates:
                self.tally.add("duplicates", duplicates)
            if new:
                self.last_fired_at = self.clock()
                if self.on_fired is not None:
                    self.on_fired()
        if self._dirty:
            ids = [i for i in self._dirty if i in self.states and self.states[i].last_dt is not None]
            ops = [
                UpdateOne(
                    {"_id": i, "last_ts": {"$lte": self.states[i].last_dt}},
                    {"$set": self.states[i].document()},
                    upsert=True,
                )
                for i in ids
            ]
            self._write_states(ids, ops)
            self._dirty.clear()
        now = self.clock()
        if force or now - self._flushed_at >= self.flush_s:
            moved = [
                s
                for s in self.states.values()
                # last_t and last_dt are set together (one price time, as epoch s and as datetime)
                if s.last_t is not None
                and s.last_dt is not None
                and (s.persisted_t is None or s.last_t > s.persisted_t)
            ]
            ops = [
                UpdateOne(
                    {"_id": s.rule_id},
                    {
                        "$max": {"last_ts": s.last_dt},
                        "$setOnInsert": {
                            "symbol": s.symbol,
                            "version": s.version,
                            "armed": s.armed,
                            "fired": s.fired,
                        },
                    },
                    upsert=True,
                )
                for s in moved
            ]
            self._write_states([s.rule_id for s in moved], ops)
            self._flushed_at = now

    def _write_states(self, ids: list[str], ops: list[UpdateOne]) -> None:
        if not ops:
            return
        stale = set()
        try:
            self.store.alert_state.bulk_write(ops, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != ev.DUPLICATE_KEY for e in errors):
                raise
            stale = {ids[e["index"]] for e in errors}  # a newer state is stored (another process)
        for i in ids:
            state = self.states.get(i)
            if state is None:
                continue
            if i in stale:
                del self.states[i]  # reloaded from MongoDB at the next refresh
                self._refreshed_at = None
            else:
                state.persisted_t = state.last_t

    def flush(self) -> None:
        """Persist everything now (on shutdown)."""
        with self._lock:
            self._flush(force=True)

    # -- health -------------------------------------------------------------------------------------
    def snapshot(self) -> dict:
        counts = self.tally.snapshot()["counts"]
        return {
            "rules": len(self.rules),
            "active_rules": sum(len(r) for r in self.by_symbol.values()),
            "symbols": sorted(self.by_symbol),
            "evaluated": counts.get("evaluated", 0),
            "fired": counts.get("fired", 0),
            "duplicates": counts.get("duplicates", 0),
            "suppressed": counts.get("suppressed", 0),
            "stale": counts.get("stale", 0),
            "replays_skipped": counts.get("replays_skipped", 0),
            "errors": counts.get("errors", 0),
            "reloads": counts.get("reloads", 0),
            "last_error": self.last_error,
            "last_fired_at": self.last_fired_at,
            "batch_latency": self.eval_latency.snapshot(),
        }
