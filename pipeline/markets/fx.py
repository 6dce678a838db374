"""Conversion to one base currency with FX rates that are ordinary stored symbols.

Guarantees:
- A rate is the daily close of a Yahoo FX pair ``<QUOTE><BASE>=X`` (``GBPUSD=X``: dollars per pound),
  fetched and stored like any other symbol; ``pair(code, base)`` names it for a quote currency, in
  major units (``GBp`` needs ``GBPUSD=X``), None when no conversion is needed or possible.
- ``rate_on(rates, day)`` is the rate of ``day``'s session date or of the latest earlier date, carried
  forward at most ``MAX_CARRY_DAYS`` days; never a rate from a later date. None when there is none.
- ``convert`` returns the value in the base currency and the FX date used (None for the base itself),
  or None when the unit is unknown or no rate qualifies: a caller shows the quoted value then.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping, Sequence
from datetime import date

from .currency import major

#: How many days a rate may be carried forward over days without one (weekends, FX holidays).
MAX_CARRY_DAYS = 5


def pair(code: str | None, base: str) -> str | None:
    """The FX symbol that converts prices quoted in ``code`` to ``base``, or None (same currency or
    an unknown unit)."""
    iso = major(1.0, code)[1]
    if iso is None or iso == base:
        return None
    return f"{iso}{base}=X"


def needed_pairs(codes: Sequence[str | None], base: str) -> list[str]:
    """The FX symbols a set of quote currencies needs for ``base``, sorted, without repeats."""
    return sorted({p for p in (pair(c, base) for c in codes) if p})


def rate_on(rates: Sequence[tuple[date, float]], day: date) -> tuple[float, date] | None:
    """(rate, its date) for ``day`` from date-sorted ``rates`` (see the module), or None."""
    i = bisect_right(rates, (day, float("inf"))) - 1
    if i < 0:
        return None
    when, rate = rates[i]
    if (day - when).days > MAX_CARRY_DAYS or not rate > 0:
        return None
    return rate, when


def convert(
    value: float, code: str | None, base: str, rates: Mapping[str, Sequence[tuple[date, float]]], day: date
) -> tuple[float, date | None] | None:
    """``value`` quoted in ``code`` on session date ``day`` in ``base``: (amount, FX date or None when
    no rate was needed), or None when it cannot be converted (unknown unit, no rate within the carry)."""
    amount, iso = major(value, code)
    if iso is None:
        return None
    if iso == base:
        return amount, None
    symbol = pair(code, base)
    found = rate_on(rates.get(symbol or "", ()), day)
    if found is None:
        return None
    return amount * found[0], found[1]


def convert_bars(
    frame,
    currencies: Mapping[str, str | None],
    timezones: Mapping[str, str],
    base: str,
    rates: Mapping[str, Sequence[tuple[date, float]]],
):
    """A bars frame (``symbol, interval, ts, open, high, low, close, volume``; ``ts`` aware UTC) in
    ``base``: each bar's prices times the rate of its own session date (a daily or weekly bar's ``ts``
    is UTC midnight of it; an intraday bar's date at its exchange, ``timezones``), plus a ``fx_date``
    column. Bars that cannot be converted (unknown unit, no rate within ``MAX_CARRY_DAYS``) are left
    out; returns (frame, {symbol: sentence about what was left out or assumed})."""
    import pandas as pd

    if frame.empty:
        return frame.assign(fx_date=pd.Series(dtype=object)), {}
    parts, notes = [], {}
    for symbol, g in frame.groupby("symbol", sort=False):
        code = currencies.get(str(symbol))
        ts = pd.to_datetime(g["ts"], utc=True)
        daily = g["interval"].isin(["1d", "1wk"])
        local = ts.dt.tz_convert(timezones.get(str(symbol)) or "UTC")
        days = [u.date() if d else loc.date() for u, loc, d in zip(ts, local, daily, strict=True)]
        found = [convert(1.0, code, base, rates, d) for d in days]
        keep = [f is not None for f in found]
        factors = [f[0] if f is not None else float("nan") for f in found]
        g = g.assign(fx_date=[f[1] if f is not None else None for f in found])
        for col in ("open", "high", "low", "close"):
            g[col] = g[col].astype(float) * factors
        g = g[keep]
        dropped = len(keep) - sum(keep)
        if dropped:
            why = (
                "its unit is unknown"
                if major(1.0, code)[1] is None
                else f"no {pair(code, base)} rate within {MAX_CARRY_DAYS} days"
            )
            notes[str(symbol)] = f"{symbol}: {dropped} bar{'s' if dropped != 1 else ''} left out ({why})"
        parts.append(g)
    return pd.concat(parts, ignore_index=True), notes
