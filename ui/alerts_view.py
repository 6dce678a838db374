"""Pure helpers for the Alerts page: tables of rules and fired alerts, the rule form's fields (from
the kind registry ``pipeline.alerts.kinds``) and the small price-context chart around an alert.
No Streamlit, no I/O (the page reads MongoDB and passes the data in)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from pipeline.alerts.kinds import KINDS, Param
from pipeline.alerts.rules import Rule, describe

STATUS = {"pending": "⏳ pending", "delivered": "✅ delivered", "failed": "❌ failed"}
CONTEXT_MIN = 30  # minutes of prices shown on each side of an alert


def span(seconds: float | None) -> str:
    seconds = int(seconds or 0)
    if not seconds:
        return "none"
    if seconds % 86400 == 0:
        return f"{seconds // 86400} d"
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def utc(ts: datetime | None) -> str:
    return ts.strftime("%Y-%m-%d %H:%M:%S UTC") if ts else "—"


def delivery_text(doc: dict) -> str:
    parts = []
    for channel, entry in sorted((doc.get("delivery") or {}).items()):
        status = STATUS.get(entry.get("status"), entry.get("status") or "?")
        if entry.get("status") == "pending" and entry.get("attempts"):
            status = f"🔁 retrying ({entry['attempts']} tried)"
        parts.append(f"{channel} {status}")
    return " · ".join(parts) or "in app only"


def alerts_frame(docs: list[dict]) -> pd.DataFrame:
    rows = [
        {
            "id": d["_id"],
            "Fired": d.get("fired_at"),
            "Symbol": d.get("symbol"),
            "Alert": d.get("message"),
            "Rule": d.get("description"),
            "Price": d.get("price"),
            "Note": d.get("note") or "",
            "Delivery": delivery_text(d),
            "Seen": bool(d.get("acked")),
        }
        for d in docs
    ]
    columns = ["id", "Fired", "Symbol", "Alert", "Rule", "Price", "Note", "Delivery", "Seen"]
    return pd.DataFrame(rows, columns=columns)


def state_text(rule: Rule, state: dict | None, now: datetime) -> str:
    if rule.expired(now):
        return "⌛ expired"
    if not rule.enabled:
        return "⏸️ disabled"
    if not state:
        return "🟢 armed (no price yet)"
    fired = int(state.get("fired") or 0)
    text = "🟢 armed" if state.get("armed", True) else "🟠 fired (re-arms when it clears)"
    if rule.kind in KINDS and KINDS[rule.kind].cross:
        text = "🟢 watching"
    if fired:
        text += f" · fired {fired}×"
    if state.get("suppressed"):
        text += f" · {state['suppressed']} held by cooldown"
    return text


#: The rules table's visible columns, in order (``rules_frame`` adds the hidden ``id`` first).
RULE_COLUMNS = (
    "Symbol",
    "Condition",
    "Enabled",
    "State",
    "Cooldown",
    "Expires",
    "Channels",
    "Note",
    "Last fired",
)


def rules_frame(rules: list[Rule], states: dict[str, dict], now: datetime) -> pd.DataFrame:
    rows = [
        {
            "id": r.id,
            "Symbol": r.symbol,
            "Condition": describe(r),
            "Enabled": r.enabled,
            "Cooldown": span(r.cooldown_s),
            "Expires": utc(r.expires_at) if r.expires_at else "never",
            "Channels": ", ".join(["app", *r.channels]),
            "Note": r.note,
            "State": state_text(r, states.get(r.id), now),
            "Last fired": (states.get(r.id) or {}).get("last_fired"),
        }
        for r in rules
    ]
    return pd.DataFrame(rows, columns=["id", *RULE_COLUMNS])


def kind_label(kind: str) -> str:
    return KINDS[kind].label


@dataclass(frozen=True)
class FormField:
    """One input of the rule form: a number input (``choices`` empty) or a select box.

    A number is shown divided by ``param.scale`` (a window in seconds as minutes): ``to_param``
    turns what the input returns back into the parameter's value."""

    param: Param
    value: Any  # what the input starts with (None: empty)
    min_value: float | int  # the input's own floor; validation gives the real bounds as sentences
    step: float | int
    placeholder: str | None

    @property
    def name(self) -> str:
        return self.param.name

    @property
    def label(self) -> str:
        return self.param.label

    @property
    def choices(self) -> tuple[str, ...]:
        return self.param.choices

    def choice_label(self, choice: str) -> str:
        return self.param.choice_labels.get(choice, choice)

    def to_param(self, shown: Any) -> Any:
        if shown is None or self.param.choices or self.param.scale == 1:
            return shown
        return round(shown * self.param.scale)


def form_fields(kind: str, rule: Rule | None = None) -> list[FormField]:
    """The form's inputs for ``kind``, one per parameter in registry order, starting from ``rule``'s
    values when it is of that kind (else the parameter's default or suggestion)."""
    out = []
    for p in KINDS[kind].params:
        value = rule.params.get(p.name) if rule is not None and rule.kind == kind else None
        value = p.prefill if value is None else value
        if p.choices:
            out.append(FormField(p, value, 0, 1, None))
            continue
        whole = p.integer and p.scale == 1  # Streamlit wants value, min and step of one type
        if value is not None:
            value = int(value) if whole else value / p.scale
        example = f"e.g. {(p.fmt or '%g') % p.example}" if value is None and p.example is not None else None
        out.append(FormField(p, value, 0 if whole else 0.0, int(p.step) if whole else float(p.step), example))
    return out


def context_figure(prices: pd.DataFrame, alert: dict, height: int = 280) -> go.Figure:
    """Closes (``ts``, ``close``) around the alert, a marker where it fired and its level, if any."""
    fig = go.Figure()
    if not prices.empty:
        x = pd.to_datetime(prices["ts"], utc=True).dt.tz_localize(None)
        fig.add_trace(
            go.Scatter(
                x=x,
                y=prices["close"],
                mode="lines",
                name=alert.get("symbol", "price"),
                line=dict(width=1.6, color="#0f766e"),
                hovertemplate="%{y:,.2f}<extra></extra>",
            )
        )
    at = pd.Timestamp(alert["ts"]).tz_convert("UTC").tz_localize(None)
    fig.add_trace(
        go.Scatter(
            x=[at],
            y=[alert.get("price")],
            mode="markers",
            name="alert",
            marker=dict(size=13, color="#f59e0b", symbol="diamond", line=dict(width=1, color="#78350f")),
            hovertemplate="alert at %{y:,.2f}<extra></extra>",
        )
    )
    kind = KINDS.get(alert.get("kind", ""))
    if alert.get("level") is not None and kind is not None and kind.draws_level:
        fig.add_hline(
            y=alert["level"],
            line=dict(width=1, dash="dot", color="rgba(100,116,139,0.9)"),
            annotation_text=f"level {alert['level']:,.2f}",
            annotation_position="top left",
        )
    fig.add_vline(x=at, line=dict(width=1, dash="dot", color="rgba(245,158,11,0.7)"))
    fig.update_layout(
        height=height,
        margin=dict(l=8, r=8, t=26, b=8),
        showlegend=False,
        hovermode="x unified",
        yaxis=dict(side="right", tickformat=",.2f", title=None),
        xaxis=dict(title=None),
        title=dict(text=f"{alert.get('symbol', '')} around the alert (UTC)", font=dict(size=13)),
    )
    return fig
