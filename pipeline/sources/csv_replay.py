"""Replay a CSV of bars (for example a History page export) as if it were arriving now.

File format: a header row (any case; spaces, underscores and MetaTrader's ``<DATE>`` brackets
ignored) with ``symbol`` (or ``ticker``), the time as ``ts``/``timestamp``/``datetime`` or as a
``date`` column with an optional separate ``time`` column (MetaTrader), ``open``, ``high``, ``low``,
``close``, and optionally ``volume`` (``vol``/``tickvol``) and ``interval`` (default ``1m``, or ``1d``
when the times are plain dates). ``Adj Close`` and other columns are ignored. Without a ``symbol``
column the file name (``AAPL.csv``, or its last ``_`` part: ``daily_SAP.DE.csv``) is the symbol. The dialect is read by ``pipeline.csvfile``:
byte-order mark, comma/semicolon/tab/pipe, decimal commas, ISO/dotted/slashed/compact dates.
Times are naive = UTC, or carry an offset, or are epoch seconds (milliseconds above 1e11). A plain
date is that *session date* at the symbol's exchange: the event's ``ts`` is local midnight there
(``markets.day_start_utc``, every source's daily-bar convention), which the bar builder keys back
to the same date. The History page exports exactly ``symbol,interval,ts,open,high,low,close,volume`` (plus ``session``
for daily and weekly bars). A daily row's ``session`` (YYYY-MM-DD) is its session date and wins over
its ``ts`` (the export's ``ts`` is UTC midnight of the session date, which west of UTC is the evening
before at the exchange).

Guarantees:
- Replay keeps the original timestamps (it is a replay of history; only ``fetched_at`` is now).
  The first ``fetch`` or ``backfill`` anchors replay time: a later call at wall time ``t`` releases
  every row whose offset from the file's first row is ``<= (t - anchor) * speed``, once, in time
  order. Rows of symbols not asked for in that call are skipped (you were not watching them).
- A bad row never raises: it becomes a reason with its line number ("line 7: high 1.0 is below low
  2.0") in the call that reaches it; rows without a usable time or symbol are reported in the first
  ``fetch``. Rows whose time is more than a minute in the future are rejected like any source's.
- Without a volume column every bar has volume 0, and ``health()["notes"]`` says so (FX and indices
  have no volume).
- One bar per (symbol, interval, ts): when the file has the same bar twice, the later line wins (a
  correction follows what it corrects) unless the later row is itself bad; the replaced line is
  reported. ``health()["rows_not_taken"]`` lists every row not replayed, by line, with its reason
  (unusable, replaced, or refused when due).
- A missing or unreadable file, one whose rows no delimiter splits alike, or one without the needed
  columns raises ``SourceError`` when the source is built (naming the dialect it saw).
- ``lookup`` knows exactly the symbols in the file; ``backfill`` returns rows already replayed.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from ..csvfile import (
    BAR_COLUMNS,
    SYMBOL_COLUMNS,
    DateReader,
    DialectError,
    Table,
    column_key,
    is_date_only,
    read_table,
)
from ..intervals import INTERVALS
from ..markets.calendars import day_start_utc, market_for, symbol_info
from ..models import InvalidEvent, iso, normalize_symbol, to_utc, utcnow, validate
from .base import FetchResult, SourceError, SymbolInfo, UnknownSymbol

ALIASES = {"symbol": SYMBOL_COLUMNS, **BAR_COLUMNS}
REQUIRED = ("ts", "open", "high", "low", "close")
DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MAX_REPORTED = 200  # rows listed in health()["rows_not_taken"] (it travels in every heartbeat)


@dataclass
class _Row:
    line: int
    symbol: str
    interval: str
    ts: datetime
    raw: dict[str, Any]
    problem: str | None = None  # a reason found while loading; reported when the row is due


@dataclass
class _Loaded:
    """What ``_load`` read: the rows to replay, and every row not taken with its line and reason."""

    dialect: str = ""
    rows: list[_Row] = field(default_factory=list)
    unplaced: list[tuple[int, str, str]] = field(default_factory=list)  # (line, key, reason): no time/symbol
    replaced: list[tuple[int, str]] = field(default_factory=list)  # (line, reason): same bar, later row wins
    notes: list[str] = field(default_factory=list)


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
        loaded = _load(self.path, self.name)
        self._rows, self._unplaced, self._replaced = loaded.rows, loaded.unplaced, loaded.replaced
        self._dialect, self._notes = loaded.dialect, loaded.notes
        self._symbols = sorted({r.symbol for r in self._rows})
        self._anchor: datetime | None = None
        self._start = self._rows[0].ts if self._rows else None
        self._pos = 0
        self._emitted = 0
        self._skipped = 0
        self._reported_unplaced = False
        self._bad_seen: list[str] = []
        self._bad_lines: list[tuple[int, str]] = []  # every row refused when it came due

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
                for line, key, why in self._unplaced:
                    result.errors.setdefault(key, f"line {line}: {why}")
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
                "dialect": self._dialect,
                "notes": list(self._notes),
                "replaced_rows": len(self._replaced),
                "rows_not_taken": self._not_taken(),
            }

    def _not_taken(self) -> list[str]:
        """Every row not replayed so far, by line: unusable, replaced by a later row for the same bar,
        or refused when it came due (at most ``MAX_REPORTED``, then a count of the rest)."""
        lines = sorted(
            [(n, r) for n, _, r in self._unplaced] + list(self._replaced) + self._bad_lines,
            key=lambda x: x[0],
        )
        out = [f"line {n}: {r}" for n, r in lines[:MAX_REPORTED]]
        if len(lines) > MAX_REPORTED:
            out.append(f"… and {len(lines) - MAX_REPORTED} more rows")
        return out

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
        if count:
            self._bad_lines.append((row.line, reason))
        return reason


def _names(header: list[str]) -> list[str]:
    """Header cells as keys: case, spaces, underscores and MetaTrader's ``<DATE>`` brackets ignored."""
    return [column_key(h) for h in header]


def _symbol_from_name(stem: str) -> str | None:
    """The ticker a file is named after: the whole name (``AAPL``) or, failing that, its last
    ``_``-separated part (``daily_SAP.DE``, ``stooq_EURUSD=X``); None if neither is a ticker."""
    for text in (stem, stem.rsplit("_", 1)[-1]):
        try:
            return normalize_symbol(text)
        except InvalidEvent:
            continue
    return None


def _load(path: Path, source: str) -> _Loaded:
    """Rows sorted by time (one per bar: the later line wins), and what was not taken."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SourceError(f"cannot read the replay file {path}: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceError(f"the replay file {path} is not UTF-8 text: {exc}") from None
    if not text.strip():
        raise SourceError(f"the replay file {path} is empty (it needs a header row)")
    try:
        table = read_table(text)
    except DialectError as exc:
        raise SourceError(f"the replay file {path} is not a CSV this source can read: {exc}") from None
    names = _names(table.header)
    column = {
        key: next((names.index(a) for a in aliases if a in names), None) for key, aliases in ALIASES.items()
    }
    if column["ts"] is None and column["date"] is not None:
        column["ts"], column["date"] = column["date"], None  # a separate time column is joined to it
    elif column["ts"] is not None:
        column["time"] = None  # a full timestamp column: a time column beside it is not joined
    if column["ts"] is None and column["time"] is not None:
        column["ts"], column["time"] = column["time"], None
    missing = [k for k in REQUIRED if column[k] is None]
    if missing:
        raise SourceError(
            f"the replay file {path} has no {', '.join(missing)} column "
            f"(needed: symbol, ts or date [+ time], open, high, low, close; optional: volume, interval; "
            f"it has {', '.join(table.header)}; read as {table.dialect})"
        )
    loaded = _Loaded(dialect=table.dialect)
    if column["volume"] is None:
        loaded.notes.append("no volume column: every bar has volume 0 (FX pairs and indices have no volume)")
    default_symbol = None
    if column["symbol"] is None:
        default_symbol = _symbol_from_name(path.stem)
        if default_symbol is None:
            raise SourceError(
                f"the replay file {path} has no symbol column and its name is not a "
                "ticker (name it like AAPL.csv or daily_AAPL.csv, or add a symbol column)"
            )
    ts_col = column["ts"]
    assert ts_col is not None
    dates = DateReader([cells[ts_col] for _, cells in table.rows[:500] if ts_col < len(cells)])
    rows: list[_Row] = []
    for line, cells in table.rows:
        try:
            rows.append(_row(cells, column, line, default_symbol, source, table, dates))
        except InvalidEvent as exc:
            loaded.unplaced.append((line, f"{path.name}:{line}", exc.reason))
    # one row per bar: the later line wins (a correction follows the row it corrects); a later row
    # that is itself bad does not replace a good one
    chosen: dict[tuple[str, str, datetime], _Row] = {}
    for row in sorted(rows, key=lambda r: r.line):
        key = (row.symbol, row.interval, row.ts)
        earlier = chosen.get(key)
        if earlier is None:
            chosen[key] = row
            continue
        if row.problem is not None and earlier.problem is None:
            loaded.replaced.append(
                (row.line, f"{row.problem} (the good row on line {earlier.line} for the same bar is kept)")
            )
            continue
        chosen[key] = row
        loaded.replaced.append(
            (
                earlier.line,
                f"same {row.symbol} {row.interval} bar at {iso(row.ts)} as line {row.line}, which wins",
            )
        )
    loaded.rows = sorted(chosen.values(), key=lambda r: (r.ts, r.line))
    loaded.replaced.sort()
    return loaded


def _row(
    cells: list[str],
    column: dict[str, int | None],
    line: int,
    default_symbol: str | None,
    source: str,
    table: Table,
    dates: DateReader,
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
    clock = cell("time")
    if column["time"] is not None and not clock:
        raise InvalidEvent(f"date {text!r} has no time in the time column")
    if clock:  # separate date and time columns (MetaTrader): naive = UTC
        try:
            ts = to_utc(dates.parse_pair(text, clock), "ts")
        except (ValueError, OverflowError, InvalidEvent):
            raise InvalidEvent(f"date {text!r} and time {clock!r} are not a date and a time of day") from None
        default_interval = "1m"
    elif is_date_only(text):
        try:
            day = date.fromisoformat(text) if DATE_ONLY.match(text) else dates.parse(text).date()
            ts = day_start_utc(day, market.timezone)  # the session date the file says, at the exchange
        except ValueError:
            raise InvalidEvent(f"date {text!r} is not a calendar date") from None
        default_interval = "1d"
    else:
        try:
            if re.fullmatch(r"\d+(\.\d+)?", text):
                seconds = float(text)
                ts = to_utc(seconds / 1000 if seconds > 1e11 else seconds, "ts")  # epoch s or ms
            else:
                ts = to_utc(dates.parse(text), "ts")  # naive = UTC
        except (ValueError, OverflowError, OSError, InvalidEvent):
            raise InvalidEvent(
                f"ts {text!r} is neither an ISO-8601 time, a date (and time) nor epoch seconds"
            ) from None
        default_interval = "1m"
    interval = cell("interval") or default_interval
    session = cell("session")
    if session and interval == "1d":  # the History export's session date wins over its UTC ts
        if not DATE_ONLY.match(session):
            raise InvalidEvent(f"session {session!r} is not a YYYY-MM-DD date")
        try:
            ts = day_start_utc(date.fromisoformat(session), market.timezone)
        except ValueError:
            raise InvalidEvent(f"session {session!r} is not a calendar date") from None
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
        if key == "volume" and column["volume"] is None:
            raw[key] = 0.0
            continue
        value = cell(key)
        try:
            raw[key] = table.number(value)
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
