"""Market-data sources behind one interface (see ``base``); ``make_source`` builds one by name."""

from __future__ import annotations

from .base import FetchResult, Source, SourceError, SymbolInfo, UnknownSymbol

__all__ = ["FetchResult", "Source", "SourceError", "SymbolInfo", "UnknownSymbol", "make_source"]


def yahoo_budget(settings):
    """The request budget for Yahoo's chart API from settings (share one per process)."""
    from .budget import RequestBudget

    return RequestBudget(((settings.yahoo_per_minute, 60.0), (settings.yahoo_per_hour, 3600.0)), name="Yahoo")


def make_source(name: str, settings, last_prices=None, budget=None) -> Source:
    """Build the source called ``name`` from settings.

    ``last_prices`` is an optional callable ``(symbols) -> {symbol: last stored close}`` that lets the
    simulated source continue from what is already stored instead of jumping after a restart.
    ``budget`` is the process's Yahoo ``RequestBudget`` (``yahoo_budget(settings)``), shared by the
    ``yfinance`` and ``yahoo_stream`` sources; without it each gets its own.

    ``yfinance`` is Yahoo with live prices from its push streamer (a ``YahooStreamSource`` named
    ``yfinance``; REST only for backfills, gap repair and symbols the stream does not cover) unless
    ``STOCKMON_YAHOO_LIVE=poll``, which gives the polling ``YahooSource`` (batched quotes, one request
    per 50 symbols).
    """
    if name == "simulated":
        from .simulated import SimulatedSource

        return SimulatedSource(seed=settings.sim_seed, last_prices=last_prices, hours=settings.sim_hours)
    if name in ("yfinance", "yahoo_stream"):
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
