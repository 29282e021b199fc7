"""Rejected records go to the deadletter topic, byte for byte, with headers saying why and whence."""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError

from cohortflow.contract import Rejection
from cohortflow.stores.port import SourceRecord

DEADLETTER_MAX_BYTES = 8 * 1024 * 1024
"""The deadletter topic takes records this large (``topics ensure`` sets it): oversize records fit."""


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
        pending = [await self._send(record, rejection) for record, rejection in rejected]
        for future in pending:
            await future

    async def _send(self, record: SourceRecord, rejection: Rejection):  # an aiokafka future
        partition = record.partition % self.partitions  # same number as the source: one owner, order kept
        try:
            return await self.producer.send(self.topic, value=record.value, key=record.key, partition=partition,
                                            headers=headers(record, rejection))
        except MessageSizeTooLargeError:
            # Larger than even the deadletter topic takes: keep the reason and origin; the bytes stay
            # in the source topic at the offset the headers name.
            extra = [("value_omitted", f"{len(record.value or b'')} bytes, too large to copy".encode())]
            return await self.producer.send(self.topic, value=None, key=record.key, partition=partition,
                                            headers=headers(record, rejection) + extra)
