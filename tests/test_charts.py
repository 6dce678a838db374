"""ui.charts: closed-market range breaks only where the data has them, panels on one time axis,
volume coloured by direction, indicators settled by warm-up bars."""

import numpy as np
import pandas as pd
import pytest

from ui import charts, theme


def session_minutes(days: int = 5, start: str = "2025-03-03") -> pd.Series:
    """US-style 1-minute bars, 9:30-16:00 local, weekdays only (naive local times)."""
    out = []
    for day in pd.date_range(start, periods=days + 2, freq="D"):
        if day.weekday() < 5:
            out.append(pd.date_range(day + pd.Timedelta(hours=9, minutes=30), periods=390, freq="min"))
    return pd.Series(np.concatenate(out))


def test_no_breaks_for_a_24_7_market_or_continuous_data():
    x = session_minutes()
    assert charts.closed_market_breaks(x, 60, always_open=True) == []
    continuous = pd.Series(pd.date_range("2025-03-01", periods=5000, freq="min"))  # spans a weekend
    assert charts.closed_market_breaks(continuous, 60, always_open=False) == []


def test_session_data_gets_night_and_weekend_breaks():
    breaks = charts.closed_market_breaks(session_minutes(days=7), 60, always_open=False)
    assert dict(bounds=["sat", "mon"]) in breaks
    assert dict(bounds=[16.0, 9.5], pattern="hour") in breaks


def test_a_weekday_holiday_is_broken_out():
    x = session_minutes(days=5)
    x = x[pd.to_datetime(x).dt.date != pd.Timestamp("2025-03-05").date()]  # Wednesday closed
    holidays = [b for b in charts.closed_market_breaks(x, 60, always_open=False) if "values" in b]
    assert holidays == [dict(values=["2025-03-05"], dvalue=86400000)]


def test_daily_bars_break_weekends_only_when_they_are_missing():
    weekdays = pd.Series(pd.bdate_range("2025-03-03", periods=20))
    assert charts.closed_market_breaks(weekdays, 86400, always_open=False) == [dict(bounds=["sat", "mon"])]
    every_day = pd.Series(pd.date_range("2025-03-03", periods=20, freq="D"))
    assert charts.closed_market_breaks(every_day, 86400, always_open=False) == []


def bars(n=120, start="2025-03-03 14:30", freq="min"):
    rng = np.random.default_rng(1)
    close = 100 + np.cumsum(rng.normal(0, 0.1, n))
    open_ = np.r_[100, close[:-1]]
    return pd.DataFrame(
        {
            "ts": pd.date_range(start, periods=n, freq=freq, tz="UTC"),
            "open": open_,
            "high": np.maximum(open_, close) + 0.05,
            "low": np.minimum(open_, close) - 0.05,
            "close": close,
            "volume": rng.integers(100, 1000, n).astype(float),
        }
    )


def test_candles_share_one_time_axis_and_colour_volume_by_direction():
    frame = bars()
    fig = charts.candles(
        frame, symbol="AAPL", interval_s=60, indicators=["RSI", "MACD"], tz="America/New_York"
    )
    assert {t.xaxis or "x" for t in fig.data} == {"x"}  # one time axis for every panel
    assert [t.yaxis for t in fig.data] == ["y", "y2", "y3", "y4", "y4", "y4"]
    assert fig.layout.hovermode == "x unified" and fig.layout.hoversubplots == "axis"
    volume = fig.data[1]
    up = (frame["close"] >= frame["open"]).to_numpy()
    assert list(volume.marker.color) == up.astype(int).tolist()
    assert volume.marker.colorscale == ((0.0, theme.CHART_DOWN), (1.0, theme.CHART_UP))
    first = pd.Timestamp(fig.data[0].x[0], unit="ms")  # float64 ms on a date axis, New York local time
    assert first == pd.Timestamp("2025-03-03 09:30") and fig.layout.xaxis.type == "date"
    assert fig.layout.yaxis.domain[0] > fig.layout.yaxis2.domain[1] > fig.layout.yaxis3.domain[1]


def test_payload_is_typed_arrays_and_the_byte_estimate_holds():
    for indicators in ([], list(charts.INDICATORS)):
        fig = charts.candles(bars(1000), symbol="A", interval_s=60, indicators=indicators)
        text = fig.to_json()
        assert '"bdata"' in text and "2025-03-03T" not in text  # no list of date strings
        assert len(text) / 1000 == pytest.approx(charts.bytes_per_point(indicators), rel=0.25)
    assert charts.live_point_cap([]) == 1500
    assert 500 < charts.live_point_cap(list(charts.INDICATORS)) < 1000


def test_visible_from_trims_after_indicators_are_computed():
    frame = bars(200)
    cut = frame["ts"].iloc[100]
    fig = charts.candles(frame, symbol="A", interval_s=60, indicators=["SMA 20"], visible_from=cut)
    sma = next(t for t in fig.data if t.name == "SMA 20")
    assert len(sma.y) == 100 and not np.isnan(sma.y[0])


def test_lines_normalise_each_symbol_to_one():
    a, b = bars(50).assign(symbol="A"), bars(50).assign(symbol="B", close=lambda d: d["close"] * 3)
    fig = charts.lines(pd.concat([a, b]), interval_s=60, normalise=True)
    assert [t.name for t in fig.data] == ["A", "B"]
    assert all(t.y[0] == pytest.approx(1.0) for t in fig.data)
    assert charts.figure_points(fig) == 50


def test_daily_comparison_across_markets_keeps_days_only_one_market_was_closed():
    # AAPL closed on Thanksgiving (26 Nov), 7203.T closed on 23 Nov (Labour Thanksgiving, observed 24th)
    days = {
        "AAPL": ["2026-11-23", "2026-11-24", "2026-11-25", "2026-11-27"],
        "7203.T": ["2026-11-25", "2026-11-26", "2026-11-27"],
    }
    rows = [
        {"symbol": s, "ts": pd.Timestamp(d, tz="UTC"), "close": 100.0 + i}
        for s, ds in days.items()
        for i, d in enumerate(ds)
    ]
    fig = charts.lines(pd.DataFrame(rows), interval_s=86400, normalise=True, always_open=False)
    aapl, toyota = fig.data
    assert len(aapl.x) == 5 and len(toyota.x) == 3  # Toyota's line starts at its own first session
    assert list(aapl.customdata) == ["", "", "", " (closed)", ""]
    assert aapl.y[3] == aapl.y[2]  # carried across Thanksgiving, for display only
    assert toyota.y[0] == 1.0  # normalised on its own first session


def test_pre_market_and_after_hours_are_shaded_on_intraday_candles():
    """Issue 19, kind 4: Yahoo's 1m chart of a US listing holds 04:00-09:30 and 16:00-20:00 rows;
    the chart shades them (as TradingView and Yahoo do), a market without extended hours shows none."""
    from datetime import UTC, datetime

    import pandas as pd

    from pipeline.markets.calendars import market_for
    from ui import charts

    ts = pd.Series(pd.date_range(datetime(2024, 10, 2, 8, 0, tzinfo=UTC), periods=960, freq="1min"))
    bars = pd.DataFrame({"ts": ts, "open": 225.0, "high": 226.0, "low": 224.0, "close": 225.5, "volume": 1e4})
    spans = charts.extended_hours_spans(ts, 60, lambda d: None, "America/New_York")
    assert spans == []  # no session that day: nothing to shade
    fig = charts.candles(bars, symbol="AAPL", interval_s=60, tz="America/New_York", always_open=False,
                         market=market_for("AAPL"))  # fmt: skip
    shaded = [(s.x0, s.x1) for s in fig.layout.shapes if s.name == "extended"]
    local = [charts.epoch_ms(pd.Series(pd.to_datetime([a, b]))) for a, b in (
        ("2024-10-02 04:00", "2024-10-02 09:30"), ("2024-10-02 16:00", "2024-10-02 20:00"))]  # fmt: skip
    assert shaded == [(float(a), float(b)) for a, b in local]
    assert charts.shades_extended_hours(fig)
    daily = charts.candles(bars, symbol="AAPL", interval_s=86400, tz="America/New_York", always_open=False,
                           market=market_for("AAPL"))  # fmt: skip
    assert not charts.shades_extended_hours(daily)
    around_the_clock = charts.candles(bars, symbol="AAPL", interval_s=60, tz="America/New_York", always_open=True,
                                      market=market_for("AAPL"))  # fmt: skip
    assert not charts.shades_extended_hours(around_the_clock)  # a simulator trading 24/7: no session to shade


def test_a_few_daily_bars_are_labelled_by_date_not_by_hour():
    """Five sessions (SAP.DE's week in CI on 2026-12-06): Plotly's own ticks fell every 12 hours,
    "00:00" and "12:00" under daily bars; a short daily span gets one tick per day as "Dec 4"."""
    week = bars(5, start="2026-11-30", freq="D")
    fig = charts.candles(week, symbol="SAP.DE", interval_s=86400, always_open=False)
    assert (fig.layout.xaxis.dtick, fig.layout.xaxis.tickformat) == (86_400_000, "%b %-d")
    compared = charts.lines(week.assign(symbol="SAP.DE"), interval_s=86400, normalise=True)
    assert (compared.layout.xaxis.dtick, compared.layout.xaxis.tickformat) == (86_400_000, "%b %-d")
    year = charts.candles(bars(250, start="2025-12-01", freq="B"), symbol="SAP.DE", interval_s=86400)
    minutes = charts.candles(bars(120), symbol="SAP.DE", interval_s=60)
    for fig in (year, minutes):  # Plotly's own ticks: months for a year, times for a morning
        assert fig.layout.xaxis.dtick is None and fig.layout.xaxis.tickformat is None
