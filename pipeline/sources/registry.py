"""The registry of market-data sources: one ``SourceSpec`` per source, the one place a source is named.

Guarantees:
- ``REGISTRY`` maps each source's name (stored in every event's ``source`` field, in the watchlist
  and in ``STOCKMON_SOURCE``) to its spec; ``config.SOURCES`` and ``make_source`` derive from it, so a
  new source is one entry here plus its module (and its test and fake).
- Building a source imports its module only then (yfinance, aiohttp and websockets stay off the
  start-up path of a process that does not use them).
- A source's market-hours behaviour is a property of its spec (``trades_outside_hours``,
  ``extended_hours``): no page or module compares source names to decide what "open" means.
- Capabilities are protocols in ``base`` (``StreamingSource``), checked with ``isinstance``, never
  with ``hasattr``.

The pattern is the alert kinds' registry (``pipeline.alerts.kinds``), as OpenBB's provider registry
does it for data providers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from ..markets.calendars import Market, MarketStatus, market_for, market_status

if TYPE_CHECKING:  # the settings module imports this registry for the names
    from ..config import Settings
    from .base import Source
    from .budget import RequestBudget

#: ``(symbols) -> {symbol: last stored close}``: lets the simulator continue from what is stored
LastPrices = Callable[[Sequence[str]], Mapping[str, float]]


@dataclass(frozen=True)
class SourceSpec:
    """One market-data source.

    ``build(settings, last_prices, budget)`` returns a ready ``Source`` (raises ``ConfigError`` when a
    setting it needs is missing); ``trades_outside_hours(sim_hours)``
    (given ``STOCKMON_SIM_HOURS``) is True when its prices move whatever the exchange's hours (the
    simulator unless that setting is ``calendar``); ``extended_hours`` is True when it serves pre-market and
    after-hours prices for US listings (Yahoo's chart API), so those windows are named in a status;
    ``known_names()`` (optional) gives the display names of the symbols it models without I/O;
    ``knows(symbol)`` says without I/O whether the source knows a ticker it accepts: False means it
    serves the ticker anyway with invented prices (the simulator outside its catalogue), None (the
    default) that only asking the provider could tell (its ``lookup`` refuses unknown tickers);
    ``label`` is how a sentence for people names it ("The simulator"; its ``name`` when empty)."""

    name: str
    build: Callable[[Settings, LastPrices | None, RequestBudget | None], Source]
    trades_outside_hours: Callable[[str], bool] = lambda sim_hours: False
    extended_hours: bool = False
    known_names: Callable[[], dict[str, str]] | None = None
    knows: Callable[[str], bool | None] = lambda symbol: None
    label: str = ""


def yahoo_budget(settings: Settings) -> RequestBudget:
    """The request budget for Yahoo's chart API from settings (share one per process)."""
    from .budget import RequestBudget

    return RequestBudget(((settings.yahoo_per_minute, 60.0), (settings.yahoo_per_hour, 3600.0)), name="Yahoo")


def _simulated(settings: Settings, last_prices: LastPrices | None, budget: RequestBudget | None) -> Source:
    from .simulated import SimulatedSource

    return SimulatedSource(seed=settings.sim_seed, last_prices=last_prices, hours=settings.sim_hours)


def _simulated_names() -> dict[str, str]:
    from .simulated import known_names

    return known_names()


def _simulated_knows(symbol: str) -> bool:
    from .simulated import knows

    return knows(symbol)


def _yahoo(name: str) -> Callable[[Settings, LastPrices | None, RequestBudget | None], Source]:
    """``yfinance`` is Yahoo with live prices from its push streamer (a ``YahooStreamSource`` named
    ``yfinance``; REST only for backfills, gap repair and symbols the stream does not cover) unless
    ``STOCKMON_YAHOO_LIVE=poll``, which gives the polling ``YahooSource`` (batched quotes, one request
    per 50 symbols); ``yahoo_stream`` is always the streamer."""

    def build(settings: Settings, last_prices: LastPrices | None, budget: RequestBudget | None) -> Source:
        from .yahoo import YahooSource

        rest = YahooSource(
            cache_dir=settings.data_dir / "yfinance-cache",
            timeout=settings.http_timeout,
            base_url=settings.yahoo_url,
            budget=budget if budget is not None else yahoo_budget(settings),
            live="quote" if name == "yfinance" and settings.yahoo_live == "poll" else "chart",
        )
        if rest.live == "quote":
            return rest
        from .yahoo_stream import YahooStreamSource

        return YahooStreamSource(
            rest, settings.yahoo_stream_url, stall_s=settings.yahoo_stream_stall_s, name=name
        )

    return build


def _alpha_vantage(
    settings: Settings, last_prices: LastPrices | None, budget: RequestBudget | None
) -> Source:
    from .alphavantage import AlphaVantageSource

    return AlphaVantageSource(
        api_key=settings.alphavantage_api_key,
        timeout=settings.http_timeout,
        per_minute=settings.alphavantage_per_minute,
        per_day=settings.alphavantage_per_day,
        base_url=settings.alphavantage_url,
        state_dir=settings.data_dir,
    )


def _csv(settings: Settings, last_prices: LastPrices | None, budget: RequestBudget | None) -> Source:
    from ..errors import ConfigError
    from .csv_replay import CsvReplaySource

    if settings.csv_path is None:
        raise ConfigError("STOCKMON_SOURCE=csv needs STOCKMON_CSV_PATH (a CSV of bars to replay)")
    return CsvReplaySource(settings.csv_path, speed=settings.csv_speed)


REGISTRY: dict[str, SourceSpec] = {
    spec.name: spec
    for spec in (
        SourceSpec(
            "simulated",
            _simulated,
            trades_outside_hours=lambda sim_hours: sim_hours != "calendar",
            known_names=_simulated_names,
            knows=_simulated_knows,
            label="The simulator",
        ),
        SourceSpec("yfinance", _yahoo("yfinance"), extended_hours=True),
        SourceSpec("yahoo_stream", _yahoo("yahoo_stream")),
        SourceSpec("alpha_vantage", _alpha_vantage),
        SourceSpec("csv", _csv),
    )
}


def trades_outside_hours(name: str, sim_hours: str = "always") -> bool:
    """True when source ``name``'s prices move whatever the exchange's hours, given the
    ``STOCKMON_SIM_HOURS`` setting (False for a name no source has)."""
    found = REGISTRY.get(name)
    return found is not None and found.trades_outside_hours(sim_hours)


def knows(source: str, symbol: str) -> bool | None:
    """Whether source ``source`` knows ``symbol`` (normalised), by its spec's ``knows``, without I/O:
    False means its prices for it are invented; None when it cannot tell offline or no source has
    that name."""
    found = REGISTRY.get(source)
    return None if found is None else found.knows(symbol)


def label(source: str) -> str:
    """How a sentence names source ``source`` ("The simulator"): its spec's ``label``, else the name
    itself (also for a name no source has)."""
    found = REGISTRY.get(source)
    return (found.label if found is not None else "") or source


def symbol_status(symbol: str, at: datetime, source: str = "", market: Market | None = None) -> MarketStatus:
    """The exchange's real state at ``at`` (aware) for a watchlist symbol, whatever its source: a
    source that trades outside the exchange's hours (the simulator by default) does not make a closed
    exchange "open" (pages say that once, ``outside_hours_note``); a source that serves extended hours
    (``extended_hours``) has the pre-market and after-hours windows named. ``market`` (from the
    provider's metadata) defaults to ``market_for(symbol)``."""
    market = market or market_for(symbol)
    found = REGISTRY.get(source)
    return market_status(market, at, extended=found is not None and found.extended_hours)


def prices_move(source: str, status: MarketStatus, sim_hours: str = "always") -> bool:
    """True when a new price from ``source`` is expected now: its exchange is open (``status``), or
    the source trades outside the exchange's hours (``trades_outside_hours``)."""
    return status.is_open or trades_outside_hours(source, sim_hours)


def outside_hours_note(
    entries: Iterable[tuple[str, str]], at: datetime, sim_hours: str = "always"
) -> str | None:
    """One plain sentence for a page when a source keeps prices moving while their exchange is not
    open, e.g. "Simulated prices: NYSE is closed; the simulator keeps prices moving outside its
    hours."; None when no (symbol, source) of ``entries`` is in that case. ``at`` is aware."""
    closed: dict[str, None] = {}
    for symbol, source in entries:
        if not trades_outside_hours(source, sim_hours):
            continue
        market = market_for(symbol)
        if not market.always_open and not market_status(market, at).is_open:
            closed[market.exchange] = None
    if not closed:
        return None
    names = list(closed)
    where = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    verb = "is" if len(names) == 1 else "are"
    return (
        f"Simulated prices: {where} {verb} closed, but the simulator keeps prices moving so the demo "
        "never stands still."
    )


#: The help beside ``outside_hours_note`` (a setting's name is for the one who runs the app, not
#: in the sentence every visitor reads).
SIM_HOURS_HELP = (
    "Set STOCKMON_SIM_HOURS=calendar (environment or .streamlit/secrets.toml) to make the simulator "
    "trade only in each exchange's real sessions."
)
