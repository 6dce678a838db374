"""The CSV replay source: replay speed, original timestamps, bad rows as reasons with line numbers."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from support.clock import ManualClock

from pipeline.config import Settings
from pipeline.models import iso, utcnow
from pipeline.sources import make_source
from pipeline.sources.base import SourceError, UnknownSymbol
from pipeline.sources.csv_replay import CsvReplaySource
from pipeline.sources.simulated import SimulatedSource

EXPORT_HEADER = ["symbol", "interval", "ts", "open", "high", "low", "close", "volume"]
START = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)


def write(path: Path, rows: list[list], header: list[str] = EXPORT_HEADER) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def minute_rows(symbol: str, n: int, price: float = 100.0) -> list[list]:
    return [
        [symbol, "1m", iso(START + timedelta(minutes=i)), price, price + 1, price - 1, price + 0.5, 1000 + i]
        for i in range(n)
    ]


def test_replay_releases_rows_by_offset_times_speed_keeping_original_timestamps(tmp_path):
    path = write(tmp_path / "bars.csv", minute_rows("AAPL", 10))
    clock = ManualClock(utcnow().replace(microsecond=0))
    source = CsvReplaySource(path, speed=60, clock=clock)
    first = source.fetch(["AAPL"])  # anchors replay time: only the first row is due
    assert [e.ts for e in first.events] == [START] and first.errors == {}
    assert first.events[0].fetched_at == clock.now and first.events[0].source == "csv"
    clock.tick(1)  # 1 s x 60 = one minute of data
    assert [e.ts for e in source.fetch(["AAPL"]).events] == [START + timedelta(minutes=1)]
    clock.tick(3.5)
    assert [e.ts.minute for e in source.fetch(["AAPL"]).events] == [32, 33, 34]
    assert source.fetch(["AAPL"]).events == []  # each row once
    clock.tick(100)
    rest = source.fetch(["AAPL"]).events
    assert len(rest) == 5 and rest[-1].volume == 1009 and rest[-1].close == 100.5
    health = source.health()
    assert health["finished"] is True and health["emitted"] == 10 and health["remaining"] == 0


def test_rows_of_symbols_not_asked_for_are_skipped_and_unknown_symbols_are_reasons(tmp_path):
    path = write(tmp_path / "bars.csv", minute_rows("AAPL", 3) + minute_rows("MSFT", 3, 300.0))
    clock = ManualClock(utcnow().replace(microsecond=0))
    source = CsvReplaySource(path, speed=1000, clock=clock)
    source.fetch(["MSFT"])
    clock.tick(10)
    result = source.fetch(["MSFT", "NVDA"])
    assert {e.symbol for e in result.events} == {"MSFT"} and len(result.events) == 2
    assert result.errors == {"NVDA": "NVDA is not in the replay file bars.csv"}
    assert source.health()["skipped_not_watched"] == 3


def test_bad_rows_become_reasons_with_line_numbers(tmp_path):
    future = iso(utcnow() + timedelta(days=2))
    rows = minute_rows("AAPL", 2) + [
        ["AAPL", "1m", iso(START + timedelta(minutes=2)), 100, 99, 101, 100, 5],  # line 4: high < low
        ["MSFT", "1m", iso(START + timedelta(minutes=2)), "abc", 1, 1, 1, 5],  # line 5: not a number
        ["NVDA", "7m", iso(START + timedelta(minutes=2)), 1, 1, 1, 1, 5],  # line 6: interval
        ["not ok", "1m", iso(START), 1, 1, 1, 1, 5],  # line 7: symbol
        ["AAPL", "1m", "yesterday-ish", 1, 1, 1, 1, 5],  # line 8: time
        ["GOOG", "1m", future, 1, 1, 1, 1, 5],  # line 9: future
        ["AAPL", "1m", iso(START + timedelta(minutes=3)), 100, 101, 99, 100, -5],  # line 10: volume
    ]
    path = write(tmp_path / "bad.csv", rows)
    clock = ManualClock(utcnow().replace(microsecond=0))
    source = CsvReplaySource(path, speed=10**9, clock=clock)
    first = source.fetch(["AAPL", "MSFT", "NVDA", "GOOG"])
    assert first.errors["bad.csv:7"].startswith("line 7: 'not ok' is not a valid ticker")
    assert first.errors["bad.csv:8"].startswith("line 8: ts 'yesterday-ish'")
    clock.tick(1)
    result = source.fetch(["AAPL", "MSFT", "NVDA", "GOOG"])
    assert result.errors["AAPL"] == "line 4: high 99.0 is below low 101.0 (and 1 more bad rows)"
    assert result.errors["MSFT"] == "line 5: open 'abc' is not a number"
    assert result.errors["NVDA"].startswith("line 6: interval '7m' is not one of")
    assert result.errors["GOOG"].startswith("line 9: ts ") and "future" in result.errors["GOOG"]
    assert [e.ts for e in result.events] == [START + timedelta(minutes=1)]  # the good row still came
    assert "line 10: volume must not be negative, got -5.0" in source.health()["bad_rows"]


def test_a_history_export_replays_to_the_same_bars(tmp_path):
    sim = SimulatedSource(seed=3)
    bars = sim.backfill("AAPL", utcnow() - timedelta(hours=2), utcnow(), "1m").events
    rows = [[b.symbol, b.interval, iso(b.ts), b.open, b.high, b.low, b.close, b.volume] for b in bars]
    source = CsvReplaySource(
        write(tmp_path / "export.csv", rows), speed=10**9, clock=ManualClock(utcnow().replace(microsecond=0))
    )
    source.fetch(["AAPL"])
    source._clock.tick(1)
    replayed = source.fetch(["AAPL"]).events
    assert len(replayed) == len(bars) - 1  # the first came with the anchoring call
    for original, copy in zip(bars[1:], replayed, strict=False):
        assert (
            copy.symbol,
            copy.interval,
            copy.ts,
            copy.open,
            copy.high,
            copy.low,
            copy.close,
            copy.volume,
        ) == (
            original.symbol,
            original.interval,
            original.ts,
            original.open,
            original.high,
            original.low,
            original.close,
            original.volume,
        )
        assert copy.currency == "USD" and copy.timezone == "America/New_York"


def test_a_yahoo_style_file_takes_its_symbol_from_the_name_and_dates_as_daily_bars(tmp_path):
    rows = [["2026-03-02", 100, 101, 99, 100.5, 100.5, 5000], ["2026-03-03", 100.5, 102, 100, 101, 101, 6000]]
    path = write(
        tmp_path / "7203.T.csv", rows, header=["Date", "Open", "High", "Low", "Close", "Adj Close", "Volume"]
    )
    source = CsvReplaySource(path, speed=10**9, clock=ManualClock(utcnow().replace(microsecond=0)))
    events = source.fetch(["7203.T"]).events
    source._clock.tick(1)
    events += source.fetch(["7203.T"]).events
    assert [e.interval for e in events] == ["1d", "1d"]
    local = [e.ts.astimezone(ZoneInfo("Asia/Tokyo")) for e in events]
    assert [(t.day, t.hour) for t in local] == [(2, 0), (3, 0)]  # local midnight at the exchange
    assert events[0].currency == "JPY"


def test_epoch_seconds_are_accepted(tmp_path):
    t = int(START.timestamp())
    path = write(
        tmp_path / "e.csv",
        [["AAPL", t, 1, 2, 0.5, 1.5, 10]],
        header=["ticker", "timestamp", "open", "high", "low", "close", "volume"],
    )
    event = (
        CsvReplaySource(path, speed=1, clock=ManualClock(utcnow().replace(microsecond=0)))
        .fetch(["AAPL"])
        .events[0]
    )
    assert event.ts == START and event.interval == "1m"


def test_file_level_problems_raise_source_error_when_built(tmp_path):
    with pytest.raises(SourceError, match="cannot read the replay file"):
        CsvReplaySource(tmp_path / "missing.csv", speed=1)
    with pytest.raises(SourceError, match="has no close column"):
        CsvReplaySource(write(tmp_path / "cols.csv", [], header=["symbol", "ts", "open", "high", "low"]), 1)
    with pytest.raises(SourceError, match="its name is not a ticker"):
        CsvReplaySource(
            write(tmp_path / "my bars.csv", [], header=["ts", "open", "high", "low", "close", "volume"]), 1
        )
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(SourceError, match="is empty"):
        CsvReplaySource(tmp_path / "empty.csv", 1)
    with pytest.raises(ValueError):
        CsvReplaySource(write(tmp_path / "ok.csv", minute_rows("AAPL", 1)), speed=0)


def test_lookup_knows_only_the_files_symbols(tmp_path):
    source = CsvReplaySource(
        write(tmp_path / "bars.csv", minute_rows("AAPL", 1) + minute_rows("VOD.L", 1)), 1
    )
    assert source.lookup("vod.l").currency == "GBp"
    with pytest.raises(
        UnknownSymbol, match=r"MSFT is not in the replay file bars.csv \(it has AAPL, VOD.L\)"
    ):
        source.lookup("MSFT")


def test_backfill_returns_only_what_was_replayed(tmp_path):
    path = write(tmp_path / "bars.csv", minute_rows("AAPL", 10))
    clock = ManualClock(utcnow().replace(microsecond=0))
    source = CsvReplaySource(path, speed=60, clock=clock)
    window = (START - timedelta(days=1), START + timedelta(days=1))
    assert [e.ts for e in source.backfill("AAPL", *window, "1m").events] == [START]  # anchors
    clock.tick(4)
    assert len(source.backfill("AAPL", *window, "1m").events) == 5
    assert source.backfill("AAPL", *window, "1d").errors == {
        "AAPL": "the replay file has 1m bars for AAPL, not 1d"
    }
    assert "not in the replay file" in source.backfill("MSFT", *window, "1m").errors["MSFT"]


def test_make_source_builds_it_from_settings(tmp_path):
    path = write(tmp_path / "bars.csv", minute_rows("AAPL", 3))
    settings = Settings.load(
        env={}, secrets_paths=[], source="csv", data_dir=tmp_path, csv_path=path, csv_speed=120.0
    )
    source = make_source("csv", settings)
    assert source.speed == 120.0 and source.fetch(["AAPL"]).events


# -- real-world files (issue 9): the case files are kept byte for byte in tests/data/cases -------------
CASES = Path(__file__).parent / "data" / "cases"


def replay_all(path: Path, symbols: list[str]) -> tuple[CsvReplaySource, list, dict]:
    """Replay a whole file at once: every row is due after the first tick."""
    clock = ManualClock(utcnow().replace(microsecond=0))
    source = CsvReplaySource(path, speed=10**9, clock=clock)
    first = source.fetch(symbols)
    clock.tick(1)
    rest = source.fetch(symbols)
    return source, first.events + rest.events, {**first.errors, **rest.errors}


def test_metatrader_date_and_time_columns_are_joined_into_minute_bars(tmp_path, store):
    source, events, errors = replay_all(CASES / "metatrader_iso_EURUSD=X.csv", ["EURUSD=X"])
    assert errors == {}
    assert [(e.ts, e.interval, e.volume) for e in events] == [
        (datetime(2024, 3, 5, 18, 49 + i, tzinfo=UTC), "1m", v) for i, v in enumerate([30, 19, 15, 23])
    ]
    assert events[0].open == 1.08708 and events[3].close == 1.08700
    result = store.write_events(events)
    assert (result.stored, result.duplicates) == (4, 0)  # nothing vanishes as a "duplicate"
    assert source.health()["rows_not_taken"] == []


def test_the_same_bar_twice_keeps_the_later_row_and_reports_the_earlier_line():
    source, events, errors = replay_all(CASES / "duplicate_bar_rows.csv", ["AAPL"])
    assert errors == {}
    bar = next(e for e in events if e.ts == datetime(2024, 3, 5, 15, 37, tzinfo=UTC))
    assert (bar.high, bar.close, bar.volume) == (170.80, 170.70, 17)  # the correction on line 3
    assert len(events) == 2
    health = source.health()
    assert health["replaced_rows"] == 1
    assert health["rows_not_taken"] == [
        "line 2: same AAPL 1m bar at 2024-03-05T15:37:00.000Z as line 3, which wins"
    ]


def test_a_later_bad_row_does_not_replace_a_good_one(tmp_path):
    path = write(
        tmp_path / "dup.csv",
        [
            ["AAPL", "1m", "2024-03-05T15:37:00Z", 1, 2, 0.5, 1.5, 10],
            ["AAPL", "1m", "2024-03-05T15:37:00Z", 1, 1.5, 2, 1, 5],
        ],
    )
    source, events, _ = replay_all(path, ["AAPL"])
    assert [(e.high, e.volume) for e in events] == [(2, 10)]
    assert source.health()["rows_not_taken"] == [
        "line 3: high 1.5 is below low 2.0 (the good row on line 2 for the same bar is kept)"
    ]


def test_a_file_without_volume_is_accepted_with_volume_0_and_a_note():
    source, events, errors = replay_all(CASES / "stooq_novolume_EURUSD=X.csv", ["EURUSD=X"])
    assert errors == {}
    assert [(e.interval, e.open, e.close, e.volume) for e in events] == [
        ("1d", 1.08420, 1.08560, 0.0),
        ("1d", 1.08560, 1.08550, 0.0),
    ]
    assert [e.ts.astimezone(ZoneInfo("Europe/London")).date().day for e in events] == [4, 5]
    assert any("volume 0" in n for n in source.health()["notes"])


def test_daily_bars_of_a_frankfurt_symbol_keep_their_session_dates_and_never_merge(tmp_path, store):
    from pipeline.bars import BarBuilder

    _, daily, errors = replay_all(CASES / "daily_SAP.DE.csv", ["SAP.DE"])
    assert errors == {}
    berlin = ZoneInfo("Europe/Berlin")
    assert [e.ts.astimezone(berlin).date().day for e in daily] == [4, 5, 6, 7, 8]  # the file's dates
    # Thursday's minutes (09:00-09:02 Berlin), inside Thursday's daily range
    minutes = write(
        tmp_path / "SAP.DE.csv",
        [
            ["2024-03-07T08:00:00Z", 184.00, 184.50, 183.80, 184.20, 1000],
            ["2024-03-07T08:01:00Z", 184.20, 184.60, 184.00, 184.40, 2000],
            ["2024-03-07T08:02:00Z", 184.40, 184.70, 184.10, 184.30, 1500],
        ],
        header=["ts", "open", "high", "low", "close", "volume"],
    )
    _, intraday, errors = replay_all(minutes, ["SAP.DE"])
    assert errors == {} and len(intraday) == 3
    store.write_events(daily + intraday)
    BarBuilder(store).run_once()
    days = {
        d["ts"].replace(tzinfo=UTC): d
        for d in store.bars.find({"symbol": "SAP.DE", "interval": "1d"}).sort("ts", 1)
    }
    assert sorted(days) == [datetime(2024, 3, d, tzinfo=UTC) for d in range(4, 9)]  # on the file's dates
    thursday, friday = days[datetime(2024, 3, 7, tzinfo=UTC)], days[datetime(2024, 3, 8, tzinfo=UTC)]
    assert (thursday["open"], thursday["high"], thursday["low"], thursday["volume"]) == (
        183.90,
        185.00,
        182.70,
        1250000,
    )
    assert (friday["open"], friday["high"], friday["low"], friday["close"], friday["volume"]) == (
        184.10,
        186.00,
        183.50,
        185.60,
        1600000,
    )


def test_a_tokyo_daily_bar_and_that_days_minutes_are_one_day_on_its_date(tmp_path, store):
    from pipeline.bars import BarBuilder

    daily = write(
        tmp_path / "7203.T.csv",
        [["2024-03-07", 3500, 3550, 3480, 3520, 9000000], ["2024-03-08", 3530, 3600, 3510, 3590, 8000000]],
        header=["Date", "Open", "High", "Low", "Close", "Volume"],
    )
    _, days_in, _ = replay_all(daily, ["7203.T"])
    minute = write(  # Friday 09:00-09:01 in Tokyo is Friday 00:00 UTC
        tmp_path / "minutes_7203.T.csv",
        [
            ["2024-03-08T00:00:00Z", 3530, 3540, 3525, 3535, 10000],
            ["2024-03-08T00:01:00Z", 3535, 3545, 3530, 3540, 20000],
        ],
        header=["ts", "open", "high", "low", "close", "volume"],
    )
    _, minutes_in, _ = replay_all(minute, ["7203.T"])
    store.write_events(days_in + minutes_in)
    BarBuilder(store).run_once()
    days = {d["ts"].replace(tzinfo=UTC): d for d in store.bars.find({"symbol": "7203.T", "interval": "1d"})}
    assert sorted(days) == [datetime(2024, 3, 7, tzinfo=UTC), datetime(2024, 3, 8, tzinfo=UTC)]
    thursday, friday = days[datetime(2024, 3, 7, tzinfo=UTC)], days[datetime(2024, 3, 8, tzinfo=UTC)]
    assert (thursday["open"], thursday["close"], thursday["volume"]) == (3500, 3520, 9000000)
    assert (friday["open"], friday["high"], friday["volume"]) == (3530, 3600, 8000000)


@pytest.mark.parametrize(
    "name,content",
    [
        (  # German Excel: semicolons, decimal commas, dotted dates, lower-case header, CRLF
            "EURUSD=X.csv",
            "date;time;open;high;low;close;volume\r\n05.03.2024;18:49;1,08708;1,08710;1,08702;1,08702;30\r\n",
        ),
        (  # MetaTrader's own export: tab-separated, <BRACKETS>, dotted ISO order, seconds, tick volume
            "EURUSD=X.csv",
            "<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\n2024.03.05\t18:49:00\t1.08708\t1.08710\t1.08702\t1.08702\t30\n",
        ),
        (  # upper-case header with a BOM and CRLF, US slashed date
            "EURUSD=X.csv",
            "\ufeffDATE,TIME,OPEN,HIGH,LOW,CLOSE,VOLUME\r\n03/05/2024,18:49,1.08708,1.08710,1.08702,1.08702,30\r\n",
        ),
    ],
)
def test_other_real_world_shapes_give_the_same_bar(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8"))
    _, events, errors = replay_all(path, ["EURUSD=X"])
    assert errors == {}
    assert [(e.ts, e.interval, e.open, e.close, e.volume) for e in events] == [
        (datetime(2024, 3, 5, 18, 49, tzinfo=UTC), "1m", 1.08708, 1.08702, 30)
    ]


def test_a_comma_file_with_decimal_commas_is_refused_naming_the_dialect(tmp_path):
    path = tmp_path / "EURUSD=X.csv"
    path.write_text("Date,Open,High,Low,Close\n2024-03-04,1,0842,1,0866,1,0832,1,0856\n")
    with pytest.raises(SourceError, match="comma-separated with 5 header fields but 9 fields on lines 2"):
        CsvReplaySource(path, speed=1)


def test_every_row_not_taken_is_in_health_with_its_line(tmp_path):
    rows = [
        ["AAPL", "1m", "2024-03-05T15:37:00Z", 1, 2, 0.5, 1.5, 10],
        ["AAPL", "1m", "not a time", 1, 2, 0.5, 1.5, 10],
        ["AAPL", "1m", "2024-03-05T15:38:00Z", 1, 2, 0.5, "x", 10],
        ["AAPL", "1m", "2024-03-05T15:37:00Z", 1, 3, 0.5, 1.5, 11],
    ]
    source, events, _ = replay_all(write(tmp_path / "mixed.csv", rows), ["AAPL"])
    assert [(e.high, e.volume) for e in events] == [(3, 11)]
    taken = source.health()["rows_not_taken"]
    assert [t.split(":")[0] for t in taken] == ["line 2", "line 3", "line 4"]
    assert "line 4: close 'x' is not a number" in taken


def test_a_history_export_of_us_daily_bars_replays_on_its_session_dates(tmp_path):
    """The History CSV dates a daily bar at UTC midnight of its session (19:00 the evening before in
    New York): its session column keeps AAPL's Friday a Friday when replayed."""
    import pandas as pd

    from pipeline.markets.calendars import session_date
    from pipeline.queries import to_csv

    frame = pd.DataFrame(
        {
            "symbol": ["AAPL", "AAPL"],
            "interval": ["1d", "1d"],
            "ts": pd.to_datetime(["2026-11-20", "2026-11-23"], utc=True),
            "open": [230.0, 231.0],
            "high": [232.0, 233.0],
            "low": [229.0, 230.0],
            "close": [231.0, 232.0],
            "volume": [1e6, 2e6],
            "session": ["2026-11-20", "2026-11-23"],
        }
    )
    path = tmp_path / "history.csv"
    path.write_text(to_csv(frame))
    _, events, errors = replay_all(path, ["AAPL"])
    assert errors == {}
    assert [session_date(e.ts, "America/New_York").isoformat() for e in events] == [
        "2026-11-20",
        "2026-11-23",
    ]
    assert [e.close for e in events] == [231.0, 232.0]
    # without the session column the same rows land on the evening before, the day bug it prevents
    path.write_text(to_csv(frame.drop(columns=["session"])))
    _, events, _ = replay_all(path, ["AAPL"])
    assert [session_date(e.ts, "America/New_York").isoformat() for e in events] == [
        "2026-11-19",
        "2026-11-22",
    ]
