"""Chart indicators: the one registry of what a candlestick chart can draw over or under the price.

An indicator is one ``Indicator`` entry in ``INDICATORS``: its name (the menu's label), where it goes
(``placement``: an ``"overlay"`` on the price axis or a ``"panel"`` of its own under the volume), how
many bars it needs before it has a value (``lookback``), how it computes its values and how each
value is drawn (``Trace``: label, colour, width, dash, fill, hover format). The formulas live in
``pipeline/analytics.py``; ``compute`` only calls them. ``ui.charts.candles`` draws every chosen
entry, ``ui.charts.bytes_per_point`` sizes a chart by their traces and the Live page fetches
``warmup(INDICATORS)`` bars before its window when any is chosen (the slowest registered one's, so the
recursive ones start from the same settled seed whichever are chosen), so a new indicator is one entry here plus its formula and
``tests/test_indicators.py`` covers it without edits.

Guarantees:
- ``compute(frame)`` takes a chart's bars (columns ts, open, high, low, close, volume, ascending, and
  ``session``: the exchange's local date of each bar) and returns one Series per ``Trace.key``, on the
  frame's index, in its order; it never mutates the frame.
- ``lookback`` is exact: on bars without gaps or zero volume every value is NaN on row 0 (when
  ``lookback`` > 0), every value is finite from row ``lookback`` on, and some value is still NaN on
  row ``lookback - 1``. Warm-up is NaN, never zero and never a guess (``pipeline.analytics``).
- ``traces`` is the number of traces the indicator adds to a figure, one per ``Trace``, in order.
- Order is the registry's: the menu lists the entries in it and ``candles`` draws overlays in it
  (plain lines first, then filled bands, ``Indicator.band``), then the volume, then one panel per
  chosen ``"panel"`` entry, top to bottom.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

import pandas as pd

from pipeline import analytics

Placement = Literal["overlay", "panel"]
#: bars -> one Series per ``Trace.key``
Compute = Callable[[pd.DataFrame], dict[str, pd.Series]]
#: Bars the Live page fetches before its window beyond the slowest lookback: its first visible
#: bar sits one interval before the window start, and a bar may be missing (a minute without a trade).
#: With MACD (lookback 33) this is the 40 bars the page has always fetched.
WARMUP_SPARE = 7


@dataclass(frozen=True)
class Trace:
    """One drawn value of an indicator: the ``compute`` output ``key`` as a line named ``label``
    (legend and hover) in ``colour``; or, with ``signed_bars``, as bars coloured like the volume (up
    colour at or above zero, down colour below) at ``opacity``. ``fill`` is plotly's ("tonexty": to the
    trace drawn just before) in ``fill_colour``; ``hover`` is the hover value's format."""

    key: str
    label: str
    colour: str | None = None  # None only for ``signed_bars``
    width: float = 1.3
    dash: str | None = None
    fill: str | None = None
    fill_colour: str | None = None
    hover: str = "%{y:,.2f}"
    signed_bars: bool = False
    opacity: float | None = None


@dataclass(frozen=True)
class Indicator:
    name: str  # the menu's label and what pages pass to ``candles``
    placement: Placement
    lookback: int  # rows of warm-up (NaN) before every value is defined
    compute: Compute
    draw: tuple[Trace, ...]
    # a panel's own y axis: its share of the height (volume: 1.0), a fixed range, and guide levels
    # (tick values and dotted lines across the panel)
    height: float = 1.1
    range: tuple[float, float] | None = None
    levels: tuple[float, ...] = ()

    @property
    def traces(self) -> int:
        """Traces it adds to a figure."""
        return len(self.draw)

    @property
    def colours(self) -> tuple[str | None, ...]:
        """Each trace's colour, in drawing order (None: coloured by sign, like the volume)."""
        return tuple(t.colour for t in self.draw)

    @property
    def band(self) -> bool:
        """Does it fill an area (drawn after the plain overlay lines)?"""
        return any(t.fill for t in self.draw)

    @property
    def signed_bars(self) -> int:
        """Traces coloured per bar (one more small array per point on the wire)."""
        return sum(t.signed_bars for t in self.draw)


def selected(names: Iterable[str]) -> list[Indicator]:
    """The registry entries named in ``names``, in registry order (unknown names are ignored)."""
    wanted = set(names)
    return [spec for name, spec in INDICATORS.items() if name in wanted]


def warmup(names: Iterable[str]) -> int:
    """Bars to fetch before a chart's window so the chosen indicators have values on its first bar:
    the slowest ``lookback`` plus ``WARMUP_SPARE``; 0 with none chosen."""
    chosen = selected(names)
    return max(spec.lookback for spec in chosen) + WARMUP_SPARE if chosen else 0


# -- the indicators ----------------------------------------------------------------------------------
def _bollinger(frame: pd.DataFrame) -> dict[str, pd.Series]:
    bands = analytics.bollinger(frame["close"])
    return {"upper": bands["upper"], "lower": bands["lower"]}


def _macd(frame: pd.DataFrame) -> dict[str, pd.Series]:
    m = analytics.macd(frame["close"])
    return {"hist": m["hist"], "macd": m["macd"], "signal": m["signal"]}


def _overlay_line(label: str, colour: str) -> Trace:
    return Trace(label, label, colour, width=1.4)


BOLLINGER = "#64748b"

INDICATORS: dict[str, Indicator] = {
    spec.name: spec
    for spec in (
        Indicator(
            "SMA 20",
            "overlay",
            19,
            lambda f: {"SMA 20": analytics.sma(f["close"], 20)},
            (_overlay_line("SMA 20", "#f59e0b"),),
        ),
        Indicator(
            "EMA 20",
            "overlay",
            19,
            lambda f: {"EMA 20": analytics.ema(f["close"], 20)},
            (_overlay_line("EMA 20", "#8b5cf6"),),
        ),
        Indicator(
            "Bollinger",
            "overlay",
            19,
            _bollinger,
            (
                Trace("upper", "Bollinger upper", BOLLINGER, width=1, dash="dot"),
                Trace(
                    "lower",
                    "Bollinger lower",
                    BOLLINGER,
                    width=1,
                    dash="dot",
                    fill="tonexty",
                    fill_colour="rgba(100,116,139,0.10)",
                ),
            ),
        ),
        Indicator(
            "VWAP",
            "overlay",
            0,
            lambda f: {"VWAP": analytics.vwap(f, sessions=f.get("session"))},
            (_overlay_line("VWAP", "#0ea5e9"),),
        ),
        Indicator(
            "RSI",
            "panel",
            14,
            lambda f: {"RSI": analytics.rsi(f["close"])},
            (Trace("RSI", "RSI 14", "#a855f7", hover="%{y:.1f}"),),
            range=(0, 100),
            levels=(30, 70),
        ),
        Indicator(
            "MACD",
            "panel",
            33,
            _macd,
            (
                Trace("hist", "MACD histogram", hover="%{y:.3f}", signed_bars=True, opacity=0.6),
                Trace("macd", "MACD 12/26", "#0ea5e9", hover="%{y:.3f}"),
                Trace("signal", "Signal 9", "#f59e0b", hover="%{y:.3f}"),
            ),
        ),
    )
}
