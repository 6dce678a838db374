"""Hosted demo mode: visitors look, the admin changes.

Guarantees:
- With ``STOCKMON_DEMO_MODE`` off everything is allowed and nothing is shown.
- With it on, ``can_change()`` is False until this browser session entered the admin password from
  secrets (``STOCKMON_ADMIN_PASSWORD``, compared in constant time). Without a configured password the
  demo stays read-only for everyone, and the sidebar says so.
- Caps (``limits``) hold for everyone in demo mode: fewer symbols per chart, the configured longest
  History range, a slower minimum refresh.
- Guessing is limited per client (``SignInGuard``, one per process): a client is its IP address
  (``st.context.ip_address``; None on localhost) and its browser session, each counted. After
  ``FREE_TRIES`` wrong passwords each further try must wait a growing delay (doubling up to
  ``MAX_DELAY_S``; a try that comes early is refused without looking at the password); after
  ``MAX_FAILURES`` wrong passwords the client is locked out for ``LOCKOUT_S`` and that is logged
  (WARNING). During a lockout even the right password is refused, with the time to retry.
  The state is in memory, thread-safe and bounded (``MAX_CLIENTS``, least recently seen dropped).
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import streamlit as st

from pipeline.config import Settings

SESSION_KEY = "stockmon_admin"

FREE_TRIES = 3  # wrong passwords allowed without a delay (typos)
BASE_DELAY_S = 1.0  # the wait after the first wrong password beyond the free ones; doubles each time
MAX_DELAY_S = 30.0
MAX_FAILURES = 10  # wrong passwords in a row before a lockout
LOCKOUT_S = 15 * 60.0
MAX_CLIENTS = 10_000  # clients remembered at most (memory bound)

log = logging.getLogger(__name__)


@dataclass
class _Tries:
    failures: int = 0
    last_failure: float = 0.0
    locked_until: float = 0.0


class SignInGuard:
    """Attempt limiting for the admin password, per client key (any strings: IP, session id).

    ``clock`` returns epoch seconds (``time.time``; injectable for tests). Use ``refusal(keys)``
    before checking a password (a sentence when the try must be refused, else None), then
    ``failed(keys)`` or ``succeeded(keys)``. A try is refused when any of its keys is locked or
    waiting. Thread-safe; at most ``max_clients`` keys are kept (least recently seen dropped)."""

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        free_tries: int = FREE_TRIES,
        base_delay_s: float = BASE_DELAY_S,
        max_delay_s: float = MAX_DELAY_S,
        max_failures: int = MAX_FAILURES,
        lockout_s: float = LOCKOUT_S,
        max_clients: int = MAX_CLIENTS,
    ):
        self.clock = clock
        self.free_tries, self.base_delay_s, self.max_delay_s = free_tries, base_delay_s, max_delay_s
        self.max_failures, self.lockout_s, self.max_clients = max_failures, lockout_s, max_clients
        self._tries: OrderedDict[str, _Tries] = OrderedDict()
        self._lock = threading.Lock()

    def delay_after(self, failures: int) -> float:
        """Seconds a client must wait after ``failures`` wrong passwords in a row."""
        extra = failures - self.free_tries
        return 0.0 if extra <= 0 else min(self.max_delay_s, self.base_delay_s * 2 ** (extra - 1))

    def _get(self, key: str, now: float) -> _Tries:
        tries = self._tries.get(key)
        if tries is None:
            tries = self._tries[key] = _Tries()
            while len(self._tries) > self.max_clients:
                self._tries.popitem(last=False)
        else:
            self._tries.move_to_end(key)
        if tries.locked_until and now >= tries.locked_until:  # the lockout is over: a fresh start
            tries.failures, tries.locked_until = 0, 0.0
        return tries

    def refusal(self, keys: Sequence[str]) -> str | None:
        """Why a try from ``keys`` must be refused now (locked out, or too soon), or None."""
        now = self.clock()
        with self._lock:
            states = [self._get(k, now) for k in keys]
        locked = max((t.locked_until for t in states), default=0.0)
        if locked > now:
            at = datetime.fromtimestamp(locked, UTC).strftime("%H:%M UTC")
            minutes = max(1, round((locked - now) / 60))
            return (
                f"Sign-in is locked after {self.max_failures} wrong passwords: try again at {at} "
                f"(in about {minutes} min)."
            )
        ready = max((t.last_failure + self.delay_after(t.failures) for t in states), default=0.0)
        if ready > now:
            return f"Too many wrong passwords: wait {max(1, round(ready - now))} s before the next try."
        return None

    def failed(self, keys: Sequence[str]) -> str:
        """Count a wrong password for every key; lock (and log) keys that reached the limit. Returns
        the sentence to show."""
        now = self.clock()
        locked = []
        with self._lock:
            left = self.max_failures
            for key in keys:
                tries = self._get(key, now)
                tries.failures += 1
                tries.last_failure = now
                if tries.failures >= self.max_failures:
                    tries.locked_until = now + self.lockout_s
                    locked.append(key)
                left = min(left, self.max_failures - tries.failures)
        if locked:
            log.warning(
                "admin sign-in locked for %.0f min after %d wrong passwords: %s",
                self.lockout_s / 60,
                self.max_failures,
                ", ".join(locked),
            )
            return self.refusal(keys) or "That password is not right."
        if left <= self.max_failures - self.free_tries:
            return f"That password is not right ({left} tries left before a lockout)."
        return "That password is not right."

    def succeeded(self, keys: Sequence[str]) -> None:
        """A right password (outside a lockout): forget the keys' failures."""
        with self._lock:
            for key in keys:
                self._tries.pop(key, None)

    def __len__(self) -> int:
        return len(self._tries)


#: The one guard of this process (every browser session shares it).
GUARD = SignInGuard()


def client_keys() -> list[str]:
    """The keys a try is counted under: the client's IP when Streamlit knows it, and the session."""
    keys = []
    try:
        ip = st.context.ip_address
    except Exception:  # no client context (e.g. AppTest): the session alone
        ip = None
    if ip:
        keys.append(f"ip:{ip}")
    try:
        from streamlit.runtime.scriptrunner import get_script_run_ctx

        ctx = get_script_run_ctx()
        keys.append(f"session:{ctx.session_id if ctx else 'none'}")
    except Exception:  # Streamlit internals moved: the IP alone (or one shared key)
        keys.append("session:unknown")
    return keys


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
                keys = client_keys()
                guard = GUARD
                refused = guard.refusal(keys)  # before looking at the password: locked or too soon
                if refused:
                    st.error(refused)
                elif check_password(settings, attempt):
                    guard.succeeded(keys)
                    st.session_state[SESSION_KEY] = True
                    st.rerun()
                else:
                    st.error(guard.failed(keys))


def read_only_note(what: str) -> None:
    st.info(f"This is a read-only public demo: {what} needs the admin password (sidebar).", icon="🔒")
