"""What a user typed, made safe to check and to quote back.

Guarantees:
- ``clip(text)`` is at most ``limit`` characters (default ``ECHO_LIMIT``) plus "…": a refusal never
  echoes a 5,000-character entry whole.
- A typed ticker is checked by ``pipeline.models.normalize_symbol`` (one rule for users, files and
  providers), whose refusals quote the entry clipped to the same ``ECHO_LIMIT``.
"""

from __future__ import annotations

from .models import ECHO_LIMIT

__all__ = ["ECHO_LIMIT", "clip"]


def clip(text: object, limit: int = ECHO_LIMIT) -> str:
    """``text`` as a string of at most ``limit`` characters, with "…" when it was cut."""
    s = "" if text is None else str(text)
    return s if len(s) <= limit else s[:limit] + "…"
