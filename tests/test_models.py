"""Price-event validation: every rule rejects with a reason; good events round-trip exactly."""

import json
import math
from datetime import UTC, datetime, timedelta

import pytest

from pipeline.models import InvalidEvent, PriceEvent, decode, normalize_symbol, validate

NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)


def wire(**changes) -> dict:
    base = PriceEvent(
        symbol="AAPL",
        interval="1m",
        ts=NOW - timedelta(minutes=1),
        open=10,
        high=12,
        low=9,
        close=11,
        volume=100,
        source="test",
        fetched_at=NOW,
    ).to_wire()
    base.update(changes)
    return base


@pytest.mark.parametrize(
    "symbol", ["AAPL", "BRK-B", "7203.T", "VOD.L", "^GSPC", "EURUSD=X", "BTC-USD", "A" * 20]
)
def test_symbols_of_every_market_are_accepted(symbol):
    assert validate(wire(symbol=symbol), now=NOW).symbol == symbol


@pytest.mark.parametrize(
    "changes,reason",
    [
        ({"symbol": "aapl"}, "does not match"),
        ({"symbol": "A" * 21}, "does not match"),
        ({"symbol": "AA PL"}, "does not match"),
        ({"close": math.inf, "high": math.inf}, "high is not finite"),
        ({"open": math.nan}, "open is not finite"),
        ({"low": 0.0, "open": 0.0}, "open must be positive"),
        ({"low": -1.0}, "low must be positive"),
        ({"high": 8.0}, "high 8.0 is below low 9.0"),
        ({"open": 13.0}, "open 13.0 is outside [low 9.0, high 12.0]"),
        ({"close": 8.5}, "close 8.5 is outside [low 9.0, high 12.0]"),
        ({"volume": -1}, "volume must not be negative"),
        ({"volume": "10"}, "volume is missing or not a number"),
        ({"ts": "2026-11-24T15:02:00Z"}, "is more than a minute in the future"),
        ({"ts": "yesterday"}, "is not an ISO-8601 timestamp"),
        ({"schema": 2}, "unknown schema version 2"),
        ({"schema": True}, "unknown schema version True"),
        ({"interval": "3m"}, "interval '3m' is not one of"),
        ({"source": ""}, "source is missing"),
    ],
)
def test_each_rule_rejects_with_a_reason(changes, reason):
    with pytest.raises(InvalidEvent) as info:
        validate(wire(**changes), now=NOW)
    assert reason in info.value.reason


def test_decode_rejects_bytes_that_are_not_json_objects():
    for value, reason in [
        (b"\xff\xfe\x00", "value is not JSON"),
        (b"[1,2]", "not a JSON object"),
        (None, "tombstone"),
        (b'{"schema": 1}', "symbol None"),
    ]:
        with pytest.raises(InvalidEvent, match=reason):
            decode(value, now=NOW)


def test_round_trip_through_wire_and_document_is_exact():
    event = PriceEvent(
        symbol="7203.T",
        interval="tick",
        ts=datetime(2026, 11, 24, 1, 2, 3, 456789, UTC),
        open=2500,
        high=2500,
        low=2500,
        close=2500,
        volume=300,
        source="yfinance",
        exchange="Tokyo",
        currency="JPY",
        timezone="Asia/Tokyo",
        fetched_at=NOW,
    )
    assert event.ts.microsecond == 456000  # milliseconds, as BSON keeps them
    assert decode(event.to_json_bytes(), now=NOW) == event
    assert validate(event.to_document(), now=NOW) == event
    assert json.loads(event.to_json_bytes())["ts"] == "2026-11-24T01:02:03.456Z"


def test_normalize_symbol_for_user_input():
    assert normalize_symbol("  brk-b ") == "BRK-B"
    with pytest.raises(InvalidEvent, match="not a valid ticker"):
        normalize_symbol("APPLE INC")
