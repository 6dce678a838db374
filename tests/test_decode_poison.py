"""Issue 9, found-item 1 at the decoder: whatever a Kafka message holds, ``decode`` returns an event or
raises ``InvalidEvent`` with a reason naming the field, never anything else (property-tested)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.models import InvalidEvent, PriceEvent, decode, validate

CASES = Path(__file__).parent / "data" / "cases"
NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
GOOD = PriceEvent.tick(
    "AAPL", datetime(2026, 11, 20, 14, 30, tzinfo=UTC), 100.0, 1, "test", fetched_at=NOW
).to_wire()


def reason_of(value: bytes) -> str:
    with pytest.raises(InvalidEvent) as info:
        decode(value, now=NOW)
    return info.value.reason


def test_the_case_file_epoch_milliseconds_is_an_invalid_event_that_says_milliseconds():
    raw = (CASES / "kafka_poison_epoch_ms_ts.json").read_bytes()
    reason = reason_of(raw)
    assert reason.startswith("ts 1795185000000 looks like epoch milliseconds"), reason
    assert "2026-11-20T14:30:00.000Z" in reason  # what it would have meant, to help the producer's owner
    # the same event with the timestamp in seconds is valid: only the unit was wrong
    fixed = {**json.loads(raw), "ts": 1795185000000 / 1000}
    assert decode(json.dumps(fixed).encode(), now=NOW).ts == datetime(2026, 11, 20, 14, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"ts": 1795185000000}, "ts 1795185000000 looks like epoch milliseconds"),
        ({"ts": 1795185000000000}, "looks like epoch microseconds"),
        ({"ts": 1795185000000000000}, "looks like epoch nanoseconds"),
        ({"ts": 10**400}, "ts 1000000000000000000000000000000000000... is not a plausible epoch time"),
        ({"ts": 1e300}, "is not a plausible epoch time"),
        ({"ts": -1}, "ts -1 is before 1970"),
        ({"ts": "0001-01-01T00:00:00+05:00"}, "ts '0001-01-01T00:00:00+05:00' cannot be represented in UTC"),
        ({"ts": "9999-12-31T23:59:59-05:00"}, "cannot be represented in UTC"),
        ({"ts": "1969-12-31T23:59:59Z"}, "ts 1969-12-31T23:59:59.000Z is before 1970"),
        ({"ts": "58857-01-01T00:00:00Z"}, "is not an ISO-8601 timestamp"),
        ({"ts": [1, 2]}, "ts is missing or not a timestamp"),
        ({"fetched_at": 1795185000000}, "fetched_at 1795185000000 looks like epoch milliseconds"),
        ({"fetched_at": {"$date": 1}}, "fetched_at is missing or not a timestamp"),
        ({"close": 10**400, "high": 10**400}, "is out of range (at most 1e+15)"),
        ({"volume": 10**400}, "volume 1000000000000000000000000000000000000... is out of range"),
        ({"volume": 1e300}, "volume 1e+300 is out of range"),
        ({"schema": [1]}, "unknown schema version [1]"),
        ({"schema": {"v": 1}}, "unknown schema version"),
        ({"interval": ["tick"]}, "interval ['tick'] is not one of"),
        ({"interval": {"a": 1}}, "is not one of"),
        ({"symbol": {"$gt": ""}}, "symbol {'$gt': ''} does not match"),
        ({"source": ["x"]}, "source must be a short string"),
        ({"currency": 7}, "currency must be a short string"),
    ],
)
def test_values_that_overflow_or_have_the_wrong_type_become_reasons_naming_the_field(changes, reason):
    got = reason_of(json.dumps({**GOOD, **changes}).encode())
    assert reason in got, got


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"\xff\xfe\xfa", "value is not JSON"),
        (b'{"symbol": "\xc3\x28"}', "value is not JSON: UnicodeDecodeError"),
        (b"[" * 100_000, "value is not JSON: RecursionError"),
        (b"1" * 5000, "value is not JSON: ValueError"),
        (b'{"a": NaN}', "unknown schema version None"),  # Python's json parses NaN; validate refuses
        (b"[1, 2]", "message is not a JSON object"),
        (b"", "value is not JSON"),
        (None, "tombstone"),
        (json.dumps({**GOOD, "open": math.inf}).encode(), "open is not finite (inf)"),
    ],
)
def test_bytes_that_are_not_a_json_object_become_reasons(value, reason):
    got = reason_of(value)
    assert reason in got, got


def test_nan_and_infinity_in_numbers_are_refused():
    for name in ("open", "volume"):
        for text in ("NaN", "Infinity", "-Infinity"):
            value = json.dumps(GOOD).replace(f'"{name}": {json.dumps(GOOD[name])}', f'"{name}": {text}')
            assert text in value
            assert f"{name} is not finite" in reason_of(value.encode())


# -- properties -------------------------------------------------------------------------------------
EXAMPLES = settings(
    max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**450), max_value=10**450)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
    | st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat())
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
#: Every field of a price event set to a valid value or to an arbitrary JSON value, so that the checks
#: deep inside ``validate`` are reached, not only the first one.
field_values = {name: st.one_of(st.just(value), json_values, json_scalars) for name, value in GOOD.items()}
near_events = st.fixed_dictionaries({}, optional=field_values)


def assert_event_or_reason(value) -> None:
    try:
        event = decode(value, now=NOW)
    except InvalidEvent as exc:
        assert exc.reason and isinstance(exc.reason, str)
        return
    assert isinstance(event, PriceEvent)
    assert validate(event.to_wire(), now=NOW) == event  # what passes is a real event


@EXAMPLES
@given(near_events)
def test_any_json_object_near_an_event_decodes_or_gives_a_reason(raw):
    assert_event_or_reason(json.dumps(raw).encode())


@EXAMPLES
@given(json_values)
def test_any_json_value_decodes_or_gives_a_reason(raw):
    assert_event_or_reason(json.dumps(raw).encode())


@EXAMPLES
@given(st.binary(max_size=300))
def test_any_bytes_decode_or_give_a_reason(value):
    assert_event_or_reason(value)


@EXAMPLES
@given(near_events, st.integers(min_value=0, max_value=400), st.binary(min_size=1, max_size=4))
def test_a_valid_looking_message_with_bytes_spliced_in_decodes_or_gives_a_reason(raw, at, junk):
    text = json.dumps(raw).encode()
    at = min(at, len(text))
    assert_event_or_reason(text[:at] + junk + text[at:])
