"""Scale-out on the real stack: the group grows and shrinks during ingest, and partitions are added mid-stream.

1. The consumer group grows from 1 to 3 worker processes while 200,000 records arrive, one of the three is
   killed (SIGKILL), then it shrinks to 1 (the other stopped gracefully): the views, badges, audit trail and
   dead letters equal the oracle's of the whole log.
2. Partitions are added to a contract topic mid-stream: the worker refuses to go on with a message naming
   the topic and both counts, having applied exactly the records below its stored offsets and nothing of
   the new partitions; a worker started while the counts differ refuses too; once every topic has the new
   count, a worker started again brings the views to the oracle's of the whole log (docs/semantics.md,
   "Adding partitions").
3. Why it refuses, with the in-memory store: two members numbering their shards by two partition counts
   lose updates, where members of one count stay exact.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import NewPartitions

from cohortflow.contract import DEFAULT_CONTRACT
from cohortflow.contract.topics import EVENT_TOPICS, Topic, topic_name
from cohortflow.core.engine import engine, shard_of
from cohortflow.core.fold import FoldConfig
from cohortflow.errors import OperationalError
from cohortflow.pipeline.app import partitions_changed
from cohortflow.pipeline.processor import BatchProcessor
from cohortflow.pipeline.topics import admin_client, describe
from cohortflow.settings import Settings
from cohortflow.stores.in_memory import InMemoryBadges, InMemoryDeadLetters, InMemoryViews
from tests import oracle
from tests.logs import Record, adversarial_log, expected_deadletters, valid_events
from tests.pipeline.harness import (
    Worker,
    applied,
    compare,
    deadletters,
    end_offsets,
    free_port,
    records_of,
    redis_badges,
    stored_offsets,
    wait_caught_up,
    wait_for,
)
from tests.pipeline.test_batch_processor import Consumed, Consumer
from tests.pipeline.test_worker import assert_views_match, expected_badges, scrape
from tests.stores.test_audit import expected_rows as expected_audit_rows
from tests.stores.test_audit import stored as audit_rows

Position = tuple[str, int, int]  # topic, partition, offset of a published record


def committed_batches(port: int) -> float:
    try:
        return scrape(port).get("cohortflow_batch_records_count", 0.0)
    except Exception:  # noqa: BLE001 - not serving yet
        return 0.0


class PacedPublisher(threading.Thread):
    """Publishes ``records`` in chunks, ``pause`` seconds apart, with one producer; from ``gate_at`` on only once
    ``gate`` is set, so the ingest is still going whatever happens before it."""

    def __init__(self, settings: Settings, records: Sequence[tuple[str, bytes | None, bytes | None]], *,
                 chunk: int, pause: float, gate_at: int) -> None:
        super().__init__(daemon=True)
        self.settings, self.records, self.chunk, self.pause, self.gate_at = settings, records, chunk, pause, gate_at
        self.gate = threading.Event()
        self.published = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._publish())
        except BaseException as exc:  # noqa: BLE001 - re-raised by finish()
            self.error = exc

    async def _publish(self) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.settings.kafka_bootstrap, acks="all",
                                    enable_idempotence=True, linger_ms=10, max_batch_size=512 * 1024,
                                    max_request_size=3 * 1024 * 1024)
        await producer.start()
        try:
            for start in range(0, len(self.records), self.chunk):
                if start >= self.gate_at:
                    while not self.gate.is_set():
                        await asyncio.sleep(0.05)
                sent = [await producer.send(topic_name(self.settings.topic_prefix, Topic(t)), v, key=k)
                        for t, k, v in self.records[start:start + self.chunk]]
                await asyncio.gather(*sent)
                self.published = start + len(sent)
                await asyncio.sleep(self.pause)
        finally:
            await producer.stop()

    def finish(self, timeout: float) -> int:
        self.gate.set()
        self.join(timeout)
        assert not self.is_alive(), "the publisher did not finish"
        if self.error is not None:
            raise self.error
        return self.published


def test_the_group_grows_from_1_to_3_workers_loses_one_to_sigkill_and_shrinks_to_1_during_200000_records(
        stack: Settings, tmp_path: Path) -> None:
    log = adversarial_log(seed=71, size=200_000, contract=stack.contract)
    records = records_of(log)
    extra = {"COHORTFLOW_BATCH_MAX_RECORDS": "2000"}  # many commits: the kill lands between or inside them
    ports = [free_port() for _ in range(3)]
    workers = [Worker(stack, tmp_path / f"worker{i}.log", COHORTFLOW_METRICS_PORT=str(port), **extra)
               for i, port in enumerate(ports)]
    first, second, third = workers
    publisher = PacedPublisher(stack, records, chunk=2_500, pause=0.5, gate_at=180_000)  # ~5,000 records/s
    try:
        first.start()
        publisher.start()
        wait_for(lambda: applied(stack) >= 20_000, 120, "20,000 records applied by one worker", [first])

        # Grow to 3: two more members of the group; each commits batches of its own share of the partitions.
        second.start()
        third.start()
        for worker, port in zip(workers, ports):
            wait_for(lambda port=port: committed_batches(port) > 0, 120, f"a batch committed by {worker.log.name}",
                       workers)
        before = committed_batches(ports[0])
        wait_for(lambda: committed_batches(ports[0]) > before, 60, "the group of three at work", workers)

        # SIGKILL one of the three mid-ingest, in the middle of whatever it does; the group hands its
        # partitions to the two others once its session times out.
        time.sleep(random.Random(2028).uniform(0.0, 0.4))
        second.kill()
        assert publisher.is_alive() and applied(stack) < len(records)
        ends = asyncio.run(end_offsets(stack))
        wait_for(lambda: all(stored_offsets(stack).get(tp, 0) >= end for tp, end in ends.items()), 120,
                   "the records published before the kill applied by the two survivors", [first, third])

        # Shrink to 1: the third leaves gracefully (its commit in flight ends, it leaves the group).
        third.stop()
        assert third.proc is not None and third.proc.returncode == 0, third.log.read_text()[-3000:]
        assert publisher.is_alive() and applied(stack) < len(records)
        ends = asyncio.run(end_offsets(stack))
        wait_for(lambda: all(stored_offsets(stack).get(tp, 0) >= end for tp, end in ends.items()), 120,
                   "the records published before the shrink applied by the last worker", [first])

        assert publisher.finish(120) == len(records) >= 200_000
        wait_caught_up(stack, timeout=180, workers=[first])
        events = valid_events(log)
        assert_views_match(stack, events)
        assert {u: b for u, b in redis_badges(stack).items() if b != {"unread": 0}} == expected_badges(events)
        assert audit_rows(stack) == expected_audit_rows(events)
        # Every invalid record dead-lettered (a batch redone after the kill may send its dead letters again:
        # their headers name the source record, so count one per source position).
        expected = expected_deadletters(log)
        found = asyncio.run(deadletters(stack, expected=len(expected)))
        once = {(h["source_topic"], h["source_partition"], h["source_offset"]): (r.key, r.value, h["reason"].decode())
                for r in found for h in [dict(r.headers)]}
        assert Counter(once.values()) == Counter((rec.key, rec.value, reason.value) for rec, reason in expected)
    finally:
        publisher.gate.set()
        for worker in workers:
            worker.stop()


# --- adding partitions -------------------------------------------------------------------------------


async def add_partitions(settings: Settings, topics: Iterable[Topic], total: int) -> None:
    async with admin_client(settings) as admin:
        await admin.create_partitions({topic_name(settings.topic_prefix, t): NewPartitions(total_count=total)
                                       for t in topics})


async def publish_placed(settings: Settings, records: Sequence[Record]) -> list[Position]:
    """Publish like harness.publish (a new producer: it sees the topics' current partitions); where each went."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=True,
                                linger_ms=10, max_batch_size=512 * 1024, max_request_size=3 * 1024 * 1024)
    await producer.start()
    try:
        sent = [await producer.send(topic_name(settings.topic_prefix, r.topic), r.value, key=r.key) for r in records]
        return [(m.topic, m.partition, m.offset) for m in await asyncio.gather(*sent)]
    finally:
        await producer.stop()


async def all_end_offsets(settings: Settings) -> dict[tuple[str, int], int]:
    """End offsets of every partition the event topics have now (harness.end_offsets knows the configured ones)."""
    async with admin_client(settings) as admin:
        counts = await describe(admin, [topic_name(settings.topic_prefix, t) for t in EVENT_TOPICS])
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(t, p) for t, n in counts.items() for p in range(n)])
        return {(tp.topic, tp.partition): offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


def applied_exactly_below_the_stored_offsets(settings: Settings, log: Sequence[Record], placed: list[Position]
                                             ) -> dict[tuple[str, int], int]:
    """Assert the views and badges are those of the records below the stored offsets, which include none of the
    partitions added to the 3; return those offsets."""
    stored = stored_offsets(settings)
    assert not [tp for tp in stored if tp[1] >= 3], stored
    done = [record for record, (t, p, o) in zip(log, placed) if o < stored.get((t, p), 0)]
    assert 0 < len(done) < len(log)
    events = valid_events(done)
    assert_views_match(settings, events)
    assert {u: b for u, b in redis_badges(settings).items() if b != {"unread": 0}} == expected_badges(events)
    return stored


def test_partitions_added_mid_stream_stop_the_worker_exactly_and_a_restart_with_one_count_goes_on(
        stack: Settings, tmp_path: Path) -> None:
    assert stack.partitions == 3
    log = adversarial_log(seed=61, size=40_000, contract=stack.contract)
    chunks = [log[i:i + 5_000] for i in range(0, len(log), 5_000)]
    submissions = topic_name(stack.topic_prefix, Topic.SUBMISSIONS)
    placed: list[Position] = []
    worker = Worker(stack, tmp_path / "worker.log").start()
    try:
        placed += asyncio.run(publish_placed(stack, chunks[0]))
        wait_for(lambda: applied(stack) > 0, 120, "the worker at work", [worker])
        for chunk in chunks[1:3]:
            placed += asyncio.run(publish_placed(stack, chunk))
        # Mid-stream (records arrive before and after, the worker applies them as they come): submissions gets
        # 2 partitions more, and the records published from now on hash by 5 there.
        asyncio.run(add_partitions(stack, [Topic.SUBMISSIONS], 5))
        for chunk in chunks[3:]:
            placed += asyncio.run(publish_placed(stack, chunk))
            time.sleep(0.5)
        assert any(t == submissions and p >= 3 for t, p, _ in placed)

        assert worker.proc is not None
        worker.proc.wait(60)
        said = worker.log.read_text()
        assert worker.proc.returncode != 0, said[-3000:]
        assert (f"partitions were added while the worker ran: {submissions} now has 5 partitions, the worker"
                " started with 3 per topic") in said, said[-3000:]
        assert "so it stops and applies nothing more" in said and "COHORTFLOW_PARTITIONS=5" in said

        # It applied exactly the records below its stored offsets, once each, and nothing of the new partitions.
        stored = applied_exactly_below_the_stored_offsets(stack, log, placed)

        # A worker started while the topics' counts differ refuses at start, saying what to do.
        again = Worker(stack, tmp_path / "again.log").start()
        assert again.proc is not None
        assert again.proc.wait(120) != 0
        said = again.log.read_text()
        assert "the contract topics must have one partition count" in said, said[-3000:]
        assert f"5 partitions in {submissions}:" in said and "COHORTFLOW_PARTITIONS=5" in said, said[-3000:]
        assert stored_offsets(stack) == stored

        # What the message says to do: every contract topic gets 5 partitions, then the workers start again;
        # the views reach the oracle's of the whole log (old records in the old partitions, new ones anywhere).
        asyncio.run(add_partitions(stack, [t for t in Topic if t is not Topic.SUBMISSIONS], 5))
        worker = Worker(stack, tmp_path / "restarted.log").start()
        ends = asyncio.run(all_end_offsets(stack))
        assert len(ends) == 5 * len(EVENT_TOPICS)
        wait_for(lambda: all(stored_offsets(stack).get(tp, 0) >= end for tp, end in ends.items()), 120,
                   "the whole log applied after the restart", [worker])
        events = valid_events(log)
        assert_views_match(stack, events)
        assert {u: b for u, b in redis_badges(stack).items() if b != {"unread": 0}} == expected_badges(events)
        assert worker.alive and "partitions were added" not in worker.log.read_text()
    finally:
        worker.stop()


@pytest.mark.parametrize(("counts", "assigned", "refused"), [
    ({"t.roster": 3, "t.submissions": 3}, [("t.roster", 2)], None),
    ({}, [("t.roster", 2)], None),  # Kafka did not answer: nothing known, nothing refused
    ({"t.roster": 3, "t.submissions": 5}, [], "t.submissions now has 5 partitions"),
    ({}, [("t.roster", 1), ("t.roster", 3)], "t.roster now has 4 partitions"),  # a partition the start did not see
])
def test_the_refusal_names_the_topic_and_both_counts(counts: dict[str, int], assigned: list[tuple[str, int]],
                                                     refused: str | None) -> None:
    error = partitions_changed(counts, 3, assigned)
    if refused is None:
        assert error is None
    else:
        assert error is not None and refused in str(error) and "the worker started with 3" in str(error)


# --- why it refuses: two shard numberings in one group do not exclude each other --------------------------


class Relaid:
    """An adversarial log as the broker holds it when partitions were added halfway: the records before
    ``switch`` keyed onto ``before`` partitions, the rest onto ``after`` (Kafka's murmur2 partitioner), in the
    shape of tests.pipeline.test_batch_processor.Log."""

    def __init__(self, records: Sequence[Record], switch: int, before: int, after: int) -> None:
        self.records = list(records)
        self.partitions: dict[tuple[str, int], list] = {
            (topic_name(DEFAULT_CONTRACT.topic_prefix, t), p): [] for t in EVENT_TOPICS for p in range(after)}
        for i, r in enumerate(self.records):
            partition = shard_of(r.key.decode(), before if i < switch else after) if r.key else 0
            tp = (topic_name(DEFAULT_CONTRACT.topic_prefix, r.topic), partition)
            self.partitions[tp].append(Consumed(tp[0], tp[1], len(self.partitions[tp]), r.key, r.value))


async def fold_with_two_members(log: Relaid, counts: tuple[int, int]) -> list[str]:
    """Two members share the partitions of ``log`` (the second takes number 4 of each topic, the first the rest),
    numbering their shards by ``counts``; they take turns fetching. The differences of the views from the oracle's."""
    store = InMemoryViews()
    members = []
    for count, mine in zip(counts, (lambda p: p < 4, lambda p: p == 4)):
        consumer = Consumer(log)  # Relaid has the shape of test_batch_processor.Log
        processor = BatchProcessor(contract=DEFAULT_CONTRACT, engine=engine("python", FoldConfig()), store=store,
                                   badges=InMemoryBadges(), deadletters=InMemoryDeadLetters(), consumer=consumer,
                                   partitions=count, cache_max_entities=1_000_000)
        await processor.assign(sorted(tp for tp in log.partitions if mine(tp[1])))
        members.append((processor, consumer))
    busy = True
    while busy:
        busy = False
        for processor, consumer in members:
            try:
                epochs = await processor.seek_pending()
                batch = consumer.fetch(40)
                if batch:
                    busy = True
                    await processor.process(epochs, batch)
                elif not await processor.drain() or processor.pending_seeks:
                    busy = True  # it conflicted and seeks back to redo
            except OperationalError:
                await processor.recover()
                busy = True
    return compare(store.views(), oracle.recompute(valid_events(log.records), DEFAULT_CONTRACT.pillars))


def test_members_numbering_shards_by_two_partition_counts_lose_updates_where_one_count_stays_exact() -> None:
    """What the refusal prevents. After 3 -> 5 partitions, an entity's earlier records sit in partition h % 3 and
    its later ones in h % 5, often owned by another member: both load it, and the fences decide which commit
    wins. Members of one count fence the same shard numbers (the loser redoes its batch: exact); a member
    started with the new count next to one of the old count fences other numbers, so both commits pass."""
    log = Relaid(adversarial_log(seed=5, size=4_000, contract=DEFAULT_CONTRACT), switch=1_000, before=3, after=5)
    assert asyncio.run(fold_with_two_members(log, (3, 3))) == []
    assert asyncio.run(fold_with_two_members(log, (3, 5))) != []


def test_partitions_added_under_two_processes_stop_the_parent_with_the_refusal_and_keep_the_views_exact(
        stack: Settings, tmp_path: Path) -> None:
    """`--processes 2`: a child that refuses is not restarted into a loop; the parent ends, saying why."""
    log = adversarial_log(seed=67, size=20_000, contract=stack.contract)
    submissions = topic_name(stack.topic_prefix, Topic.SUBMISSIONS)
    worker = Worker(stack, tmp_path / "worker.log", processes=2).start()
    try:
        placed = asyncio.run(publish_placed(stack, log[:10_000]))
        wait_for(lambda: applied(stack) > 0, 120, "the workers at work", [worker])
        asyncio.run(add_partitions(stack, [Topic.SUBMISSIONS], 5))
        placed += asyncio.run(publish_placed(stack, log[10_000:]))
        assert worker.proc is not None
        worker.proc.wait(120)
        said = worker.log.read_text()
        assert worker.proc.returncode != 0, said[-3000:]
        assert f"partitions were added while the worker ran: {submissions} now has 5 partitions" in said, said[-3000:]
        assert not worker.children()

        applied_exactly_below_the_stored_offsets(stack, log, placed)
    finally:
        worker.stop()
