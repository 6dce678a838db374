"""The sections of the Pipeline health page (``pages/health.py``), one function each, in page order.

Guarantees:
- Each public function draws one section with Streamlit, top to bottom, from what it is given (the
  ``Health`` snapshot, the settings, ``now`` in epoch seconds); the page calls them in order and
  owns nothing else but reading the snapshot and evaluating the status rules
  (``pipeline.health.rules``). The helpers they call draw a part of their section.
- No I/O besides two reads through ``ui.data``: ``corporate_actions`` (cached; a sentence instead of
  a table when MongoDB does not answer) and ``collections`` (statistics counted in the background,
  read from memory). Never Kafka: drawing waits on no server.
- A part that does not run (``None`` or missing in the snapshot) reads as empty: a sentence says so
  and nothing raises. The snapshot's always-present keys (``state``, ``mode``, ``mongo``,
  ``kafka``) are read as such.
- Texts, widget order and widget keys (``health_throughput``) are the page's: tests address them.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd
import streamlit as st

from pipeline.embedded.stack import rss_mb
from pipeline.health import rules
from ui import charts, data
from ui import format as fmt

if TYPE_CHECKING:
    from pipeline.config import Settings
    from pipeline.health.rules import ComponentStatus
    from pipeline.health.snapshot import Health


def table(rows: list[dict], **config: Any) -> None:
    """``rows`` as a grid; a missing value reads "–" (the grid's own text for one is "None")."""
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", placeholder=fmt.DASH, **config)


# -- overview --------------------------------------------------------------------------------------


def overview(health: Health, statuses: list[ComponentStatus]) -> None:
    """The overall verdict, one row per component, then what is wrong with the app itself."""
    overall = rules.worst(statuses)
    state = f"{health['state']}, degraded" if health.get("degraded") else health["state"]
    summary = f"Overall: **{rules.BADGES[overall]}** · pipeline {state} · {health['mode']} servers"
    {"OK": st.success, "WARN": st.warning, "STOP": st.info}.get(overall, st.error)(summary)
    table(
        [{"Component": s.component, "Status": s.badge, "Why": s.reason} for s in statuses],
        column_config={"Why": st.column_config.TextColumn(width="large")},
    )
    mongo_down = rules.mongo_down(health)
    if mongo_down:
        st.error(mongo_down, icon="🔴")
    if health.get("error"):
        st.error(health["error"])
    if health.get("degraded"):
        st.warning(f"Pipeline degraded: {health['degraded']}", icon="🟠")
    fixed = rules.fixed_hours(health)
    if fixed:  # the calendars' failures: the market status of those symbols is approximate
        with st.expander(f"🟠 {fixed}"):
            st.code("\n".join(f"{m}: {r}" for m, r in sorted(health["fixed_hours"].items())), language=None)


# -- producer --------------------------------------------------------------------------------------


def producer(health: Health, now: float) -> None:
    """Counters, fetch jobs, failing symbols, sources, request budgets, polling floors, streams."""
    st.subheader("Producer")
    snap = health.get("producer") or {}
    if not snap:
        st.info(
            f"The producer is not running (pipeline {health['state']}). Start the pipeline on the Overview page."
        )
        return
    producer_counters(snap)
    fetch_jobs(snap, now)
    symbol_errors(snap, now)
    sources(snap)
    request_budget(snap)
    polling_floors(snap)
    streams(snap, health.get("consumer") or {}, now)


def producer_counters(producer: dict) -> None:
    producer_tiles = st.columns(4)
    producer_tiles[0].metric("Published", f"{producer.get('published', 0):,}")
    producer_tiles[1].metric("Waiting to re-send", f"{producer.get('pending', 0):,}")
    producer_tiles[2].metric("Send failures", f"{producer.get('send_failed', 0):,}")
    producer_tiles[3].metric("Lost (buffer full)", f"{producer.get('lost_overflow', 0):,}")
    replay = producer.get("replay") or {}
    if replay:
        st.caption(
            f"Replay buffer (acknowledged events kept in case the broker loses them): "
            f"{replay.get('kept', 0):,} events, {replay.get('kept_bytes', 0) / 1024:,.0f} KB, "
            f"{replay.get('window_s', 0):.0f} s · broker log regressions {replay.get('regressions', 0)} · "
            f"re-published {replay.get('republished', 0):,} · waiting {replay.get('waiting', 0):,}"
        )


def fetch_jobs(producer: dict, now: float) -> None:
    """One row per fetch job, and why runs were skipped if any were."""
    jobs = producer.get("jobs") or {}
    if not jobs:
        st.caption("No fetch jobs: no enabled symbol on the watchlist.")
        return
    table(
        [
            {
                "Source": name,
                "Runs": j.get("runs"),
                "Last run": fmt.since(j.get("last_run"), now),
                "Next run": fmt.until(j.get("next_run"), now),
                "Duration": fmt.duration_ms((j.get("duration_s") or 0) * 1000)
                if j.get("duration_s") is not None
                else fmt.DASH,
                "Published": j.get("published", 0),
                "Rejected": j.get("rejected", 0),
                "Skipped runs": j.get("skipped", 0),
                "Last error": j.get("last_error") or "",
            }
            for name, j in sorted(jobs.items())
        ]
    )
    if any(j.get("skipped") for j in jobs.values()):
        st.caption(
            "A skipped run was due while the previous one still ran (or started over 30 s late): "
            "a fetch took longer than the poll interval (a slow or rate-limited source, or a busy "
            "machine). Raise `STOCKMON_POLL_SECONDS` or watch fewer symbols."
        )


def symbol_errors(producer: dict, now: float) -> None:
    """The symbols whose fetches failed, per job (nothing when none did)."""
    per_symbol = [
        {
            "Source": name,
            "Symbol": sym,
            "Published": row.get("published", 0),
            "Errors": row.get("errors", 0),
            "Last error": row.get("last_error") or "",
            "Last good fetch": fmt.since(row.get("last_ok"), now),
        }
        for name, j in sorted((producer.get("jobs") or {}).items())
        for sym, row in sorted((j.get("per_symbol") or {}).items())
    ]
    if any(r["Errors"] for r in per_symbol):
        st.markdown("**Errors per symbol**")
        table([r for r in per_symbol if r["Errors"]])


def sources(producer: dict) -> None:
    """A card per source, up to three side by side."""
    found = producer.get("sources") or {}
    if not found:
        return
    st.markdown("**Sources** (request budget, backoff, last error)")
    cols = st.columns(min(len(found), 3))
    for col, (name, info) in zip(cols * len(found), sorted(found.items()), strict=False):
        with col.container(border=True):
            source_card(name, info)


def source_card(name: str, info: dict) -> None:
    """A source's plain fields as a table, its lists (notes, rows not taken) in expanders."""
    st.markdown(f"**{name}**")
    shown = {k: v for k, v in info.items() if not isinstance(v, (list, dict))}
    st.dataframe(
        # a missing value reads "–", never "None"
        pd.DataFrame({"": list(shown), "value": [fmt.DASH if v is None else str(v) for v in shown.values()]}),
        hide_index=True,
        width="stretch",
    )
    for key, label in (("notes", "Notes"), ("rows_not_taken", "Rows not taken")):
        lines = info.get(key) or []
        if lines:  # a source's own list (the CSV replay's skipped rows): plain text
            with st.expander(f"{label} ({len(lines)})"):
                st.code("\n".join(map(str, lines)), language=None, wrap_lines=True)


def request_budget(producer: dict) -> None:
    """Per source with a request budget: each cap, what is used and left, who waits."""
    budgets: dict[str, tuple[str, dict]] = {}  # by source: (name, its request budget)
    for name, info in (producer.get("sources") or {}).items():
        budget = info.get("budget") or (info.get("rest") or {}).get("budget")
        if budget:
            budgets.setdefault(name, (name, budget))
    rows = []
    for name, budget in budgets.values():
        for cap in budget.get("caps") or []:
            rows.append(
                {
                    "Source": name,
                    "Cap": f"{cap['limit']:,} per "
                    + {60.0: "minute", 3600.0: "hour"}.get(cap["window_s"], f"{cap['window_s']:g} s"),
                    "Used": cap["used"],
                    "Left": cap["left"],
                    "Next free slot": "now"
                    if not budget.get("next_free_s")
                    else f"in {budget['next_free_s']:g} s",
                    "Waiting": ", ".join(f"{k} {v}" for k, v in (budget.get("waiting") or {}).items())
                    or "none",
                }
            )
    if rows:
        st.markdown("**Request budget** (Yahoo's chart and quote APIs, this process)")
        table(rows)


def polling_floors(producer: dict) -> None:
    """A sentence per source polled slower than configured because the request budget says so."""
    for name, plan in sorted((producer.get("poll_intervals") or {}).items()):
        if plan.get("floor_s", 0) > plan.get("setting_s", 0):
            st.caption(
                f"{name}: polling every {plan['used_s']:g} s, not the configured {plan['setting_s']:g} s "
                f"(STOCKMON_POLL_SECONDS): {plan['symbols']} symbols at that pace is what the request "
                "budget sustains. Streamed live prices (STOCKMON_YAHOO_LIVE=stream, the default) need no polling."
            )


# -- streams ---------------------------------------------------------------------------------------


def streams(producer: dict, consumer: dict, now: float) -> None:
    """Per streaming source: connection, latency per stage, last message per symbol."""
    for name, info in sorted((producer.get("sources") or {}).items()):
        if "connected" not in info:
            continue
        stream_connection(name, info, now)
        stream_latency(info, consumer)
        stream_symbols(info, now)


def stream_connection(name: str, info: dict, now: float) -> None:
    st.markdown(f"**Stream: {name}** (`{info.get('url')}`)")
    fallback = info.get("fallback") or {}
    if fallback.get("polling"):
        st.warning(
            f"The stream is down (no connection since {fmt.local_time(datetime.fromtimestamp(fallback['since'], UTC))}): live prices "
            f"are polled from Yahoo's quote API every {fallback['every_s']:g} s instead, under the request "
            f"budget ({fallback['polls']} polls so far). Pushed prices come back with the connection.",
            icon="🔁",
        )
    m = st.columns(5)
    m[0].metric(
        "Connected since", fmt.since(info.get("connected_since"), now) if info["connected"] else "down"
    )
    m[1].metric("Messages/s (1 min)", f"{info.get('messages_per_s', 0):g}")
    m[2].metric("Reconnects", info.get("reconnects", 0))
    m[3].metric("Gaps repaired", info.get("gaps_repaired", 0))
    m[4].metric("Bad frames", info.get("bad_frames", 0))


def stream_latency(info: dict, consumer: dict) -> None:
    latency = info.get("latency") or {}
    stages = [
        ("trade → received", latency.get("trade_to_received") or {}, "last minute"),
        ("received → Kafka", latency.get("received_to_kafka") or {}, "last minute"),
        ("Kafka → MongoDB", consumer.get("end_to_end") or {}, "last 2,000 messages, all sources"),
    ]
    table(
        [
            {
                "Stage": stage,
                "p50": fmt.duration_ms(snap["p50_ms"]) if snap.get("count") else fmt.DASH,
                "p95": fmt.duration_ms(snap["p95_ms"]) if snap.get("count") else fmt.DASH,
                "Samples": snap.get("count", 0),
                "Over": over,
            }
            for stage, snap, over in stages
        ]
    )


def stream_symbols(info: dict, now: float) -> None:
    quotes = info.get("quotes") or {}
    table(
        [
            {
                "Symbol": sym,
                "Last message": fmt.since(at, now) if at else "never",
                "Price": (quotes.get(sym) or {}).get("price"),
                "Session": (quotes.get(sym) or {}).get("market_hours", ""),
            }
            for sym, at in sorted((info.get("last_message") or {}).items())
        ]
    )
    if info.get("bad_frame_reasons"):
        st.caption(
            "Bad frames (dead-lettered): "
            + "; ".join(f"{k} × {v}" for k, v in info["bad_frame_reasons"].items())
        )
    if info.get("last_error"):
        st.caption(f"Last error: {info['last_error']}")


# -- consumer --------------------------------------------------------------------------------------


def consumer(health: Health, now: float) -> None:
    """Counters; lag per partition and the consumer's troubles on the left, throughput on the right."""
    st.subheader("Consumer")
    snap = health.get("consumer") or {}
    if not snap:
        st.info(f"The consumer is not running (pipeline {health['state']}).")
        return
    consumer_counters(snap)
    left, right = st.columns([1, 2])
    with left:
        partition_lag(health, snap, now)
    with right:
        throughput(snap, health.get("producer") or {})


def consumer_counters(consumer: dict) -> None:
    lat = consumer.get("write_latency") or {}
    e2e = consumer.get("end_to_end") or {}
    consumer_tiles = st.columns(5)
    lag_total = consumer.get("lag_total")
    consumer_tiles[0].metric(
        "Lag (messages)",
        "unknown" if lag_total is None else f"{lag_total:,}",
        help="The broker's high watermark minus the consumer's position, summed over partitions",
    )
    consumer_tiles[1].metric(
        "Throughput",
        f"{consumer.get('per_second_1m', 0):.1f}/s",
        help="Stored events per second, last minute",
    )
    consumer_tiles[2].metric(
        "Batch write p95",
        fmt.duration_ms(lat.get("p95_ms")),
        help=f"Time to store one polled batch in MongoDB; p50 {fmt.duration_ms(lat.get('p50_ms'))}, "
        f"p99 {fmt.duration_ms(lat.get('p99_ms'))}",
    )
    consumer_tiles[3].metric(
        "Source → MongoDB p95",
        fmt.duration_ms(e2e.get("p95_ms")),
        help="From the Kafka record's timestamp to its batch being committed",
    )
    consumer_tiles[4].metric(
        "Stored / duplicates", f"{consumer.get('stored', 0):,} / {consumer.get('duplicates', 0):,}"
    )


def partition_lag(health: Health, consumer: dict, now: float) -> None:
    """Lag per partition, the group's last commit, the current or recovered error, the last crash."""
    lag, lag_s = consumer.get("lag") or {}, consumer.get("lag_seconds") or {}
    st.markdown("**Lag per partition**")
    if lag:
        table(
            [
                {"Partition": p, "Messages": n, "Seconds": lag_s.get(p, lag_s.get(str(p), 0.0))}
                for p, n in sorted(lag.items(), key=lambda kv: int(kv[0]))
            ]
        )
    else:
        st.caption("No partitions assigned yet.")
    st.caption(
        f"Group `{consumer.get('group')}` · last commit {fmt.since(consumer.get('last_commit_at'), now)}"
    )
    failure = rules.incident(health, "consumer")
    if failure and failure.get("recovered_at") is None:
        st.caption(f"Error since {rules.clock(failure['since'])}: {failure['error']}")
    elif failure:
        note = rules.recovered(health, "consumer", now)
        st.caption(note[:1].upper() + note[1:])
    crash = consumer.get("last_crash")
    if crash:
        where = f" at partition {crash['partition']} offset {crash['offset']}" if "partition" in crash else ""
        st.caption(
            f"Consumer restarts: {consumer.get('crashes', 0)} · last crash "
            f"{fmt.since(crash.get('at'), now)}{where}: {crash.get('error')}"
        )


def throughput(consumer: dict, producer: dict) -> None:
    """Events per second stored by the consumer and published by the producer, over time."""
    series = {
        "stored (consumer)": consumer.get("throughput") or [],
        "published (producer)": producer.get("throughput") or [],
    }
    if any(series.values()):
        st.plotly_chart(
            charts.throughput(series),
            key="health_throughput",
            config={"displaylogo": False, "displayModeBar": False},
        )
    else:
        st.caption("No throughput yet.")


# -- dead letters, backfills, corporate actions ------------------------------------------------------


def dead_letters(health: Health, settings: Settings) -> None:
    """The dead-letter topic, how many messages this process sent there, and the latest ones."""
    st.subheader("Dead-letter topic")
    consumer = health.get("consumer") or {}
    dead = consumer.get("recent_dead_letters") or []
    st.markdown(
        f"`{settings.topic_dead_letter}` · **{consumer.get('dead_lettered', 0):,}** message(s) "
        "dead-lettered by this process"
    )
    if not dead:
        st.caption("Nothing was dead-lettered: every message so far was valid.")
        return
    table(
        [
            {
                "At": fmt.local_time(datetime.fromtimestamp(d["at"], UTC), with_date=True)
                if d.get("at")
                else "",
                "Reason": d.get("reason", ""),
                "Partition": d.get("partition"),
                "Offset": d.get("offset"),
            }
            for d in reversed(dead)
        ],
        column_config={"Reason": st.column_config.TextColumn(width="large")},
    )


def backfills(health: Health, docs: list[dict]) -> None:
    """Each requested backfill with its progress (``docs``: the snapshot's backfill documents)."""
    st.subheader("Backfills")
    if docs:
        table(
            [
                {
                    "Symbol": b.get("symbol"),
                    "Source": b.get("source"),
                    "Status": b.get("status"),
                    "Progress": 100.0 * (b.get("done") or 0) / b["total"] if b.get("total") else None,
                    "Bars sent": b.get("published", 0),
                    "Requested": fmt.local_time(b.get("requested_at"), with_date=True),
                    "Error": b.get("error") or "",
                }
                for b in docs
            ],
            column_config={
                "Progress": st.column_config.ProgressColumn(min_value=0, max_value=100, format="%.0f%%")
            },
        )
    elif not health["mongo"]["ok"]:
        st.caption("MongoDB does not answer: backfill progress is unknown until it does.")
    else:
        st.caption("No backfill was requested yet. Adding a symbol to the watchlist backfills its history.")


def corporate_actions() -> None:
    """Per watched symbol, its newest corporate action and its newest split: when that split was
    applied to the stored history and how many prices it rescaled (issue 19)."""
    st.subheader("Corporate actions")
    try:
        actions = data.corporate_actions(data.store_key(), tuple(e.symbol for e in data.watchlist_entries()))
    except Exception:  # MongoDB down: the page's MongoDB line already says so
        st.caption("MongoDB does not answer: corporate actions are unknown until it does.")
        return
    last: dict[str, dict] = {}
    splits: dict[str, dict] = {}
    for a in actions:  # oldest ex-date first: the last one kept is the newest
        last[a["symbol"]] = a
        if a["kind"] == "split":
            splits[a["symbol"]] = a
    if not last:
        st.caption(
            "No split or dividend seen yet. A split in a provider's daily answer is applied to the stored "
            "history once (History: split-adjusted, as traded, or adjusted for dividends)."
        )
        return
    table(
        [
            {
                "Symbol": symbol,
                "Last action": action_text(a),
                "Ex-date": a["ex_date"],
                "Last split": f"{action_text(splits[symbol])} on {splits[symbol]['ex_date']}"
                if symbol in splits
                else "",
                "Split applied": fmt.local_time(splits[symbol].get("applied_at"), with_date=True)
                if symbol in splits
                else "",
                "Prices rescaled": splits[symbol].get("rescaled") if symbol in splits else None,
            }
            for symbol, a in sorted(last.items())
        ]
    )


def action_text(a: dict) -> str:
    """A corporate action in a few words: "split 20:1", "dividend 0.23"."""
    return f"split {a['ratio']:g}:1" if a["kind"] == "split" else f"dividend {a['amount']:g}"


# -- processes, topics and collections ---------------------------------------------------------------


def processes(health: Health, started_at: float | None, now: float) -> None:
    """This app's process (``started_at``: when its runtime started) and each embedded server."""
    st.subheader("Processes")
    procs = [
        {
            "Process": "app (Streamlit + pipeline threads)",
            "PID": os.getpid(),
            "Port": None,
            "Alive": True,
            "Uptime": fmt.since(started_at, now).removesuffix(" ago") if started_at else fmt.DASH,
            "Memory (MB)": rss_mb(os.getpid()),
            "Restarts": None,
        }
    ]
    for row in health.get("stack") or []:
        procs.append(
            {
                "Process": f"{row['name']} (embedded)",
                "PID": row["pid"],
                "Port": row["port"],
                "Alive": row["alive"],
                "Uptime": fmt.age(row.get("uptime_s")),
                "Memory (MB)": row.get("rss_mb"),
                "Restarts": (health.get("restarts") or {}).get(row["name"], 0),
            }
        )
    table(procs)
    if health["mode"] != "embedded":
        st.caption(
            f"External servers: Kafka `{health['kafka']['bootstrap']}`, MongoDB `{health['mongo']['uri']}`."
        )
    elif health.get("data_dir"):
        st.caption(f"Embedded servers' data and logs: `{health['data_dir']}`")


def topics(health: Health, settings: Settings, now: float) -> None:
    """The two topics, and how long the embedded broker's topic holds messages."""
    st.subheader("Topics and collections")
    table(
        [
            {
                "Topic": settings.topic_prices,
                "Role": "prices (key = symbol)",
                "Partitions": settings.partitions,
                "Retention": f"{settings.retention_hours:g} h",
                "Messages": (health.get("producer") or {}).get("published", 0),
            },
            {
                "Topic": settings.topic_dead_letter,
                "Role": "dead letters (reason in headers)",
                "Partitions": 1,
                "Retention": f"{settings.retention_hours:g} h",
                "Messages": (health.get("consumer") or {}).get("dead_lettered", 0),
            },
        ],
        column_config={
            "Messages": st.column_config.NumberColumn(help="Sent / dead-lettered by this process")
        },
    )
    holds = rules.topic_holds(health.get("footprint"), now)
    if holds:
        st.caption(holds)


def bar_builder(health: Health, now: float) -> None:
    """A sentence on the bar builder's runs and lag (nothing while it does not run)."""
    bars = health.get("bars") or {}
    if bars:
        st.caption(
            f"Bar builder: {bars.get('runs', 0):,} runs, last {fmt.since(bars.get('last_run'), now)}, "
            f"{bars.get('pending_marks') or 0} range(s) waiting, "
            + (f"{bars['lag_s']:.1f} s behind" if bars.get("lag_s") is not None else "lag unknown")
            + f", {bars.get('last_run_minutes', 0):,} minute(s) rebuilt by the last run"
        )


def collections(health: Health, settings: Settings, now: float) -> None:
    """Documents, size and indexes per collection, as last counted in the background: every minute
    against external servers; on the embedded server only when asked (``ui.data``: it walks whole
    collections to count, and answers nothing else meanwhile)."""
    if not health["mongo"]["ok"]:
        st.caption("MongoDB does not answer: no collection details.")
        return
    embedded = health.get("mode") == "embedded"
    details, at, error = data.collection_details()
    if embedded and st.button(
        "Count documents",
        key="health_count_collections",
        disabled=data.counting_collections(),
        help="The embedded MongoDB server reads every document to count them and answers nothing "
        "else meanwhile (about a second per 20,000 documents), so it counts only when asked.",
    ):
        data.count_collections()
    if details:
        table(
            details,
            column_config={
                "collection": st.column_config.TextColumn("Collection"),
                "documents": st.column_config.NumberColumn("Documents"),
                # not read on the embedded server: hidden rather than a column of "None"
                "size_mb": None if embedded else st.column_config.NumberColumn("Size (MB)"),
                "indexes": st.column_config.TextColumn("Indexes", width="large"),
            },
        )
        how = (
            "when asked; sizes are not read on the embedded server"
            if embedded
            else "every minute, in the background"
        )
        st.caption(f"Database `{settings.db}` · counted {fmt.since(at, now)} ({how})")
    elif error:
        st.caption(f"Could not read collection statistics: {error}")
    elif data.counting_collections():
        st.caption("Counting documents in the background…")
    elif embedded:
        st.caption("Not counted yet: press **Count documents**.")
    else:
        st.caption("Counting documents in the background…")


def updated(health: Health, now: float) -> None:
    """When this page was drawn and when the snapshot's server checks began."""
    st.caption(
        f"Updated {datetime.now(UTC):%H:%M:%S} UTC · servers checked {fmt.since(health.get('checked_at'), now)}"
    )
