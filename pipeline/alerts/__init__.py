"""Alerts and notifications on significant price moves, evaluated by the pipeline itself.

- ``kinds``    the registry of rule kinds: parameters, condition, sentences, data needed
- ``rules``    what to watch (``Rule``, ``validate``, ``RuleBook`` over ``Store.alert_rules``)
- ``engine``   ``AlertEngine.on_stored``: the consumer hook that evaluates every stored batch and
               writes each crossing once to ``Store.alert_events`` (exactly once per crossing)
- ``series``   the in-memory recent prices and measures (% change, volume ratio, RSI, SMA)
- ``events``   fired alerts: deterministic ids, history, acknowledgement
- ``channels`` webhook and e-mail senders, ``send_test``
- ``notifier`` ``Notifier``: delivers from MongoDB in its own threads, retries with backoff

Collections come from ``pipeline.store.Store``. Nothing here imports Streamlit or Kafka.
"""

from .engine import AlertEngine
from .events import ensure_indexes
from .kinds import KINDS
from .notifier import Notifier
from .rules import Rule, RuleBook, RuleError, describe, validate

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
