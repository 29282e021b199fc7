"""`cohortflow simulate`: send :class:`cohortflow.producers.cohort_day.CohortDay` to Kafka at a steady
rate, or to a file.

Throughput comes from never waiting on a single record: records are encoded
once by the model (orjson), gathered per topic-partition into batches of up
to 1 MiB here (sent when full or 50 ms old) and handed whole to one
idempotent aiokafka producer without awaiting their acknowledgements; only
the final flush waits for the last one. Every delivery failure is counted and
fails the run. About 43,000 records/s with gzip on the 2-core CI machine
(Kafka on the same machine), 87,000/s for --dry-run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from cohortflow.contract import Topic, topic_name
from cohortflow.producers.cohort_day import DEFAULT_START, CohortDay, Record
from cohortflow.producers.exceptions import PublishTimeout

if TYPE_CHECKING:
    from aiokafka import AIOKafkaProducer
    from aiokafka.producer.message_accumulator import BatchBuilder

    from cohortflow.settings import Settings

CHUNK_SECONDS = 0.01  # records handed to the producer per step: this many seconds' worth at the target rate
LINGER_SECONDS = 0.05  # an open batch is sent once this old (or full)
BATCH_BYTES = 1024 * 1024
STEP_MAX = 20_000  # most records per step, so progress and acknowledgements keep flowing


@dataclass
class SimulationStats:
    """What a run did; ``rate`` is records per wall-clock second."""

    records: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.records / max(self.seconds, 1e-9)


def cohort_records(*, seed: int, campuses: int, students: int, pillars: tuple[str, ...],
                   start: datetime = DEFAULT_START) -> Iterator[Record]:
    """The simulated cohort's records, forever, in event-time order (deterministic for the arguments)."""
    return CohortDay(seed=seed, campuses=campuses, students=students, pillars=pillars, start=start).records()


def write_jsonl(records: Iterator[Record], total: int, out: Path, topic_prefix: str,
                progress: Callable[[int], None] | None = None) -> SimulationStats:
    """Write ``total`` records as JSON lines ``{"topic", "key", "value"}`` (value: the event object)."""
    began = time.perf_counter()
    names = {t.value: orjson.dumps(topic_name(topic_prefix, t)) for t in Topic}
    done = 0
    with out.open("wb") as f:
        while done < total:
            lines = [b'{"topic":%b,"key":%b,"value":%b}\n' % (names[t], orjson.dumps(k.decode()), v)
                     for t, k, v in islice(records, min(10_000, total - done))]
            f.writelines(lines)
            done += len(lines)
            if progress:
                progress(done)
    return SimulationStats(done, time.perf_counter() - began)


async def send(settings: Settings, records: Iterator[Record], total: int, rate: float,
               progress: Callable[[int], None] | None = None, compression: str | None = "gzip") -> SimulationStats:
    """Publish ``total`` records at ``rate`` records/s (as fast as possible when the machine is slower)."""
    from aiokafka import AIOKafkaProducer

    from cohortflow.producers.publisher import producer_options

    timeout = settings.publish_timeout_seconds
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=int(timeout * 1000),
                                **producer_options(compression=compression, linger_ms=0,  # batches are formed here
                                                   max_batch_bytes=BATCH_BYTES))
    try:
        await asyncio.wait_for(producer.start(), timeout)
    except (TimeoutError, Exception) as exc:  # noqa: BLE001 - any failure to start is reported as PublishTimeout
        await _stop(producer)
        why = str(exc) or "timed out"
        raise PublishTimeout(f"Kafka at {settings.kafka_bootstrap} did not answer within {timeout:g} s ({why}): "
                             "start it (make services) or fix COHORTFLOW_KAFKA_BOOTSTRAP") from None
    batches = _PartitionBatches(producer)
    for t in Topic:
        await batches.add_topic(t.value, topic_name(settings.topic_prefix, t))
    chunk = max(1, int(rate * CHUNK_SECONDS))
    done = 0
    began = time.perf_counter()
    try:
        while done < total and not batches.failures:
            now = time.perf_counter()
            due = min(total, int((now - began) * rate) + chunk, done + STEP_MAX)  # behind: catch up in steps
            if due <= done:
                await batches.send_older_than(now - LINGER_SECONDS)
                await asyncio.sleep(CHUNK_SECONDS / 2)
                continue
            for topic, key, value in islice(records, due - done):
                await batches.append(topic, key, value)
                done += 1
            await batches.send_older_than(time.perf_counter() - LINGER_SECONDS)
            if progress:
                progress(done)
            await asyncio.sleep(0)  # let the sender task build requests and read acknowledgements
        await batches.send_older_than(float("inf"))
        try:
            await asyncio.wait_for(producer.flush(), max(timeout, 30))
        except TimeoutError:
            raise PublishTimeout(f"Kafka did not acknowledge the last records within {max(timeout, 30):g} s") from None
    finally:
        await _stop(producer)
    if batches.failures:
        raise PublishTimeout(f"Kafka refused records ({batches.failures[0]}); the run stopped after {done:,} records")
    return SimulationStats(done, time.perf_counter() - began)


class _PartitionBatches:
    """Records gathered into one open batch per topic-partition, handed to aiokafka whole.

    aiokafka's ``send`` costs a future, a callback and a murmur2 hash per
    record; here a key's partition is hashed once (with aiokafka's own
    partitioner, so keys land where every other producer puts them) and a
    whole batch costs one future. Batches of one partition are sent in
    order, so per-key order holds; the idempotent producer still numbers them.
    """

    def __init__(self, producer: AIOKafkaProducer) -> None:
        from aiokafka.partitioner import DefaultPartitioner

        self.producer = producer
        self.partitioner = DefaultPartitioner()
        self.names: dict[str, str] = {}
        self.partitions: dict[str, list[int]] = {}
        self.partition_of: dict[tuple[str, bytes], int] = {}
        self.open: dict[tuple[str, int], tuple[BatchBuilder, float]] = {}
        self.failures: list[BaseException] = []

    async def add_topic(self, topic: str, name: str) -> None:
        self.names[topic] = name
        self.partitions[topic] = sorted(await self.producer.partitions_for(name))

    async def append(self, topic: str, key: bytes, value: bytes) -> None:
        partition = self.partition_of.get((topic, key))
        if partition is None:
            partition = self.partitioner(key, self.partitions[topic], self.partitions[topic])
            self.partition_of[(topic, key)] = partition
        found = self.open.get((topic, partition))
        if found is None:
            found = self.open[(topic, partition)] = (self.producer.create_batch(), time.perf_counter())
        if found[0].append(timestamp=None, key=key, value=value) is None:  # full: send it, start the next one
            await self._send(topic, partition)
            self.open[(topic, partition)] = (builder := self.producer.create_batch(), time.perf_counter())
            if builder.append(timestamp=None, key=key, value=value) is None:
                raise PublishTimeout(f"a record of {len(value):,} bytes does not fit in a batch")

    async def send_older_than(self, moment: float) -> None:
        for (topic, partition), (_, opened) in list(self.open.items()):
            if opened <= moment:
                await self._send(topic, partition)

    async def _send(self, topic: str, partition: int) -> None:
        builder, _ = self.open.pop((topic, partition))
        if builder.record_count():
            future = await self.producer.send_batch(builder, self.names[topic], partition=partition)
            future.add_done_callback(self._delivered)

    def _delivered(self, future: asyncio.Future) -> None:
        if not future.cancelled() and future.exception() is not None and len(self.failures) < 10:
            self.failures.append(future.exception())  # type: ignore[arg-type]


async def _stop(producer: object) -> None:
    try:
        await producer.stop()  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - stopping a producer that never connected
        pass


def parse_duration(text: str) -> float:
    """``"10m"``, ``"90s"``, ``"1h"``, ``"1h30m"`` or plain seconds -> seconds."""
    import re

    text = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r}; use e.g. 90s, 10m, 1h30m")
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)
