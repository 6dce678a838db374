"""Alpha Vantage through the ``alpha_vantage`` package: budgeted quotes and intraday/daily history.

Guarantees (on top of ``base``):
- A local request budget (``per_minute`` in any 60 s window, ``per_day`` per UTC date) is checked
  *before* every request. Out of budget -> the reason "Alpha Vantage budget used up (25/day); next call
  at ..." and no HTTP request. The day's count is kept in ``state_dir/alphavantage-budget.json``
  keyed by UTC date, so a restart (or a second process) does not reset it.
- Throttle replies (HTTP 200 with a "Note" or "Information" key) are never data: they become
  reasons and start an exponential backoff (a daily-limit message also spends the local day budget);
  during the backoff no request is made. ``health()`` shows budget left, backoff and last error.
- Every request is bounded by ``timeout`` (the library sets none): requests get a timeout and each
  call waits on a worker with a hard deadline, so a silent server cannot hang the caller.
- ``fetch`` asks ``GLOBAL_QUOTE`` for symbols not quoted within ``min_refresh`` seconds (others are
  skipped quietly, to spare the budget), rotating the start so no symbol starves. Per quote it
  emits a ``tick`` and a ``1d`` bar. A price carries its own age, never the time it was fetched:
  the tick's ``ts`` is the close of the quote's "07. latest trading day" session at the exchange
  (``quote_time``), or now if that close is still ahead (the session is running: the quote is
  current). A quote whose latest trading day is years ago is therefore stored years ago, and
  shown stale with its date. The tick's volume is 0; the day's volume goes into the ``1d`` bar of
  the latest trading day (still forming: later fetches revise it).
- ``backfill``: 1m/5m/15m/30m/1h from ``TIME_SERIES_INTRADAY`` (raw prices, extended hours; one call
  per month for ranges older than 30 days), 1d from ``TIME_SERIES_DAILY`` (the free tier gives the
  last 100 trading days; an earlier start is reported). Timestamps are read in the series' own time
  zone ("US/Eastern") and labelled by bar start.
- Two instances never interfere: the API URL is rewritten per instance in a ``TimeSeries`` subclass,
  the global ``AlphaVantage._ALPHA_VANTAGE_API_URL`` is never changed. The API key never appears
  in a reason or in ``health()``.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import requests
from alpha_vantage.alphavantage import AlphaVantage
from alpha_vantage.timeseries import TimeSeries

from ..intervals import INTERVALS
from ..markets.calendars import day_start_utc, market_for, symbol_info
from ..models import InvalidEvent, iso, normalize_symbol, utcnow
from .backoff import Backoff
from .base import FetchResult, SourceError, SymbolInfo, UnknownSymbol

NO_KEY = (
    "ALPHAVANTAGE_API_KEY is not set: get a free key at https://www.alphavantage.co/support/#api-key "
    "and put it in the environment or .streamlit/secrets.toml"
)
#: Yahoo-style suffix -> Alpha Vantage suffix (listings Alpha Vantage quotes outside the US)
AV_SUFFIXES = {
    ".L": ".LON",
    ".TO": ".TRT",
    ".V": ".TRV",
    ".DE": ".DEX",
    ".BO": ".BSE",
    ".SS": ".SHH",
    ".SZ": ".SHZ",
}
#: our interval name -> Alpha Vantage TIME_SERIES_INTRADAY interval
AV_INTERVAL = {"1m": "1min", "5m": "5min", "15m": "15min", "30m": "30min", "1h": "60min"}
BUDGET_FILE = "alphavantage-budget.json"


class _Throttled(Exception):
    def __init__(self, key: str, text: str):
        super().__init__(text)
        self.key, self.text = key, text


class _ApiError(Exception):
    """Alpha Vantage answered with "Error Message" or something that is not data."""


def av_symbol(symbol: str) -> str | None:
    """Alpha Vantage's name for a Yahoo-style symbol, or None when it has no quotes for it."""
    if symbol.startswith("^") or symbol.endswith("=X") or market_for(symbol).always_open:
        return None
    dot = symbol.rfind(".")
    if dot > 0:
        suffix = symbol[dot:]
        if suffix in AV_SUFFIXES:
            return symbol[:dot] + AV_SUFFIXES[suffix]
        if len(suffix) <= 3:  # an exchange suffix Alpha Vantage does not cover (BRK.B-like names pass)
            return None
    return symbol


class Budget:
    """Requests allowed per sliding minute and per UTC day; the day count lives in a JSON file."""

    def __init__(
        self, per_minute: int, per_day: int, path: Path | None, clock: Callable[[], datetime] = utcnow
    ):
        self.per_minute, self.per_day, self.path, self._clock = per_minute, per_day, path, clock
        self._minute: deque[float] = deque()
        self._memory: dict[str, int] = {}
        self._lock = threading.Lock()

    def take(self) -> str | None:
        """Spend one request, or return why not (and spend nothing)."""
        with self._lock:
            now = self._clock()
            self._prune(now)
            day = now.date().isoformat()
            with self._file() as counts:
                used = counts.get(day, 0)
                if used >= self.per_day:
                    tomorrow = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
                    return f"Alpha Vantage budget used up ({self.per_day}/day); next call at {iso(tomorrow)}"
                if len(self._minute) >= self.per_minute:
                    at = datetime.fromtimestamp(self._minute[0] + 60, UTC)
                    return f"Alpha Vantage budget used up ({self.per_minute}/min); next call at {iso(at)}"
                counts.clear()
                counts[day] = used + 1
            self._minute.append(now.timestamp())
            return None

    def spend_day(self) -> None:
        """The server says today's limit is reached: believe it."""
        with self._lock, self._file() as counts:
            day = self._clock().date().isoformat()
            used = counts.get(day, 0)
            counts.clear()
            counts[day] = max(used, self.per_day)

    def snapshot(self) -> dict:
        with self._lock:
            now = self._clock()
            self._prune(now)
            with self._file(write=False) as counts:
                used = counts.get(now.date().isoformat(), 0)
            return {
                "per_minute": self.per_minute,
                "per_day": self.per_day,
                "used_today": used,
                "budget_minute_left": max(0, self.per_minute - len(self._minute)),
                "budget_day_left": max(0, self.per_day - used),
            }

    def _prune(self, now: datetime) -> None:
        while self._minute and self._minute[0] <= now.timestamp() - 60:
            self._minute.popleft()

    def _file(self, write: bool = True) -> _Counts:
        return _Counts(self.path, self._memory, write)


class _Counts(dict):
    """Context manager: the per-day counts, read from and written back to the JSON file under flock."""

    def __init__(self, path: Path | None, memory: dict[str, int], write: bool):
        super().__init__()
        self.path, self.memory, self.write = path, memory, write
        self._fd: int | None = None

    def __enter__(self) -> _Counts:
        if self.path is None:
            self.update(self.memory)
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(str(self.path) + ".lock", os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            self.update({k: int(v) for k, v in data.items() if isinstance(v, (int, float))})
        except (OSError, ValueError, AttributeError):
            pass  # missing or damaged: start counting again (never fail a fetch over it)
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            if self.write and exc[0] is None:
                if self.path is None:
                    self.memory.clear()
                    self.memory.update(self)
                else:
                    tmp = self.path.with_suffix(".tmp")
                    tmp.write_text(json.dumps(dict(self)), encoding="utf-8")
                    os.replace(tmp, self.path)
        finally:
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
                os.close(self._fd)


class _Client(TimeSeries):
    """``TimeSeries`` that talks to this instance's URL with a timeout and classifies replies."""

    def __init__(self, key: str, base_url: str | None, timeout: float):
        super().__init__(key=key, output_format="json")
        self._base, self._timeout = base_url, timeout
        self._http = requests.Session()
        self.requests_made = 0

    def _handle_api_call(self, url: str) -> dict:
        default = AlphaVantage._ALPHA_VANTAGE_API_URL
        if self._base and url.startswith(default):
            url = self._base + url[len(default) :]
        self.requests_made += 1
        response = self._http.get(url, timeout=self._timeout, headers=self.headers, proxies=self.proxy)
        if response.status_code >= 400:
            raise _ApiError(f"Alpha Vantage answered HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            raise _ApiError("Alpha Vantage answered something that is not JSON") from None
        if not isinstance(body, dict) or not body:
            raise _ApiError("Alpha Vantage answered an empty reply")
        if "Error Message" in body:
            raise _ApiError(str(body["Error Message"]))
        for key in ("Note", "Information"):
            if key in body:
                raise _Throttled(key, str(body[key]))
        return body


def _base_url(url: str | None) -> str | None:
    if not url:
        return None
    url = url.rstrip("?")
    if not url.rstrip("/").endswith("/query"):
        url = url.rstrip("/") + "/query"
    return url + "?"


class AlphaVantageSource:
    """Alpha Vantage with a request budget; see the module docstring for what it guarantees."""

    name = "alpha_vantage"

    def __init__(
        self,
        api_key: str | None,
        timeout: float = 10.0,
        per_minute: int = 5,
        per_day: int = 25,
        base_url: str | None = None,
        state_dir: str | Path | None = None,
        *,
        min_refresh: float = 60.0,
        backoff_base: float = 60.0,
        backoff_max: float = 3600.0,
        budget_clock: Callable[[], datetime] | None = None,
    ):
        self.api_key = api_key or None
        self.timeout = float(timeout)
        self.base_url = _base_url(base_url)
        self.min_refresh = float(min_refresh)
        path = Path(state_dir) / BUDGET_FILE if state_dir is not None else None
        self.budget = Budget(per_minute, per_day, path, budget_clock or utcnow)  # a clock for tests
        self._backoff = Backoff(backoff_base, backoff_max)
        self._client = _Client(self.api_key, self.base_url, self.timeout) if self.api_key else None
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="alphavantage")
        self._lock = threading.Lock()
        self._quoted: dict[str, float] = {}
        self._cursor = 0
        self._last_error: str | None = None
        self._last_error_at: str | None = None
        self._last_success_at: str | None = None

    # -- public -----------------------------------------------------------------------------------
    def fetch(self, symbols: Sequence[str]) -> FetchResult:
        result = FetchResult()
        wanted = result.symbols(symbols)
        if not wanted or self._refuse(wanted, result):
            return self._done(result)
        with self._lock:
            start = self._cursor % len(wanted)
            self._cursor += 1
            order = wanted[start:] + wanted[:start]
            mono = time.monotonic()
            due = [s for s in order if mono - self._quoted.get(s, -math.inf) >= self.min_refresh]
        calls: dict[str, str] = {}
        for symbol in due:
            name = av_symbol(symbol)
            if name is None:
                result.errors[symbol] = _unsupported(symbol)
                continue
            refusal = self.budget.take()
            if refusal:
                result.errors[symbol] = refusal
                continue
            calls[symbol] = name
        now = utcnow()
        deadline = time.monotonic() + self.timeout
        client = self._api()
        futures = {s: self._pool.submit(client.get_quote_endpoint, name) for s, name in calls.items()}
        for symbol, future in futures.items():
            body, reason = self._wait(future, deadline)
            if reason:
                result.errors[symbol] = reason
                continue
            quote = body[0] if isinstance(body, tuple) else body
            if not quote:
                result.errors[symbol] = f"Alpha Vantage does not know {symbol} (empty Global Quote)"
                continue
            with self._lock:
                self._quoted[symbol] = time.monotonic()
            try:
                result.add_checked(self._quote_events(symbol, quote, now), symbol=symbol)
            except (KeyError, ValueError, TypeError) as exc:
                result.errors[symbol] = f"Alpha Vantage's quote for {symbol} is malformed: {exc}"
        return self._done(result)

    def backfill(self, symbol: str, start: datetime, end: datetime, interval: str) -> FetchResult:
        result = FetchResult()
        args = result.backfill_args(symbol, start, end)
        if args is None:
            return result
        symbol, start, end = args
        if interval not in AV_INTERVAL and interval != "1d":
            result.errors[symbol] = (
                f"Alpha Vantage has no {interval!r} history here; use one of {', '.join([*AV_INTERVAL, '1d'])}"
            )
            return result
        if self._refuse([symbol], result):
            return self._done(result)
        name = av_symbol(symbol)
        if name is None:
            result.errors[symbol] = _unsupported(symbol)
            return self._done(result)
        now = utcnow()
        end = min(end, now)
        if start >= end:
            return result
        series: dict[str, dict] = {}
        tz = "US/Eastern"
        deadline = time.monotonic() + self.timeout
        for kwargs in self._history_calls(name, start, now, interval):
            refusal = self.budget.take()
            if refusal:
                result.errors[symbol] = refusal
                break
            client = self._api()
            call = client.get_daily if interval == "1d" else client.get_intraday
            body, reason = self._wait(self._pool.submit(call, **kwargs), deadline)
            if reason:
                result.errors[symbol] = reason
                break
            data, meta = body
            tz = next((v for k, v in (meta or {}).items() if k.endswith("Time Zone")), tz)
            series.update(data or {})
        events = [
            e
            for e in self._series_events(symbol, interval, series, tz, now)
            if e["open"] is None or start <= e["ts"] < end
        ]
        result.add_checked(events, symbol=symbol)
        if interval == "1d" and series and symbol not in result.errors:
            first = min(series)
            if date.fromisoformat(first[:10]) > start.date() + timedelta(days=4):
                result.errors[symbol] = (
                    f"Alpha Vantage's free tier gives the last 100 trading days of daily "
                    f"bars; history starts at {first}"
                )
        return self._done(result)

    def lookup(self, symbol: str) -> SymbolInfo:
        try:
            symbol = normalize_symbol(symbol)
        except InvalidEvent as exc:
            raise UnknownSymbol(exc.reason) from None
        if self._client is None:
            raise SourceError(NO_KEY)
        name = av_symbol(symbol)
        if name is None:
            raise UnknownSymbol(_unsupported(symbol))
        probe = FetchResult()
        if self._refuse([symbol], probe):
            raise SourceError(probe.errors[symbol])
        refusal = self.budget.take()
        if refusal:
            raise SourceError(refusal)
        body, reason = self._wait(
            self._pool.submit(self._client.get_quote_endpoint, name), time.monotonic() + self.timeout
        )
        if reason:
            self._done(FetchResult(errors={symbol: reason}))
            raise SourceError(reason)
        if not (body[0] if isinstance(body, tuple) else body):
            raise UnknownSymbol(f"Alpha Vantage does not know {symbol} (empty Global Quote)")
        self._done(FetchResult(), succeeded=True)
        return symbol_info(symbol)

    def health(self) -> dict:
        return {
            "source": self.name,
            "api_key_set": self.api_key is not None,
            "base_url": (self.base_url or AlphaVantage._ALPHA_VANTAGE_API_URL).rstrip("?"),
            "timeout": self.timeout,
            "min_refresh": self.min_refresh,
            "requests": self._client.requests_made if self._client else 0,
            "last_error": self._last_error,
            "last_error_at": self._last_error_at,
            "last_success_at": self._last_success_at,
            **self.budget.snapshot(),
            **self._backoff.snapshot(),
        }

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- helpers ----------------------------------------------------------------------------------
    def _api(self) -> _Client:
        """The API client; raises ``SourceError`` (no key) when there is none. Callers have already
        passed ``_refuse``, which answers for a missing key, so this never raises there."""
        if self._client is None:
            raise SourceError(NO_KEY)
        return self._client

    def _refuse(self, symbols: Sequence[str], result: FetchResult) -> bool:
        """Fill reasons and return True when no request may be made at all."""
        if self._client is None:
            reason = NO_KEY
        elif self._backoff.left() > 0:
            reason = (
                f"Alpha Vantage throttled us ({self._backoff.reason}); "
                f"retry in {math.ceil(self._backoff.left())}s"
            )
        else:
            return False
        for symbol in symbols:
            result.errors[symbol] = reason
        return True

    def _wait(self, future: Any, deadline: float) -> tuple[Any, str | None]:
        """The call's answer, or a reason (throttles start the backoff here)."""
        try:
            return future.result(timeout=max(0.0, deadline - time.monotonic())), None
        except FutureTimeout:
            future.cancel()
            return None, f"no answer from Alpha Vantage within {self.timeout:g}s"
        except requests.exceptions.Timeout:
            return None, f"no answer from Alpha Vantage within {self.timeout:g}s"
        except requests.exceptions.RequestException as exc:
            return None, f"cannot reach Alpha Vantage: {self._mask(str(exc))[:160]}"
        except _Throttled as exc:
            text = exc.text
            if exc.key == "Information" and "premium endpoint" in text.lower():
                return None, f"Alpha Vantage: this needs a premium plan ({text[:80]}...)"
            if exc.key == "Information" and ("per day" in text.lower() or "daily" in text.lower()):
                self.budget.spend_day()
            delay = self._backoff.hit(f'"{exc.key}" reply')
            return None, (
                f'Alpha Vantage throttled the request ("{exc.key}": {self._mask(text)[:90]}...); '
                f"backing off {math.ceil(delay)}s"
            )
        except _ApiError as exc:
            return None, f"Alpha Vantage refused: {self._mask(str(exc))[:160]}"
        except KeyError as exc:
            return None, f"Alpha Vantage's answer has no {exc} section"

    def _mask(self, text: str) -> str:
        return text.replace(self.api_key, "***") if self.api_key else text

    def _done(self, result: FetchResult, succeeded: bool = False) -> FetchResult:
        now = iso(utcnow())
        if result.errors:
            symbol, reason = next(iter(result.errors.items()))
            self._last_error, self._last_error_at = f"{symbol}: {reason}", now
        if result.events or succeeded:
            self._last_success_at = now
            self._backoff.ok()
        return result

    def _quote_events(self, symbol: str, q: dict, now: datetime) -> list[dict]:
        market = market_for(symbol)
        o, h, lo, c = (float(q[k]) for k in ("02. open", "03. high", "04. low", "05. price"))
        h, lo = max(h, o, c), min(lo, o, c)
        day = date.fromisoformat(q["07. latest trading day"])
        at = quote_time(day, market.timezone, market.close, now)
        common = dict(
            symbol=symbol,
            source=self.name,
            fetched_at=now,
            exchange=market.exchange,
            currency=market.currency,
            timezone=market.timezone,
            schema=1,
        )
        return [
            dict(interval="tick", ts=at, open=c, high=c, low=c, close=c, volume=0.0, **common),
            dict(
                interval="1d",
                ts=day_start_utc(day, market.timezone),
                open=o,
                high=h,
                low=lo,
                close=c,
                volume=float(q["06. volume"]),
                **common,
            ),
        ]

    def _history_calls(self, name: str, start: datetime, now: datetime, interval: str) -> list[dict]:
        if interval == "1d":
            return [dict(symbol=name, outputsize="compact")]
        step = INTERVALS[interval].seconds
        base = dict(symbol=name, interval=AV_INTERVAL[interval], adjusted="false")
        if start >= now - timedelta(days=29):
            size = "compact" if (now - start).total_seconds() <= 100 * step else "full"
            return [dict(base, outputsize=size)]
        months, d = [], date(start.year, start.month, 1)
        while d <= now.date():
            months.append(dict(base, outputsize="full", month=f"{d.year:04d}-{d.month:02d}"))
            d = (d + timedelta(days=32)).replace(day=1)
        return months

    def _series_events(
        self, symbol: str, interval: str, series: dict[str, dict], tz: str, now: datetime
    ) -> list[dict]:
        market = market_for(symbol)
        try:
            zone = ZoneInfo(tz)
        except (KeyError, ValueError):
            zone = ZoneInfo(market.timezone)
        common = dict(
            symbol=symbol,
            interval=interval,
            source=self.name,
            fetched_at=now,
            exchange=market.exchange,
            currency=market.currency,
            timezone=market.timezone,
            schema=1,
        )
        events = []
        for stamp, bar in sorted(series.items()):
            try:
                if interval == "1d":
                    ts = day_start_utc(date.fromisoformat(stamp[:10]), market.timezone)
                else:
                    ts = datetime.fromisoformat(stamp).replace(tzinfo=zone).astimezone(UTC)
                o, h, lo, c = (float(bar[k]) for k in ("1. open", "2. high", "3. low", "4. close"))
                volume = float(bar.get("5. volume", 0))
            except (KeyError, ValueError, TypeError):
                events.append(dict(common, ts=now, open=None))  # fails validation with a reason
                continue
            events.append(
                dict(common, ts=ts, open=o, high=max(h, o, c), low=min(lo, o, c), close=c, volume=volume)
            )
        return events


def quote_time(day: date, tz: str | None, close: dt_time | None, now: datetime) -> datetime:
    """When a GLOBAL_QUOTE's price is from (aware UTC): the close of its "latest trading day"
    session, ``close`` local time in the exchange's zone ``tz``, capped at ``now`` (a session still
    running is quoted as of now). With no zone or close known, the date at 00:00 UTC (the start of
    that UTC day: it under-states freshness, never over-states it). Never the fetch time for a
    past day. Raises ``ZoneInfoNotFoundError`` for an unknown ``tz``."""
    if tz is None or close is None:
        return datetime.combine(day, dt_time(0), UTC)
    return min(datetime.combine(day, close, ZoneInfo(tz)).astimezone(UTC), now)


def _unsupported(symbol: str) -> str:
    return (
        f"Alpha Vantage has no quotes for {symbol} here: only stocks/ETFs in the US and on a few "
        "exchanges (.L, .TO, .V, .DE, .BO, .SS, .SZ); no indices, FX or crypto"
    )
