"""End offsets of the contract topics for freshness and health: one long-lived consumer, answers cached a second.

Rebuilds ask through :func:`cohortflow.pipeline.replay.end_offsets`, which opens a consumer per call
and refuses a missing topic; here a health probe every few seconds must neither open connections
each time nor fail on a topic not made yet, and must answer within seconds, so only the topic names,
the metadata refresh and the offsets request are shared with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING

from cohortflow.settings import Settings

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer

TP = tuple[str, int]


class EndOffsets:
    """End offsets of the contract topics, cached for a second (freshness and health)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._consumer: AIOKafkaConsumer | None = None
        self._cached: tuple[float, dict[TP, int]] | None = None
        self._lock = asyncio.Lock()

    async def end_offsets(self) -> dict[TP, int]:
        """The high watermark of every contract partition Kafka knows; none of a topic not made yet."""
        # Imported here, as before the split: the app imports no Kafka client until a check asks.
        from cohortflow.pipeline.replay import contract_topics, end_offsets_on, refresh_metadata

        async with self._lock:
            if self._cached and self._cached[0] > time.monotonic():
                return self._cached[1]
            consumer = await self._started()
            names = contract_topics(self.settings)
            tps = [(n, p) for n in names for p in (consumer.partitions_for_topic(n) or ())]
            if not tps:
                await refresh_metadata(consumer)  # topics made after the consumer started
                tps = [(n, p) for n in names for p in (consumer.partitions_for_topic(n) or ())]
            found = await asyncio.wait_for(end_offsets_on(consumer, tps), 3) if tps else {}
            self._cached = (time.monotonic() + 1.0, found)
            return found

    async def _started(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            from aiokafka import AIOKafkaConsumer

            consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap,
                                        request_timeout_ms=3000, connections_max_idle_ms=60_000)
            await asyncio.wait_for(consumer.start(), 3)
            self._consumer = consumer
        return self._consumer

    async def close(self) -> None:
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                await self._consumer.stop()
