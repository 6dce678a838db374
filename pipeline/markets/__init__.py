"""Markets: what a symbol trades on and in which money, kept apart from the sources that fetch prices.

- ``calendars``: a symbol's market (ISO MIC), its sessions from exchange calendars (holidays, half
  days, lunch breaks, DST), session dates, and the market status now (open, closed, pre/post).
- ``currency``: quote currencies and minor units (GBp, ZAc, ILA), money as text.
- ``fx``: FX rates by session date for showing prices in a base currency.

Every module here is pure (no Kafka, no MongoDB, no Streamlit); sources, pages and the pipeline import
them, never the other way round.
"""
