"""Stock Monitor: overview. Mode and server status, pipeline state with start/pause, the watchlist."""

from __future__ import annotations

import streamlit as st

from ui.runtime import get_runtime, show_start_error

st.set_page_config(page_title="Stock Monitor", page_icon="📈", layout="wide")

st.title("📈 Stock Monitor")
st.caption("Live prices travel source → Kafka → MongoDB and are charted here.")

runtime = get_runtime()
show_start_error(runtime)
health = runtime.health()

# -- servers -------------------------------------------------------------------------------------
mode = health["mode"]
st.subheader("Servers")
st.markdown(
    f"**Mode:** {'embedded local stack' if mode == 'embedded' else 'external servers'} · "
    f"**Pipeline:** {health['state']}"
)
kafka, mongo = health["kafka"], health["mongo"]
left, right = st.columns(2)
with left:
    if kafka["ok"]:
        st.success(f"Kafka is healthy at `{kafka['bootstrap']}` (protocol {kafka['version']}).")
    else:
        st.error(f"Kafka is not reachable at `{kafka['bootstrap'] or 'unknown address'}`.")
with right:
    if mongo["ok"]:
        st.success(f"MongoDB is healthy at `{mongo['uri']}` (version {mongo['version']}).")
    else:
        st.error(f"MongoDB is not reachable at `{mongo['uri'] or 'unknown address'}`. "
                 f"{mongo.get('error') or ''}")
if not (kafka["ok"] and mongo["ok"]):
    if mode == "embedded":
        st.info("The embedded servers are supervised by this app. Check their logs in "
                f"`{health['data_dir']}`, then use **Restart pipeline** below.")
    else:
        st.info("Start the server that is down, or correct KAFKA_BOOTSTRAP_SERVERS / MONGODB_URI; "
                "the pipeline reconnects by itself and loses nothing meanwhile.")

# -- pipeline controls ----------------------------------------------------------------------------
st.subheader("Pipeline")
cols = st.columns([1, 1, 4])
if health["state"] == "running":
    if cols[0].button("⏸ Pause", help="Stop fetching and storing; Kafka keeps what is in flight"):
        runtime.pause()
        st.rerun()
elif health["state"] == "paused":
    if cols[0].button("▶ Resume", type="primary"):
        runtime.resume()
        st.rerun()
else:
    if cols[0].button("▶ Start", type="primary"):
        runtime.resume()
        st.rerun()
if cols[1].button("↻ Refresh"):
    st.rerun()
producer, consumer = health.get("producer") or {}, health.get("consumer") or {}
m = st.columns(4)
m[0].metric("Published", f"{producer.get('published', 0):,}")
m[1].metric("Stored", f"{consumer.get('stored', 0):,}")
m[2].metric("Dead-lettered", f"{consumer.get('dead_lettered', 0):,}")
m[3].metric("Consumer lag", f"{consumer.get('lag_total', 0):,}")
