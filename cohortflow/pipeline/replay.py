"""Read the contract topics from their start up to given offsets, decoded (for rebuild and validate).

No consumer group: every partition is assigned by hand and read from offset
0; a partition whose log no longer starts at 0 is refused, because the views
would silently miss what retention deleted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition

from cohortflow.contract import Rejection
from cohortflow.contract.structs import decode  # msgspec, with the contract path for every refusal
from cohortflow.contract.topics import EVENT_TOPICS, topic_name
from cohortflow.core.fold import FoldEvent
from cohortflow.errors import IntegrityError, ServiceUnavailable
from cohortflow.settings import Settings

TP = tuple[str, int]


@dataclass
class ReplayStats:
    records: int = 0
    events: int = 0
    rejected: int = 0
    by_type: dict[str, int] = field(default_factory=dict)

    def merge(self, other: ReplayStats) -> None:
        self.records += other.records
        self.events += other.events
        self.rejected += other.rejected
        for name, count in other.by_type.items():
            self.by_type[name] = self.by_type.get(name, 0) + count


async def partitions(settings: Settings) -> list[TP]:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=10_000)
    try:
        await consumer.start()
    except Exception as exc:
        raise ServiceUnavailable(f"Kafka did not answer at {settings.kafka_bootstrap}: {exc}") from exc
    try:
        found = []
        for name in contract_topics(settings):
            parts = consumer.partitions_for_topic(name) or await _fetch_partitions(consumer, name)
            if not parts:
                raise IntegrityError(f"topic {name} does not exist: nothing to replay (run `cohortflow topics ensure`)")
            found += [(name, p) for p in sorted(parts)]
        return found
    finally:
        await consumer.stop()


async def _fetch_partitions(consumer: AIOKafkaConsumer, name: str) -> set[int] | None:
    await refresh_metadata(consumer)
    return consumer.partitions_for_topic(name)


# Shared with the read API's long-lived end-offsets client (cohortflow.api.offsets), which keeps one
# consumer open and tolerates missing topics where a rebuild must refuse them.
def contract_topics(settings: Settings) -> list[str]:
    """The contract topics' names under the settings' prefix, in EVENT_TOPICS order."""
    return [topic_name(settings.topic_prefix, topic) for topic in EVENT_TOPICS]


async def refresh_metadata(consumer: AIOKafkaConsumer) -> None:
    """Fetch the cluster's metadata now, so topics made after the consumer started are known."""
    await consumer._client.force_metadata_update()  # aiokafka has no public call for this


async def end_offsets_on(consumer: AIOKafkaConsumer, tps: list[TP]) -> dict[TP, int]:
    """The high watermark of each of ``tps``, asked through a started consumer."""
    ends = await consumer.end_offsets([TopicPartition(t, p) for t, p in tps])
    return {(tp.topic, tp.partition): offset for tp, offset in ends.items()}


async def end_offsets(settings: Settings) -> dict[TP, int]:
    """The high watermark of every contract partition now: what a rebuild replays up to."""
    tps = await partitions(settings)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await consumer.start()
    try:
        return await end_offsets_on(consumer, tps)
    finally:
        await consumer.stop()


async def replay(settings: Settings, targets: dict[TP, int], on_events: Callable[[list[FoldEvent]], None],
                 *, batch: int = 50_000, progress: Callable[[int], None] | None = None) -> ReplayStats:
    """Decode every record before ``targets`` (offset per partition) and hand events over in batches."""
    stats = ReplayStats()
    wanted = {tp: end for tp, end in targets.items() if end > 0}
    if not wanted:
        return stats
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", max_partition_fetch_bytes=8 * 1024 * 1024,
                                fetch_max_bytes=64 * 1024 * 1024)
    await consumer.start()
    try:
        assigned = [TopicPartition(t, p) for t, p in wanted]
        consumer.assign(assigned)
        starts = await consumer.beginning_offsets(assigned)
        cut = {f"{tp.topic}[{tp.partition}] starts at {o}" for tp, o in starts.items() if o > 0}
        if cut:
            raise IntegrityError(
                "the topics no longer hold their full history (retention deleted their start): "
                + ", ".join(sorted(cut)) + "; the views cannot be recomputed from them"
            )
        await consumer.seek_to_beginning(*assigned)
        pending = dict(wanted)
        events: list[FoldEvent] = []
        contract = settings.contract
        while pending:
            fetched = await consumer.getmany(*[TopicPartition(t, p) for t, p in pending], timeout_ms=1000,
                                             max_records=batch)
            for tp, records in fetched.items():
                key = (tp.topic, tp.partition)
                end = pending.get(key)
                if end is None:
                    continue
                for record in records:
                    if record.offset >= end:
                        break
                    stats.records += 1
                    result = decode(record.topic, record.key, record.value, contract)
                    if isinstance(result, Rejection):
                        stats.rejected += 1
                    else:
                        events.append(result)
                        stats.by_type[result.type] = stats.by_type.get(result.type, 0) + 1
                if records and records[-1].offset + 1 >= end or await consumer.position(tp) >= end:
                    pending.pop(key, None)
            if len(events) >= batch or (not pending and events):
                stats.events += len(events)
                on_events(events)
                events = []
            if progress:
                progress(stats.records)
        return stats
    finally:
        await consumer.stop()


def chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
