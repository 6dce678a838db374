"""History: stored prices over any range, compared, summarised and downloadable.

Pick symbols, a date range and an interval. Bars are aggregated in MongoDB from the stored rollups
(never by pulling raw points into the page), each series stays under about 5,000 points (a wider
interval is used and said so), several symbols are compared normalised to 1 at the range start, a
stats table sums each one up, and the CSV holds exactly the bars shown. The view lives in the URL.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta

import streamlit as st

from pipeline import analytics, corporate_actions, insights, queries
from pipeline.intervals import HISTORY_INTERVALS, INTERVALS
from pipeline.markets import fx
from pipeline.markets.calendars import market_for
from pipeline.sources.registry import trades_outside_hours
from ui import auth, charts, data, page
from ui import format as fmt
from ui.indicators import INDICATORS

AUTO = "auto"

runtime = page.setup("History", "🗂️")
settings = runtime.settings
limits = auth.limits(settings)

st.title("🗂️ History")
st.caption(
    "Stored prices over any range, aggregated in MongoDB. A daily bar is dated by its exchange session."
)

with page.sentences("reading the watchlist"):
    entries = data.watchlist_entries()
if not entries:
    st.info(
        "No history to explore yet: the watchlist is empty. Add tickers on the Watchlist page; each new "
        "symbol is backfilled with its recent history."
    )
    page.link(page.WATCHLIST, "Open the Watchlist", icon="📋")
    st.stop()
by_symbol = {e.symbol: e for e in entries}

# -- the view (kept in the URL) -----------------------------------------------------------------------
today = datetime.now(UTC).date()
earliest = today - timedelta(days=limits.history_days)
params = st.query_params


def parse_day(text: str | None, fallback: date) -> date:
    try:
        return min(max(date.fromisoformat(text or ""), earliest), today)
    except ValueError:
        return fallback


if "hist_symbols" not in st.session_state:
    wanted = [s for s in params.get("symbols", "").upper().split(",") if s in by_symbol]
    st.session_state["hist_symbols"] = (wanted or [entries[0].symbol])[: limits.chart_symbols]
    first = parse_day(params.get("start"), max(earliest, today - timedelta(days=30)))
    last = parse_day(params.get("end"), today)
    st.session_state["hist_range"] = (min(first, last), max(first, last))
    st.session_state["hist_interval"] = (
        params.get("interval") if params.get("interval") in (AUTO, *HISTORY_INTERVALS) else AUTO
    )
st.session_state["hist_symbols"] = [s for s in st.session_state["hist_symbols"] if s in by_symbol]

with st.container(border=True):
    cols = st.columns([3, 2, 1.3])
    symbols = cols[0].multiselect(
        "Symbols",
        list(by_symbol),
        key="hist_symbols",
        max_selections=limits.chart_symbols,
        placeholder="Pick one or more symbols",
    )
    picked = cols[1].date_input(
        "Date range (UTC)", key="hist_range", min_value=earliest, max_value=today, format="YYYY-MM-DD"
    )
    interval_choice = cols[2].selectbox(
        "Interval",
        [AUTO, *HISTORY_INTERVALS],
        key="hist_interval",
        format_func=lambda n: "auto" if n == AUTO else INTERVALS[n].label,
        help="auto: the finest stored interval with at most ~1,500 bars per symbol whose bars cover the "
        "whole range (a note says when finer bars cover only part of it)",
    )

if not symbols:
    st.info("Pick at least one symbol above.")
    st.stop()
if not isinstance(picked, (tuple, list)) or len(picked) != 2:
    st.info("Pick the end date of the range too.")
    st.stop()
first_day, last_day = picked
start = datetime.combine(first_day, time(0), UTC)
next_minute = (datetime.now(UTC) + timedelta(minutes=1)).replace(second=0, microsecond=0)
end = min(datetime.combine(last_day, time(0), UTC) + timedelta(days=1), next_minute)  # cacheable for a minute
auto_note = None
if interval_choice == AUTO:
    with page.sentences("choosing the interval"):
        interval, auto_note = data.auto_interval(data.store_key(), tuple(symbols), start, end)
else:
    interval = interval_choice
st.query_params.update(
    {
        "symbols": ",".join(symbols),
        "start": first_day.isoformat(),
        "end": last_day.isoformat(),
        "interval": interval_choice,
    }
)
if settings.demo_mode and (today - earliest).days <= (last_day - first_day).days + 1:
    st.caption(f"🔒 This demo shows at most {limits.history_days} days of history.")

SPLIT_ADJUSTED = "Split-adjusted"
ADJUSTMENTS = {
    SPLIT_ADJUSTED: lambda frame, actions: frame,
    "As traded": corporate_actions.as_traded,
    "Adjusted for dividends": corporate_actions.dividend_adjusted,
}

# -- the data -----------------------------------------------------------------------------------
with st.spinner("Aggregating in MongoDB…"), page.sentences("loading history"):
    result = data.history_bars(data.store_key(), tuple(symbols), interval, start, end, queries.MAX_POINTS)
if result.empty:
    st.info(
        f"No stored bars for {', '.join(symbols)} between {first_day} and {last_day}. Widen the range, or "
        "add the symbols to the watchlist a while before: each new symbol is backfilled with "
        f"{settings.backfill_days_1m} days of minutes and {settings.backfill_days_daily} days of daily bars."
    )
    st.stop()
if result.note:
    st.info(result.note, icon="ℹ️")
if auto_note:
    st.info(auto_note, icon="ℹ️")
missing = [s for s, n in result.counts.items() if n == 0]
if missing:
    st.warning(f"No stored bars for {', '.join(missing)} in this range.")
spec = INTERVALS[result.interval]
daily = spec.span >= timedelta(days=1)
bar_time_format = "YYYY-MM-DD" if daily else "YYYY-MM-DD HH:mm"


def bar_time(label: str) -> str:
    """A bar-time column's title: the session date for daily bars, the UTC time for intraday ones."""
    return f"{label} (session)" if daily else f"{label} (UTC)"


shown = [s for s in symbols if result.counts.get(s)]
actions = data.corporate_actions(data.store_key(), tuple(shown))
adjustment = st.segmented_control(
    "Prices",
    list(ADJUSTMENTS),
    default=SPLIT_ADJUSTED,
    key="hist_adjustment",
    help="Split-adjusted (stored): every price on today's share count, as Yahoo serves history. As "
    "traded: what each bar traded at before later splits. Adjusted for dividends: split-adjusted and "
    "each dividend taken out of the prices before its ex-date (CRSP's method, Yahoo's 'Adj Close')",
)
if adjustment in ADJUSTMENTS and adjustment != SPLIT_ADJUSTED:
    result = replace(result, frame=ADJUSTMENTS[adjustment](result.frame, actions))
if actions:
    st.caption(
        "Corporate actions: "
        + "; ".join(
            f"{a['symbol']} {a['ex_date']} "
            + (f"split {a['ratio']:g}:1" if a["kind"] == "split" else f"dividend {a['amount']:g}")
            for a in actions[-6:]
        )
    )

# -- one currency ------------------------------------------------------------------------------------
base = settings.base_currency
in_base = st.toggle(
    f"Prices in {base}",
    key="hist_base",
    help=f"Each bar converted at the {base} rate of its own session date (stored FX symbols such as "
    "GBPUSD=X, carried over at most 5 days, never a later date's); the chart, statistics and CSV follow",
)
if in_base:
    pairs = tuple(fx.needed_pairs([by_symbol[s].currency for s in shown], base))
    with page.sentences("reading FX rates"):
        rates = data.fx_rates(data.store_key(), pairs, (today - first_day).days + fx.MAX_CARRY_DAYS + 2)
    converted, notes = fx.convert_bars(
        result.frame,
        {s: by_symbol[s].currency for s in shown},
        {s: by_symbol[s].timezone for s in shown},
        base,
        rates,
    )
    result = replace(result, frame=converted.drop(columns=["fx_date"]))
    missing_pairs = [p for p in pairs if not rates.get(p)]
    if missing_pairs:
        st.caption(
            f"No stored rates for {', '.join(missing_pairs)}: add them to the watchlist to convert those symbols."
        )
    for note in notes.values():
        st.caption(f"≈ {note}")
    shown = [s for s in shown if (result.frame["symbol"] == s).any()]
    if not shown:
        st.info(f"Nothing in this range can be shown in {base} yet.")
        st.stop()

# -- the chart ---------------------------------------------------------------------------------------
sim_hours = runtime.settings.sim_hours  # the simulator trades around the clock unless "calendar"
if len(shown) == 1:
    symbol = shown[0]
    entry = by_symbol[symbol]
    indicators = st.pills(
        "Indicators", list(INDICATORS), selection_mode="multi", key="hist_indicators", default=[]
    )
    always_open = trades_outside_hours(entry.source, sim_hours) or market_for(symbol).always_open
    fig = charts.candles(
        result.of(symbol),
        symbol=symbol,
        interval_s=spec.seconds,
        indicators=indicators or [],
        tz=entry.timezone or "UTC",
        always_open=always_open,
        market=market_for(symbol),
    )
    tz_note = (
        f"times in {entry.timezone or 'UTC'}" if spec.intraday else "each bar on its exchange session date"
    ) + (" · shaded: pre-market and after-hours" if charts.shades_extended_hours(fig) else "")
else:
    as_prices = st.toggle("Show prices instead of the comparison", key="hist_prices")
    st.markdown(
        "**Comparison**" + ("" if as_prices else ": each symbol normalised to 1 at the start of the range")
    )
    always_open = any(
        trades_outside_hours(by_symbol[s].source, sim_hours) or market_for(s).always_open for s in shown
    )
    fig = charts.lines(
        result.frame,
        interval_s=spec.seconds,
        normalise=not as_prices,
        tz="UTC",
        always_open=always_open,
        height=460,
    )
    tz_note = "times in UTC"
st.plotly_chart(fig, key="hist_chart", config={"displaylogo": False})
st.caption(
    f"{len(result.frame):,} bars of {spec.label} ({max(result.counts.values()):,} per symbol at most) · "
    f"read from the stored {result.level} bars and aggregated in MongoDB in "
    f"{fmt.duration_ms(result.query_ms)} · {tz_note}"
)

fixed = data.repairs(data.store_key(), tuple(shown), start, end)
if fixed:
    with st.expander(
        f"🩹 {len(fixed)} bar{'s' if len(fixed) != 1 else ''} in this range repaired from the provider's data"
    ):
        st.caption(
            "The provider served these bars in the wrong unit (a 100x mix-up of pence and pounds, or "
            "cents and rand); they are stored and shown repaired. The rule is in pipeline/repairs.py."
        )
        st.dataframe(
            [
                {
                    "Symbol": r["symbol"],
                    "Interval": r["interval"],
                    "Bar (UTC)": r["ts"],
                    "Served close": r["before"]["close"],
                    "Stored close": r["after"]["close"],
                    "Why": r["reason"],
                }
                for r in fixed
            ],
            hide_index=True,
            width="stretch",
        )

# -- stats ---------------------------------------------------------------------------------------------
st.subheader("Statistics")
per_year = insights.OBSERVED  # bars of any interval, on any market (Insights: daily, 252 sessions)
table = analytics.stats_table(result.frame[result.frame["symbol"].isin(shown)], per_year)
st.dataframe(
    table,
    hide_index=True,
    placeholder=fmt.DASH,  # a figure that needs more bars reads "–", not "None"
    width="stretch",
    column_order=[
        "symbol",
        "return_pct",
        "volatility_pct",
        "max_drawdown_pct",
        "avg_volume",
        "best_pct",
        "best_at",
        "worst_pct",
        "worst_at",
        "bars",
    ],
    column_config={
        "symbol": st.column_config.TextColumn("Symbol", pinned=True),
        "return_pct": st.column_config.NumberColumn("Return", format="%+.2f%%"),
        "volatility_pct": st.column_config.NumberColumn(
            "Volatility (ann.)",
            format="%.1f%%",
            help=f"Standard deviation of log returns, {per_year.text}; the Insights page's daily "
            f"figure is {insights.SESSIONS_252.text}",
        ),
        "max_drawdown_pct": st.column_config.NumberColumn("Max drawdown", format="%.2f%%"),
        "avg_volume": st.column_config.NumberColumn(
            "Avg volume", format="compact", help=f"Per {spec.label} bar"
        ),
        "best_pct": st.column_config.NumberColumn("Best bar", format="%+.2f%%"),
        # a daily bar is dated by its session (stored at UTC midnight): a date, not "00:00 UTC"
        "best_at": st.column_config.DatetimeColumn(bar_time("Best at"), format=bar_time_format),
        "worst_pct": st.column_config.NumberColumn("Worst bar", format="%+.2f%%"),
        "worst_at": st.column_config.DatetimeColumn(bar_time("Worst at"), format=bar_time_format),
        "first": st.column_config.NumberColumn("First close", format="%.2f"),
        "last": st.column_config.NumberColumn("Last close", format="%.2f"),
        "bars": st.column_config.NumberColumn("Bars"),
    },
)

# -- download ----------------------------------------------------------------------------------------
name = f"stockmon_{'-'.join(symbols)}_{result.interval}_{first_day}_{last_day}.csv".replace("^", "")
st.download_button(
    "⬇️ Download these bars as CSV",
    data=queries.to_csv(result.frame),
    file_name=name,
    mime="text/csv",
    on_click="ignore",
    help="Columns symbol,interval,ts,open,high,low,close,volume (UTC; a daily bar's ts is its session "
    "date), plus session (the exchange session date, YYYY-MM-DD; a week's first) for daily and weekly "
    "bars; prices as shown (in the base currency when that is on); the csv source can replay it",
)
