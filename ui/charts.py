"""Plotly figure builders for the pages: candlesticks with volume and indicators, multi-symbol lines,
pipeline throughput. Pure functions of DataFrames; no Streamlit, no I/O.

Guarantees:
- One x axis per figure: price, volume and the indicator panels (``ui.indicators``: RSI, MACD) are
  stacked panels (separate y axes) over the same time axis, so zooming one zooms all and a single unified hover shows open, high, low, close,
  volume and every indicator of the bar under the cursor.
- Times are drawn in the exchange's local time (``tz``); daily and weekly bars keep their UTC
  calendar day. Closed-market range breaks (weekends, nights, holidays) are added only when the
  exchange is not open 24/7 *and* the data really has those gaps, so a 24/7 series (crypto, FX, the
  simulator) is never folded.
- Indicators are computed on everything passed in (so warm-up bars before ``visible_from`` settle
  them) and only the visible part is drawn.
- Volume bars are coloured by the bar's direction (close >= open is up).
- Compact on the wire: times go out as float64 milliseconds on a ``date`` axis, values as float32
  (7 significant digits, plenty for a chart; the CSV keeps full precision) and colours as a 0/1 array
  on a two-colour scale, so every array is a base64 typed array instead of a list of strings or
  doubles. ``bytes_per_point`` estimates the result so a page can size its point cap to a byte budget.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from pipeline import analytics
from pipeline.markets.calendars import Market, regular_session
from ui.indicators import INDICATORS as INDICATORS  # the names a page offers: list(INDICATORS)
from ui.indicators import Indicator, selected
from ui.theme import CHART_DOWN, CHART_UP

DAY = 86400
#: Shade of pre-market and after-hours stretches on intraday charts.
EXTENDED_FILL = "rgba(100,116,139,0.12)"


def local_times(ts: pd.Series, tz: str | None, interval_s: int) -> pd.Series:
    """Naive local datetimes for drawing (UTC calendar days for daily and coarser bars)."""
    ts = pd.to_datetime(ts, utc=True)
    if interval_s >= DAY or not tz:
        return ts.dt.tz_localize(None)
    return ts.dt.tz_convert(tz).dt.tz_localize(None)


def extended_hours_spans(
    ts: pd.Series, interval_s: int, sessions: Callable[[date], tuple[datetime, datetime] | None], tz: str
) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """(start, end) in UTC of the pre-market and after-hours stretches the intraday bars at ``ts``
    (aware) cover: per session date (in the exchange's time zone ``tz``), from its first bar to the
    regular open and from the regular close to its last bar's end. ``sessions(day)`` gives that
    date's regular (open, close) in UTC or None (no session: nothing is shaded). Empty for daily and
    coarser bars."""
    if interval_s >= DAY or ts.empty:
        return []
    stamps = pd.to_datetime(ts, utc=True).sort_values()
    step = pd.Timedelta(seconds=interval_s)
    spans = []
    for day, group in stamps.groupby(stamps.dt.tz_convert(tz).dt.date):
        regular = sessions(day)
        if regular is None:
            continue
        opens, closes = pd.Timestamp(regular[0]), pd.Timestamp(regular[1])
        first, last = group.iloc[0], group.iloc[-1] + step
        if first < opens:
            spans.append((first, min(opens, last)))
        if last > closes:
            spans.append((max(closes, first), last))
    return spans


def shades_extended_hours(fig: go.Figure) -> bool:
    """Did ``candles`` shade any pre-market or after-hours stretch in ``fig``?"""
    return any(getattr(shape, "name", None) == "extended" for shape in fig.layout.shapes or ())


def epoch_ms(x: pd.Series) -> np.ndarray:
    """Naive datetimes as float64 milliseconds: what a plotly ``date`` axis reads, as a typed array."""
    return pd.to_datetime(x).to_numpy(dtype="datetime64[ms]").astype("int64").astype("float64")


def f32(values) -> np.ndarray:
    return np.asarray(values, dtype="float32")


def bytes_per_point(indicators: Iterable[str] = (), series: int = 1, candles: bool = True) -> float:
    """Estimated JSON bytes one bar costs in a figure (base64 typed arrays, 4/3 overhead): a float64
    time and a float32 value per trace (the candlestick has four values), plus one int8 colour per
    bar-coloured trace (the volume and any ``Trace.signed_bars``)."""
    if not candles:
        return series * (8 + 4) * 4 / 3
    chosen = selected(indicators)
    traces = 2 + sum(spec.traces for spec in chosen)
    y_arrays = 4 + (traces - 1)
    markers = 1 + sum(spec.signed_bars for spec in chosen)
    return (8 * traces + 4 * y_arrays + markers) * 4 / 3


LIVE_BUDGET_BYTES = 150_000  # per Live chart and refresh (the goal is < 200 KB per refresh)
LIVE_MAX_POINTS = 1500


def live_point_cap(
    indicators: Iterable[str] = (),
    series: int = 1,
    candles: bool = True,
    budget: int = LIVE_BUDGET_BYTES,
    ceiling: int = LIVE_MAX_POINTS,
) -> int:
    """Most bars per series a Live chart may carry so one refresh stays within ``budget`` bytes."""
    return max(100, min(ceiling, int(budget / bytes_per_point(indicators, series, candles))))


DIRECTION_SCALE = [[0.0, CHART_DOWN], [1.0, CHART_UP]]


def closed_market_breaks(
    x: pd.Series, interval_s: int, always_open: bool, max_holidays: int = 60
) -> list[dict]:
    """Plotly ``rangebreaks`` for the closed periods the data actually shows (see the module doc)."""
    x = pd.Series(pd.to_datetime(x)).dropna().sort_values().drop_duplicates().reset_index(drop=True)
    if always_open or len(x) < 3 or interval_s >= 7 * DAY:
        return []
    gaps = x.diff().dt.total_seconds() > (1.5 * DAY if interval_s >= DAY else max(3 * interval_s, 3600))
    if not gaps.any():
        return []
    breaks: list[dict] = []
    weekend_in_range = any(
        d.weekday() >= 5 for d in pd.date_range(x.iloc[0].normalize(), x.iloc[-1].normalize())
    )
    if weekend_in_range and not (x.dt.weekday >= 5).any():
        breaks.append(dict(bounds=["sat", "mon"]))
    if interval_s < DAY:
        tod = x.dt.hour + x.dt.minute / 60.0
        first, end = float(tod.min()), float(tod.max()) + interval_s / 3600.0
        overnight = (gaps & (x.dt.date != x.shift().dt.date)).any()
        if overnight and end <= 24 - 1 and first < end:
            breaks.append(dict(bounds=[round(end, 4), round(first, 4)], pattern="hour"))
    present = set(x.dt.date)
    holidays = [
        d.strftime("%Y-%m-%d")
        for d in pd.date_range(x.iloc[0].normalize(), x.iloc[-1].normalize())
        if d.weekday() < 5 and d.date() not in present
    ]
    if holidays:
        breaks.append(dict(values=holidays[-max_holidays:], dvalue=DAY * 1000))
    return breaks


def _panel_domains(panels: Sequence[Indicator]) -> dict[str, list[float]]:
    """Vertical domains: price on top, then volume, then the indicator panels, with small gaps."""
    weights = {"price": 3.2, "volume": 1.0, **{spec.name: spec.height for spec in panels}}
    order = ["price", "volume", *(spec.name for spec in panels)]
    gap = 0.035
    total = sum(weights[p] for p in order)
    usable = 1 - gap * (len(order) - 1)
    domains, top = {}, 1.0
    for name in order:
        height = usable * weights[name] / total
        domains[name] = [max(0.0, round(top - height, 4)), round(top, 4)]
        top -= height + gap
    return domains


#: A daily (or coarser) chart spanning at most this many days gets one tick per day: Plotly's own
#: ticks for a few days fall every 12 hours ("00:00", "12:00") under bars that have no time of day.
FEW_DAYS = 14


def day_ticks(x_local: pd.Series, interval_s: float, visible: tuple[float, float] | None = None) -> dict:
    """The x-axis settings that keep a chart of daily or weekly bars labelled with dates only: one
    tick per day, as "Dec 4" (the hover keeps "Dec 4, 2026"), when the shown span (``visible``: epoch ms, else the data's) is at most
    ``FEW_DAYS`` days; {} otherwise (Plotly's own ticks are days or coarser there) and for intraday
    bars. ``x_local``: the bars' times as drawn."""
    if interval_s < 86_400 or x_local.empty:
        return {}
    if visible is not None:
        lo, hi = visible
    else:
        ms = epoch_ms(x_local)
        lo, hi = float(ms.min()), float(ms.max())
    if hi - lo > FEW_DAYS * 86_400_000:
        return {}
    return {"dtick": 86_400_000, "tickformat": "%b %-d", "hoverformat": "%b %-d, %Y"}  # hover as before


def candles(
    bars: pd.DataFrame,
    *,
    symbol: str,
    interval_s: int,
    indicators: Iterable[str] = (),
    tz: str | None = "UTC",
    always_open: bool = True,
    visible_from: datetime | None = None,
    visible_to: datetime | None = None,
    height: int | None = None,
    market: Market | None = None,
) -> go.Figure:
    """Candlestick + volume (+ the chosen ``ui.indicators``) of one symbol's bars (columns ts,
    open..volume).

    With ``visible_from`` and ``visible_to`` the time axis spans exactly that window (a new symbol's
    first bar sits at the right edge instead of filling the chart). With a ``market`` whose provider
    serves extended hours (``Market.extended``: US listings), intraday bars outside its regular
    session are shaded (pre-market and after-hours, as TradingView and Yahoo draw them); they are
    not part of any daily bar (``pipeline.bars``)."""
    chosen = selected(indicators)
    overlays = sorted((s for s in chosen if s.placement == "overlay"), key=lambda s: s.band)
    panels = [s for s in chosen if s.placement == "panel"]
    frame = bars.sort_values("ts").reset_index(drop=True)
    x_all = local_times(frame["ts"], tz, interval_s)
    with_sessions = frame.assign(session=x_all.dt.date)
    computed = {spec.name: spec.compute(with_sessions) for spec in chosen}
    keep = np.ones(len(frame), dtype=bool)
    if visible_from is not None:
        keep = (frame["ts"] >= pd.Timestamp(visible_from)).to_numpy()
    f = frame[keep].reset_index(drop=True)
    x_local = x_all[keep].reset_index(drop=True)
    x = epoch_ms(x_local)
    domains = _panel_domains(panels)
    axis = {spec.name: f"y{i + 3}" for i, spec in enumerate(panels)}

    fig = go.Figure()
    fig.add_trace(
        go.Candlestick(
            x=x,
            open=f32(f["open"]),
            high=f32(f["high"]),
            low=f32(f["low"]),
            close=f32(f["close"]),
            name=symbol,
            yaxis="y",
            increasing=dict(line=dict(color=CHART_UP, width=1), fillcolor=CHART_UP),
            decreasing=dict(line=dict(color=CHART_DOWN, width=1), fillcolor=CHART_DOWN),
        )
    )
    for spec in overlays:
        _draw(fig, spec, x, computed[spec.name], keep, "y")
    fig.add_trace(
        go.Bar(
            x=x,
            y=f32(f["volume"]),
            name="Volume",
            yaxis="y2",
            opacity=0.75,
            hovertemplate="%{y:,.0f}",
            showlegend=False,
            marker=_by_sign((f["close"] >= f["open"]).to_numpy()),
        )
    )
    for spec in panels:
        _draw(fig, spec, x, computed[spec.name], keep, axis[spec.name])

    layout: dict = dict(
        height=height or (430 + 120 * len(panels)),
        margin=dict(l=8, r=8, t=30, b=8),
        hovermode="x unified",
        hoversubplots="axis",
        showlegend=True,
        bargap=0.1,
        legend=dict(
            orientation="h",
            yanchor="bottom",
            y=1.0,
            xanchor="left",
            x=0,
            font=dict(size=11),
            traceorder="normal",
        ),
        xaxis=dict(
            type="date",
            rangeslider=dict(visible=False),
            rangebreaks=closed_market_breaks(x_local, interval_s, always_open),
            showspikes=True,
            spikemode="across",
            spikethickness=1,
            anchor="free",
            position=0,
        ),
        yaxis=dict(domain=domains["price"], title=None, tickformat=",.4~f", side="right"),
        yaxis2=dict(domain=domains["volume"], title=None, side="right", tickformat="~s", showgrid=False),
    )
    for spec in panels:
        layout["yaxis" + axis[spec.name][1:]] = _panel_axis(spec, domains[spec.name])
    visible = None
    if visible_from is not None and visible_to is not None:
        span = local_times(pd.Series([pd.Timestamp(visible_from), pd.Timestamp(visible_to)]), tz, interval_s)
        layout["xaxis"]["range"] = [float(v) for v in epoch_ms(span)]
        visible = (float(epoch_ms(span).min()), float(epoch_ms(span).max()))
    layout["xaxis"].update(day_ticks(x_local, interval_s, visible))
    fig.update_layout(**layout)
    if market is not None and market.extended and not always_open and tz:
        _shade_extended_hours(fig, f["ts"], interval_s, tz, market)
    for spec in panels:
        for level in spec.levels:  # dotted guides across the panel (RSI: 30 and 70)
            fig.add_shape(
                type="line",
                xref="paper",
                x0=0,
                x1=1,
                yref=axis[spec.name],
                y0=level,
                y1=level,
                line=dict(width=1, dash="dot", color="rgba(128,128,128,0.6)"),
            )
    return fig


def _shade_extended_hours(fig: go.Figure, ts: pd.Series, interval_s: int, tz: str, market: Market) -> None:
    """Shade the pre-market and after-hours stretches of the bars at ``ts`` (``extended_hours_spans``)."""
    spans = extended_hours_spans(ts, interval_s, lambda d: regular_session(market, d), market.timezone)
    for a, b in spans:
        x0, x1 = epoch_ms(local_times(pd.Series([a, b]), tz, interval_s))
        fig.add_vrect(
            x0=float(x0), x1=float(x1), fillcolor=EXTENDED_FILL, line_width=0, layer="below", name="extended"
        )


def _panel_axis(spec: Indicator, domain: list[float]) -> dict:
    """The y axis of an indicator's panel: titled with its name, ``spec.range`` and ``spec.levels``
    as ticks when it has them."""
    out: dict = dict(domain=domain, side="right", title=dict(text=spec.name, font=dict(size=11)))
    if spec.range is not None:
        out["range"] = list(spec.range)
    if spec.levels:
        out["tickvals"] = list(spec.levels)
    return out


def _by_sign(up: np.ndarray) -> dict:
    """A bar marker coloured per bar: the up colour where ``up`` is true, the down colour elsewhere
    (a 0/1 int8 array on a two-colour scale, see the module doc)."""
    return dict(color=up.astype("int8"), colorscale=DIRECTION_SCALE, cmin=0, cmax=1, line_width=0)


def _draw(
    fig: go.Figure, spec: Indicator, x: np.ndarray, values: dict[str, pd.Series], keep: np.ndarray, axis: str
) -> None:
    """Add ``spec``'s traces (``Indicator.draw``, in order) of the ``keep`` rows on the y axis ``axis``."""
    for t in spec.draw:
        y = values[t.key][keep]
        if t.signed_bars:
            fig.add_trace(
                go.Bar(
                    x=x,
                    y=f32(y),
                    name=t.label,
                    yaxis=axis,
                    opacity=t.opacity,
                    hovertemplate=t.hover,
                    marker=_by_sign((y.fillna(0) >= 0).to_numpy()),
                )
            )
            continue
        fig.add_trace(
            go.Scatter(
                x=x,
                y=f32(y),
                name=t.label,
                mode="lines",
                yaxis=axis,
                line=dict(width=t.width, color=t.colour, dash=t.dash),
                fill=t.fill,
                fillcolor=t.fill_colour,
                hovertemplate=t.hover,
            )
        )


def lines(
    frame: pd.DataFrame,
    *,
    interval_s: int,
    normalise: bool = False,
    tz: str | None = "UTC",
    always_open: bool = True,
    height: int = 430,
) -> go.Figure:
    """One line per symbol (long frame: symbol, ts, close); normalised to 1.0 at each line's start
    (its own first session). Daily and coarser lines of several symbols are aligned on the union of
    their dates: a day on which only one market was closed stays, and the closed market's line
    carries its last close across it (display only, hover says "closed"), never before its start."""
    fig = go.Figure()
    xs = []
    groups = list(frame.sort_values("ts").groupby("symbol", sort=False))
    align = interval_s >= DAY and len(groups) > 1
    dates = (
        pd.Index(sorted(set().union(*(local_times(g["ts"], tz, interval_s) for _, g in groups))))
        if align
        else None
    )
    for symbol, g in groups:
        x = local_times(g["ts"], tz, interval_s)
        y = analytics.normalise(g["close"]) if normalise else g["close"]
        traded = pd.Series(True, index=x.values)
        if dates is not None:
            series = pd.Series(y.to_numpy(), index=x.values)
            series = series[~series.index.duplicated(keep="last")]
            own = dates[dates >= series.index.min()]
            traded = series.reindex(own).notna()
            series = series.reindex(own).ffill()
            x, y = pd.Series(own), series
        xs.append(x)
        closed = np.where(traded.to_numpy(), "", " (closed)")
        fig.add_trace(
            go.Scatter(
                x=epoch_ms(x),
                y=f32(y),
                name=symbol,
                mode="lines",
                line=dict(width=1.6),
                customdata=closed,
                hovertemplate=("%{y:.4f}×" if normalise else "%{y:,.2f}") + "%{customdata}",
            )
        )
    union = pd.concat(xs) if xs else pd.Series(dtype="datetime64[ns]")
    fig.update_layout(
        height=height,
        margin=dict(l=8, r=8, t=30, b=8),
        hovermode="x unified",
        legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="left", x=0),
        xaxis=dict(
            type="date",
            rangebreaks=closed_market_breaks(union, interval_s, always_open),
            **day_ticks(union, interval_s),
        ),
        yaxis=dict(side="right", title=None, tickformat=".3~f" if normalise else ",.4~f"),
    )
    if normalise:
        fig.add_hline(y=1.0, line=dict(width=1, dash="dot", color="rgba(128,128,128,0.7)"))
    return fig


def throughput(series: dict[str, list[dict]], height: int = 260) -> go.Figure:
    """Events per second over time, one line per named series of ``[{t: epoch, per_s}]``."""
    fig = go.Figure()
    for name, points in series.items():
        if not points:
            continue
        x = pd.to_datetime([p["t"] for p in points], unit="s", utc=True).tz_localize(None)
        fig.add_trace(
            go.Scatter(
                x=x,
                y=[p["per_s"] for p in points],
                name=name,
                mode="lines",
                line=dict(width=1.6, shape="hv"),
                hovertemplate="%{y:.1f}/s",
            )
        )
    fig.update_layout(
        height=height,
        margin=dict(l=8, r=8, t=30, b=8),
        hovermode="x unified",
        legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="left", x=0),
        yaxis=dict(title="events/s", rangemode="tozero", side="right"),
    )
    return fig


def figure_points(fig: go.Figure) -> int:
    """The largest number of points of any trace (what the 5,000-point rule is about)."""
    return max((len(t.x) for t in fig.data if getattr(t, "x", None) is not None), default=0)
