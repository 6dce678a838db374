"""Quote currencies: minor units shown in major units, unknown units marked, never guessed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd
import pytest

from pipeline.markets.currency import decimals, major, major_code, money
from ui import tables


def test_minor_units_are_shown_in_major_units_with_their_symbol():
    assert money(612.3, "GBp") == "£6.12"
    assert money(1259.5, "GBp") == "£12.60"  # OCDO.L as recorded
    assert money(612.3, "GBX") == "£6.12"
    assert money(4500, "ZAc") == "R 45.00"
    assert money(1200, "ILA") == "₪12.00"
    assert major(612.3, "GBp") == (pytest.approx(6.123), "GBP")


def test_major_units_are_not_scaled_and_case_matters():
    assert money(612.3, "GBP") == "£612.30"  # a GBP-quoted .L line (VUSA.L) is not scaled
    assert money(187.3, "USD") == "$187.30"
    assert money(2450, "JPY") == "¥2,450"
    assert money(91.2, "CHF") == "CHF 91.20"
    assert money(1.08345, "USD", digits=4) == "$1.0835"
    assert major_code("GBp") == "GBP" and major_code("GBP") == "GBP"


def test_an_unknown_currency_is_the_raw_number_marked_unit_unknown():
    assert money(612.3, "XYZ") == "612.30 (unit unknown)"
    assert money(612.3, None) == "612.30 (unit unknown)"
    assert major(612.3, "XYZ") == (612.3, None)


@dataclass
class Entry:
    symbol: str
    source: str = "yfinance"
    enabled: bool = True
    name: str = ""
    exchange: str = ""
    currency: str = "USD"
    timezone: str = "America/New_York"


def test_home_shows_each_line_in_its_provider_currency():
    now = datetime(2026, 11, 30, 11, 0, tzinfo=UTC)  # London open
    entries = [
        Entry("OCDO.L", currency="GBp", timezone="Europe/London", exchange="LSE"),
        Entry("VUSA.L", currency="GBP", timezone="Europe/London", exchange="LSE"),
        Entry("ODD.L", currency="QQQ", timezone="Europe/London", exchange="LSE"),
    ]
    quotes = pd.DataFrame(
        [
            {
                "symbol": s,
                "last": 612.3,
                "age_s": 5.0,
                "change": 1.5,
                "change_pct": 0.2,
                "day_low": 600.0,
                "day_high": 620.0,
                "volume": 1e5,
            }
            for s in ("OCDO.L", "VUSA.L", "ODD.L")
        ]
    )
    table = tables.watchlist_glance(entries, quotes, {}, 2.0, now)
    pence, pounds, odd = (table.iloc[i] for i in range(3))
    assert pence["Last"] == pytest.approx(6.123) and pence["Currency"] == "GBP"
    assert pence["Day range"] == "£6.00 – £6.20"
    assert pounds["Last"] == pytest.approx(612.3) and pounds["Day range"] == "£600.00 – £620.00"
    assert odd["Last"] == pytest.approx(612.3) and odd["Currency"] == "QQQ (unit unknown)"
    html = tables.color_changes(table).to_html()
    assert "£6.12" in html and "£612.30" in html and "+£0.01" in html


def test_home_in_a_base_currency_converts_at_the_rate_of_the_prices_session_date():
    from datetime import date

    now = datetime(2026, 11, 25, 11, 0, tzinfo=UTC)  # Wednesday, London open
    entries = [
        Entry("OCDO.L", currency="GBp", timezone="Europe/London", exchange="LSE"),
        Entry("AAPL"),
        Entry("SAP.DE", currency="EUR", timezone="Europe/Berlin", exchange="XETRA"),
    ]
    quotes = pd.DataFrame(
        [
            {
                "symbol": s,
                "last": 612.3,
                "age_s": 5.0,
                "change": 1.5,
                "change_pct": 0.2,
                "day_low": 600.0,
                "day_high": 620.0,
                "volume": 1e5,
            }
            for s in ("OCDO.L", "AAPL", "SAP.DE")
        ]
    )
    # Friday's rate exists but is later than Wednesday: Monday's is used
    rates = {"GBPUSD=X": [(date(2026, 11, 23), 1.31), (date(2026, 11, 27), 1.25)]}
    table = tables.watchlist_glance(entries, quotes, {}, 2.0, now, base="USD", rates=rates)
    pence, dollars, euros = (table.iloc[i] for i in range(3))
    assert pence["Last"] == pytest.approx(6.123 * 1.31) and pence["Currency"] == "USD ≈ FX of 2026-11-23"
    assert pence["Day range"] == "$7.86 – $8.12"
    assert dollars["Last"] == pytest.approx(612.3) and dollars["Currency"] == "USD"
    assert euros["Last"] == pytest.approx(612.3) and euros["Currency"] == "EUR (no EURUSD=X rate)"
    html = tables.color_changes(table).to_html()
    assert "≈ $8.02" in html and "€612.30" in html


def test_a_change_is_shown_with_its_prices_decimals():
    """Seen on a first start: AAPL at $204.22 moved "+$0.2700". A change takes its price's decimals;
    a penny stock's price and change keep 4, yen-like prices from 100 none."""
    assert decimals(204.22, "USD") == 2 and decimals(0.5, "USD") == 4 and decimals(2500, "JPY") == 0
    quotes = pd.DataFrame(
        [
            {"symbol": s, "last": last, "age_s": 5.0, "change": change, "change_pct": 0.1}
            for s, last, change in (
                ("AAPL", 204.22, 0.27),
                ("PNY", 0.5012, -0.0123),
                ("7203.T", 2500.0, 12.0),
            )
        ]
    )
    entries = [
        Entry("AAPL", currency="USD"),
        Entry("PNY", currency="USD"),
        Entry("7203.T", currency="JPY", timezone="Asia/Tokyo", exchange="TSE"),
    ]
    table = tables.watchlist_glance(entries, quotes, {}, 2.0, datetime(2026, 11, 30, 15, 0, tzinfo=UTC))
    styled = tables.color_changes(table)._translate(True, True)
    cells = [[c.get("display_value") for c in row] for row in styled["body"]]
    shown = [
        (r[1], r[3], r[4]) for r in cells
    ]  # Symbol, Last, Change (the styler's body has the index first)
    assert shown == [
        ("AAPL", "$204.22", "+$0.27"),
        ("PNY", "$0.5012", "-$0.0123"),
        ("7203.T", "¥2,500", "+¥12"),
    ]
