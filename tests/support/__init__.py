"""Shared test helpers (``tests/`` is on pytest's pythonpath, so ``from support.pages import app``).

Fixtures live in ``tests/conftest.py``; everything here is plain functions and classes.
"""
