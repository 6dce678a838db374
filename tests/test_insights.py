"""Insights analytics against hand-computed values (issue 13): drawdown, beta, correlation on common
sessions, the 52-week range, volatility, return and the returns distribution."""

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from pipeline import insights


def days(n: int, start: date = date(2025, 1, 1)) -> list[date]:
    return [start + timedelta(days=i) for i in range(n)]


def walk(n: int, seed: int = 1, scale: float = 1.0, start: date = date(2025, 1, 1)) -> pd.Series:
    rng = np.random.default_rng(seed)
    return pd.Series(100 * np.exp(np.cumsum(scale * rng.normal(0, 0.01, n))), index=days(n, start))


def test_drawdown_of_100_120_90_130_is_minus_25_from_120_to_90_recovered_at_130():
    close = pd.Series([100.0, 120.0, 90.0, 130.0], index=days(4))
    dd = insights.max_drawdown(close)
    assert dd.pct == pytest.approx(-25.0)
    assert (dd.peak, dd.trough, dd.recovery) == (120.0, 90.0, 130.0)
    assert (dd.peak_at, dd.trough_at, dd.recovered_at) == tuple(days(4)[1:])
    assert insights.drawdown(close).tolist() == pytest.approx([0.0, 0.0, -25.0, 0.0])


def test_drawdown_not_recovered_and_no_fall():
    dd = insights.max_drawdown(pd.Series([100.0, 120.0, 90.0, 110.0], index=days(4)))
    assert dd.pct == pytest.approx(-25.0) and not dd.recovered and dd.recovery is None
    flat = insights.max_drawdown(pd.Series([1.0, 2.0, 3.0], index=days(3)))
    assert flat.pct == 0.0 and not flat.recovered
    assert insights.max_drawdown(pd.Series([], dtype=float)) is None


def test_beta_to_itself_is_one_and_to_doubled_returns_is_two():
    bench = walk(300)
    same = insights.pair(bench, bench)
    assert same.beta == pytest.approx(1.0) and same.r == pytest.approx(1.0) and same.n == 299
    doubled = pd.Series(100 * np.exp(2 * np.log(bench / 100)), index=bench.index)  # log returns x 2
    p = insights.pair(doubled, bench)
    assert p.beta == pytest.approx(2.0) and p.r == pytest.approx(1.0)
    assert insights.pair(bench, doubled).beta == pytest.approx(0.5)


def test_correlation_uses_only_overlapping_sessions_and_is_blank_under_60():
    a = walk(200, seed=1)
    b = walk(200, seed=2, start=date(2025, 1, 1) + timedelta(days=120))  # 80 common days
    p = insights.pair(a, b)
    assert p.n == 79 and p.r is not None
    # the same numbers by hand on the common dates only
    common = a.index.intersection(b.index)
    ra, rb = np.diff(np.log(a[common].to_numpy())), np.diff(np.log(b[common].to_numpy()))
    assert p.r == pytest.approx(np.corrcoef(ra, rb)[0, 1])
    short = insights.pair(a, walk(200, seed=2, start=date(2025, 1, 1) + timedelta(days=150)))
    assert short.n == 49 and short.r is None and short.beta is None
    assert "49 common sessions" in short.reason and "60" in short.reason


def test_correlation_matrix_is_symmetric_with_counts_and_reasons():
    a, b = walk(200, seed=1), walk(200, seed=2)
    c = walk(200, seed=3, start=date(2025, 1, 1) + timedelta(days=170))
    wide = pd.concat([a.rename("A"), b.rename("B"), c.rename("C")], axis=1)
    m = insights.correlation_matrix(wide)
    assert m.r.loc["A", "A"] == pytest.approx(1.0)
    assert m.r.loc["A", "B"] == pytest.approx(m.r.loc["B", "A"])
    assert m.n.loc["A", "B"] == 199 and m.n.loc["A", "C"] == 29
    assert np.isnan(m.r.loc["A", "C"]) and "29 common sessions" in m.reason.loc["C", "A"]
    assert m.reason.loc["A", "B"] == ""


def test_52_week_position_zero_at_the_low_one_at_the_high_and_needs_a_year():
    close = walk(400)
    low = close.iloc[-365:].min()
    at_low = pd.concat([close, pd.Series([low * 0.9], index=[close.index[-1] + timedelta(days=1)])])
    yr = insights.year_range(at_low)
    assert yr.position == pytest.approx(0.0) and yr.low == pytest.approx(low * 0.9)
    top = pd.concat([close, pd.Series([close.max() * 1.1], index=[close.index[-1] + timedelta(days=1)])])
    assert insights.year_range(top).position == pytest.approx(1.0)
    short = insights.year_range(walk(23))
    assert short.position is None and short.reason.startswith("23 sessions stored")


def test_distance_from_high_volatility_and_return():
    close = pd.Series([100.0, 120.0, 90.0, 108.0], index=days(4))
    assert insights.from_high(close) == pytest.approx(-10.0)
    assert insights.from_high(close, high=216.0) == pytest.approx(-50.0)
    assert insights.range_return(close) == pytest.approx(8.0)
    r = np.diff(np.log(close.to_numpy()))
    assert insights.volatility(close) == pytest.approx(np.std(r, ddof=1) * np.sqrt(252) * 100)
    rolling = insights.rolling_volatility(walk(30))
    assert rolling.iloc[:20].isna().all() and rolling.iloc[20:].notna().all()


def test_annualisation_is_a_parameter_252_sessions_or_the_observed_bars_per_year():
    close = walk(30)  # 30 calendar days in a row: 29 returns over 29 days of a 24/7 market
    r = np.diff(np.log(close.to_numpy()))
    assert insights.SESSIONS_252.count(close) == 252
    assert insights.OBSERVED.count(close) == pytest.approx(365.25)
    assert insights.volatility(close, insights.OBSERVED) == pytest.approx(
        np.std(r, ddof=1) * np.sqrt(365.25) * 100
    )
    assert insights.volatility(close.iloc[:1], insights.OBSERVED) is None
    same_instant = pd.Series([1.0, 2.0, 3.0], index=[pd.Timestamp("2025-01-01", tz="UTC")] * 3)
    assert insights.OBSERVED.count(same_instant) is None  # no time elapses: no figure, not infinity
    assert insights.volatility(same_instant, insights.OBSERVED) is None


def test_distribution_moments_match_the_sample_estimators():
    close = walk(500, seed=7)
    d = insights.distribution(close)
    simple = close.pct_change().dropna() * 100
    assert d.n == 499
    assert d.mean == pytest.approx(simple.mean()) and d.std == pytest.approx(simple.std())
    n = d.n
    z = (simple - simple.mean()) / simple.std(ddof=0)
    g1 = (z**3).mean()
    assert d.skew == pytest.approx(g1 * np.sqrt(n * (n - 1)) / (n - 2))
    assert abs(d.excess_kurtosis) < 1.0  # a normal walk: excess kurtosis near 0
    assert insights.distribution(walk(3)).skew is None


def test_metrics_table_row_per_symbol_with_reasons():
    bench = walk(400, seed=1)
    wide = pd.concat([walk(400, seed=2).rename("A"), walk(23, seed=3).rename("NEW")], axis=1)
    table = insights.metrics(wide, bench, range_start=bench.index[-90])
    a, new = table.iloc[0], table.iloc[1]
    assert a["symbol"] == "A" and 0 <= a["position_52w"] <= 1 and a["beta"] is not None
    assert a["return_pct"] == pytest.approx(insights.range_return(wide["A"].iloc[-90:]))
    assert new["position_52w"] is None or np.isnan(new["position_52w"])
    assert "23 sessions stored" in new["note"] and "beta:" in new["note"]
