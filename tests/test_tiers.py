"""The tier rules of tests/support/tiers.py on stand-in items (no pytest session needed)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from support import tiers


@dataclass
class Item:
    nodeid: str
    fixturenames: tuple[str, ...] = ()
    marks: set[str] = field(default_factory=set)

    def get_closest_marker(self, name: str):
        return pytest.mark.__getattr__(name) if name in self.marks else None


def test_the_tier_is_the_heaviest_need():
    assert tiers.tier_of(Item("a.py::t")) == "unit"
    assert tiers.tier_of(Item("a.py::t", ("stack",))) == "integration"
    assert tiers.tier_of(Item("a.py::t", ("stack", "app_env"))) == "pages"
    assert tiers.tier_of(Item("a.py::t", ("app_env",), {"slow"})) == "soak"
    assert tiers.tier_of(Item("a.py::t", ("chromium_path",), {"slow"})) == "browser"
    assert tiers.tier_of(Item("a.py::t", (), {"starts_server"})) == "integration"


def test_files_with_the_most_expected_work_come_first_and_keep_their_order():
    items = [
        Item("tests/test_units.py::a"),
        Item("tests/test_units.py::b"),
        Item("tests/test_pages.py::a", ("app_env",)),
        Item("tests/test_soak.py::a", (), {"slow"}),
        Item("tests/test_units.py::c"),
        Item("tests/test_pages.py::b", ("app_env",)),
        Item("tests/test_browser.py::a", ("chromium_path",)),
    ]
    tiers.heaviest_files_first(items)  # type: ignore[arg-type]
    assert [i.nodeid for i in items] == [
        "tests/test_soak.py::a",
        "tests/test_browser.py::a",
        "tests/test_pages.py::a",
        "tests/test_pages.py::b",
        "tests/test_units.py::a",
        "tests/test_units.py::b",
        "tests/test_units.py::c",
    ]
