"""The Yahoo request budget: caps over sliding windows, the priority queue, and 200 symbols' backfills
queued through the real producer without ever exceeding the cap at the fake server."""

from __future__ import annotations

import threading
import time

import pytest
from support.base import make_settings
from support.fake_market import FakeMarket, Instrument
from support.pipeline import wait_for

from pipeline.producer import Producer
from pipeline.sources.budget import BACKFILL, LIVE, REPAIR, BudgetClosed, RequestBudget
from pipeline.sources.yahoo import YahooSource
from pipeline.store import Store
from pipeline.watchlist import Watchlist


def most_in_any_window(times: list[float], window_s: float) -> int:
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - window_s:
            j += 1
        best = max(best, i - j + 1)
    return best


def test_acquire_never_lets_more_than_the_cap_start_in_any_window():
    budget = RequestBudget(((5, 0.5),))
    starts: list[float] = []
    lock = threading.Lock()

    def call():
        budget.acquire(BACKFILL, timeout_s=60)
        with lock:
            starts.append(time.monotonic())

    threads = [threading.Thread(target=call) for _ in range(17)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(starts) == 17
    assert most_in_any_window(starts, 0.5 - 0.01) <= 5
    assert max(starts) - min(starts) >= 3 * 0.5 - 0.05  # 17 calls at 5 per 0.5 s need 3 more windows
    snap = budget.snapshot()
    assert snap["total"] == 17 and snap["caps"][0]["left"] <= 5


def test_gap_repair_is_served_before_queued_backfill_chunks_and_try_acquire_never_waits():
    budget = RequestBudget(((1, 0.3),))
    assert budget.try_acquire(LIVE)
    assert not budget.try_acquire(LIVE)  # full: refused at once, with a next free slot
    assert budget.snapshot()["next_free_s"] > 0
    order: list[str] = []

    def waiter(name: str, priority: int) -> None:
        budget.acquire(priority, timeout_s=30)
        order.append(name)

    backfills = [threading.Thread(target=waiter, args=(f"backfill{i}", BACKFILL)) for i in range(2)]
    for t in backfills:
        t.start()
    wait_for(lambda: budget.snapshot()["waiting"].get("backfill") == 2, 10, every_s=0.01, what="queued")
    repair = threading.Thread(target=waiter, args=("repair", REPAIR))
    repair.start()
    for t in [*backfills, repair]:
        t.join(30)
    assert order[0] == "repair", order  # queued last, served first
    assert budget.snapshot()["by_priority"] == {"repair": 1, "live": 1, "backfill": 2}


def test_a_live_request_is_never_queued_behind_backfills():
    """Issue 19, kind 5: with 50 symbols' backfills queued the first live price waited 305 s. A
    quarter of every cap is left to live prices and repairs: backfills take the rest and wait."""
    budget = RequestBudget(((8, 3600.0),))  # an hour-long window: nothing frees up during the test
    taken: list[int] = []

    def backfill() -> None:
        try:
            budget.acquire(BACKFILL, timeout_s=30)
            taken.append(BACKFILL)
        except BudgetClosed:
            pass

    threads = [threading.Thread(target=backfill) for _ in range(10)]
    for t in threads:
        t.start()
    wait_for(lambda: len(taken) == 6 and budget.snapshot()["waiting"].get("backfill") == 4, 10, every_s=0.01,
             what="6 backfill slots taken, 4 waiting")  # fmt: skip
    assert budget.try_acquire(LIVE) and budget.try_acquire(LIVE)  # the reserve: 8 - 6
    assert not budget.try_acquire(LIVE)  # the cap itself still holds
    budget.close()
    for t in threads:
        t.join(10)
    assert budget.snapshot()["by_priority"] == {"repair": 0, "live": 2, "backfill": 6}


def test_close_wakes_every_waiter_and_the_sustainable_interval_follows_the_caps():
    budget = RequestBudget()
    assert budget.sustainable_interval(6) == pytest.approx(14.4)  # 6 symbols: 1,500/h is the binding cap
    assert budget.sustainable_interval(1) == pytest.approx(2.4)
    small = RequestBudget(((1, 3600.0),))
    small.try_acquire()
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            small.acquire(BACKFILL)
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=wait)
    t.start()
    wait_for(lambda: small.snapshot()["waiting"], 10, every_s=0.01, what="a waiter")
    small.close()
    t.join(10)
    assert len(errors) == 1 and isinstance(errors[0], BudgetClosed)


@pytest.mark.slow  # soak: a request cap held at the server for a minute of queued backfills
def test_200_symbols_queue_their_backfills_and_never_exceed_the_cap_at_the_server(stack, tmp_path, topics):
    """The defaults are 60 a minute; here the same mechanism runs at 12 a second so 200 symbols (two
    chart requests each the first time: yfinance probes the time zone) finish in about 35 s."""
    settings = make_settings(stack, tmp_path, source="yfinance", backfill_days_daily=5, backfill_days_1m=0)
    symbols = [f"S{i:03d}" for i in range(200)]
    with FakeMarket() as market:
        for s in symbols:
            market.instruments[s] = Instrument(s, 50.0 + int(s[1:]), s)
        budget = RequestBudget(((12, 1.0), (1500, 3600.0)))
        source = YahooSource(tmp_path / "yf", timeout=10, base_url=market.url, budget=budget)
        store = Store.from_uri(settings.mongodb_uri, settings.db)
        store.ensure_indexes()
        producer = Producer(
            settings.kafka_bootstrap_servers,
            settings,
            store,
            Watchlist(store.watchlist, None),
            lambda n: source,
        )
        producer.scheduler.start()
        try:
            t0 = time.monotonic()
            for s in symbols:
                producer.request_backfill(s, "yfinance")
            done = wait_for(
                lambda: (lambda n: n if n == 200 else None)(
                    store.backfills.count_documents({"status": "done"})
                ),
                240,
                what="200 backfills done",
            )
            took = time.monotonic() - t0
        finally:
            producer.stop()
            store.close()
        times = [r.at for r in market.chart_requests()]
        busiest = most_in_any_window(times, 1.0 - 0.05)  # 50 ms allowance for arrival jitter
        print(
            f"\n{len(times)} chart requests for {done} backfills in {took:.1f}s; busiest 1 s window: {busiest}"
        )
        assert len(times) == budget.snapshot()["total"] == 400  # every request counted, one slot each
        assert busiest <= 12
        assert took >= 400 / 12 - 2  # the cap, not the machine, set the pace: the backfills queued
