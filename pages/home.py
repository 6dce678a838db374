"""Stock Monitor: overview. The watchlist at a glance comes first (last price, change since the
previous close, trend, day range, volume, age, market state); above it, one compact line says whether
the servers and the pipeline are well, expands to the details (addresses, counters; the rest is on
Pipeline health) and has Pause/Resume beside it. Both are redrawn every 5 s: the line from in-memory
state (the background health check's snapshot), so a frozen server cannot hang it; the glance from
MongoDB through the cached loaders, which end within STOCKMON_MONGO_TIMEOUT."""

from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st

from pipeline.health import rules as status
from pipeline.health.snapshot import Health
from pipeline.markets import fx
from pipeline.sources.registry import SIM_HOURS_HELP, outside_hours_note
from pipeline.watchlist import WatchlistError
from ui import auth, data, page, tables
from ui import format as fmt

runtime = page.setup(page.APP_NAME, "📈")

st.title(f"📈 {page.APP_NAME}")


# -- servers and pipeline: one line ---------------------------------------------------------------
def server_details(health: Health) -> None:
    """Kafka and MongoDB as the background health check last found them, with what to do when down."""
    mode = health["mode"]
    st.markdown(
        f"**Mode:** {'embedded local stack' if mode == 'embedded' else 'external servers'} · "
        f"**Pipeline:** {health['state']}"
    )
    kafka, mongo = health["kafka"], health["mongo"]
    if kafka["ok"]:
        st.markdown(f"✅ Kafka is healthy at `{kafka['bootstrap']}` (protocol {kafka['version']}).")
    else:
        st.error(f"Kafka is not reachable at `{kafka['bootstrap'] or 'unknown address'}`.")
    if mongo["ok"]:
        st.markdown(f"✅ MongoDB is healthy at `{mongo['uri']}` (version {mongo['version']}).")
    elif status.mongo_down(health):  # the background check's finding, with since when
        st.error(f"{status.mongo_down(health)} (`{mongo['uri']}`)")
    else:
        st.error(
            f"MongoDB is not reachable at `{mongo['uri'] or 'unknown address'}`. {mongo.get('error') or ''}"
        )
    if not (kafka["ok"] and mongo["ok"]):
        if mode == "embedded":
            st.info(
                "This app restarts an embedded server that stopped, on the same port, within seconds; "
                f"the pipeline then reconnects by itself. Their logs are in `{health['data_dir']}`."
            )
        else:
            st.info(
                "Start the server that is down, or correct KAFKA_BOOTSTRAP_SERVERS / MONGODB_URI; "
                "the pipeline reconnects by itself and loses nothing meanwhile."
            )
    counts = runtime.counters()  # in-process counters: no I/O
    m = st.columns(4)
    m[0].metric("Published", f"{counts['published']:,}", help="Prices sent to Kafka by this app")
    m[1].metric(
        "Stored",
        f"{counts['stored']:,}",
        help="Prices written to MongoDB (a price sent twice is stored once)",
    )
    m[2].metric("Dead-lettered", f"{counts['dead_lettered']:,}", help="Malformed messages set aside")
    lag = counts["lag"]
    m[3].metric(
        "Consumer lag",
        fmt.DASH if lag is None else f"{lag:,}",
        help="Messages in Kafka not yet stored (– until the consumer has measured it)",
    )
    page.link(page.HEALTH, "Pipeline health: every component, topics and collections")


def pause_resume(state: str, allowed: bool) -> None:
    """Pause while running; Resume while paused; Start otherwise (stopped, error)."""
    if state == "running":
        if st.button(
            "⏸ Pause",
            help="Stop fetching and storing; Kafka keeps what is in flight",
            disabled=not allowed,
            width="stretch",
        ):
            runtime.pause()
            st.rerun()
    elif state == "paused":
        if st.button("▶ Resume", type="primary", disabled=not allowed, width="stretch"):
            runtime.resume()
            st.rerun()
    elif st.button("▶ Start", type="primary", disabled=not allowed or state == "starting", width="stretch"):
        runtime.resume()
        st.rerun()


@st.fragment(run_every="5s")
def status_line() -> None:
    """Servers and pipeline in one line that expands (open by itself while a server is down), with
    Pause/Resume beside it; redrawn every 5 s from the background snapshot (no I/O)."""
    health = runtime.health()
    allowed = auth.can_change(runtime.settings)
    label, attention = status.summary(health, runtime.state, runtime.degraded())
    line, button = st.columns([5, 1])
    with line.expander(label, expanded=attention):
        server_details(health)
    with button:
        pause_resume(runtime.state, allowed)
    if not allowed:
        st.caption("🔒 Read-only demo: starting and pausing need the admin password (sidebar).")


status_line()


# -- the watchlist at a glance ---------------------------------------------------------------------
def fx_symbols(entries: list, base: str) -> tuple[str, ...]:
    """The FX pairs the base-currency view needs; missing ones are added to the watchlist (the first
    time the view is switched on, when this visitor may change it), with the source of the first
    symbol that needs them, so the pipeline fetches and stores them like any other symbol."""
    on_list = {e.symbol for e in entries}
    needed = {}
    for e in entries:
        pair = fx.pair(e.currency, base)
        if pair and pair not in needed:
            needed[pair] = e.source
    missing = [p for p in needed if p not in on_list]
    if missing and auth.can_change(runtime.settings):
        for pair in missing:
            try:
                runtime.add_symbol(pair, needed[pair])
            except WatchlistError as exc:
                st.caption(f"Could not add {pair} for the {base} view: {fmt.literal(str(exc))}")
    elif missing:
        st.caption(f"The {base} view needs {', '.join(missing)} on the watchlist (an admin can add them).")
    return tuple(sorted(needed))


@st.fragment(run_every="5s")
def glance(in_base: bool) -> None:
    with page.sentences("reading the watchlist"), st.spinner("Loading prices…"):
        entries = data.watchlist_entries()
        if not entries:
            st.info(
                "The watchlist is empty. Add tickers such as AAPL, BRK-B or 7203.T on the Watchlist page."
            )
            page.link(page.WATCHLIST, "Open the Watchlist", icon="📋")
            return
        symbols = tuple(e.symbol for e in entries)
        key = data.store_key()
        base = runtime.settings.base_currency
        rates = data.fx_rates(key, fx_symbols(entries, base)) if in_base else None
        table = tables.watchlist_glance(
            entries,
            data.quotes(key, symbols),
            data.sparklines(key, symbols),
            runtime.settings.poll_seconds,
            now=datetime.now(UTC),
            viewer_tz=page.viewer_timezone(),
            sim_hours=runtime.settings.sim_hours,
            base=base if in_base else None,
            rates=rates,
            pipeline_state=runtime.state,
        )
    st.dataframe(
        tables.color_changes(table),
        hide_index=True,
        column_order=tables.GLANCE_ORDER,
        placeholder=fmt.DASH,  # a missing value (history still loading) reads "–", not the grid's "None"
        width="stretch",
        column_config={
            "Symbol": st.column_config.TextColumn(width="small", pinned=True),
            "Name": st.column_config.TextColumn(width=150),
            "Last": st.column_config.NumberColumn(help="Newest stored price"),
            "Change": st.column_config.NumberColumn(
                help="Since the previous close (or the day's open when only one day is stored)"
            ),
            "Change %": st.column_config.NumberColumn(),
            "Day range": st.column_config.TextColumn(help="Low – high of the latest stored day (UTC)"),
            "Volume": st.column_config.NumberColumn(help="Volume of the latest stored day"),
            "Trend": st.column_config.LineChartColumn(
                help="Recent closes: up to 5 days of hourly bars", width="small"
            ),
            "Updated": st.column_config.TextColumn(help="How old the last price is"),
            "Status": st.column_config.TextColumn(
                width=125,  # "⏸️ paused", "🟠 stale (2026-12-04)" whole
                help="live · stale (no new price for ten polls while the market is open) · "
                "closed / lunch break / pre-market / after-hours · paused / stopped / starting / "
                "pipeline error (this app's pipeline fetches nothing)",
            ),
            "Currency": st.column_config.TextColumn(
                help="Prices in major units of the quote currency (pence shown as pounds); "
                "'≈ FX of <date>' when converted, 'unit unknown' when the provider's unit is not known"
            ),
            "Market": st.column_config.TextColumn(
                help="The exchange's state from its calendar (holidays, half days, lunch breaks) and the "
                "next open or close, in your time (Live shows the exchange's too)",
                width=270,
            ),
        },
    )
    note = outside_hours_note(
        ((e.symbol, e.source) for e in entries), datetime.now(UTC), runtime.settings.sim_hours
    )
    if note:  # the Market column tells the exchange's real state; say once why prices still move
        st.caption(note, help=SIM_HOURS_HELP)
    if (table["Status"] == "⚪ no data yet").all() and runtime.state != "running":
        st.caption("No prices yet: start the pipeline above and they arrive within seconds.")
    else:
        st.caption(f"Refreshes every 5 s · {datetime.now(UTC):%H:%M:%S} UTC")


title, switch = st.columns([3, 2], vertical_alignment="bottom")
title.subheader("Watchlist at a glance")
show_base = switch.toggle(
    f"Show prices in {runtime.settings.base_currency}",
    key="home_base",
    help="Converted at the FX rate of each price's session date (stored FX symbols such as GBPUSD=X, "
    "carried over at most 5 days); converted values are marked ≈ with the FX date",
)
glance(show_base)
