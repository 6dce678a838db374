"""Repairs of provider data that is wrong by a known, recognisable error: 100x unit mix-ups.

Yahoo's history for some lines quoted in a minor unit (London's ``GBp``, Johannesburg's ``ZAc``, Tel
Aviv's ``ILA``) mixes minor and major units in blocks: AET.L had 14 of 23 sessions 100x low, prices
in pounds inside a series in pence. yfinance documents the same error and repairs it with
``history(repair=True)`` (its "price repair" guide, "100x errors"); that repair also fetches finer
intervals and needs scipy, so the rule used here is our own, written down so that it can be checked:

1. Only a series quoted in a minor unit (``currency.MINOR``) is looked at; a unit mix-up is
   exactly a factor of 100.
2. The series (one symbol, one interval, oldest first) is cut into *segments* wherever the close moves
   by a factor of 100 from one bar to the next, within ``BAND`` (a factor of 100 +/- 26 %, so that
   one bar's real move on top of the mix-up still counts; a real day's move of 99 % is also inside,
   which is why rule 4 looks at what comes around it).
3. The *true* scale is the newest segment's, unless the chart's own ``regularMarketPrice`` (the
   ``anchor``, stated in the quoted unit and taken at most ``ANCHOR_MAX_AGE`` after the newest bar)
   is 100x away from the newest close: then the anchor's scale is the true one.
4. A segment off the true scale by one factor of 100 is repaired when (a) the true scale is on both
   sides of it (a block that comes back: one bar or many), (b) it is the newest segment and the
   anchor contradicts it, or (c) it is the oldest segment and 100x *below* the true scale (prices in
   the major unit in front of a series in the minor unit). Everything else stays as served: an old
   segment 100x *above* the rest is a real fall (a penny stock that collapsed stays collapsed), and a
   newest segment the anchor agrees with is the present.
5. Each bar's open, high and low are also checked against its own close: a field 100x away from it is
   scaled to the close's unit (a bar with one field in the other unit).

Each repair is returned with its reason; nothing here does I/O. Volume is never changed (a unit
mix-up is in prices only).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from .markets.currency import MINOR

#: How far (in log10) a bar-to-bar factor may be from exactly 100 and still count as a unit change:
#: 0.1 is a factor of 79.4 .. 125.9.
BAND = 0.1
#: The longest time between the newest bar and the chart's ``regularMarketTime`` for which the
#: ``regularMarketPrice`` still says which unit the newest bars are in.
ANCHOR_MAX_AGE = timedelta(days=5)
FACTOR = 100.0
FIELDS = ("open", "high", "low", "close")


@dataclass(frozen=True)
class Repair:
    """One bar's repair: ``index`` into the series, the ``factor`` its prices were multiplied by
    (100.0 or 0.01), the ``fields`` it applied to and the ``reason`` in a sentence."""

    index: int
    factor: float
    fields: tuple[str, ...]
    reason: str


def _steps(ratio: float) -> int:
    """+1 when ``ratio`` is a factor of 100 up (within ``BAND``), -1 when 100 down, else 0."""
    if not (ratio > 0 and math.isfinite(ratio)):
        return 0
    power = math.log10(ratio)
    if abs(power - 2) <= BAND:
        return 1
    if abs(power + 2) <= BAND:
        return -1
    return 0


def unit_mixups(
    bars: Sequence[dict],
    currency: str,
    anchor: float | None = None,
    anchor_at: datetime | None = None,
) -> list[Repair]:
    """The 100x repairs of ``bars`` (dicts with ``ts``, ``open``, ``high``, ``low``, ``close``, one
    symbol and interval, oldest first, prices in ``currency`` as quoted) by the rules in the module
    docstring. ``anchor``: the chart's ``regularMarketPrice`` (same unit), taken at ``anchor_at``
    (aware). Returns [] for a currency without a minor unit or a series with nothing to repair."""
    if currency not in MINOR or not bars:
        return []
    closes = [float(b["close"]) for b in bars]
    level = [0]  # each bar's scale, in factors of 100 from the oldest bar's
    for prev, cur in zip(closes, closes[1:], strict=False):
        level.append(level[-1] + _steps(cur / prev if prev else 0.0))
    true = level[-1]
    anchored = (
        anchor is not None
        and anchor > 0
        and anchor_at is not None
        and abs(anchor_at - bars[-1]["ts"]) <= ANCHOR_MAX_AGE
    )
    if anchored:
        assert anchor is not None
        true = level[-1] + _steps(anchor / closes[-1])
    segments: list[tuple[int, int]] = []  # [start, end) of equal level
    start = 0
    for i in range(1, len(level) + 1):
        if i == len(level) or level[i] != level[start]:
            segments.append((start, i))
            start = i
    whole: dict[int, tuple[float, str]] = {}  # bar index -> (factor, reason)
    for k, (a, b) in enumerate(segments):
        off = level[a] - true
        if abs(off) != 1:
            continue
        before = level[segments[k - 1][0]] if k > 0 else None
        after = level[segments[k + 1][0]] if k + 1 < len(segments) else None
        if before == true and after == true:
            why = "a block that comes back"
        elif after is None and anchored:
            why = "the newest bars, against the chart's own current price"
        elif before is None and off == -1:
            why = "the oldest bars, 100x below the rest of a series in the minor unit"
        else:
            continue
        factor = FACTOR ** (-off)
        for i in range(a, b):
            whole[i] = (
                factor,
                f"close {closes[i]:g} is 100x {'below' if off < 0 else 'above'} the series in "
                f"{currency} ({why}, {b - a} bar{'s' if b - a != 1 else ''}); multiplied by {factor:g}",
            )
    repairs: list[Repair] = []
    for i, bar in enumerate(bars):
        factor, reason = whole.get(i, (1.0, ""))
        close = closes[i] * factor
        odd = tuple(
            name for name in ("open", "high", "low") if close and _steps(float(bar[name]) * factor / close)
        )
        if odd:  # one field in the other unit than its own bar's close
            note = f"{', '.join(odd)} 100x away from the bar's own close; scaled to the close's unit"
            reason = f"{reason}; {note}" if reason else note
        if reason:
            fields = (FIELDS if i in whole else ()) + tuple(f"{name}*" for name in odd)
            repairs.append(Repair(i, factor, fields, reason))
    return repairs


def apply(bar: dict, repair: Repair) -> dict:
    """``bar`` with ``repair`` applied (a new dict): the whole-bar factor on the fields it names,
    then each field marked ``name*`` scaled by 100 either way to its close's unit."""
    out = dict(bar)
    for name in FIELDS:
        if name in repair.fields:
            out[name] = float(out[name]) * repair.factor
    for name in ("open", "high", "low"):
        if f"{name}*" in repair.fields:
            steps = _steps(float(out[name]) / float(out["close"]))
            out[name] = float(out[name]) * FACTOR ** (-steps)
    out["high"] = max(out["high"], out["open"], out["close"])
    out["low"] = min(out["low"], out["open"], out["close"])
    return out
