"""What a user typed, made safe to check and to quote back.

Guarantees:
- ``clip(text)`` is at most ``limit`` characters (default ``ECHO_LIMIT``) plus "…": a refusal never
  echoes a 5,000-character entry whole.
- ``parse_symbol(text)`` returns a symbol matching ``pipeline.models.SYMBOL_PATTERN`` or raises
  ``InvalidEvent`` with a sentence that quotes the entry clipped. Only ASCII is accepted *before*
  upper-casing, so no Unicode case mapping can turn one letter into others (``"ﬁ".upper()`` is
  ``"FI"``); surrounding white space is stripped.
"""

from __future__ import annotations

from .models import SYMBOL_PATTERN, InvalidEvent

#: How many characters of a user's entry a message quotes.
ECHO_LIMIT = 40

SYMBOL_HELP = (
    "use 1-20 characters from A-Z, 0-9 and . - ^ =, at least one letter or digit "
    "(for example AAPL, BRK-B, 7203.T, ^GSPC, EURUSD=X)"
)


def clip(text: object, limit: int = ECHO_LIMIT) -> str:
    """``text`` as a string of at most ``limit`` characters, with "…" when it was cut."""
    s = "" if text is None else str(text)
    return s if len(s) <= limit else s[:limit] + "…"


def quoted(text: object, limit: int = ECHO_LIMIT) -> str:
    """The clipped entry in quotes for a sentence: ``'AAPL '`` (``repr``, so control characters show)."""
    return repr(clip(text, limit))


def parse_symbol(text: object) -> str:
    """A user-typed ticker, stripped and upper-cased; ``InvalidEvent`` (reason quoting the clipped
    entry) when it is not text, not ASCII, or does not match ``SYMBOL_PATTERN``."""
    raw = text.strip() if isinstance(text, str) else ""
    if not raw:
        raise InvalidEvent("a ticker is required (for example AAPL)")
    if not raw.isascii():
        raise InvalidEvent(f"{quoted(raw)} is not a valid ticker: only ASCII characters; {SYMBOL_HELP}")
    symbol = raw.upper()
    if not SYMBOL_PATTERN.match(symbol):
        raise InvalidEvent(f"{quoted(raw)} is not a valid ticker: {SYMBOL_HELP}")
    return symbol
