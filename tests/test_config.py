"""Settings: precedence (env > secrets.toml > default), clear errors, secrets never shown."""

from pathlib import Path

import pytest

from pipeline.config import ConfigError, Settings, mask_uri


def write_secrets(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "secrets.toml"
    path.write_text(text)
    return path


def test_defaults_need_nothing(tmp_path):
    s = Settings.load(env={}, secrets_paths=[])
    assert s.embedded and s.embedded_kafka and s.embedded_mongo
    assert s.source == "simulated"
    assert s.partitions == 3
    assert "stockmon" in str(s.data_dir)
    assert not str(s.data_dir).startswith(str(Path(__file__).parents[1]))  # not inside the repo


def test_environment_wins_over_secrets(tmp_path):
    secrets = write_secrets(
        tmp_path,
        'STOCKMON_PARTITIONS = 6\nSTOCKMON_SOURCE = "yfinance"\n'
        'MONGODB_URI = "mongodb://u:hunter2@db:27017"\n',
    )
    s = Settings.load(env={"STOCKMON_PARTITIONS": "4"}, secrets_paths=[secrets])
    assert s.partitions == 4  # environment
    assert s.source == "yfinance"  # secrets.toml
    assert s.mongodb_uri == "mongodb://u:hunter2@db:27017"
    assert s.retention_hours == 24.0  # default


def test_stockmon_table_in_secrets(tmp_path):
    secrets = write_secrets(tmp_path, '[stockmon]\nSTOCKMON_DB = "fromtable"\n')
    assert Settings.load(env={}, secrets_paths=[secrets]).db == "fromtable"


@pytest.mark.parametrize(
    "key,value,expected",
    [
        ("STOCKMON_PARTITIONS", "zero", "STOCKMON_PARTITIONS='zero' is not an integer; allowed: 1..256"),
        ("STOCKMON_PARTITIONS", "0", "STOCKMON_PARTITIONS='0' is out of range; allowed: 1..256"),
        (
            "STOCKMON_SOURCE",
            "bloomberg",
            "STOCKMON_SOURCE='bloomberg' is not allowed; use one of: simulated, yfinance, yahoo_stream, alpha_vantage, csv",
        ),
        ("STOCKMON_AUTOSTART", "maybe", "STOCKMON_AUTOSTART='maybe' is not a boolean"),
        ("STOCKMON_TOPIC_PRICES", "bad topic!", "is not a valid Kafka topic name"),
        ("KAFKA_SECURITY_PROTOCOL", "tls", "KAFKA_SECURITY_PROTOCOL='tls' is not allowed"),
        ("STOCKMON_WATCHLIST", "AAPL,not a ticker!", "STOCKMON_WATCHLIST: 'ticker!' is not a valid ticker"),
    ],
)
def test_bad_values_name_key_and_allowed(key, value, expected):
    with pytest.raises(ConfigError) as info:
        Settings.load(env={key: value}, secrets_paths=[])
    assert expected in str(info.value)
    assert key in str(info.value)


@pytest.mark.parametrize(
    "key,value,expected",
    [
        (
            "STOCKMON_DB",
            "$where",
            "STOCKMON_DB='$where' is not a valid MongoDB database name: it contains '$'",
        ),
        ("STOCKMON_DB", "a.b", "STOCKMON_DB='a.b' is not a valid MongoDB database name: it contains '.'"),
        ("STOCKMON_DB", "", "STOCKMON_DB='' is not a valid MongoDB database name: it is empty"),
        ("STOCKMON_DB", "   ", "is not a valid MongoDB database name: it is empty"),
        ("STOCKMON_DB", "a/b", "contains '/'"),
        ("STOCKMON_DB", "a\x00b", "contains '\\x00'"),
        ("STOCKMON_DB", "x" * 64, "is longer than 63 bytes"),
        ("STOCKMON_DB", "é" * 32, "is longer than 63 bytes"),  # 64 bytes in UTF-8
        ("STOCKMON_TOPIC_PRICES", ".", "STOCKMON_TOPIC_PRICES='.' is not a valid Kafka topic name"),
        ("STOCKMON_TOPIC_DEAD_LETTER", "..", "is not a valid Kafka topic name"),
        ("STOCKMON_TOPIC_PRICES", "", "is not a valid Kafka topic name"),
        ("STOCKMON_TOPIC_PRICES", "t" * 250, "is not a valid Kafka topic name"),
        ("STOCKMON_TOPIC_PRICES", "prices$", "is not a valid Kafka topic name"),
        ("STOCKMON_ALPHAVANTAGE_URL", "ftp://example.com/", "is not an http(s) URL with a host"),
        ("STOCKMON_YAHOO_URL", "http://", "is not an http(s) URL with a host"),
        ("STOCKMON_YAHOO_URL", "http://host:99999/", "is not an http(s) URL with a host"),
        (
            "STOCKMON_ALERT_WEBHOOK_URLS",
            "https://user:pw@/hook",
            "'https://user:***@/hook' is not an http(s)",
        ),
    ],
)
def test_names_and_urls_the_servers_would_refuse_are_configuration_errors(key, value, expected):
    """Issue 9: a pymongo/kafka traceback at start-up becomes a sentence naming the key."""
    with pytest.raises(ConfigError) as info:
        Settings.load(env={key: value}, secrets_paths=[])
    assert expected in str(info.value)
    assert str(info.value).startswith(key)
    assert "pw" not in str(info.value).replace("pw@", "")  # a URL's password is never shown


def test_names_the_servers_accept_pass():
    s = Settings.load(
        env={
            "STOCKMON_DB": "stock_mon-2",
            "STOCKMON_TOPIC_PRICES": "a" * 249,
            "STOCKMON_TOPIC_DEAD_LETTER": "stockmon.prices.dlq",
            "STOCKMON_ALPHAVANTAGE_URL": "http://127.0.0.1:8080/query",
            "STOCKMON_ALERT_WEBHOOK_URLS": "https://user:pw@hooks.example/x",
        },
        secrets_paths=[],
    )
    assert (s.db, s.topic_prices, s.alphavantage_url) == (
        "stock_mon-2",
        "a" * 249,
        "http://127.0.0.1:8080/query",
    )


def test_invalid_toml_is_a_clear_error(tmp_path):
    secrets = write_secrets(tmp_path, "this is = = not toml")
    with pytest.raises(ConfigError, match="secrets.toml is not valid TOML"):
        Settings.load(env={}, secrets_paths=[secrets])


def test_secrets_never_in_repr_or_public():
    s = Settings.load(
        env={
            "MONGODB_URI": "mongodb://admin:s3cr3t@db.example:27017/x",
            "KAFKA_SASL_PASSWORD": "kafkapass",
            "ALPHAVANTAGE_API_KEY": "AVKEY123",
            "STOCKMON_ADMIN_PASSWORD": "letmein",
        },
        secrets_paths=[],
    )
    text = repr(s) + str(s.public())
    for secret in ("s3cr3t", "kafkapass", "AVKEY123", "letmein"):
        assert secret not in text
    assert "mongodb://admin:***@db.example:27017/x" in text


def test_mask_uri():
    assert (
        mask_uri("mongodb+srv://me:pw@cluster0.example.net/db")
        == "mongodb+srv://me:***@cluster0.example.net/db"
    )
    assert mask_uri("mongodb://localhost:27017") == "mongodb://localhost:27017"
    assert mask_uri(None) == ""


def test_external_mode_and_kafka_security_pass_through():
    s = Settings.load(
        env={
            "KAFKA_BOOTSTRAP_SERVERS": "b1:9092,b2:9092",
            "MONGODB_URI": "mongodb://h/?replicaSet=rs0",
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": "scram-sha-512",
            "KAFKA_SASL_USERNAME": "u",
            "KAFKA_SASL_PASSWORD": "p",
            "KAFKA_SSL_CAFILE": "/ca.pem",
        },
        secrets_paths=[],
    )
    assert not s.embedded
    assert s.kafka_options() == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "u",
        "sasl_plain_password": "p",
        "ssl_cafile": "/ca.pem",
    }


def test_simulator_hours_reach_the_simulated_source():
    from pipeline.sources import make_source

    assert Settings.load(env={}, secrets_paths=[]).sim_hours == "always"
    settings = Settings.load(env={"STOCKMON_SIM_HOURS": "calendar"}, secrets_paths=[])
    assert make_source("simulated", settings).hours == "calendar"
    with pytest.raises(
        ConfigError, match="STOCKMON_SIM_HOURS='sometimes' is not allowed; use one of: always, calendar"
    ):
        Settings.load(env={"STOCKMON_SIM_HOURS": "sometimes"}, secrets_paths=[])
