"""Pipeline health: is every part of source → Kafka → MongoDB doing its job, and if not, which one?

A status per component first (OK / WARN / ERR / STALL / STOP, in the spirit of Burrow), then the
details behind them: producer jobs and sources, the consumer's lag and throughput, dead letters,
backfills, the local server processes, topics and collections. Everything comes from the runtime's
health snapshot (computed in the background: drawing this page waits on no server, so it renders
while MongoDB is frozen and says since when it is not answering) and the collection statistics,
also counted in the background; this page never reads Kafka itself. It reads the snapshot and
evaluates the status rules (``pipeline.health.rules``); ``ui.health_view`` draws each section.
"""

from __future__ import annotations

import time

import streamlit as st

from pipeline.health import rules as status
from ui import data, health_view, page

runtime = page.setup("Pipeline health", "🩺")
settings = runtime.settings

st.title("🩺 Pipeline health")
st.caption(
    "Source → Kafka → MongoDB, component by component. Statuses follow Burrow's idea: a consumer "
    "whose lag grows while nothing is committed is STALLED, not just slow."
)
REFRESH_S = 2  # with the background snapshot's ~1 s + the ping's 2 s: an outage shows within ~5 s
auto = st.toggle(f"Refresh every {REFRESH_S} s", value=True, key="health_auto")


def render() -> None:
    """Read the snapshot, evaluate the status rules, then draw the sections in order."""
    now = time.time()
    with page.sentences("reading the pipeline's health"):
        health = runtime.health()  # the background snapshot: no I/O here
        history = data.lag_history(data.store_key())
        history.add(health.get("consumer"), now)
        backfills = health.get("backfills") or []
    statuses = status.evaluate(health, history.window(60, now), settings.poll_seconds, backfills, now)

    health_view.overview(health, statuses)
    health_view.producer(health, now)
    health_view.consumer(health, now)
    health_view.dead_letters(health, settings)
    health_view.backfills(health, backfills)
    health_view.corporate_actions()
    health_view.processes(health, runtime.started_at, now)
    health_view.topics(health, settings, now)
    health_view.bar_builder(health, now)
    health_view.collections(health, settings, now)
    health_view.updated(health, now)


st.fragment(run_every=REFRESH_S if auto else None)(render)()
