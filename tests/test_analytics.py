"""Indicators and statistics of pipeline.analytics against values worked out by hand."""

import math

import numpy as np
import pandas as pd
import pytest

from pipeline import analytics as a
from pipeline import insights


def series(values):
    return pd.Series(values, dtype=float)


def test_sma_has_nan_warmup_then_the_plain_mean():
    out = a.sma(series([1, 2, 3, 4, 5]), 3)
    assert out.isna().tolist() == [True, True, False, False, False]
    assert out.iloc[2:].tolist() == [2.0, 3.0, 4.0]


def test_ema_is_the_recursive_form_seeded_at_the_first_value():
    close = series([10, 11, 12, 13, 14, 15])
    out = a.ema(close, 3)
    alpha = 2 / (3 + 1)
    expected = [10.0]
    for x in close.iloc[1:]:
        expected.append(alpha * x + (1 - alpha) * expected[-1])
    assert out.isna().tolist()[:2] == [True, True]
    assert out.iloc[2:].tolist() == pytest.approx(expected[2:])


def test_bollinger_bands_are_sma_plus_minus_k_population_std():
    close = series([1, 2, 3, 4])
    bands = a.bollinger(close, n=4, k=2)
    std = np.std([1, 2, 3, 4])  # population
    assert bands["mid"].iloc[-1] == pytest.approx(2.5)
    assert bands["upper"].iloc[-1] == pytest.approx(2.5 + 2 * std)
    assert bands["lower"].iloc[-1] == pytest.approx(2.5 - 2 * std)
    flat = a.bollinger(series([5] * 25), n=20)
    assert flat["upper"].iloc[-1] == flat["lower"].iloc[-1] == 5.0


def test_vwap_restarts_each_session():
    bars = pd.DataFrame(
        {
            "ts": pd.to_datetime(["2025-01-02 10:00", "2025-01-02 10:01", "2025-01-03 10:00"], utc=True),
            "high": [11.0, 13.0, 21.0],
            "low": [9.0, 11.0, 19.0],
            "close": [10.0, 12.0, 20.0],
            "volume": [100.0, 300.0, 50.0],
        }
    )
    out = a.vwap(bars)
    assert out.iloc[0] == pytest.approx(10.0)
    assert out.iloc[1] == pytest.approx((10 * 100 + 12 * 300) / 400)
    assert out.iloc[2] == pytest.approx(20.0)  # a new day starts over
    zero = a.vwap(bars.assign(volume=0.0))
    assert zero.isna().all()


def test_rsi_wilder_extremes_and_a_hand_computed_value():
    assert a.rsi(series(range(1, 30)), 14).iloc[-1] == pytest.approx(100.0)
    assert a.rsi(series(range(30, 1, -1)), 14).iloc[-1] == pytest.approx(0.0)
    assert a.rsi(series([7] * 30), 14).iloc[-1] == pytest.approx(50.0)
    # n=2 by hand: deltas +1, -1, +2; Wilder averages (alpha 1/2) seeded at the first delta:
    # gains 1 -> 0.5 -> 1.25, losses 0 -> 0.5 -> 0.25, so RS = 5 at the end
    out = a.rsi(series([1, 2, 1, 3]), 2)
    assert out.isna().tolist() == [True, True, False, False]
    assert out.iloc[2] == pytest.approx(50.0)
    assert out.iloc[3] == pytest.approx(100 - 100 / (1 + 5))


def test_macd_is_fast_minus_slow_ema_and_signal_starts_after_warmup():
    close = series(np.linspace(100, 130, 80) + np.sin(np.arange(80)))
    out = a.macd(close)
    expected = a.ema(close, 12) - a.ema(close, 26)
    pd.testing.assert_series_equal(out["macd"], expected, check_names=False)
    assert out["macd"].first_valid_index() == 25
    assert out["signal"].first_valid_index() == 25 + 8
    assert (out["hist"] - (out["macd"] - out["signal"])).abs().max() < 1e-12


def test_normalise_is_one_at_the_first_valid_value():
    out = a.normalise(series([np.nan, 50, 75, 100]))
    assert out.tolist()[1:] == [1.0, 1.5, 2.0]


def test_stats_on_a_known_series():
    ts = pd.date_range("2025-01-01", periods=5, freq="D", tz="UTC")
    bars = pd.DataFrame(
        {"ts": ts, "close": [100.0, 110.0, 99.0, 120.0, 108.0], "volume": [10.0, 20.0, 30.0, 40.0, 50.0]}
    )
    out = a.stats(bars)
    assert out["return_pct"] == pytest.approx(8.0)
    assert out["max_drawdown_pct"] == pytest.approx((99 / 110 - 1) * 100)
    assert out["avg_volume"] == 30.0
    assert out["best_pct"] == pytest.approx((120 / 99 - 1) * 100) and out["best_at"] == ts[3]
    assert out["worst_pct"] == pytest.approx((99 / 110 - 1) * 100) and out["worst_at"] == ts[2]
    log_returns = np.diff(np.log(bars["close"]))
    per_year = 4 / (4 / 365.25)  # four daily returns over four days of a 24/7 market
    assert out["volatility_pct"] == pytest.approx(np.std(log_returns, ddof=1) * math.sqrt(per_year) * 100)


def test_stats_takes_return_volatility_and_drawdown_from_insights_with_its_convention():
    ts = pd.date_range("2025-01-01", periods=60, freq="D", tz="UTC")
    close = pd.Series(100 * np.exp(np.cumsum(np.random.default_rng(4).normal(0, 0.01, 60))), index=ts)
    bars = pd.DataFrame({"ts": ts, "close": close.to_numpy(), "volume": 1.0})
    observed, sessions = a.stats(bars), a.stats(bars, insights.SESSIONS_252)
    assert observed["volatility_pct"] == insights.volatility(close, insights.OBSERVED)
    assert sessions["volatility_pct"] == insights.volatility(close)  # the Insights page's figure
    assert observed["return_pct"] == insights.range_return(close)
    assert observed["max_drawdown_pct"] == insights.max_drawdown(close).pct


def test_stats_of_short_or_empty_series_say_none_not_zero():
    empty = a.stats(pd.DataFrame({"ts": [], "close": [], "volume": []}))
    assert empty["bars"] == 0 and empty["return_pct"] is None
    one = a.stats(
        pd.DataFrame({"ts": pd.to_datetime(["2025-01-01"], utc=True), "close": [5.0], "volume": [1.0]})
    )
    assert one["return_pct"] is None and one["max_drawdown_pct"] == 0.0


def test_stats_table_has_one_row_per_symbol_in_order():
    ts = pd.date_range("2025-01-01", periods=3, freq="h", tz="UTC")
    frame = pd.concat(
        [
            pd.DataFrame({"symbol": "B", "ts": ts, "close": [1.0, 2.0, 3.0], "volume": 1.0}),
            pd.DataFrame({"symbol": "A", "ts": ts, "close": [4.0, 2.0, 1.0], "volume": 2.0}),
        ]
    )
    table = a.stats_table(frame)
    assert table["symbol"].tolist() == ["B", "A"]
    assert table["return_pct"].tolist() == pytest.approx([200.0, -75.0])


def test_indicators_do_not_mutate_their_input():
    bars = pd.DataFrame(
        {
            "ts": pd.date_range("2025-01-01", periods=40, freq="min", tz="UTC"),
            "high": 2.0,
            "low": 1.0,
            "close": np.linspace(1, 2, 40),
            "volume": 5.0,
        }
    )
    before = bars.copy()
    a.sma(bars["close"]), a.ema(bars["close"]), a.bollinger(bars["close"]), a.vwap(bars)
    a.rsi(bars["close"]), a.macd(bars["close"]), a.stats(bars)
    pd.testing.assert_frame_equal(bars, before)
