"""A fake Yahoo Finance + Alpha Vantage HTTP server for tests (no internet needed).

It serves the providers' real response shapes on one 127.0.0.1 port:

- Yahoo: ``/v8/finance/chart/{symbol}`` (chart API v8: ``chart.result[0]`` with ``meta``,
  ``timestamp[]``, ``indicators.quote[0]``; errors as ``chart.error``), and what yfinance 1.7 calls
  around it: ``fc.yahoo.com`` ``/`` (cookie), ``/v1/test/getcrumb`` (crumb), ``guce.yahoo.com``
  ``/consent`` (the csrf cookie strategy), ``/v10/finance/quoteSummary/{symbol}`` and
  ``/v7/finance/quote?symbols=A,B,...`` (batched live quotes; also yfinance's ``info`` fallback). The client must send every Yahoo host here (the
  source's session rewrites hosts and tells the original one in ``X-Original-Host``).
- Alpha Vantage: ``/query?function=GLOBAL_QUOTE|TIME_SERIES_INTRADAY|TIME_SERIES_DAILY``.

Behaviours are switchable while the server runs (``set_yahoo``/``set_av``), globally or per symbol:
``normal``, ``empty``, ``nan`` (all rows null), ``some_nan`` (every third row null), ``rate_limit``
(HTTP 429), ``hang`` (answer nothing for ``hang_seconds``), ``unknown`` (404 "No data found");
Alpha Vantage: ``normal``, ``note`` / ``information`` (HTTP 200 throttle replies), ``premium``,
``hang``, ``unknown``. Every request is recorded (``requests``, ``count``) before it is answered.

Simplifications (documented so tests do not rely on more): the fake Yahoo market trades 24/7 (one
"regular" session per local day from midnight to midnight), prices are a smooth deterministic
function of symbol and time, Alpha Vantage's ``full`` intraday output holds the last 5 days.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import threading
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl, unquote, urlsplit
from zoneinfo import ZoneInfo

YAHOO_MODES = ("normal", "empty", "nan", "some_nan", "rate_limit", "hang", "unknown")
AV_MODES = ("normal", "note", "information", "premium", "hang", "unknown")

NOTE = (
    "Thank you for using Alpha Vantage! Our standard API call frequency is 5 calls per minute and "
    "500 calls per day. Please visit https://www.alphavantage.co/premium/ if you would like to "
    "target a higher API call frequency."
)
INFORMATION = (
    "We have detected your API key as {key} and our standard API rate limit is 25 requests "
    "per day. Please subscribe to any of the premium plans at "
    "https://www.alphavantage.co/premium/ to instantly remove all daily rate limits."
)
PREMIUM = (
    "Thank you for using Alpha Vantage! This is a premium endpoint. You may subscribe to any of "
    "the premium plans at https://www.alphavantage.co/premium/ to instantly unlock all premium "
    "endpoints"
)
BAD_KEY = (
    "the parameter apikey is invalid or missing. Please claim your free API key on "
    "(https://www.alphavantage.co/support/#api-key). It should take less than 20 seconds."
)
YAHOO_INTERVALS = {
    "1m": 60,
    "2m": 120,
    "5m": 300,
    "15m": 900,
    "30m": 1800,
    "60m": 3600,
    "90m": 5400,
    "1h": 3600,
    "1d": 86400,
    "5d": 5 * 86400,
    "1wk": 7 * 86400,
}
RANGES = {
    "1d": 1,
    "5d": 5,
    "1mo": 30,
    "3mo": 91,
    "6mo": 182,
    "1y": 365,
    "2y": 730,
    "5y": 1826,
    "10y": 3652,
    "max": 36500,
}
AV_SUFFIXES = {".LON": ".L", ".TRT": ".TO", ".DEX": ".DE", ".BSE": ".BO"}


@dataclass(frozen=True)
class Instrument:
    symbol: str
    price: float
    long_name: str
    exchange_name: str = "NMS"
    full_exchange_name: str = "NasdaqGS"
    currency: str = "USD"
    tz: str = "America/New_York"
    instrument_type: str = "EQUITY"
    daily: bool = False  # trades every day (crypto)


INSTRUMENTS = {
    i.symbol: i
    for i in (
        Instrument("AAPL", 190.0, "Apple Inc."),
        Instrument("MSFT", 420.0, "Microsoft Corporation"),
        Instrument("GOOG", 170.0, "Alphabet Inc."),
        Instrument("AMZN", 180.0, "Amazon.com, Inc."),
        Instrument("NVDA", 120.0, "NVIDIA Corporation"),
        Instrument("META", 500.0, "Meta Platforms, Inc."),
        Instrument("IBM", 220.0, "International Business Machines Corporation", "NYQ", "NYSE"),
        Instrument("7203.T", 2900.0, "Toyota Motor Corporation", "JPX", "Tokyo", "JPY", "Asia/Tokyo"),
        Instrument(
            "VOD.L", 72.0, "Vodafone Group Public Limited Company", "LSE", "LSE", "GBp", "Europe/London"
        ),
        Instrument("SAP.DE", 230.0, "SAP SE", "GER", "XETRA", "EUR", "Europe/Berlin"),
        Instrument("^GSPC", 5500.0, "S&P 500", "SNP", "SNP", "USD", "America/New_York", "INDEX"),
        Instrument("EURUSD=X", 1.08, "EUR/USD", "CCY", "CCY", "USD", "Europe/London", "CURRENCY"),
        Instrument("BTC-USD", 60000.0, "Bitcoin USD", "CCC", "CCC", "USD", "UTC", "CRYPTOCURRENCY", True),
    )
}


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    params: dict[str, str]
    host: str
    at: float

    @property
    def provider(self) -> str:
        return "alphavantage" if self.path.startswith("/query") else "yahoo"


def _h(text: str) -> float:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") / 2**32


def price_at(inst: Instrument, t: float) -> float:
    """The fake market's deterministic price of ``inst`` at epoch second ``t``."""
    phase = _h(inst.symbol) * 2 * math.pi
    x = (
        0.02 * math.sin(2 * math.pi * t / 86400 + phase)
        + 0.004 * math.sin(2 * math.pi * t / 1800 + phase)
        + 0.001 * math.sin(2 * math.pi * t / 97 + phase)
    )
    return inst.price * math.exp(x)


def _r(x: float) -> float:
    return round(x, 4 if x < 10 else 2)


def _ohlcv(inst: Instrument, t0: float, t1: float) -> tuple[float, float, float, float, int]:
    o, c = price_at(inst, t0), price_at(inst, t1)
    mid = price_at(inst, (t0 + t1) / 2)
    h, lo = max(o, c, mid) * 1.0004, min(o, c, mid) * 0.9996
    v = int(1000 + 9000 * _h(f"{inst.symbol}{int(t0)}")) * max(1, int((t1 - t0) // 60))
    return _r(o), _r(h), _r(lo), _r(c), v


class FakeMarket:
    """Start with ``FakeMarket().start()`` (or as a context manager); ``url`` is the base URL."""

    def __init__(self, hang_seconds: float = 30.0, now: Any = None):
        self.hang_seconds = hang_seconds
        self.instruments: dict[str, Instrument] = dict(INSTRUMENTS)
        self.yahoo_mode = "normal"
        self.yahoo_modes: dict[str, str] = {}
        self.av_mode = "normal"
        self.av_modes: dict[str, str] = {}
        self.av_quotes: dict[str, Any] = {}  # symbol -> a canned GLOBAL_QUOTE answer (a case file)
        self.recorded: dict[str, dict[str, tuple[int, Any]]] = {}  # symbol -> interval -> (status, body)
        self.splits: dict[
            str, list[tuple[float, float, float]]
        ] = {}  # symbol -> (ex ts, numerator, denominator)
        self.dividends: dict[str, list[tuple[float, float]]] = {}  # symbol -> (ex ts, amount per share)
        self.market_states: dict[str, str] = {}  # symbol -> quote API marketState (default REGULAR)
        self.volume_bonus: dict[str, int] = {}  # symbol -> added to the quote API's regularMarketVolume
        self.requests: list[Request] = []
        self._now = now or time.time
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> FakeMarket:
        market = self

        class Handler(_Handler):
            fake = market

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-market", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._released.set()  # wake hanging handlers
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeMarket:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake market first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- behaviour ------------------------------------------------------------------------------
    def set_yahoo(self, mode: str, *symbols: str) -> None:
        """Set the Yahoo behaviour for ``symbols`` (or for everything when none are given)."""
        assert mode in YAHOO_MODES, mode
        if symbols:
            self.yahoo_modes.update({s: mode for s in symbols})
        else:
            self.yahoo_mode, self.yahoo_modes = mode, {}

    def set_av(self, mode: str, *symbols: str) -> None:
        assert mode in AV_MODES, mode
        if symbols:
            self.av_modes.update({s: mode for s in symbols})
        else:
            self.av_mode, self.av_modes = mode, {}

    def set_av_quote(self, symbol: str, body: Any | None) -> None:
        """Answer GLOBAL_QUOTE for ``symbol`` with ``body`` as is (e.g. a case file's JSON); None
        goes back to the generated quote."""
        if body is None:
            self.av_quotes.pop(symbol, None)
        else:
            self.av_quotes[symbol] = body

    def serve_recorded(self, *paths: Any) -> list[str]:
        """Answer Yahoo chart requests with recorded responses (``tests/data/yahoo-chart/*.json``:
        ``request_url``, ``status``, ``body``), matched by symbol and interval; a request for another
        interval of a recorded symbol (yfinance's time zone probe) gets that symbol's first recording.
        Returns the symbols now served from recordings."""
        for path in paths:
            record = json.loads(Path(path).read_text(encoding="utf-8"))
            url = urlsplit(record["request_url"])
            symbol = unquote(url.path.rsplit("/", 1)[-1])
            interval = parse_qs(url.query).get("interval", ["1d"])[0]
            self.recorded.setdefault(symbol, {})[interval] = (int(record["status"]), record["body"])
        return sorted(self.recorded)

    def set_split(self, symbol: str, ex_ts: float, numerator: float, denominator: float = 1.0) -> None:
        """From now on ``symbol`` has split ``numerator``:``denominator`` with its ex-date session
        opening at ``ex_ts`` (epoch s), as Yahoo serves it afterwards: every price, before the
        ex-date too, divided by the ratio and every volume multiplied by it (Yahoo's history is
        split-adjusted), and the split in ``events.splits`` of a daily chart whose range holds it."""
        self.splits.setdefault(symbol, []).append((float(ex_ts), float(numerator), float(denominator)))

    def set_dividend(self, symbol: str, ex_ts: float, amount: float) -> None:
        """``symbol`` pays ``amount`` per share, ex-date session opening at ``ex_ts``: listed in
        ``events.dividends`` of a daily chart whose range holds it (prices are not changed: Yahoo's
        ``close`` is not dividend-adjusted, its ``adjclose`` is)."""
        self.dividends.setdefault(symbol, []).append((float(ex_ts), float(amount)))

    def set_market_state(self, symbol: str, state: str) -> None:
        """What the quote API says of ``symbol``'s market: REGULAR (default), PRE or POST (with a
        pre/post-market price 1 % above the regular one, stamped now), CLOSED."""
        with self._lock:
            self.market_states[symbol] = state

    def release_hanging(self) -> None:
        """Let handlers that are hanging answer now."""
        self._released.set()
        self._released = threading.Event()

    # -- inspection -----------------------------------------------------------------------------
    def count(self, path_prefix: str = "", **params: str) -> int:
        with self._lock:
            return sum(
                1
                for r in self.requests
                if r.path.startswith(path_prefix) and all(r.params.get(k) == v for k, v in params.items())
            )

    def chart_requests(self, symbol: str | None = None) -> list[Request]:
        prefix = "/v8/finance/chart/" + (symbol or "")
        with self._lock:
            return [r for r in self.requests if r.path.startswith(prefix)]

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def now(self) -> float:
        return float(self._now())

    # -- Yahoo ----------------------------------------------------------------------------------
    def yahoo(self, req: Request) -> tuple[int, str, bytes]:
        path = req.path
        symbol = path.rsplit("/", 1)[-1] if path.count("/") >= 4 else ""
        mode = self.yahoo_modes.get(symbol, self.yahoo_mode) if symbol else self.yahoo_mode
        if mode == "hang" and (symbol or self.yahoo_mode == "hang"):
            self._released.wait(self.hang_seconds)
        if mode == "rate_limit" and (symbol or self.yahoo_mode == "rate_limit"):
            return 429, "text/plain", b"Edge: Too Many Requests"
        if path == "/" or path == "":
            return 404, "text/html", b"<html><body>fc.yahoo.com</body></html>"
        if path == "/v1/test/getcrumb":
            return 200, "text/plain", b"fakeCrumb/123"
        if (
            path.startswith("/consent")
            or path.startswith("/copyConsent")
            or path.startswith("/v2/collectConsent")
        ):
            return 200, "text/html", b"<html><body><form></form></body></html>"
        if path.startswith("/v8/finance/chart/"):
            return self._chart(symbol, mode, req.params)
        if path.startswith("/v10/finance/quoteSummary/"):
            inst = self.instruments.get(symbol)
            if inst is None or mode == "unknown":
                return _json(
                    404,
                    {
                        "quoteSummary": {
                            "result": None,
                            "error": {
                                "code": "Not Found",
                                "description": f"Quote not found for symbol: {symbol}",
                            },
                        }
                    },
                )
            return _json(
                200,
                {
                    "quoteSummary": {
                        "result": [
                            {
                                "price": {
                                    "symbol": inst.symbol,
                                    "longName": inst.long_name,
                                    "currency": inst.currency,
                                    "exchangeName": inst.full_exchange_name,
                                }
                            }
                        ],
                        "error": None,
                    }
                },
            )
        if path.startswith("/v7/finance/quote"):
            return self._quotes(req.params)
        return _json(
            404,
            {
                "finance": {
                    "result": None,
                    "error": {"code": "Not Found", "description": "HTTP 404 Not Found"},
                }
            },
        )

    def _quotes(self, q: dict[str, str]) -> tuple[int, str, bytes]:
        """``/v7/finance/quote?symbols=A,B``: one item per known symbol, in the shape of Yahoo's answer
        (recorded by yahoo-finance2: ``quoteResponse.result[]``, ``error: null``); unknown symbols
        are left out, as Yahoo does. A symbol in ``rate_limit`` mode refuses the whole request."""
        symbols = [s for s in q.get("symbols", "").split(",") if s]
        if any(self.yahoo_modes.get(s) == "rate_limit" for s in symbols):
            return 429, "text/plain", b"Edge: Too Many Requests"
        now = self.now()
        items = []
        for symbol in symbols:
            inst = self.instruments.get(symbol)
            if inst is None or self.yahoo_modes.get(symbol) == "unknown":
                continue
            zone = ZoneInfo(inst.tz)
            local = datetime.fromtimestamp(now, zone)
            day0 = local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
            at = int(now)
            o, h, lo, _, volume = _ohlcv(inst, day0, max(day0 + 60, now - now % 60))
            if inst.daily:  # crypto: a rolling 24-hour figure with no daily reset (it may fall)
                volume = int(1000 + 9000 * _h(symbol)) * 1440 + int(now // 60) % 997
            state = self.market_states.get(symbol, "REGULAR")
            item: dict[str, Any] = {
                "language": "en-US",
                "region": "US",
                "quoteType": inst.instrument_type,
                "currency": inst.currency,
                "exchange": inst.exchange_name,
                "fullExchangeName": inst.full_exchange_name,
                "exchangeTimezoneName": inst.tz,
                "exchangeTimezoneShortName": local.tzname() or "UTC",
                "gmtOffSetMilliseconds": int(local.utcoffset().total_seconds() * 1000),  # type: ignore[union-attr]
                "market": "us_market",
                "marketState": state,
                "priceHint": 2,
                "regularMarketPrice": _r(price_at(inst, at)),
                "regularMarketTime": at,
                "regularMarketVolume": volume + self.volume_bonus.get(symbol, 0),
                "regularMarketOpen": o,
                "regularMarketDayHigh": h,
                "regularMarketDayLow": lo,
                "regularMarketPreviousClose": _r(price_at(inst, day0 - 60)),
                "shortName": inst.long_name,
                "longName": inst.long_name,
                "symbol": symbol,
            }
            if state in ("PRE", "POST"):
                prefix = "preMarket" if state == "PRE" else "postMarket"
                item[f"{prefix}Price"] = _r(price_at(inst, at) * 1.01)
                item[f"{prefix}Time"] = at + 1
            items.append(item)
        return _json(200, {"quoteResponse": {"result": items, "error": None}})

    def _chart(self, symbol: str, mode: str, q: dict[str, str]) -> tuple[int, str, bytes]:
        recorded = self.recorded.get(symbol)
        if recorded:
            status, body = recorded.get(q.get("interval", "1d")) or next(iter(recorded.values()))
            return _json(status, body)
        inst = self.instruments.get(symbol)
        if inst is None or mode == "unknown":
            return _json(
                404,
                {
                    "chart": {
                        "result": None,
                        "error": {
                            "code": "Not Found",
                            "description": "No data found, symbol may be delisted",
                        },
                    }
                },
            )
        interval = q.get("interval", "1d")
        if interval not in YAHOO_INTERVALS:
            return _json(
                400,
                {
                    "chart": {
                        "result": None,
                        "error": {
                            "code": "Bad Request",
                            "description": f"Invalid input - interval={interval} is not supported. Valid intervals: "
                            "[1m, 2m, 5m, 15m, 30m, 60m, 90m, 1h, 4h, 1d, 5d, 1wk, 1mo, 3mo]",
                        },
                    }
                },
            )
        now = self.now()
        zone = ZoneInfo(inst.tz)
        if "period1" in q:
            start, end = float(q["period1"]), float(q.get("period2", now))
        else:
            days = RANGES.get(q.get("range", "1mo"), 30)
            today = datetime.fromtimestamp(now, zone).replace(hour=0, minute=0, second=0, microsecond=0)
            start, end = (today - timedelta(days=days - 1)).timestamp(), now
        step = YAHOO_INTERVALS[interval]
        intraday = step < 86400
        if interval == "1m":
            if end - start > 8 * 86400 + 60:
                return _unprocessable(
                    start,
                    end,
                    "Only 8 days worth of 1m granularity data are allowed to be fetched per request.",
                )
            if start < now - 30 * 86400:
                return _unprocessable(start, end, "The requested range must be within the last 30 days.")
        elif intraday and start < now - 60 * 86400 and step < 3600:
            return _unprocessable(start, end, "The requested range must be within the last 60 days.")
        end = min(end, now)
        rows: list[tuple[float, float, float, float, float, int]] = []
        if intraday:
            t = math.ceil(start / step) * step
            while t < end:
                rows.append((t, *_ohlcv(inst, t, min(t + step, now))))
                t += step
            if rows and now % step and end >= now - 1:  # Yahoo's separate "live" row, merged by yfinance
                p = _r(price_at(inst, now))
                rows.append((math.floor(now), p, p, p, p, 0))
        else:
            d = datetime.fromtimestamp(start, zone).date()
            last = datetime.fromtimestamp(end, zone).date()
            while d <= last:
                if inst.daily or d.weekday() < 5:
                    if step == 86400 or d.weekday() == 0:
                        t_open = datetime(d.year, d.month, d.day, 9, 30, tzinfo=zone).timestamp()
                        t_close = min(t_open + step - 86400 + 6.5 * 3600, now)
                        if t_open <= now:
                            rows.append((t_open, *_ohlcv(inst, t_open, t_close)))
                d += timedelta(days=1)
        meta = self._meta(inst, interval, q, now, start, end, intraday)
        result: dict[str, Any] = {"meta": meta}
        if mode == "empty" or not rows:
            result["indicators"] = {"quote": [{}]}
        else:
            cols = list(zip(*rows, strict=False))
            quote = {
                "open": list(cols[1]),
                "high": list(cols[2]),
                "low": list(cols[3]),
                "close": list(cols[4]),
                "volume": list(cols[5]),
            }
            for i in range(len(rows)):
                if mode == "nan" or (mode == "some_nan" and i % 3 == 1):
                    for k in quote:
                        quote[k][i] = None
            ratio = math.prod(n / d for _, n, d in self.splits.get(symbol, []))
            if ratio != 1.0:  # split-adjusted, as Yahoo serves history after a split
                for k in ("open", "high", "low", "close"):
                    quote[k] = [None if v is None else _r(v / ratio) for v in quote[k]]
                quote["volume"] = [None if v is None else int(v * ratio) for v in quote["volume"]]
            result["timestamp"] = [int(t) for t in cols[0]]
            result["indicators"] = {"quote": [quote]}
            events: dict[str, Any] = {}
            for ex, n, d in self.splits.get(symbol, []) if not intraday else []:
                if start <= ex < end:
                    events.setdefault("splits", {})[str(int(ex))] = {
                        "date": int(ex), "numerator": n, "denominator": d, "splitRatio": f"{n:g}:{d:g}",
                    }  # fmt: skip
            for ex, amount in self.dividends.get(symbol, []) if not intraday else []:
                if start <= ex < end:
                    events.setdefault("dividends", {})[str(int(ex))] = {"amount": amount, "date": int(ex)}
            if events:
                result["events"] = events
            if not intraday:
                result["indicators"]["adjclose"] = [{"adjclose": list(quote["close"])}]
        return _json(200, {"chart": {"result": [result], "error": None}})

    def _meta(
        self,
        inst: Instrument,
        interval: str,
        q: dict[str, str],
        now: float,
        start: float,
        end: float,
        intraday: bool,
    ) -> dict[str, Any]:
        zone = ZoneInfo(inst.tz)
        local = datetime.fromtimestamp(now, zone)
        offset = int(local.utcoffset().total_seconds())
        abbr = local.tzname() or "UTC"
        price = _r(price_at(inst, now))
        day0 = local.replace(hour=0, minute=0, second=0, microsecond=0)

        def period(a: float, b: float) -> dict[str, Any]:
            return {"timezone": abbr, "start": int(a), "end": int(b), "gmtoffset": offset}

        d0, d1 = day0.timestamp(), (day0 + timedelta(days=1)).timestamp()
        meta: dict[str, Any] = {
            "currency": inst.currency,
            "symbol": inst.symbol,
            "exchangeName": inst.exchange_name,
            "fullExchangeName": inst.full_exchange_name,
            "instrumentType": inst.instrument_type,
            "firstTradeDate": 345479400,
            "regularMarketTime": int(now),
            "hasPrePostMarketData": True,
            "gmtoffset": offset,
            "timezone": abbr,
            "exchangeTimezoneName": inst.tz,
            "regularMarketPrice": price,
            "fiftyTwoWeekHigh": _r(inst.price * 1.3),
            "fiftyTwoWeekLow": _r(inst.price * 0.75),
            "regularMarketDayHigh": _r(price * 1.01),
            "regularMarketDayLow": _r(price * 0.99),
            "regularMarketVolume": 51234567,
            "longName": inst.long_name,
            "shortName": inst.long_name[:20],
            "chartPreviousClose": _r(price_at(inst, start - 86400)),
            "priceHint": 2 if price >= 10 else 4,
            "currentTradingPeriod": {
                "pre": period(d0, d0),
                "regular": period(d0, d1),
                "post": period(d1, d1),
            },
            "dataGranularity": interval,
            "range": q.get("range", ""),
            "validRanges": ["1d", "5d", "1mo", "3mo", "6mo", "1y", "2y", "5y", "10y", "ytd", "max"],
        }
        if intraday:
            days = []
            d = datetime.fromtimestamp(start, zone).replace(hour=0, minute=0, second=0, microsecond=0)
            while d.timestamp() <= end:
                days.append((d.timestamp(), (d + timedelta(days=1)).timestamp()))
                d += timedelta(days=1)
            regular = [[period(a, b)] for a, b in days]
            if q.get("includePrePost", "").lower() == "true":
                meta["tradingPeriods"] = {
                    "pre": [[period(a, a)] for a, _ in days],
                    "regular": regular,
                    "post": [[period(b, b)] for _, b in days],
                }
            else:
                meta["tradingPeriods"] = regular
        return meta

    # -- Alpha Vantage --------------------------------------------------------------------------
    def alphavantage(self, req: Request) -> tuple[int, str, bytes]:
        q = req.params
        symbol = q.get("symbol", "")
        mode = self.av_modes.get(symbol, self.av_mode)
        if mode == "hang":
            self._released.wait(self.hang_seconds)
        if not q.get("apikey"):
            return _json(200, {"Error Message": BAD_KEY})
        if mode == "note":
            return _json(200, {"Note": NOTE})
        if mode == "information":
            return _json(200, {"Information": INFORMATION.format(key=q["apikey"])})
        function = q.get("function", "")
        if function == "GLOBAL_QUOTE" and symbol in self.av_quotes:
            return _json(200, self.av_quotes[symbol])
        yahoo_symbol = symbol
        for av_suffix, suffix in AV_SUFFIXES.items():
            if symbol.endswith(av_suffix):
                yahoo_symbol = symbol[: -len(av_suffix)] + suffix
        inst = self.instruments.get(yahoo_symbol)
        if inst is not None and ("=" in inst.symbol or "^" in inst.symbol or inst.daily):
            inst = None
        if function == "GLOBAL_QUOTE":
            if inst is None or mode == "unknown":
                return _json(200, {"Global Quote": {}})
            return _json(200, {"Global Quote": self._global_quote(inst, symbol)})
        if function in ("TIME_SERIES_INTRADAY", "TIME_SERIES_DAILY"):
            if inst is None or mode == "unknown":
                return _json(
                    200,
                    {
                        "Error Message": "Invalid API call. Please retry or visit the documentation "
                        f"(https://www.alphavantage.co/documentation/) for {function}."
                    },
                )
            if mode == "premium" or (function == "TIME_SERIES_DAILY" and q.get("outputsize") == "full"):
                return _json(200, {"Information": PREMIUM})
            if function == "TIME_SERIES_DAILY":
                return _json(200, self._av_daily(inst, symbol))
            return _json(200, self._av_intraday(inst, symbol, q))
        return _json(200, {"Error Message": f"This API function ({function}) does not exist."})

    def _av_day(self, now: float) -> date:
        d = datetime.fromtimestamp(now, ZoneInfo("America/New_York")).date()
        while d.weekday() >= 5:
            d -= timedelta(days=1)
        return d

    def _global_quote(self, inst: Instrument, symbol: str) -> dict[str, str]:
        now = self.now()
        zone = ZoneInfo("America/New_York")
        d = self._av_day(now)
        t_open = datetime(d.year, d.month, d.day, 9, 30, tzinfo=zone).timestamp()
        t_close = min(t_open + 6.5 * 3600, now)
        o, h, lo, c, v = _ohlcv(inst, t_open, max(t_close, t_open + 60))
        prev = _r(price_at(inst, t_open - 86400))
        return {
            "01. symbol": symbol,
            "02. open": f"{o:.4f}",
            "03. high": f"{h:.4f}",
            "04. low": f"{lo:.4f}",
            "05. price": f"{c:.4f}",
            "06. volume": str(v * 50),
            "07. latest trading day": d.isoformat(),
            "08. previous close": f"{prev:.4f}",
            "09. change": f"{c - prev:.4f}",
            "10. change percent": f"{(c - prev) / prev * 100:.4f}%",
        }

    def _av_intraday(self, inst: Instrument, symbol: str, q: dict[str, str]) -> dict[str, Any]:
        interval = q.get("interval", "15min")
        step = {"1min": 60, "5min": 300, "15min": 900, "30min": 1800, "60min": 3600}.get(interval, 900)
        zone = ZoneInfo("America/New_York")
        now = self.now()
        full = q.get("outputsize") == "full"
        if q.get("month"):
            y, m = map(int, q["month"].split("-"))
            first = datetime(y, m, 1, tzinfo=zone)
            last = min(now, (first + timedelta(days=32)).replace(day=1).timestamp())
            lo_t = first.timestamp()
        else:
            last = now
            lo_t = now - (5 if full else 3) * 86400
        rows = []
        t = math.floor((last - step) / step) * step
        while t >= lo_t and (full or q.get("month") or len(rows) < 100):
            local = datetime.fromtimestamp(t, zone)
            if local.weekday() < 5 and 4 <= local.hour < 20:
                rows.append((local, _ohlcv(inst, t, t + step)))
            t -= step
        series = {local.strftime("%Y-%m-%d %H:%M:%S"): _av_bar(bar) for local, bar in rows}
        refreshed = rows[0][0].strftime("%Y-%m-%d %H:%M:%S") if rows else ""
        return {
            "Meta Data": {
                "1. Information": f"Intraday ({interval}) open, high, low, close prices and volume",
                "2. Symbol": symbol,
                "3. Last Refreshed": refreshed,
                "4. Interval": interval,
                "5. Output Size": "Full size" if full else "Compact",
                "6. Time Zone": "US/Eastern",
            },
            f"Time Series ({interval})": series,
        }

    def _av_daily(self, inst: Instrument, symbol: str) -> dict[str, Any]:
        zone = ZoneInfo("America/New_York")
        d = self._av_day(self.now())
        series = {}
        while len(series) < 100:
            if d.weekday() < 5:
                t_open = datetime(d.year, d.month, d.day, 9, 30, tzinfo=zone).timestamp()
                t_close = min(t_open + 6.5 * 3600, self.now())
                series[d.isoformat()] = _av_bar(_ohlcv(inst, t_open, max(t_close, t_open + 60)), scale=50)
            d -= timedelta(days=1)
        return {
            "Meta Data": {
                "1. Information": "Daily Prices (open, high, low, close) and Volumes",
                "2. Symbol": symbol,
                "3. Last Refreshed": next(iter(series)),
                "4. Output Size": "Compact",
                "5. Time Zone": "US/Eastern",
            },
            "Time Series (Daily)": series,
        }


def _av_bar(bar: tuple[float, float, float, float, int], scale: int = 1) -> dict[str, str]:
    o, h, lo, c, v = bar
    return {
        "1. open": f"{o:.4f}",
        "2. high": f"{h:.4f}",
        "3. low": f"{lo:.4f}",
        "4. close": f"{c:.4f}",
        "5. volume": str(v * scale),
    }


def _unprocessable(start: float, end: float, why: str) -> tuple[int, str, bytes]:
    return _json(
        422,
        {
            "chart": {
                "result": None,
                "error": {
                    "code": "Unprocessable Entity",
                    "description": f"1m data not available for startTime={int(start)} and endTime={int(end)}. {why}",
                },
            }
        },
    )


def _json(status: int, body: Any) -> tuple[int, str, bytes]:
    return status, "application/json;charset=utf-8", json.dumps(body).encode()


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return  # a client that gave up (timeout tests) is expected, not an error
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    fake: FakeMarket
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        parts = urlsplit(self.path)
        req = Request(
            self.command,
            unquote(parts.path),
            dict(parse_qsl(parts.query)),
            self.headers.get("X-Original-Host") or self.headers.get("Host", ""),
            time.time(),
        )
        with self.fake._lock:
            self.fake.requests.append(req)
        if req.provider == "alphavantage":
            status, ctype, body = self.fake.alphavantage(req)
        else:
            status, ctype, body = self.fake.yahoo(req)
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            if req.path in ("/", "") and status == 404:
                self.send_header(
                    "Set-Cookie", "A3=d=AQABBFake&S=AQAAAFake; Max-Age=31557600; Path=/; SameSite=None"
                )
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout): fine
            pass

    do_GET = _handle
    do_POST = _handle
