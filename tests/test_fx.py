"""Base-currency conversion: the rate of the bar's own session date, carried at most 5 days, never later."""

from __future__ import annotations

from datetime import date

import pytest

from pipeline.markets import fx

RATES = {"GBPUSD=X": [(date(2026, 11, 20), 1.30), (date(2026, 11, 23), 1.31), (date(2026, 11, 27), 1.25)]}


def test_pairs_are_named_in_major_units():
    assert fx.pair("GBp", "USD") == "GBPUSD=X" and fx.pair("JPY", "USD") == "JPYUSD=X"
    assert fx.pair("USD", "USD") is None and fx.pair("XYZ", "USD") is None
    assert fx.needed_pairs(["GBp", "GBP", "USD", "EUR", "???"], "USD") == ["EURUSD=X", "GBPUSD=X"]


def test_a_conversion_never_uses_a_rate_from_a_later_date():
    # 612.3 pence on Wednesday 25 Nov: Monday's rate (the latest not later), not Friday's
    amount, when = fx.convert(612.3, "GBp", "USD", RATES, date(2026, 11, 25))
    assert amount == pytest.approx(6.123 * 1.31) and when == date(2026, 11, 23)
    assert fx.convert(612.3, "GBp", "USD", RATES, date(2026, 11, 27))[1] == date(2026, 11, 27)
    assert fx.convert(100.0, "GBP", "USD", RATES, date(2026, 11, 19)) is None  # before any rate
    for day in range(20, 31):
        result = fx.convert(1.0, "GBP", "USD", RATES, date(2026, 11, day))
        assert result is not None and result[1] is not None and result[1] <= date(2026, 11, day)


def test_a_rate_is_carried_at_most_five_days():
    assert fx.convert(1.0, "GBP", "USD", RATES, date(2026, 12, 2))[1] == date(2026, 11, 27)
    assert fx.convert(1.0, "GBP", "USD", RATES, date(2026, 12, 3)) is None


def test_the_base_currency_and_unknown_units():
    assert fx.convert(5.0, "USD", "USD", RATES, date(2026, 11, 25)) == (5.0, None)
    assert fx.convert(5.0, "XYZ", "USD", RATES, date(2026, 11, 25)) is None


def test_bars_convert_at_their_own_session_date_and_unconvertible_ones_are_left_out():
    import pandas as pd

    frame = pd.DataFrame(
        [
            {
                "symbol": "OCDO.L",
                "interval": "1d",
                "ts": pd.Timestamp(f"2026-11-{d}", tz="UTC"),
                "open": 600.0,
                "high": 620.0,
                "low": 590.0,
                "close": 612.3,
                "volume": 1.0,
            }
            for d in (19, 23, 25, 27)
        ]
        + [
            {
                "symbol": "AAPL",
                "interval": "1d",
                "ts": pd.Timestamp("2026-11-27", tz="UTC"),
                "open": 1.0,
                "high": 2.0,
                "low": 1.0,
                "close": 2.0,
                "volume": 1.0,
            }
        ]
    )
    out, notes = fx.convert_bars(
        frame,
        {"OCDO.L": "GBp", "AAPL": "USD"},
        {"OCDO.L": "Europe/London", "AAPL": "America/New_York"},
        "USD",
        RATES,
    )
    ocdo = out[out.symbol == "OCDO.L"]
    assert list(ocdo["fx_date"]) == [date(2026, 11, 23), date(2026, 11, 23), date(2026, 11, 27)]
    assert list(ocdo["close"]) == pytest.approx([6.123 * 1.31, 6.123 * 1.31, 6.123 * 1.25])
    assert notes == {
        "OCDO.L": "OCDO.L: 1 bar left out (no GBPUSD=X rate within 5 days)"
    }  # the 19th: no earlier rate
    assert out[out.symbol == "AAPL"]["close"].tolist() == [2.0]
