"""The whole pipeline inside one runtime: simulated source -> Kafka -> MongoDB, as the app runs it."""

from collections import defaultdict

from support.base import drop_database, make_settings
from support.pipeline import read_topic, wait_for

from pipeline.health.status import collect
from pipeline.models import decode
from pipeline.runtime import Runtime


def test_simulated_to_kafka_to_mongodb_stores_exactly_what_was_published(stack, tmp_path):
    settings = make_settings(
        stack,
        tmp_path,
        watchlist=("AAPL", "NVDA", "7203.T"),
        poll_seconds=0.3,
        backfill_days_daily=5,
        backfill_days_1m=0,
    )
    runtime = Runtime(settings).start()
    try:
        assert runtime.state == "running", runtime.error
        wait_for(
            lambda: (runtime.health()["producer"] or {}).get("published", 0) > 150,
            60,
            what="published events",
        )
        # pause() returns once no fetch or backfill chunk is publishing any more: the count is final
        assert runtime.pipeline.producer.pause(), "a job was still publishing 30 s after pause()"
        published = runtime.pipeline.producer.snapshot()["published"]
        wait_for(
            lambda: runtime.pipeline.consumer.snapshot()["consumed"] >= published,
            60,
            what="consumer to catch up",
        )
        wait_for(lambda: collect(settings)["lag"] == 0, 60, what="the last batch stored and committed")
        # what Kafka holds, reduced to the newest revision per business key
        newest = {}
        for record in read_topic(settings, settings.topic_prices):
            event = decode(record.value)
            if event.key not in newest or event.fetched_at > newest[event.key].fetched_at:
                newest[event.key] = event
        stored = {}
        for doc in runtime.store.prices.find({}, {"_id": 0}):
            event = decode(__import__("json").dumps(doc, default=lambda d: d.isoformat()).encode())
            stored[event.key] = event
        assert len(newest) > 50
        assert published > len(newest)  # forming 1m bars were revised and only the newest revision counts
        assert stored.keys() == newest.keys()
        assert all(stored[k] == newest[k] for k in newest), (
            "a stored event differs from its newest published revision"
        )
        intervals = defaultdict(int)
        for key in stored:
            intervals[key[1]] += 1
        assert set(intervals) == {"tick", "1m", "1d"}
        status = collect(settings)
        assert status["published"] == published == runtime.pipeline.consumer.snapshot()["consumed"]
        assert status["lag"] == 0 and status["dead_lettered"] == 0
        assert sum(status["stored"].values()) == len(stored)
        assert set(status["stored"]) == {"AAPL", "NVDA", "7203.T"}
        # bars follow the stored prices
        wait_for(lambda: runtime.store.bar_marks.count_documents({}) == 0, 60, what="bars to be built")
        first_tick = min(k[2] for k in stored if k[1] == "tick" and k[0] == "AAPL")
        bars = runtime.store.bars_frame(["AAPL"], "1m", first_tick.replace(second=0, microsecond=0))
        ticks = [e for k, e in stored.items() if k[0] == "AAPL" and k[1] == "tick"]
        assert not bars.empty and (bars["high"] >= bars["low"]).all()
        assert bars["high"].max() >= max(t.close for t in ticks) and bars["low"].min() <= min(
            t.close for t in ticks
        )
    finally:
        drop_database(runtime.store.client, settings.db)
        runtime.stop()
