"""The CSV replay source: replay speed, original timestamps, bad rows as reasons with line numbers."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from pipeline.config import Settings
from pipeline.models import iso, utcnow
from pipeline.sources import make_source
from pipeline.sources.base import SourceError, UnknownSymbol
from pipeline.sources.csv_replay import CsvReplaySource
from pipeline.sources.simulated import SimulatedSource

EXPORT_HEADER = ["symbol", "interval", "ts", "open", "high", "low", "close", "volume"]
START = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)


class Clock:
    def __init__(self):
        self.now = utcnow().replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


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
    clock = Clock()
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
    clock = Clock()
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
    clock = Clock()
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
    source = CsvReplaySource(write(tmp_path / "export.csv", rows), speed=10**9, clock=Clock())
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
    source = CsvReplaySource(path, speed=10**9, clock=Clock())
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
    event = CsvReplaySource(path, speed=1, clock=Clock()).fetch(["AAPL"]).events[0]
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
    clock = Clock()
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
