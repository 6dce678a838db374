"""Live: the newest bars of the symbols you pick, updating in place.

Pick symbols, an interval and a window; the chart and the metrics refresh themselves at the rate you
choose (only that part of the page reruns). One symbol is drawn as candlesticks with volume and
optional indicators; several can be compared as lines, normalised to their window start. The
selection lives in the URL, so a view can be shared.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import streamlit as st

from pipeline.intervals import INTERVALS, LIVE_INTERVALS
from pipeline.markets import currency
from pipeline.markets.calendars import market_for
from pipeline.sources.registry import SIM_HOURS_HELP, outside_hours_note, symbol_status, trades_outside_hours
from ui import auth, charts, data, page, tables
from ui import format as fmt
from ui import markets as market_text
from ui.indicators import INDICATORS, warmup

WINDOWS = {
    "30m": 1800,
    "1h": 3600,
    "2h": 7200,
    "4h": 14400,
    "8h": 28800,
    "1d": 86400,
    "2d": 172800,
    "5d": 432000,
}

runtime = page.setup("Live", "📈")
settings = runtime.settings
limits = auth.limits(settings)

st.title("📈 Live")
page.halted_notice(runtime)

with page.sentences("reading the watchlist"):
    entries = data.watchlist_entries()
if not entries:
    st.info(
        "Nothing to chart yet: the watchlist is empty. Add a ticker on the Watchlist page and it "
        "appears here within seconds."
    )
    page.link(page.WATCHLIST, "Open the Watchlist", icon="📋")
    st.stop()
by_symbol = {e.symbol: e for e in entries}
symbols_all = [e.symbol for e in entries]

# -- the selection (kept in the URL) -----------------------------------------------------------------
params = st.query_params
wanted = [s for s in params.get("symbols", "").upper().split(",") if s in by_symbol]
if not wanted:
    wanted = [next((e.symbol for e in entries if e.enabled), symbols_all[0])]
if "live_symbols" not in st.session_state:
    st.session_state["live_symbols"] = wanted[: limits.chart_symbols]
else:
    st.session_state["live_symbols"] = [s for s in st.session_state["live_symbols"] if s in by_symbol]

with st.container(border=True):
    top = st.columns([3, 2, 1.2, 1.6])
    symbols = top[0].multiselect(
        "Symbols",
        symbols_all,
        key="live_symbols",
        max_selections=limits.chart_symbols,
        placeholder="Pick one or more symbols",
    )
    interval = (
        top[1].segmented_control(
            "Interval",
            list(LIVE_INTERVALS),
            key="live_interval",
            default=params.get("interval") if params.get("interval") in LIVE_INTERVALS else "1m",
        )
        or "1m"
    )
    window_name = top[2].selectbox(
        "Window",
        list(WINDOWS),
        key="live_window",
        index=list(WINDOWS).index(params.get("window", "2h")) if params.get("window") in WINDOWS else 2,
    )
    refresh = top[3].slider(
        "Refresh every (s)", limits.min_refresh_s, 60, key="live_refresh", value=max(limits.min_refresh_s, 5)
    )
    bottom = st.columns([2, 3, 4])
    # a second symbol picked while candles show one: switch to lines, or it seemed to do nothing
    # (candles chart one symbol; the walk-through added TSLA beside AAPL and saw no TSLA)
    if len(symbols) > 1 and st.session_state.get("live_charted", 1) <= 1:
        st.session_state["live_view"] = "Lines"
    st.session_state.setdefault("live_view", "Lines" if len(symbols) > 1 else "Candles")
    st.session_state["live_charted"] = len(symbols)
    # its value comes from session state only (a default= beside it made Streamlit warn)
    view = bottom[0].segmented_control("View", ["Candles", "Lines"], key="live_view") or "Candles"
    if view == "Candles":
        focus = (
            bottom[1].selectbox("Candles of", symbols, key="live_focus")
            if len(symbols) > 1
            else (symbols[0] if symbols else None)
        )
        indicators = st.pills(
            "Indicators", list(INDICATORS), selection_mode="multi", key="live_indicators", default=[]
        )
        normalise = False
    else:
        indicators, focus = [], None
        normalise = bottom[1].toggle(
            "Normalise to 1 at the window start", value=len(symbols) > 1, key="live_normalise"
        )

if not symbols:
    st.info("Pick at least one symbol above.")
    st.stop()
st.query_params.update({"symbols": ",".join(symbols), "interval": interval, "window": window_name})


def market_of(symbol: str) -> tuple[str, bool]:
    """(time zone to draw in, open 24/7?) of a symbol: a source trading outside the exchange's hours
    (the simulator by default) never closes."""
    entry = by_symbol.get(symbol)
    market = market_for(symbol)
    tz = entry.timezone if entry and entry.timezone else market.timezone
    outside = entry is not None and trades_outside_hours(entry.source, runtime.settings.sim_hours)
    return tz, outside or market.always_open


def market_badges(shown: list[str]) -> None:
    """One badge per shown symbol: its market's state now and the next open or close."""
    now, viewer = datetime.now(UTC), page.viewer_timezone()
    badges = []
    for symbol in shown:
        entry = by_symbol.get(symbol)
        market = tables.entry_market(entry) if entry is not None else market_for(symbol)
        source = entry.source if entry is not None else ""
        st_ = symbol_status(symbol, now, source, market)
        badges.append(f"**{symbol}** {market_text.badge(st_, viewer)}")
    st.caption(" · ".join(badges))
    pairs = [(s, by_symbol[s].source if s in by_symbol else "") for s in shown]
    note = outside_hours_note(pairs, now, runtime.settings.sim_hours)
    if note:  # the badges tell the exchanges' real state; say once why prices still move
        st.caption(note, help=SIM_HOURS_HELP)


def metrics_row(quotes, shown: list[str]) -> None:
    """Last price, change and day range per shown symbol, in major units of its quote currency."""
    rows = {r["symbol"]: r for r in quotes.to_dict("records")}

    def money(symbol: str, value) -> str:
        entry = by_symbol.get(symbol)
        code = entry.currency if entry is not None else market_for(symbol).currency
        return currency.money(value, code, fmt.DASH, 4 if symbol.endswith("=X") else None)

    ages = [
        f"{s} {a:.1f} s" if a < 10 else f"{s} {fmt.age(a)}"
        for s in shown[:8]
        if s in rows and not fmt.missing(a := rows[s].get("age_s"))
    ]
    if ages:  # how fresh "live" is: now minus the newest price's trade time
        st.caption("Age of the newest price: " + " · ".join(ages))
    if len(shown) == 1:
        symbol = shown[0]
        q = rows.get(symbol, {})
        cols = st.columns(6)
        cols[0].metric(
            f"{symbol} last",
            money(symbol, q.get("last")),
            delta=fmt.pct(q.get("change_pct")) if not fmt.missing(q.get("change_pct")) else None,
        )
        change = q.get("change")
        cols[1].metric(
            "Change",
            fmt.DASH if fmt.missing(change) else ("+" if change > 0 else "") + money(symbol, change),
            help=f"Since the {q.get('reference') or 'previous close'}",
        )
        cols[2].metric("% change", fmt.pct(q.get("change_pct")))
        cols[3].metric("Day high", money(symbol, q.get("day_high")))
        cols[4].metric("Day low", money(symbol, q.get("day_low")))
        cols[5].metric("Day volume", fmt.volume(q.get("volume")))
        return
    tiles = st.columns(min(len(shown), 8))
    for col, symbol in zip(tiles, shown, strict=False):
        q = rows.get(symbol, {})
        col.metric(
            symbol,
            money(symbol, q.get("last")),
            delta=fmt.pct(q.get("change_pct")) if not fmt.missing(q.get("change_pct")) else None,
        )


def live_view(
    symbols: list[str],
    focus: str | None,
    interval: str,
    window_s: int,
    indicators: list[str],
    view: str,
    normalise: bool,
) -> None:
    key = data.store_key()
    charted = [focus] if view == "Candles" and focus else symbols
    max_points = charts.live_point_cap(indicators, series=len(charted), candles=view == "Candles")
    with page.sentences("loading live prices"):
        # with any indicator chosen, bars before the window for the slowest *registered* one: the
        # recursive ones (EMA, RSI) then start from the same settled seed whichever are chosen
        before = warmup(INDICATORS) if indicators else 0
        result = data.live_bars(key, tuple(charted), interval, window_s, before, max_points)
        quotes = data.quotes(key, tuple(symbols))
    metrics_row(quotes, charted if view == "Candles" else symbols)
    market_badges(charted if view == "Candles" else symbols)
    window_start = datetime.now(UTC) - timedelta(seconds=window_s)
    visible = result.frame[result.frame["ts"] >= window_start - INTERVALS[result.interval].span]
    if visible.empty:
        names = ", ".join(charted)
        if runtime.state == "running":
            st.info(
                f"No {result.interval} bars for {names} in the last {window_name} yet. New symbols fill in "
                "within seconds; if this persists, check the Pipeline health page."
            )
        else:
            st.info(
                f"No {result.interval} bars for {names} in the last {window_name}. The pipeline is "
                f"{runtime.state}: start it on the Overview page and prices arrive within seconds."
            )
        return
    spec = INTERVALS[result.interval]
    if view == "Candles" and focus:  # as ``charted``: candles of the focus symbol
        tz, always_open = market_of(focus)
        fig = charts.candles(
            result.of(focus),
            symbol=focus,
            interval_s=spec.seconds,
            indicators=indicators,
            tz=tz,
            always_open=always_open,
            visible_from=window_start - spec.span,
            visible_to=datetime.now(UTC) + spec.span,
            market=market_for(focus),
        )
    else:
        zones = {market_of(s)[0] for s in symbols}
        tz = zones.pop() if len(zones) == 1 else "UTC"
        always_open = any(market_of(s)[1] for s in symbols)
        fig = charts.lines(
            visible, interval_s=spec.seconds, normalise=normalise, tz=tz, always_open=always_open
        )
    fig.update_layout(
        uirevision=f"{view}-{','.join(charted)}-{interval}-{window_s}"
    )  # keep zoom across refreshes
    st.plotly_chart(fig, key="live_chart", config={"displaylogo": False, "scrollZoom": False})
    parts = [
        f"{len(visible):,} {'bar' if len(visible) == 1 else 'bars'} of {spec.label}",
        f"times in {tz}" if spec.intraday else "each bar on its exchange session date",
        f"query {fmt.duration_ms(result.query_ms)}",
        *(["shaded: pre-market and after-hours"] if charts.shades_extended_hours(fig) else []),
        f"updated {datetime.now(UTC):%H:%M:%S} UTC, every {refresh} s",
    ]
    st.caption(" · ".join(parts))
    if result.note:
        st.caption(f"ℹ️ {result.note}")


st.fragment(run_every=refresh)(live_view)(
    symbols, focus, interval, WINDOWS[window_name], list(indicators or []), view, normalise
)
