"""ui.format: one way to write prices, changes, volumes and ages, and never a crash on missing values."""

import math
import tomllib
from datetime import UTC, datetime
from pathlib import Path

from ui import format as fmt
from ui import theme


def test_missing_values_are_a_dash():
    for f in (fmt.price, fmt.change, fmt.pct, fmt.volume, fmt.age, fmt.duration_ms):
        assert f(None) == fmt.DASH and f(math.nan) == fmt.DASH
    assert fmt.since(None) == fmt.until(None) == fmt.local_time(None) == fmt.DASH


def test_numbers():
    assert fmt.price(1234.5) == "1,234.50" and fmt.price(0.012345) == "0.0123"
    assert fmt.price(10, "JPY") == "10.00 JPY" and fmt.price(10, "USD") == "10.00"
    assert fmt.change(1.234) == "+1.23" and fmt.change(-0.5) == "-0.50"
    assert fmt.pct(-1.5) == "-1.50%"
    assert [fmt.volume(v) for v in (950, 12_345, 4_560_000, 1.2e9)] == ["950", "12.3K", "4.56M", "1.20B"]
    assert (
        fmt.direction_color(1) == theme.THEME_UP
        and fmt.direction_color(-1) == theme.THEME_DOWN
        and fmt.direction_color(0) == ""
    )


def test_ages_and_times():
    assert [fmt.age(s) for s in (4, 190, 7500, 3 * 86400)] == ["4 s", "3 min", "2 h 5 min", "3 d"]
    assert fmt.since(100.0, now=160.0) == "1 min ago"
    assert fmt.until(100.0, now=100.2) == "now" and fmt.until(130.0, now=100.0) == "in 30 s"
    ts = datetime(2025, 7, 1, 14, 30, tzinfo=UTC)
    assert fmt.local_time(ts, "America/New_York") == "10:30:00 EDT"
    assert fmt.local_time(ts.replace(tzinfo=None), "UTC", with_date=True) == "2025-07-01 14:30:00 UTC"


def test_text_colours_are_the_streamlit_themes_green_and_red():
    """ui.theme's text colours and .streamlit/config.toml's greenColor/redColor are one choice written twice."""
    config = tomllib.loads((Path(__file__).parent.parent / ".streamlit" / "config.toml").read_text())
    assert (config["theme"]["greenColor"], config["theme"]["redColor"]) == (theme.THEME_UP, theme.THEME_DOWN)
