"""The worker's consumer buffers one fetch response, not a record set per partition (pipeline.app)."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import NewTopic

from cohortflow.pipeline.app import FETCH_RESPONSE_BYTES, hold_prefetch, limit_fetch_response
from cohortflow.pipeline.topics import admin_client
from cohortflow.settings import Settings

PARTITIONS = 6
PARTITION_FETCH = 2 * 1024 * 1024  # what the worker fetches per partition on the stack (its topics' max.message.bytes)
VALUE = b"x" * 1000
PER_PARTITION = 3000  # 3 MB each: more than one fetch of every partition


async def _backlog(settings: Settings, topic: str) -> None:
    async with admin_client(settings) as admin:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=5)
    await producer.start()
    try:
        sent = [await producer.send(topic, VALUE, partition=p) for p in range(PARTITIONS) for _ in range(PER_PARTITION)]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def _buffered(settings: Settings, topic: str, bounded: bool) -> int:
    """Bytes of record values the fetcher holds after 2 s on the backlog, none of them consumed."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False,
                                max_partition_fetch_bytes=PARTITION_FETCH, auto_offset_reset="earliest")
    if bounded:
        limit_fetch_response(consumer)
    await consumer.start()
    try:
        if bounded:
            hold_prefetch(consumer)
        consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
        await asyncio.sleep(2.0)
        held = await consumer.getmany(timeout_ms=0)  # what is buffered: getmany sends no fetch of its own
        return sum(len(record.value) for records in held.values() for record in records)
    finally:
        await consumer.stop()


def test_the_worker_consumer_holds_one_response_where_aiokafka_holds_every_partitions_fetch(
        stack_settings: Settings) -> None:
    topic = f"{stack_settings.topic_prefix}fetch"
    asyncio.run(_backlog(stack_settings, topic))
    plain = asyncio.run(_buffered(stack_settings, topic, bounded=False))
    worker = asyncio.run(_buffered(stack_settings, topic, bounded=True))
    # aiokafka alone: a full fetch of each of the 6 partitions (6 x 2 MiB of 3 MB each), across responses
    assert plain > PARTITIONS * PARTITION_FETCH * 0.9, plain
    # the worker's: one response of at most 8 MiB, and no further fetch while its records wait
    assert 0 < worker <= FETCH_RESPONSE_BYTES, worker
