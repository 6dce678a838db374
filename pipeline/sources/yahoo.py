"""Yahoo Finance through yfinance: live quotes or 1-minute bars for the live view, history for backfill.

Guarantees (on top of ``base``):
- With ``live="quote"`` (what ``make_source`` builds for ``STOCKMON_YAHOO_LIVE=poll`` and what the
  streamer's fallback polls with) ``fetch`` is ``quotes``: one request to Yahoo's quote API
  (``/v7/finance/quote?symbols=A,B,...``, the endpoint yfinance's ``info`` reads) per batch of up
  to ``QUOTE_BATCH`` symbols, not one chart request per symbol: 50 symbols cost one request a poll.
  Each quoted symbol gives a ``tick`` at ``regularMarketPrice``/``regularMarketTime`` whose volume is
  the increase of ``regularMarketVolume`` (``tick_volume.TickVolume``: the session's count; crypto's
  rolling 24-hour figure), and, while ``marketState`` is PRE or POST, a tick at the extended-hours
  price and time (``preMarketPrice``/``postMarketPrice``; volume 0: Yahoo gives no extended-hours
  volume there). A quote with the time and figure of the symbol's previous tick gives no tick (no
  new trade: nights and weekends publish nothing); the same time with a higher figure (the closing
  auction) is stamped 1 ms later so it cannot replace the earlier tick's volume. A symbol Yahoo
  leaves out of the answer is "Yahoo Finance does not know X: not in its quote answer". Minute bars
  are then built from these samples by the bar builder: a minute's high and low are those of the
  samples (every 24 s for 50 symbols at the default budget), a minute without one stays empty, and
  the provider's official daily bar (``pipeline.official_days``) replaces the day once it settled.
- With ``live="chart"`` (the default of this class; the streamer uses it for symbols the stream does
  not cover) ``fetch`` returns, per symbol, the last ``live_bars`` 1-minute bars (the newest still forming,
  pre/post market included) and a ``tick`` at the chart's ``regularMarketPrice``/``regularMarketTime``
  (volume 0: Yahoo gives no per-trade volume). Exchange, currency and time zone come from the chart
  meta. Prices are as traded (``auto_adjust=False``). Symbols are fetched in parallel.
- Empty frames, all-NaN frames ("N rows, all without prices"), unknown symbols ("Yahoo Finance does not
  know XYZ: No data found, symbol may be delisted"), timeouts and HTTP 429 become per-symbol reasons;
  rows with NaN prices are dropped (counted in ``health()``); nothing escapes ``fetch``.
- HTTP 429 / ``YFRateLimitError`` starts an exponential backoff with jitter; while it lasts, every call
  answers "rate limited by Yahoo, retry in Ns" *without* a request. ``health()`` shows it.
- One refusal costs one request: after Yahoo's first 429 in a call the session sends nothing more in
  that call (yfinance would otherwise try its other cookie strategy, the consent page, a second crumb
  and the chart again: 9 requests measured against the fake server). The refused requests are
  answered locally with the 429 Yahoo gave (``requests_withheld`` in ``health()``).
- A 429 never poisons later calls: yfinance 1.7 keeps the refusal's body ("Edge: Too Many
  Requests") as its crumb for the life of the process (``YfData._get_crumb_basic`` stores the text
  before it checks the status) and sends it with every later request. After a call that met a 429,
  yfinance's crumb, cookie, cookie strategy and saved cookie are reset (``crumb_resets``), so the
  first call after the backoff fetches a fresh cookie and crumb.
- Every call is bounded by ``timeout``: the HTTP session clamps each request (cookie, crumb and chart
  requests included) to the time left before one deadline per call. ``backfill`` stops at the first
  failing request, so a silent server costs one ``timeout``.
- ``backfill`` of a range in which the market has no session (weekend, holiday) that Yahoo answers
  with an empty chart returns no bars and no reason: that is the expected answer.
- 100x unit mix-ups in a series quoted in a minor unit (``GBp``, ``ZAc``, ``ILA``) are repaired
  before publishing by the rule in ``pipeline.repairs`` (the chart's ``regularMarketPrice`` is the
  anchor); each repaired bar is listed in ``FetchResult.repairs`` with its reason.
- A daily ``backfill`` also returns the splits and dividends Yahoo's answer carries
  (``FetchResult.actions``, see ``pipeline.corporate_actions``). Prices are as Yahoo serves them:
  split-adjusted history, dividends not taken out.
- ``backfill`` keeps a daily/weekly bar when its exchange session date is in the requested range
  (first and last session included on every exchange, east or west of UTC); intraday bars by instant.
- ``backfill`` respects Yahoo's limits: 1m bars only for the last 30 days, at most 7 days per request;
  2m..30m for 60 days; 1h for 730 days; daily/weekly for any range (one request). A clipped range is
  reported as a reason next to the bars that were returned.
- yfinance is process-global (one session, one cache folder, one config). Calls from all instances
  are serialised by one lock, and each call installs its own session and cache folder (under
  ``cache_dir``, never the home folder). With ``base_url`` the session sends every Yahoo host
  (query1/query2.finance.yahoo.com, fc.yahoo.com, guce.yahoo.com, ...) to that URL instead.
- With a ``budget`` (``pipeline.sources.budget.RequestBudget``) a slot is taken before every chart
  call and every quote request: ``fetch`` never waits (a symbol without a slot gets "request budget spent ..."), ``backfill``
  waits in the budget's priority queue (``priority=REPAIR`` for gap repair goes before backfill
  chunks) for at most ``budget_wait_s``, ``lookup`` for at most ``timeout``. ``min_interval(n)`` is
  the shortest polling interval the budget sustains for ``n`` symbols. Chart requests yfinance makes
  on its own (its one-off time-zone probe per symbol) are charged to the budget after the call.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from typing import Any, TypeGuard
from urllib.parse import unquote, urlsplit

import pandas as pd
import requests
import yfinance as yf
from yfinance import cache as yf_cache
from yfinance.data import YfData
from yfinance.exceptions import YFRateLimitError, YFTzMissingError

from .. import corporate_actions
from ..markets.calendars import market_for, session_date, trades_between
from ..models import InvalidEvent, iso, normalize_symbol, to_utc, utcnow
from ..repairs import apply as apply_repair
from ..repairs import unit_mixups
from .backoff import Backoff
from .base import FetchResult, SourceError, SymbolInfo, UnknownSymbol
from .budget import BACKFILL, LIVE, LIVE_PLAN_SHARE, BudgetClosed, BudgetTimeout, RequestBudget
from .tick_volume import TickVolume

log = logging.getLogger(__name__)

# pandas deprecation chatter from inside yfinance (after its import: it installs its own filter)
warnings.filterwarnings("ignore", module="yfinance")

USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)


@dataclass(frozen=True)
class Limit:
    yahoo: str  # interval name sent to Yahoo
    per_request: timedelta | None
    max_age: timedelta | None


#: our interval name -> what Yahoo calls it and how much history it serves
LIMITS = {
    "1m": Limit("1m", timedelta(days=7), timedelta(days=30)),
    "2m": Limit("2m", timedelta(days=59), timedelta(days=60)),
    "5m": Limit("5m", timedelta(days=59), timedelta(days=60)),
    "15m": Limit("15m", timedelta(days=59), timedelta(days=60)),
    "30m": Limit("30m", timedelta(days=59), timedelta(days=60)),
    "1h": Limit("1h", timedelta(days=729), timedelta(days=730)),
    "1d": Limit("1d", None, None),
    "1wk": Limit("1wk", None, None),
}
META_KEYS = (
    "currency",
    "exchangeName",
    "fullExchangeName",
    "exchangeTimezoneName",
    "regularMarketPrice",
    "regularMarketTime",
    "longName",
    "shortName",
    "instrumentType",
)


class DeadlineExceeded(requests.exceptions.Timeout):
    """The call's time budget is spent (raised before a request would start)."""


class _YahooSessionMixin:
    """Rewrites Yahoo hosts to ``base_url``, clamps every request to the call's deadline and keeps
    the last chart response per symbol so failures can be explained with Yahoo's own words."""

    base_url: str | None = None
    deadline: float | None = None
    timeout_exc: type[Exception] = DeadlineExceeded

    def _setup(self, base_url: str | None) -> None:
        self.base_url = base_url
        self.deadline = None
        self.requests_made = 0
        self.requests_withheld = 0
        self.chart_requests = 0
        self.quote_requests = 0
        self.charts: dict[str, Any] = {}
        self.rate_limited = False

    def request(self, method: str, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        if isinstance(url, bytes):  # requests accepts a bytes URL too
            url = url.decode()
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise self.timeout_exc("time budget for this call is spent")
            given = kwargs.get("timeout")
            kwargs["timeout"] = min(given, left) if isinstance(given, (int, float)) and given > 0 else left
        parts = urlsplit(url)
        if self.rate_limited:  # Yahoo refused once in this call: ask nothing more until the backoff ends
            self.requests_withheld += 1
            return _refused(url)
        if self.base_url and parts.hostname and parts.hostname.endswith("yahoo.com"):
            kwargs["headers"] = {**(kwargs.get("headers") or {}), "X-Original-Host": parts.hostname}
            url = self.base_url + (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.requests_made += 1
        # a mixin: ``request`` comes from the session class it is mixed into (requests' or curl_cffi's),
        # which mypy cannot see from here ("request" undefined in superclass)
        response = super().request(method, url, *args, **kwargs)  # type: ignore[misc]
        if response.status_code == 429:
            self.rate_limited = True
        if "/v7/finance/quote" in parts.path:
            self.quote_requests += 1
        if "/v8/finance/chart/" in parts.path:
            self.chart_requests += 1
            self.charts[unquote(parts.path.rsplit("/", 1)[-1])] = response
        return response


def _refused(url: str) -> requests.Response:
    """The answer to a request the session withholds after a 429: Yahoo's own refusal, made here."""
    response = requests.Response()
    response.status_code = 429
    response.reason = "Too Many Requests"
    response.url = url
    response.headers["Content-Type"] = "text/plain"
    response._content = b"Edge: Too Many Requests"
    return response


def _forget_identity(session: Any) -> None:
    """Reset yfinance's crumb, cookie and cookie strategy, and the cookie it saved on disk (lock
    held by the caller): yfinance 1.7 keeps a refusal's body as its crumb (see the module docstring)."""
    data = YfData(session=session)
    with data._cookie_lock:
        data._crumb, data._cookie, data._cookie_strategy = None, None, "basic"
        session.cookies.clear()
    try:
        yf_cache.get_cookie_cache().store("curlCffi", None)
    except Exception as exc:  # a cache that cannot be written only costs a cookie request later
        log.debug("could not drop yfinance's saved cookie: %s", exc)


class _RequestsSession(_YahooSessionMixin, requests.Session):
    def __init__(self, base_url: str | None):
        super().__init__()
        self._setup(base_url)
        self.headers.update({"User-Agent": USER_AGENT, "Accept": "*/*", "Accept-Language": "en-US,en;q=0.5"})


def _make_session(base_url: str | None) -> Any:
    """A curl_cffi session (browser TLS, what yfinance prefers) for the real Yahoo; plain requests
    for a ``base_url`` (a local fake or proxy speaking plain HTTP)."""
    if base_url:
        return _RequestsSession(base_url)
    try:
        from curl_cffi import requests as curl_requests
    except ImportError:
        return _RequestsSession(None)

    class _CurlSession(_YahooSessionMixin, curl_requests.Session):
        timeout_exc = curl_requests.exceptions.Timeout

        def __init__(self) -> None:
            super().__init__(impersonate="chrome")
            self._setup(None)

    return _CurlSession()


# -- the process-global yfinance state --------------------------------------------------------------
#: Symbols per request to Yahoo's quote API. Yahoo answers far more per request (its own pages ask
#: for dozens at once); 50 keeps the URL short (under 1 KB) and one slow answer small.
QUOTE_BATCH = 50
QUOTE_URL = "https://query1.finance.yahoo.com/v7/finance/quote"
#: Yahoo's ``quoteType`` for crypto pairs, whose ``regularMarketVolume`` is a rolling 24-hour figure.
CRYPTO_QUOTE_TYPE = "CRYPTOCURRENCY"
LIVE_MODES = ("quote", "chart")

_YF_LOCK = threading.RLock()
_ACTIVE: dict[str, Any] = {"session": None, "cache_dir": None}


def _use_cache_dir(path: Path) -> None:
    yf_cache.set_cache_location(str(path))
    # the cache objects keep their open database: drop them so the next use opens the new folder
    yf_cache._TzCacheManager._tz_cache = None
    yf_cache._CookieCacheManager._Cookie_cache = None
    yf_cache._ISINCacheManager._isin_cache = None
    # open them here, in one thread: yfinance creates its sqlite tables lazily and unlocked, and
    # worker threads doing that at the same time fail with "database is locked"
    yf_cache.get_tz_cache().lookup("-")
    yf_cache.get_cookie_cache().lookup("-")


@dataclass
class _Outcome:
    frame: pd.DataFrame | None = None
    meta: dict[str, Any] | None = None
    error: BaseException | None = None


class YahooSource:
    """Yahoo Finance via yfinance; see the module docstring for what it guarantees."""

    name = "yfinance"
    #: its daily bar of a settled session is the exchange's official one (``pipeline.official_days``)
    official_daily = True

    def __init__(
        self,
        cache_dir: str | Path,
        timeout: float = 10.0,
        base_url: str | None = None,
        *,
        live_bars: int = 5,
        backoff_base: float = 30.0,
        backoff_max: float = 900.0,
        max_workers: int = 8,
        budget: RequestBudget | None = None,
        budget_wait_s: float = 900.0,
        live: str = "chart",
    ):
        """``live``: what ``fetch`` asks for, ``"quote"`` (batched quotes) or ``"chart"`` (1-minute
        bars per symbol); see the module docstring. ValueError for anything else."""
        if live not in LIVE_MODES:
            raise ValueError(f"live must be one of {LIVE_MODES}, not {live!r}")
        self.live = live
        self._volumes = TickVolume()
        self._last_quote: dict[str, tuple[int, int]] = {}  # symbol -> (last tick's ts in ms, figure)
        self._quote_lock = threading.Lock()
        self.cache_dir = Path(cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.timeout = float(timeout)
        self.base_url = base_url.rstrip("/") if base_url else None
        self.live_bars = live_bars
        self.max_workers = max_workers
        self._session = _make_session(self.base_url)
        self._backoff = Backoff(backoff_base, backoff_max)
        self.budget = budget
        self.budget_wait_s = float(budget_wait_s)
        self._stats_lock = threading.Lock()
        self._stats: dict[str, Any] = {
            "calls": 0,
            "calls_skipped_in_backoff": 0,
            "nan_rows_dropped": 0,
            "bars_repaired": 0,
            "crumb_resets": 0,
            "last_error": None,
            "last_error_at": None,
            "last_success_at": None,
        }
        with _YF_LOCK:
            if _ACTIVE["cache_dir"] is None:  # from the first instance on, never the home folder
                _use_cache_dir(self.cache_dir)
                _ACTIVE["cache_dir"] = self.cache_dir

    # -- public -----------------------------------------------------------------------------------
    def fetch(self, symbols: Sequence[str]) -> FetchResult:
        if self.live == "quote":
            return self.quotes(symbols)
        result = FetchResult()
        wanted = result.symbols(symbols)
        if not wanted or self._in_backoff(wanted, result):
            return result
        paid = 0
        if self.budget is not None:
            allowed = []
            for symbol in wanted:
                cost = self._cost(symbol)
                if all(self.budget.try_acquire(LIVE) for _ in range(cost)):
                    allowed.append(symbol)
                    paid += cost
                else:
                    result.errors[symbol] = self._budget_reason()
            wanted = allowed
            if not wanted:
                return result
        now = utcnow()
        outcomes = self._run(
            wanted, lambda s: dict(period="1d", interval="1m", prepost=True), paid if self.budget else None
        )
        for symbol in wanted:
            events, _, reason = self._convert(
                symbol, outcomes[symbol], "1m", now, tail=self.live_bars, tick=True, repairs=result.repairs
            )
            result.add_checked(events, symbol=symbol)
            if reason:
                result.errors[symbol] = reason
        self._after(result)
        return result

    def quotes(self, symbols: Sequence[str]) -> FetchResult:
        """Live ticks of ``symbols`` from Yahoo's quote API, ``QUOTE_BATCH`` symbols per request (see
        the module docstring). Never waits for the budget: a batch without a slot gets "request
        budget spent ..." for each of its symbols. Never raises."""
        result = FetchResult()
        wanted = result.symbols(symbols)
        if not wanted or self._in_backoff(wanted, result):
            return result
        for first in range(0, len(wanted), QUOTE_BATCH):
            batch = wanted[first : first + QUOTE_BATCH]
            if self.budget is not None and not self.budget.try_acquire(LIVE):
                for symbol in batch:
                    result.errors[symbol] = self._budget_reason()
                continue
            answer, reason = self._quote_request(batch)
            if reason is not None:
                refused = reason.startswith("rate limited")
                # after a refusal the session withholds the rest anyway: one refusal, one request
                for symbol in wanted[first:] if refused else batch:
                    result.errors[symbol] = reason
                if refused:
                    break
                continue
            with self._quote_lock:
                self._quote_events(batch, answer, utcnow(), result)
        self._after(result)
        return result

    def quote_interval(self, symbols: int) -> float:
        """Shortest interval (s) at which ``quotes`` of ``symbols`` symbols is sustained by the
        request budget on its live share (0 without a budget)."""
        if self.budget is None:
            return 0.0
        return self.budget.sustainable_interval(
            math.ceil(max(1, symbols) / QUOTE_BATCH), share=LIVE_PLAN_SHARE
        )

    def backfill(
        self, symbol: str, start: datetime, end: datetime, interval: str, *, priority: int = BACKFILL
    ) -> FetchResult:
        """See ``Source.backfill``; ``priority`` is this call's place in the request budget's queue."""
        result = FetchResult()
        args = result.backfill_args(symbol, start, end)
        if args is None:
            return result
        symbol, start, end = args
        limit = LIMITS.get(interval)
        if limit is None:
            result.errors[symbol] = f"Yahoo has no {interval!r} history; use one of {', '.join(LIMITS)}"
            return result
        if self._in_backoff([symbol], result):
            return result
        now = utcnow()
        note = None
        if limit.max_age is not None and start < now - limit.max_age:
            earliest = now - limit.max_age + timedelta(minutes=5)
            note = (
                f"Yahoo keeps {interval} bars for the last {limit.max_age.days} days only; "
                f"history starts at {iso(earliest)}"
            )
            start = earliest
        end = min(end, now)
        chunks = _chunks(start, end, limit.per_request)
        empty = None
        for a, b in chunks:

            def params(_symbol: str, a: datetime = a, b: datetime = b) -> dict:
                return dict(start=a, end=b, interval=limit.yahoo, prepost=True)

            paid = self._slot(priority, self.budget_wait_s, symbol, result)
            if paid == 0:
                break
            outcome = self._run([symbol], params, paid)[symbol]
            events, kind, reason = self._convert(
                symbol, outcome, interval, now, repairs=result.repairs, actions=result.actions
            )
            result.add_checked([e for e in events if _in_range(e, start, end)], symbol=symbol)
            if kind == "empty" and not trades_between(market_for(symbol), a, b):
                continue  # a weekend or holiday: no bars is the right answer, not a failure
            if kind in ("empty", "nan") and len(chunks) > 1:
                empty = reason  # a week without trading is no failure while other weeks have bars
            elif reason:
                result.errors[symbol] = reason
                break
        if empty and not result.events and symbol not in result.errors:
            result.errors[symbol] = empty
        if note and symbol not in result.errors:
            result.errors[symbol] = note
        self._after(result)
        return result

    def lookup(self, symbol: str) -> SymbolInfo:
        try:
            symbol = normalize_symbol(symbol)
        except InvalidEvent as exc:
            raise UnknownSymbol(exc.reason) from None
        left = self._backoff.left()
        if left > 0:
            raise SourceError(f"rate limited by Yahoo, retry in {math.ceil(left)}s")
        denied = FetchResult()
        paid = self._slot(LIVE, self.timeout, symbol, denied)
        if paid == 0:
            raise SourceError(denied.errors[symbol])
        outcome = self._run([symbol], lambda s: dict(period="5d", interval="1d"), paid)[symbol]
        meta = outcome.meta if outcome.error is None else None
        if not meta or not meta.get("exchangeTimezoneName"):
            kind, reason = self._explain(symbol, outcome)
            meta = self._chart_meta(symbol) if kind in ("empty", "nan") else None  # known, just no bars
            if not meta or not meta.get("exchangeTimezoneName"):
                failed = FetchResult(errors={symbol: reason})
                self._after(failed)
                if kind == "unknown":
                    raise UnknownSymbol(reason)
                raise SourceError(failed.errors[symbol])
        self._after(FetchResult(), succeeded=True)
        fallback = market_for(symbol)
        return SymbolInfo(
            symbol=symbol,
            name=str(meta.get("longName") or meta.get("shortName") or ""),
            exchange=str(meta.get("fullExchangeName") or meta.get("exchangeName") or fallback.exchange),
            currency=str(meta.get("currency") or fallback.currency),
            timezone=str(meta.get("exchangeTimezoneName") or fallback.timezone),
        )

    def health(self) -> dict:
        with self._stats_lock:
            stats = dict(self._stats)
        return {
            "source": self.name,
            "base_url": self.base_url or "https://query2.finance.yahoo.com",
            "timeout": self.timeout,
            "requests": self._session.requests_made,
            "requests_withheld": self._session.requests_withheld,
            "budget": self.budget.snapshot() if self.budget is not None else None,
            **stats,
            **self._backoff.snapshot(),
        }

    def min_interval(self, symbols: int) -> float:
        """Shortest polling interval (s) the request budget sustains for ``fetch`` of ``symbols``
        symbols (0 without one): one request per ``QUOTE_BATCH`` symbols in quote mode, one per symbol
        in chart mode."""
        if self.budget is None:
            return 0.0
        if self.live == "quote":
            return self.quote_interval(symbols)
        return self.budget.sustainable_interval(max(1, symbols), share=LIVE_PLAN_SHARE)

    # -- calling yfinance -------------------------------------------------------------------------
    def _budget_reason(self) -> str:
        assert self.budget is not None
        snap = self.budget.snapshot()
        caps = ", ".join(f"{c['limit']} per {c['window_s']:g}s" for c in snap["caps"])
        return f"request budget spent ({caps}); next slot in {math.ceil(snap['next_free_s'])}s"

    def _cost(self, symbol: str) -> int:
        """Chart requests one call for ``symbol`` makes: 1, plus yfinance's time-zone probe while
        that symbol's time zone is not in its cache yet."""
        with _YF_LOCK:
            self._activate()
            try:
                known = yf_cache.get_tz_cache().lookup(symbol)
            except Exception:
                known = None
        return 1 if known else 2

    def _slot(self, priority: int, wait_s: float, symbol: str, result: FetchResult) -> int | None:
        """Take the slots one call for ``symbol`` costs (waiting up to ``wait_s`` by ``priority``) and
        return how many (None without a budget); 0, with the reason recorded, when there are none."""
        if self.budget is None:
            return None
        try:
            deadline = time.monotonic() + wait_s
            cost = self._cost(symbol)
            for _ in range(cost):
                self.budget.acquire(priority, timeout_s=max(0.0, deadline - time.monotonic()))
            return cost
        except BudgetTimeout:
            result.errors[symbol] = self._budget_reason()
        except BudgetClosed:
            result.errors[symbol] = "the app is stopping: no more requests to Yahoo"
        return 0

    def _in_backoff(self, symbols: Sequence[str], result: FetchResult) -> bool:
        left = self._backoff.left()
        if left <= 0:
            return False
        for symbol in symbols:
            result.errors[symbol] = f"rate limited by Yahoo, retry in {math.ceil(left)}s"
        with self._stats_lock:
            self._stats["calls_skipped_in_backoff"] += 1
        return True

    def _activate(self) -> None:
        """Install this instance's session and cache folder in the global yfinance (lock held)."""
        if _ACTIVE["cache_dir"] != self.cache_dir:
            _use_cache_dir(self.cache_dir)
            _ACTIVE["cache_dir"] = self.cache_dir
        data = YfData(session=self._session)
        if _ACTIVE["session"] is not self._session:
            # crumbs, cookies and cached responses belong to the previous session's server
            data._crumb, data._cookie, data._cookie_strategy = None, None, "basic"
            YfData.cache_get.cache_clear()
            _ACTIVE["session"] = self._session

    @contextmanager
    def _call(self) -> Iterator[Any]:
        """One call to Yahoo under the global lock: this instance's session installed, a fresh
        refusal flag, one deadline for every request; afterwards yfinance's identity is reset if
        Yahoo refused (see the module docstring). Yields the session."""
        with _YF_LOCK:
            self._activate()
            session = self._session
            session.rate_limited = False
            session.deadline = time.monotonic() + self.timeout
            try:
                yield session
            finally:
                session.deadline = None
                if session.rate_limited:
                    _forget_identity(session)
                    with self._stats_lock:
                        self._stats["crumb_resets"] += 1

    def _run(
        self, symbols: Sequence[str], params: Callable[[str], dict], paid: int | None = None
    ) -> dict[str, _Outcome]:
        """One yfinance history call per symbol, in parallel, under the global lock. ``paid``: the
        budget slots the caller took for it (default one per symbol); chart requests beyond that
        are charged to the budget afterwards."""
        outcomes = {s: _Outcome() for s in symbols}
        with self._call() as session:
            # ``charts`` is kept across calls on purpose: yfinance serves repeated chart requests
            # (time zone probes, past ranges) from its own cache, and then that old answer is the
            # one it acted on
            charts_before = session.chart_requests
            hide = yf.config.debug.hide_exceptions
            yf.config.debug.hide_exceptions = False  # we want the exceptions, not log lines
            pool = ThreadPoolExecutor(
                max_workers=max(1, min(self.max_workers, len(symbols))), thread_name_prefix="yfinance"
            )
            try:
                futures = {pool.submit(self._history, s, params(s)): s for s in symbols}
                done, _ = wait(futures, timeout=self.timeout + 1.0)
                for future, symbol in futures.items():
                    if future in done:
                        outcomes[symbol] = future.result()
                    else:
                        outcomes[symbol] = _Outcome(error=DeadlineExceeded("no answer in time"))
            finally:
                pool.shutdown(wait=False, cancel_futures=True)
                yf.config.debug.hide_exceptions = hide
            extra = session.chart_requests - charts_before - (len(symbols) if paid is None else paid)
            if extra > 0 and self.budget is not None:  # yfinance's own probes (time zone) count too
                self.budget.charge(extra)
        return outcomes

    def _quote_request(self, batch: Sequence[str]) -> tuple[list[dict], str | None]:
        """One quote API request for ``batch``: (its ``quoteResponse.result`` items, None) or
        ([], the reason it failed)."""
        with self._call() as session:
            sent_before = session.quote_requests
            try:
                body = YfData(session=session).get_raw_json(
                    QUOTE_URL,
                    params={
                        "symbols": ",".join(batch),
                        "formatted": "false",
                        "lang": "en-US",
                        "region": "US",
                    },
                    timeout=self.timeout,
                )
            except Exception as exc:
                if session.rate_limited or isinstance(exc, YFRateLimitError):
                    return [], "rate limited by Yahoo (HTTP 429)"
                kinds = {c.__name__ for c in type(exc).__mro__}
                if kinds & {"Timeout", "TimeoutError", "ReadTimeout", "ConnectTimeout"}:
                    return [], f"no answer from Yahoo within {self.timeout:g}s"
                if kinds & {"ConnectionError", "DNSError"}:
                    return [], f"cannot reach Yahoo ({type(exc).__name__}): {str(exc)[:120]}"
                return [], f"Yahoo's quote API failed: {type(exc).__name__}: {str(exc)[:160]}"
            finally:
                extra = session.quote_requests - sent_before - 1  # yfinance retries with another cookie
                if extra > 0 and self.budget is not None:
                    self.budget.charge(extra)
        answer = body.get("quoteResponse") if isinstance(body, dict) else None
        items = answer.get("result") if isinstance(answer, dict) else None
        if not isinstance(items, list):
            error = answer.get("error") if isinstance(answer, dict) else None
            return [], f"Yahoo's quote API answered without quotes: {str(error or body)[:160]}"
        return [q for q in items if isinstance(q, dict)], None

    def _quote_events(
        self, batch: Sequence[str], items: list[dict], now: datetime, result: FetchResult
    ) -> None:
        """Ticks from one quote answer (see the module docstring) into ``result``."""
        by_symbol: dict[str, dict] = {}
        for item in items:
            try:
                by_symbol[normalize_symbol(str(item.get("symbol", "")))] = item
            except InvalidEvent:
                continue
        for symbol in batch:
            q = by_symbol.get(symbol)
            if q is None:
                result.errors[symbol] = f"Yahoo Finance does not know {symbol}: not in its quote answer"
                continue
            try:
                self._quote_ticks(symbol, q, now, result)
            except (ValueError, OverflowError, OSError, KeyError, TypeError) as exc:  # one odd quote
                result.errors[symbol] = f"Yahoo's quote for {symbol} is unusable: {type(exc).__name__}: {exc}"

    def _quote_ticks(self, symbol: str, q: dict, now: datetime, result: FetchResult) -> None:
        """The ticks of one quote (lock held). A quote whose market time and volume figure are those
        of the symbol's previous tick is no new trade and gives none; one with the same time and a
        higher figure (the closing auction's volume arrives after the last trade's time) is stamped
        1 ms later, since ticks are keyed by (symbol, ts) and a repeat would replace the earlier
        tick's volume."""
        price, at = q.get("regularMarketPrice"), q.get("regularMarketTime")
        if not _positive(price) or not _positive(at):
            result.errors[symbol] = f"Yahoo's quote for {symbol} has no regular-market price and time"
            return
        figure = q.get("regularMarketVolume")
        figure = int(figure) if _positive(figure) else 0
        at_ms = int(at * 1000)
        last = self._last_quote.get(symbol)
        market = market_for(symbol, timezone=q.get("exchangeTimezoneName") or None)
        ticks = []
        if last is None or at_ms > last[0] or figure > last[1]:
            at_ms = at_ms if last is None or at_ms > last[0] else last[0] + 1
            self._last_quote[symbol] = (at_ms, max(figure, last[1] if last else 0))
            ts = datetime.fromtimestamp(at_ms / 1000, UTC)
            if q.get("quoteType") == CRYPTO_QUOTE_TYPE or market.always_open:
                volume = self._volumes.rolling(symbol, ts, figure)
            else:
                volume = self._volumes.session(symbol, ts, market.timezone, figure)
            ticks.append((ts, float(price), float(volume)))
        extended = {"PRE": "preMarket", "POST": "postMarket"}.get(str(q.get("marketState") or ""))
        if extended:
            xp, xt = q.get(f"{extended}Price"), q.get(f"{extended}Time")
            if _positive(xp) and _positive(xt) and xt > at:
                x_ms = int(xt * 1000)
                seen = self._last_quote.get(f"{symbol} {extended}")
                if seen is None or x_ms > seen[0]:
                    self._last_quote[f"{symbol} {extended}"] = (x_ms, 0)
                    ticks.append((datetime.fromtimestamp(x_ms / 1000, UTC), float(xp), 0.0))
        common = dict(
            symbol=symbol,
            interval="tick",
            source=self.name,
            fetched_at=now,
            exchange=str(q.get("fullExchangeName") or q.get("exchange") or market.exchange)[:64],
            currency=str(q.get("currency") or market.currency)[:64],
            timezone=market.timezone,
            schema=1,
        )
        result.add_checked(
            (
                dict(ts=ts, open=price_, high=price_, low=price_, close=price_, volume=volume_, **common)
                for ts, price_, volume_ in ticks
            ),
            symbol=symbol,
        )

    def _history(self, symbol: str, kwargs: dict) -> _Outcome:
        try:
            ticker = yf.Ticker(symbol, session=self._session)
            daily = kwargs.get("interval") in ("1d", "1wk", "5d", "1mo", "3mo")
            frame = ticker.history(  # daily answers carry the splits and dividends (events=div,splits)
                auto_adjust=False, keepna=True, actions=daily, timeout=self.timeout, **kwargs
            )
            md = ticker.get_history_metadata()
            meta = {k: md[k] for k in META_KEYS if k in md}
            return _Outcome(frame=frame, meta=meta)
        except Exception as exc:  # every failure becomes a reason
            return _Outcome(error=exc)

    # -- making sense of the answer ---------------------------------------------------------------
    def _chart_meta(self, symbol: str) -> dict | None:
        response = self._session.charts.get(symbol)
        try:
            return response.json()["chart"]["result"][0]["meta"]
        except Exception:
            return None

    def _explain(self, symbol: str, outcome: _Outcome) -> tuple[str, str]:
        """Classify a failure as (kind, reason) from what Yahoo answered and what yfinance raised."""
        err = outcome.error
        if isinstance(err, YFRateLimitError) or self._session.rate_limited:
            return "rate", "rate limited by Yahoo (HTTP 429)"
        kinds = {c.__name__ for c in type(err).__mro__} if err is not None else set()
        if kinds & {"Timeout", "TimeoutError", "ReadTimeout", "ConnectTimeout"}:  # requests or curl_cffi
            return "timeout", f"no answer from Yahoo within {self.timeout:g}s"
        response = self._session.charts.get(symbol)
        if response is not None:
            try:
                body = response.json()
            except Exception:
                body = None
            chart = (body or {}).get("chart") or {}
            error = chart.get("error")
            if error:
                text = error.get("description") or error.get("code") or f"HTTP {response.status_code}"
                if response.status_code == 404 or error.get("code") == "Not Found":
                    return "unknown", f"Yahoo Finance does not know {symbol}: {text}"
                return "error", f"Yahoo refused the request for {symbol}: {text}"
            if isinstance(err, YFTzMissingError):  # its chart probe answered without a time zone
                return "unknown", f"Yahoo Finance does not know {symbol}: no data found, no time zone"
            if body is None:
                return "error", f"Yahoo answered HTTP {response.status_code} without JSON for {symbol}"
            try:
                res = chart["result"][0]
                stamps = res.get("timestamp") or []
                closes = res["indicators"]["quote"][0].get("close") or []
            except (KeyError, IndexError, TypeError):
                stamps, closes = [], []
            if not stamps:
                return "empty", f"Yahoo returned no bars for {symbol} (empty chart)"
            if all(c is None for c in closes):
                return "nan", f"Yahoo returned {len(stamps)} rows for {symbol}, all without prices (NaN)"
        if isinstance(err, YFTzMissingError):
            return "unknown", f"Yahoo Finance does not know {symbol}: no data found, no time zone"
        if err is None:
            return "empty", f"Yahoo returned no bars for {symbol}"
        if kinds & {"ConnectionError", "DNSError"}:
            return "down", f"cannot reach Yahoo ({type(err).__name__}): {str(err)[:120]}"
        return "error", f"yfinance failed for {symbol}: {type(err).__name__}: {str(err)[:160]}"

    def _convert(
        self,
        symbol: str,
        outcome: _Outcome,
        interval: str,
        now: datetime,
        tail: int | None = None,
        tick: bool = False,
        repairs: list[dict] | None = None,
        actions: list[dict] | None = None,
    ) -> tuple[list[dict], str, str | None]:
        """Events from a yfinance frame, and (kind, reason) when there are none. 100x unit mix-ups
        (``pipeline.repairs``) are repaired in the bars and, with ``repairs``, recorded there."""
        frame, meta = outcome.frame, outcome.meta or {}
        if outcome.error is not None or frame is None or frame.empty:
            return [], *self._explain(symbol, outcome)
        missing = [c for c in ("Open", "High", "Low", "Close") if c not in frame.columns]
        if missing:
            return [], "error", f"Yahoo's answer for {symbol} has no {', '.join(missing)} column"
        priced = frame.dropna(subset=["Open", "High", "Low", "Close"])
        with self._stats_lock:
            self._stats["nan_rows_dropped"] += len(frame) - len(priced)
        if priced.empty:
            return [], "nan", f"Yahoo returned {len(frame)} rows for {symbol}, all without prices (NaN)"
        if tail:
            priced = priced.tail(tail)
        fallback = market_for(symbol)
        if actions is not None:  # from the whole frame: yfinance adds an event's date as a row without prices
            tz = str(meta.get("exchangeTimezoneName") or fallback.timezone)
            actions.extend(corporate_actions.from_frame(frame, symbol, tz, self.name, now))
        common = dict(
            source=self.name,
            fetched_at=now,
            exchange=str(meta.get("fullExchangeName") or meta.get("exchangeName") or fallback.exchange)[:64],
            currency=str(meta.get("currency") or fallback.currency)[:64],
            timezone=str(meta.get("exchangeTimezoneName") or fallback.timezone)[:64],
        )
        events: list[dict] = []
        repaired = 0
        # column arrays, not iterrows: a 30-day 1m backfill is ~40,000 rows (iterrows cost 7 s of it)
        opens, highs, lows, closes = (
            priced[k].to_numpy(dtype=float) for k in ("Open", "High", "Low", "Close")
        )
        volumes = (
            priced["Volume"].to_numpy(dtype=float, na_value=0.0)
            if "Volume" in priced
            else [0.0] * len(priced)
        )
        for ts, o, h, lo, c, volume in zip(priced.index, opens, highs, lows, closes, volumes, strict=True):
            o, h, lo, c = float(o), float(h), float(lo), float(c)
            if h < max(o, c) or lo > min(o, c):  # Yahoo's 1-cent glitches: widen, do not drop
                h, lo, repaired = max(h, o, c), min(lo, o, c), repaired + 1
            volume = 0.0 if math.isnan(volume) else float(volume)
            events.append(
                dict(
                    symbol=symbol,
                    interval=interval,
                    ts=_utc(ts),
                    open=o,
                    high=h,
                    low=lo,
                    close=c,
                    volume=volume,
                    schema=1,
                    **common,
                )
            )
        price, at = meta.get("regularMarketPrice"), meta.get("regularMarketTime")
        anchor = float(price) if isinstance(price, (int, float)) and math.isfinite(price) else None
        mixups = unit_mixups(events, str(common["currency"]), anchor, _utc(at) if at is not None else None)
        for fix in mixups:
            before = events[fix.index]
            events[fix.index] = apply_repair(before, fix)
            if repairs is not None:
                repairs.append(
                    dict(
                        symbol=symbol,
                        interval=interval,
                        ts=before["ts"],
                        kind="unit_100x",
                        factor=fix.factor,
                        fields=list(fix.fields),
                        reason=fix.reason,
                        before={k: before[k] for k in ("open", "high", "low", "close")},
                        after={k: events[fix.index][k] for k in ("open", "high", "low", "close")},
                        currency=common["currency"],
                        source=self.name,
                        found_at=now,
                    )
                )
        repaired += len(mixups)
        if repaired:
            with self._stats_lock:
                self._stats["bars_repaired"] += repaired
        if tick and isinstance(price, (int, float)) and math.isfinite(price) and price > 0 and at is not None:
            events.append(
                dict(
                    symbol=symbol,
                    interval="tick",
                    ts=_utc(at),
                    open=price,
                    high=price,
                    low=price,
                    close=price,
                    volume=0.0,
                    schema=1,
                    **common,
                )
            )
        return events, "ok", None

    def _after(self, result: FetchResult, succeeded: bool = False) -> None:
        """Start/extend the backoff on HTTP 429, end it on success; keep the health numbers."""
        now = iso(utcnow())
        rate_limited = [s for s, reason in result.errors.items() if reason.startswith("rate limited")]
        if rate_limited:
            delay = self._backoff.hit("HTTP 429 from Yahoo")
            for symbol in rate_limited:
                result.errors[symbol] = f"rate limited by Yahoo (HTTP 429), retry in {math.ceil(delay)}s"
        elif result.events or succeeded:
            self._backoff.ok()
        with self._stats_lock:
            self._stats["calls"] += 1
            if result.errors:
                symbol, reason = next(iter(result.errors.items()))
                self._stats["last_error"], self._stats["last_error_at"] = f"{symbol}: {reason}", now
            if result.events:
                self._stats["last_success_at"] = now


def _positive(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def _in_range(event: dict, start: datetime, end: datetime) -> bool:
    """Is a converted bar inside the requested ``start``..``end`` (UTC)? An intraday bar by its
    instant; a daily or weekly bar by its exchange session date, from ``start``'s UTC date up to
    the day before ``end``'s: Yahoo stamps a day at local midnight (``WSU.DE``'s 4 August is
    3 August 22:00 UTC), so an instant test would drop the first session east of UTC."""
    if event["interval"] not in ("1d", "1wk"):
        return start <= event["ts"] < end
    day = session_date(event["ts"], event["timezone"])
    return start.date() <= day and (day < end.date() or (day == end.date() and end.time() != dt_time(0)))


def _utc(value: Any) -> datetime:
    if isinstance(value, pd.Timestamp):
        if value.tzinfo is None:
            value = value.tz_localize("UTC")
        return value.tz_convert("UTC").to_pydatetime()
    return to_utc(value)


def _chunks(start: datetime, end: datetime, span: timedelta | None) -> list[tuple[datetime, datetime]]:
    if start >= end:
        return []
    if span is None:
        return [(start, end)]
    out, a = [], start
    while a < end:
        b = min(end, a + span)
        out.append((a, b))
        a = b
    return out
