"""Stand-ins for kafka-python's clients in the consumer's unit tests (no server): what the consumer's
loop and join watchdog ask of them, recorded."""

from __future__ import annotations

from dataclasses import dataclass

from kafka.structs import TopicPartition

from pipeline import consumer as consumer_module

PARTITION = TopicPartition("prices", 0)  # the one partition a stand-in client is assigned


@dataclass
class Record:
    """Stands in for a ``ConsumerRecord``: what the loop reads of a polled record."""

    offset: int


class Coordinator:
    """Stands in for ``KafkaConsumer._coordinator``: the group states the consumer reads."""

    def __init__(self) -> None:
        self.joining = self.unknown = self.rejoin = False

    def rebalance_in_progress(self) -> bool:
        return self.joining

    def coordinator_unknown(self) -> bool:
        return self.unknown

    def need_rejoin(self) -> bool:
        return self.rejoin


class Client:
    """Stands in for ``KafkaConsumer`` (one assigned partition) and the dead-letter producer:
    ``poll`` records its timeout and returns the queued ``answers``, then nothing."""

    def __init__(self) -> None:
        self._coordinator = Coordinator()
        self.closed = False
        self.polls: list[int] = []
        self.answers: list[dict] = []

    def assignment(self) -> set:
        return {PARTITION}

    def poll(self, timeout_ms: int = 0) -> dict:
        self.polls.append(timeout_ms)
        return self.answers.pop(0) if self.answers else {}

    def close(self, autocommit: bool = True) -> None:
        self.closed = True


def stand_ins(monkeypatch) -> tuple[list[Client], object]:
    """Every Kafka client a consumer opens is a stand-in, listed in the order opened; and settings."""
    opened: list[Client] = []

    def open_client(*args, **kwargs) -> Client:
        opened.append(Client())
        return opened[-1]

    monkeypatch.setattr(consumer_module.bus, "consumer", open_client)
    monkeypatch.setattr(consumer_module.bus, "producer", lambda *a, **k: Client())
    return opened, type("S", (), {"consumer_group": "g", "topic_prices": "prices"})()
