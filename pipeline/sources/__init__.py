"""Market-data sources behind one interface (see ``base``), registered in ``registry``; ``make_source``
builds one by name."""

from __future__ import annotations

from .base import FetchResult, Source, SourceError, StreamingSource, SymbolInfo, UnknownSymbol
from .registry import REGISTRY, SourceSpec, yahoo_budget

__all__ = [
    "REGISTRY",
    "FetchResult",
    "Source",
    "SourceError",
    "SourceSpec",
    "StreamingSource",
    "SymbolInfo",
    "UnknownSymbol",
    "make_source",
    "yahoo_budget",
]


def make_source(name: str, settings, last_prices=None, budget=None) -> Source:
    """Build the source called ``name`` from settings (its ``SourceSpec.build`` in ``registry``).

    ``last_prices`` is an optional callable ``(symbols) -> {symbol: last stored close}`` that lets the
    simulated source continue from what is already stored instead of jumping after a restart.
    ``budget`` is the process's Yahoo ``RequestBudget`` (``yahoo_budget(settings)``), shared by the
    ``yfinance`` and ``yahoo_stream`` sources; without it each gets its own. Raises ``ValueError`` for
    a name no source has and ``ConfigError`` when a setting the source needs is missing.
    """
    found = REGISTRY.get(name)
    if found is None:
        raise ValueError(f"unknown source {name!r}")
    return found.build(settings, last_prices, budget)
