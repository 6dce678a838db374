"""Reading CSV files as people and other tools save them (Excel, MetaTrader, Stooq, Yahoo, our export).

One place for what a CSV can look like; the watchlist import and the CSV replay source both read
through it.

Guarantees:
- ``read_table(text)`` strips a UTF-8 byte-order mark, accepts LF, CRLF and CR line ends, and sniffs
  the delimiter among ``,`` ``;`` tab and ``|`` with the standard library's ``csv.Sniffer`` (limited
  to those four), checked against the rows: a delimiter is taken only if it splits the header and
  the rows alike. A file it cannot split consistently raises ``DialectError`` naming what it saw
  (delimiter, fields per row, line numbers), never returns garbled columns.
- Decimal commas (``1,0842`` in a ``;``-separated file, German/French Excel) are detected per file
  and ``number()`` reads them; a comma-separated file cannot carry unquoted decimal commas (that is
  the refusal above).
- Every row keeps its 1-based physical line number in the file (the header is line 1), for messages.
- ``DateReader`` reads dates in the common shapes: ISO ``2024-03-05``, MetaTrader ``2024.03.05``,
  compact ``20240305``, dotted day-first ``05.03.2024`` (German), slashed ``03/05/2024`` (month first,
  unless a day above 12 anywhere in the column shows the file is day first), with an optional time
  (``18:49``, ``18:49:30``, ISO ``T``/offset forms) in the same cell or a separate one. Parsing uses
  ``python-dateutil`` with the day/month order fixed per file, so one file never mixes the two.
  Errors are ``ValueError`` with a sentence naming the text.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time

from dateutil import parser as dateparser

DELIMITERS = ",;\t|"
NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
DECIMAL_COMMA = re.compile(r"^[-+]?\d{1,3}(\.\d{3})*,\d+$|^[-+]?\d+,\d+$")
DATE_ONLY = (
    re.compile(r"^\d{4}[-./]\d{1,2}[-./]\d{1,2}$"),  # 2024-03-05, 2024.03.05, 2024/03/05
    re.compile(r"^\d{1,2}[-./]\d{1,2}[-./]\d{2,4}$"),  # 05.03.2024, 03/05/2024, 05-03-2024
    re.compile(r"^\d{8}$"),  # 20240305
    re.compile(  # 04-Mar-2024, 4-mar-24 (Excel's dd-mmm-yyyy)
        r"^\d{1,2}[-./ ](jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[-./ ]\d{2,4}$", re.IGNORECASE
    ),
)
#: A number as people and spreadsheets write it: 180.10, -2.5%, 1e6, 1,500,000, 1'500'000 (Swiss),
#: 1.500.000 (German thousands); ``DECIMAL_COMMA`` adds 1,0842 and 1.500,25.
NUMBER = re.compile(r"^[-+]?(\d[\d,']*(\.\d*)?|\.\d+|\d{1,3}(\.\d{3})+)([eE][-+]?\d+)?%?$")
#: Header names of a symbol column, as ``column_key`` gives them (the watchlist import and the CSV replay).
SYMBOL_COLUMNS = ("symbol", "ticker")
#: Header names of price-history columns by what they mean, as ``column_key`` gives them: what the CSV
#: replay reads (Yahoo, Stooq, MetaTrader's ``<DATE>``, our own export).
BAR_COLUMNS: dict[str, tuple[str, ...]] = {
    "ts": ("ts", "timestamp", "datetime", "date/time"),
    "date": ("date", "day"),
    "time": ("time",),
    "open": ("open",),
    "high": ("high",),
    "low": ("low",),
    "close": ("close", "last", "price"),
    "volume": ("volume", "vol", "tickvol", "tickvolume"),
    "interval": ("interval",),
    "session": ("session",),
}
#: Every header name that says "price history": ``BAR_COLUMNS`` and columns nobody here reads
#: (Yahoo's ``Adj Close``, a ``Change`` column), as ``column_key`` gives them.
PRICE_COLUMNS = frozenset(a for names in BAR_COLUMNS.values() for a in names) | {"adjclose", "change"}
YEAR_LAST = re.compile(r"^(\d{1,2})([-./])(\d{1,2})\2(\d{2,4})")


class DialectError(ValueError):
    """The text is not a CSV this project can split into the same columns on every row; ``str(exc)``
    names the dialect that was seen."""


@dataclass
class Table:
    """A CSV split into cells: ``header`` (stripped cell texts of the first row), ``rows`` as
    (line number, cells) without blank lines, the ``delimiter`` and whether numbers use a decimal
    comma (``decimal_comma``)."""

    header: list[str]
    rows: list[tuple[int, list[str]]] = field(default_factory=list)
    delimiter: str = ","
    decimal_comma: bool = False

    @property
    def dialect(self) -> str:
        """For people: "semicolon-separated, decimal comma"."""
        return f"{NAMES.get(self.delimiter, repr(self.delimiter))}-separated" + (
            ", decimal comma" if self.decimal_comma else ""
        )

    def number(self, text: str) -> float:
        """The float in ``text`` (decimal comma if the file uses one); ``ValueError`` if none."""
        return number(text, self.decimal_comma)


def number(text: str, decimal_comma: bool = False) -> float:
    """``"1,0842"`` (decimal comma, ``.`` as thousands separator) or ``"1.0842"`` as a float.
    Raises ``ValueError`` for anything that is not a finite-looking number."""
    if not decimal_comma:
        try:
            return float(text)  # the common case first
        except ValueError:
            pass
    text = text.strip().replace("\u00a0", "").replace(" ", "")
    if decimal_comma and "," in text:
        text = text.replace(".", "").replace(",", ".")
    return float(text)


def decode(data: bytes) -> str:
    """Bytes of an uploaded file as text: UTF-8 (with or without BOM), else Windows-1252 (what Excel
    writes for "CSV" on Western Windows), which maps every byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


def _split(text: str, delimiter: str) -> list[tuple[int, list[str]]]:
    out = []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    line = 1
    for cells in reader:
        if any(c.strip() for c in cells):
            out.append((line, cells))
        line = reader.line_num + 1
    return out


def read_table(text: str) -> Table:
    """Split ``text`` (BOM and any line ends allowed) into a ``Table``; the first non-blank row is
    the header. Raises ``DialectError`` when no delimiter splits the rows consistently (see module
    docstring) and for text without any row."""
    text = text.removeprefix("\ufeff")
    sample = "\n".join(text.splitlines()[:50])
    if not sample.strip():
        raise DialectError("the file is empty")
    candidates: list[str] = []
    try:
        candidates.append(csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter)
    except csv.Error:
        pass  # the sniffer found no consistent delimiter: try each candidate below
    first = sample.splitlines()[0] if sample.splitlines() else ""
    candidates += sorted((d for d in DELIMITERS if d not in candidates), key=lambda d: -first.count(d))
    seen: list[str] = []
    single: Table | None = None  # one column for every delimiter: a plain list (taken if nothing splits)
    for delimiter in candidates:
        try:
            rows = _split(text, delimiter)
        except csv.Error as exc:
            seen.append(f"{NAMES[delimiter]}-separated: {exc}")
            continue
        if not rows:
            raise DialectError("the file has no rows")
        width = len(rows[0][1])
        if width == 1 and all(len(c) == 1 for _, c in rows):
            single = single or Table(header=[rows[0][1][0].strip()], rows=rows[1:], delimiter=delimiter)
            continue  # one column: maybe another delimiter splits it
        uneven = [line for line, cells in rows[1:] if len(cells) != width]
        if uneven and width > 1:
            widths = sorted({len(c) for _, c in rows[1:] if len(c) != width})
            seen.append(
                f"{NAMES[delimiter]}-separated with {width} header fields but "
                f"{'/'.join(map(str, widths))} fields on lines {', '.join(map(str, uneven[:5]))}"
                f"{' …' if len(uneven) > 5 else ''}"
            )
            continue
        table = Table(header=[c.strip() for c in rows[0][1]], rows=rows[1:], delimiter=delimiter)
        if delimiter != ",":
            table.decimal_comma = any(DECIMAL_COMMA.match(c.strip()) for _, cells in rows[1:] for c in cells)
        return table
    if single is not None and not seen:
        return single
    hint = (
        " (decimal commas in a comma-separated file? Save it separated by semicolons, or quote the numbers)"
        if any(s.startswith("comma") for s in seen) and re.search(r"\d,\d", text)
        else ""
    )
    raise DialectError(
        "cannot split the file into the same columns on every row: "
        + "; ".join(seen or ["no delimiter"])
        + hint
    )


def column_key(name: str) -> str:
    """A header cell as a key: case, spaces, underscores and MetaTrader's ``<DATE>`` brackets dropped
    (``" <Adj_Close> "`` gives ``"adjclose"``)."""
    return re.sub(r"[\s_]+", "", name.strip().strip("<>").lower())


def is_date_only(text: str) -> bool:
    """True when ``text`` is a calendar date without a time of day (any shape ``DateReader`` reads,
    Excel's ``04-Mar-2024`` included)."""
    text = text.strip()
    return len(text) <= 11 and any(p.match(text) for p in DATE_ONLY)


def is_number(text: str) -> bool:
    """True when ``text`` (stripped) is a number in any way of writing one this module knows
    (``NUMBER``, ``DECIMAL_COMMA``), whatever the file's decimal mark; tickers with digits (7203.T,
    0700.HK, BRK-B) are not numbers."""
    text = text.strip()
    return bool(NUMBER.match(text) or DECIMAL_COMMA.match(text))


class DateReader:
    """Reads one file's date (and time) cells with one day/month order for the whole file.

    ``DateReader(sample)`` looks at the column's texts: slashed or dashed dates with the year last
    are month first (US, Excel en-US) unless one of them has a first part above 12; dotted ones
    (``05.03.2024``) are day first. ``parse(text)`` returns a naive ``datetime`` (or an aware one when
    the text has an offset) and raises ``ValueError`` with a sentence naming the text.
    """

    def __init__(self, sample: list[str]):
        self._days: dict[str, date] = {}
        self.dayfirst_slash = False
        for text in sample:
            m = YEAR_LAST.match(text.strip())
            if m and m.group(2) != "." and int(m.group(1)) > 12:
                self.dayfirst_slash = True
                break

    def parse_pair(self, day: str, clock: str) -> datetime:
        """A date cell and a separate time cell (``18:49``, ``18:49:30``) as one naive datetime; the
        date part is parsed once per distinct text (a file of minutes repeats each date ~1,000 times)."""
        parsed = self._days.get(day)
        if parsed is None:
            parsed = self._days[day] = self.parse(day).date()
        try:
            return datetime.combine(parsed, time.fromisoformat(clock.strip()))
        except ValueError:
            return self.parse(f"{day} {clock}")

    def parse(self, text: str) -> datetime:
        text = text.strip()
        m = YEAR_LAST.match(text)
        dayfirst = bool(m) and (m.group(2) == "." or self.dayfirst_slash) if m else False
        if not m and len(text) >= 10 and text[4] == "-":
            try:
                return datetime.fromisoformat(text)  # the common case, ~50x faster than dateutil
            except ValueError:
                pass
        try:
            if re.fullmatch(r"\d{8}", text):
                return datetime.combine(
                    date(int(text[:4]), int(text[4:6]), int(text[6:])), datetime.min.time()
                )
            return dateparser.parse(text, dayfirst=dayfirst, yearfirst=not m)
        except (ValueError, OverflowError, dateparser.ParserError):
            raise ValueError(f"{text!r} is not a date or time this reader knows") from None
