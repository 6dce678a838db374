"""Walk-forward backtests of the forecast models (issue 14): leakage canary and interval coverage on
the simulator's random walk, a trend + seasonality series won by a non-naive model, the champion
rule's sentence, truncation invariance at the function level, the Wilson interval."""

from __future__ import annotations

import time

import numpy as np
import pytest
from support.forecast import simulated_daily, trend_season

from pipeline.forecast.backtest import backtest, champion, forecast, origin_indexes, qualifies, wilson
from pipeline.forecast.models import MODELS

SYMBOLS = [f"SIM{k:02d}" for k in range(20)]


# 20 symbols x 21 refits x 5 models: ~1 min alone, several on a loaded 2-core machine
@pytest.fixture(scope="module")
def random_walk_rows():
    """Backtests of every model on 20 simulated symbols (20 origins at the 20-session horizon)."""
    started = time.perf_counter()
    out = {}
    for symbol in SYMBOLS:
        closes, dates = simulated_daily(symbol, 180)
        out[symbol] = backtest(closes, dates, origins=20)
    print(f"\n20 symbols x {len(MODELS)} models walk-forward: {time.perf_counter() - started:.1f} s")
    return out


def pooled(rows_by_symbol: dict, model: str, horizon: int) -> tuple[float, float]:
    """(skill, 95% coverage) of one model at one horizon pooled over every symbol's origins."""
    mae = naive = covered = n = 0.0
    for rows in rows_by_symbol.values():
        row = next(r for r in rows if r["model"] == model and r["horizon"] == horizon)
        base = next(r for r in rows if r["model"] == "naive" and r["horizon"] == horizon)
        mae += row["mae"] * row["origins"]
        naive += base["mae"] * base["origins"]
        covered += row["cover95"] * row["origins"]
        n += row["origins"]
    return 1 - mae / naive, covered / n


@pytest.mark.timeout(1200)
@pytest.mark.slow  # soak tier: a minute of refits, out of the one-minute unit loop
def test_leakage_canary_no_model_beats_the_random_walk(random_walk_rows):
    for model in MODELS:
        for horizon in (1, 5, 20):
            skill, _ = pooled(random_walk_rows, model, horizon)
            print(f"{model:6s} h={horizon:2d} skill {skill * 100:+.2f}%")
            assert skill <= 0.03, (
                f"{model} beats a random walk at {horizon} sessions: skill {skill:+.3f} (leak?)"
            )
    assert all(r["origins"] >= 20 for rows in random_walk_rows.values() for r in rows)


@pytest.mark.slow
def test_95_interval_covers_90_to_99_percent_on_the_simulator(random_walk_rows):
    for horizon in (1, 5, 20):
        _, cover = pooled(random_walk_rows, "naive", horizon)
        print(f"naive h={horizon:2d} 95% coverage {cover * 100:.1f}%")
        assert 0.90 <= cover <= 0.99, f"95% interval covered {cover:.1%} at {horizon} sessions"


@pytest.mark.slow
def test_random_walk_draws_naive_with_the_sentence(random_walk_rows):
    # over ~20 origins a model can clear +2% skill on one symbol by luck (here 2-4 of 20 symbols per
    # horizon, with the floors and the newest libraries alike); the rule must pick naive for the great
    # majority. The strict leak test is the pooled skill above.
    for horizon in (1, 5, 20):
        picks = {s: champion(rows, horizon, s) for s, rows in random_walk_rows.items()}
        naive = [s for s, p in picks.items() if p["model"] == "naive"]
        print(f"h={horizon:2d}: naive drawn for {len(naive)}/20 symbols")
        assert len(naive) >= 14, {s: p["model"] for s, p in picks.items()}
        sentence = picks[naive[0]]["sentence"]
        assert sentence.startswith(
            f"No model beat 'next close = last close' for {naive[0]} at {horizon} "
            f"{'session' if horizon == 1 else 'sessions'} by 2% with honest 95% bands over the last"
        )
        closest = sorted(
            (r for r in random_walk_rows[naive[0]] if r["horizon"] == horizon and r["model"] != "naive"),
            key=lambda r: r["mase"],
        )[0]
        naive_mase = next(
            r["mase"] for r in random_walk_rows[naive[0]] if r["horizon"] == horizon and r["model"] == "naive"
        )
        # the closest *other* model, in words that agree with the table (where naive may rank first)
        assert (
            f"; the closest was {closest['label']}: skill {closest['skill'] * 100:+.1f}% (MASE "
            f"{closest['mase']:.2f} against naive's {naive_mase:.2f}), " in sentence
        ), sentence


@pytest.fixture(scope="module")
def trend_rows():
    """The trend + seasonality series and its default backtest, read (never changed) by two tests: a
    pure function of the closes, so computing it once gives both the rows each would compute."""
    closes, dates = trend_season()
    return closes, dates, backtest(closes, dates)


def test_trend_and_seasonality_is_won_by_a_non_naive_model(trend_rows):
    closes, dates, rows = trend_rows
    pick = champion(rows, 5, "TREND")
    assert pick["model"] != "naive", pick
    winner = next(r for r in rows if r["model"] == pick["model"] and r["horizon"] == 5)
    assert qualifies(winner) and winner["skill"] >= 0.02 and 0.90 <= winner["cover95"] <= 0.99
    naive = next(r for r in rows if r["model"] == "naive" and r["horizon"] == 5)
    assert winner["mase"] < naive["mase"]
    path = forecast(closes)["paths"][pick["model"]]
    assert path[19] > closes[-1] * 1.03  # it carries the trend forward; naive would stay flat


def test_truncation_invariance_of_a_pure_backtest():
    closes, dates = simulated_daily("SIM00", 200)
    cut = 185
    a = backtest(closes[:cut], dates[:cut], origins=20)
    b = backtest(closes[:cut], dates[:cut], origins=20)
    assert a == b
    longer = backtest(closes, dates, origins=20)
    assert longer != a  # the later bars do change a later as-of: the comparison can fail


def test_origins_and_metrics_shape(trend_rows):
    idx = origin_indexes(250)
    assert len(idx) == 28 and idx[-1] == 248 and sum(1 for t in idx if t + 20 <= 249) == 24
    with pytest.raises(ValueError, match="too few"):
        origin_indexes(100)
    _, _, rows = trend_rows
    assert {(r["model"], r["horizon"]) for r in rows} == {(m, h) for m in MODELS for h in (1, 5, 20)}
    naive = [r for r in rows if r["model"] == "naive"]
    assert all(r["skill"] == 0.0 and r["hit_rate"] is None for r in naive)
    assert all(r["width95"] > r["width80"] > 0 for r in rows)


def test_wilson_interval():
    lo, hi = wilson(15, 20)
    assert lo == pytest.approx(0.531, abs=1e-3) and hi == pytest.approx(0.888, abs=1e-3)
    assert wilson(0, 0) == (None, None)
    assert np.isclose(wilson(20, 20)[1], 1.0)


def test_the_naive_verdict_names_the_closest_other_model_as_the_table_ranks_them():
    """Walk-through: the verdict said "(best: Random walk with drift, MASE 2.50)" while the table
    right below ranked Naive first (2.498) and the drift model second (2.502). The sentence names the
    closest *other* model against naive's own MASE, the numbers unchanged."""
    row = {"horizon": 5, "origins": 27, "cover95": 0.95}
    rows = [
        {**row, "model": "naive", "label": "Naive", "mase": 2.498, "skill": 0.0},
        {**row, "model": "drift", "label": "Random walk with drift", "mase": 2.502, "skill": -0.002},
        {**row, "model": "ses", "label": "Exponential smoothing", "mase": 2.61, "skill": -0.04},
    ]
    pick = champion(rows, 5, "AAPL")
    assert pick["model"] == "naive"
    assert pick["sentence"] == (
        "No model beat 'next close = last close' for AAPL at 5 sessions by 2% with honest 95% bands over "
        "the last 27 origins; the closest was Random walk with drift: skill -0.2% (MASE 2.50 against "
        "naive's 2.50), short of +2%."
    )


def test_a_closest_model_below_naives_mase_says_which_test_it_failed():
    """Review: "No model beat ... the closest was Theta, MASE 2.40 against naive's 2.50" read as a
    contradiction: Theta had the better MASE but 95% bands that covered too little. The sentence says
    what "beat" means, the closest model's signed skill and the test it failed."""
    row = {"horizon": 5, "origins": 27}
    rows = [
        {**row, "model": "naive", "label": "Naive", "mase": 2.50, "skill": 0.0, "cover95": 0.95},
        {**row, "model": "theta", "label": "Theta", "mase": 2.40, "skill": 0.04, "cover95": 0.85},
    ]
    pick = champion(rows, 5, "AAPL")
    assert pick["model"] == "naive"
    assert pick["sentence"] == (
        "No model beat 'next close = last close' for AAPL at 5 sessions by 2% with honest 95% bands over "
        "the last 27 origins; the closest was Theta: skill +4.0% (MASE 2.40 against naive's 2.50), but "
        "its 95% band covered 85% of outcomes, outside 90-99%."
    )
