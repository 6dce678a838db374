"""Turning ``st.data_editor`` edits of the watchlist into watchlist changes.

Guarantees:
- ``apply_edits`` applies one editor state (``edited_rows``, ``added_rows``, ``deleted_rows``, indices
  into the frame that was shown) through ``runtime.add_symbol`` / ``runtime.watchlist`` only, so every
  rule of ``pipeline.watchlist`` holds (format, lookup with the source, duplicates, the size cap) and
  the running producer sees the change on its next run.
- ``Outcome.messages`` gives at most one error message however many rows were refused: the rows
  listed one a line (entries clipped to ``pipeline.usertext.ECHO_LIMIT`` characters), at most
  ``MAX_LISTED`` of them. The text is plain: the page shows it literally (``ui.format.literal``).
- A row that could not be added is not lost: it comes back as a *pending* row carrying the reason
  (unknown ticker, bad format, duplicate, ...), shown inline in the table until it is fixed or deleted.
- A new row without a ticker yet is not a change: ``actionable`` says whether a state holds anything
  to apply, so the page can leave the editor alone while the user is still typing.
- Renaming a stored row adds the new ticker first and removes the old one only if that worked.
- An import's rows that were not added (refused by the watchlist, or skipped when the file was read)
  are one message: ``Outcome.rejected`` lists them by line, and ``messages`` turns them into a single
  ``("rows", listing)`` entry that the page shows as plain text (never Markdown).
- A ticker added, or switched to a source, although that source does not know it
  (``pipeline.sources.registry.knows`` is False: the simulator outside its catalogue invents its
  prices) is never announced as a success: it is in ``Outcome.unknown`` (or ``unknown_changed``) and
  ``messages`` gives one ``warning`` per source naming all of them, from the editor or an import
  alike, the source named by ``registry.label`` and an addition's warning ending as its success
  would (backfilling, or the pipeline is stopped).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from pipeline.sources.registry import knows, label
from pipeline.usertext import clip
from pipeline.watchlist import ImportPlan, WatchlistError

#: At most this many refusals are listed in the one grouped message; the rest are counted.
MAX_LISTED = 20

COLUMNS = ["symbol", "source", "enabled", "name", "exchange", "currency", "market", "backfill", "status"]


@dataclass
class Outcome:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    pending: list[dict] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)  # import rows not added: "line 3: ORCL: reason"
    unknown: dict[str, str] = field(default_factory=dict)  # added, but their source invents their prices
    unknown_changed: dict[str, str] = field(default_factory=dict)  # switched to a source that invents them

    def note_added(self, entry) -> None:
        """Count a watchlist ``Entry`` just added: in ``added``, and in ``unknown`` (symbol: source)
        too when its source does not know the ticker (``registry.knows`` is False)."""
        self.added.append(entry.symbol)
        if knows(entry.source, entry.symbol) is False:
            self.unknown[entry.symbol] = entry.source

    def note_changed(self, symbol: str, source: str | None = None) -> None:
        """Count a stored row changed: in ``changed``, and in ``unknown_changed`` too when it was
        switched to ``source`` and that source does not know the ticker."""
        self.changed.append(symbol)
        if source is not None and knows(source, symbol) is False:
            self.unknown_changed[symbol] = source

    def messages(self, backfilling: bool = True) -> list[tuple[str, str]]:
        """(kind, text) to show: kind ``success``/``warning``/``error`` (text of our own, Markdown
        allowed) or ``rows`` (text is the listing of rejected import rows, one per line: show it
        literally). Tickers in ``unknown`` / ``unknown_changed`` are named in one warning per source
        ("Added X; history is being backfilled. The simulator does not know this ticker, ..."),
        never in the success."""
        out = []
        known = [s for s in self.added if s not in self.unknown]
        then = (
            "; history is being backfilled."
            if backfilling
            else " (the pipeline is stopped: start it on the Overview page to fetch prices)."
        )
        if known:
            out.append(("success", f"Added {', '.join(known)}{then}"))
        for source, symbols in _by_source(self.unknown).items():
            out.append(("warning", f"Added {', '.join(symbols)}{then} {_invented(source, len(symbols))}"))
        if self.removed:
            out.append(("success", f"Removed {', '.join(self.removed)}."))
        plain = [s for s in self.changed if s not in self.unknown_changed]
        if plain:
            out.append(("success", f"Updated {', '.join(plain)}."))
        for source, symbols in _by_source(self.unknown_changed).items():
            out.append(("warning", f"Updated {', '.join(symbols)}. {_invented(source, len(symbols))}"))
        refusals = [f"{clip(symbol) or 'New row'}: {reason}" for symbol, reason in self.errors.items()]
        if len(refusals) == 1:
            out.append(("error", refusals[0]))
        elif refusals:  # one grouped message, never one box per row
            listed = refusals[:MAX_LISTED]
            more = len(refusals) - len(listed)
            out.append(
                (
                    "error",
                    f"{len(refusals)} rows were not added:\n"
                    + "\n".join(listed)
                    + (f"\n…and {more} more" if more else ""),
                )
            )
        if self.rejected:
            out.append(("rows", "\n".join(self.rejected)))
        return out


def _by_source(unknown: dict[str, str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for symbol, source in unknown.items():
        out.setdefault(source, []).append(symbol)
    return out


def _invented(source: str, n: int) -> str:
    """The warning's sentence for ``n`` tickers ``source`` does not know (it invents their prices)."""
    return (
        f"{label(source)} does not know "
        + ("this ticker, so its" if n == 1 else "these tickers, so their")
        + " prices are invented; check the spelling, or pick a real source on this page."
    )


def backfill_status(doc: dict | None) -> tuple[float | None, str]:
    """Progress in percent (None when idle) and a short status text for one backfill record ("✓ saved"
    when nothing is wrong or under way: short, since the Status column comes early in the editor)."""
    if not doc:
        return None, "✓ saved"
    status, done, total = doc.get("status"), doc.get("done") or 0, doc.get("total") or 0
    if status in ("queued", "running"):
        pct = 100.0 * done / total if total else 0.0
        return pct, f"⏳ backfilling ({done}/{total})" if total else "⏳ backfill queued"
    if status == "failed":
        return 100.0, f"⚠️ backfill failed: {doc.get('error') or 'no data'}"
    return 100.0, "✓ saved"


def frame(
    entries: list, backfills: dict[str, dict], pending: list[dict], markets: dict[str, str] | None = None
) -> pd.DataFrame:
    """The editor's rows: the entries, then the refused rows still pending; ``markets`` maps a symbol
    to its market badge (``ui.markets.compact``), shown read-only."""
    rows = []
    for e in entries:
        progress, text = backfill_status(backfills.get(e.symbol))
        rows.append(
            {
                "symbol": e.symbol,
                "source": e.source,
                "enabled": bool(e.enabled),
                "name": e.name,
                "exchange": e.exchange,
                "currency": e.currency,
                "market": (markets or {}).get(e.symbol, ""),
                "backfill": progress,
                "status": text,
            }
        )
    for p in pending:
        rows.append(
            {
                "symbol": p.get("symbol") or None,
                "source": p.get("source"),
                "enabled": p.get("enabled", True),
                "name": "",
                "exchange": "",
                "currency": "",
                "market": "",
                "backfill": None,
                "status": f"❌ not added: {p['problem']}",
            }
        )
    out = pd.DataFrame(rows, columns=COLUMNS)
    out["enabled"] = out["enabled"].astype(bool)
    out["backfill"] = pd.to_numeric(out["backfill"], errors="coerce").astype(float)
    return out


def _clean(value) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    return str(value).strip()


def actionable(state: dict) -> bool:
    """True when an editor state holds a change to apply (an empty new row is not one)."""
    return bool(
        state.get("edited_rows")
        or state.get("deleted_rows")
        or any(_clean(r.get("symbol")) for r in state.get("added_rows") or [])
    )


def apply_edits(runtime, shown: pd.DataFrame, n_stored: int, state: dict, default_source: str) -> Outcome:
    """Apply an editor state to the watchlist. Rows ``0..n_stored-1`` of ``shown`` are stored entries,
    the rest are pending rows."""
    out = Outcome()
    watchlist = runtime.watchlist
    deleted = {int(i) for i in state.get("deleted_rows", [])}
    edited = {int(i): changes for i, changes in (state.get("edited_rows") or {}).items()}
    to_add: list[dict] = []

    for i in sorted(deleted):
        if i < n_stored:
            symbol = shown.iloc[i]["symbol"]
            if watchlist.remove(symbol):
                out.removed.append(symbol)
    for i, changes in sorted(edited.items()):
        if i in deleted or i >= len(shown):
            continue
        row = shown.iloc[i].to_dict()
        if i >= n_stored:  # a pending row that was fixed: try again with the new values
            to_add.append({**row, **changes})
            continue
        symbol = row["symbol"]
        new_symbol = _clean(changes.get("symbol", symbol))
        if new_symbol.isascii():  # never upper-case non-ASCII here: "ﬁ".upper() is "FI" (refused on add)
            new_symbol = new_symbol.upper()
        try:
            if new_symbol and new_symbol != symbol:
                entry = runtime.add_symbol(new_symbol, changes.get("source", row["source"]))
                if not changes.get("enabled", row["enabled"]):
                    watchlist.update(entry.symbol, enabled=False)
                watchlist.remove(symbol)
                out.note_added(entry)
                out.removed.append(symbol)
                continue
            switched = "source" in changes and changes["source"] != row["source"]
            if switched:
                watchlist.update(symbol, source=changes["source"])
            if "enabled" in changes and bool(changes["enabled"]) != bool(row["enabled"]):
                watchlist.update(symbol, enabled=bool(changes["enabled"]))
            if changes:
                out.note_changed(symbol, changes["source"] if switched else None)
        except WatchlistError as exc:
            out.errors[new_symbol or symbol] = str(exc)
    for i in range(n_stored, len(shown)):  # pending rows not edited or deleted stay pending as they were
        if i not in deleted and i not in edited:
            row = shown.iloc[i].to_dict()
            out.pending.append(
                {
                    "symbol": _clean(row["symbol"]),
                    "source": row["source"],
                    "enabled": row["enabled"],
                    "problem": str(row["status"]).removeprefix("❌ not added: "),
                }
            )
    to_add.extend(state.get("added_rows") or [])

    for row in to_add:
        text = _clean(row.get("symbol"))
        source = _clean(row.get("source")) or default_source
        enabled = row.get("enabled")
        enabled = True if enabled is None else bool(enabled)
        if not text:
            continue  # an empty new row is not a change (yet)
        try:
            entry = runtime.add_symbol(text, source)
            if not enabled:
                watchlist.update(entry.symbol, enabled=False)
            out.note_added(entry)
        except WatchlistError as exc:
            out.errors[text] = str(exc)
            out.pending.append({"symbol": text, "source": source, "enabled": enabled, "problem": str(exc)})
    return out


SHOWN_CHARS = 40  # of a row's own text in the rejected listing
REASON_CHARS = 200  # of a reason (a refusal may quote what was typed)


def _short(text: str, limit: int = SHOWN_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def import_rows(runtime, plan: ImportPlan) -> Outcome:
    """Add the rows of an import plan one by one (format, source lookup, duplicates and the size
    cap as for any addition). Each row not added, skipped when reading or refused now, becomes one
    line of ``Outcome.rejected`` ("line 3: ORCL: reason"), in file order."""
    out = Outcome()
    rejected = [
        (line, f"line {line}: {_short(text)}: {_short(reason, REASON_CHARS)}")
        for line, text, reason in plan.skipped
    ]
    for row in plan.rows:
        try:
            entry = runtime.add_symbol(row.symbol, row.source)
            if not row.enabled:
                runtime.watchlist.update(entry.symbol, enabled=False)
                entry.enabled = False
            out.note_added(entry)
        except WatchlistError as exc:
            rejected.append(
                (row.line, f"line {row.line}: {_short(row.symbol)}: {_short(str(exc), REASON_CHARS)}")
            )
    out.rejected = [text for _, text in sorted(rejected, key=lambda r: r[0])]
    return out
