"""Alert kinds: the one registry of what a rule can watch.

A kind is one ``Kind`` entry in ``KINDS``: its label, its parameters (``Param``: bounds, type,
default, how the form shows it), its condition, the sentences that describe the rule and the alert,
whether it fires on a cross, and the data it needs. Validation (``rules.validate``), the engine and the
Alerts page form all read this registry, so a new kind is one entry here plus its test.

Guarantees:
- ``Param.parse`` turns a raw value (form, JSON, stored document) into the typed value or records one
  sentence a person can act on in ``errors`` ("level must be more than 0 and at most ..., got -5").
- ``Kind.condition(params)`` returns a closure ``(series, t, price) -> (result, value)``: a condition
  kind's result is True/False, a cross kind's is the side (+1 above, -1 below); ``(None, None)`` when
  the data does not allow an answer yet. It reads only the ``Series`` as of ``t``, so the same price
  gives the same answer whenever it is evaluated.
- Every kind is evaluated on the symbol's price stream (its ticks; its 1-minute bars when the feed
  has no ticks). ``Kind.needs(params)`` says how much of that stream it looks back over
  (``Needs.prices_s``) and how many closed bars per timeframe it uses (``Needs.closes``; the
  previous close is the last closed ``1d`` bar).
- ``describe(symbol, params)`` is the rule in one line ("AAPL price rises above 200.00");
  ``message(symbol, params, price, value, side)`` the alert in one sentence, with the last price.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..intervals import STORED
from .series import Series

#: (series, t, price) -> (result, value)
Test = Callable[[Series, float, float], tuple[Any, Any]]
DIRECTIONS = ("up", "down", "either")
#: the bar sizes an indicator can be computed on: the levels the bar builder stores
TIMEFRAMES = STORED


def _fmt(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() else f"{x:g}"


@dataclass(frozen=True)
class Param:
    """One parameter of a kind: a number in [low, high] (``low_open``: above low) or one of ``choices``.

    ``default`` is used when a rule does not give the value (None: the value is required). The form
    pre-fills ``initial`` (else the default), shows the value divided by ``scale`` (seconds as
    minutes: 60) and ``example`` as a placeholder when empty; ``example`` is a valid value."""

    name: str  # the rule's field
    what: str  # how sentences name it: "window (seconds)"
    label: str  # the form's label: "Within (minutes)"
    low: float = 0.0
    high: float = 0.0
    low_open: bool = False
    integer: bool = False
    choices: tuple[str, ...] = ()
    choice_labels: Mapping[str, str] = field(default_factory=dict)
    casefold: bool = False  # a choice given in any case
    default: Any = None
    check: Callable[[Any], str | None] | None = None  # a further test of a value within bounds
    initial: Any = None
    example: Any = None
    scale: float = 1.0
    step: float = 1.0
    fmt: str | None = None

    @property
    def prefill(self) -> Any:
        """What a new rule's form shows."""
        return self.initial if self.initial is not None else self.default

    @property
    def sample(self) -> Any:
        """A valid value (for examples and tests)."""
        return next(v for v in (self.example, self.prefill, self.low + 1) if v is not None)

    def parse(self, raw: Mapping[str, Any], errors: dict[str, str]) -> Any:
        value = raw.get(self.name)
        if self.choices:
            text = str(value if value not in (None, "") else (self.default or ""))
            text = text.lower() if self.casefold else text
            if text not in self.choices:
                errors[self.name] = f"{self.name} {text!r} is not one of: {', '.join(self.choices)}"
            return text
        number = self._number(value, errors)
        if number is not None and self.check is not None:
            problem = self.check(number)
            if problem:
                errors[self.name] = problem
                return None
        return number

    def _number(self, value: Any, errors: dict[str, str]) -> float | int | None:
        what, original = self.what, value
        if value is None or value == "":
            errors[self.name] = f"{what} is required"
            return None
        if isinstance(value, str):
            try:
                value = float(value.replace(",", "").strip())
            except ValueError:
                errors[self.name] = f"{what} must be a number, got {original!r}"
                return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            errors[self.name] = f"{what} must be a finite number, got {original!r}"
            return None
        if self.integer and value != int(value):
            errors[self.name] = f"{what} must be a whole number, got {value:g}"
            return None
        too_low = value <= self.low if self.low_open else value < self.low
        if too_low or value > self.high:
            lo = f"more than {_fmt(self.low)}" if self.low_open else f"at least {_fmt(self.low)}"
            errors[self.name] = f"{what} must be {lo} and at most {_fmt(self.high)}, got {_fmt(value)}"
            return None
        return int(value) if self.integer else float(value)


@dataclass(frozen=True)
class Needs:
    """History a rule needs: seconds of its price stream before the evaluated price, and closed bars
    to keep per timeframe (``{"5m": 71}``)."""

    prices_s: float = 0.0
    closes: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Kind:
    name: str
    label: str  # for people, in the form's list
    params: tuple[Param, ...]
    condition: Callable[[Mapping[str, Any]], Test]
    describe: Callable[[str, Mapping[str, Any]], str]
    message: Callable[[str, Mapping[str, Any], float, Any, int | None], str]
    cross: bool = False  # fires when its side changes (a cross), not when a condition becomes true
    needs: Callable[[Mapping[str, Any]], Needs] = lambda p: Needs()
    check: Callable[[Mapping[str, Any]], dict[str, str]] | None = None  # across parameters
    draws_level: bool = False  # its ``level`` is a price, drawn on the alert's price chart

    @property
    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params if p.default is not None}

    def parse(self, raw: Mapping[str, Any], errors: dict[str, str]) -> dict[str, Any]:
        """The kind's parameters from ``raw`` (defaults filled in); problems go to ``errors``."""
        values = {p.name: p.parse(raw, errors) for p in self.params}
        if self.check is not None:
            errors.update(self.check(values))
        return values


# -- shared pieces ---------------------------------------------------------------------------------
def span_text(seconds: int | None) -> str:
    seconds = int(seconds or 0)
    if seconds % 3600 == 0 and seconds >= 3600:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0 and seconds >= 60:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def _directional(pct: float, direction: str) -> Callable[[float], bool]:
    if direction == "up":
        return lambda change: change >= pct
    if direction == "down":
        return lambda change: change <= -pct
    return lambda change: abs(change) >= pct


def _arrow(p: Mapping[str, Any]) -> str:
    return DIRECTION.choice_labels[p.get("direction") or "either"]


def _last(price: float) -> str:
    return f"last {price:,.2f}"


def _rsi_below_100(value: float) -> str | None:
    return "RSI level must be below 100 (RSI is between 0 and 100)" if value >= 100 else None


def _fast_below_slow(p: Mapping[str, Any]) -> dict[str, str]:
    if p["fast"] is not None and p["slow"] is not None and p["fast"] >= p["slow"]:
        return {
            "fast": f"the fast SMA must be shorter than the slow one (fast {p['fast']}, slow {p['slow']})"
        }
    return {}


PRICE_LEVEL = Param(
    "level", "level", "Price level", 0, 1e12, low_open=True, example=200.0, step=0.01, fmt="%.2f"
)
RSI_LEVEL = Param(
    "level", "RSI level", "RSI level", 0, 100, low_open=True, check=_rsi_below_100, initial=70.0, fmt="%.2f"
)
PCT = Param("pct", "percent change", "Move (%)", 0, 1000, low_open=True, initial=3.0, step=0.5, fmt="%.2f")
WINDOW = Param(
    "window_s", "window (seconds)", "Within (minutes)", 10, 7 * 86400, integer=True, default=900, scale=60
)
DIRECTION = Param(
    "direction",
    "direction",
    "Direction",
    choices=DIRECTIONS,
    choice_labels={"up": "up", "down": "down", "either": "up or down"},
    casefold=True,
    default="either",
)
FACTOR = Param(
    "factor", "volume factor", "Volume ≥ (× average minute)", 1, 1000, low_open=True, initial=3.0, step=0.5
)
LOOKBACK = Param(
    "lookback_min", "look-back (minutes)", "Average over (minutes)", 2, 1440, integer=True, default=20
)
PERIOD = Param("period", "RSI period", "RSI period (bars)", 2, 200, integer=True, default=14)
FAST = Param("fast", "fast SMA length", "Fast SMA (bars)", 1, 500, integer=True, default=20)
SLOW = Param("slow", "slow SMA length", "Slow SMA (bars)", 2, 1000, integer=True, default=50)
TIMEFRAME = Param("timeframe", "timeframe", "Bars", choices=TIMEFRAMES, default="5m")


# -- the kinds -------------------------------------------------------------------------------------
def _above(p: Mapping[str, Any]) -> Test:
    level = p["level"]
    return lambda series, t, price: (price > level, price)


def _below(p: Mapping[str, Any]) -> Test:
    level = p["level"]
    return lambda series, t, price: (price < level, price)


def _cross(p: Mapping[str, Any]) -> Test:
    level = p["level"]
    return lambda series, t, price: ((None if price == level else 1 if price > level else -1), price)


def _pct_change(p: Mapping[str, Any]) -> Test:
    window, test = p["window_s"], _directional(p["pct"], p["direction"])

    def pct_change(series, t, price):
        change = series.pct_change(t, price, window)
        return (None, None) if change is None else (test(change), change)

    return pct_change


def _since_close(p: Mapping[str, Any]) -> Test:
    test = _directional(p["pct"], p["direction"])

    def since_close(series, t, price):
        close = series.previous_close(t)
        if not close:
            return None, None
        change = (price / close - 1.0) * 100.0
        return test(change), change

    return since_close


def _volume(p: Mapping[str, Any]) -> Test:
    factor, lookback = p["factor"], p["lookback_min"]

    def volume(series, t, price):
        ratio = series.volume_ratio(t, lookback)
        return (None, None) if ratio is None else (ratio >= factor, ratio)

    return volume


def _rsi(above: bool) -> Callable[[Mapping[str, Any]], Test]:
    def make(p: Mapping[str, Any]) -> Test:
        tf, period, level = p["timeframe"], p["period"], p["level"]

        def rsi(series, t, price):
            value = series.rsi(tf, period, t, price)
            if value is None:
                return None, None
            return (value > level if above else value < level), value

        return rsi

    return make


def _sma(p: Mapping[str, Any]) -> Test:
    tf, fast_n, slow_n = p["timeframe"], p["fast"], p["slow"]

    def sma(series, t, price):
        fast, slow = series.sma(tf, fast_n, t, price), series.sma(tf, slow_n, t, price)
        if fast is None or slow is None or fast == slow:
            return None, None
        return (1 if fast > slow else -1), fast - slow

    return sma


def _rsi_text(way: str) -> Callable[[str, Mapping[str, Any]], str]:
    verb = "rises" if way == "above" else "falls"
    return lambda s, p: f"{s} RSI({p['period']}, {p['timeframe']}) {verb} {way} {p['level']:g}"


def _rsi_message(way: str) -> Callable[..., str]:
    return lambda s, p, price, value, side: (
        f"{s} RSI({p['period']}, {p['timeframe']}) is {value:.1f}, {way} {p['level']:g} ({_last(price)})"
    )


def _sma_text(s: str, p: Mapping[str, Any]) -> str:
    way = {"up": "crosses above", "down": "crosses below", "either": "crosses"}[
        p.get("direction") or "either"
    ]
    return f"{s} SMA {p['fast']} {way} SMA {p['slow']} ({p['timeframe']} bars)"


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind(
            "price_above",
            "Price rises above a level",
            (PRICE_LEVEL,),
            _above,
            lambda s, p: f"{s} price rises above {p['level']:,.2f}",
            # "is", not "rose": a rule created while the price is already above fires on its first
            # price, and "rose above" was then untrue (the walk-through's first alert)
            lambda s, p, price, value, side: f"{s} is above {p['level']:,.2f} ({_last(price)})",
            draws_level=True,
        ),
        Kind(
            "price_below",
            "Price falls below a level",
            (PRICE_LEVEL,),
            _below,
            lambda s, p: f"{s} price falls below {p['level']:,.2f}",
            lambda s, p, price, value, side: f"{s} is below {p['level']:,.2f} ({_last(price)})",
            draws_level=True,
        ),
        Kind(
            "price_cross",
            "Price crosses a level (either way)",
            (PRICE_LEVEL,),
            _cross,
            lambda s, p: f"{s} price crosses {p['level']:,.2f}",
            lambda s, p, price, value, side: (
                f"{s} crossed {'up' if side and side > 0 else 'down'} through {p['level']:,.2f} ({_last(price)})"
            ),
            cross=True,
            draws_level=True,
        ),
        Kind(
            "pct_change",
            "% change within a time window",
            (PCT, WINDOW, DIRECTION),
            _pct_change,
            lambda s, p: f"{s} moves {_arrow(p)} {p['pct']:g}% within {span_text(p['window_s'])}",
            lambda s, p, price, value, side: (
                f"{s} moved {value:+.2f}% within {span_text(p['window_s'])} ({_last(price)})"
            ),
            needs=lambda p: Needs(prices_s=2.0 * p["window_s"] + 60),
        ),
        Kind(
            "pct_since_close",
            "% change since the previous close",
            (PCT, DIRECTION),
            _since_close,
            lambda s, p: f"{s} moves {_arrow(p)} {p['pct']:g}% from the previous close",
            lambda s, p, price, value, side: f"{s} is {value:+.2f}% from the previous close ({_last(price)})",
            needs=lambda p: Needs(closes={"1d": 3}),
        ),
        Kind(
            "volume_spike",
            "Volume spike (× the recent average)",
            (FACTOR, LOOKBACK),
            _volume,
            lambda s, p: (
                f"{s} volume this minute ≥ {p['factor']:g}× the average minute of the last "
                f"{p['lookback_min']} min"
            ),
            lambda s, p, price, value, side: (
                f"{s} volume this minute is {value:.1f}× the average minute of the last "
                f"{p['lookback_min']} min ({_last(price)})"
            ),
            needs=lambda p: Needs(prices_s=60.0 * (p["lookback_min"] + 2)),
        ),
        Kind(
            "rsi_above",
            "RSI rises above a level",
            (RSI_LEVEL, PERIOD, TIMEFRAME),
            _rsi(above=True),
            _rsi_text("above"),
            _rsi_message("above"),
            needs=lambda p: Needs(closes={p["timeframe"]: p["period"] * 5 + 1}),
        ),
        Kind(
            "rsi_below",
            "RSI falls below a level",
            (RSI_LEVEL, PERIOD, TIMEFRAME),
            _rsi(above=False),
            _rsi_text("below"),
            _rsi_message("below"),
            needs=lambda p: Needs(closes={p["timeframe"]: p["period"] * 5 + 1}),
        ),
        Kind(
            "sma_cross",
            "Fast SMA crosses the slow SMA",
            (DIRECTION, FAST, SLOW, TIMEFRAME),
            _sma,
            _sma_text,
            lambda s, p, price, value, side: (
                f"{s} SMA {p['fast']} crossed {'above' if side and side > 0 else 'below'} SMA {p['slow']} "
                f"on {p['timeframe']} bars ({_last(price)})"
            ),
            cross=True,
            needs=lambda p: Needs(closes={p["timeframe"]: p["slow"] + 1}),
            check=_fast_below_slow,
        ),
    )
}
#: every parameter name some kind uses
PARAM_NAMES = tuple(dict.fromkeys(p.name for k in KINDS.values() for p in k.params))
