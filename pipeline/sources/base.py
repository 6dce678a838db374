"""The one small interface every market-data source implements.

Guarantees (every source):
- ``fetch(symbols)`` never raises for a per-symbol problem: it returns the valid events it got and,
  per failed symbol, a short reason (``FetchResult.errors``). Only programming errors escape.
- Every returned event has passed ``pipeline.models.validate``.
- No call blocks longer than the source's configured timeout.
- ``lookup(symbol)`` raises ``UnknownSymbol`` (with a reason a user can read) for a ticker the
  source does not know, and returns its name/exchange/currency/time zone otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from ..markets.calendars import SymbolInfo
from ..models import InvalidEvent, PriceEvent, normalize_symbol, to_utc, validate


class UnknownSymbol(LookupError):
    """The source does not know this ticker; ``str(exc)`` is a sentence for the user."""


class SourceError(RuntimeError):
    """The source as a whole failed (down, throttled, out of budget); the message says why."""


@dataclass
class FetchResult:
    events: list[PriceEvent] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    #: what the source repaired in the provider's answer before publishing it, one dict per bar
    #: (``pipeline.repairs``; the producer stores them in the ``repairs`` collection)
    repairs: list[dict] = field(default_factory=list)
    #: the splits and dividends the provider's answer carried (``pipeline.corporate_actions``)
    actions: list[dict] = field(default_factory=list)

    def extend(self, other: FetchResult) -> FetchResult:
        self.events.extend(other.events)
        self.errors.update(other.errors)
        self.repairs.extend(other.repairs)
        self.actions.extend(other.actions)
        return self

    def symbols(self, raw: Sequence[str]) -> list[str]:
        """Normalised, de-duplicated symbols in order; a malformed one becomes an error here."""
        wanted: list[str] = []
        for text in raw:
            try:
                symbol = normalize_symbol(text)
            except InvalidEvent as exc:
                self.errors[str(text)] = exc.reason
                continue
            if symbol not in wanted:
                wanted.append(symbol)
        return wanted

    def backfill_args(self, symbol: str, start, end) -> tuple[str, datetime, datetime] | None:
        """Normalise a backfill request's symbol and range (UTC); None, with the reason kept, if invalid."""
        try:
            return normalize_symbol(symbol), to_utc(start, "start"), to_utc(end, "end")
        except InvalidEvent as exc:
            self.errors[str(symbol)] = exc.reason
            return None

    def add_checked(self, candidates: Iterable[dict | PriceEvent], symbol: str | None = None) -> None:
        """Validate candidates; keep the valid ones, record the first reason per bad symbol."""
        for raw in candidates:
            try:
                self.events.append(validate(raw))
            except InvalidEvent as exc:
                sym = symbol or (raw.get("symbol") if isinstance(raw, dict) else getattr(raw, "symbol", "?"))
                self.errors.setdefault(str(sym), f"invalid data: {exc.reason}")


class Source(Protocol):
    #: short name stored in each event's ``source`` field and shown in health
    name: str

    def fetch(self, symbols: Sequence[str]) -> FetchResult:
        """Latest data for the live view: ticks and/or the newest (possibly still forming) 1m bars."""

    def backfill(self, symbol: str, start: datetime, end: datetime, interval: str) -> FetchResult:
        """History for ``symbol`` between ``start`` and ``end`` (UTC) as bars of ``interval``."""

    def lookup(self, symbol: str) -> SymbolInfo:
        """Check a ticker; raise ``UnknownSymbol`` with a reason if the source does not know it."""

    def health(self) -> dict:
        """A JSON-able snapshot: last error, request budget left, backoff state, and so on."""


@runtime_checkable
class StreamingSource(Source, Protocol):
    """A source that also pushes prices as they trade (Yahoo's streamer). ``attach(publish,
    dead_letter)`` starts its listener: ticks go to ``publish(events) -> acknowledged count`` as they
    arrive, frames it cannot read to ``dead_letter(raw, reason)``; it is idempotent. ``stop()`` closes
    the connection and ends its threads (what is queued is published first). The producer checks this
    capability with ``isinstance(source, StreamingSource)``."""

    def attach(
        self, publish: Callable[[Sequence[PriceEvent]], int], dead_letter: Callable[[bytes, str], None]
    ) -> None: ...

    def stop(self, timeout_s: float = 5.0) -> None: ...
