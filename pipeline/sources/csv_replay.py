"""Replay a CSV of bars (for example a History page export) as if it were arriving now.

File format: a header with at least ``symbol``, ``ts`` (or ``timestamp``/``date``/``datetime``),
``open``, ``high``, ``low``, ``close``, ``volume``; optional ``interval`` (default ``1m``, or ``1d``
when the times are plain dates). Column names are case-insensitive (Yahoo's ``Date,Open,...``
works; ``Adj Close`` is ignored); without a ``symbol`` column the file name (``AAPL.csv``) is the
symbol. Times are ISO-8601 (naive = UTC) or epoch seconds; a plain date means local midnight at the
symbol's exchange (the daily-bar convention of every source). The History page exports exactly
``symbol,interval,ts,open,high,low,close,volume``.

Guarantees:
- Replay keeps the original timestamps (it is a replay of history; only ``fetched_at`` is now).
  The first ``fetch`` or ``backfill`` anchors replay time: a later call at wall time ``t`` releases
  every row whose offset from the file's first row is ``<= (t - anchor) * speed``, once, in time
  order. Rows of symbols not asked for in that call are skipped (you were not watching them).
- A bad row never raises: it becomes a reason with its line number ("line 7: high 1.0 is below low
  2.0") in the call that reaches it; rows without a usable time or symbol are reported in the first
  ``fetch``. Rows whose time is more than a minute in the future are rejected like any source's.
- A missing or unreadable file, or one without the needed columns, raises ``SourceError`` when the
  source is built (a configuration problem, not a per-symbol one).
- ``lookup`` knows exactly the symbols in the file; ``backfill`` returns rows already replayed.
"""

from __future__ import annotations

import csv
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from ..intervals import INTERVALS
from ..models import InvalidEvent, iso, normalize_symbol, to_utc, utcnow, validate
from .base import FetchResult, SourceError, SymbolInfo, UnknownSymbol
from .markets import day_start_utc, market_for, symbol_info

ALIASES = {
    "symbol": ("symbol", "ticker"),
    "ts": ("ts", "timestamp", "datetime", "date", "time"),
    "open": ("open",),
    "high": ("high",),
    "low": ("low",),
    "close": ("close",),
    "volume": ("volume",),
    "interval": ("interval",),
}
REQUIRED = ("ts", "open", "high", "low", "close", "volume")
DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass
class _Row:
    line: int
    symbol: str
    interval: str
    ts: datetime
    raw: dict[str, Any]
    problem: str | None = None  # a reason found while loading; reported when the row is due


class CsvReplaySource:
    """Replays bars from a CSV file at ``speed`` times real time; see the module docstring."""

    name = "csv"

    def __init__(self, path: str | Path, speed: float = 60.0, *, clock: Callable[[], datetime] | None = None):
        if not speed > 0:
            raise ValueError(f"speed must be positive, got {speed!r}")
        self.path = Path(path)
        self.speed = float(speed)
        self._clock = clock or utcnow
        self._lock = threading.Lock()
        self._rows, self._unplaced = _load(self.path, self.name)
        self._symbols = sorted({r.symbol for r in self._rows})
        self._anchor: datetime | None = None
        self._start = self._rows[0].ts if self._rows else None
        self._pos = 0
        self._emitted = 0
        self._skipped = 0
        self._reported_unplaced = False
        self._bad_seen: list[str] = []

    # -- public -----------------------------------------------------------------------------------
    def fetch(self, symbols: Sequence[str]) -> FetchResult:
        result = FetchResult()
        wanted: set[str] = set()
        for raw in symbols:
            try:
                wanted.add(normalize_symbol(raw))
            except InvalidEvent as exc:
                result.errors[str(raw)] = exc.reason
        with self._lock:
            now = self._now()
            if not self._reported_unplaced:
                self._reported_unplaced = True
                for line, key, reason in self._unplaced:
                    result.errors.setdefault(key, f"line {line}: {reason}")
            due = self._rows[self._pos : self._advance(now)]
            self._pos += len(due)
            bad: dict[str, list[str]] = {}
            for row in due:
                if row.symbol not in wanted:
                    self._skipped += 1
                    continue
                problem = self._emit(row, now, result)
                if problem:
                    bad.setdefault(row.symbol, []).append(f"line {row.line}: {problem}")
            for symbol, reasons in bad.items():
                more = f" (and {len(reasons) - 1} more bad rows)" if len(reasons) > 1 else ""
                result.errors[symbol] = reasons[0] + more
        for symbol in sorted(wanted - set(self._symbols)):
            result.errors[symbol] = f"{symbol} is not in the replay file {self.path.name}"
        return result

    def backfill(self, symbol: str, start: datetime, end: datetime, interval: str) -> FetchResult:
        result = FetchResult()
        args = result.backfill_args(symbol, start, end)
        if args is None:
            return result
        symbol, start, end = args
        if symbol not in self._symbols:
            result.errors[symbol] = f"{symbol} is not in the replay file {self.path.name}"
            return result
        with self._lock:
            now = self._now()
            replayed = self._rows[: self._advance(now)]
        mine = [r for r in self._rows if r.symbol == symbol]
        if not any(r.interval == interval for r in mine):
            have = sorted({r.interval for r in mine})
            result.errors[symbol] = f"the replay file has {', '.join(have)} bars for {symbol}, not {interval}"
            return result
        for row in replayed:
            if row.symbol == symbol and row.interval == interval and start <= row.ts < end:
                reason = self._emit(row, now, result, count=False)
                if reason:
                    result.errors.setdefault(symbol, f"line {row.line}: {reason}")
        return result

    def lookup(self, symbol: str) -> SymbolInfo:
        try:
            symbol = normalize_symbol(symbol)
        except InvalidEvent as exc:
            raise UnknownSymbol(exc.reason) from None
        if symbol not in self._symbols:
            raise UnknownSymbol(
                f"{symbol} is not in the replay file {self.path.name} "
                f"(it has {', '.join(self._symbols) or 'no valid rows'})"
            )
        return symbol_info(symbol, name=f"{symbol} (replay of {self.path.name})")

    def health(self) -> dict:
        with self._lock:
            cutoff = self._cutoff(self._clock()) if self._anchor else None
            return {
                "source": self.name,
                "path": str(self.path),
                "speed": self.speed,
                "rows": len(self._rows),
                "symbols": self._symbols,
                "unusable_rows": len(self._unplaced),
                "emitted": self._emitted,
                "skipped_not_watched": self._skipped,
                "remaining": len(self._rows) - self._pos,
                "anchored_at": iso(self._anchor) if self._anchor else None,
                "replay_time": iso(cutoff) if cutoff else None,
                "finished": bool(self._rows) and self._pos >= len(self._rows),
                "bad_rows": ([f"line {n}: {r}" for n, _, r in self._unplaced] + self._bad_seen)[:10],
            }

    # -- replay clock -----------------------------------------------------------------------------
    def _now(self) -> datetime:
        now = to_utc(self._clock(), "clock")
        if self._anchor is None:
            self._anchor = now
        return now

    def _cutoff(self, now: datetime) -> datetime | None:
        if self._start is None or self._anchor is None:
            return None
        return self._start + (now - self._anchor) * self.speed

    def _advance(self, now: datetime) -> int:
        """Index one past the last row that is due at ``now``."""
        cutoff = self._cutoff(now)
        i = self._pos
        while cutoff is not None and i < len(self._rows) and self._rows[i].ts <= cutoff:
            i += 1
        return i

    def _emit(self, row: _Row, now: datetime, result: FetchResult, count: bool = True) -> str | None:
        reason = row.problem
        if reason is None:
            try:
                result.events.append(validate({**row.raw, "fetched_at": now}, now=now))
                if count:
                    self._emitted += 1
                return None
            except InvalidEvent as exc:
                reason = exc.reason
        if count and len(self._bad_seen) < 10:
            self._bad_seen.append(f"line {row.line}: {reason}")
        return reason


def _load(path: Path, source: str) -> tuple[list[_Row], list[tuple[int, str, str]]]:
    """Rows sorted by time, and (line, key, reason) for rows without a usable time or symbol."""
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise SourceError(f"cannot read the replay file {path}: {exc.strerror or exc}") from None
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise SourceError(f"the replay file {path} is empty (it needs a header row)") from None
        except (csv.Error, UnicodeDecodeError) as exc:
            raise SourceError(f"the replay file {path} is not a readable CSV: {exc}") from None
        names = [h.strip().lower() for h in header]
        column = {
            key: next((names.index(a) for a in aliases if a in names), None)
            for key, aliases in ALIASES.items()
        }
        missing = [k for k in REQUIRED if column[k] is None]
        if missing:
            raise SourceError(
                f"the replay file {path} has no {', '.join(missing)} column "
                f"(needed: symbol, ts, open, high, low, close, volume; optional: interval)"
            )
        default_symbol = None
        if column["symbol"] is None:
            try:
                default_symbol = normalize_symbol(path.stem)
            except InvalidEvent:
                raise SourceError(
                    f"the replay file {path} has no symbol column and its name is not a "
                    "ticker (name it like AAPL.csv or add a symbol column)"
                ) from None
        rows: list[_Row] = []
        unplaced: list[tuple[int, str, str]] = []
        try:
            for cells in reader:
                line = reader.line_num
                if not any(c.strip() for c in cells):
                    continue
                try:
                    rows.append(_row(cells, column, line, default_symbol, source))
                except InvalidEvent as exc:
                    unplaced.append((line, f"{path.name}:{line}", exc.reason))
        except (csv.Error, UnicodeDecodeError) as exc:
            unplaced.append(
                (reader.line_num, f"{path.name}:{reader.line_num}", f"unreadable CSV from here on ({exc})")
            )
    rows.sort(key=lambda r: (r.ts, r.line))
    return rows, unplaced


def _row(
    cells: list[str], column: dict[str, int | None], line: int, default_symbol: str | None, source: str
) -> _Row:
    def cell(key: str) -> str:
        i = column[key]
        return cells[i].strip() if i is not None and i < len(cells) else ""

    symbol = normalize_symbol(cell("symbol")) if column["symbol"] is not None else default_symbol
    assert symbol is not None
    market = market_for(symbol)
    text = cell("ts")
    if not text:
        raise InvalidEvent("the time is empty")
    if DATE_ONLY.match(text):
        try:
            ts = day_start_utc(date.fromisoformat(text), market.timezone)
        except ValueError:
            raise InvalidEvent(f"date {text!r} is not a calendar date") from None
        default_interval = "1d"
    else:
        try:
            if re.fullmatch(r"\d+(\.\d+)?", text):
                seconds = float(text)
                ts = to_utc(seconds / 1000 if seconds > 1e11 else seconds, "ts")  # epoch s or ms
            else:
                ts = to_utc(text, "ts")
        except (ValueError, OverflowError, OSError):
            raise InvalidEvent(f"ts {text!r} is neither an ISO-8601 time nor epoch seconds") from None
        default_interval = "1m"
    interval = cell("interval") or default_interval
    raw: dict[str, Any] = dict(
        symbol=symbol,
        interval=interval,
        ts=ts,
        source=source,
        schema=1,
        exchange=market.exchange,
        currency=market.currency,
        timezone=market.timezone,
    )
    problem = None
    for key in ("open", "high", "low", "close", "volume"):
        value = cell(key)
        try:
            raw[key] = float(value)
        except ValueError:
            raw[key] = None
            problem = problem or f"{key} {value!r} is not a number"
    if problem is None and interval not in INTERVALS:
        problem = f"interval {interval!r} is not one of {', '.join(INTERVALS)}"
    if problem is None:
        try:
            validate(raw, now=ts)  # everything but "in the future", which depends on when it is replayed
        except InvalidEvent as exc:
            problem = exc.reason
    return _Row(line, symbol, interval, ts, raw, problem)
