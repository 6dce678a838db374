"""The suite's own clock presets (tests/support/clock.py): each is the next such instant after the
given day, computed from the NYSE calendar for the holiday, never a date that has already passed."""

from __future__ import annotations

from datetime import date

import pytest
from support.clock import parse_instant, preset


@pytest.mark.parametrize(
    ("name", "today", "expected"),
    [
        ("saturday", date(2026, 12, 5), "2026-12-12T15:00:00+00:00"),  # a Saturday: the next one
        ("saturday", date(2026, 12, 6), "2026-12-12T15:00:00+00:00"),
        ("monday-before-us-open", date(2026, 12, 6), "2026-12-07T13:00:00+00:00"),
        ("monday-before-us-open", date(2026, 12, 7), "2026-12-14T13:00:00+00:00"),
        ("us-holiday", date(2026, 11, 20), "2026-11-26T16:00:00+00:00"),  # Thanksgiving
        ("us-holiday", date(2026, 12, 5), "2026-12-25T16:00:00+00:00"),  # Christmas
        ("us-holiday", date(2026, 12, 26), "2027-01-01T16:00:00+00:00"),  # New Year's Day
    ],
)
def test_presets_are_the_next_such_instant(name, today, expected):
    assert preset(name, today) == expected


def test_an_instant_is_not_a_preset_and_parses_as_utc():
    assert preset("2026-11-26T16:00Z", date(2026, 12, 5)) is None
    assert parse_instant("2026-11-26").isoformat() == "2026-11-26T00:00:00+00:00"
    with pytest.raises(ValueError):
        parse_instant("next tuesday")
