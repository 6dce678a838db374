"""Plotly figures of the Insights page: the watchlist treemap, performance against a benchmark, the
correlation heatmap, drawdowns and the returns histogram. Pure functions; no Streamlit, no I/O.

Guarantees:
- Colours follow ``ui.charts``: teal (``ui.theme.CHART_UP``) for gains, red (``CHART_DOWN``) for losses; the
  treemap and the correlation heatmap use a diverging scale centred at 0.
- Every line figure stays under ``BUDGET_BYTES`` (150 KB) on the wire: series are sent as typed arrays
  (``ui.charts.epoch_ms``/``f32``) and thinned to every k-th session (the last one always kept) when
  the traces together would exceed it (``thin``); the figure's ``meta`` says by how much. The
  statistics are computed on every session before thinning; only the drawing is thinned.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from pipeline import insights
from pipeline.markets.currency import ISO, money
from ui import format as fmt
from ui.charts import epoch_ms, f32
from ui.tables import entry_market
from ui.theme import CHART_DOWN, CHART_UP

BUDGET_BYTES = 150_000
BYTES_PER_POINT = (8 + 4) * 4 / 3  # float64 x + float32 y, base64
NEUTRAL = "#9ca3af"
DIVERGING = [[0.0, CHART_DOWN], [0.5, NEUTRAL], [1.0, CHART_UP]]
BENCH_COLOR = "#64748b"
PALETTE = qualitative.Plotly
LAYOUT = dict(margin=dict(l=8, r=8, t=30, b=8), legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0))


def symbol_colours(symbols, benchmark: str | None = None) -> dict[str, str]:
    """One line colour per symbol for every Insights chart: ``symbols`` (the whole watchlist in its
    order, the benchmark skipped) take ``PALETTE`` in turn, so a symbol keeps its colour whichever
    others are picked, and no two share one up to ``len(PALETTE)`` symbols (then it repeats); the
    benchmark is ``BENCH_COLOR``. The page builds it once and hands it to each chart."""
    others = [s for s in dict.fromkeys(symbols) if s != benchmark]
    out = {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(others)}
    if benchmark is not None:
        out[benchmark] = BENCH_COLOR
    return out


def point_cap(traces: int, budget: int = BUDGET_BYTES) -> int:
    """Most points per trace so ``traces`` line traces fit in ``budget`` bytes (at least 60)."""
    return max(60, int(budget * 0.9 / (max(1, traces) * BYTES_PER_POINT)))


def thin(series: pd.Series, cap: int) -> tuple[pd.Series, int]:
    """Every k-th point (k the smallest step that keeps at most ``cap``), the last always kept."""
    n = len(series)
    if n <= cap:
        return series, 1
    step = math.ceil(n / cap)
    keep = list(range(n - 1, -1, -step))[::-1]
    return series.iloc[keep], step


def _x(index) -> np.ndarray:
    return epoch_ms(pd.Series(pd.to_datetime(list(index))))


def day_axis(index) -> dict:
    """A date axis of daily closes: whole days as ticks when the span is short (no 06:00 ticks)."""
    days = pd.to_datetime(list(index))
    short = len(days) and (days.max() - days.min()).days < 14
    return dict(type="date", dtick=86_400_000, tickformat="%b %d") if short else dict(type="date")


# -- treemap ---
def tiles(glance: pd.DataFrame, entries: list, by_value: bool = False) -> pd.DataFrame:
    """The treemap's tiles from the Overview's table (``ui.tables.watchlist_glance``), so the colour
    is exactly its "Change %": columns symbol, market (the exchange's name, ``ui.tables.entry_market``),
    change_pct, size (1, or last × volume with ``by_value``), and the hover texts last, change, pct,
    volume (money in the quote currency's major unit, "–" while the history is loading)."""
    by_symbol = {e.symbol: e for e in entries}
    rows = []
    for r in glance.to_dict("records"):
        entry = by_symbol[r["Symbol"]]
        unit = str(r.get("Currency") or "").split(" ", 1)[0]
        code = unit if unit in ISO else None
        traded = r["Last"] * r["Volume"] if not (fmt.missing(r["Last"]) or fmt.missing(r["Volume"])) else 0.0
        change = r["Change"]
        rows.append(
            {
                "symbol": r["Symbol"],
                "market": entry_market(entry).exchange,
                "change_pct": r["Change %"],
                "size": max(float(traded), 1e-9) if by_value else 1.0,
                "last": money(r["Last"], code, fmt.DASH) if code else fmt.price(r["Last"]),
                "change": (
                    ("+" if not fmt.missing(change) and change > 0 else "") + money(change, code, fmt.DASH)
                )
                if code
                else fmt.change(change),
                "pct": fmt.pct(r["Change %"]) if not fmt.missing(r["Change %"]) else "loading history…",
                "volume": fmt.volume(r["Volume"]),
            }
        )
    return pd.DataFrame(
        rows, columns=["symbol", "market", "change_pct", "size", "last", "change", "pct", "volume"]
    )


def treemap(tiles: pd.DataFrame, height: int = 420) -> go.Figure:
    """One tile per symbol grouped under its market. ``tiles`` columns: symbol, market, change_pct
    (NaN: no change yet, drawn neutral), size (> 0), last, change, volume (texts for the hover),
    pct (text). The colour is ``change_pct`` on a diverging scale centred at 0."""
    markets = list(dict.fromkeys(tiles["market"]))
    change = pd.to_numeric(tiles["change_pct"], errors="coerce").astype(float)
    span = max(0.5, float(change.abs().max())) if change.notna().any() else 1.0
    sizes = tiles["size"].astype(float)
    market_size = {m: float(sizes[tiles["market"] == m].sum()) for m in markets}
    ids = [f"m:{m}" for m in markets] + [f"s:{s}" for s in tiles["symbol"]]
    labels = markets + list(tiles["symbol"])
    parents = [""] * len(markets) + [f"m:{m}" for m in tiles["market"]]
    values = [market_size[m] for m in markets] + list(sizes)
    colors = [0.0] * len(markets) + [0.0 if math.isnan(c) else c for c in change]
    empty = [""] * len(markets)
    custom = np.array(
        [
            empty + [str(v) for v in tiles["last"]],
            empty + [str(v) for v in tiles["change"]],
            empty + [str(v) for v in tiles["pct"]],
            empty + [str(v) for v in tiles["volume"]],
        ]
    ).T
    fig = go.Figure(
        go.Treemap(
            ids=ids,
            labels=labels,
            parents=parents,
            values=values,
            branchvalues="total",
            customdata=custom,
            marker=dict(
                colors=colors, colorscale=DIVERGING, cmid=0, cmin=-span, cmax=span, line=dict(width=1)
            ),
            texttemplate="<b>%{label}</b><br>%{customdata[2]}",
            hovertemplate="<b>%{label}</b><br>Last %{customdata[0]}<br>Change %{customdata[1]} "
            "(%{customdata[2]})<br>Volume %{customdata[3]}<extra></extra>",
            pathbar=dict(visible=False),
            tiling=dict(pad=2),
        )
    )
    fig.update_layout(height=height, margin=dict(l=4, r=4, t=4, b=4))
    return fig


# -- relative performance -----------------------------------------------------------------------------
def relative(
    wide: pd.DataFrame, benchmark: str, height: int = 520, colours: dict[str, str] | None = None
) -> go.Figure:
    """Each column of ``wide`` (daily closes on common dates from the range start, benchmark
    included) normalised to 1 at its first close, the benchmark dashed; below, each symbol's
    outperformance ``(norm_symbol / norm_benchmark - 1) * 100`` in percent. ``colours``: symbol ->
    colour (``symbol_colours``; by default from ``wide``'s columns)."""
    symbols = [c for c in wide.columns if c != benchmark]
    colours = colours or symbol_colours(symbols, benchmark)
    cap = point_cap(2 * len(symbols) + 1)
    bench = insights_normalise(wide[benchmark])
    traces = []
    step = 1
    for name in [*symbols, benchmark]:
        norm = insights_normalise(wide[name])
        drawn, step = thin(norm.dropna(), cap)
        is_bench = name == benchmark
        traces.append(
            go.Scatter(
                x=_x(drawn.index),
                y=f32(drawn),
                name=f"{name} (benchmark)" if is_bench else name,
                mode="lines",
                line=dict(
                    width=2.2 if is_bench else 1.5,
                    dash="dash" if is_bench else None,
                    color=BENCH_COLOR if is_bench else colours[name],
                ),
                legendgroup=name,
                hovertemplate="%{y:.3f}×",
            )
        )
    for name in symbols:
        out = ((insights_normalise(wide[name]) / bench - 1.0) * 100.0).dropna()
        drawn, _ = thin(out, cap)
        traces.append(
            go.Scatter(
                x=_x(drawn.index),
                y=f32(drawn),
                name=f"{name} vs {benchmark}",
                mode="lines",
                yaxis="y2",
                legendgroup=name,
                showlegend=False,
                line=dict(width=1.2, color=colours[name]),
                hovertemplate="%{y:+.2f}% vs " + benchmark,
            )
        )
    fig = go.Figure(data=traces)
    fig.update_layout(
        height=height,
        hovermode="x unified",
        meta={"thinned": step},
        xaxis=day_axis(wide.index) | dict(anchor="y2"),
        yaxis=dict(domain=[0.38, 1.0], side="right", tickformat=".2f", title=None),
        yaxis2=dict(domain=[0.0, 0.3], side="right", ticksuffix="%", title=dict(text="vs benchmark")),
        **LAYOUT,
    )
    fig.add_hline(y=1.0, line=dict(width=1, dash="dot", color="rgba(128,128,128,0.7)"))
    fig.add_hline(y=0.0, yref="y2", line=dict(width=1, dash="dot", color="rgba(128,128,128,0.7)"))
    return fig


def insights_normalise(close: pd.Series) -> pd.Series:
    """``close`` divided by its first valid value (1.0 at the range start)."""
    valid = close.dropna()
    if valid.empty or not valid.iloc[0]:
        return close * np.nan
    return close / float(valid.iloc[0])


# -- correlation ----------------------------------------------------------------------------------------
def correlation(matrix: insights.Matrix, height: int | None = None) -> go.Figure:
    """The correlation matrix as a heatmap (-1 red .. 0 grey .. +1 teal); the hover gives r and the
    common sessions, or why the cell is blank; blank cells carry no colour."""
    symbols = list(matrix.r.index)
    z = matrix.r.to_numpy(dtype=float)
    n = matrix.n.to_numpy()
    hover = np.empty(z.shape, dtype=object)
    text = np.empty(z.shape, dtype=object)
    for i in range(len(symbols)):
        for j in range(len(symbols)):
            pair = f"{symbols[i]} · {symbols[j]}"
            if np.isnan(z[i, j]):
                hover[i, j] = f"{pair}<br>blank: {str(matrix.reason.iat[i, j])}"
                text[i, j] = ""
            else:
                hover[i, j] = f"{pair}<br>r = {z[i, j]:.2f}<br>n = {n[i, j]} common sessions"
                text[i, j] = f"{z[i, j]:.2f}".replace("-0.00", "0.00")
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=symbols,
            y=symbols,
            zmin=-1,
            zmax=1,
            zmid=0,
            colorscale=DIVERGING,
            text=text,
            texttemplate="%{text}",
            customdata=hover,
            hovertemplate="%{customdata}<extra></extra>",
            hoverongaps=True,
            colorbar=dict(title="r", thickness=12),
        )
    )
    fig.update_layout(
        height=height or max(300, 60 + 34 * len(symbols)),
        margin=dict(l=8, r=8, t=8, b=8),
        yaxis=dict(autorange="reversed"),
    )
    return fig


# -- drawdown ---------------------------------------------------------------------------------------------
def drawdowns(wide: pd.DataFrame, height: int = 400, colours: dict[str, str] | None = None) -> go.Figure:
    """Percent below the running maximum per column of ``wide`` (closes from the range start), with
    the maximum drawdown's peak (▲), trough (▼) and recovery (●) marked on each line. ``colours``:
    symbol -> line colour (``symbol_colours``, the same as ``relative``'s; by default from the
    columns); the marks keep the loss colour."""
    cap = point_cap(len(wide.columns))
    colours = colours or symbol_colours(list(wide.columns))
    traces = []
    step = 1
    for name in wide.columns:
        close = wide[name].dropna()
        if close.empty:
            continue
        dd = insights.drawdown(close)
        drawn, step = thin(dd, cap)
        traces.append(
            go.Scatter(
                x=_x(drawn.index),
                y=f32(drawn),
                name=name,
                mode="lines",
                legendgroup=name,
                line=dict(width=1.4, color=colours[name]),
                fill="tozeroy" if len(wide.columns) == 1 else None,
                hovertemplate="%{y:.2f}%",
            )
        )
        worst = insights.max_drawdown(close)
        if worst is None or worst.pct == 0:
            continue
        marks = [(worst.peak_at, 0.0, "triangle-up", f"{name} peak {worst.peak:,.2f}")]
        marks.append((worst.trough_at, worst.pct, "triangle-down", f"{name} trough {worst.pct:.2f}%"))
        if worst.recovered_at is not None:
            marks.append((worst.recovered_at, 0.0, "circle", f"{name} recovered"))
        traces.append(
            go.Scatter(
                x=_x([m[0] for m in marks]),
                y=[m[1] for m in marks],
                mode="markers",
                name=f"{name} max drawdown",
                legendgroup=name,
                showlegend=False,
                marker=dict(
                    symbol=[m[2] for m in marks], size=11, color=CHART_DOWN, line=dict(width=1, color="white")
                ),
                text=[m[3] for m in marks],
                hovertemplate="%{text}<extra></extra>",
            )
        )
    fig = go.Figure(data=traces)
    fig.update_layout(
        height=height,
        hovermode="closest",
        meta={"thinned": step},
        xaxis=day_axis(wide.index),
        yaxis=dict(side="right", ticksuffix="%", title=None, rangemode="tozero"),
        **LAYOUT,
    )
    return fig


# -- distribution ------------------------------------------------------------------------------------------
def histogram(dist: insights.Distribution, symbol: str, height: int = 360, bins: int = 60) -> go.Figure:
    """Histogram of daily returns (percent, as a density) with the normal curve of the same mean and
    standard deviation. Bins are computed here, so only ``bins`` bars go to the browser."""
    r = dist.returns.to_numpy(dtype=float)
    counts, edges = np.histogram(r, bins=min(bins, max(5, len(r) // 3)), density=True)
    centres = (edges[:-1] + edges[1:]) / 2
    fig = go.Figure(
        go.Bar(
            x=f32(centres),
            y=f32(counts),
            width=float(edges[1] - edges[0]),
            name=f"{symbol} daily returns",
            marker=dict(
                color=(centres >= 0).astype("int8"),
                colorscale=[[0, CHART_DOWN], [1, CHART_UP]],
                cmin=0,
                cmax=1,
            ),
            opacity=0.8,
            hovertemplate="%{x:.2f}%: density %{y:.3f}<extra></extra>",
        )
    )
    if dist.mean is not None and dist.std:
        xs = np.linspace(edges[0], edges[-1], 200)
        fig.add_trace(
            go.Scatter(
                x=f32(xs),
                y=f32(insights.normal_pdf(xs, dist.mean, dist.std)),
                name="normal (same mean and sd)",
                mode="lines",
                line=dict(color=BENCH_COLOR, width=2),
                hoverinfo="skip",
            )
        )
    fig.update_layout(
        height=height,
        bargap=0.02,
        xaxis=dict(ticksuffix="%", title="daily return"),
        yaxis=dict(title="density", side="right"),
        **LAYOUT,
    )
    return fig
