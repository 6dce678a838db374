"""Formatting for pages: prices, changes, volumes, ages and times, the same way everywhere.

Guarantees: every function accepts ``None``/NaN and returns "–" for it instead of raising; nothing here
imports Streamlit, so it is usable (and tested) anywhere.

``literal(text)`` makes any text safe to pass to Streamlit's Markdown (``st.error``, ``st.caption``,
``st.toast`` ...): every ASCII punctuation character is backslash-escaped (CommonMark allows that for
all of them), so nothing a user typed becomes an image, a link, emphasis, LaTeX (``$``), a directive
or HTML; what GitHub-flavoured Markdown would link by itself (``http://...``, ``www.``, e-mail
addresses) becomes a code span instead (escapes do not stop those). It is shown character for
character. Line breaks stay line breaks.
"""

from __future__ import annotations

import re
import string

# durations and instants as text live with the pipeline (the command line prints them too)
from pipeline.timetext import DASH as DASH
from pipeline.timetext import age as age
from pipeline.timetext import local_time as local_time
from pipeline.timetext import missing as missing
from pipeline.timetext import since as since
from pipeline.timetext import until as until
from ui.theme import THEME_DOWN, THEME_UP

_PUNCTUATION = re.compile("([" + re.escape(string.punctuation) + "])")
_INDENT = re.compile(r"^[ \t]+")
#: What GitHub-flavoured Markdown turns into a link by itself (URLs, www., e-mail addresses).
_AUTOLINK = re.compile(r"(?i)(?:https?://|www\.|mailto:|xmpp:)\S*|[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def literal(text) -> str:
    """``text`` escaped for Streamlit Markdown so it renders literally (see the module docstring).
    Leading blanks become character references, so an indented line is not a code block."""
    if missing(text):
        return DASH
    lines = str(text).splitlines() or [""]
    out = []
    for line in lines:
        parts, at = [], 0
        for m in _AUTOLINK.finditer(line):  # GFM would link these even escaped: code spans instead
            parts += [_PUNCTUATION.sub(r"\\\1", line[at : m.start()]), _code_span(m.group(0))]
            at = m.end()
        escaped = "".join(parts) + _PUNCTUATION.sub(r"\\\1", line[at:])
        out.append(_INDENT.sub(lambda m: m.group(0).replace(" ", "&#32;").replace("\t", "&#9;"), escaped))
    return "  \n".join(out)


def _code_span(text: str) -> str:
    """``text`` as a Markdown code span shown exactly (a fence longer than any backtick run in it)."""
    fence = "`" * (max((len(r) for r in re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def count(n: int, noun: str) -> str:
    """ "1 active rule", "0 active rules", "3 symbols": an English count with a regular plural."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def price(x, currency: str = "") -> str:
    if missing(x):
        return DASH
    digits = 2 if abs(x) >= 1 else 4
    text = f"{x:,.{digits}f}"
    return f"{text} {currency}".strip() if currency and currency != "USD" else text


def change(x) -> str:
    return DASH if missing(x) else f"{x:+,.2f}"


def pct(x, digits: int = 2) -> str:
    return DASH if missing(x) else f"{x:+.{digits}f}%"


def volume(x) -> str:
    """Compact volume: 950, 12.3K, 4.56M, 1.2B."""
    if missing(x):
        return DASH
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(x) >= size:
            return f"{x / size:.{1 if abs(x) >= 10 * size else 2}f}{suffix}"
    return f"{x:,.0f}"


def duration_ms(x) -> str:
    if missing(x):
        return DASH
    return f"{x:,.0f} ms" if x >= 10 else f"{x:.1f} ms"


def direction_color(x) -> str:
    if missing(x) or x == 0:
        return ""
    return THEME_UP if x > 0 else THEME_DOWN
