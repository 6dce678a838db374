"""Pipeline health and Live with the yahoo_stream source (fake streamer + fake HTTP market)."""

from __future__ import annotations

import time

import pytest
from support.fake_market import FakeMarket
from support.fake_streamer import FakeStreamer
from support.pages import app, assert_clean, configure, texts


@pytest.fixture
def fakes(monkeypatch):
    with FakeMarket() as market, FakeStreamer(market, tick_s=0.25) as streamer:
        monkeypatch.setenv("STOCKMON_YAHOO_URL", market.url)  # (settings_env does not carry them)
        monkeypatch.setenv("STOCKMON_YAHOO_STREAM_URL", streamer.url)
        yield market, streamer


def configure_stream(stack, tmp_path, app_env, monkeypatch, fakes, watchlist: tuple[str, ...]) -> None:
    """The app on the fake Yahoo market and streamer, streaming ``watchlist``, started on first load."""
    market, streamer = fakes
    configure(
        stack,
        tmp_path,
        app_env,
        monkeypatch,
        autostart=True,
        source="yahoo_stream",
        yahoo_url=market.url,
        yahoo_stream_url=streamer.url,
        watchlist=watchlist,
    )


def test_health_shows_the_stream_connected_its_budget_and_latency(
    stack, tmp_path, app_env, monkeypatch, fakes
):
    configure_stream(stack, tmp_path, app_env, monkeypatch, fakes, ("AAPL", "MSFT"))

    def stream_ok() -> bool:
        if not at.dataframe:
            return False
        table = at.dataframe[0].value.set_index("Component")
        return (
            "Stream · yahoo_stream" in table.index and table.loc["Stream · yahoo_stream", "Status"] == "🟢 OK"
        )

    def published() -> bool:  # every symbol's ticks went through to Kafka (health is up to 1 s old)
        latency = [d.value for d in at.dataframe if "Stage" in d.value.columns]
        symbols = [d.value for d in at.dataframe if "Last message" in d.value.columns]
        return (
            bool(latency and symbols)
            and latency[0].set_index("Stage").loc["received → Kafka", "Samples"] > 0
            and "never" not in set(symbols[0]["Last message"])
        )

    at = app("health", timeout=90).run()
    deadline = time.monotonic() + 60  # a ceiling: the stream connects and publishes within seconds
    while not (stream_ok() and published()) and time.monotonic() < deadline:
        time.sleep(1)
        at.run()
    assert_clean(at)
    assert stream_ok(), at.dataframe[0].value.to_string()
    labels = [m.label for m in at.metric]
    assert {"Connected since", "Messages/s (1 min)", "Reconnects", "Gaps repaired", "Bad frames"} <= set(
        labels
    )
    frames = [d.value for d in at.dataframe]
    budget = next(f for f in frames if "Cap" in f.columns)
    assert list(budget["Cap"]) == ["30 per minute", "300 per hour"]
    latency = next(f for f in frames if "Stage" in f.columns).set_index("Stage")
    assert list(latency.index) == ["trade → received", "received → Kafka", "Kafka → MongoDB"]
    assert latency.loc["received → Kafka", "Samples"] > 0
    symbols = next(f for f in frames if "Last message" in f.columns)
    assert sorted(symbols["Symbol"]) == ["AAPL", "MSFT"] and "never" not in set(symbols["Last message"])
    assert "Stream: yahoo_stream" in texts(at)


def test_live_shows_the_age_of_the_newest_streamed_price(stack, tmp_path, app_env, monkeypatch, fakes):
    configure_stream(stack, tmp_path, app_env, monkeypatch, fakes, ("AAPL",))

    def age_s() -> float | None:
        for c in at.caption:
            if c.value.startswith("Age of the newest price: AAPL "):
                text = c.value.removeprefix("Age of the newest price: AAPL ")
                return float(text.split()[0]) if text.endswith(" s") else 999.0
        return None

    at = app("live", timeout=90).run()
    deadline = time.monotonic() + 60
    while (age_s() is None or age_s() >= 2.0) and time.monotonic() < deadline:
        time.sleep(0.5)
        at.run()
    assert_clean(at)
    age = age_s()
    print(f"\nage of the newest streamed price on Live: {age} s")
    assert age is not None and age < 2.0  # prices younger than 2 s (issue 12)
