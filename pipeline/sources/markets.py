"""What a ticker's form says about its market: exchange, currency, time zone and session hours.

Guarantees:
- ``market_for(symbol)`` never raises for a valid symbol: a known suffix (``.T``, ``.L``, ``.DE`` ...),
  an index (``^``), an FX pair (``=X``) or a crypto pair (``-USD`` ...) get their market; anything
  else is taken to be a US listing (NYSE/NASDAQ, USD, America/New_York).
- ``day_start_utc(date, tz)`` is the one convention every source uses for daily and weekly bars:
  the bar's ``ts`` is local midnight of the trading date at the exchange, expressed in UTC.
- ``session_date(ts, tz)`` is the exchange's date of an instant; ``day_key(date)`` is how the bar
  builder stores a daily bar (UTC midnight of the session date). A source's daily bar (local
  midnight) and the roll-up of that date's intraday bars get the same key, never the next day's.
- Sources that know better (Yahoo's chart meta) use their own data; this table is the fallback and
  the simulated/CSV sources' only knowledge.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from .base import SymbolInfo


@dataclass(frozen=True)
class Market:
    exchange: str
    currency: str
    timezone: str
    open: time = time(9, 30)
    close: time = time(16, 0)
    #: trades around the clock every day (crypto); FX trades 24 hours on weekdays
    always_open: bool = False

    @property
    def session_seconds(self) -> float:
        start = self.open.hour * 3600 + self.open.minute * 60
        end = self.close.hour * 3600 + self.close.minute * 60
        return 86400.0 if self.always_open else float(end - start)


US = Market("NYSE/NASDAQ", "USD", "America/New_York")

#: Yahoo-style suffix -> market. Currency ``GBp`` is pence, as Yahoo quotes London shares.
SUFFIXES: dict[str, Market] = {
    ".T": Market("Tokyo Stock Exchange", "JPY", "Asia/Tokyo", time(9), time(15, 30)),
    ".L": Market("London Stock Exchange", "GBp", "Europe/London", time(8), time(16, 30)),
    ".DE": Market("XETRA", "EUR", "Europe/Berlin", time(9), time(17, 30)),
    ".F": Market("Frankfurt", "EUR", "Europe/Berlin", time(8), time(22)),
    ".PA": Market("Euronext Paris", "EUR", "Europe/Paris", time(9), time(17, 30)),
    ".AS": Market("Euronext Amsterdam", "EUR", "Europe/Amsterdam", time(9), time(17, 30)),
    ".MI": Market("Borsa Italiana", "EUR", "Europe/Rome", time(9), time(17, 30)),
    ".MC": Market("Bolsa de Madrid", "EUR", "Europe/Madrid", time(9), time(17, 30)),
    ".SW": Market("SIX Swiss Exchange", "CHF", "Europe/Zurich", time(9), time(17, 30)),
    ".HK": Market("Hong Kong Stock Exchange", "HKD", "Asia/Hong_Kong", time(9, 30), time(16)),
    ".TO": Market("Toronto Stock Exchange", "CAD", "America/Toronto"),
    ".V": Market("TSX Venture Exchange", "CAD", "America/Toronto"),
    ".AX": Market("Australian Securities Exchange", "AUD", "Australia/Sydney", time(10), time(16)),
    ".SS": Market("Shanghai Stock Exchange", "CNY", "Asia/Shanghai", time(9, 30), time(15)),
    ".SZ": Market("Shenzhen Stock Exchange", "CNY", "Asia/Shanghai", time(9, 30), time(15)),
    ".KS": Market("Korea Exchange", "KRW", "Asia/Seoul", time(9), time(15, 30)),
    ".NS": Market("National Stock Exchange of India", "INR", "Asia/Kolkata", time(9, 15), time(15, 30)),
    ".BO": Market("Bombay Stock Exchange", "INR", "Asia/Kolkata", time(9, 15), time(15, 30)),
    ".SA": Market("B3 Sao Paulo", "BRL", "America/Sao_Paulo", time(10), time(17)),
}

#: Indices whose market is not the US one.
INDICES: dict[str, Market] = {
    "^FTSE": Market("FTSE Index", "GBP", "Europe/London", time(8), time(16, 30)),
    "^GDAXI": Market("XETRA Index", "EUR", "Europe/Berlin", time(9), time(17, 30)),
    "^FCHI": Market("Euronext Paris Index", "EUR", "Europe/Paris", time(9), time(17, 30)),
    "^STOXX50E": Market("STOXX Index", "EUR", "Europe/Berlin", time(9), time(17, 30)),
    "^N225": Market("Osaka Index", "JPY", "Asia/Tokyo", time(9), time(15, 30)),
    "^HSI": Market("Hang Seng Index", "HKD", "Asia/Hong_Kong", time(9, 30), time(16)),
    "^GSPTSE": Market("Toronto Index", "CAD", "America/Toronto"),
}

CRYPTO_QUOTES = ("USD", "EUR", "GBP", "USDT", "BTC", "ETH", "JPY")


def market_for(symbol: str) -> Market:
    """The market a (normalised) Yahoo-style symbol trades on."""
    if symbol.startswith("^"):
        return INDICES.get(symbol, Market("Index (US)", "USD", "America/New_York"))
    if symbol.endswith("=X"):
        pair = symbol[:-2]
        quote = pair[3:6] if len(pair) == 6 else (pair[:3] if len(pair) == 3 else "USD")
        return Market("CCY", quote, "Europe/London", time(0), time(23, 59), always_open=True)
    if "-" in symbol:
        quote = symbol.rsplit("-", 1)[1]
        if quote in CRYPTO_QUOTES:
            return Market("CCC", quote, "UTC", time(0), time(23, 59), always_open=True)
    dot = symbol.rfind(".")
    if dot > 0:
        market = SUFFIXES.get(symbol[dot:])
        if market is not None:
            return market
    return US


def symbol_info(symbol: str, name: str = "") -> SymbolInfo:
    m = market_for(symbol)
    return SymbolInfo(symbol=symbol, name=name, exchange=m.exchange, currency=m.currency, timezone=m.timezone)


def day_start_utc(day: date, tz: str) -> datetime:
    """Local midnight of ``day`` at an exchange in time zone ``tz``, as an aware UTC datetime."""
    return datetime.combine(day, time(0), ZoneInfo(tz)).astimezone(UTC)


def session_date(ts: datetime, tz: str) -> date:
    """The calendar date at an exchange in time zone ``tz`` of the instant ``ts`` (aware): the session
    date a bar or tick belongs to (no exchange calendar: a session never crosses local midnight)."""
    return ts.astimezone(ZoneInfo(tz)).date()


def day_key(day: date) -> datetime:
    """How the ``bars`` collection stores a session date: UTC midnight of that date (so a page that
    draws days on UTC dates shows the exchange's own date, east or west of UTC)."""
    return datetime.combine(day, time(0), UTC)


def session_fraction(ts: datetime, market: Market) -> float | None:
    """Where ``ts`` falls in the local regular session, 0..1, or None outside it (any weekday)."""
    if market.always_open:
        local = ts.astimezone(ZoneInfo(market.timezone))
        return (local.hour * 3600 + local.minute * 60 + local.second) / 86400.0
    local = ts.astimezone(ZoneInfo(market.timezone))
    seconds = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
    start = market.open.hour * 3600 + market.open.minute * 60
    x = (seconds - start) / market.session_seconds
    return x if 0.0 <= x < 1.0 else None
