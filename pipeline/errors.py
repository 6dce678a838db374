"""Errors told to a person: one sentence per failure a user can act on, the details left to the log.

Guarantees: ``explain`` never raises and never returns more than about 300 characters of the
exception's own text; it names the server (MongoDB or Kafka) and the setting to check when the error
says one is unreachable. It lives apart from ``runtime`` and ``health`` so both can use it without
importing each other (they formed the project's one import cycle).
"""

from __future__ import annotations


class StackError(RuntimeError):
    """A server of the local (embedded) stack could not be started or did not answer."""


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the key and what is allowed."""


def explain(exc: BaseException) -> str:
    """Turn an exception into a sentence for a person (details stay in the log)."""
    # here, not at the top: config imports this module for ConfigError, and a `python -m pipeline`
    # command that never talks to a server must not load the client libraries
    from kafka.errors import KafkaError
    from pymongo.errors import (
        ConnectionFailure,
        ExecutionTimeout,
        NetworkTimeout,
        PyMongoError,
        ServerSelectionTimeoutError,
    )

    if isinstance(exc, (StackError, ConfigError)):
        return str(exc)
    if isinstance(exc, ServerSelectionTimeoutError):
        return (
            "MongoDB is not reachable. Check that the server runs and that MONGODB_URI is right "
            f"({exc.__class__.__name__})."
        )
    if isinstance(exc, (NetworkTimeout, ExecutionTimeout)):
        return f"MongoDB did not answer in time ({exc.__class__.__name__}): it is frozen or overloaded."
    if isinstance(exc, ConnectionFailure):
        return f"MongoDB dropped the connection ({exc.__class__.__name__}): {str(exc)[:200]}"
    if isinstance(exc, PyMongoError):
        return f"MongoDB refused the request: {str(exc)[:200]}"
    if isinstance(exc, KafkaError):
        return (
            f"Kafka is not reachable or refused the request ({exc.__class__.__name__}). Check that the "
            "broker runs and that KAFKA_BOOTSTRAP_SERVERS is right."
        )
    return f"{exc.__class__.__name__}: {str(exc)[:300]}"
