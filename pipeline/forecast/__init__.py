"""Forecasts that are measured against the naive forecast before they are shown (issue 14).

``models`` (the model families and the volatility bands), ``backtest`` (walk-forward metrics, the
champion rule, the forecast at an as-of), ``job`` (the scheduled run that stores both). Nothing here
imports streamlit.
"""
