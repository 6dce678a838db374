"""Alerts: be told when a price moves, even with no browser open.

The pipeline evaluates every rule as prices are stored and records each alert once in MongoDB; this
page shows what fired (with the price around the moment), lets you acknowledge it, and manages the
rules and the delivery channels (in the app, webhook, e-mail).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from datetime import time as dtime

import pandas as pd
import streamlit as st

from pipeline import queries
from pipeline.alerts import KINDS, RuleBook, RuleError, describe
from pipeline.alerts import events as alert_events
from pipeline.alerts.channels import DeliveryError, configured, send_test, short_url
from pipeline.alerts.rules import CHANNELS, Rule
from ui import alerts_view as view
from ui import auth, data, page
from ui import format as fmt

runtime = page.setup("Alerts", "🔔")
settings = runtime.settings
allowed = auth.can_change(settings)

st.title("🔔 Alerts")
st.caption(
    "Rules are evaluated by the pipeline as prices are stored, so alerts fire with no browser open. "
    "Each crossing fires once; a rule re-arms when its condition clears."
)
if not allowed:
    auth.read_only_note("creating, changing and acknowledging alerts")

#: What the last action did, shown once on the run its st.rerun() starts (``page.flash``).
SAID = "alerts_messages"
page.show_flash(SAID)  # validated symbols and numbers only


with page.sentences("reading the alert rules"):
    store = data.store()
    book = RuleBook(store, settings.max_alert_rules)
    rules = book.list()
    watched = [e.symbol for e in data.watchlist_entries()]
now = datetime.now(UTC)

# -- fired alerts ----------------------------------------------------------------------------------
st.subheader("Fired alerts")
known = sorted(set(watched) | {r.symbol for r in rules})
wanted = [s for s in st.query_params.get_all("symbol") if s in known]
left, right = st.columns([3, 1], vertical_alignment="bottom")
chosen = left.multiselect("Symbols", known, default=wanted, placeholder="All symbols", key="alerts_symbols")
if chosen:
    st.query_params["symbol"] = chosen
else:
    st.query_params.pop("symbol", None)
unacked_only = right.toggle("Only new", key="alerts_unacked", help="Hide acknowledged alerts")


def price_context(alert: dict) -> pd.DataFrame:
    around = timedelta(minutes=view.CONTEXT_MIN)
    return queries.price_context(data.store(), alert["symbol"], alert["ts"] - around, alert["ts"] + around)


@st.fragment(run_every="5s")
def fired_alerts(symbols: list[str], unacked: bool) -> None:
    with page.sentences("reading fired alerts"):
        docs = alert_events.recent(store, symbols, limit=200, unacked_only=unacked)
        counts = alert_events.counts(store)
    m = st.columns(3)
    m[0].metric("New", counts["unacked"], help="Fired and not yet acknowledged")
    m[1].metric("All alerts", counts["total"])
    m[2].metric("Rules", len(rules), help=f"{sum(r.active(now) for r in rules)} active")
    if not docs:
        filtered = " for these symbols" if symbols else ""
        st.info(
            f"No {'new ' if unacked else ''}alert{filtered} yet. Alerts appear here (and as a toast on every "
            "open page) the moment the pipeline sees a rule's condition come true."
        )
        return
    frame = view.alerts_frame(docs)
    picked = st.dataframe(
        frame,
        hide_index=True,
        width="stretch",
        on_select="rerun",
        selection_mode="multi-row",
        key="alerts_table",
        column_order=["Fired", "Symbol", "Alert", "Price", "Delivery", "Seen", "Note"],
        column_config={
            "Fired": st.column_config.DatetimeColumn(
                "Fired (UTC)", format="YYYY-MM-DD HH:mm:ss", timezone="UTC"
            ),
            "Alert": st.column_config.TextColumn(width="large"),
            "Price": st.column_config.NumberColumn(format="%.2f"),
            "Seen": st.column_config.CheckboxColumn(help="Acknowledged"),
            "Delivery": st.column_config.TextColumn(help="External channels: webhook, e-mail"),
        },
    )
    rows = list(picked.selection.rows) if picked and picked.selection else []
    ids = [frame.iloc[i]["id"] for i in rows]
    a, b, c = st.columns([1.1, 1.1, 2])
    if a.button(f"✔ Acknowledge selected ({len(ids)})", disabled=not (allowed and ids), key="ack_selected"):
        with page.sentences("acknowledging alerts"):
            n = alert_events.acknowledge(store, ids=ids)
        page.flash(SAID, ("success", f"Acknowledged {n} alert(s)."))
        st.rerun()
    shown_new = [d["_id"] for d in docs if not d.get("acked")]
    if b.button(
        f"✔✔ Acknowledge all shown ({len(shown_new)})", disabled=not (allowed and shown_new), key="ack_all"
    ):
        with page.sentences("acknowledging alerts"):
            n = alert_events.acknowledge(store, ids=shown_new)
        page.flash(SAID, ("success", f"Acknowledged {n} alert(s)."))
        st.rerun()
    c.caption("Select rows to acknowledge them or to see the price around one of them.")
    focus = next((d for d in docs if d["_id"] == ids[0]), docs[0]) if ids else docs[0]
    with page.sentences("reading the prices around the alert"):
        context = price_context(focus)
    st.plotly_chart(
        view.context_figure(context, focus), key="alert_context", config={"displayModeBar": False}
    )
    st.caption(
        f"**{fmt.literal(focus['symbol'])}** · {fmt.literal(focus['message'])} · "
        f"rule: {fmt.literal(focus.get('description', ''))} · price time {view.utc(focus['ts'])}"
    )
    if focus.get("note"):  # the user's text: plain text (no Markdown, so no image, link or LaTeX)
        st.text(f"Note: {focus['note']}")


fired_alerts(chosen, unacked_only)

# -- rules -----------------------------------------------------------------------------------------
st.subheader("Rules")


@st.fragment(run_every="5s")
def rules_table(symbols: list[str]) -> None:
    """Re-read every 5 s: a rule's state (armed, fired n times) changes as prices arrive."""
    with page.sentences("reading the alert rules"):
        current, current_states = book.list(), book.states()
    shown = [r for r in current if not symbols or r.symbol in symbols]
    if not shown:
        st.info(
            "No rules yet. Create one below: for example “AAPL price rises above 200” or “NVDA moves 3% "
            "within 15 minutes”."
            if not current
            else "No rule for these symbols."
        )
        return
    st.dataframe(
        view.rules_frame(shown, current_states, datetime.now(UTC)),
        hide_index=True,
        width="stretch",
        column_order=view.RULE_COLUMNS,
        column_config={
            "Condition": st.column_config.TextColumn(width="medium"),
            "State": st.column_config.TextColumn(width="medium"),
            "Last fired": st.column_config.DatetimeColumn(
                "Last fired (UTC)", format="YYYY-MM-DD HH:mm:ss", timezone="UTC"
            ),
        },
    )


rules_table(chosen)

NEW = "__new__"
by_id = {r.id: r for r in rules}
target = st.selectbox(
    "Create or edit",
    [NEW, *by_id],
    key="rule_target",
    format_func=lambda i: "➕ New rule" if i == NEW else f"✏️ {describe(by_id[i])}",
)
rule: Rule | None = by_id.get(target)
kinds = list(KINDS)
kind = st.selectbox(
    "Condition",
    kinds,
    index=kinds.index(rule.kind) if rule else 0,
    key=f"rule_kind_{target}",
    format_func=view.kind_label,
    disabled=not allowed,
)


def form_values(rule: Rule | None, kind: str) -> dict:
    """The form's inputs for ``kind``, from its parameters in the registry (values from the rule being
    edited when it is of that kind)."""
    key = f"rule_{target}_{kind}_{form_version}"
    values: dict = {}
    cols = st.columns(3)
    for i, f in enumerate(view.form_fields(kind, rule)):
        col = cols[i % 3]
        if f.choices:
            values[f.name] = col.selectbox(
                f.label,
                f.choices,
                index=f.choices.index(f.value),
                format_func=f.choice_label,
                key=f"{key}_{f.name}",
            )
        else:
            shown = col.number_input(
                f.label,
                value=f.value,
                min_value=f.min_value,
                step=f.step,
                format=f.param.fmt,
                key=f"{key}_{f.name}",
                placeholder=f.placeholder,
            )
            values[f.name] = f.to_param(shown)
    return values


form_version = st.session_state.get("rule_form_version", 0)  # bumped after a save: a fresh, empty form
with st.form(f"rule_form_{target}_{kind}_{form_version}", border=True):
    key = f"rule_{target}_{kind}_{form_version}"
    options = sorted(set(watched) | ({rule.symbol} if rule else set()))
    default_symbol = rule.symbol if rule else (options[0] if options else None)
    symbol = st.selectbox(
        "Symbol",
        options,
        index=options.index(default_symbol) if default_symbol in options else None,
        accept_new_options=True,
        key=f"{key}_symbol",
        placeholder="Pick or type a ticker",
        help="A symbol on the watchlist (or type one; it needs to be on the watchlist to get prices)",
    )
    values = form_values(rule, kind)
    c1, c2, c3 = st.columns(3)
    cooldown_min = c1.number_input(
        "Cooldown (minutes)",
        value=(rule.cooldown_s / 60) if rule else 0.0,
        min_value=0.0,
        step=1.0,
        format="%g",  # "0" and "2.5", not "0.00"
        key=f"{key}_cooldown",
        help="After an alert, crossings within this time are held back",
    )
    expiry = rule.expires_at if rule else None
    expiry_day = c2.date_input(
        "Expires on (UTC, optional)",
        value=expiry.date() if expiry else None,
        key=f"{key}_expiry_day",
        help="Leave empty for a rule that never expires",
    )
    expiry_time = c3.time_input(
        "at (UTC)",
        value=dtime(expiry.hour, expiry.minute) if expiry else dtime(23, 59),
        key=f"{key}_expiry_time",
    )
    ready = configured(settings)
    channels = st.multiselect(
        "Also notify",
        list(CHANNELS),
        default=list(rule.channels) if rule else [c for c in CHANNELS if ready[c]],
        key=f"{key}_channels",
        format_func=lambda c: c if ready[c] else f"{c} (not configured)",
        help="Alerts always show in the app; these channels are extra",
    )
    note = st.text_input(
        "Note",
        value=rule.note if rule else "",
        max_chars=500,
        key=f"{key}_note",
        placeholder="Why this alert matters (sent with it)",
    )
    enabled = st.checkbox("Enabled", value=rule.enabled if rule else True, key=f"{key}_enabled")
    submitted = st.form_submit_button(
        "💾 Save changes" if rule else "➕ Create rule", type="primary", disabled=not allowed
    )

if submitted and allowed:
    raw = {
        "symbol": symbol or "",
        "kind": kind,
        **values,
        "cooldown_s": round((cooldown_min or 0) * 60),
        "enabled": enabled,
        "note": note,
        "channels": channels,
        "expires_at": datetime.combine(expiry_day, expiry_time or dtime(0, 0), tzinfo=UTC)
        if expiry_day
        else None,
    }
    saved: Rule | None = None
    problems: dict[str, str] = {}
    with page.sentences("saving the rule"):
        try:
            saved = book.update(rule.id, raw) if rule else book.create(raw)
        except RuleError as exc:  # the only way on without a saved rule: anything else stops the page
            problems = exc.errors
    if saved is None:
        st.error(  # one message for all the problems; they quote what was typed, so literally
            "The rule was not saved:\n" + "\n".join(f"- {fmt.literal(msg)}" for msg in problems.values())
        )
    else:
        said = [("success", f"{'Saved' if rule else 'Created'}: {describe(saved)}.")]
        if saved.symbol not in watched:
            unwatched = (
                f"{saved.symbol} is not on the watchlist, so no prices arrive for it yet: add it on the "
                "Watchlist page."
            )
            said.append(("warning", unwatched))
        page.flash(SAID, *said)
        st.session_state.pop("rule_target", None)
        st.session_state["rule_form_version"] = form_version + 1
        st.rerun()

if rule is not None and allowed:
    a, b, _ = st.columns([1, 1, 3])
    if a.button("⏸️ Disable" if rule.enabled else "▶️ Enable", key=f"toggle_{rule.id}"):
        with page.sentences("changing the rule"):
            book.set_enabled(rule.id, not rule.enabled)
        page.flash(SAID, ("success", f"{'Disabled' if rule.enabled else 'Enabled'}: {describe(rule)}."))
        st.rerun()
    with b.popover("🗑️ Delete"):
        st.write(f"Delete “{fmt.literal(describe(rule))}”? Its fired alerts stay in the history.")
        if st.button("Delete the rule", type="primary", key=f"delete_{rule.id}"):
            with page.sentences("deleting the rule"):
                book.delete(rule.id)
            page.flash(SAID, ("success", f"Deleted: {describe(rule)}."))
            st.session_state.pop("rule_target", None)
            st.rerun()

quotes = None
if watched:
    with page.sentences("reading last prices"):
        quotes = data.quotes(data.store_key(), tuple(watched))
if quotes is not None and not quotes.empty:
    last = [
        f"{symbol} {price:,.2f}"
        for symbol, price in zip(quotes["symbol"], quotes["last"], strict=True)
        if pd.notna(price)
    ]
    if last:
        st.caption("Last prices: " + " · ".join(last))

# -- channels --------------------------------------------------------------------------------------
st.subheader("Channels")


@st.fragment(run_every="5s")
def channel_status() -> None:
    """Delivery counters and the last failure per channel, and what the evaluator did (in memory: no I/O)."""
    alerts = runtime.alerts()
    snap, engine = alerts["channels"], alerts["engine"]
    cols = st.columns(3)
    for col, channel in ((cols[1], "webhook"), (cols[2], "email")):
        stats = snap.get(channel)
        if stats:
            col.caption(
                f"Sent {stats['sent']} · retries {stats['retries']} · failed {stats['failed']} · "
                f"pending {stats['pending'] if stats['pending'] is not None else '?'}"
            )
            if stats.get("last_error"):
                col.warning(f"Last failure: {fmt.literal(stats['last_error'])}", icon="⚠️")
        elif configured(settings)[channel]:
            col.caption("Deliveries start with the pipeline.")
    if engine:
        st.caption(
            f"Evaluation: {fmt.count(engine['active_rules'], 'active rule')} on "
            f"{fmt.count(len(engine['symbols']), 'symbol')} · "
            f"{engine['evaluated']:,} checks · {engine['fired']} fired · {engine['suppressed']} held by cooldown"
            + (f" · last error: {fmt.literal(engine['last_error'])}" if engine.get("last_error") else "")
        )
    else:
        st.caption(
            "The pipeline is not running, so no rule is being evaluated. Start it on the Overview page."
        )


cols = st.columns(3)
with cols[0]:
    st.markdown("**In the app**")
    st.caption("A toast on every open page, and the list above.")
    if st.button("Send test", key="test_app", disabled=not allowed):
        st.toast(f"**Alert** · Test alert from {page.APP_NAME}", icon="🔔")
for col, channel, setting in (
    (cols[1], "webhook", "STOCKMON_ALERT_WEBHOOK_URLS"),
    (cols[2], "email", "STOCKMON_SMTP_HOST and STOCKMON_ALERT_EMAIL_TO"),
):
    with col:
        st.markdown(f"**{'Webhook' if channel == 'webhook' else 'E-mail'}**")
        if not configured(settings)[channel]:
            st.caption(f"Not configured: set {setting} (environment or `.streamlit/secrets.toml`).")
        else:
            targets = (
                settings.alert_email_to
                if channel == "email"
                else [short_url(u) for u in settings.alert_webhook_urls]
            )
            st.caption("To " + ", ".join(targets))
        if st.button(
            "Send test", key=f"test_{channel}", disabled=not (allowed and configured(settings)[channel])
        ):
            try:
                with st.spinner(f"Sending a test by {channel}…"):
                    st.success(fmt.literal(send_test(settings, channel)))
            except DeliveryError as exc:
                st.error(f"The test did not go through: {fmt.literal(exc)}")
channel_status()
