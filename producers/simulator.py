"""`cohortflow simulate`: send :class:`producers.cohort_day.CohortDay` to Kafka at a steady rate, or to a file.

Throughput comes from never waiting on a single record: records are encoded
once by the model (orjson), handed to one idempotent aiokafka producer in
chunks of a few milliseconds' worth without awaiting their acknowledgements
(linger and large batches let it build big compressed requests), and only the
final flush waits for the last acknowledgement. Every delivery failure is
counted and fails the run.
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

from producers.cohort_day import DEFAULT_START, CohortDay, Record
from producers.exceptions import PublishTimeout
from schemas import Topic, topic_name

if TYPE_CHECKING:
    from cohortflow.settings import Settings

CHUNK_SECONDS = 0.01  # records handed to the producer per step: this many seconds' worth at the target rate


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

    from producers.publisher import producer_options

    timeout = settings.publish_timeout_seconds
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=int(timeout * 1000),
                                **producer_options(compression=compression, linger_ms=20,
                                                   max_batch_bytes=1024 * 1024))
    try:
        await asyncio.wait_for(producer.start(), timeout)
    except (Exception, asyncio.TimeoutError) as exc:
        await _stop(producer)
        why = str(exc) or "timed out"
        raise PublishTimeout(f"Kafka at {settings.kafka_bootstrap} did not answer within {timeout:g} s ({why}): "
                             "start it (make services) or fix COHORTFLOW_KAFKA_BOOTSTRAP") from None
    names = {t.value: topic_name(settings.topic_prefix, t) for t in Topic}
    failures: list[BaseException] = []

    def delivered(future: asyncio.Future) -> None:
        if not future.cancelled() and future.exception() is not None and len(failures) < 10:
            failures.append(future.exception())  # type: ignore[arg-type]

    chunk = max(1, int(rate * CHUNK_SECONDS))
    done = 0
    began = time.perf_counter()
    try:
        while done < total:
            if failures:
                break
            due = min(total, int((time.perf_counter() - began) * rate) + chunk)
            if due <= done:
                await asyncio.sleep(CHUNK_SECONDS / 2)
                continue
            sent = 0
            for topic, key, value in islice(records, due - done):
                future = await producer.send(names[topic], value, key=key)
                future.add_done_callback(delivered)
                sent += 1
            done += sent
            if progress:
                progress(done)
            await asyncio.sleep(0)  # let the sender task build requests and read acknowledgements
        try:
            await asyncio.wait_for(producer.flush(), max(timeout, 30))
        except asyncio.TimeoutError:
            raise PublishTimeout(f"Kafka did not acknowledge the last records within {max(timeout, 30):g} s") from None
    finally:
        await _stop(producer)
    if failures:
        raise PublishTimeout(f"Kafka refused records ({failures[0]}); the run stopped after {done:,} records")
    return SimulationStats(done, time.perf_counter() - began)


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
