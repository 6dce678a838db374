"""The app's up/down colours: one home, two palettes, each named for where it is drawn.

- ``THEME_UP``/``THEME_DOWN``: text (the green/red change figures in tables, ``ui.format.direction_color``).
  They are the Streamlit theme's ``greenColor``/``redColor`` in ``.streamlit/config.toml``, chosen to stay
  readable on both the light and the dark theme; change them together.
- ``CHART_UP``/``CHART_DOWN``: filled marks on Plotly charts (candles, volume bars, the Insights page's
  gains and losses), the usual teal/red of candlestick charts.

Nothing here imports Streamlit or Plotly.
"""

from __future__ import annotations

THEME_UP, THEME_DOWN = "#16a34a", "#dc2626"  # text, readable on both the light and the dark theme
CHART_UP, CHART_DOWN = "#26a69a", "#ef5350"  # candles, volume bars and the Insights charts
