"""Settings: one typed, immutable object read from the environment and ``.streamlit/secrets.toml``.

Guarantees:
- Precedence is environment variable > secrets.toml (``./.streamlit/secrets.toml``, then
  ``~/.streamlit/secrets.toml``) > built-in default. Nothing needs to be configured.
- A bad value raises ``ConfigError`` naming the key, the value it got (secrets masked) and what is
  allowed. Secrets never appear in ``repr``, logs or pages: use ``Settings.public()`` to show them.
- With ``KAFKA_BOOTSTRAP_SERVERS`` and ``MONGODB_URI`` unset the app runs the embedded local stack.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import platformdirs

from .errors import ConfigError as ConfigError  # raised by Settings.load; defined with explain()
from .sources.registry import REGISTRY

APP_NAME = "Stock Monitor"
SOURCES = tuple(REGISTRY)  # the registered sources' names (pipeline.sources.registry)
DEFAULT_WATCHLIST = ("AAPL", "MSFT", "GOOG", "AMZN", "NVDA", "META")
#: [embedded-db workaround] The bar builder's default period (seconds). Its MongoDB work is about 13 round trips per symbol per
#: run whatever the number of ticks folded in, so a period longer than the poll coalesces them: at
#: rest (6 symbols, 2 s poll; bench/bench_rest.py) app + servers took 11.8% of a core at 1 s and 8.6%
#: at 5 s. 5 s is the rate the Live page and the sidebar redraw at by default.
BAR_PERIOD_S = 5.0


def mask_uri(uri: str | None) -> str:
    """Return the URI with any password replaced by ``***``."""
    if not uri:
        return ""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "***"
    if parts.password is None:
        return uri
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("stockmon", appauthor=False))


def _bool(key: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{key}={text!r} is not a boolean: use true or false")


def _number(kind: Callable[[str], Any], low: float, high: float) -> Callable[[str, str], Any]:
    def parse(key: str, text: str):
        try:
            value = kind(text)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise ConfigError(f"{key}={text!r} is not {what}; allowed: {low}..{high}") from None
        if not low <= value <= high:
            raise ConfigError(f"{key}={text!r} is out of range; allowed: {low}..{high}")
        return value

    return parse


def _choice(*allowed: str) -> Callable[[str, str], str]:
    def parse(key: str, text: str) -> str:
        value = text.strip().lower().replace("-", "_")
        if value not in allowed:
            raise ConfigError(f"{key}={text!r} is not allowed; use one of: {', '.join(allowed)}")
        return value

    return parse


def _topic(key: str, text: str) -> str:
    """A Kafka topic (or group) name as the broker accepts it: 1..249 of ``[a-zA-Z0-9._-]``, not ``.``
    or ``..``; anything else is a ``ConfigError`` naming ``key``."""
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,249}", text) or text in (".", ".."):
        raise ConfigError(
            f"{key}={text[:60]!r} is not a valid Kafka topic name "
            "(1-249 characters from letters, digits, . _ -; not '.' or '..')"
        )
    return text


#: Characters MongoDB refuses in a database name (any platform), and its size limit in bytes.
DB_NAME_FORBIDDEN = '/\\. "$*<>:|?\x00'
DB_NAME_MAX_BYTES = 63


def _db_name(key: str, text: str) -> str:
    """A MongoDB database name the server accepts: not empty, at most 63 bytes (UTF-8), none of
    ``/\\. "$*<>:|?`` nor NUL; anything else is a ``ConfigError`` naming ``key``."""
    name = text.strip()
    bad = sorted({c for c in name if c in DB_NAME_FORBIDDEN})
    if not name or bad or len(name.encode("utf-8")) > DB_NAME_MAX_BYTES:
        why = (
            "is empty"
            if not name
            else f"contains {' '.join(repr(c) for c in bad)}"
            if bad
            else f"is longer than {DB_NAME_MAX_BYTES} bytes"
        )
        raise ConfigError(
            f"{key}={text[:60]!r} is not a valid MongoDB database name: it {why} "
            '(use letters, digits, _ and -; none of / \\ . " $ * < > : | ?)'
        )
    return name


def _currency(key: str, text: str) -> str:
    from .markets.currency import ISO, MINOR

    code = text.strip().upper()
    if code not in ISO or code in MINOR or len(code) != 3:
        raise ConfigError(
            f"{key}={text[:20]!r} is not a currency we convert to; use an ISO code such as USD, EUR, GBP"
        )
    return code


def _optional(key: str, text: str) -> str | None:
    return text.strip() or None


def _path(key: str, text: str) -> Path:
    return Path(text).expanduser()


def _symbols(key: str, text: str) -> tuple[str, ...]:
    from .models import InvalidEvent, normalize_symbol

    try:
        return tuple(normalize_symbol(s) for s in re.split(r"[,\s]+", text) if s)
    except InvalidEvent as exc:
        raise ConfigError(f"{key}: {exc.reason}") from None


def _check_url(key: str, url: str) -> str:
    """``url`` if it is http(s) with a host (and a valid port, if any); else a ``ConfigError`` naming
    ``key`` that never shows the URL's password."""
    try:
        parts = urlsplit(url)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in 0..65535
    except ValueError:
        ok = False
    if not ok:
        raise ConfigError(f"{key}: {mask_uri(url)[:60]!r} is not an http(s) URL with a host")
    return url


def _ws_url(key: str, text: str) -> str:
    """A ws:// or wss:// URL with a host; else a ``ConfigError`` naming ``key``."""
    url = text.strip()
    try:
        parts = urlsplit(url)
        ok = parts.scheme in ("ws", "wss") and bool(parts.hostname)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        ok = False
    if not ok:
        raise ConfigError(f"{key}: {mask_uri(url)[:60]!r} is not a ws:// or wss:// URL with a host")
    return url


def _urls(key: str, text: str) -> tuple[str, ...]:
    return tuple(_check_url(key, u) for u in re.split(r"[,\s]+", text) if u)


def _optional_url(key: str, text: str) -> str | None:
    url = text.strip()
    return _check_url(key, url) if url else None


def _emails(key: str, text: str) -> tuple[str, ...]:
    addresses = tuple(a for a in re.split(r"[,;\s]+", text) if a)
    for a in addresses:
        if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", a):
            raise ConfigError(f"{key}: {a!r} is not an e-mail address")
    return addresses


def _setting(key: str, parse: Callable[[str, str], Any], default: Any, secret: bool = False, doc: str = ""):
    return field(default=default, metadata={"key": key, "parse": parse, "secret": secret, "doc": doc})


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap_servers: str | None = _setting(
        "KAFKA_BOOTSTRAP_SERVERS", _optional, None, doc="host:port[,host:port]; unset = embedded broker"
    )
    kafka_security_protocol: str = _setting(
        "KAFKA_SECURITY_PROTOCOL", _choice("plaintext", "ssl", "sasl_plaintext", "sasl_ssl"), "plaintext"
    )
    kafka_sasl_mechanism: str | None = _setting(
        "KAFKA_SASL_MECHANISM", _optional, None, doc="PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"
    )
    kafka_sasl_username: str | None = _setting("KAFKA_SASL_USERNAME", _optional, None)
    kafka_sasl_password: str | None = _setting("KAFKA_SASL_PASSWORD", _optional, None, secret=True)
    kafka_ssl_cafile: str | None = _setting("KAFKA_SSL_CAFILE", _optional, None)
    mongodb_uri: str | None = _setting(
        "MONGODB_URI", _optional, None, secret=True, doc="mongodb:// or mongodb+srv://; unset = embedded"
    )
    db: str = _setting(
        "STOCKMON_DB", _db_name, "stockmon", doc="MongoDB database name: letters, digits, _ -; under 64 bytes"
    )
    data_dir: Path = _setting("STOCKMON_DATA_DIR", _path, None, doc="embedded servers' data, caches")
    topic_prices: str = _setting("STOCKMON_TOPIC_PRICES", _topic, "stockmon.prices")
    topic_dead_letter: str = _setting("STOCKMON_TOPIC_DEAD_LETTER", _topic, "stockmon.prices.dlq")
    partitions: int = _setting("STOCKMON_PARTITIONS", _number(int, 1, 256), 3)
    retention_hours: float = _setting("STOCKMON_RETENTION_HOURS", _number(float, 0.1, 24 * 365), 24.0)
    replay_window_s: float = _setting(
        "STOCKMON_REPLAY_WINDOW_S",
        _number(float, 1, 3600),
        10.0,
        doc="how long the producer keeps an acknowledged event to re-publish it if the broker loses it",
    )
    replay_max_events: int = _setting(
        "STOCKMON_REPLAY_MAX_EVENTS",
        _number(int, 1000, 10_000_000),
        100_000,
        doc="cap of that replay buffer (about 0.6 KB an event)",
    )
    embedded_retention_mb: float = _setting(
        "STOCKMON_EMBEDDED_RETENTION_MB",
        _number(float, 16, 1_000_000),
        200.0,
        doc="cap (MiB) on the embedded broker's snapshot and memory; older stored messages are trimmed",
    )
    consumer_group: str = _setting("STOCKMON_CONSUMER_GROUP", _topic, "stockmon-store")
    consumer_idle_s: float | None = _setting(
        "STOCKMON_CONSUMER_IDLE_S",
        _number(float, 0, 10),
        None,
        doc="the consumer's rest after a poll that found nothing, seconds (unset: 0.25; 0 for a Kafka "
        "that honours fetch.max.wait.ms)",
    )
    source: str = _setting("STOCKMON_SOURCE", _choice(*SOURCES), "simulated")
    poll_seconds: float = _setting(
        "STOCKMON_POLL_SECONDS", _number(float, 0.2, 3600), 2.0, doc="how often the live job fetches"
    )
    bar_period_s: float = _setting(
        "STOCKMON_BAR_PERIOD_S",
        _number(float, 0.2, 600),
        BAR_PERIOD_S,
        doc="how often the bar builder folds newly stored prices into bars, seconds",
    )
    watchlist: tuple[str, ...] = _setting(
        "STOCKMON_WATCHLIST", _symbols, DEFAULT_WATCHLIST, doc="symbols on first start"
    )
    sim_seed: int | None = _setting("STOCKMON_SIM_SEED", _number(int, 0, 2**63), None)
    base_currency: str = _setting(
        "STOCKMON_BASE_CURRENCY",
        _currency,
        "USD",
        doc="currency of the base-currency view (ISO 4217, e.g. USD, EUR, GBP)",
    )
    sim_hours: str = _setting(
        "STOCKMON_SIM_HOURS",
        _choice("always", "calendar"),
        "always",
        doc="simulator trades always, or only in its exchange's real sessions",
    )
    backfill_days_1m: int = _setting(
        "STOCKMON_BACKFILL_DAYS_1M",
        _number(int, 0, 30),
        2,
        doc="days of 1-minute history fetched for a new symbol",
    )
    backfill_days_daily: int = _setting(
        "STOCKMON_BACKFILL_DAYS_DAILY",
        _number(int, 0, 3650),
        365,
        doc="days of daily history fetched for a new symbol",
    )
    csv_path: Path | None = _setting("STOCKMON_CSV_PATH", _path, None)
    csv_speed: float = _setting(
        "STOCKMON_CSV_SPEED", _number(float, 0.01, 100000), 60.0, doc="replay speed-up for the csv source"
    )
    alphavantage_api_key: str | None = _setting("ALPHAVANTAGE_API_KEY", _optional, None, secret=True)
    alphavantage_per_minute: int = _setting("STOCKMON_AV_PER_MINUTE", _number(int, 1, 1000), 5)
    alphavantage_per_day: int = _setting("STOCKMON_AV_PER_DAY", _number(int, 1, 1000000), 25)
    alphavantage_url: str | None = _setting(
        "STOCKMON_ALPHAVANTAGE_URL", _optional_url, None, doc="override the API base (tests, proxies)"
    )
    yahoo_url: str | None = _setting(
        "STOCKMON_YAHOO_URL", _optional_url, None, doc="override Yahoo's hosts (tests, proxies)"
    )
    yahoo_stream_url: str = _setting(
        "STOCKMON_YAHOO_STREAM_URL",
        _ws_url,
        "wss://streamer.finance.yahoo.com/?version=2",
        doc="Yahoo's streamer for yahoo_stream and streamed yfinance (tests, proxies)",
    )
    yahoo_live: str = _setting(
        "STOCKMON_YAHOO_LIVE",
        _choice("stream", "poll"),
        "stream",
        doc="live prices of the yfinance source: stream (Yahoo's push streamer) or poll (the chart API)",
    )
    yahoo_stream_stall_s: float = _setting(
        "STOCKMON_YAHOO_STREAM_STALL_S",
        _number(float, 1, 3600),
        30.0,
        doc="seconds without a message while a market is open before the stream reconnects",
    )
    yahoo_per_minute: int = _setting(
        "STOCKMON_YAHOO_PER_MINUTE",
        _number(int, 1, 10000),
        30,
        doc="Yahoo chart requests a minute, per process",
    )
    yahoo_per_hour: int = _setting(
        "STOCKMON_YAHOO_PER_HOUR",
        _number(int, 1, 1000000),
        300,
        doc="Yahoo chart requests an hour, per process (below the lowest reported tolerance, 360 an hour)",
    )
    http_timeout: float = _setting("STOCKMON_HTTP_TIMEOUT", _number(float, 0.1, 300), 10.0)
    autostart: bool = _setting("STOCKMON_AUTOSTART", _bool, True, doc="start the pipeline on first load")
    demo_mode: bool = _setting("STOCKMON_DEMO_MODE", _bool, False, doc="read-only public demo")
    admin_password: str | None = _setting("STOCKMON_ADMIN_PASSWORD", _optional, None, secret=True)
    max_symbols: int = _setting("STOCKMON_MAX_SYMBOLS", _number(int, 1, 10000), 50)
    max_history_days: int = _setting(
        "STOCKMON_MAX_HISTORY_DAYS",
        _number(int, 1, 36500),
        3650,
        doc="widest History range a visitor may ask for",
    )
    stack_timeout: float = _setting(
        "STOCKMON_STACK_TIMEOUT", _number(float, 1, 600), 60.0, doc="seconds to wait for the embedded servers"
    )
    mongo_timeout: float = _setting(
        "STOCKMON_MONGO_TIMEOUT",
        _number(float, 0.5, 300),
        10.0,
        doc="seconds a page (or the health check) waits for MongoDB, per operation, retries included",
    )
    mongo_write_timeout: float = _setting(
        "STOCKMON_MONGO_WRITE_TIMEOUT",
        _number(float, 1, 3600),
        60.0,
        doc="socket timeout of the pipeline's own MongoDB client (writes, bar builds), seconds",
    )

    # -- alerts (pipeline.alerts) ----------------------------------------------------------------
    alert_max_age_s: float = _setting(
        "STOCKMON_ALERT_MAX_AGE_S",
        _number(float, 0, 30 * 86400),
        600.0,
        doc="prices older than this are stored but not evaluated; 0 = any age",
    )
    max_alert_rules: int = _setting("STOCKMON_MAX_ALERT_RULES", _number(int, 1, 100000), 200)
    alert_webhook_urls: tuple[str, ...] = _setting(
        "STOCKMON_ALERT_WEBHOOK_URLS", _urls, (), secret=True, doc="JSON POST of every alert to each URL"
    )
    alert_webhook_timeout: float = _setting("STOCKMON_ALERT_WEBHOOK_TIMEOUT", _number(float, 0.1, 120), 5.0)
    alert_retries: int = _setting(
        "STOCKMON_ALERT_RETRIES",
        _number(int, 1, 50),
        5,
        doc="delivery attempts per alert and channel before it is marked failed",
    )
    alert_backoff_s: float = _setting(
        "STOCKMON_ALERT_BACKOFF_S",
        _number(float, 0.01, 3600),
        2.0,
        doc="first retry delay; doubles per attempt (capped at 5 min)",
    )
    smtp_host: str | None = _setting("STOCKMON_SMTP_HOST", _optional, None, doc="unset = no e-mail alerts")
    smtp_port: int = _setting("STOCKMON_SMTP_PORT", _number(int, 1, 65535), 587)
    smtp_security: str = _setting("STOCKMON_SMTP_SECURITY", _choice("starttls", "ssl", "none"), "starttls")
    smtp_username: str | None = _setting("STOCKMON_SMTP_USERNAME", _optional, None)
    smtp_password: str | None = _setting("STOCKMON_SMTP_PASSWORD", _optional, None, secret=True)
    smtp_from: str | None = _setting("STOCKMON_SMTP_FROM", _optional, None, doc="default: the username")
    alert_email_to: tuple[str, ...] = _setting("STOCKMON_ALERT_EMAIL_TO", _emails, (), doc="comma-separated")
    smtp_timeout: float = _setting("STOCKMON_SMTP_TIMEOUT", _number(float, 0.1, 120), 10.0)
    smtp_cafile: str | None = _setting(
        "STOCKMON_SMTP_CAFILE",
        _optional,
        None,
        doc="extra CA certificate to trust (a self-signed mail server)",
    )

    def __post_init__(self):
        if self.data_dir is None:
            object.__setattr__(self, "data_dir", default_data_dir())

    # -- derived --------------------------------------------------------------------------------
    @property
    def embedded(self) -> bool:
        """True when either server is not configured: the app then runs its own local stack."""
        return not (self.kafka_bootstrap_servers and self.mongodb_uri)

    @property
    def embedded_kafka(self) -> bool:
        return not self.kafka_bootstrap_servers

    @property
    def embedded_mongo(self) -> bool:
        return not self.mongodb_uri

    def kafka_options(self) -> dict:
        """Security pass-through for every kafka-python client."""
        opts: dict[str, Any] = {"security_protocol": self.kafka_security_protocol.upper()}
        if self.kafka_sasl_mechanism:
            opts["sasl_mechanism"] = self.kafka_sasl_mechanism.upper()
            opts["sasl_plain_username"] = self.kafka_sasl_username
            opts["sasl_plain_password"] = self.kafka_sasl_password
        if self.kafka_ssl_cafile:
            opts["ssl_cafile"] = self.kafka_ssl_cafile
        return opts

    def public(self) -> dict[str, Any]:
        """Every setting by its key, secrets masked: safe for logs and pages."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.metadata["secret"] and value:
                value = mask_uri(value) if f.name == "mongodb_uri" else "***"
            out[f.metadata["key"]] = str(value) if isinstance(value, Path) else value
        return out

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.public().items())
        return f"Settings({inner})"

    @classmethod
    def describe(cls) -> list[dict[str, str]]:
        """Key, default and meaning of every setting (for the README and the health page)."""
        rows = []
        for f in fields(cls):
            rows.append({"key": f.metadata["key"], "default": repr(f.default), "doc": f.metadata["doc"]})
        return rows

    @classmethod
    def load(
        cls, env: Mapping[str, str] | None = None, secrets_paths: list[Path] | None = None, **overrides: Any
    ) -> Settings:
        """Read settings; ``overrides`` (by field name) win over everything (tests, CLI flags)."""
        env = os.environ if env is None else env
        secrets = read_secrets(secrets_paths)
        values: dict[str, Any] = {}
        for f in fields(cls):
            key = f.metadata["key"]
            if f.name in overrides:
                continue
            raw = env.get(key)
            if raw is None and key in secrets:
                raw = secrets[key]
            if raw is None:
                continue
            if not isinstance(raw, str):
                raw = ",".join(map(str, raw)) if isinstance(raw, (list, tuple)) else str(raw)
            values[f.name] = f.metadata["parse"](key, raw)
        values.update(overrides)
        return cls(**values)


def secrets_locations() -> list[Path]:
    return [Path.cwd() / ".streamlit" / "secrets.toml", Path.home() / ".streamlit" / "secrets.toml"]


def read_secrets(paths: list[Path] | None = None) -> dict[str, Any]:
    """Merge flat keys (and a ``[stockmon]`` table) from secrets files; the first file wins."""
    merged: dict[str, Any] = {}
    for path in reversed(paths if paths is not None else secrets_locations()):
        if not path.is_file():
            continue
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from None
        table = data.pop("stockmon", {})
        merged.update({k: v for k, v in data.items() if not isinstance(v, dict)})
        if isinstance(table, dict):
            merged.update(table)
    return merged
