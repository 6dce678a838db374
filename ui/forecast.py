"""The Forecast page's pieces: the fan chart, the coverage chart, the backtest table, staleness.

Guarantees:
- ``fan`` draws the history of daily closes, a dotted marker at the as-of session labelled "last
  close" (left of the marker, so the line never strikes it through), and from the last close the 95%,
  80% and 50% bands (widest first) around the *shown* model's path, plus that path, all cut to the
  chosen horizon (``horizon`` sessions after the last close).
  Trace names are stable ("95% band", "80% band", "50% band", "<Model> forecast", "Daily close"):
  the tests read them. Bands are ``path * exp(+-half)``, as stored by ``pipeline.forecast.job``.
- ``table`` turns stored backtest rows of one horizon into the page's table, sorted by MASE, with
  the naive row always present (it is never filtered out), percentages in %.
- Nothing here reads MongoDB or Kafka.
"""

from __future__ import annotations

import math
from datetime import date

import pandas as pd
import plotly.graph_objects as go

from pipeline.forecast.models import LABELS

BAND_COLOURS = {95: "rgba(99,110,250,0.15)", 80: "rgba(99,110,250,0.25)", 50: "rgba(99,110,250,0.40)"}


def fan(
    history: pd.DataFrame, doc: dict, model: str, horizon: int | None = None, height: int = 420
) -> go.Figure:
    """Fan chart: ``history`` has ``ts`` (session dates) and ``close``; ``doc`` is a stored forecast;
    ``horizon`` (sessions, default every stored one) is where the path and the bands end, so the
    forecast traces have ``horizon + 1`` points (the last close first) and each band ``2 * (horizon + 1)``."""
    fig = go.Figure()
    n = len(doc["dates"]) if horizon is None else max(1, min(horizon, len(doc["dates"])))
    as_of = date.fromisoformat(doc["as_of"])
    dates = [as_of, *(date.fromisoformat(d) for d in doc["dates"][:n])]
    path = [doc["last_close"], *doc["paths"][model][:n]]
    for level in (95, 80, 50):
        half = [0.0, *doc["half"][str(level)][:n]]
        hi = [p * math.exp(h) for p, h in zip(path, half, strict=True)]
        lo = [p * math.exp(-h) for p, h in zip(path, half, strict=True)]
        fig.add_trace(
            go.Scatter(
                x=dates + dates[::-1],
                y=hi + lo[::-1],
                fill="toself",
                fillcolor=BAND_COLOURS[level],
                line={"width": 0},
                name=f"{level}% band",
                hoverinfo="skip",
            )
        )
    if not history.empty:
        fig.add_trace(
            go.Scatter(x=history["ts"], y=history["close"], name="Daily close", line={"color": "#444"})
        )
    fig.add_trace(
        go.Scatter(
            x=dates, y=path, name=f"{LABELS[model]} forecast", line={"dash": "dash", "color": "#636efa"}
        )
    )
    fig.add_vline(x=pd.Timestamp(as_of).timestamp() * 1000, line_dash="dot", line_color="#888")
    fig.add_annotation(
        x=pd.Timestamp(as_of),
        y=1.0,
        yref="paper",
        text="last close",
        showarrow=False,
        xanchor="right",  # ends just left of the marker: the dotted line never runs through the words
        yanchor="bottom",
        xshift=-4,
        font={"size": 11, "color": "#888"},
    )
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 30, "b": 10}, legend={"orientation": "h"})
    return fig


#: One look per model line of the coverage chart (symbol, dash): models often measure the same coverage,
#: so their lines coincide; distinct marker shapes, shrinking sizes (the first drawn is the largest,
#: so later ones stay visible inside it) and dashes keep every one readable.
COVER_SYMBOLS = ("circle-open", "square-open", "diamond-open", "triangle-up-open", "x-thin-open", "star-open")
COVER_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")


def coverage(rows: pd.DataFrame, height: int = 260) -> go.Figure:
    """Nominal (80%, 95%) against empirical coverage per model, with the diagonal of honesty.

    ``rows``: one backtest row per model (``label``, ``cover80``, ``cover95`` as fractions). Each
    model's line has its own marker shape, size and dash (``COVER_SYMBOLS``, ``COVER_DASHES``); the
    y-axis spans the measured coverages and the diagonal at 80 and 95, with a margin of 5% of that
    span (at least 2 points), never beyond 0..100 plus the margin."""
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(x=[50, 100], y=[50, 100], mode="lines", name="nominal = empirical", line={"dash": "dot"})
    )
    measured: list[float] = []
    for i, (_, r) in enumerate(rows.iterrows()):
        y = [r["cover80"] * 100, r["cover95"] * 100]
        measured += [v for v in y if not pd.isna(v)]
        fig.add_trace(
            go.Scatter(
                x=[80, 95],
                y=y,
                mode="markers+lines",
                name=r["label"],
                marker={
                    "symbol": COVER_SYMBOLS[i % len(COVER_SYMBOLS)],
                    "size": max(6, 16 - 2 * i),
                    "line": {"width": 2},
                },
                line={"dash": COVER_DASHES[i % len(COVER_DASHES)], "width": 1.5},
            )
        )
    lo, hi = min([80.0, *measured]), max([95.0, *measured])
    margin = max(2.0, 0.05 * (hi - lo))
    fig.update_layout(
        height=height,
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        xaxis_title="nominal %",
        yaxis_title="empirical %",
        xaxis_range=[70, 100],
        yaxis_range=[max(0.0, lo) - margin, min(100.0, hi) + margin],
    )
    return fig


def table(rows: pd.DataFrame) -> pd.DataFrame:
    """The backtest table of one horizon (see the module)."""
    out = pd.DataFrame(
        {
            "Model": rows["label"],
            "MASE": rows["mase"].round(3),
            "Skill vs naive %": (rows["skill"] * 100).round(1),
            "sMAPE %": rows["smape"].round(2),
            "Direction hit %": [
                "n/a (never moves)"
                if pd.isna(r["hit_rate"])
                else f"{r['hit_rate'] * 100:.0f} ({r['hit_lo'] * 100:.0f}-{r['hit_hi'] * 100:.0f})"
                for _, r in rows.iterrows()
            ],
            "80% covered %": (rows["cover80"] * 100).round(0),
            "95% covered %": (rows["cover95"] * 100).round(0),
            "95% width %": rows["width95"].round(1),
            "Origins": rows["origins"],
            "From": rows["first_origin"],
            "To": rows["last_origin"],
        }
    )
    return out.iloc[rows["mase"].argsort(kind="stable").to_numpy()].reset_index(drop=True)


def staleness(sessions: int) -> str:
    """ "as of the latest session" / "as of 1 session ago" / "as of 3 sessions ago"."""
    if sessions <= 0:
        return "as of the latest completed session"
    return f"as of {sessions} session{'s' if sessions != 1 else ''} ago"
