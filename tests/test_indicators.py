"""The chart-indicator registry drives the candlestick charts (Live, History): every indicator
computes its values on its input's index, NaN through its declared warm-up and finite after it, adds
exactly the traces it declares (what ``bytes_per_point`` sizes a chart by) in its colours, on the price
axis or a panel of its own, and the Live page's warm-up settles it. A new indicator is one registry
entry; this test covers it without changes."""

import math

import numpy as np
import pandas as pd
import pytest

from ui import charts
from ui.indicators import INDICATORS, warmup


def minute_bars(n: int = 400, seed: int = 3, start: str = "2025-03-03 14:30") -> pd.DataFrame:
    """A realistic day of 1-minute bars: a random walk around 100 with positive volume, indexed from
    1000 (so a formula that confuses labels with positions shows)."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    open_ = np.r_[close[0], close[:-1]]
    spread = np.abs(rng.normal(0, 0.0005, n)) * close
    return pd.DataFrame(
        {
            "ts": pd.date_range(start, periods=n, freq="min", tz="UTC"),
            "open": open_,
            "high": np.maximum(open_, close) + spread,
            "low": np.minimum(open_, close) - spread,
            "close": close,
            "volume": rng.integers(100, 5000, n).astype(float),
        },
        index=pd.RangeIndex(1000, 1000 + n),
    )


def chart_input(bars: pd.DataFrame) -> pd.DataFrame:
    """What ``charts.candles`` passes ``compute``: the bars with their session date."""
    return bars.assign(session=bars["ts"].dt.date)


@pytest.mark.parametrize("name", list(INDICATORS))
def test_every_indicator_computes_on_the_input_index_nan_only_through_its_lookback(name):
    spec = INDICATORS[name]
    assert spec.placement in ("overlay", "panel") and spec.lookback >= 0
    frame = chart_input(minute_bars())
    before = frame.copy()
    values = spec.compute(frame)
    pd.testing.assert_frame_equal(frame, before)  # no mutation
    assert set(values) == {t.key for t in spec.draw}  # every value drawn, every trace has a value
    for key, series in values.items():
        assert series.index.equals(frame.index), key
        assert np.isfinite(series.iloc[spec.lookback :].to_numpy(dtype=float)).all(), key
        if spec.lookback:
            assert math.isnan(series.iloc[0]), key  # warm-up is NaN, never zero
    if spec.lookback:  # the lookback is exact: the slowest value is still NaN just before it
        assert any(math.isnan(s.iloc[spec.lookback - 1]) for s in values.values())


@pytest.mark.parametrize("name", list(INDICATORS))
def test_every_indicator_adds_exactly_its_traces_in_its_colours(name):
    spec = INDICATORS[name]
    bars = minute_bars(1000)
    fig = charts.candles(bars, symbol="A", interval_s=60, indicators=[name])
    assert len(fig.data) == 2 + spec.traces == 2 + len(spec.draw)
    drawn = [t for t in fig.data if t.name not in ("A", "Volume")]
    assert [t.name for t in drawn] == [t.label for t in spec.draw]
    axis = "y" if spec.placement == "overlay" else "y3"
    assert {t.yaxis for t in drawn} == {axis}
    if spec.placement == "panel":
        assert fig.layout.yaxis3.title.text == name
    colours = tuple(None if t.type == "bar" else t.line.color for t in drawn)
    assert colours == spec.colours
    # the byte estimate a page sizes its point cap by counts these traces
    assert len(fig.to_json()) / 1000 == pytest.approx(charts.bytes_per_point([name]), rel=0.25)


@pytest.mark.parametrize("name", list(INDICATORS))
def test_the_live_warmup_gives_every_indicator_a_value_on_the_first_visible_bar(name):
    spec = INDICATORS[name]
    bars = minute_bars()
    # queries.recent_bars fetches ``warmup`` intervals before the window; the first visible bar sits
    # one interval before the window start, so warmup - 1 bars come before it
    first = warmup([name]) - 1
    assert first >= spec.lookback
    fig = charts.candles(
        bars, symbol="A", interval_s=60, indicators=[name], visible_from=bars["ts"].iloc[first]
    )
    for trace in fig.data[1:]:
        if trace.name != "Volume":
            assert np.isfinite(trace.y[0]), trace.name


def test_warmup_is_the_slowest_chosen_lookback_plus_the_spare():
    assert warmup([]) == 0 and warmup(["not an indicator"]) == 0
    assert warmup(INDICATORS) == 40  # MACD: what the Live page always fetched
    assert warmup(["SMA 20", "RSI"]) == warmup(["SMA 20"]) > warmup(["RSI"])
