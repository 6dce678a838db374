"""Per-tick volume from a provider's cumulative volume figure (Yahoo's streamer ``day_volume``, its
quote API's ``regularMarketVolume``), one tracker per source instance.

Guarantees:
- A session figure (stocks, funds, indices, FX: the volume of the exchange's current session) gives
  a tick the increase since the symbol's previous figure: 0 for the first figure a process sees of
  a session (what traded before is not ours to attribute to this tick), the figure itself for the
  first one of a new session date (exchange time zone), never negative: a figure below the
  session's highest so far (a stale answer) gives 0 and leaves the baseline where it was, so the
  volume it hides is counted once, when a higher figure comes.
- A rolling 24-hour figure (crypto: ``quote_type`` CRYPTOCURRENCY, or a 24/7 market) falls as trades
  age out and has no daily reset. A tick gets only the figure's increase since the symbol's previous
  figure, and only when that one is at most ``ROLLING_GAP_S`` old (over a longer gap the increase
  cannot be placed in one minute: 0); the first figure after 00:00 UTC is no session start. The
  increase is a lower bound of what traded between the two figures, never more. A figure of 0 (the
  provider sent none) is never a baseline.
- Volumes are in the provider's units: shares or contracts for listed instruments; for Yahoo's crypto
  pairs the quote currency's value traded (BTC-USD's 24-hour figure is in USD).
- Polling slower than ``ROLLING_GAP_S`` (more than 100 symbols in quote batches, or a poll interval
  over 60 s) gives crypto ticks volume 0; their daily volume still comes from the daily bar.
"""

from __future__ import annotations

from datetime import date, datetime

from ..markets.calendars import session_date

#: Longest gap (s) between two rolling 24-hour figures whose difference is still credited to a tick.
ROLLING_GAP_S = 60.0


class TickVolume:
    """Cumulative figures -> per-tick volumes, per symbol (not thread-safe: one caller per instance)."""

    def __init__(self) -> None:
        self._session: dict[str, tuple[date, int]] = {}
        self._rolling: dict[str, tuple[datetime, int]] = {}  # symbol -> (previous figure's ts, figure)

    def session(self, symbol: str, ts: datetime, tz: str, figure: int) -> int:
        """Volume of a tick at ``ts`` (aware) from the session figure ``figure``; ``tz`` is the
        exchange's IANA time zone (its session date decides when a new session starts)."""
        day = session_date(ts, tz)
        previous = self._session.get(symbol)
        if previous is None or previous[0] != day:
            self._session[symbol] = (day, max(0, figure))
            return 0 if previous is None else max(0, figure)
        # a lower figure (a stale answer) is no new baseline: what it hides is counted once, later
        self._session[symbol] = (day, max(previous[1], figure))
        return max(0, figure - previous[1])

    def rolling(self, symbol: str, ts: datetime, figure: int) -> int:
        """Volume of a tick at ``ts`` (aware) from the rolling 24-hour figure ``figure``."""
        if figure <= 0:
            return 0
        previous = self._rolling.get(symbol)
        self._rolling[symbol] = (ts, figure)
        if previous is None or (ts - previous[0]).total_seconds() > ROLLING_GAP_S:
            return 0
        return max(0, figure - previous[1])
