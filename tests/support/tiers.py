"""The test tiers, chosen by what a test needs rather than by hand:

- ``unit``: nothing (no server, no network, no browser, no child process). What is left when none
  of the below applies; a network socket or a child process it opens fails it with a sentence.
- ``integration``: the embedded Kafka/MongoDB stack or a local fake provider server: a fixture in
  ``SERVER_FIXTURES`` (directly or through another fixture), or ``@pytest.mark.starts_server`` on a
  module or test that starts one inline, which no fixture shows.
- ``pages``: Streamlit's ``AppTest`` (and usually the servers): the ``app_env`` fixture.
- ``browser``: a real headless Chromium: the ``chromium_path`` fixture.
- ``soak``: minutes of running: resources measured over time (a cap held, a rate), or statistics over
  thousands of model refits (the forecast leakage canary): ``@pytest.mark.slow``.

Every collected test gets exactly one tier marker, the heaviest that applies (browser > soak >
pages > integration > unit), so ``-m unit``, ``-m integration`` ... partition the suite. Tier
markers are only ever added here, never written on a test, so the tiers do not overlap.
"""

from __future__ import annotations

import socket
import subprocess

import pytest

TIERS = {
    "unit": "no server, no network, no browser: the inner loop (`pytest -m unit`)",
    "integration": "talks to the embedded Kafka/MongoDB stack or a local fake provider server",
    "pages": "renders a page with Streamlit's AppTest",
    "browser": "drives a real headless Chromium",
    "soak": "runs for minutes: resources over time (a cap held, a rate) or statistics over many refits",
}
#: Fixtures that start or hand out a server: a test using any of them (directly or through another
#: fixture) is at least ``integration``.
SERVER_FIXTURES = frozenset(
    {"stack", "private_stack", "crash_stack", "settings", "store", "topics"}  # the embedded stack
    | {"server", "fake", "market", "streamer", "fakes"}  # local fake provider servers
)
ORDER = ("browser", "soak", "pages", "integration", "unit")


def register(config: pytest.Config) -> None:
    for name, meaning in TIERS.items():
        config.addinivalue_line("markers", f"{name}: tier: {meaning}")
    config.addinivalue_line(
        "markers", "starts_server: starts a server or a process inline (no fixture shows it): integration"
    )
    config.addinivalue_line(
        "markers", "floors: a page test that also runs at the dependency floors (.ci/min_versions.py)"
    )


def tier_of(item: pytest.Item) -> str:
    """The tier of ``item``: the heaviest of what its fixtures need, ``@pytest.mark.starts_server``
    (written once on a module or test that starts a server or a process inline, which no fixture
    shows) and a ``browser`` marker written by hand."""
    names = set(getattr(item, "fixturenames", ()))
    needs = {name for name in ORDER if item.get_closest_marker(name) is not None}
    if item.get_closest_marker("slow") is not None:
        needs.add("soak")
    if item.get_closest_marker("starts_server") is not None:
        needs.add("integration")
    if "chromium_path" in names:
        needs.add("browser")
    if "app_env" in names:
        needs.add("pages")
    if names & SERVER_FIXTURES:
        needs.add("integration")
    return next((name for name in ORDER if name in needs), "unit")


def assign(items: list[pytest.Item]) -> None:
    """Add each item's tier marker (exactly one per item)."""
    for item in items:
        tier = tier_of(item)
        if item.get_closest_marker(tier) is None:
            item.add_marker(getattr(pytest.mark, tier))


#: Rough seconds a test of each tier takes on the 2-core machine (from ``--durations`` of full runs),
#: only used to order files so that the longest start first.
COST_S = {"soak": 60.0, "browser": 15.0, "integration": 5.0, "pages": 2.0, "unit": 0.1}


def heaviest_files_first(items: list[pytest.Item]) -> None:
    """Reorder ``items`` in place so that the files with the most expected work come first (stable
    within a file and among equals). xdist's ``--dist loadfile`` hands files out in collection order
    (with ``--no-loadscope-reorder``), so the soak and browser files no longer start last and leave
    one worker running alone at the end (longest-processing-time-first scheduling)."""
    cost: dict[str, float] = {}
    for item in items:
        path = item.nodeid.split("::", 1)[0]
        cost[path] = cost.get(path, 0.0) + COST_S[tier_of(item)]
    rank = {path: i for i, path in enumerate(sorted(cost, key=lambda p: -cost[p]))}
    items.sort(key=lambda item: rank[item.nodeid.split("::", 1)[0]])


def forbid_network(monkeypatch: pytest.MonkeyPatch, nodeid: str) -> None:
    """Make any IP socket ``connect``/``connect_ex``/``bind`` and any child process in this test
    raise, naming the rule (Unix sockets and socket pairs, which event loops use internally, stay
    allowed). A child process is refused because it may start a server the guard cannot see."""
    message = (
        f"{nodeid} is a unit test (no server, no network) but opened a network socket or started a "
        "process: give it a server fixture or mark it `@pytest.mark.starts_server` (tests/support/tiers.py)"
    )

    def refuse_process(*args: object, **kwargs: object) -> None:
        raise RuntimeError(message)

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse_process)

    def guard(name: str) -> None:
        original = getattr(socket.socket, name)

        def guarded(self: socket.socket, *args: object, **kwargs: object) -> object:
            if self.family in (socket.AF_INET, socket.AF_INET6):
                raise RuntimeError(message)
            return original(self, *args, **kwargs)

        monkeypatch.setattr(socket.socket, name, guarded)

    for name in ("connect", "connect_ex", "bind"):
        guard(name)
