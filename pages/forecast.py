"""Forecast: what the models say about the next 1, 5 and 20 sessions, and whether they ever beat
"next close = last close".

Every model is backtested walk-forward before anything is drawn (``pipeline.forecast``); a model's
point forecast is shown only when it beat the naive forecast by at least 2% with honest 95% bands,
otherwise the naive forecast is drawn with a sentence saying so. The page only reads what the
forecast job stored; "Compute now" asks that job to run for this symbol.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import streamlit as st

from pipeline import queries
from pipeline.forecast.backtest import MIN_SESSIONS, settings_hash
from pipeline.forecast.job import BACKFILL_WAIT_S, completed_as_of
from pipeline.forecast.models import HORIZONS, LABELS
from pipeline.markets.calendars import market_for, sessions_between
from pipeline.models import to_utc
from pipeline.runtime import NotConnected
from ui import data, page
from ui import forecast as view

runtime = page.setup("Forecast", "🔮")

st.title("🔮 Forecast")
st.caption(
    "Statistical forecasts of daily closes, each measured against 'next close = last close' before it "
    "is shown. Not investment advice."
)

with page.sentences("reading the watchlist"):
    entries = data.watchlist_entries(enabled_only=True)
if not entries:
    st.info("No symbols to forecast: the watchlist has no enabled symbol. Add one on the Watchlist page.")
    page.link(page.WATCHLIST, "Open the Watchlist", icon="📋")
    st.stop()
by_symbol = {e.symbol: e for e in entries}
symbols = list(by_symbol)
params = st.query_params
wanted = params.get("symbol", "")
left, right = st.columns([2, 1])
symbol = left.selectbox("Symbol", symbols, index=symbols.index(wanted) if wanted in by_symbol else 0)
asked = {str(h): i for i, h in enumerate(HORIZONS)}.get(params.get("h", ""), HORIZONS.index(5))
horizon = right.radio("Horizon (sessions)", HORIZONS, index=asked, horizontal=True)
params["symbol"], params["h"] = symbol, str(horizon)


ASKED = "forecast_asked"  # session state: symbol -> (the stored result seen, epoch s) at "Compute now"
ASK_WAIT_S = 120.0  # a "Compute now" not answered by then failed or was dropped: stop waiting for it
# a backfill that finished longer ago than the job waits for it (plus a margin) has had its forecast
# attempt; a page opened later must not keep polling for one that will not come
FRESH_BACKFILL_S = BACKFILL_WAIT_S + 60.0


def forecast_job():
    """This process's forecast job while the pipeline runs or is paused, else None."""
    if not runtime.producing:
        return None
    try:
        return runtime.pipeline.forecasts
    except NotConnected:  # stopped between the two reads
        return None


def seen(doc: dict | None) -> tuple[str, str] | None:
    """What identifies a stored result on this page: (status, computed_at); None when none is stored."""
    return None if doc is None else (str(doc.get("status")), str(doc.get("computed_at")))


def compute_now(shown: tuple[str, str] | None) -> None:
    try:
        job = runtime.pipeline.forecasts
        if job is None:
            raise RuntimeError("no forecast job in this process")
        job.request([symbol])
        # wait until a newer result is stored, for ASK_WAIT_S at most
        st.session_state.setdefault(ASKED, {})[symbol] = (shown, time.time())
        st.toast(f"Computing forecasts for {symbol}; this page shows them when they are stored.")
    except Exception as exc:  # stopped pipeline or no scheduler: a sentence, not a traceback
        st.warning(f"The forecast job cannot run now: {exc}. Start the pipeline on the Overview page.")


def job_snapshot() -> dict:
    """The forecast job's snapshot (memory), {} while the pipeline is stopped; the symbol this page
    shows is put first among the waiting ones (``ForecastJob.prefer``)."""
    job = forecast_job()
    if job is None:
        return {}
    job.prefer(symbol)  # the symbol this page shows is computed next when it waits
    return job.snapshot()


def job_progress(snap: dict) -> tuple[str | None, bool]:
    """ "Computing AAPL (2 of 6) …" while the forecast job (its ``snap``) works on or waits for
    symbols (else None), and whether this page's symbol is among them."""
    current, waiting = snap.get("current"), [s for s in snap.get("waiting") or [] if s != snap.get("current")]
    if not current and not waiting:
        return None, False
    queue = ([current] if current else []) + waiting
    where = (
        f"{symbol} is {queue.index(symbol) + 1} of {len(queue)}"
        if symbol in queue
        else f"{len(queue)} symbol{'s' if len(queue) != 1 else ''} in line"
    )
    now = f"computing {current}" if current else "waiting for the stored daily history"
    return (
        f"Forecasts are being computed after the backfill: {now}; {where}. This page draws the chart when it is ready.",
        symbol in queue,
    )


def later(a, b) -> bool:
    """``a`` after ``b`` (datetimes as MongoDB returns them, aware or naive UTC); False when one is missing."""
    if not isinstance(a, datetime) or not isinstance(b, datetime):
        return False
    return to_utc(a) > to_utc(b)


def waiting_for(doc: dict | None, now: float | None = None) -> str | None:
    """The sentence saying what a forecast on its way waits for, or None when none is on its way.

    Nothing is on its way while the pipeline is stopped. With nothing stored: the forecast job's
    progress or the symbol's backfill. With a stored "short" result: only what makes it stale: the
    symbol's backfill is running, or finished after that result and at most ``FRESH_BACKFILL_S``
    before ``now`` (epoch s), or the job has the symbol in line, or "Compute now" was pressed in this
    session less than ``ASK_WAIT_S`` ago, no newer result is stored and the job has not failed on
    the symbol. Reads the job's snapshot (memory) and the backfill records."""
    if not runtime.producing:  # a stopped pipeline computes nothing: no waiting, no polling
        return None
    now = time.time() if now is None else now
    snap = job_snapshot()
    progress, queued = job_progress(snap)
    backfill = {b.get("symbol"): b for b in data.backfills()}.get(symbol) or {}
    filling = (
        f"{symbol}'s history is being fetched (backfill); its forecast is computed as soon as the daily "
        "sessions are stored. This page draws the chart when it is ready."
    )
    if doc is None:
        return progress or (filling if backfill.get("status") in ("queued", "running") else None)
    short = doc.get("sentence") or f"No forecast for {symbol}."
    if queued and progress:
        return f"{progress} The last check said: {short}"
    if backfill.get("status") in ("queued", "running"):
        return f"{filling} The last check said: {short}"
    finished = backfill.get("finished_at")
    recent = isinstance(finished, datetime) and now - to_utc(finished).timestamp() < FRESH_BACKFILL_S
    if backfill.get("status") == "done" and recent and later(finished, doc.get("computed_at")):
        return (
            f"{symbol}'s history was stored after the last check ({short}); its forecast is being "
            "computed. This page draws the chart when it is ready."
        )
    shown_then, pressed_at = st.session_state.get(ASKED, {}).get(symbol) or (None, 0.0)
    # a failure counts only when the symbol failed after the press
    failed = (snap.get("failed_at") or {}).get(symbol, 0.0) > pressed_at
    if shown_then == seen(doc) and now - pressed_at < ASK_WAIT_S and not failed:
        return (
            f"Computing forecasts for {symbol} (Compute now); the last check said: {short} This page draws "
            "the chart when it is stored."
        )
    return None


def until_changed(shown: tuple[str, str] | None) -> None:
    """A forecast on its way: say what it waits for and look again every 2 s; redraw the page once a
    different result is stored (or nothing is on its way any more)."""
    with page.sentences("reading the stored forecast"):
        latest = queries.latest_forecast(data.store(), symbol, settings)
        if seen(latest) != shown:
            st.rerun()
        waiting = waiting_for(latest)
    if waiting:
        st.info(waiting, icon="⏳")
    elif latest is None:
        st.info(
            f"No forecast is stored for {symbol} yet. The forecast job runs when a symbol's history is "
            f"backfilled and after each exchange's close, for symbols with at least {MIN_SESSIONS} daily "
            "sessions."
        )
    else:  # nothing on its way any more: the full page says the stored sentence
        st.rerun()


settings = settings_hash()
with page.sentences("reading the stored forecast"):
    store = data.store()
    doc = queries.latest_forecast(store, symbol, settings)
    on_its_way = waiting_for(doc) if doc is not None and doc.get("status") != "ok" else None
if doc is None or on_its_way:
    st.fragment(run_every=2)(until_changed)(seen(doc))
    st.button("Compute now", on_click=compute_now, args=(seen(doc),))
    st.stop()
if doc.get("status") != "ok":
    st.info(doc.get("sentence") or f"No forecast for {symbol}.")
    st.button("Compute now", on_click=compute_now, args=(seen(doc),))
    st.stop()

with page.sentences("reading the backtest"):
    rows = queries.forecast_backtest(store, symbol, doc["as_of"], settings)
    as_of = datetime.fromisoformat(doc["as_of"]).replace(tzinfo=UTC)
    history = queries.bars(
        store, [symbol], "1d", as_of - timedelta(days=270), as_of + timedelta(days=1)
    ).frame

market = market_for(symbol, by_symbol[symbol].timezone or None)
latest = completed_as_of(market, datetime.now(UTC))
behind = (
    len(sessions_between(market, as_of.date() + timedelta(days=1), latest)) if latest > as_of.date() else 0
)
pick = doc["champions"][str(horizon)]
model = pick["model"]

st.markdown(pick["sentence"])
last = doc["last_close"]
target = doc["paths"][model][horizon - 1]
st.markdown(
    f"**{LABELS[model]}** forecast for {symbol} in {horizon} session{'s' if horizon != 1 else ''} "
    f"({doc['dates'][horizon - 1]}): **{target:,.2f} {doc.get('currency', '')}** from a last close of "
    f"{last:,.2f}, {view.staleness(behind)} ({doc['as_of']})."
)
hist = history[["ts", "close"]].copy()
hist["ts"] = hist["ts"].dt.tz_convert(None).dt.normalize()
st.plotly_chart(view.fan(hist, doc, model, horizon), width="stretch")
st.caption(
    f"Bands: {'GARCH(1,1) with Student-t errors' if doc.get('vol') == 'garch' else 'exponentially weighted volatility'}"
    f" on daily log returns; 50%, 80% and 95% of outcomes are expected inside them."
)

st.subheader(f"Backtest at {horizon} session{'s' if horizon != 1 else ''}")
at_h = rows[rows["horizon"] == horizon].reset_index(drop=True)
st.dataframe(view.table(at_h), hide_index=True, width="stretch")
n_origins = int(at_h["origins"].max()) if not at_h.empty else 0
naive_rows = at_h[at_h["model"] == "naive"]["mase"]  # quoted from the table, not claimed
naive_mase = float(naive_rows.iloc[0]) if len(naive_rows) else None
st.caption(
    f"Walk-forward: each model refitted at {n_origins} origins using only the closes up to each one. "
    f"MASE divides a model's errors by the average error of 'next close = last close' one session ahead "
    "on the history (Hyndman & Koehler 2006)"
    + (
        f", so 'next close = last close' itself scores {naive_mase:.2f} here"
        if naive_mase is not None
        else ""
    )
    + ": compare the models with each other, lower is better. "
    "Skill is the gain over 'next close = last close' at this horizon."
)
cols = st.columns([1, 1])
with cols[0]:
    st.markdown("**Interval coverage: nominal vs measured**")
    st.plotly_chart(view.coverage(at_h), width="stretch")
with cols[1]:
    st.download_button(
        "⬇️ Download the backtest as CSV",
        rows.to_csv(index=False),
        file_name=f"backtest-{symbol}-{doc['as_of']}.csv",
        mime="text/csv",
    )
    st.button(
        "Compute now",
        on_click=compute_now,
        args=(seen(doc),),
        help="Run the forecast job for this symbol now.",
    )
