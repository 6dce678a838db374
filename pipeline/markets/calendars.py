"""Which market a symbol trades on, its sessions from real exchange calendars, and its status now.

Guarantees:
- ``market_for(symbol, timezone=None, currency=None, exchange=None)`` never raises for a valid
  symbol. A Yahoo suffix (``.L`` -> XLON, ``.T`` -> XTKS, ``.DE`` -> XETR ...) or an index (``^GSPC``
  -> XNYS, ``^N225`` -> XTKS ...) gets its exchange's ISO MIC (``MICS``/``INDICES``); an FX pair
  (``=X``) trades 24/5 (Sunday 17:00 to Friday 17:00 New York, the interbank week); a crypto pair
  (``BTC-USD`` ...) trades 24/7; anything else is a US listing on the NYSE/Nasdaq calendar (XNYS).
  What the provider says about the listing (its metadata's time zone, currency, exchange name)
  wins over the table; the table is only the fallback and the simulated/CSV sources' knowledge.
- Sessions come from ``exchange_calendars`` (holidays, half days, lunch breaks, DST). A calendar is
  built lazily, once per (MIC, year) for that year +-1 (``calendar_window``), and kept (at most
  ``MAX_TABLES``). A calendar that fails to build falls back to fixed weekday hours from the table;
  the reason is logged once and listed by ``fixed_hours_reasons()``.
  ``warm(markets)`` builds them ahead of the first lookup (the runtime does it at start, off the
  page's path); a lookup that finds its table being built by another thread waits for that build
  (at most ``BUILD_WAIT_S``) instead of building it twice.
- ``market_status(market, at)`` says, at any instant, whether the market is open (and when it
  closes, early or not), in its lunch break (and when it resumes), closed (holiday or not, and when it
  next opens), in pre-market / after-hours (US listings, only where the provider serves those bars),
  or open around the clock. A lookup is a binary search in a cached table: microseconds, no pandas.
- ``day_start_utc(date, tz)`` is the one convention every source uses for daily and weekly bars:
  the bar's ``ts`` is local midnight of the session date at the exchange, expressed in UTC.
- ``session_date(ts, tz)`` is the exchange's date of an instant; ``day_key(date)`` is how the bar
  builder stores a daily bar (UTC midnight of the session date). A source's daily bar (local
  midnight) and the roll-up of that date's intraday bars get the same key, never the next day's.
"""

from __future__ import annotations

import logging
import threading
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

log = logging.getLogger(__name__)

Hours = Literal["exchange", "24/5", "24/7"]
State = Literal["open", "break", "closed", "pre", "post", "24/7"]


@dataclass(frozen=True)
class SymbolInfo:
    """A listing: its symbol, display name, exchange name, quote currency (ISO code or a minor unit
    such as ``GBp``) and IANA time zone, as a source's ``lookup`` or ``symbol_info`` tells it."""

    symbol: str
    name: str = ""
    exchange: str = ""
    currency: str = "USD"
    timezone: str = "America/New_York"


@dataclass(frozen=True)
class Market:
    """A market: its name, quote currency, IANA time zone and how it trades.

    ``mic`` names the ``exchange_calendars`` calendar (ISO 10383 MIC, e.g. ``XNYS``); ``open``/``close``
    are the regular local hours used when that calendar cannot be built. ``hours`` is ``exchange``
    (calendar sessions), ``24/5`` (FX) or ``24/7`` (crypto).
    """

    exchange: str
    currency: str
    timezone: str
    open: time = time(9, 30)
    close: time = time(16, 0)
    mic: str | None = None
    hours: Hours = "exchange"
    #: Yahoo serves pre-market and after-hours bars for this market (US listings)
    extended: bool = False

    @property
    def always_open(self) -> bool:
        """Trades around the clock every day (crypto)."""
        return self.hours == "24/7"

    @property
    def session_seconds(self) -> float:
        """Length of the fixed regular session, s (86400 for 24/5 and 24/7 markets)."""
        if self.hours != "exchange":
            return 86400.0
        start = self.open.hour * 3600 + self.open.minute * 60
        end = self.close.hour * 3600 + self.close.minute * 60
        return float(end - start)


def _m(mic: str, name: str, currency: str, tz: str, o: time, c: time) -> Market:
    return Market(name, currency, tz, o, c, mic=mic)


#: ISO MIC -> the market (fixed hours are the fallback when the calendar cannot be built).
MARKETS: dict[str, Market] = {
    m.mic or "": m
    for m in (
        replace(_m("XNYS", "NYSE/NASDAQ", "USD", "America/New_York", time(9, 30), time(16)), extended=True),
        _m("XTSE", "Toronto Stock Exchange", "CAD", "America/Toronto", time(9, 30), time(16)),
        _m("XMEX", "Bolsa Mexicana de Valores", "MXN", "America/Mexico_City", time(8, 30), time(15)),
        _m("BVMF", "B3 Sao Paulo", "BRL", "America/Sao_Paulo", time(10), time(17)),
        _m("XBUE", "Bolsa de Buenos Aires", "ARS", "America/Argentina/Buenos_Aires", time(11), time(17)),
        _m("XSGO", "Santiago Stock Exchange", "CLP", "America/Santiago", time(9, 30), time(16)),
        _m("XLON", "London Stock Exchange", "GBp", "Europe/London", time(8), time(16, 30)),
        _m("XDUB", "Euronext Dublin", "EUR", "Europe/Dublin", time(8), time(16, 30)),
        _m("XETR", "XETRA", "EUR", "Europe/Berlin", time(9), time(17, 30)),
        _m("XFRA", "Frankfurt", "EUR", "Europe/Berlin", time(8), time(22)),
        _m("XPAR", "Euronext Paris", "EUR", "Europe/Paris", time(9), time(17, 30)),
        _m("XAMS", "Euronext Amsterdam", "EUR", "Europe/Amsterdam", time(9), time(17, 30)),
        _m("XBRU", "Euronext Brussels", "EUR", "Europe/Brussels", time(9), time(17, 30)),
        _m("XLIS", "Euronext Lisbon", "EUR", "Europe/Lisbon", time(8), time(16, 30)),
        _m("XMIL", "Borsa Italiana", "EUR", "Europe/Rome", time(9), time(17, 30)),
        _m("XMAD", "Bolsa de Madrid", "EUR", "Europe/Madrid", time(9), time(17, 30)),
        _m("XSWX", "SIX Swiss Exchange", "CHF", "Europe/Zurich", time(9), time(17, 30)),
        _m("XWBO", "Wiener Boerse", "EUR", "Europe/Vienna", time(9), time(17, 30)),
        _m("XSTO", "Nasdaq Stockholm", "SEK", "Europe/Stockholm", time(9), time(17, 30)),
        _m("XCSE", "Nasdaq Copenhagen", "DKK", "Europe/Copenhagen", time(9), time(17)),
        _m("XOSL", "Oslo Bors", "NOK", "Europe/Oslo", time(9), time(16, 20)),
        _m("XHEL", "Nasdaq Helsinki", "EUR", "Europe/Helsinki", time(10), time(18, 30)),
        _m("XWAR", "Warsaw Stock Exchange", "PLN", "Europe/Warsaw", time(9), time(17)),
        _m("XIST", "Borsa Istanbul", "TRY", "Europe/Istanbul", time(10), time(18)),
        _m("XJSE", "Johannesburg Stock Exchange", "ZAc", "Africa/Johannesburg", time(9), time(17)),
        _m("XTAE", "Tel Aviv Stock Exchange", "ILA", "Asia/Jerusalem", time(9, 59), time(17, 14)),
        _m("XTKS", "Tokyo Stock Exchange", "JPY", "Asia/Tokyo", time(9), time(15, 30)),
        _m("XHKG", "Hong Kong Stock Exchange", "HKD", "Asia/Hong_Kong", time(9, 30), time(16)),
        _m("XSHG", "Shanghai/Shenzhen Stock Exchange", "CNY", "Asia/Shanghai", time(9, 30), time(15)),
        _m("XKRX", "Korea Exchange", "KRW", "Asia/Seoul", time(9), time(15, 30)),
        _m("XTAI", "Taiwan Stock Exchange", "TWD", "Asia/Taipei", time(9), time(13, 30)),
        _m("XSES", "Singapore Exchange", "SGD", "Asia/Singapore", time(9), time(17)),
        _m("XBOM", "BSE/NSE India", "INR", "Asia/Kolkata", time(9, 15), time(15, 30)),
        _m("XKLS", "Bursa Malaysia", "MYR", "Asia/Kuala_Lumpur", time(9), time(17)),
        _m("XBKK", "Stock Exchange of Thailand", "THB", "Asia/Bangkok", time(10), time(16, 30)),
        _m("XIDX", "Indonesia Stock Exchange", "IDR", "Asia/Jakarta", time(9), time(15, 50)),
        _m("XASX", "Australian Securities Exchange", "AUD", "Australia/Sydney", time(10), time(16)),
        _m("XNZE", "New Zealand Exchange", "NZD", "Pacific/Auckland", time(10), time(16, 45)),
    )
}

#: Yahoo suffix -> MIC. Shenzhen (``.SZ``) shares Shanghai's holidays, NSE (``.NS``) BSE's.
SUFFIXES: dict[str, str] = {
    ".TO": "XTSE",
    ".V": "XTSE",
    ".MX": "XMEX",
    ".SA": "BVMF",
    ".BA": "XBUE",
    ".SN": "XSGO",
    ".L": "XLON",
    ".IL": "XLON",
    ".IR": "XDUB",
    ".DE": "XETR",
    ".F": "XFRA",
    ".PA": "XPAR",
    ".AS": "XAMS",
    ".BR": "XBRU",
    ".LS": "XLIS",
    ".MI": "XMIL",
    ".MC": "XMAD",
    ".SW": "XSWX",
    ".VI": "XWBO",
    ".ST": "XSTO",
    ".CO": "XCSE",
    ".OL": "XOSL",
    ".HE": "XHEL",
    ".WA": "XWAR",
    ".IS": "XIST",
    ".JO": "XJSE",
    ".TA": "XTAE",
    ".T": "XTKS",
    ".HK": "XHKG",
    ".SS": "XSHG",
    ".SZ": "XSHG",
    ".KS": "XKRX",
    ".KQ": "XKRX",
    ".TW": "XTAI",
    ".TWO": "XTAI",
    ".SI": "XSES",
    ".NS": "XBOM",
    ".BO": "XBOM",
    ".KL": "XKLS",
    ".BK": "XBKK",
    ".JK": "XIDX",
    ".AX": "XASX",
    ".NZ": "XNZE",
}

#: Index -> (MIC, currency of its points). Any other ``^`` index is taken to be a US one (XNYS).
INDICES: dict[str, tuple[str, str]] = {
    "^GSPC": ("XNYS", "USD"),
    "^DJI": ("XNYS", "USD"),
    "^IXIC": ("XNYS", "USD"),
    "^NDX": ("XNYS", "USD"),
    "^RUT": ("XNYS", "USD"),
    "^VIX": ("XNYS", "USD"),
    "^GSPTSE": ("XTSE", "CAD"),
    "^BVSP": ("BVMF", "BRL"),
    "^MXX": ("XMEX", "MXN"),
    "^FTSE": ("XLON", "GBP"),
    "^GDAXI": ("XETR", "EUR"),
    "^FCHI": ("XPAR", "EUR"),
    "^STOXX50E": ("XETR", "EUR"),
    "^AEX": ("XAMS", "EUR"),
    "^IBEX": ("XMAD", "EUR"),
    "^SSMI": ("XSWX", "CHF"),
    "^N225": ("XTKS", "JPY"),
    "^HSI": ("XHKG", "HKD"),
    "^KS11": ("XKRX", "KRW"),
    "^TWII": ("XTAI", "TWD"),
    "^STI": ("XSES", "SGD"),
    "^BSESN": ("XBOM", "INR"),
    "^NSEI": ("XBOM", "INR"),
    "^AXJO": ("XASX", "AUD"),
    "000001.SS": ("XSHG", "CNY"),
}

US = MARKETS["XNYS"]
FX = Market("CCY", "USD", "Europe/London", time(0), time(0), hours="24/5")
CRYPTO = Market("CCC", "USD", "UTC", time(0), time(0), hours="24/7")
CRYPTO_QUOTES = ("USD", "EUR", "GBP", "USDT", "USDC", "BTC", "ETH", "JPY")
#: The FX week: opens Sunday 17:00 and closes Friday 17:00 in New York (the interbank convention).
FX_ZONE, FX_TURN = ZoneInfo("America/New_York"), time(17)


@lru_cache(maxsize=4096)
def market_for(
    symbol: str, timezone: str | None = None, currency: str | None = None, exchange: str | None = None
) -> Market:
    """The market a (normalised) Yahoo-style symbol trades on; the provider's ``timezone``,
    ``currency`` and ``exchange`` (its chart metadata, stored with the watchlist entry) win when given
    (a time zone this machine does not know is logged and ignored)."""
    market = _from_symbol(symbol)
    if timezone:
        try:
            ZoneInfo(timezone)
        except Exception:  # a zone this machine's tzdata does not know: the table's, said once
            log.warning(
                "markets: %s: unknown time zone %r from the provider; using %s",
                symbol,
                timezone,
                market.timezone,
            )
            timezone = None
    if timezone or currency or exchange:
        return replace(
            market,
            timezone=timezone or market.timezone,
            currency=currency or market.currency,
            exchange=exchange or market.exchange,
        )
    return market


def _from_symbol(symbol: str) -> Market:
    if symbol in INDICES:
        mic, currency = INDICES[symbol]
        return replace(MARKETS[mic], currency=currency, extended=False)
    if symbol.startswith("^"):
        return replace(US, exchange="Index (US)", extended=False)
    if symbol.endswith("=X"):
        pair = symbol[:-2]
        quote = pair[3:6] if len(pair) == 6 else (pair[:3] if len(pair) == 3 else "USD")
        return replace(FX, currency=quote)
    if "-" in symbol:
        quote = symbol.rsplit("-", 1)[1]
        if quote in CRYPTO_QUOTES:
            return replace(CRYPTO, currency=quote)
    dot = symbol.rfind(".")
    if dot > 0:
        listed = SUFFIXES.get(symbol[dot:])
        if listed is not None:
            return MARKETS[listed]
    return US


def symbol_info(symbol: str, name: str = "") -> SymbolInfo:
    m = market_for(symbol)
    return SymbolInfo(symbol=symbol, name=name, exchange=m.exchange, currency=m.currency, timezone=m.timezone)


def day_start_utc(day: date, tz: str) -> datetime:
    """Local midnight of ``day`` at an exchange in time zone ``tz``, as an aware UTC datetime."""
    return datetime.combine(day, time(0), ZoneInfo(tz)).astimezone(UTC)


def session_date(ts: datetime, tz: str) -> date:
    """The calendar date at an exchange in time zone ``tz`` of the instant ``ts`` (aware): the session
    date a bar or tick belongs to (every calendar here keeps a session inside one local date)."""
    return ts.astimezone(ZoneInfo(tz)).date()


def day_key(day: date) -> datetime:
    """How the ``bars`` collection stores a session date: UTC midnight of that date (so a page that
    draws days on UTC dates shows the exchange's own date, east or west of UTC)."""
    return datetime.combine(day, time(0), UTC)


def session_fraction(ts: datetime, market: Market) -> float | None:
    """Where ``ts`` falls in the local fixed regular session, 0..1, or None outside it (any weekday);
    the position in the local day for 24/5 and 24/7 markets. For shaping simulated volume only."""
    local = ts.astimezone(ZoneInfo(market.timezone))
    seconds = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
    if market.hours != "exchange":
        return seconds / 86400.0
    start = market.open.hour * 3600 + market.open.minute * 60
    x = (seconds - start) / market.session_seconds
    return x if 0.0 <= x < 1.0 else None


# -- session tables ---------------------------------------------------------------------------------
#: Years either side of the requested instant's year that one calendar covers.
CALENDAR_YEARS = 1
#: Session tables kept (one per MIC and year): about 40 MICs x 3 years.
MAX_TABLES = 128


@dataclass(frozen=True)
class Table:
    """The sessions of one market over a window, as epoch seconds (UTC), sorted by open.

    ``breaks`` holds (start, end) or None per session; ``early`` the session dates that close early;
    ``holidays`` maps a weekday that is no session to its name ("" when the calendar gives none).
    """

    first: date
    last: date
    dates: list[date]
    opens: list[float]
    closes: list[float]
    breaks: list[tuple[float, float] | None]
    early: frozenset[date]
    holidays: dict[date, str]
    weekmask: str = "1111100"
    fixed_hours: str | None = None  # why the calendar was not used

    def index(self, day: date) -> int | None:
        i = bisect_right(self.dates, day) - 1
        return i if i >= 0 and self.dates[i] == day else None


_TABLES: OrderedDict[tuple[str, str, int], Table] = OrderedDict()
_FIXED: dict[str, str] = {}
_BUILDING: dict[tuple[str, str, int], threading.Event] = {}  # tables being built, by key
BUILD_WAIT_S = 30.0  # the longest a lookup waits for another thread's build before building its own
_LOCK = threading.Lock()


def clear_cache() -> None:
    """Forget every built session table and fallback reason (tests; a new ``exchange_calendars``)."""
    with _LOCK:
        _TABLES.clear()
        _FIXED.clear()


def calendar_window(year: int) -> tuple[date, date]:
    """The dates one cached calendar covers for an instant in ``year`` (inclusive)."""
    return date(year - CALENDAR_YEARS, 1, 1), date(year + CALENDAR_YEARS, 12, 31)


def fixed_hours_reasons() -> dict[str, str]:
    """MIC -> why its calendar could not be built (and fixed weekday hours are used instead)."""
    with _LOCK:
        return dict(_FIXED)


def session_table(market: Market, year: int) -> Table:
    """The cached session table of ``market`` around ``year`` (built on first use; see the module)."""
    key = (market.mic or "", market.timezone, year)
    with _LOCK:
        table = _TABLES.get(key)
        if table is not None:
            _TABLES.move_to_end(key)
            return table
        building = _BUILDING.get(key)
        mine = building is None
        if mine:
            building = _BUILDING[key] = threading.Event()
    assert building is not None
    if not mine:  # another thread (the runtime's warm-up) is building it: wait rather than build twice
        building.wait(BUILD_WAIT_S)
        with _LOCK:
            table = _TABLES.get(key)
        if table is not None:
            return table
    try:
        table = _build(market, year)
        with _LOCK:
            _TABLES[key] = table
            while len(_TABLES) > MAX_TABLES:
                _TABLES.popitem(last=False)
    finally:
        if mine:
            with _LOCK:
                _BUILDING.pop(key, None)
            building.set()
    return table


def warm(markets: Iterable[Market], at: datetime | None = None) -> int:
    """Build and cache the session tables a status lookup at ``at`` (aware; default now) needs for
    each of ``markets`` (24/5 and 24/7 markets need none), so the first lookup on a page does not pay
    for importing ``exchange_calendars`` and building the calendar (about 1 s; more under load).
    Returns how many tables were looked up; never raises (a failing calendar falls back as usual)."""
    year = (at or datetime.now(UTC)).year
    n = 0
    for market in dict.fromkeys(markets):
        if market.hours != "exchange":
            continue
        try:
            session_table(market, year)
            n += 1
        except Exception:  # a warm-up is an optimisation: the page's own lookup will say what is wrong
            log.debug("markets: warming %s failed", market.mic, exc_info=True)
    return n


def _build(market: Market, year: int) -> Table:
    first, last = calendar_window(year)
    if not market.mic:
        return _fixed(market, first, last, "no exchange calendar for this market")
    error: Exception | None = None
    # some calendars record holidays only up to the current year: then try the window up to it
    for a, b in ((first, last), (first, date(year, 12, 31)), (date(year, 1, 1), date(year, 12, 31))):
        try:
            return _from_calendar(market.mic, a, b)
        except Exception as exc:  # any library failure: a narrower window, then fixed hours
            error = exc
    reason = f"exchange_calendars could not build {market.mic} for {year}: {error}"[:300]
    with _LOCK:
        if market.mic not in _FIXED:
            log.warning("markets: %s; using fixed hours %s-%s", reason, market.open, market.close)
        _FIXED[market.mic] = reason
    return _fixed(market, first, last, reason)


def _from_calendar(mic: str, first: date, last: date) -> Table:
    import exchange_calendars as xc  # type: ignore[import-untyped]
    import pandas as pd

    cal = xc.get_calendar(mic, start=first.isoformat(), end=last.isoformat())
    sched = cal.schedule

    def seconds(col: str) -> list[float | None]:
        return [None if pd.isna(t) else t.timestamp() for t in sched[col]]

    opens, closes = seconds("open"), seconds("close")
    starts, ends = seconds("break_start"), seconds("break_end")
    dates = [t.date() for t in sched.index]
    holidays: dict[date, str] = {}
    try:
        named = cal.regular_holidays.holidays(pd.Timestamp(first), pd.Timestamp(last), return_name=True)
        holidays.update({t.date(): str(n) for t, n in named.items()})
    except Exception:  # names are a nicety: a calendar without them still has its sessions
        pass
    for raw in cal.adhoc_holidays:
        day = pd.Timestamp(raw).date()
        if first <= day <= last:
            holidays.setdefault(day, "")
    sessions = set(dates)
    holidays = {d: n for d, n in holidays.items() if d not in sessions}
    return Table(
        first=first,
        last=last,
        dates=dates,
        opens=[float(x) for x in opens if x is not None],
        closes=[float(x) for x in closes if x is not None],
        breaks=[
            (a, b) if a is not None and b is not None else None for a, b in zip(starts, ends, strict=True)
        ],
        early=frozenset(d for d in (pd.Timestamp(t).date() for t in cal.early_closes) if first <= d <= last),
        holidays=holidays,
        weekmask=str(cal.weekmask),
    )


def _fixed(market: Market, first: date, last: date, reason: str) -> Table:
    zone = ZoneInfo(market.timezone)
    dates, opens, closes = [], [], []
    d = first
    while d <= last:
        if d.weekday() < 5:
            dates.append(d)
            opens.append(datetime.combine(d, market.open, zone).timestamp())
            closes.append(datetime.combine(d, market.close, zone).timestamp())
        d += timedelta(days=1)
    return Table(first, last, dates, opens, closes, [None] * len(dates), frozenset(), {}, fixed_hours=reason)


# -- status -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MarketStatus:
    """A market's state at ``at`` (aware UTC).

    ``state``: ``open``, ``break`` (lunch break), ``closed``, ``pre`` (pre-market), ``post``
    (after-hours) or ``24/7``. ``closes`` is when the current session (or FX week) ends, ``resumes``
    when a lunch break ends, ``next_open`` the next regular open (all aware UTC or None).
    ``early_close`` says today's session closes (or closed) early; ``holiday`` names the holiday
    when today is a weekday without a session ("holiday" when the calendar has no name for it).
    ``session`` is the current or latest session date, ``opened`` its open and (when closed)
    ``last_close`` its close; ``fixed_hours`` the reason when the exchange's calendar was not used.
    """

    state: State
    at: datetime
    timezone: str
    closes: datetime | None = None
    resumes: datetime | None = None
    next_open: datetime | None = None
    early_close: bool = False
    holiday: str | None = None
    session: date | None = None
    fixed_hours: str | None = None
    opened: datetime | None = None
    last_close: datetime | None = None

    @property
    def is_open(self) -> bool:
        """Regular trading now (a new price is expected): open or around the clock."""
        return self.state in ("open", "24/7")


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def market_status(market: Market, at: datetime, extended: bool = False) -> MarketStatus:
    """The state of ``market`` at the instant ``at`` (aware); ``extended``: the provider serves
    pre-market/after-hours prices (Yahoo for US listings), so those windows are named."""
    at = at.astimezone(UTC)
    if market.hours == "24/7":
        return MarketStatus("24/7", at, market.timezone, session=session_date(at, market.timezone))
    if market.hours == "24/5":
        return _fx_status(market, at)
    t = at.timestamp()
    table = session_table(market, at.year)
    i = bisect_right(table.opens, t) - 1
    if i < 0 or i + 1 >= len(table.opens):  # at the window's edge: the neighbouring year's table
        table = session_table(market, at.year + (1 if i >= 0 else -1))
        i = bisect_right(table.opens, t) - 1
    zone = market.timezone
    today = session_date(at, zone)
    fixed = table.fixed_hours
    if i >= 0 and t < table.closes[i]:
        day = table.dates[i]
        brk = table.breaks[i]
        closes = _utc(table.closes[i])
        early = day in table.early
        opened = _utc(table.opens[i])
        if brk is not None and brk[0] <= t < brk[1]:
            resumes = _utc(brk[1])
            return MarketStatus("break", at, zone, closes, resumes, None, early, None, day, fixed, opened)
        return MarketStatus("open", at, zone, closes, None, None, early, None, day, fixed, opened)
    nxt = _utc(table.opens[i + 1]) if i + 1 < len(table.opens) else None
    last_day = table.dates[i] if i >= 0 else None
    early = last_day == today and last_day in table.early
    holiday = None
    if table.index(today) is None and table.weekmask[today.weekday()] == "1":
        holiday = table.holidays.get(today) or "holiday"
    state: State = "closed"
    if extended and market.extended and holiday is None:
        local = at.astimezone(ZoneInfo(zone)).time()
        if table.index(today) is not None and nxt is not None and session_date(nxt, zone) == today:
            state = "pre" if local >= time(4) else "closed"
        elif last_day == today and local < time(20):
            state = "post"
    began = _utc(table.opens[i]) if i >= 0 else None
    ended = _utc(table.closes[i]) if i >= 0 else None
    return MarketStatus(state, at, zone, None, None, nxt, early, holiday, last_day, fixed, began, ended)


def _fx_status(market: Market, at: datetime) -> MarketStatus:
    local = at.astimezone(FX_ZONE)
    wd, turn = local.weekday(), datetime.combine(local.date(), FX_TURN, FX_ZONE)
    closed = wd == 5 or (wd == 4 and local >= turn) or (wd == 6 and local < turn)
    day = session_date(at, market.timezone)
    if closed:
        sunday = local.date() + timedelta(days=(6 - wd) % 7)
        nxt = datetime.combine(sunday, FX_TURN, FX_ZONE).astimezone(UTC)
        return MarketStatus("closed", at, market.timezone, next_open=nxt, session=day)
    friday = local.date() + timedelta(days=(4 - wd) % 7)
    closes = datetime.combine(friday, FX_TURN, FX_ZONE).astimezone(UTC)
    return MarketStatus("open", at, market.timezone, closes=closes, session=day)


def trades_between(market: Market, start: datetime, end: datetime) -> bool:
    """Does ``market`` trade (regular hours) at any instant in ``start``..``end`` (aware)? False for a
    weekend or holiday range: there an empty answer from a provider is the right answer."""
    if end <= start:
        return False
    st = market_status(market, start)
    if st.is_open or st.state == "break":
        return True
    return st.next_open is not None and st.next_open < end


def regular_session(market: Market, day: date) -> tuple[datetime, datetime] | None:
    """The regular session of ``market`` on the session date ``day``: (open, close) as aware UTC
    datetimes, from its exchange calendar (an early close included; a lunch break lies inside). For
    24/5 and 24/7 markets the whole local day (``day_start_utc`` of the day and of the next). None
    when ``day`` is no session (a weekend or holiday; a Saturday or Sunday for 24/5)."""
    if market.hours != "exchange":
        if market.hours == "24/5" and day.weekday() >= 5:
            return None
        return day_start_utc(day, market.timezone), day_start_utc(day + timedelta(days=1), market.timezone)
    table = session_table(market, day.year)
    i = table.index(day)
    if i is None:
        return None
    return _utc(table.opens[i]), _utc(table.closes[i])


def sessions_between(market: Market, first: date, last: date) -> list[date]:
    """The session dates of ``market`` from ``first`` to ``last`` (inclusive): trading days where a
    backfill or gap check expects data (every day for 24/7, weekdays for FX)."""
    if market.hours == "24/7":
        return [first + timedelta(days=k) for k in range((last - first).days + 1)]
    if market.hours == "24/5":
        return [
            first + timedelta(days=k)
            for k in range((last - first).days + 1)
            if (first + timedelta(days=k)).weekday() < 5
        ]
    out: list[date] = []
    for year in range(first.year, last.year + 1):
        table = session_table(market, year)
        out.extend(d for d in table.dates if d.year == year and first <= d <= last)
    return out
