"""100x unit mix-ups (issue 19, kind 2): the rule in pipeline/repairs.py on series shaped like Yahoo's
AET.L answer (blocks of sessions in pounds inside a series in pence), a one-day error, and real falls
that must stay as served."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from pipeline.markets.calendars import session_date
from pipeline.repairs import apply, unit_mixups

DAY0 = datetime(2024, 9, 2, 7, 0, tzinfo=UTC)


def series(closes: list[float], wrong: set[int] = frozenset(), factor: float = 0.01) -> list[dict]:
    """Daily bars at ``closes`` (pence), the sessions in ``wrong`` served ``factor`` times too small."""
    out = []
    for i, c in enumerate(closes):
        f = factor if i in wrong else 1.0
        o, h, lo = c * 0.99, c * 1.02, c * 0.97
        out.append(dict(ts=DAY0 + timedelta(days=i), open=o * f, high=h * f, low=lo * f, close=c * f))
    return out


# 23 sessions around 41-45 pence, 14 of them served in pounds in three blocks (as AET.L's were)
PENCE = [41.2, 41.8, 42.5, 42.1, 43.0, 43.6, 42.9, 43.3, 44.0, 44.6, 44.1, 43.8, 44.9, 45.2, 44.7, 44.3, 43.9,
         44.5, 45.0, 44.8, 45.3, 45.1, 44.6]  # fmt: skip
WRONG = {2, 3, 4, 5, 8, 9, 10, 11, 12, 15, 16, 17, 18, 19}


def repaired(bars: list[dict], **kw) -> list[dict]:
    fixes = {r.index: r for r in unit_mixups(bars, "GBp", **kw)}
    return [apply(b, fixes[i]) if i in fixes else b for i, b in enumerate(bars)]


def test_blocks_of_sessions_in_pounds_are_repaired_to_pence_with_a_reason():
    bars = series(PENCE, WRONG)
    fixes = unit_mixups(bars, "GBp", anchor=44.6, anchor_at=bars[-1]["ts"] + timedelta(hours=8))
    assert [r.index for r in fixes] == sorted(WRONG)
    assert all(r.factor == 100.0 and "100x below" in r.reason and "comes back" in r.reason for r in fixes)
    out = repaired(bars, anchor=44.6, anchor_at=bars[-1]["ts"])
    assert [b["close"] for b in out] == pytest.approx(PENCE)
    assert all(b["low"] <= min(b["open"], b["close"]) <= max(b["open"], b["close"]) <= b["high"] for b in out)


def test_a_single_day_in_pounds_is_repaired():
    bars = series(PENCE[:7], {3})
    fixes = unit_mixups(bars, "GBp")
    assert [(r.index, r.factor) for r in fixes] == [(3, 100.0)]
    assert "1 bar)" in fixes[0].reason


def test_a_real_99_percent_fall_stays_collapsed():
    # a penny stock: 120 pence, then a collapse to 1.2 pence (-99 %) that lasts to today
    closes = [120.0, 118.5, 121.0, 119.0, 1.2, 1.18, 1.25, 1.21, 1.19]
    bars = series(closes)
    assert unit_mixups(bars, "GBp") == []
    assert unit_mixups(bars, "GBp", anchor=1.2, anchor_at=bars[-1]["ts"]) == []  # today agrees
    # and one day back to the old level in the middle of it is a mix-up of that day only
    blip = series([*closes[:6], 118.0, *closes[7:]])
    assert [r.index for r in unit_mixups(blip, "GBp")] == [6]
    assert unit_mixups(blip, "GBp")[0].factor == 0.01


def test_the_newest_sessions_in_pounds_are_repaired_only_when_the_chart_price_says_so():
    bars = series(PENCE[:10], {7, 8, 9})
    assert unit_mixups(bars, "GBp") == []  # without the chart's price: the newest scale is the present
    now = bars[-1]["ts"] + timedelta(hours=9)
    fixes = unit_mixups(bars, "GBp", anchor=44.5, anchor_at=now)
    assert [(r.index, r.factor) for r in fixes] == [(7, 100.0), (8, 100.0), (9, 100.0)]
    stale = unit_mixups(bars, "GBp", anchor=44.5, anchor_at=now + timedelta(days=30))
    assert stale == []  # a price from a month later says nothing about these sessions' unit


def test_the_oldest_sessions_in_pounds_are_repaired_but_an_older_higher_level_is_history():
    assert [r.index for r in unit_mixups(series(PENCE[:8], {0, 1}), "GBp")] == [0, 1]
    high_then = series([4120.0, 4180.0, *PENCE[2:8]])  # 100x above the rest: a fall, kept
    assert unit_mixups(high_then, "GBp") == []


def test_one_field_in_the_other_unit_is_scaled_to_its_close():
    bars = series(PENCE[:5])
    bars[2] = {**bars[2], "high": bars[2]["high"] * 100}  # Yahoo's high in the wrong unit
    fixes = unit_mixups(bars, "GBp")
    assert [(r.index, r.factor, r.fields) for r in fixes] == [(2, 1.0, ("high*",))]
    assert apply(bars[2], fixes[0])["high"] == pytest.approx(PENCE[2] * 1.02)


def test_a_series_in_a_major_unit_or_with_ordinary_moves_is_left_alone():
    assert unit_mixups(series(PENCE, WRONG), "USD") == []  # no minor unit: no 100x mix-up possible
    moves = [100 * (1.3 if i % 2 else 0.8) ** (i % 3) for i in range(20)]  # -36 % .. +69 % days
    assert unit_mixups(series(moves), "GBp") == []


# -- through the Yahoo source and into MongoDB ------------------------------------------------------
def aet_chart(sessions: list[datetime], closes: list[float]) -> dict:
    """A Yahoo v8 chart answer (wire format, meta as Yahoo sends it for a London line in pence) for
    AET.L daily bars at ``sessions`` (07:00 UTC, the London open in summer time) with ``closes``."""
    last = sessions[-1] + timedelta(hours=8, minutes=30)
    meta = {
        "currency": "GBp", "symbol": "AET.L", "exchangeName": "LSE", "fullExchangeName": "LSE",
        "instrumentType": "EQUITY", "firstTradeDate": 1118127600, "regularMarketTime": int(last.timestamp()),
        "hasPrePostMarketData": False, "gmtoffset": 3600, "timezone": "BST",
        "exchangeTimezoneName": "Europe/London", "regularMarketPrice": PENCE[-1], "priceHint": 2,
        "dataGranularity": "1d", "range": "", "validRanges": ["1d", "5d", "1mo", "3mo", "max"],
    }  # fmt: skip
    quote = {
        "open": [round(c * 0.99, 4) for c in closes],
        "high": [round(c * 1.02, 4) for c in closes],
        "low": [round(c * 0.97, 4) for c in closes],
        "close": closes,
        "volume": [250_000 + 1_000 * i for i in range(len(closes))],
    }
    return {
        "chart": {
            "result": [
                {
                    "meta": meta,
                    "timestamp": [int(t.timestamp()) for t in sessions],
                    "indicators": {"quote": [quote], "adjclose": [{"adjclose": closes}]},
                }
            ],
            "error": None,
        }
    }


def test_yahoo_backfill_of_a_london_line_stores_pence_and_records_each_repair(store, tmp_path):
    from support.fake_market import FakeMarket

    from pipeline.sources.yahoo import YahooSource

    days = [DAY0 + timedelta(days=d) for d in range(40) if (DAY0 + timedelta(days=d)).weekday() < 5][:23]
    served = [round(c * (0.01 if i in WRONG else 1.0), 4) for i, c in enumerate(PENCE)]
    path = tmp_path / "chart-AET.L.json"
    url = "https://query2.finance.yahoo.com/v8/finance/chart/AET.L?interval=1d&includePrePost=true"
    path.write_text(json.dumps({"request_url": url, "status": 200, "body": aet_chart(days, served)}))
    with FakeMarket() as fake:
        fake.serve_recorded(path)
        source = YahooSource(tmp_path / "yf-cache", timeout=10.0, base_url=fake.url)
        result = source.backfill("AET.L", days[0], days[-1] + timedelta(days=1), "1d")
    assert result.errors == {}
    assert [e.close for e in result.events] == pytest.approx(PENCE)
    london = [session_date(r["ts"], "Europe/London") for r in result.repairs]  # stamped at local midnight
    assert london == [days[i].date() for i in sorted(WRONG)]
    assert all(r["kind"] == "unit_100x" and r["factor"] == 100.0 for r in result.repairs)
    assert source.health()["bars_repaired"] == len(WRONG)
    store.write_events(result.events)
    store.record_repairs(result.repairs)
    assert store.repairs.count_documents({"symbol": "AET.L"}) == len(WRONG)
    store.record_repairs(result.repairs)
    assert store.repairs.count_documents({"symbol": "AET.L"}) == len(WRONG)  # again: replaced, not doubled
    stored = list(store.repairs.find({"symbol": "AET.L"}, {"_id": 0}).sort("ts", 1))
    assert len(stored) == len(WRONG)
    first = stored[0]
    assert first["before"]["close"] == pytest.approx(served[2]) and first["after"]["close"] == pytest.approx(
        PENCE[2]
    )
    assert "100x below the series in GBp" in first["reason"]
    closes = [d["close"] for d in store.prices.find({"symbol": "AET.L", "interval": "1d"}).sort("ts", 1)]
    assert closes == pytest.approx(PENCE)
    print(
        f"\nAET.L-shaped answer: {len(WRONG)} of {len(PENCE)} sessions served in pounds; first repair: {first['reason']}"
    )
