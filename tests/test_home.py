"""Home page through Streamlit's AppTest: embedded mode healthy, and MongoDB down as a sentence."""

from streamlit.testing.v1 import AppTest
from support.base import ROOT, make_settings

HOME = str(ROOT / "Home.py")


def texts(at: AppTest) -> str:
    parts = [e.value for e in at.success] + [e.value for e in at.error] + [e.value for e in at.info]
    parts += [e.value for e in at.markdown] + [e.value for e in at.caption]
    return "\n".join(map(str, parts))


def test_home_embedded_mode_both_servers_healthy(tmp_path, monkeypatch, app_env):
    for key in ("KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URI"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("STOCKMON_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("STOCKMON_AUTOSTART", "false")
    at = AppTest.from_file(HOME, default_timeout=90).run()
    assert not at.exception, at.exception
    page = texts(at)
    assert "Mode:** embedded local stack" in page
    assert "Kafka is healthy at `127.0.0.1:" in page
    assert "MongoDB is healthy at `mongodb://127.0.0.1:" in page
    assert not at.error
    assert (tmp_path / "data" / "stack.json").exists()


def test_home_mongodb_down_is_a_sentence_not_a_traceback(stack, tmp_path, app_env):
    app_env(make_settings(stack, tmp_path, mongodb_uri="mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=800"))
    at = AppTest.from_file(HOME, default_timeout=60).run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert errors and errors[0].startswith("The pipeline could not start. MongoDB is not reachable.")
    assert any("MONGODB_URI" in i.value for i in at.info)
    assert [b.label for b in at.button] == ["Try again"]
