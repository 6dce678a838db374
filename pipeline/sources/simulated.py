"""The offline default: a simulated market that looks and moves like real large-cap stocks.

Model (per symbol, see ``PROFILES``):
- Geometric Brownian motion with fat tails: log-return over ``dt`` years is
  ``(mu - sigma^2/2) dt + sigma sqrt(dt) z`` where ``z`` is Student-t (5 degrees of freedom) scaled
  to unit variance. Drift/volatility are close to the 2013-2023 figures of the big US names.
- Correlation through one market factor: ``z = beta m + sqrt(1 - beta^2) e``; with beta 0.67 any two
  stocks correlate at about 0.45.
- Time: ``dt`` is the wall-clock time since the symbol's last step, counted as *trading* time
  (one year = 252 days x 6.5 h). The simulated market never closes: it moves 24/7 at trading-hour
  speed, so a live chart moves like a real one during the session, at any hour. Daily history
  (``backfill`` with 1d/1wk) instead steps one session of the exchange's calendar at a time (no
  weekends, no holidays; every day for crypto, weekdays for FX), in either ``hours`` mode.
- Volume follows the exchange's U-shaped intraday profile (busy at the open and close, quiet at
  lunch; a small share outside the session), scaled to a realistic average daily volume, with
  noise that grows with the size of the move.

Guarantees:
- ``fetch(symbols)`` emits, per symbol and call, one ``tick`` (volume = volume since the last tick)
  and the current still-forming ``1m`` bar (ts = minute start, OHLC over that minute's ticks,
  cumulative volume, ``fetched_at`` = now), so a later revision of a bar replaces an earlier one.
  ``open`` is the minute's first tick, ``close`` its last, ``high``/``low`` include the extremes of a
  Brownian bridge between ticks, hence ``high >= max(open, close)`` and ``low <= min(open, close)``.
- With a ``seed`` everything is deterministic for the same sequence of calls and clock readings; each
  symbol has its own random stream, so adding a symbol does not change the others' paths.
- ``last_prices`` is asked once per new symbol; a stored price is where that symbol continues from
  (no jump after a restart). ``set_price`` makes the symbol's next tick exactly that price.
- ``hours="calendar"`` (``STOCKMON_SIM_HOURS``): ``fetch`` sends nothing for a symbol whose market is
  not open (holidays, half days, lunch breaks from its exchange calendar) and ``backfill`` has bars
  only inside sessions; ``always`` (the default) keeps the 24/7 behaviour so a demo always moves.
- ``backfill`` bars end at the symbol's current price and are a deterministic function of
  (seed, symbol, interval, bar time), so overlapping backfills agree in shape.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from ..intervals import INTERVALS, INTRADAY_BARS
from ..markets.calendars import (
    Market,
    day_start_utc,
    market_for,
    market_status,
    session_fraction,
    sessions_between,
    symbol_info,
)
from ..models import InvalidEvent, PriceEvent, iso, normalize_symbol, to_utc, utcnow
from .base import FetchResult, SymbolInfo, UnknownSymbol

log = logging.getLogger(__name__)

TRADING_SECONDS_PER_YEAR = 252 * 6.5 * 3600
NU = 5.0  # Student-t degrees of freedom
T_SCALE = math.sqrt((NU - 2.0) / NU)  # makes the t shocks unit variance
OFF_SESSION_SHARE = 0.08  # share of daily volume traded outside the regular session
MAX_BARS = 200_000


@dataclass(frozen=True)
class Profile:
    mu: float  # annualised drift
    sigma: float  # annualised volatility
    price: float  # start price when nothing is stored
    daily_volume: float  # average shares per day
    beta: float = 0.67  # loading on the market factor
    name: str = ""


PROFILES: dict[str, Profile] = {
    "AAPL": Profile(0.22, 0.29, 190.0, 55e6, name="Apple Inc."),
    "AMZN": Profile(0.22, 0.33, 180.0, 45e6, name="Amazon.com, Inc."),
    "GOOG": Profile(0.19, 0.27, 170.0, 22e6, name="Alphabet Inc. (Class C)"),
    "GOOGL": Profile(0.19, 0.27, 168.0, 28e6, name="Alphabet Inc. (Class A)"),
    "META": Profile(0.22, 0.39, 500.0, 15e6, name="Meta Platforms, Inc."),
    "NFLX": Profile(0.32, 0.47, 650.0, 4e6, name="Netflix, Inc."),
    "NVDA": Profile(0.46, 0.45, 120.0, 300e6, name="NVIDIA Corporation"),
    "MSFT": Profile(0.20, 0.27, 420.0, 20e6, name="Microsoft Corporation"),
    "TSLA": Profile(0.40, 0.57, 250.0, 100e6, name="Tesla, Inc."),
    "^GSPC": Profile(0.10, 0.17, 5500.0, 3.5e9, beta=0.95, name="S&P 500"),
    "^IXIC": Profile(0.14, 0.21, 17500.0, 5e9, beta=0.93, name="NASDAQ Composite"),
    "BTC-USD": Profile(0.50, 0.65, 60000.0, 3e4, beta=0.35, name="Bitcoin USD"),
    "EURUSD=X": Profile(0.0, 0.07, 1.08, 0.0, beta=0.15, name="EUR/USD"),
}

#: rough price level per currency unit, so a made-up Tokyo share costs thousands of yen
CURRENCY_SCALE = {
    "JPY": 100.0,
    "KRW": 1000.0,
    "INR": 50.0,
    "GBp": 100.0,
    "ZAc": 100.0,
    "ILA": 100.0,
    "HKD": 5.0,
    "CNY": 5.0,
}


def known_names() -> dict[str, str]:
    """The simulator's names of the symbols it models ("AAPL" -> "Apple Inc."), no I/O."""
    return {symbol: p.name for symbol, p in PROFILES.items() if p.name}


def knows(symbol: str) -> bool:
    """True when ``symbol`` (normalised, "AAPL") is in the simulator's catalogue (``PROFILES``); any
    other ticker is still modelled, with prices invented from its name. No I/O."""
    return symbol in PROFILES


def _key(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def profile_for(symbol: str) -> Profile:
    """The symbol's model; unknown symbols get 0.08/0.30 and a start price derived from the name."""
    if symbol in PROFILES:
        return PROFILES[symbol]
    u = _key(symbol) / 2.0**64
    market = market_for(symbol)
    if symbol.startswith("^"):
        return Profile(0.08, 0.18, round(1000 + 9000 * u, 2), 1e9, beta=0.9)
    if symbol.endswith("=X"):
        return Profile(0.0, 0.08, round(0.5 + 1.5 * u, 4), 0.0, beta=0.15)
    if market.always_open:
        return Profile(0.30, 0.75, round(math.exp(math.log(0.5) + u * math.log(2e4)), 4), 1e6, beta=0.35)
    price = math.exp(math.log(20.0) + u * (math.log(500.0) - math.log(20.0)))
    price *= CURRENCY_SCALE.get(market.currency, 1.0)
    volume = math.exp(math.log(1e6) + ((_key(symbol + "/v") / 2.0**64) * math.log(10.0)))
    return Profile(0.08, 0.30, round(price, 2), round(volume), beta=0.67)


def _decimals(symbol: str, price: float) -> int:
    return 4 if symbol.endswith("=X") or price < 1.0 else 2


def _round(symbol: str, price: float) -> float:
    d = _decimals(symbol, price)
    return max(round(price, d), 10.0**-d)


def _volume_rate(profile: Profile, market: Market, ts: datetime) -> float:
    """Expected shares per second at ``ts`` (U-shaped in the session, thin outside)."""
    if profile.daily_volume <= 0:
        return 0.0
    if market.always_open:
        return profile.daily_volume / 86400.0
    x = session_fraction(ts, market)
    if x is None:
        return profile.daily_volume * OFF_SESSION_SHARE / (86400.0 - market.session_seconds)
    shape = 0.4 + 1.8 * (2.0 * x - 1.0) ** 2  # integrates to 1 over the session
    return profile.daily_volume * (1.0 - OFF_SESSION_SHARE) * shape / market.session_seconds


def _expected_volume(profile: Profile, market: Market, t0: datetime, t1: datetime) -> float:
    seconds = (t1 - t0).total_seconds()
    if seconds <= 0:
        return 0.0
    n = max(1, min(200, math.ceil(seconds / 60.0)))
    step = seconds / n
    return (
        sum(_volume_rate(profile, market, t0 + timedelta(seconds=step * (i + 0.5))) for i in range(n)) * step
    )


def _bridge_extremes(a: float, b: float, var: float, u1: float, u2: float) -> tuple[float, float]:
    """Sampled max and min of a Brownian bridge from log-price ``a`` to ``b`` with variance ``var``."""
    d2 = (b - a) ** 2
    hi = (a + b + math.sqrt(d2 - 2.0 * var * math.log(u1))) / 2.0
    lo = (a + b - math.sqrt(d2 - 2.0 * var * math.log(u2))) / 2.0
    return hi, lo


@dataclass
class _Bar:
    start: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float = 0.0


@dataclass
class _State:
    price: float
    last: datetime
    rng: np.random.Generator
    bar: _Bar | None = None
    override: float | None = None


@dataclass
class _Stats:
    ticks: int = 0
    last_fetch: datetime | None = None
    last_error: str | None = None


class SimulatedSource:
    """Correlated, fat-tailed GBM prices with realistic volume; see the module docstring."""

    name = "simulated"

    def __init__(
        self,
        seed: int | None = None,
        last_prices: Callable[[Sequence[str]], Mapping[str, float]] | None = None,
        clock: Callable[[], datetime] | None = None,
        hours: str = "always",
    ):
        if hours not in ("always", "calendar"):
            raise ValueError(f"hours must be 'always' or 'calendar', got {hours!r}")
        self.hours = hours
        self.seed = seed
        entropy = np.random.SeedSequence(seed).entropy
        if not isinstance(entropy, (int, np.integer)):  # an int seed or None always gives an int
            raise TypeError(f"seed must be an int or None, got {seed!r}")
        self._root = int(entropy) % 2**63
        self._last_prices = last_prices
        self._clock = clock or utcnow
        self._lock = threading.RLock()
        self._states: dict[str, _State] = {}
        self._market_rng = np.random.default_rng([self._root, 0])
        self._last_now: datetime | None = None
        self._stats = _Stats()

    # -- public -----------------------------------------------------------------------------------
    def fetch(self, symbols: Sequence[str]) -> FetchResult:
        result = FetchResult()
        wanted = result.symbols(symbols)
        with self._lock:
            now = self._now()
            self._ensure(wanted, now)
            m = float(self._market_rng.standard_t(NU)) * T_SCALE
            for symbol in wanted:
                if not self._trading(symbol, now):
                    continue  # calendar hours: a closed market (lunch break, holiday) sends nothing
                result.add_checked(self._step(symbol, now, m), symbol=symbol)
            self._stats.ticks += len(wanted)
            self._stats.last_fetch = now
        return result

    def backfill(self, symbol: str, start: datetime, end: datetime, interval: str) -> FetchResult:
        result = FetchResult()
        args = result.backfill_args(symbol, start, end)
        if args is None:
            return result
        symbol, start, end = args
        with self._lock:
            now = self._now()
            self._ensure([symbol], now)
            price = self._states[symbol].price
        end = min(end, now)
        if start >= end:
            return result
        if interval in INTRADAY_BARS:
            bars = self._intraday_bars(symbol, start, end, interval, price, now)
        elif interval in ("1d", "1wk"):
            bars = self._daily_bars(symbol, start, end, price, now, weekly=interval == "1wk")
        else:
            result.errors[symbol] = (
                f"the simulated source has no {interval!r} history; use one of "
                f"{', '.join([*INTRADAY_BARS, '1d', '1wk'])}"
            )
            return result
        if isinstance(bars, str):
            result.errors[symbol] = bars
            return result
        result.add_checked(bars, symbol=symbol)
        return result

    def lookup(self, symbol: str) -> SymbolInfo:
        try:
            symbol = normalize_symbol(symbol)
        except InvalidEvent as exc:
            raise UnknownSymbol(exc.reason) from None
        profile = profile_for(symbol)
        return symbol_info(symbol, name=profile.name or f"{symbol} (simulated)")

    def health(self) -> dict:
        with self._lock:
            return {
                "source": self.name,
                "seed": self.seed,
                "symbols": sorted(self._states),
                "ticks": self._stats.ticks,
                "last_fetch": iso(self._stats.last_fetch) if self._stats.last_fetch else None,
                "last_error": self._stats.last_error,
                "pending_overrides": sorted(s for s, st in self._states.items() if st.override is not None),
                "model": "GBM, Student-t(5) shocks, one-factor correlation ~0.45, 24/7 in trading time",
            }

    def set_price(self, symbol: str, price: float) -> None:
        """Steer ``symbol``: its next tick is exactly ``price`` and the walk continues from there."""
        symbol = normalize_symbol(symbol)
        if not (isinstance(price, (int, float)) and math.isfinite(price) and price > 0):
            raise ValueError(f"price must be a positive finite number, got {price!r}")
        with self._lock:
            now = self._now()
            if symbol not in self._states:
                self._states[symbol] = self._new_state(symbol, float(price), now)
            self._states[symbol].override = float(price)

    def price(self, symbol: str) -> float | None:
        """The symbol's current (unrounded) simulated price, or None if it has not started yet."""
        with self._lock:
            state = self._states.get(normalize_symbol(symbol))
            return state.price if state else None

    # -- live path --------------------------------------------------------------------------------
    def _trading(self, symbol: str, at: datetime) -> bool:
        """Does ``symbol`` trade at ``at``? Always, unless ``hours`` is ``calendar``: then only in
        its exchange's regular sessions (``markets.market_status``), 24/5 for FX, 24/7 for crypto."""
        return self.hours != "calendar" or market_status(market_for(symbol), at).is_open

    def _now(self) -> datetime:
        now = to_utc(self._clock(), "clock")
        now = now.replace(microsecond=now.microsecond // 1000 * 1000)
        if self._last_now is not None and now < self._last_now:
            now = self._last_now  # never step backwards: a bar must not be reopened
        self._last_now = now
        return now

    def _new_state(self, symbol: str, price: float, now: datetime) -> _State:
        rng = np.random.default_rng([self._root, _key(symbol) % 2**63, 1])
        return _State(price=price, last=now, rng=rng)

    def _ensure(self, symbols: Sequence[str], now: datetime) -> None:
        new = [s for s in symbols if s not in self._states]
        if not new:
            return
        stored: Mapping[str, float] = {}
        if self._last_prices is not None:
            try:
                stored = self._last_prices(new) or {}
            except Exception as exc:  # a store hiccup must not stop the feed: start from defaults
                self._stats.last_error = f"last_prices failed: {exc.__class__.__name__}: {exc}"
                log.warning("simulated: %s", self._stats.last_error)
        for symbol in new:
            price = stored.get(symbol)
            if not (isinstance(price, (int, float)) and math.isfinite(price) and price > 0):
                price = profile_for(symbol).price
            self._states[symbol] = self._new_state(symbol, float(price), now)

    def _step(self, symbol: str, now: datetime, m: float) -> list[PriceEvent]:
        st = self._states[symbol]
        profile, market = profile_for(symbol), market_for(symbol)
        seconds = (now - st.last).total_seconds()
        old = st.price
        volume = 0.0
        if st.override is not None:
            st.price, st.override = st.override, None
            z = 0.0
        elif seconds > 0:
            e = float(st.rng.standard_t(NU)) * T_SCALE
            z = profile.beta * m + math.sqrt(1.0 - profile.beta**2) * e
            dt = seconds / TRADING_SECONDS_PER_YEAR
            st.price = old * math.exp(
                (profile.mu - profile.sigma**2 / 2) * dt + profile.sigma * math.sqrt(dt) * z
            )
        else:
            z = 0.0
        if seconds > 0:
            noise = float(st.rng.gamma(4.0, 0.25)) * (0.6 + 0.5 * abs(z))
            volume = float(round(_expected_volume(profile, market, st.last, now) * noise))
        st.last = max(st.last, now)
        price = _round(symbol, st.price)

        minute = now.replace(second=0, microsecond=0)
        bar = st.bar
        if bar is None or bar.start != minute:
            bar = st.bar = _Bar(minute, price, price, price, price)
        elif seconds > 0:
            var = profile.sigma**2 * seconds / TRADING_SECONDS_PER_YEAR
            hi, lo = _bridge_extremes(
                math.log(old),
                math.log(st.price),
                var,
                float(st.rng.random()) or 1e-12,
                float(st.rng.random()) or 1e-12,
            )
            bar.high = max(bar.high, _round(symbol, math.exp(hi)))
            bar.low = min(bar.low, _round(symbol, math.exp(lo)))
        bar.high, bar.low, bar.close = max(bar.high, price), min(bar.low, price), price
        bar.volume += volume
        tick = PriceEvent.tick(
            symbol,
            now,
            price,
            volume,
            source=self.name,
            fetched_at=now,
            exchange=market.exchange,
            currency=market.currency,
            timezone=market.timezone,
        )
        # the minute bar shares the tick's source, fetch time and market fields
        return [
            tick,
            tick.with_(
                interval="1m",
                ts=bar.start,
                open=bar.open,
                high=bar.high,
                low=bar.low,
                close=bar.close,
                volume=bar.volume,
            ),
        ]

    # -- history ----------------------------------------------------------------------------------
    def _shocks(self, symbol: str, tag: str, chunk: int, n: int, beta: float) -> np.ndarray:
        """Deterministic draws per (symbol, interval, chunk), rows: z (correlated), u1, u2 (for the
        bridge extremes), volume noise, gap (a second correlated shock, the overnight move)."""
        market = np.random.default_rng([self._root, 0, _key(tag) % 2**63, chunk])
        own = np.random.default_rng([self._root, _key(symbol) % 2**63, _key(tag) % 2**63, chunk])
        m = market.standard_t(NU, n) * T_SCALE
        e = own.standard_t(NU, (2, n)) * T_SCALE
        z = beta * m + math.sqrt(1.0 - beta**2) * e[0]
        gap = beta * market.standard_t(NU, n) * T_SCALE + math.sqrt(1.0 - beta**2) * e[1]
        u = np.clip(own.random((2, n)), 1e-12, None)
        noise = own.gamma(4.0, 0.25, n)
        return np.vstack([z, u, noise[None, :], gap[None, :]])

    def _bar(
        self,
        symbol: str,
        interval: str,
        ts: datetime,
        o: float,
        c: float,
        var: float,
        u1: float,
        u2: float,
        volume: float,
        now: datetime,
    ) -> PriceEvent:
        hi, lo = _bridge_extremes(math.log(o), math.log(c), var, u1, u2)
        o, c = _round(symbol, o), _round(symbol, c)
        h = max(o, c, _round(symbol, math.exp(hi)))
        low = min(o, c, _round(symbol, math.exp(lo)))
        m = market_for(symbol)
        return PriceEvent(
            symbol=symbol,
            interval=interval,
            ts=ts,
            open=o,
            high=h,
            low=low,
            close=c,
            volume=float(max(0, round(volume))),
            source=self.name,
            fetched_at=now,
            exchange=m.exchange,
            currency=m.currency,
            timezone=m.timezone,
        )

    def _intraday_bars(
        self, symbol: str, start: datetime, end: datetime, interval: str, price: float, now: datetime
    ) -> list[PriceEvent] | str:
        profile, market = profile_for(symbol), market_for(symbol)
        step = INTERVALS[interval].seconds
        t_start, t_end, t_now = start.timestamp(), end.timestamp(), now.timestamp()
        k0 = math.ceil(t_start / step)
        k_last = math.ceil(t_end / step) - 1
        k_now = math.floor(t_now / step)
        if k_last < k0:
            return []
        if k_now - k0 + 1 > MAX_BARS:
            return (
                f"{(k_now - k0 + 1):,} bars of {interval} are too many for one backfill "
                f"(max {MAX_BARS:,}); use a shorter range or a coarser interval"
            )
        per_chunk = max(1, 86400 // step)
        ks = np.arange(k0, k_now + 1)
        draws = np.empty((5, len(ks)))
        for chunk in range(k0 // per_chunk, k_now // per_chunk + 1):
            lo_k, hi_k = max(k0, chunk * per_chunk), min(k_now, (chunk + 1) * per_chunk - 1)
            block = self._shocks(symbol, interval, chunk, per_chunk, profile.beta)
            draws[:, lo_k - k0 : hi_k - k0 + 1] = block[
                :5, lo_k - chunk * per_chunk : hi_k - chunk * per_chunk + 1
            ]
        dt = step / TRADING_SECONDS_PER_YEAR
        drift, vol = (profile.mu - profile.sigma**2 / 2), profile.sigma
        # log-price at each bar's start, walking back from now
        frac = (t_now - k_now * step) / step
        x = np.empty(len(ks) + 1)
        x[-1] = math.log(price)
        x[-2] = x[-1] - (drift * dt * frac + vol * math.sqrt(dt * frac) * draws[0, -1])
        inc = drift * dt + vol * math.sqrt(dt) * draws[0, :-1]
        x[:-2] = x[-2] - np.cumsum(inc[::-1])[::-1]
        bars = []
        for i in range(k_last - k0 + 1):
            k = k0 + i
            if k > k_now:
                break
            ts = datetime.fromtimestamp(k * step, UTC)
            if self.hours == "calendar" and not self._trading(symbol, ts):
                continue
            forming = k == k_now
            o, c = math.exp(x[i]), math.exp(x[i + 1]) if not forming else price
            length = (t_now - k * step) if forming else step
            volume = _volume_rate(profile, market, ts + timedelta(seconds=length / 2)) * length * draws[3, i]
            bars.append(
                self._bar(
                    symbol,
                    interval,
                    ts,
                    o,
                    c,
                    vol**2 * length / TRADING_SECONDS_PER_YEAR,
                    draws[1, i],
                    draws[2, i],
                    volume,
                    now,
                )
            )
        return bars

    def _daily_bars(
        self, symbol: str, start: datetime, end: datetime, price: float, now: datetime, weekly: bool
    ) -> list[PriceEvent] | str:
        profile, market = profile_for(symbol), market_for(symbol)
        tz = market.timezone
        first = start.astimezone(ZoneInfo(tz)).date()
        if weekly:
            first -= timedelta(days=first.weekday())
        today = now.astimezone(ZoneInfo(tz)).date()
        days: list[date] = []
        d = first
        # the exchange's sessions in either mode: daily history has no weekends and no holidays (a
        # weekend bar made Sunday's change compare with Saturday, and a forecast start from it)
        sessions = set(sessions_between(market, d, today))
        if self.hours == "calendar" and today in sessions and market_status(market, now).session != today:
            sessions.discard(today)  # today's session has not opened yet: no bar for it so far
        while d <= today:
            if d in sessions:
                days.append(d)
            d += timedelta(days=1)
        if not days:
            return []
        if len(days) > MAX_BARS:
            return f"{len(days):,} daily bars are too many for one backfill (max {MAX_BARS:,})"
        year_days = 365.0 if market.always_open else 252.0
        dt = 1.0 / year_days
        drift, vol = (profile.mu - profile.sigma**2 / 2), profile.sigma
        ords = np.array([d.toordinal() for d in days])
        draws = np.empty((5, len(days)))
        for chunk in np.unique(ords // 256):
            block = self._shocks(symbol, "1d", int(chunk), 256, profile.beta)
            sel = (ords // 256) == chunk
            draws[:, sel] = block[:, ords[sel] - chunk * 256]
        # split each day's variance: 20% overnight gap, 80% during the session
        intraday = drift * dt * 0.8 + vol * math.sqrt(dt * 0.8) * draws[0]
        gap = drift * dt * 0.2 + vol * math.sqrt(dt * 0.2) * draws[4]
        close = np.empty(len(days))
        close[-1] = math.log(price)
        for i in range(len(days) - 1, 0, -1):
            close[i - 1] = close[i] - intraday[i] - gap[i]
        opens = close - intraday
        bars = []
        for i, day in enumerate(days):
            ts = day_start_utc(day, tz)
            volume = profile.daily_volume * draws[3, i] * (0.6 + 0.5 * abs(draws[0, i]))
            bars.append(
                self._bar(
                    symbol,
                    "1d",
                    ts,
                    math.exp(opens[i]),
                    math.exp(close[i]),
                    vol**2 * dt * 0.8,
                    draws[1, i],
                    draws[2, i],
                    volume,
                    now,
                )
            )
        if weekly:
            bars = _weekly(bars, tz)
        # a day (week) bar is in range when it starts in [start, end); the first week may start earlier
        return [b for b in bars if b.ts < end and (b.ts >= start or weekly and b is bars[0])]


def _weekly(days: list[PriceEvent], tz: str) -> list[PriceEvent]:
    weeks: dict[date, PriceEvent] = {}
    for bar in days:
        local = bar.ts.astimezone(ZoneInfo(tz)).date()
        monday = local - timedelta(days=local.weekday())
        prev = weeks.get(monday)
        if prev is None:
            weeks[monday] = replace(bar, interval="1wk", ts=day_start_utc(monday, tz))
        else:
            weeks[monday] = replace(
                prev,
                high=max(prev.high, bar.high),
                low=min(prev.low, bar.low),
                close=bar.close,
                volume=prev.volume + bar.volume,
            )
    return list(weeks.values())
