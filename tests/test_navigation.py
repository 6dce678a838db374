"""The app as users open it: ``Home.py`` declares every page of the one list with ``st.navigation``,
each page renders through that frame without an exception, links between pages resolve, and the
page files keep plain names."""

import re

from streamlit.testing.v1 import AppTest
from support.base import ROOT
from support.pages import assert_clean, configure, seeded_store, texts

from ui.navigation import PAGES, spec

HOME = str(ROOT / "Home.py")


def test_the_one_list_names_every_page_file_and_only_those():
    files = sorted(p.name for p in (ROOT / "pages").glob("*.py"))
    assert files == sorted(f"{p.key}.py" for p in PAGES)
    for name in files:
        assert re.fullmatch(r"[a-z0-9_]+\.py", name), name
    assert len({p.key for p in PAGES}) == len({p.title for p in PAGES}) == len(PAGES)
    assert [p.url_path for p in PAGES if p.default] == [""], "exactly one default page, served at /"
    assert spec("live").file == "pages/live.py" and spec("live").url_path == "live"


def test_home_runs_every_page_through_its_navigation(stack, tmp_path, app_env, monkeypatch):
    settings = configure(stack, tmp_path, app_env, monkeypatch)
    with seeded_store(settings, ["AAPL", "MSFT"], with_bars=["AAPL"], days=1):
        at = AppTest.from_file(HOME, default_timeout=90).run()
        assert_clean(at)
        assert "Stock Monitor" in at.title[0].value, "the overview is the default page"
        assert "Watchlist at a glance" in [h.value for h in at.subheader]
        for page in PAGES:
            at.switch_page(page.file).run()
            assert_clean(at)
            title = at.title[0].value if at.title else ""
            want = "Stock Monitor" if page.default else page.title
            assert want in title, (page.key, title)


def test_a_link_to_another_page_resolves_inside_the_navigation(stack, tmp_path, app_env, monkeypatch):
    configure(stack, tmp_path, app_env, monkeypatch)  # empty watchlist: Live links to the Watchlist page
    at = AppTest.from_file(HOME, default_timeout=90).run()
    at.switch_page(spec("live").file).run()
    assert_clean(at)
    assert "the watchlist is empty" in texts(at)
    links = at.get("page_link")
    assert [link.proto.label for link in links] == ["Open the Watchlist"]
    assert links[0].proto.page == "watchlist"  # the URL path from the one list, not a file name
