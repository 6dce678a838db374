"""The watchlist, kept in MongoDB: which symbols the producer fetches, from which source.

Guarantees:
- A symbol is added only after its format passed ``pipeline.usertext.parse_symbol`` (ASCII only, at
  least one letter or digit, the entry quoted clipped in the refusal) and its source confirmed it
  (``lookup``); every refusal is a ``WatchlistError`` with a sentence a user can act on.
- Duplicates are refused, not merged; the list never grows past ``max_symbols``.
- Changes are visible to the running producer on its next run (it reads the list every time).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime

from .config import SOURCES
from .models import InvalidEvent, to_utc, utcnow
from .sources import SymbolInfo, UnknownSymbol
from .sources.base import SourceError
from .usertext import parse_symbol

FIELDS = ("symbol", "source", "enabled", "name", "exchange", "currency", "timezone", "added_at")


class WatchlistError(ValueError):
    """A watchlist change was refused; ``str(exc)`` says why and what to do."""


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

    def seed(self, symbols: Iterable[str], source: str) -> int:
        """Fill an empty watchlist on first start (no lookups: the defaults are known good)."""
        if self.collection.estimated_document_count():
            return 0
        n = 0
        for i, symbol in enumerate(symbols):
            doc = asdict(Entry(symbol=symbol, source=source))
            doc["added_at"] = utcnow().replace(microsecond=i * 1000)
            self.collection.update_one({"_id": symbol}, {"$setOnInsert": doc}, upsert=True)
            n += 1
        return n

    def add(self, text: str, source: str) -> Entry:
        try:
            symbol = parse_symbol(text)
        except InvalidEvent as exc:
            raise WatchlistError(exc.reason) from None
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
        changes = {}
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

    @staticmethod
    def parse_import(text: str, default_source: str) -> list[tuple[str, str, bool]]:
        """Read 'AAPL, MSFT' or a CSV with a symbol[,source[,enabled]] header into rows."""
        rows: list[tuple[str, str, bool]] = []
        lines = [ln for ln in text.splitlines() if ln.strip()]
        if lines and lines[0].lower().replace(" ", "").startswith("symbol"):
            for rec in csv.DictReader(io.StringIO("\n".join(lines))):
                rec = {k.strip().lower(): (v or "").strip() for k, v in rec.items() if k}
                enabled = rec.get("enabled", "true").lower() not in ("false", "0", "no")
                rows.append((rec.get("symbol", ""), rec.get("source") or default_source, enabled))
        else:
            for token in text.replace(",", " ").split():
                rows.append((token, default_source, True))
        return rows

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
