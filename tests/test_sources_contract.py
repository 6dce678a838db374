"""Every registered source keeps the contract ``pipeline.sources.base`` states (issue 21): built by
``make_source`` from settings alone, against the local fakes that speak each provider's wire format
(Yahoo's HTTP and push streamer, Alpha Vantage's HTTP, a replay file).

- ``lookup`` answers a known symbol with its listing and refuses one it does not know with a reason;
- ``fetch`` never raises for a per-symbol problem: valid events for what it got, a reason per symbol
  it could not serve (a streaming source subscribes instead: a symbol that never gets a message is
  named by its health, not by ``fetch``);
- every event it returns (``fetch`` and ``backfill``) passes ``pipeline.models.validate`` unchanged;
- ``health()`` is JSON-able; a streaming source is a ``StreamingSource`` and stops cleanly.

A new source gets this test by being registered: the parameters are ``REGISTRY`` itself.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.fake_market import FakeMarket
from support.fake_streamer import FakeStreamer

from pipeline.config import Settings
from pipeline.models import validate
from pipeline.sources import REGISTRY, StreamingSource, UnknownSymbol, make_source

START = datetime(2026, 11, 2, 14, 30, tzinfo=UTC)  # a Monday in the US session
#: what each source cannot serve: a symbol the fake provider does not list (None: the simulator
#: models any valid ticker, so only malformed text is unknown to it)
UNLISTED = {"simulated": None, "csv": "MSFT"}


@pytest.fixture(scope="module")
def market():
    with FakeMarket() as m:
        yield m


@pytest.fixture(scope="module")
def streamer(market):
    with FakeStreamer(market) as s:
        yield s


def replay_file(path: Path) -> Path:
    rows = ["symbol,interval,ts,open,high,low,close,volume"]
    for i in range(30):
        ts = (START + timedelta(minutes=i)).isoformat().replace("+00:00", "Z")
        rows.append(f"AAPL,1m,{ts},100,101,99,100.5,{1000 + i}")
    path.write_text("\n".join(rows) + "\n")
    return path


def settings_for(name: str, market: FakeMarket, streamer: FakeStreamer, tmp_path: Path) -> Settings:
    return Settings.load(
        env={},
        secrets_paths=[],
        source=name,
        data_dir=tmp_path,
        yahoo_url=market.url,
        yahoo_stream_url=streamer.url,
        alphavantage_url=market.url,
        alphavantage_api_key="contract-test-key",
        csv_path=replay_file(tmp_path / "replay.csv"),
        http_timeout=5.0,
    )


def backfill_window(name: str) -> tuple[datetime, datetime, str]:
    if name == "csv":  # a replay serves the bars of its file
        return START, START + timedelta(minutes=30), "1m"
    end = datetime.now(UTC)
    return end - timedelta(days=10), end, "1d"


@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_registered_source_keeps_the_base_contract(name, market, streamer, tmp_path):
    source = make_source(name, settings_for(name, market, streamer, tmp_path))
    try:
        assert source.name == name  # the name stored in every event's ``source`` field
        info = source.lookup("AAPL")
        assert info.symbol == "AAPL" and info.timezone and info.currency
        with pytest.raises(UnknownSymbol) as refused:
            source.lookup("not a ticker!")
        assert str(refused.value)

        unlisted = UNLISTED.get(name, "ZZZZQ")
        wanted = ["AAPL"] + ([unlisted] if unlisted else [])
        result = source.fetch(wanted)  # must not raise for the unlisted symbol
        for event in result.events:
            assert validate(event.to_document()) == event
        assert set(result.errors) <= set(wanted)
        if unlisted:
            with pytest.raises(UnknownSymbol):
                source.lookup(unlisted)
            assert not any(e.symbol == unlisted for e in result.events)
            if not isinstance(source, StreamingSource):  # a stream subscribes: its prices come pushed,
                assert result.errors.get(unlisted), result.errors  # and a silent symbol shows in health

        start, end, interval = backfill_window(name)
        history = source.backfill("AAPL", start, end, interval)
        assert history.events, history.errors
        for event in history.events:
            assert event.symbol == "AAPL" and event.interval == interval
            assert validate(event.to_document()) == event

        json.dumps(source.health())
    finally:
        if isinstance(source, StreamingSource):
            source.stop()
        close = getattr(source, "close", None)
        if close is not None:
            close()


def test_the_registry_is_where_config_and_make_source_get_their_names():
    from pipeline import config

    assert config.SOURCES == tuple(REGISTRY)
    with pytest.raises(ValueError, match="unknown source"):
        make_source("no-such-source", None)
