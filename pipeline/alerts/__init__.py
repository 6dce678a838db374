"""Alerts and notifications on significant price moves, evaluated by the pipeline itself.

- ``rules``    what to watch (``Rule``, ``validate``, ``RuleBook`` over ``alert_rules``)
- ``engine``   ``AlertEngine.on_stored``: the consumer hook that evaluates every stored batch and
               writes each crossing once to ``alert_events`` (exactly once per crossing)
- ``series``   the in-memory recent prices and measures (% change, volume ratio, RSI, SMA)
- ``events``   ``alert_events``: deterministic ids, history, acknowledgement
- ``channels`` webhook and e-mail senders, ``send_test``
- ``notifier`` ``Notifier``: delivers from MongoDB in its own threads, retries with backoff

Nothing here imports Streamlit or Kafka.
"""

from .engine import AlertEngine
from .events import ensure_indexes
from .notifier import Notifier
from .rules import KINDS, Rule, RuleBook, RuleError, describe, validate

__all__ = [
    "AlertEngine",
    "Notifier",
    "Rule",
    "RuleBook",
    "RuleError",
    "KINDS",
    "describe",
    "validate",
    "ensure_indexes",
]
