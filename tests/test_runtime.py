"""Runtime preparation (topics, indexes) and the status contract."""

import dataclasses
import json
import os
import subprocess
import sys

import pytest
from support.base import ROOT, drop_database, make_settings

from pipeline import bus
from pipeline.health.status import collect
from pipeline.runtime import NotConnected, Runtime

CONTRACT_KEYS = {"mode", "kafka", "mongo", "topics", "published", "stored", "dead_lettered", "lag", "pids"}


def test_topics_and_indexes_are_created_idempotently(settings):
    admin = bus.admin_client(settings.kafka_bootstrap_servers, settings)
    try:
        first = bus.ensure_topics(admin, settings)
        second = bus.ensure_topics(admin, settings)
        assert first == {settings.topic_prices: "created", settings.topic_dead_letter: "created"}
        assert second == {settings.topic_prices: "exists", settings.topic_dead_letter: "exists"}
        assert len(bus.partitions_of(admin, settings.topic_prices)) == settings.partitions
        assert len(bus.partitions_of(admin, settings.topic_dead_letter)) == 1
        from kafka.admin import ConfigResource

        configs = admin.describe_configs([ConfigResource("TOPIC", settings.topic_prices)])
        assert "retention.ms" in str(configs) and str(int(settings.retention_hours * 3600_000)) in str(
            configs
        )
    finally:
        admin.close()
    runtime = Runtime(settings).start(pipeline=False)
    try:
        assert runtime.error is None
        assert runtime.counters() == {"published": 0, "stored": 0, "dead_lettered": 0, "lag": 0}
        assert runtime.alerts() == {"engine": None, "channels": {}} and not runtime.producing
        with pytest.raises(NotConnected, match="the pipeline is stopped"):
            runtime.pipeline  # noqa: B018  (the property raises)
        runtime.store.ensure_indexes()  # again: no error
        indexes = runtime.store.prices.index_information()
        assert indexes["business_key"]["unique"] is True
        assert indexes["business_key"]["key"] == [("symbol", 1), ("interval", 1), ("ts", 1)]
    finally:
        drop_database(runtime.store.client, settings.db)
        runtime.stop()


def test_runtime_with_mongodb_down_reports_a_sentence(stack, tmp_path):
    settings = make_settings(
        stack, tmp_path, mongodb_uri="mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=1000"
    )
    runtime = Runtime(settings).start()
    try:
        assert runtime.state == "error"
        assert runtime.error.startswith("MongoDB is not reachable")
        health = runtime.health()
        assert health["mongo"]["ok"] is False and health["kafka"]["ok"] is True
    finally:
        runtime.stop()


def test_status_contract_external(settings, topics):
    out = collect(settings)
    assert CONTRACT_KEYS <= set(out)
    assert out["mode"] == "external"
    assert out["kafka"] == {"bootstrap": settings.kafka_bootstrap_servers, "ok": True}
    assert out["mongo"]["ok"] is True
    assert out["topics"] == {"prices": settings.topic_prices, "dead_letter": settings.topic_dead_letter}
    assert (out["published"], out["stored"], out["dead_lettered"], out["lag"]) == (0, {}, 0, 0)


@pytest.mark.starts_server  # starts the app with its embedded stack in a child process
def test_status_cli_reads_the_running_apps_embedded_stack(tmp_path):
    """The CLI in another process finds the embedded stack through the data folder, starts nothing."""
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URI")}
    env.update(STOCKMON_DATA_DIR=str(tmp_path), STOCKMON_AUTOSTART="false")
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r}); from pipeline.runtime import Runtime; r = Runtime().start(); "
        "print(r.state, flush=True); sys.stdin.readline(); r.stop()"
    )
    app = subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert app.stdout.readline().strip() == "stopped"  # connected, pipeline not started
        result = subprocess.run(
            [sys.executable, "-m", "pipeline", "status", "--json"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        out = json.loads(result.stdout)
        assert CONTRACT_KEYS <= set(out)
        assert out["mode"] == "embedded" and out["kafka"]["ok"] and out["mongo"]["ok"]
        assert set(out["pids"]) == {"kafka", "mongodb", "app"} and out["pids"]["app"] == app.pid
        state = json.loads((tmp_path / "stack.json").read_text())
        assert out["pids"]["kafka"] == state["servers"]["kafka"]["pid"]  # the same servers, not new ones
        # the Health page's verdicts, by its own rules, for what the CLI can see
        assert [(v["component"], v["level"]) for v in out["verdicts"]] == [
            ("Kafka", "OK"),
            ("MongoDB", "OK"),
            ("Local stack", "OK"),
        ]
    finally:
        app.stdin.write("\n")
        app.stdin.flush()
        app.wait(timeout=60)
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "status", "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    gone = json.loads(result.stdout)
    assert gone["kafka"]["ok"] is False
    assert {v["component"]: v["level"] for v in gone["verdicts"]} == {
        "Kafka": "ERR",
        "MongoDB": "ERR",
        "Local stack": "ERR",
    }


def test_start_warms_the_calendars_of_the_watchlists_markets(settings, store):
    """The configured watchlist (SAP.DE, 7203.T, BTC-USD) and the stored one (VOD.L) get their
    exchange calendars built in the background; a 24/7 market needs none."""
    from datetime import UTC, datetime

    from support.pipeline import wait_for

    from pipeline.markets import calendars as markets
    from pipeline.watchlist import Watchlist

    Watchlist(store.watchlist, None).seed(["VOD.L"], "simulated")
    markets.clear_cache()
    configured = dataclasses.replace(settings, watchlist=("SAP.DE", "7203.T", "BTC-USD"))
    runtime = Runtime(configured).start(pipeline=False)
    try:
        assert runtime.error is None
        took = wait_for(lambda: runtime.timings.get("warm_calendars_s"), 120, what="the calendars warmed")
        print(f"calendars of 3 markets ready {took:.2f} s after start began")
        year = datetime.now(UTC).year
        built = {(mic, year) for mic, _, year in markets._TABLES}  # the cache the status lookups read
        assert {("XETR", year), ("XTKS", year), ("XLON", year)} <= built
        assert not any(mic == "" for mic, _ in built)  # BTC-USD (24/7) needs no table
    finally:
        runtime.stop()
