"""Crypto volume (issue 19, kind 3): Yahoo's streamer sends a crypto pair's ``day_volume`` as a
rolling 24-hour figure. A tick gets only the figure's increase since the previous frame (never the
whole figure after 00:00 UTC), and the daily bar's volume is the provider's daily bar."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from support.fake_market import FakeMarket
from test_recorded_yahoo import RECORDED, expected_bars
from yfinance.pricing_pb2 import PricingData

from pipeline.bars import BarBuilder
from pipeline.models import to_utc
from pipeline.sources.tick_volume import ROLLING_GAP_S
from pipeline.sources.yahoo import YahooSource
from pipeline.sources.yahoo_stream import CRYPTOCURRENCY, Decoder

#: The rolling figure seen for BTC-USD in the issue (about 88.7 billion): under the old rule the
#: whole of it went to the first tick after 00:00 UTC, a day-sized 1-minute bar.
ROLLING = 88_700_000_000


def frame(at: datetime, rolling_24h: int, symbol: str = "BTC-USD", quote_type: int = CRYPTOCURRENCY) -> str:
    data = PricingData(
        id=symbol,
        price=7200.17,
        time=int(at.timestamp() * 1000),
        day_volume=rolling_24h,
        quote_type=quote_type,
        currency="USD",
        price_hint=2,
    )
    return json.dumps({"message": base64.b64encode(data.SerializeToString()).decode()})


def stream(frames: list[tuple[datetime, int]], **kw) -> list:
    decoder = Decoder()
    return [decoder.decode(frame(at, figure, **kw), at + timedelta(seconds=1)) for at, figure in frames]


MIDNIGHT = datetime(2020, 1, 2, tzinfo=UTC)
FRAMES = [
    (MIDNIGHT - timedelta(seconds=10), ROLLING),  # joined: what traded before is not ours
    (MIDNIGHT - timedelta(seconds=5), ROLLING + 40_000),  # +40,000 traded (at least)
    (MIDNIGHT + timedelta(seconds=5), ROLLING - 10_000),  # more aged out than traded: 0, never negative
    (MIDNIGHT + timedelta(seconds=10), ROLLING + 20_000),  # +30,000; and 00:00 UTC is no session start
    (MIDNIGHT + timedelta(seconds=10 + ROLLING_GAP_S + 1), ROLLING + 900_000),  # after a gap: not placeable
    (MIDNIGHT + timedelta(seconds=80), ROLLING + 905_000),  # +5,000
]


@pytest.mark.parametrize("quote_type", [CRYPTOCURRENCY, 0])  # 0: no quote type; BTC-USD is 24/7 anyway
def test_a_crypto_tick_gets_the_rolling_figures_increase_never_the_figure(quote_type):
    volumes = [e.volume for e in stream(FRAMES, quote_type=quote_type)]
    assert volumes == [0, 40_000, 0, 30_000, 0, 5_000]


def test_an_equity_still_gets_its_cumulative_day_volume_reset_at_the_session():
    """The rule for session volumes is unchanged: a new session date's first frame is all new."""
    open_ny = datetime(2026, 11, 27, 14, 30, tzinfo=UTC)
    frames = [(open_ny - timedelta(days=1), 5_000_000), (open_ny, 1_000)]
    assert [e.volume for e in stream(frames, symbol="AAPL", quote_type=8)] == [0, 1_000]


def test_daily_crypto_volume_is_the_providers_daily_bar_not_the_streams_sum(store, tmp_path):
    """The recorded BTC-USD daily chart (2020-01-01/02) as the provider's daily bars, the stream's
    ticks around 00:00 UTC on top, then the real bar builder: every 1-minute bar holds at most what
    the figure's increases say, and each day's volume is the recording's."""
    name = "chart-BTC-USD-2020-01-01-to-2020-01-03.json"
    _, recorded = expected_bars(name)
    with FakeMarket() as fake:
        fake.serve_recorded(RECORDED / name)
        source = YahooSource(tmp_path / "yf-cache", timeout=10.0, base_url=fake.url)
        daily = source.backfill(
            "BTC-USD", datetime(2020, 1, 1, tzinfo=UTC), MIDNIGHT + timedelta(days=1), "1d"
        )
    assert daily.errors == {}
    store.write_events(daily.events)
    store.write_events(stream(FRAMES))
    BarBuilder(store).run_once()

    minutes = {to_utc(b["ts"]): b["volume"] for b in store.bars.find({"symbol": "BTC-USD", "interval": "1m"})}
    assert minutes == {
        MIDNIGHT - timedelta(minutes=1): 40_000,
        MIDNIGHT: 30_000,
        MIDNIGHT + timedelta(minutes=1): 5_000,
    }
    days = {b["session"]: b["volume"] for b in store.bars.find({"symbol": "BTC-USD", "interval": "1d"})}
    assert days == {day.isoformat(): float(volume) for day, _, volume in recorded[:2]}
    print(f"\n1m volumes around 00:00 UTC: {sorted(minutes.values())}; daily: {days}")
