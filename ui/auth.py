"""Hosted demo mode: visitors look, the admin changes.

Guarantees:
- With ``STOCKMON_DEMO_MODE`` off everything is allowed and nothing is shown.
- With it on, ``can_change()`` is False until this browser session entered the admin password from
  secrets (``STOCKMON_ADMIN_PASSWORD``, compared in constant time). Without a configured password the
  demo stays read-only for everyone, and the sidebar says so.
- Caps (``limits``) hold for everyone in demo mode: fewer symbols per chart, the configured longest
  History range, a slower minimum refresh.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

import streamlit as st

from pipeline.config import Settings

SESSION_KEY = "stockmon_admin"


@dataclass(frozen=True)
class Limits:
    chart_symbols: int
    history_days: int
    min_refresh_s: int


def limits(settings: Settings) -> Limits:
    if settings.demo_mode:
        return Limits(
            chart_symbols=min(8, settings.max_symbols),
            history_days=settings.max_history_days,
            min_refresh_s=2,
        )
    return Limits(
        chart_symbols=min(20, settings.max_symbols), history_days=settings.max_history_days, min_refresh_s=1
    )


def can_change(settings: Settings) -> bool:
    return not settings.demo_mode or bool(st.session_state.get(SESSION_KEY))


def check_password(settings: Settings, attempt: str) -> bool:
    if not settings.admin_password or not attempt:
        return False
    return hmac.compare_digest(attempt.encode(), settings.admin_password.encode())


def sidebar(settings: Settings) -> None:
    """The admin sign-in in the sidebar (demo mode only)."""
    if not settings.demo_mode:
        return
    with st.sidebar:
        if st.session_state.get(SESSION_KEY):
            st.success("Signed in as admin: changes are allowed.")
            if st.button("Sign out", key="stockmon_sign_out"):
                st.session_state[SESSION_KEY] = False
                st.rerun()
            return
        st.info("Public demo: you can look around; changes need the admin password.")
        if not settings.admin_password:
            st.caption(
                "No admin password is configured (STOCKMON_ADMIN_PASSWORD), so the demo stays read-only."
            )
            return
        with st.form("stockmon_admin_form", border=False):
            attempt = st.text_input("Admin password", type="password")
            if st.form_submit_button("Sign in"):
                if check_password(settings, attempt):
                    st.session_state[SESSION_KEY] = True
                    st.rerun()
                st.error("That password is not right.")


def read_only_note(what: str) -> None:
    st.info(f"This is a read-only public demo: {what} needs the admin password (sidebar).", icon="🔒")
