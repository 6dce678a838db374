"""Health: one home for "is it working?".

- ``snapshot``: the runtime's health snapshot (``Health``), built off the page's path by
  ``HealthMonitor`` with bounded I/O; the MongoDB ping and the incidents (what failed and recovered).
- ``rules``: pure rules that turn a snapshot into a status per component (OK / WARN / STOP / STALL /
  ERR, each with a one-sentence reason), in the spirit of Burrow; no I/O, no Streamlit. The Health and
  Overview pages show them.
- ``status``: the status contract of ``python -m pipeline status`` (servers, topics, collections),
  which never starts a server.

The process heartbeat stays beside the composition (``pipeline.heartbeat``): wiring starts it, and
wiring sits below health in the layers (pyproject.toml ``[tool.importlinter]``).
"""
