"""Corporate actions (splits and dividends): stored as their own documents, and a split applied to the
history stored before it, once.

Why: Yahoo serves history split-adjusted. AMZN's 20:1 split (ex-date 2022-06-06) made the same day
read 1898.01 before and 94.90 after; days stored before the split kept the old scale, so History,
Insights and forecasts saw a false -95 % cliff for good.

Guarantees:
- ``from_frame`` lists the splits and dividends of a yfinance daily frame (its ``Stock Splits`` and
  ``Dividends`` columns, from the chart's ``events``): ``{symbol, kind: "split" | "dividend",
  ex_date: "YYYY-MM-DD" (the session date at the exchange), ratio (new shares per old, splits) or
  amount (per share, in the quote currency, dividends), source, seen_at}``.
- ``record`` stores each action once per (symbol, kind, ex_date) in ``corporate_actions`` and returns
  the ones not seen before. ``apply_split`` then rescales what was stored before a new split, by
  this rule: a document of ``prices`` (ticks and bars) of the symbol with ``ts`` before the ex-date
  session's local midnight gets open, high, low and close divided by the ratio and volume multiplied
  by it, and the ex-date added to its ``splits_applied`` (a document that already lists it is never
  scaled again: re-running is a no-op), when either (a) it was fetched before that midnight (nothing
  can be adjusted for a split before its ex-date), or (b) it was fetched later but before the split
  was first seen (``seen_at``) *and* its session's stored daily close is ``ratio`` times the
  provider's adjusted close of that session in the answer that carried the split (within 2 %):
  Yahoo lists a split from the moment it has adjusted its history, sometimes a day or two after the
  ex-date, so what was fetched in between is checked against the provider, never assumed. A price
  fetched before the ex-date but still in Kafka when the split is applied is stored after it:
  ``OfficialDays`` applies every split seen in the last ``REAPPLY_DAYS``, or never applied, again
  on each run. Dividends of earlier ex-dates seen before the split are rescaled the same way (an
  amount per old share).
  The rescaled range is marked for the bar builder, which recomputes every derived bar from the
  prices; the symbol's stored forecasts are dropped (the forecast job computes them again).
  The action's document records ``applied_at`` (the first application) and how many prices were
  rescaled in all.
- As-traded prices, for display, are the stored ones multiplied back (``as_traded``); prices
  adjusted for dividends use the CRSP/Yahoo factor 1 - D / (close of the session before the
  ex-date) for every day before it (``dividend_adjusted``).
- Live prices and alerts act on the raw traded price: ticks received after the split are as traded.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from types import SimpleNamespace

import pandas as pd

from .intervals import INTERVALS
from .markets.calendars import day_start_utc, market_for, session_date
from .models import to_utc, utcnow
from .store import Store

log = logging.getLogger(__name__)

KINDS = ("split", "dividend")


def from_frame(frame: pd.DataFrame, symbol: str, tz: str, source: str, now: datetime) -> list[dict]:
    """The splits and dividends in a yfinance history frame (index: bar times; columns ``Stock
    Splits`` and ``Dividends`` when the call asked for actions), dated at the exchange (``tz``)."""
    out: list[dict] = []
    for column, kind, field in (("Stock Splits", "split", "ratio"), ("Dividends", "dividend", "amount")):
        if column not in frame.columns:
            continue
        values = pd.to_numeric(frame[column], errors="coerce")
        hits = values > 0
        for ts, value in zip(pd.DatetimeIndex(frame.index[hits]), values[hits], strict=True):
            day = session_date(ts.to_pydatetime(), tz)
            out.append(
                {
                    "symbol": symbol,
                    "kind": kind,
                    "ex_date": day.isoformat(),
                    field: float(value),
                    "source": source,
                    "seen_at": now,
                }
            )
    return out


def record(store: Store, actions: Sequence[dict]) -> list[dict]:
    """Store ``actions`` (one document per symbol, kind and ex-date; the first sighting is kept) and
    return those that were new. Raises ``PyMongoError``."""
    new = []
    for action in actions:
        key = {k: action[k] for k in ("symbol", "kind", "ex_date")}
        result = store.corporate_actions.update_one(key, {"$setOnInsert": dict(action)}, upsert=True)
        if result.upserted_id is not None:
            new.append(action)
    return new


#: Splits first seen this many days ago or less are applied again on each official-days run.
REAPPLY_DAYS = 2
#: How close a stored close must be to ratio x the provider's adjusted close of the same session to
#: count as stored as traded (relative).
EVIDENCE_TOLERANCE = 0.02


def apply_split(
    store: Store,
    symbol: str,
    ex_date: str,
    ratio: float,
    seen_at: datetime,
    evidence: dict[str, float] | None = None,
) -> int:
    """Rescale ``symbol``'s stored prices from before the split at ``ex_date`` by ``ratio`` (the rule
    in the module docstring): those fetched before the ex-date's local midnight, and those fetched
    later but before ``seen_at`` (aware) whose session's stored daily close is ``ratio`` times the
    provider's adjusted close in ``evidence`` ({"YYYY-MM-DD": close}, from the answer that carried
    the split). Marks them for the bar builder, rescales earlier dividends seen before the split,
    drops the symbol's forecasts; returns how many prices were rescaled. Idempotent. Raises
    ``PyMongoError``; ``ValueError`` for a ratio <= 0."""
    if not ratio > 0:
        raise ValueError(f"split ratio must be positive, got {ratio}")
    tz = market_for(symbol).timezone
    cut = day_start_utc(date.fromisoformat(ex_date), tz)
    base = {"symbol": symbol, "splits_applied": {"$ne": ex_date}}
    queries = [{**base, "ts": {"$lt": cut}, "fetched_at": {"$lt": min(cut, seen_at)}}]
    for day, adjusted in sorted((evidence or {}).items()):
        if day >= ex_date or not adjusted > 0:
            continue
        start = day_start_utc(date.fromisoformat(day), tz)
        end = day_start_utc(date.fromisoformat(day) + timedelta(days=1), tz)
        window = {"$gte": start - timedelta(hours=12), "$lt": end}  # a daily bar may be stamped at the open
        stored = store.prices.find_one(
            {**base, "interval": "1d", "ts": window, "fetched_at": {"$gte": cut, "$lt": seen_at}}
        )
        if stored is not None and abs(stored["close"] / (adjusted * ratio) - 1) <= EVIDENCE_TOLERANCE:
            queries.append(
                {**base, "ts": {"$gte": start, "$lt": end}, "fetched_at": {"$gte": cut, "$lt": seen_at}}
            )
            queries.append(
                {**base, "interval": "1d", "ts": window, "fetched_at": {"$gte": cut, "$lt": seen_at}}
            )
    rescaled = 0
    for query in queries:
        touched = [
            SimpleNamespace(symbol=symbol, interval=d["interval"], ts=to_utc(d["ts"]))
            for d in store.prices.find(query, {"_id": 0, "interval": 1, "ts": 1})
        ]
        if not touched:
            continue
        # a ``$mul`` on an integer volume stays exact for integral ratios (Yahoo's splits are)
        update = {
            "$mul": {
                "open": 1 / ratio,
                "high": 1 / ratio,
                "low": 1 / ratio,
                "close": 1 / ratio,
                "volume": ratio,
            },
            "$addToSet": {"splits_applied": ex_date},
        }
        rescaled += store.prices.update_many(query, update).modified_count
        store.mark_bars(touched)
    store.corporate_actions.update_many(  # an amount per old share, seen before the split
        {
            "symbol": symbol,
            "kind": "dividend",
            "ex_date": {"$lt": ex_date},
            "seen_at": {"$lt": seen_at},
            "splits_applied": {"$ne": ex_date},
        },
        {"$mul": {"amount": 1 / ratio}, "$addToSet": {"splits_applied": ex_date}},
    )
    if rescaled:
        store.forecasts.delete_many({"symbol": symbol})
        store.forecast_backtests.delete_many({"symbol": symbol})
        log.info("split %s of %s (%g:1): %d stored prices rescaled", ex_date, symbol, ratio, rescaled)
    store.corporate_actions.update_one(
        {"symbol": symbol, "kind": "split", "ex_date": ex_date},
        {"$min": {"applied_at": utcnow()}, "$inc": {"rescaled": rescaled}},
    )
    return rescaled


def reapply_recent(store: Store, now: datetime) -> int:
    """``apply_split`` again for every split first seen within ``REAPPLY_DAYS`` of ``now`` or never
    applied; returns how many late prices were rescaled (0 almost always)."""
    since = now - timedelta(days=REAPPLY_DAYS)
    rescaled = 0
    query = {"kind": "split", "$or": [{"seen_at": {"$gte": since}}, {"applied_at": None}]}
    for a in store.corporate_actions.find(query):
        rescaled += apply_split(store, a["symbol"], a["ex_date"], a["ratio"], to_utc(a["seen_at"]))
    return rescaled


def record_and_apply(store: Store, actions: Sequence[dict], events: Sequence = ()) -> list[dict]:
    """``record`` the actions, then ``apply_split`` every split of the answer that is new or was never
    applied (a failure before), with the answer's daily closes (``events``) as evidence; returns
    the new actions."""
    new = record(store, actions)
    splits = [a for a in actions if a["kind"] == "split"]
    for action in splits:
        stored = store.corporate_actions.find_one(
            {k: action[k] for k in ("symbol", "kind", "ex_date")}, {"applied_at": 1, "seen_at": 1}
        )
        if stored is None or stored.get("applied_at") is not None and action not in new:
            continue
        tz = market_for(action["symbol"]).timezone
        evidence = {
            session_date(e.ts, tz).isoformat(): e.close
            for e in events
            if e.symbol == action["symbol"] and e.interval == "1d"
        }
        apply_split(
            store, action["symbol"], action["ex_date"], action["ratio"], to_utc(stored["seen_at"]), evidence
        )
    return new


def _sessions(frame: pd.DataFrame, tz: str) -> pd.Series:
    """Each row's session date ("YYYY-MM-DD"): a daily or coarser bar is stored at UTC midnight of
    its session date (``markets.day_key``), an intraday bar or tick at its instant (local date)."""
    ts = pd.to_datetime(frame["ts"], utc=True)
    if "interval" in frame:
        coarse = frame["interval"].map(lambda i: i in INTERVALS and INTERVALS[i].seconds >= 86400)
    else:
        coarse = pd.Series(False, index=frame.index)
    local = ts.dt.tz_convert(tz).dt.strftime("%Y-%m-%d")
    return local.where(~coarse.astype(bool), ts.dt.strftime("%Y-%m-%d"))


def _factors(frame: pd.DataFrame, actions: Sequence[dict], per_symbol) -> pd.Series:
    """A price factor per row of ``frame`` (columns symbol, ts, interval): the product of
    ``per_symbol(action, that symbol's rows, which of them are before the ex-date)`` over the
    actions of each row's symbol (a row is before when its session date is)."""
    factor = pd.Series(1.0, index=frame.index)
    for action in actions:
        rows = frame["symbol"] == action["symbol"]
        if not rows.any():
            continue
        sessions = _sessions(frame, market_for(action["symbol"]).timezone)
        before = rows & (sessions < action["ex_date"])
        f = per_symbol(action, frame[rows], before[rows])
        if f is not None:
            factor[before] *= f
    return factor


def as_traded(frame: pd.DataFrame, actions: Sequence[dict]) -> pd.DataFrame:
    """Bars (columns symbol, ts, open..close, volume; stored split-adjusted) as they traded: prices
    before each split multiplied by its ratio, volumes divided by it."""
    splits = [a for a in actions if a["kind"] == "split"]
    factor = _factors(frame, splits, lambda a, rows, before: a["ratio"])
    out = frame.copy()
    for col in ("open", "high", "low", "close"):
        out[col] = out[col] * factor
    if "volume" in out:
        out["volume"] = out["volume"] / factor
    return out


def dividend_adjusted(frame: pd.DataFrame, actions: Sequence[dict]) -> pd.DataFrame:
    """Split-adjusted bars also adjusted for dividends (CRSP's and Yahoo's ``adjclose`` method): prices
    before each ex-date multiplied by 1 - amount / (the close of the last bar before the ex-date)."""

    def factor(action: dict, rows: pd.DataFrame, before: pd.Series) -> float | None:
        prior = rows[before]
        if prior.empty:
            return None
        close = float(prior.sort_values("ts")["close"].iloc[-1])
        return max(0.0, 1.0 - action["amount"] / close) if close > 0 else None

    dividends = [a for a in actions if a["kind"] == "dividend"]
    f = _factors(frame, dividends, factor)
    out = frame.copy()
    for col in ("open", "high", "low", "close"):
        out[col] = out[col] * f
    return out


__all__ = [
    "KINDS",
    "apply_split",
    "as_traded",
    "dividend_adjusted",
    "from_frame",
    "record",
    "record_and_apply",
]
