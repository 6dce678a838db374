"""Insights over daily closes: drawdowns, beta and correlation to a benchmark, a correlation matrix,
the 52-week range, distance from the all-time high, volatility, range return and the shape of the
returns distribution. Pure pandas/numpy: no I/O, no Streamlit.

This is the one home of returns (``log_returns``, ``simple_returns``, ``range_return``), volatility
(``volatility``, ``rolling_volatility``) and drawdown (``drawdown``, ``max_drawdown``): the Insights
page and the History page's statistics (``pipeline.analytics.stats``) both compute them here, so the
two cannot disagree by accident; where they differ, it is the annualisation they pass (``PerYear``).

Guarantees:
- Inputs are daily closes as a ``pd.Series`` indexed by session date (ascending, one value per
  session, NaN allowed and ignored), or a wide frame of them (``closes_wide``: one column per
  symbol). The returns, volatility and drawdown functions take closes at any interval the same way,
  indexed by their timestamps. No function mutates its input.
- Returns are daily **log** returns ``ln(close_t / close_{t-1})`` between consecutive sessions of the
  series (for pairs: between consecutive *common* sessions, so a holiday on one market never pairs a
  two-day move with a one-day move); ``simple_returns`` are ``close_t / close_{t-1} - 1``.
- Annualisation is a parameter (``PerYear``). The default, ``SESSIONS_252``, is 252 trading sessions a
  year (``sqrt(252)`` for volatility), the convention of Yahoo, TradingView and Bloomberg's daily
  figures; ``OBSERVED`` counts the returns per elapsed year of the series' own timestamps (right for
  24/7 markets, exchange sessions and any interval alike; History's statistics use it).
- A figure that needs more data than there is comes back as ``None`` with a sentence in ``reason``
  (a pair with fewer than ``MIN_COMMON`` = 60 common sessions has no correlation or beta: with
  fewer, r's standard error exceeds ~0.13 and the number misleads). Nothing raises on short input.
- Percentages are in percent (-25.0 means -25 %).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

TRADING_DAYS = 252
SECONDS_PER_YEAR = 365.25 * 86400
MIN_COMMON = 60
ROLLING_VOL = 21  # sessions in the rolling volatility window (about a month)
YEAR_SLACK_DAYS = 7  # a "year" of data may start this many days after last - 365 (holidays, weekends)


def closes_wide(frame: pd.DataFrame) -> pd.DataFrame:
    """Daily bars (long frame: symbol, ts, close) as one column of closes per symbol, indexed by the
    session date (``ts`` is UTC midnight of the session date, ``pipeline.markets.calendars.day_key``).
    Dates where a symbol did not trade are NaN; columns keep the order symbols first appear."""
    if frame.empty:
        return pd.DataFrame()
    f = frame.assign(day=pd.to_datetime(frame["ts"], utc=True).dt.date)
    wide = f.pivot_table(index="day", columns="symbol", values="close", aggfunc="last", sort=True)
    order = list(dict.fromkeys(f["symbol"]))
    return wide.reindex(columns=order).sort_index()


@dataclass(frozen=True)
class PerYear:
    """An annualisation convention: how many returns make a year. ``sessions`` is a fixed count
    (252 trading sessions); None counts them from the data (``count``). ``text`` is how a page's help
    names it ("annualised by ...")."""

    sessions: float | None
    text: str

    def count(self, close: pd.Series) -> float | None:
        """Returns per year for the valid closes of ``close``: ``sessions``, or the number of returns
        divided by the years between the first and last timestamp (None when no time elapses)."""
        if self.sessions is not None:
            return float(self.sessions)
        c = close.dropna()
        if len(c) < 2:
            return None
        years = (pd.Timestamp(c.index[-1]) - pd.Timestamp(c.index[0])).total_seconds() / SECONDS_PER_YEAR
        return (len(c) - 1) / years if years > 0 else None


SESSIONS_252 = PerYear(
    TRADING_DAYS, f"annualised with {TRADING_DAYS} trading sessions a year (√{TRADING_DAYS})"
)
OBSERVED = PerYear(None, "annualised by the observed bars per year (bars ÷ years elapsed)")


# -- returns ---------------------------------------------------------------------------------------------
def log_returns(close: pd.Series) -> pd.Series:
    """``ln(c_t / c_{t-1})`` over consecutive valid closes (NaNs dropped first); one shorter."""
    c = close.dropna().astype(float)
    return c.apply(math.log).diff().iloc[1:]


def simple_returns(close: pd.Series) -> pd.Series:
    """``c_t / c_{t-1} - 1`` over consecutive valid closes (NaNs dropped first), on the later
    close's index; one shorter."""
    c = close.dropna().astype(float)
    return (c / c.shift(1) - 1.0).iloc[1:]


# -- drawdown ------------------------------------------------------------------------------------------
def drawdown(close: pd.Series) -> pd.Series:
    """Percent below the running maximum at each session: ``(close / cummax(close) - 1) * 100``
    (0 at a new high, negative below it). Same index as the valid closes."""
    c = close.dropna().astype(float)
    return (c / c.cummax() - 1.0) * 100.0


@dataclass(frozen=True)
class Drawdown:
    """The maximum drawdown of a series: ``pct`` (negative percent, 0 without any fall), the
    ``peak`` before it and its date, the ``trough`` and its date, and the first session at or above
    the peak after the trough (``recovery``/``recovered_at``; None: "not recovered")."""

    pct: float
    peak: float
    peak_at: Any
    trough: float
    trough_at: Any
    recovery: float | None
    recovered_at: Any | None

    @property
    def recovered(self) -> bool:
        return self.recovered_at is not None


def max_drawdown(close: pd.Series) -> Drawdown | None:
    """The deepest fall from a running maximum (see ``Drawdown``); None for an empty series.
    Example: closes [100, 120, 90, 130] give -25 % from 120 to 90, recovered at 130."""
    c = close.dropna().astype(float)
    if c.empty:
        return None
    dd = c / c.cummax() - 1.0
    trough_pos = int(np.argmin(dd.to_numpy()))
    peak_pos = int(np.argmax(c.to_numpy()[: trough_pos + 1]))
    peak = float(c.iloc[peak_pos])
    after = c.iloc[trough_pos + 1 :]
    back = after[after >= peak]
    return Drawdown(
        pct=float(dd.iloc[trough_pos] * 100.0),
        peak=peak,
        peak_at=c.index[peak_pos],
        trough=float(c.iloc[trough_pos]),
        trough_at=c.index[trough_pos],
        recovery=float(back.iloc[0]) if len(back) and trough_pos != peak_pos else None,
        recovered_at=back.index[0] if len(back) and trough_pos != peak_pos else None,
    )


# -- pairs: beta and correlation -----------------------------------------------------------------------
@dataclass(frozen=True)
class Pair:
    """Correlation ``r`` and ``beta`` of a series to another over ``n`` common daily log returns;
    both None with a ``reason`` when ``n < MIN_COMMON`` (or a series is flat)."""

    r: float | None
    beta: float | None
    n: int
    reason: str | None = None


def _pair(a: np.ndarray, b: np.ndarray, min_common: int) -> Pair:
    """``pair`` on two aligned arrays of closes (NaN where a series has no session): numpy only."""
    both = ~(np.isnan(a) | np.isnan(b))
    la, lb = np.log(a[both]), np.log(b[both])
    ra, rb = np.diff(la), np.diff(lb)
    n = len(ra)
    if n < min_common:
        return Pair(None, None, n, f"{n} common sessions of returns; at least {min_common} are needed")
    var_a, var_b = float(np.var(ra, ddof=1)), float(np.var(rb, ddof=1))
    if var_b == 0 or var_a == 0:
        return Pair(None, None, n, "a series does not move over these sessions")
    cov = float(np.sum((ra - ra.mean()) * (rb - rb.mean())) / (n - 1))
    return Pair(max(-1.0, min(1.0, cov / math.sqrt(var_a * var_b))), cov / var_b, n)


def pair(asset: pd.Series, benchmark: pd.Series, min_common: int = MIN_COMMON) -> Pair:
    """Pearson correlation and beta of ``asset`` to ``benchmark`` on common sessions.

    ``beta = cov(r_a, r_b) / var(r_b)`` (sample covariance and variance, ddof=1; the CAPM slope of
    the regression of asset returns on benchmark returns, as Yahoo and Bloomberg quote it).
    A series against itself: r = beta = 1; against returns twice as large: beta = 2 (r = 1)."""
    both = pd.concat([asset.rename("a"), benchmark.rename("b")], axis=1, join="inner").astype(float)
    return _pair(both["a"].to_numpy(), both["b"].to_numpy(), min_common)


@dataclass(frozen=True)
class Matrix:
    """Pairwise correlations: ``r`` (NaN where blank), ``n`` (common returns per pair) and
    ``reason`` (why a cell is blank, "" when it is not); all square frames over the same symbols."""

    r: pd.DataFrame
    n: pd.DataFrame
    reason: pd.DataFrame


def correlation_matrix(wide: pd.DataFrame, min_common: int = MIN_COMMON) -> Matrix:
    """Correlation of daily log returns for every pair of columns of ``wide`` (``closes_wide``), each
    pair on its own common sessions (``pair``); the diagonal is 1 over the symbol's own returns."""
    symbols = list(wide.columns)
    k = len(symbols)
    r, n = np.full((k, k), np.nan), np.zeros((k, k), dtype=int)
    reason = np.full((k, k), "", dtype=object)
    arrays = [wide[s].to_numpy(dtype=float) for s in symbols]
    for i in range(k):
        for j in range(i, k):
            p = _pair(arrays[i], arrays[j], min_common)
            r[i, j] = r[j, i] = np.nan if p.r is None else p.r
            n[i, j] = n[j, i] = p.n
            reason[i, j] = reason[j, i] = p.reason or ""
    frame = partial(pd.DataFrame, index=symbols, columns=symbols)
    return Matrix(frame(r), frame(n), frame(reason))


# -- ranges and levels ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class YearRange:
    """The 52-week ``high`` and ``low`` of daily closes and where the last close sits between them
    (``position``: 0 = at the low, 1 = at the high); all None with a ``reason`` when the data does
    not cover a year."""

    high: float | None
    low: float | None
    position: float | None
    sessions: int
    reason: str | None = None


def covers_year(close: pd.Series) -> bool:
    """True when the valid closes start within ``YEAR_SLACK_DAYS`` of a year before the last one."""
    c = close.dropna()
    if c.empty:
        return False
    first, last = pd.Timestamp(c.index[0]), pd.Timestamp(c.index[-1])
    return first <= last - pd.Timedelta(days=365 - YEAR_SLACK_DAYS)


def year_range(close: pd.Series) -> YearRange:
    """52-week high/low of daily closes over the 365 days up to the last session, and the position
    ``(last - low) / (high - low)`` of the last close (0.5 when high == low)."""
    c = close.dropna().astype(float)
    if not covers_year(c):
        return YearRange(
            None, None, None, len(c), f"{len(c)} sessions stored; the 52-week range needs one year"
        )
    last_day = pd.Timestamp(c.index[-1])
    window = c[[pd.Timestamp(d) > last_day - pd.Timedelta(days=365) for d in c.index]]
    high, low, last = float(window.max()), float(window.min()), float(c.iloc[-1])
    position = 0.5 if high == low else (last - low) / (high - low)
    return YearRange(high, low, position, len(window))


def from_high(close: pd.Series, high: float | None = None) -> float | None:
    """Percent of the last close below the highest close (``high`` when given: e.g. the all-time
    high of every stored daily bar, from ``queries.daily_summary``): ``(last / high - 1) * 100``."""
    c = close.dropna().astype(float)
    if c.empty:
        return None
    top = max(float(c.max()), high) if high is not None else float(c.max())
    return (float(c.iloc[-1]) / top - 1.0) * 100.0 if top else None


def range_return(close: pd.Series) -> float | None:
    """Percent change from the first to the last valid close; None with fewer than two."""
    c = close.dropna().astype(float)
    if len(c) < 2 or not c.iloc[0]:
        return None
    return (float(c.iloc[-1]) / float(c.iloc[0]) - 1.0) * 100.0


# -- volatility and distribution -------------------------------------------------------------------------
def volatility(close: pd.Series, per_year: PerYear = SESSIONS_252) -> float | None:
    """Annualised volatility in percent: sample std (ddof=1) of log returns * sqrt(returns a year,
    ``per_year``: 252 by default) * 100; None with fewer than 2 returns or no count a year."""
    r = log_returns(close)
    n = per_year.count(close)
    if len(r) < 2 or n is None:
        return None
    return float(r.std(ddof=1) * math.sqrt(n) * 100.0)


def rolling_volatility(
    close: pd.Series, window: int = ROLLING_VOL, per_year: PerYear = SESSIONS_252
) -> pd.Series:
    """Annualised volatility (percent, ``per_year`` as in ``volatility``) of the last ``window`` log
    returns at each session; NaN until the window is full."""
    rolling = log_returns(close).rolling(window, min_periods=window).std(ddof=1)
    n = per_year.count(close)
    return rolling * math.sqrt(n) * 100.0 if n is not None else rolling * np.nan


@dataclass(frozen=True)
class Distribution:
    """Daily simple returns in percent: ``returns`` (the sample), ``mean``, ``std`` (ddof=1),
    ``skew`` (adjusted Fisher-Pearson, as Excel SKEW and pandas) and ``excess_kurtosis`` (bias-
    corrected, 0 for a normal distribution, as Excel KURT and pandas); statistics None under 4."""

    returns: pd.Series
    mean: float | None
    std: float | None
    skew: float | None
    excess_kurtosis: float | None

    @property
    def n(self) -> int:
        return len(self.returns)


def distribution(close: pd.Series) -> Distribution:
    """The daily returns of ``close`` and the moments of their distribution (see ``Distribution``)."""
    r = simple_returns(close) * 100.0
    if len(r) < 4:
        return Distribution(r, None, None, None, None)

    def num(x) -> float | None:
        return None if x is None or not np.isfinite(x) else float(x)

    return Distribution(r, num(r.mean()), num(r.std(ddof=1)), num(r.skew()), num(r.kurt()))


def normal_pdf(x: np.ndarray, mean: float, std: float) -> np.ndarray:
    """The normal density with this mean and standard deviation at ``x``."""
    return np.exp(-0.5 * ((x - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi))


# -- the metrics table -------------------------------------------------------------------------------------
METRIC_COLUMNS = [
    "symbol",
    "last",
    "high_52w",
    "low_52w",
    "position_52w",
    "from_ath_pct",
    "vol_21d_pct",
    "vol_range_pct",
    "beta",
    "corr",
    "return_pct",
    "max_drawdown_pct",
    "sessions",
    "note",
]


def window(close: pd.Series, start: date) -> pd.Series:
    """The closes from session date ``start`` on."""
    return close[[d >= start for d in close.index]] if len(close) else close


def metrics(
    wide: pd.DataFrame,
    benchmark: pd.Series | None,
    range_start: date,
    all_time_high: dict[str, float] | None = None,
) -> pd.DataFrame:
    """One row per column of ``wide`` (``METRIC_COLUMNS``): 52-week high/low and position (on the
    last year of ``wide``), distance from the all-time high (the larger of ``all_time_high[symbol]``
    and the closes given), 21-day and over-the-range volatility, beta and correlation to
    ``benchmark`` over the last year, return and maximum drawdown from ``range_start``; ``note``
    says which figures are missing and why. Missing figures are NaN (a table shows them empty, never
    as the word "None")."""
    rows = []
    for symbol in wide.columns:
        close = wide[symbol].dropna()
        in_range = window(close, range_start)
        yr = year_range(close)
        notes = [yr.reason] if yr.reason else []
        beta = corr = None
        if benchmark is not None and len(benchmark.dropna()):
            last = close.index[-1] if len(close) else range_start
            year = window(close, last - timedelta(days=365))
            p = pair(year, window(benchmark, last - timedelta(days=365)))
            beta, corr = p.beta, p.r
            if p.reason:
                notes.append(f"beta: {p.reason}")
        rolling = rolling_volatility(close)
        dd = max_drawdown(in_range)
        rows.append(
            {
                "symbol": symbol,
                "last": float(close.iloc[-1]) if len(close) else None,
                "high_52w": yr.high,
                "low_52w": yr.low,
                "position_52w": yr.position,
                "from_ath_pct": from_high(close, (all_time_high or {}).get(symbol)),
                "vol_21d_pct": None if rolling.dropna().empty else float(rolling.dropna().iloc[-1]),
                "vol_range_pct": volatility(in_range),
                "beta": beta,
                "corr": corr,
                "return_pct": range_return(in_range),
                "max_drawdown_pct": dd.pct if dd else None,
                "sessions": int(len(close)),
                "note": "; ".join(notes),
            }
        )
    table = pd.DataFrame(rows, columns=METRIC_COLUMNS)
    numeric = [c for c in METRIC_COLUMNS if c not in ("symbol", "note", "sessions")]
    table[numeric] = table[numeric].apply(pd.to_numeric, errors="coerce").astype(float)  # NaN, never None
    return table
