"""Market-data sources behind one interface (see ``base``); ``make_source`` builds one by name."""

from __future__ import annotations

from .base import FetchResult, Source, SourceError, SymbolInfo, UnknownSymbol

__all__ = ["FetchResult", "Source", "SourceError", "SymbolInfo", "UnknownSymbol", "make_source"]


def make_source(name: str, settings, last_prices=None) -> Source:
    """Build the source called ``name`` from settings.

    ``last_prices`` is an optional callable ``(symbols) -> {symbol: last stored close}`` that lets the
    simulated source continue from what is already stored instead of jumping after a restart.
    """
    if name == "simulated":
        from .simulated import SimulatedSource

        return SimulatedSource(seed=settings.sim_seed, last_prices=last_prices, hours=settings.sim_hours)
    if name == "yfinance":
        from .yahoo import YahooSource

        return YahooSource(
            cache_dir=settings.data_dir / "yfinance-cache",
            timeout=settings.http_timeout,
            base_url=settings.yahoo_url,
        )
    if name == "alpha_vantage":
        from .alphavantage import AlphaVantageSource

        return AlphaVantageSource(
            api_key=settings.alphavantage_api_key,
            timeout=settings.http_timeout,
            per_minute=settings.alphavantage_per_minute,
            per_day=settings.alphavantage_per_day,
            base_url=settings.alphavantage_url,
            state_dir=settings.data_dir,
        )
    if name == "csv":
        from .csv_replay import CsvReplaySource

        if settings.csv_path is None:
            from ..config import ConfigError

            raise ConfigError("STOCKMON_SOURCE=csv needs STOCKMON_CSV_PATH (a CSV of bars to replay)")
        return CsvReplaySource(settings.csv_path, speed=settings.csv_speed)
    raise ValueError(f"unknown source {name!r}")
