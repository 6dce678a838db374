"""Watchlist: which symbols the pipeline follows and from which source.

Edit the table like a spreadsheet: type a ticker in the empty last row to add it, tick "enabled" to
pause a symbol, pick its source, select rows and delete them. Every change is checked with the
source and saved in MongoDB; the running producer picks it up within seconds, without a restart.
"""

from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st

from pipeline.config import SOURCES
from pipeline.csvfile import decode
from pipeline.sources.registry import SIM_HOURS_HELP, outside_hours_note, symbol_status
from pipeline.watchlist import WatchlistError, read_import
from ui import auth, data, page, tables
from ui import format as fmt
from ui import markets as market_text
from ui import watchlist_edit as edit

runtime = page.setup("Watchlist", "📋")
settings = runtime.settings
allowed = auth.can_change(settings)

st.title("📋 Watchlist")
st.caption(
    "Which symbols the pipeline fetches, and from which source. Changes reach the running "
    "producer within seconds, no restart needed."
)
if not allowed:
    auth.read_only_note("changing the watchlist")

#: What the last edit or import did stays on the page this long (seconds), across the reruns that
#: follow it (a finished backfill reruns the page), and is replaced by the next outcome (``page.flash``).
OUTCOME_SHOWN_S = 60.0
SAID = "wl_messages"


def say(kind: str, text: str) -> None:
    """One message of an edit's or import's outcome (``edit.Outcome.messages``)."""
    if kind == "rows":  # import rows not added: one message, the rows' own text shown literally
        n = len(text.splitlines())
        st.error(f"{n} row{'s' if n != 1 else ''} not imported:")
        st.code(text, language=None, wrap_lines=True)
    elif kind == "success":  # names only symbols that passed validation
        st.success(text)
    elif kind == "warning":  # added, but the source invents their prices: names validated symbols only
        st.warning(text)
    else:  # quotes what was typed: shown literally, never as Markdown/LaTeX/HTML
        st.error(fmt.literal(text))


page.show_flash(SAID, OUTCOME_SHOWN_S, say)


# -- backfills in progress -----------------------------------------------------------------------
def backfill_progress() -> None:
    """Progress bars while backfills run; polls only then (a poll while the user types in the editor
    below could race with the edit), and reruns the page once they are all done."""
    with page.sentences("reading backfill progress"):
        active = [b for b in data.backfills() if b.get("status") in ("queued", "running")]
    for b in active:
        done, total = b.get("done") or 0, b.get("total") or 0
        st.progress(
            done / total if total else 0.0,
            text=f"**{b['symbol']}**: backfilling history from {b.get('source', '?')} — "
            f"{done}/{total or '?'} chunks, {b.get('published', 0):,} bars sent",
        )
    if not active and st.session_state.pop("wl_backfilling", False):
        st.rerun(scope="app")  # refresh the table's backfill column, stop polling


with page.sentences("reading backfill progress"):
    backfilling = any(b.get("status") in ("queued", "running") for b in data.backfills())
st.session_state["wl_backfilling"] = backfilling
st.fragment(run_every=1.5 if backfilling else None)(backfill_progress)()

# -- the editor ----------------------------------------------------------------------------------
with page.sentences("reading the watchlist"):
    entries = data.watchlist_entries()
    backfills = {b["symbol"]: b for b in data.backfills() if b.get("symbol")}
pending = st.session_state.setdefault("wl_pending", [])
now = datetime.now(UTC)
markets = {
    e.symbol: market_text.compact(
        symbol_status(e.symbol, now, e.source, tables.entry_market(e)),
        page.viewer_timezone(),
    )
    for e in entries
}
shown = edit.frame(entries, backfills, pending, markets)
note = outside_hours_note(((e.symbol, e.source) for e in entries), now, settings.sim_hours)
if note:  # the market column tells the exchange's real state; say once why prices still move
    st.caption(note, help=SIM_HOURS_HELP)
version = st.session_state.setdefault("wl_version", 0)
editor_key = f"wl_editor_{version}"

if not entries and not pending:
    st.info(
        "The watchlist is empty. Type a ticker in the table below (for example AAPL, BRK-B, 7203.T, "
        "^GSPC, EURUSD=X or BTC-USD), or import a list further down."
    )

if allowed:
    st.caption(
        "Type a ticker in the empty last row to add it · untick **Enabled** to pause a symbol · "
        "select rows (the boxes at the left) and press Delete, or the 🗑 icon above the table, to remove "
        "them."
    )
st.data_editor(
    shown,
    key=editor_key,
    hide_index=True,
    width="stretch",
    num_rows="dynamic" if allowed else "fixed",
    disabled=not allowed or ["name", "exchange", "currency", "market", "backfill", "status"],
    # Status (a refused row's reason) before the wide columns: it was off-screen on a laptop
    column_order=[
        "symbol",
        "enabled",
        "source",
        "status",
        "name",
        "exchange",
        "currency",
        "backfill",
        "market",
    ],
    column_config={
        "symbol": st.column_config.TextColumn(
            "Ticker",
            help="Any symbol Yahoo Finance knows: AAPL, BRK-B, 7203.T, VOD.L, ^GSPC, EURUSD=X, BTC-USD",
            max_chars=20,
        ),
        "enabled": st.column_config.CheckboxColumn(
            "Enabled", help="Untick to pause fetching this symbol", default=True
        ),
        "source": st.column_config.SelectboxColumn(
            "Source", options=list(SOURCES), default=settings.source, help="Where prices come from"
        ),
        "name": st.column_config.TextColumn("Name"),
        "exchange": st.column_config.TextColumn("Exchange"),
        "currency": st.column_config.TextColumn("Currency", width="small"),
        "market": st.column_config.TextColumn(
            "Market", help="The exchange's state now and its next open or close, in your time"
        ),
        "backfill": st.column_config.ProgressColumn(
            "Backfill", min_value=0, max_value=100, format="%.0f%%", help="History fetched for the symbol"
        ),
        "status": st.column_config.TextColumn(
            "Status",
            width="medium",
            help="Why a row was not added (the message above the table says it whole)",
        ),
    },
)
state = st.session_state.get(editor_key) or {}
if allowed and edit.actionable(state):
    with st.spinner("Checking tickers with their sources…"), page.sentences("saving the watchlist"):
        outcome = edit.apply_edits(runtime, shown, len(entries), state, settings.source)
    st.session_state["wl_pending"] = outcome.pending
    page.flash(SAID, *outcome.messages(runtime.producing))
    st.session_state["wl_version"] = version + 1
    st.rerun()

n_enabled = sum(e.enabled for e in entries)
st.caption(
    f"{len(entries)} of at most {settings.max_symbols} symbols · {n_enabled} enabled · "
    f"new rows use the **{settings.source}** source unless you pick another."
)

# -- import / export -------------------------------------------------------------------------------
st.subheader("Import and export")
left, right = st.columns(2)
with left:
    with page.sentences("exporting the watchlist"):
        csv_text = runtime.watchlist.export_csv()
    st.download_button(
        "⬇️ Export as CSV",
        data=csv_text,
        file_name="watchlist.csv",
        mime="text/csv",
        on_click="ignore",
        disabled=not entries,
    )
    if entries:
        st.caption("As text:")
        st.code(" ".join(e.symbol for e in entries), language=None)
with right:
    if allowed:
        with st.form("wl_import", border=True):
            text = st.text_area(
                "Paste tickers or a CSV",
                placeholder="AAPL MSFT 7203.T\n\nor\n\nsymbol,source,enabled\nAAPL,simulated,true",
                height=140,
            )
            # a new key after each import empties the uploader, so pressing Import again does not re-import it
            uploads = st.session_state.setdefault("wl_upload_version", 0)
            upload = st.file_uploader(
                "…or upload a CSV file", type=["csv", "txt"], key=f"wl_upload_{uploads}"
            )
            if st.form_submit_button("Import"):
                raw = decode(upload.getvalue()) if upload is not None else text
                try:
                    plan = read_import(raw or "", settings.source)
                except WatchlistError as exc:  # refused whole (it may quote the file): nothing added
                    st.error(fmt.literal(str(exc)))
                    st.stop()
                if not plan.rows and not plan.skipped:
                    st.warning(
                        "Nothing to import: paste tickers separated by spaces or commas, or a CSV "
                        "with a symbol column."
                    )
                else:
                    with (
                        st.spinner(f"Checking {len(plan.rows)} ticker(s)…"),
                        page.sentences("importing the watchlist"),
                    ):
                        outcome = edit.import_rows(runtime, plan)
                    page.flash(SAID, *outcome.messages(runtime.producing))
                    st.session_state["wl_version"] = version + 1
                    st.session_state["wl_upload_version"] = uploads + 1
                    st.rerun()
    else:
        st.caption("🔒 Importing needs the admin password.")
