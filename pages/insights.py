"""Insights: the metrics and pictures people open a market dashboard for (issue 13).

A treemap of today's change over the whole watchlist grouped by market; for the symbols you pick,
performance against a benchmark (normalised to 1 at the range start, with the outperformance),
the correlation matrix of daily log returns, drawdowns, a metrics table (52-week range, distance
from the all-time high, volatility, beta, correlation, return, maximum drawdown) downloadable as
CSV, and the distribution of daily returns. Everything reads the stored daily bars through cached
loaders (``ui.data``); formulas live in ``pipeline.insights``. The selection lives in the URL.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import numpy as np
import streamlit as st

from pipeline import insights, queries
from pipeline.markets.calendars import market_for
from pipeline.models import InvalidEvent, normalize_symbol
from pipeline.watchlist import WatchlistError
from ui import auth, data, page, tables
from ui import format as fmt
from ui import insight_charts as ich

RANGES = ("1M", "3M", "6M", "YTD", "1Y", "5Y")
#: The default benchmark of a listing's market (ISO MIC); anything else gets the S&P 500.
BENCHMARKS = {"XNYS": "^GSPC", "XLON": "^FTSE", "XTKS": "^N225", "XETR": "^GDAXI"}
DEFAULT_BENCHMARK = "^GSPC"

runtime = page.setup("Insights", "🔭")
settings = runtime.settings
limits = auth.limits(settings)

st.title("🔭 Insights")
st.caption(
    "Performance against a benchmark, correlations, drawdowns, the 52-week range, volatility and beta, "
    "computed from the stored daily bars (log returns, 252 sessions a year)."
)

with page.sentences("reading the watchlist"):
    entries = data.watchlist_entries()
if not entries:
    st.info("Nothing to analyse yet: the watchlist is empty. Add tickers on the Watchlist page.")
    page.link(page.WATCHLIST, "Open the Watchlist", icon="📋")
    st.stop()
by_symbol = {e.symbol: e for e in entries}
key = data.store_key()


def range_start(name: str, today: date) -> date:
    """First session date of a named range ending ``today`` (UTC)."""
    if name == "YTD":
        return date(today.year, 1, 1)
    days = {"1M": 30, "3M": 91, "6M": 182, "1Y": 365, "5Y": 5 * 365 + 1}[name]
    return today - timedelta(days=days)


def default_benchmark(symbols: list[str]) -> str:
    """The benchmark of the first symbol's market (``BENCHMARKS``)."""
    for s in symbols:
        mic = market_for(s).mic or ""
        if mic in BENCHMARKS:
            return BENCHMARKS[mic]
    return DEFAULT_BENCHMARK


def url_symbol(text: str) -> str | None:
    """A ticker from the URL, checked by the one rule for typed tickers; None when it is not one."""
    try:
        return normalize_symbol(text) if text else None
    except InvalidEvent:
        return None


# -- 1. the watchlist heatmap --------------------------------------------------------------------------
st.subheader("Watchlist heatmap")
size_by = (
    st.segmented_control(
        "Tile size",
        ["Equal", "Traded value"],
        key="ins_size",
        default="Traded value" if st.query_params.get("size") == "value" else "Equal",
        help="Traded value is last price × the day's volume, in each symbol's own currency",
    )
    or "Equal"
)
with page.sentences("reading today's prices"):
    symbols_all = tuple(e.symbol for e in entries)
    glance = tables.watchlist_glance(
        entries,
        data.quotes(key, symbols_all),
        {},
        settings.poll_seconds,
        now=datetime.now(UTC),
        sim_hours=settings.sim_hours,
    )
tiles = ich.tiles(glance, entries, by_value=size_by == "Traded value")
st.plotly_chart(ich.treemap(tiles), key="ins_treemap", config={"displaylogo": False})
waiting = [s for s, c in zip(glance["Symbol"], glance["Change %"], strict=True) if fmt.missing(c)]
st.caption(
    "Colour: today's change in the symbol's own currency, the same figure as the Overview's Change % "
    "(teal up, red down, grey unchanged)."
    + (f" No change yet for {', '.join(waiting)} (history loading)." if waiting else "")
)

# -- the selection (kept in the URL) -----------------------------------------------------------------
params = st.query_params
choices = [e.symbol for e in entries]
if "ins_symbols" not in st.session_state:
    wanted = [s for s in params.get("symbols", "").upper().split(",") if s in by_symbol]
    plain = [s for s in choices if not s.endswith("=X")]
    st.session_state["ins_symbols"] = (wanted or plain[:6] or choices[:1])[: limits.chart_symbols]
    st.session_state["ins_range"] = params.get("range") if params.get("range") in RANGES else "1Y"
    st.session_state["ins_bench"] = url_symbol(params.get("benchmark", ""))
st.session_state["ins_symbols"] = [s for s in st.session_state["ins_symbols"] if s in by_symbol]

st.subheader("Against a benchmark")
with st.container(border=True):
    cols = st.columns([3.6, 1.4, 3])
    symbols = cols[0].multiselect(
        "Symbols",
        choices,
        key="ins_symbols",
        max_selections=limits.chart_symbols,
        placeholder="Pick one or more symbols",
    )
    if not st.session_state.get("ins_bench"):
        st.session_state["ins_bench"] = default_benchmark(symbols)
    bench_options = list(dict.fromkeys([*BENCHMARKS.values(), st.session_state["ins_bench"], *choices]))
    benchmark = cols[1].selectbox("Benchmark", bench_options, key="ins_bench")
    range_name = cols[2].segmented_control("Range", list(RANGES), key="ins_range") or "1Y"
st.query_params.update(
    {"symbols": ",".join(symbols), "benchmark": benchmark, "range": range_name}
    | ({"size": "value"} if size_by == "Traded value" else {})
)
if not symbols:
    st.info("Pick at least one symbol above.")
    st.stop()

if benchmark not in by_symbol:
    st.info(
        f"The benchmark {fmt.literal(benchmark)} is not on the watchlist yet: it is fetched like any symbol."
    )
    if auth.can_change(settings):
        if st.button(f"Add {fmt.literal(benchmark)} to the watchlist", key="ins_add_bench", type="primary"):
            try:
                runtime.add_symbol(benchmark, by_symbol[symbols[0]].source)
                st.rerun()
            except WatchlistError as exc:
                st.error(f"Could not add {fmt.literal(benchmark)}: {fmt.literal(str(exc))}")
    else:
        st.caption("🔒 Adding it needs the admin password (sidebar).")

today = datetime.now(UTC).date()
start_day = range_start(range_name, today)
load_from = min(start_day, today - timedelta(days=365 + insights.YEAR_SLACK_DAYS + 7))
start = datetime.combine(load_from, time(0), UTC)
end = datetime.combine(today + timedelta(days=1), time(0), UTC)
loaded = tuple(dict.fromkeys([*symbols, *([benchmark] if benchmark in by_symbol else [])]))
with st.spinner("Reading daily bars…"), page.sentences("loading daily bars"):
    result = data.history_bars(key, loaded, "1d", start, end, queries.MAX_POINTS)
    summary = data.daily_summary(key, loaded)
wide = insights.closes_wide(result.frame)
have = [s for s in loaded if s in wide.columns and wide[s].notna().sum() >= 2]
short_of = [s for s in symbols if s not in have]
if short_of:  # one sentence for all of them (a first start showed six warnings, one per symbol)
    stored = ", ".join(f"{s} {fmt.count(summary.get(s, {}).get('sessions', 0), 'session')}" for s in short_of)
    st.warning(
        f"Too little daily history stored for these figures, which need at least two sessions: {stored}. "
        "History may still be loading (this page redraws when it arrives); otherwise add history on "
        "the Watchlist page."
    )
for s in symbols:
    n = summary.get(s, {}).get("sessions", 0)
    if s in have and not insights.covers_year(wide[s]):
        st.caption(
            f"{s} has {n} sessions stored; the 52-week range, beta and correlation need one year: "
            "add history on the Watchlist page."
        )

LOADING = ("queued", "running", "done")  # a backfill record that has bars on their way (or just stored)


def arrived(waiting: tuple[str, ...]) -> list[str]:
    """Those of ``waiting`` whose history is now in: the backfill finished ("done": whatever it stored
    is all that comes, even too little for these figures, and the page then says so; or "failed") or
    is no longer queued or running and at least two daily bars are stored. Uncached reads: one
    backfill query and one indexed aggregate per symbol."""
    status = {b.get("symbol"): b.get("status") for b in data.backfills()}
    summary = queries.daily_summary(data.store(), waiting)
    return [
        s
        for s in waiting
        if status.get(s) in ("done", "failed")
        or (status.get(s) not in ("queued", "running") and summary.get(s, {}).get("sessions", 0) >= 2)
    ]


def redraw(done: list[str]) -> None:
    """Redraw the page with ``done``'s history read afresh: the two cached answers this page read are
    cleared first (only those: other pages and sessions keep theirs), or the redraw would read the
    answer cached while it was loading. Once per set of symbols in a session, so bars stored outside
    the range can never make the page redraw in a loop."""
    if st.session_state.get("ins_redrawn") == done:
        return
    st.session_state["ins_redrawn"] = done
    data.history_bars.clear(key, loaded, "1d", start, end, queries.MAX_POINTS)
    data.daily_summary.clear(key, loaded)
    st.rerun()


def until_loaded(waiting: tuple[str, ...]) -> None:
    """While a shown symbol's history is loading: look every 2 s and redraw the page once it is in."""
    with page.sentences("reading the daily bars"):
        done = arrived(waiting)
    if done:
        redraw(done)
    st.caption(
        f"⏳ Waiting for the history of {', '.join(waiting)}: the charts redraw by themselves when it is stored."
    )


with page.sentences("reading the backfills"):
    filling = {b.get("symbol") for b in data.backfills() if b.get("status") in LOADING}
    candidates = tuple(s for s in loaded if s not in have and s in filling)
    done = arrived(candidates) if candidates else []
if done:  # stored since the cached read above
    redraw(done)
loading = tuple(s for s in candidates if s not in done)
if loading:
    st.fragment(run_every=2)(until_loaded)(loading)
shown = [s for s in symbols if s in have]
if not shown:
    st.stop()
bench_close = wide[benchmark] if benchmark in have else None
colours = ich.symbol_colours(choices, benchmark)  # by watchlist place: the same whatever is picked
in_range = wide[[d >= start_day for d in wide.index]]

# -- 2. relative performance ------------------------------------------------------------------------
if bench_close is not None:
    frame = in_range[list(dict.fromkeys([*shown, benchmark]))].ffill(limit=5)  # the benchmark once
    fig = ich.relative(frame, benchmark, colours=colours)
    st.plotly_chart(fig, key="ins_relative", config={"displaylogo": False})
    thinned = fig.layout.meta.get("thinned", 1) if fig.layout.meta else 1
    st.caption(
        f"Each symbol normalised to 1 at its first session since {start_day}; below, its out- or "
        f"underperformance of {benchmark} in percent. A market holiday carries the last close."
        + (f" Drawn at one session in {thinned} to stay under 150 KB." if thinned > 1 else "")
    )
elif benchmark in by_symbol:
    st.info(f"{benchmark} has no daily bars stored yet: its history is still loading.")

# -- 3. correlation ----------------------------------------------------------------------------------
st.subheader("Correlation of daily returns")
corr_symbols = [*shown, *([benchmark] if bench_close is not None and benchmark not in shown else [])]
if len(corr_symbols) < 2:
    st.caption("Pick two or more symbols (or a stored benchmark) to see their correlation.")
else:
    matrix = insights.correlation_matrix(in_range[corr_symbols])
    off_diagonal = matrix.r.to_numpy()[~np.eye(len(corr_symbols), dtype=bool)]
    if np.isnan(off_diagonal).all():
        st.info(
            f"No pair has {insights.MIN_COMMON} common sessions of returns since {start_day} yet "
            f"(the most is {int(matrix.n.to_numpy()[~np.eye(len(corr_symbols), dtype=bool)].max())}): "
            "the correlation matrix fills in as history is stored.",
            icon="ℹ️",
        )
    else:
        st.plotly_chart(ich.correlation(matrix), key="ins_corr", config={"displaylogo": False})
    st.caption(
        f"Pearson r of daily log returns since {start_day}, each pair on the sessions both traded; "
        f"a pair with fewer than {insights.MIN_COMMON} common sessions is left blank (hover says why)."
    )

# -- 4. drawdown ---------------------------------------------------------------------------------------
st.subheader("Drawdown")
dd_fig = ich.drawdowns(in_range[shown], colours=colours)
st.plotly_chart(dd_fig, key="ins_drawdown", config={"displaylogo": False})
dd_step = dd_fig.layout.meta.get("thinned", 1) if dd_fig.layout.meta else 1
worst_lines = []
for s in shown:
    dd = insights.max_drawdown(in_range[s])
    if dd is None or dd.pct == 0:
        continue
    recovered = f"recovered {dd.recovered_at}" if dd.recovered else "not recovered"
    worst_lines.append(f"**{s}** {dd.pct:.2f}% (peak {dd.peak_at}, trough {dd.trough_at}, {recovered})")
st.caption(
    "Percent below the running maximum since the range start; ▲ peak, ▼ trough, ● recovery of the "
    "maximum drawdown"
    + (
        f" (drawn at one session in {dd_step} to stay under 150 KB; the marks are exact)"
        if dd_step > 1
        else ""
    )
    + ".  \n"
    + "  \n".join(worst_lines)
)

# -- 5. metrics table ------------------------------------------------------------------------------
st.subheader("Metrics")
table = insights.metrics(
    wide[shown],
    bench_close,
    start_day,
    {s: summary[s]["high"] for s in shown if s in summary},
)
st.dataframe(
    table,
    hide_index=True,
    placeholder=fmt.DASH,  # a missing figure reads "–", not the grid's "None"
    width="stretch",
    column_config={
        "symbol": st.column_config.TextColumn("Symbol", pinned=True),
        "last": st.column_config.NumberColumn("Last close", format="%.2f"),
        "high_52w": st.column_config.NumberColumn("52w high", format="%.2f"),
        "low_52w": st.column_config.NumberColumn("52w low", format="%.2f"),
        "position_52w": st.column_config.ProgressColumn(
            "52w position",
            min_value=0.0,
            max_value=1.0,
            format="percent",
            help="Where the last close sits between the 52-week low (0 %) and high (100 %)",
        ),
        "from_ath_pct": st.column_config.NumberColumn(
            "From high", format="%.2f%%", help="Below the highest stored daily close"
        ),
        "vol_21d_pct": st.column_config.NumberColumn(
            "Vol 21d", format="%.1f%%", help="Annualised (√252) over the last 21 sessions"
        ),
        "vol_range_pct": st.column_config.NumberColumn(
            "Vol range", format="%.1f%%", help="Annualised over the range"
        ),
        "beta": st.column_config.NumberColumn(
            "Beta", format="%.2f", help=f"To {benchmark}, one year of daily log returns on common sessions"
        ),
        "corr": st.column_config.NumberColumn("Corr", format="%.2f", help=f"To {benchmark}, one year"),
        "return_pct": st.column_config.NumberColumn("Return", format="%+.2f%%", help="Over the range"),
        "max_drawdown_pct": st.column_config.NumberColumn("Max drawdown", format="%.2f%%"),
        "sessions": st.column_config.NumberColumn(
            "Sessions", help="Daily bars read (range and the year before)"
        ),
        "note": st.column_config.TextColumn("Missing because", width="large"),
    },
)
st.download_button(
    "⬇️ Download the metrics as CSV",
    data=table.to_csv(index=False),
    file_name=f"stockmon_insights_{'-'.join(shown)}_{range_name}_{today}.csv".replace("^", ""),
    mime="text/csv",
    on_click="ignore",
)

# -- 6. returns distribution --------------------------------------------------------------------------
st.subheader("Distribution of daily returns")
focus = st.selectbox("Symbol", shown, key="ins_dist") if len(shown) > 1 else shown[0]
dist = insights.distribution(in_range[focus])
if dist.n < 20:
    st.caption(f"{focus} has {dist.n} daily returns in this range; a histogram needs at least 20.")
else:
    st.plotly_chart(ich.histogram(dist, focus), key="ins_hist", config={"displaylogo": False})
    m = st.columns(4)
    m[0].metric("Mean", fmt.pct(dist.mean, 3))
    m[1].metric("Std dev", f"{dist.std:.3f}%" if dist.std is not None else fmt.DASH)
    m[2].metric("Skew", f"{dist.skew:+.2f}" if dist.skew is not None else fmt.DASH)
    m[3].metric(
        "Excess kurtosis", f"{dist.excess_kurtosis:+.2f}" if dist.excess_kurtosis is not None else fmt.DASH
    )
    st.caption(
        f"{dist.n} daily returns of {focus} since {start_day}; the curve is the normal distribution with "
        "the same mean and standard deviation (excess kurtosis 0 and skew 0 for a normal distribution)."
    )
