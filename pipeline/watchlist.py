"""The watchlist, kept in MongoDB: which symbols the producer fetches, from which source.

Guarantees:
- A symbol is added only after its format passed ``pipeline.models.normalize_symbol`` (ASCII only, at
  least one letter or digit, the entry quoted clipped in the refusal) and its source confirmed it
  (``lookup``); every refusal is a ``WatchlistError`` with a sentence a user can act on.
- Duplicates are refused, not merged; the list never grows past ``max_symbols``.
- Changes are visible to the running producer on its next run (it reads the list every time).
- ``read_import`` reads what people paste or upload: a ticker list (``AAPL, MSFT``) or a CSV with a
  header naming a ``symbol`` (or ``ticker``) column in any case, optional ``source`` and ``enabled``
  (true/false, yes/no, 1/0, on/off; empty = true), in any dialect ``pipeline.csvfile`` reads (Excel's
  byte-order mark, semicolons, CRLF). A header-less CSV whose second column is a source name is
  read as symbol,source[,enabled]. Header words never become tickers. A symbol listed twice: the
  later row wins. Every row not taken is in ``ImportPlan.skipped`` with its line and reason.
- Text that is not a watchlist is refused as a whole with one ``WatchlistError`` that says what it
  looks like; nothing of it is imported. That is: a price-history header (three or more
  ``csvfile.PRICE_COLUMNS`` words such as ``Date,Open,High,Low,Close,Adj Close,Volume``) with a
  number or date in the text or a header word no ticker can be (``Adj Close``, ``<DATE>``); a
  header-less table of two or more columns with a column mostly of numbers or dates below its first
  line (``Name,Price`` over ``Apple,180.10``), or of one line mostly numbers or dates; rows no
  delimiter splits alike with a number or date among them (so a ragged ticker list with a stray
  number, ``AAPL,MSFT,7203`` over ``GOOG``, is refused too: save one ticker per line). Anything else
  is a ticker list: real tickers that are price words (LOW, OPEN, TS) are tickers, and a line of
  tickers with a number in it (``AAPL,MSFT,7203``) imports the tickers and skips the number.
- A number or a date (``180.10``, ``1500000``, ``1.500.000``, ``2024-03-04``, ``04-Mar-2024``: what
  ``pipeline.csvfile.is_number`` / ``is_date_only`` read) is never a ticker (``not_a_ticker``):
  in an import it is a skipped row with its reason, and ``Watchlist.add`` refuses it. Tickers with
  digits (7203.T, 0700.HK, 005930.KS, BRK-B, ^GSPC, EURUSD=X, GC=F) are not numbers and pass.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime

from .config import SOURCES
from .csvfile import (
    PRICE_COLUMNS,
    SYMBOL_COLUMNS,
    DialectError,
    Table,
    column_key,
    is_date_only,
    is_number,
    read_table,
)
from .models import InvalidEvent, normalize_symbol, to_utc, utcnow
from .sources import SymbolInfo, UnknownSymbol
from .sources.base import SourceError
from .usertext import clip

FIELDS = ("symbol", "source", "enabled", "name", "exchange", "currency", "timezone", "added_at")


class WatchlistError(ValueError):
    """A watchlist change was refused; ``str(exc)`` says why and what to do."""


TRUE = frozenset({"true", "1", "yes", "y", "on", "enabled", ""})
FALSE = frozenset({"false", "0", "no", "n", "off", "disabled"})


@dataclass
class ImportRow:
    """One row to add: its 1-based ``line`` in the pasted/uploaded text, the ``symbol`` text as
    written (checked when added), the ``source`` and ``enabled``."""

    line: int
    symbol: str
    source: str
    enabled: bool = True


@dataclass
class ImportPlan:
    """What ``read_import`` found: ``rows`` to add, ``skipped`` rows as (line, text, reason), and
    the ``dialect`` it read ("comma-separated", "ticker list", ...)."""

    rows: list[ImportRow] = field(default_factory=list)
    skipped: list[tuple[int, str, str]] = field(default_factory=list)
    dialect: str = ""


NEEDS_SUFFIX = "a listing in Tokyo, Hong Kong or Seoul needs its exchange suffix (7203.T, 0700.HK, 005930.KS)"
NEEDS = "a watchlist file needs a Symbol (or Ticker) column, or one ticker per line."


def not_a_ticker(text: str) -> str | None:
    """Why ``text`` cannot be a ticker because it reads as a date or a number ("'2024-03-04' is a
    date, not a ticker"; "180.10", "1500000", "-2.5%"), else None. Only that: its format is
    ``normalize_symbol``'s to check. A bare code of 4 to 6 digits ("7203") is told to add its exchange
    suffix. Tickers with digits (7203.T, 0700.HK, BRK-B) give None."""
    raw = text.strip()
    if is_date_only(raw):
        return f"{clip(raw)!r} is a date, not a ticker"
    if re.fullmatch(r"\d{4,6}", raw):  # a Tokyo, Hong Kong or Korean code without its exchange
        return f"{raw!r} is a number; {NEEDS_SUFFIX}"
    if is_number(raw):
        return f"{clip(raw)!r} is a number, not a ticker"
    return None


def _tokens(cell: str) -> list[str]:
    return [t for t in re.split(r"[\s,;|\ufeff]+", cell) if t]


def _price_words(cells: list[str]) -> list[str]:
    return [c for c in cells if column_key(c) in PRICE_COLUMNS]


def _refused(cell: str) -> bool:
    try:
        normalize_symbol(cell)
    except InvalidEvent:
        return True
    return False


def _price_header(head: list[str], text: str) -> bool:
    """True when ``head`` (the first line's cells) is a price-history header: three or more
    ``PRICE_COLUMNS`` words, and evidence it is not a list of tickers that happen to be such words
    (LOW, OPEN, TS): a number or a date anywhere in ``text``, or one of those words no ticker can be
    (``Adj Close``, ``<DATE>``, ``Date/Time``)."""
    words = _price_words(head)
    return len(words) >= 3 and (
        any(_refused(w) for w in words) or any(not_a_ticker(t) for t in _tokens(text))
    )


def _data_table(table: Table) -> bool:
    """True when a table of two or more columns without a symbol column holds data rather than
    tickers: a column whose cells below the first line are mostly (more than half) numbers or dates,
    or, for a table of one line, most of its cells. A line of tickers with one number in it
    (``AAPL,MSFT,7203``) is not one: it is read as a ticker list and the number skipped."""
    if not table.rows:
        return 2 * sum(bool(not_a_ticker(c)) for c in table.header) > len(table.header)
    for i in range(len(table.header)):
        below = [cells[i] for _, cells in table.rows if i < len(cells) and cells[i].strip()]
        if below and 2 * sum(bool(not_a_ticker(c)) for c in below) > len(below):
            return True
    return False


def _not_a_watchlist(header: list[str]) -> WatchlistError:
    """The one refusal of a table without a symbol column, naming what it looks like."""
    shown = ", ".join(clip(c.strip(), 20) for c in header[:5]) + (", …" if len(header) > 5 else "")
    what = (
        f"price history ({shown})"
        if len(_price_words(header)) >= 3
        else f"a table of {len(header)} columns ({shown}) with no Symbol column"
    )
    return WatchlistError(f"This file looks like {what}, not a watchlist: {NEEDS}")


def _key(text: str) -> str:
    try:
        return normalize_symbol(text)
    except InvalidEvent:
        return text.strip().upper()


def read_import(text: str, default_source: str) -> ImportPlan:
    """Read a pasted or uploaded watchlist (see the module docstring) into an ``ImportPlan``.
    Raises ``WatchlistError`` for a CSV with a symbol header whose rows no delimiter splits alike
    (the message names the dialect seen), and for text that is not a watchlist (price history, a
    table of numbers or dates, uneven rows with numbers: see the module docstring; the message says
    what it looks like and what a watchlist file needs). Nothing here talks to a source or the
    database."""
    text = text.removeprefix("\ufeff")
    plan = ImportPlan()
    if not text.strip():
        return plan
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    head = [c.strip() for c in re.split(r"[,;\t|]", first)]  # whatever splits it: for the refusal below
    try:
        table = read_table(text)
    except DialectError as exc:
        if re.search(rf"\b({'|'.join(SYMBOL_COLUMNS)})\b", first, re.IGNORECASE):
            raise WatchlistError(f"cannot read the CSV: {exc}") from None
        table = None
    names = [column_key(h) for h in table.header] if table else []
    column = {
        k: next((names.index(a) for a in aliases if a in names), None)
        for k, aliases in IMPORT_ALIASES.items()
    }
    candidates: list[tuple[int, list[str]]] = []
    if table is not None and column["symbol"] is not None:
        plan.dialect = table.dialect + " with a header"
        candidates = table.rows
    elif (
        table is not None
        and len(table.header) >= 2
        and all(len(c) >= 2 and c[1].strip().lower() in SOURCES for _, c in [(1, table.header), *table.rows])
    ):
        plan.dialect = table.dialect + ", no header (symbol, source, enabled)"
        column = {"symbol": 0, "source": 1, "enabled": 2 if len(table.header) > 2 else None}
        candidates = [(1, table.header), *table.rows]
    elif _price_header(head, text) or (
        table is not None and len(table.header) >= 2 and _data_table(table)
    ):  # a table that is not a list of tickers: refused whole, never split into "tickers"
        raise _not_a_watchlist(table.header if table is not None and len(table.header) >= 2 else head)
    elif table is None and any(not_a_ticker(t) for t in _tokens(text)):  # uneven rows with numbers
        raise _not_a_watchlist(head)
    else:
        plan.dialect = "ticker list"
        for n, written in enumerate(text.splitlines(), start=1):
            for token in _tokens(written):
                plan.rows.append(ImportRow(n, token, default_source, True))
    for line, cells in candidates:

        def cell(key: str, cells: list[str] = cells) -> str:
            i = column[key]
            return cells[i].strip() if i is not None and i < len(cells) else ""

        symbol, shown = cell("symbol"), ", ".join(c.strip() for c in cells)
        if not symbol:
            plan.skipped.append((line, shown, "no symbol in this row"))
            continue
        flag = cell("enabled").lower()
        if flag not in TRUE | FALSE:
            plan.skipped.append((line, symbol, f"enabled {cell('enabled')!r} is not true or false"))
            continue
        source = cell("source").lower() or default_source
        plan.rows.append(ImportRow(line, symbol, source, flag not in FALSE))
    numbers = [r for r in plan.rows if not_a_ticker(r.symbol)]  # in every shape: never a ticker
    plan.skipped += [(r.line, r.symbol, not_a_ticker(r.symbol) or "") for r in numbers]
    plan.rows = [r for r in plan.rows if r not in numbers]
    # the same symbol twice: the later row wins
    last: dict[str, ImportRow] = {}
    for row in plan.rows:
        last[_key(row.symbol)] = row
    kept = [r for r in plan.rows if last[_key(r.symbol)] is r]
    for row in plan.rows:
        winner = last[_key(row.symbol)]
        if winner is not row:
            plan.skipped.append((row.line, row.symbol, f"listed again on line {winner.line}, which wins"))
    plan.rows = kept
    plan.skipped.sort(key=lambda s: s[0])
    return plan


IMPORT_ALIASES = {"symbol": SYMBOL_COLUMNS, "source": ("source",), "enabled": ("enabled", "active")}


@dataclass
class Entry:
    symbol: str
    source: str = "simulated"
    enabled: bool = True
    name: str = ""
    exchange: str = ""
    currency: str = "USD"
    timezone: str = "America/New_York"
    added_at: datetime = field(default_factory=utcnow)

    @classmethod
    def from_doc(cls, doc: dict) -> Entry:
        values = {k: doc[k] for k in FIELDS if k in doc and doc[k] is not None}
        if "added_at" in values:
            values["added_at"] = to_utc(values["added_at"])
        return cls(**values)


class Watchlist:
    """CRUD over the ``watchlist`` collection. ``lookup(source, symbol)`` confirms tickers."""

    def __init__(self, collection, lookup: Callable[[str, str], SymbolInfo], max_symbols: int = 50):
        self.collection = collection
        self.lookup = lookup
        self.max_symbols = max_symbols

    def entries(self, enabled_only: bool = False) -> list[Entry]:
        query = {"enabled": True} if enabled_only else {}
        return [Entry.from_doc(d) for d in self.collection.find(query).sort("added_at", 1)]

    def symbols_by_source(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for e in self.entries(enabled_only=True):
            out.setdefault(e.source, []).append(e.symbol)
        return out

    def seed(self, symbols: Iterable[str], source: str, names: Mapping[str, str] | None = None) -> int:
        """Fill an empty watchlist on first start (no lookups: the defaults are known good). ``names``
        gives the source's name of a symbol where it knows one offline (the simulator's profiles), so
        the Name column shows "Apple Inc." rather than the ticker again."""
        if self.collection.estimated_document_count():
            return 0
        from .markets.calendars import symbol_info  # the table's market: no lookup on first start

        n = 0
        for i, symbol in enumerate(symbols):
            info = symbol_info(symbol)
            entry = Entry(
                symbol,
                source,
                name=(names or {}).get(symbol, ""),
                exchange=info.exchange,
                currency=info.currency,
                timezone=info.timezone,
            )
            doc = asdict(entry)
            doc["added_at"] = utcnow().replace(microsecond=i * 1000)
            self.collection.update_one({"_id": symbol}, {"$setOnInsert": doc}, upsert=True)
            n += 1
        return n

    def add(self, text: str, source: str) -> Entry:
        """Add ticker ``text`` from ``source`` and return its stored ``Entry``. Raises
        ``WatchlistError`` (nothing stored) for a bad format, a number or a date (``not_a_ticker``),
        an unknown source, a duplicate, a full list, or a ticker the source refuses or cannot check."""
        try:
            symbol = normalize_symbol(text)
        except InvalidEvent as exc:
            raise WatchlistError(exc.reason) from None
        reason = not_a_ticker(symbol)
        if reason:
            raise WatchlistError(reason)
        if source not in SOURCES:
            raise WatchlistError(f"unknown source {source!r}; choose one of {', '.join(SOURCES)}")
        if self.collection.count_documents({"_id": symbol}, limit=1):
            raise WatchlistError(f"{symbol} is already on the watchlist")
        if self.collection.count_documents({}) >= self.max_symbols:
            raise WatchlistError(f"the watchlist is full ({self.max_symbols} symbols); remove one first")
        try:
            info = self.lookup(source, symbol)
        except UnknownSymbol as exc:
            raise WatchlistError(str(exc)) from None
        except SourceError as exc:
            raise WatchlistError(f"could not check {symbol} with {source}: {exc}") from None
        entry = Entry(
            symbol=symbol,
            source=source,
            name=info.name,
            exchange=info.exchange,
            currency=info.currency,
            timezone=info.timezone,
        )
        self.collection.insert_one({"_id": symbol, **asdict(entry)})
        return entry

    def remove(self, symbol: str) -> bool:
        return self.collection.delete_one({"_id": symbol}).deleted_count == 1

    def update(self, symbol: str, *, enabled: bool | None = None, source: str | None = None) -> None:
        changes: dict[str, bool | str] = {}
        if enabled is not None:
            changes["enabled"] = bool(enabled)
        if source is not None:
            if source not in SOURCES:
                raise WatchlistError(f"unknown source {source!r}; choose one of {', '.join(SOURCES)}")
            try:
                self.lookup(source, symbol)
            except (UnknownSymbol, SourceError) as exc:
                raise WatchlistError(f"{source} cannot serve {symbol}: {exc}") from None
            changes["source"] = source
        if changes and not self.collection.update_one({"_id": symbol}, {"$set": changes}).matched_count:
            raise WatchlistError(f"{symbol} is not on the watchlist")

    # -- import / export ------------------------------------------------------------------------------
    def export_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["symbol", "source", "enabled"])
        for e in self.entries():
            writer.writerow([e.symbol, e.source, str(e.enabled).lower()])
        return buf.getvalue()

    def import_rows(self, rows: list[tuple[str, str, bool]]) -> tuple[list[Entry], dict[str, str]]:
        added, errors = [], {}
        for symbol, source, enabled in rows:
            try:
                entry = self.add(symbol, source)
                if not enabled:
                    self.update(entry.symbol, enabled=False)
                    entry.enabled = False
                added.append(entry)
            except WatchlistError as exc:
                errors[symbol] = str(exc)
        return added, errors
