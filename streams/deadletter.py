"""Rejected records go to the deadletter topic, byte for byte, with headers saying why and whence."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from aiokafka import AIOKafkaProducer

from schemas import Rejection


class SourceRecord(Protocol):
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def headers(record: SourceRecord, rejection: Rejection) -> list[tuple[str, bytes]]:
    """The deadletter headers: reason (machine-readable), detail, field, source topic, partition, offset."""
    found = [
        ("reason", rejection.reason.value.encode()),
        ("detail", rejection.detail.encode()),
        ("source_topic", record.topic.encode()),
        ("source_partition", str(record.partition).encode()),
        ("source_offset", str(record.offset).encode()),
    ]
    if rejection.field:
        found.append(("field", rejection.field.encode()))
    return found


class DeadLetters:
    """Copies rejected records to the deadletter topic and waits for the broker's acknowledgement."""

    def __init__(self, producer: AIOKafkaProducer, topic: str, partitions: int) -> None:
        self.producer = producer
        self.topic = topic
        self.partitions = partitions

    async def send(self, rejected: Sequence[tuple[SourceRecord, Rejection]]) -> None:
        """Publish every rejected record before the batch commits, so none is ever lost."""
        if not rejected:
            return
        pending = [
            await self.producer.send(
                self.topic,
                value=record.value,
                key=record.key,
                # Same partition number as the source: one worker owns both, and order per source is kept.
                partition=record.partition % self.partitions,
                headers=headers(record, rejection),
            )
            for record, rejection in rejected
        ]
        for future in pending:
            await future
