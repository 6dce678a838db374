"""Insights page through AppTest with a seeded store: every chart, the metrics table and its CSV,
the treemap's % change equal to the Home table's Change %, the view in the URL, and sentences
instead of tracebacks when history is short or missing."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from support.market_data import seed_daily
from support.pages import (
    app,
    assert_clean,
    configure,
    fragments,
    full_runs,
    plain,
    plotly_specs,
    seeded_store,
    texts,
    tick,
    values,
)

from pipeline import insights, queries
from pipeline.watchlist import Watchlist
from ui import tables

SYMBOLS = ["AAPL", "MSFT", "NVDA", "AMZN", "GOOG", "META"]
BENCH = "^GSPC"


@pytest.fixture
def seeded(stack, tmp_path, app_env, monkeypatch):
    settings = configure(stack, tmp_path, app_env, monkeypatch)
    with seeded_store(settings, [*SYMBOLS, BENCH, "NEW"]) as (store, _):
        frame = seed_daily(store, [*SYMBOLS, BENCH], sessions=300)
        seed_daily(store, ["NEW"], sessions=23)
        yield settings, store, frame


def grid(z) -> np.ndarray:
    """A heatmap's z as a 2-D array (plotly sends it as a typed array with a shape)."""
    if isinstance(z, dict):
        rows, cols = (int(n) for n in z["shape"].split(","))
        return np.array(values(z), dtype=float).reshape(rows, cols)
    return np.array(z, dtype=float)


def wide_of(frame: pd.DataFrame) -> pd.DataFrame:
    """The closes of the last year (the page's default 1Y range)."""
    wide = insights.closes_wide(frame)
    start = datetime.now(UTC).date() - timedelta(days=365)
    return wide[[d >= start for d in wide.index]]


def test_insights_draws_every_chart_and_the_metrics(seeded):
    _, store, frame = seeded
    at = app("insights", query={"symbols": ",".join(SYMBOLS), "benchmark": BENCH, "range": "1Y"}).run()
    assert_clean(at)
    specs = plotly_specs(at)
    kinds = [s["data"][0]["type"] for s in specs]
    assert kinds == ["treemap", "scatter", "heatmap", "scatter", "bar"], kinds
    # relative performance: every line starts at 1, the benchmark is dashed, outperformance below
    relative = specs[1]
    names = [t["name"] for t in relative["data"]]
    assert names[:7] == [*SYMBOLS, f"{BENCH} (benchmark)"]
    for trace in relative["data"][:7]:
        assert values(trace["y"])[0] == pytest.approx(1.0)
    assert sum(1 for t in relative["data"] if t.get("yaxis") == "y2") == len(SYMBOLS)
    # correlation: 7 x 7, diagonal 1, hover carries r and n
    heat = specs[2]["data"][0]
    z = grid(heat["z"])
    assert z.shape == (7, 7) and np.diag(z) == pytest.approx([1.0] * 7)
    assert z[0, 6] == pytest.approx(insights.pair(wide_of(frame)["AAPL"], wide_of(frame)[BENCH]).r)
    assert "common sessions" in heat["customdata"][0][1]
    # metrics table: one row per symbol, beta/corr to the benchmark as pipeline.insights computes them
    table = at.dataframe[0].value
    assert table["symbol"].tolist() == SYMBOLS
    wide = insights.closes_wide(frame)
    year = wide[[d >= wide.index[-1] - timedelta(days=365) for d in wide.index]]  # beta: one year
    want = insights.pair(year["AAPL"], year[BENCH])
    assert table.iloc[0]["beta"] == pytest.approx(want.beta, rel=1e-6)
    assert 0 <= table.iloc[0]["position_52w"] <= 1
    assert [b.label for b in at.get("download_button")] == ["⬇️ Download the metrics as CSV"]
    assert "Skew" in [m.label for m in at.metric] and "Excess kurtosis" in [m.label for m in at.metric]
    q = dict(at.query_params)
    assert q["symbols"] == ",".join(SYMBOLS) and q["benchmark"] == BENCH and q["range"] == "1Y"


def test_treemap_change_equals_the_home_tables_change_pct(seeded):
    settings, store, _ = seeded
    at = app("insights").run()
    assert_clean(at)
    tree = plotly_specs(at)[0]["data"][0]
    by_label = dict(zip(tree["labels"], tree["marker"]["colors"], strict=True))
    entries = Watchlist(store.watchlist, None).entries()
    symbols = tuple(e.symbol for e in entries)
    glance = tables.watchlist_glance(entries, queries.quotes(store, symbols), {}, settings.poll_seconds)
    for symbol, pct in zip(glance["Symbol"], glance["Change %"], strict=True):
        assert not pd.isna(pct)
        assert by_label[symbol] == pytest.approx(pct, abs=1e-9), symbol
    home = app("home").run()
    home_table = home.dataframe[0].value.set_index("Symbol")["Change %"]
    for symbol in symbols:
        assert by_label[symbol] == pytest.approx(home_table[symbol], abs=1e-9), symbol


def test_insights_short_history_is_a_sentence_and_benchmark_default_by_market(seeded):
    at = app("insights", query={"symbols": "NEW,AAPL", "range": "3M"}).run()
    assert_clean(at)
    assert "NEW has 23 sessions stored; the 52-week range, beta and correlation need one year" in texts(at)
    table = at.dataframe[0].value
    assert "23 sessions stored" in table.set_index("symbol").loc["NEW", "note"]
    assert at.selectbox(key="ins_bench").value == BENCH  # a US listing: the S&P 500
    # correlation of NEW with others: 22 returns, blank with the reason
    heat = plotly_specs(at)[2]["data"][0]
    assert np.isnan(grid(heat["z"])[0, 1]) and "22 common sessions" in heat["customdata"][0][1]


def test_insights_benchmark_not_on_the_watchlist_offers_to_add_it(stack, tmp_path, app_env, monkeypatch):
    settings = configure(stack, tmp_path, app_env, monkeypatch)
    with seeded_store(settings, ["7203.T"]) as (store, _):
        seed_daily(store, ["7203.T"], sessions=120)
        at = app("insights").run()
        assert_clean(at)
        assert at.selectbox(key="ins_bench").value == "^N225"  # Tokyo's benchmark
        assert "The benchmark ^N225 is not on the watchlist yet" in plain(texts(at))
        assert any(plain(b.label) == "Add ^N225 to the watchlist" for b in at.button)
        assert len(plotly_specs(at)) >= 2  # the treemap and the drawdown still draw
        next(b for b in at.button if plain(b.label) == "Add ^N225 to the watchlist").click().run()
        assert_clean(at)
        assert "^N225" in {e.symbol for e in Watchlist(store.watchlist, None).entries()}
        assert "is not on the watchlist yet" not in texts(at)
        assert "^N225 has no daily bars stored yet" in texts(at)


def test_insights_benchmark_also_picked_as_a_symbol(seeded):
    at = app("insights", query={"symbols": f"AAPL,{BENCH}", "benchmark": BENCH}).run()
    assert_clean(at)
    names = [t["name"] for t in plotly_specs(at)[1]["data"]]
    assert names[:2] == ["AAPL", f"{BENCH} (benchmark)"]
    assert at.dataframe[0].value.set_index("symbol").loc[BENCH, "beta"] == pytest.approx(1.0)


def test_insights_benchmark_from_the_url_must_be_a_ticker(seeded):
    at = app("insights", query={"symbols": "AAPL", "benchmark": "**bold**<b>x</b>"}).run()
    assert_clean(at)
    assert at.selectbox(key="ins_bench").value == BENCH  # not a ticker: the market's default instead
    at = app("insights", query={"symbols": "AAPL", "benchmark": "^ftse"}).run()
    assert at.selectbox(key="ins_bench").value == "^FTSE"


def test_insights_symbol_without_bars_is_a_sentence(stack, tmp_path, app_env, monkeypatch):
    settings = configure(stack, tmp_path, app_env, monkeypatch)
    with seeded_store(settings, ["AAPL"]):
        at = app("insights").run()
        assert_clean(at)
        assert "need at least two sessions: AAPL 0 sessions" in texts(at)
        tree = plotly_specs(at)[0]["data"][0]
        assert "loading history…" in [row[2] for row in tree["customdata"]]


def test_insights_days_old_history_says_so_and_shows_no_none(stack, tmp_path, app_env, monkeypatch):
    """Symbols with three sessions: no empty correlation chart, a sentence; blank metrics are NaN."""
    settings = configure(stack, tmp_path, app_env, monkeypatch)
    with seeded_store(settings, ["AAPL", "MSFT"]) as (store, _):
        seed_daily(store, ["AAPL", "MSFT"], sessions=3)
        at = app("insights").run()
        assert_clean(at)
        assert "No pair has 60 common sessions of returns" in texts(at)
        assert [s["data"][0]["type"] for s in plotly_specs(at)] == ["treemap", "scatter"]  # + drawdown
        table = at.dataframe[0].value
        for col in ("high_52w", "beta", "corr", "vol_21d_pct"):
            assert table[col].dtype == float and table[col].isna().all(), col
        assert at.dataframe[0].proto.placeholder == "–"  # shown as "–", not the grid's "None"


def line_colours(spec: dict) -> dict[str, set[str]]:
    """Symbol -> the line colours of its traces in a figure (legend group = symbol; marks excluded)."""
    out: dict[str, set[str]] = {}
    for t in spec["data"]:
        if t.get("mode") == "lines" and t.get("legendgroup"):
            out.setdefault(t["legendgroup"], set()).add(t["line"]["color"])
    return out


@pytest.mark.parametrize("picked", [SYMBOLS, ["AAPL", BENCH, "MSFT"]])
def test_each_symbol_has_one_colour_on_every_chart_and_no_two_share_one(seeded, picked):
    """Walk-through: in Drawdown AAPL and META were the same teal, MSFT and AMZN the same purple,
    and none matched the benchmark chart above. One colour per symbol across the page's charts."""
    at = app("insights", query={"symbols": ",".join(picked), "benchmark": BENCH, "range": "1Y"}).run()
    assert_clean(at)
    specs = plotly_specs(at)
    relative, drawdown = line_colours(specs[1]), line_colours(specs[3])
    assert set(drawdown) == set(picked)
    for symbol in picked:
        assert len(relative[symbol]) == 1 and relative[symbol] == drawdown[symbol], symbol
    colours = [next(iter(drawdown[s])) for s in picked]
    assert len(set(colours)) == len(picked), dict(zip(picked, colours, strict=True))


def test_a_loading_history_redraws_the_page_by_itself_when_it_is_stored(
    stack, tmp_path, app_env, monkeypatch
):
    """Walk-through: after "Add ^GSPC to the watchlist" the page said its history was still loading
    20 s after the backfill had finished; the chart came only with a reload. While a shown symbol's
    backfill is on its way the page looks again by itself and draws the chart once the bars are in."""
    settings = configure(stack, tmp_path, app_env, monkeypatch)
    with seeded_store(settings, ["7203.T", "^N225"]) as (store, _):
        seed_daily(store, ["7203.T"], sessions=120)
        store.request_backfill("^N225", "simulated")  # what adding it does with the pipeline running
        at = app("insights", query={"symbols": "7203.T", "benchmark": "^N225"}).run()
        assert_clean(at)
        assert "^N225 has no daily bars stored yet: its history is still loading." in texts(at)
        assert "Waiting for the history of ^N225" in texts(at)
        runs = full_runs(monkeypatch)
        tick(at, "until_loaded")  # nothing stored yet: still waiting
        assert "Waiting for the history of ^N225" in texts(at)
        assert not runs  # the fragment alone looked again; the rest of the page stayed as drawn
        seed_daily(store, ["^N225"], sessions=120)
        store.update_backfill("^N225", status="done")
        from ui import data

        cleared = []
        for loader in (data.history_bars, data.daily_summary):
            clear = loader.clear
            monkeypatch.setattr(loader, "clear", lambda *a, _c=clear: (cleared.append(a), _c(*a)))
        tick(at, "until_loaded")  # the page's own refresh, same session
        # only the entries this page read are cleared, not every session's (no arguments = all)
        assert [len(a) for a in cleared] == [6, 2] and all(a[1] == ("7203.T", "^N225") for a in cleared)
        assert_clean(at)
        assert "still loading" not in texts(at) and "Waiting for the history" not in texts(at)
        names = [t["name"] for t in plotly_specs(at)[1]["data"]]
        assert "^N225 (benchmark)" in names, names
        assert not fragments(at, "until_loaded")  # nothing left to wait for: no more polling


def test_a_backfill_done_with_too_little_history_stops_waiting(stack, tmp_path, app_env, monkeypatch):
    """Review: a backfill the producer marked "done" after storing nothing (or one session) kept the
    page polling every 2 s, saying the charts would redraw by themselves. It redraws once and says
    how many sessions are stored; nothing polls."""
    settings = configure(stack, tmp_path, app_env, monkeypatch)
    with seeded_store(settings, ["7203.T", "^N225"]) as (store, _):
        seed_daily(store, ["7203.T"], sessions=120)
        store.request_backfill("^N225", "simulated")
        store.update_backfill("^N225", status="done")  # finished, nothing published
        at = app("insights", query={"symbols": "7203.T,^N225", "benchmark": "^N225"}).run()
        assert_clean(at)
        assert "^N225 0 sessions" in texts(at) and "Too little daily history" in texts(at)
        assert "Waiting for the history" not in texts(at)
        assert not fragments(at, "until_loaded")  # nothing more is coming: no polling


def test_removing_a_symbol_keeps_the_others_colours(seeded):
    """Review: colours went by place in the selection, so removing the first symbol recoloured all
    the others. They go by place in the watchlist; the benchmark stays grey."""
    at = app("insights", query={"symbols": ",".join(SYMBOLS), "benchmark": BENCH, "range": "1Y"}).run()
    assert_clean(at)
    before = line_colours(plotly_specs(at)[3])
    at.multiselect(key="ins_symbols").set_value(SYMBOLS[1:]).run()
    assert_clean(at)
    after = line_colours(plotly_specs(at)[3])
    assert set(after) == set(SYMBOLS[1:])
    assert {s: after[s] for s in SYMBOLS[1:]} == {s: before[s] for s in SYMBOLS[1:]}
    relative = line_colours(plotly_specs(at)[1])
    assert relative[SYMBOLS[1]] == before[SYMBOLS[1]]
