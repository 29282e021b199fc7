"""BatchProcessor, the exactly-once core, with the in-memory store port and no Kafka.

The worker tests (tests/pipeline/test_worker.py, test_faults.py) run it inside real workers on the real
stack; these construct it directly, drive it as the worker's fetch loop does, and hold it to the oracle
through the paths a whole worker reaches only by luck: batches fetched before a seek, re-delivered records,
fence conflicts between two owners of a shard, a commit that fails, and state tails replayed by a new owner.
The in-memory store keeps PostgreSQL's rules (tests/stores/test_store_contract.py runs both).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import pytest

from cohortflow.contract import DEFAULT_CONTRACT
from cohortflow.contract.topics import EVENT_TOPICS, topic_name
from cohortflow.core.engine import engine
from cohortflow.core.fold import FoldConfig
from cohortflow.errors import OperationalError
from cohortflow.pipeline.processor import BatchProcessor
from cohortflow.stores.in_memory import InMemoryBadges, InMemoryDeadLetters, InMemoryViews
from cohortflow.stores.port import Commit, FenceConflict
from tests import oracle
from tests.logs import Record, adversarial_log, expected_deadletters, valid_events
from tests.pipeline.harness import compare

PARTITIONS = 3
TP = tuple[str, int]


@dataclass(frozen=True)
class Consumed:
    """A record as the consumer hands it over (the SourceRecord of the port)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class Log:
    """The records of an adversarial log in partitions, with their offsets, as the broker would hold them."""

    def __init__(self, records: Iterable[Record]) -> None:
        self.records = list(records)
        self.partitions: dict[TP, list[Consumed]] = {
            (topic_name(DEFAULT_CONTRACT.topic_prefix, t), p): [] for t in EVENT_TOPICS for p in range(PARTITIONS)}
        for r in self.records:
            tp = (topic_name(DEFAULT_CONTRACT.topic_prefix, r.topic), zlib.crc32(r.key or b"") % PARTITIONS)
            self.partitions[tp].append(Consumed(tp[0], tp[1], len(self.partitions[tp]), r.key, r.value))


class Consumer:
    """The :class:`~cohortflow.pipeline.processor.Consumer` of the processor over a :class:`Log`: seeks move
    its fetch positions, ``fetch`` returns the next records of each partition up to ``visible`` of the log."""

    def __init__(self, log: Log) -> None:
        self.log = log
        self.at: dict[TP, int] = {}
        self.seeks: list[dict[TP, int | None]] = []
        self.committed: dict[TP, int] = {}
        self.visible = 1.0  # the share of each partition published so far

    async def seek(self, positions: Mapping[TP, int | None]) -> None:
        self.seeks.append(dict(positions))
        for tp, offset in positions.items():
            self.at[tp] = offset or 0

    async def earliest(self, tps: Iterable[TP]) -> dict[TP, int]:
        return {tp: 0 for tp in tps}

    async def commit(self, offsets: Mapping[TP, int]) -> None:
        self.committed.update(offsets)

    def fetch(self, per_partition: int) -> dict[TP, list[Consumed]]:
        batch = {}
        for tp, at in self.at.items():
            records = self.log.partitions[tp]
            end = min(at + per_partition, int(len(records) * self.visible))
            if end > at:
                batch[tp] = records[at:end]
                self.at[tp] = end
        return batch


class Worker:
    """One processor with its consumer, over ``store``; ``run`` is the worker's fetch loop."""

    def __init__(self, log: Log, store: InMemoryViews, *, kind: str = "python", cache: int = 1_000_000) -> None:
        self.consumer = Consumer(log)
        self.badges = InMemoryBadges()
        self.deadletters = InMemoryDeadLetters()
        self.processor = BatchProcessor(
            contract=DEFAULT_CONTRACT, engine=engine(kind, FoldConfig()), store=store, badges=self.badges,
            deadletters=self.deadletters, consumer=self.consumer, partitions=PARTITIONS, cache_max_entities=cache)

    async def start(self) -> None:
        await self.processor.assign(self.consumer.log.partitions)

    async def step(self, per_partition: int) -> bool:
        """One fetch and its batch; False when nothing was fetched."""
        epochs = await self.processor.seek_pending()
        batch = self.consumer.fetch(per_partition)
        if not batch:
            return False
        await self.processor.process(epochs, batch)
        return True

    async def run(self, per_partition: int = 150) -> None:
        """Fetch and process until nothing is left, recovering from failures as the worker's loop does."""
        while True:
            try:
                if not await self.step(per_partition) and await self.processor.drain():
                    if not self.processor.pending_seeks:
                        return
            except OperationalError:
                await self.processor.recover()


def assert_exact(store: InMemoryViews, log: Log) -> None:
    events = valid_events(log.records)
    problems = compare(store.views(), oracle.recompute(events, DEFAULT_CONTRACT.pillars))
    assert not problems, f"{len(problems)} differences, first ones:\n" + "\n".join(problems[:10])
    badges = {b.user_id: {"unread": b.unread} | ({} if b.pending_reviews is None else
                                                  {"pending_reviews": b.pending_reviews})
              for b in store.badge_rows.values()}
    assert {u: b for u, b in badges.items() if b != {"unread": 0}} == {
        u: b for u, b in oracle.badges(events).items() if b != {"unread": 0}}


@pytest.fixture(scope="module")
def log() -> Log:
    return Log(adversarial_log(seed=5, size=4_000, contract=DEFAULT_CONTRACT))


@pytest.mark.parametrize("kind", ["python", "kernel"])
async def test_the_adversarial_log_gives_the_oracle_views_with_a_cache_of_50_entities(log: Log, kind: str) -> None:
    store = InMemoryViews()
    worker = Worker(log, store, kind=kind, cache=50)
    await worker.start()
    await worker.run()
    assert_exact(store, log)
    # Every invalid record went to the dead letters, once, with its reason; the offsets all reached the end.
    sent = sorted((r.key or b"", r.value or b"", j.reason.value) for r, j in worker.deadletters.sent)
    expected = expected_deadletters(log.records)
    assert sent == sorted((r.key or b"", r.value or b"", reason.value) for r, reason in expected)
    ends = {tp: len(records) for tp, records in log.partitions.items() if records}
    assert store.stored_offsets == ends == {tp: n for tp, n in worker.consumer.committed.items() if tp in ends}
    assert len(worker.processor.engine) <= 50 + 150 * len(ends)  # bounded: the cache, plus one batch's entities
    # The badge cache ends as PostgreSQL's badges: written after each commit, restored at the start.
    assert worker.badges.held == store.badge_rows and worker.badges.restores >= 1


async def test_records_delivered_again_below_the_stored_offset_change_nothing(log: Log) -> None:
    store = InMemoryViews()
    worker = Worker(log, store)
    await worker.start()
    await worker.run()
    commits = store.commits
    # The consumer goes back to the start on its own (a broker-side reset, a retried fetch), no seek asked.
    epochs = await worker.processor.seek_pending()
    for tp in worker.consumer.at:
        worker.consumer.at[tp] = 0
    outcome = await worker.processor.process(epochs, worker.consumer.fetch(10_000))
    assert not outcome.committed and store.commits == commits
    assert_exact(store, log)


async def test_a_batch_fetched_before_a_seek_or_a_revoke_is_void(log: Log) -> None:
    store = InMemoryViews()
    worker = Worker(log, store)
    await worker.start()
    await worker.step(100)
    epochs = await worker.processor.seek_pending()
    stale = worker.consumer.fetch(100)
    tp = next(iter(stale))
    assert await worker.processor.drain()  # as the worker does before it applies an assignment
    worker.processor.revoke([tp])  # the group took one partition away while the batch was in flight
    await worker.processor.assign([tp])  # and gave it back: a seek to the stored offset is pending
    outcome = await worker.processor.process(epochs, {tp: stale[tp]})
    assert not outcome.committed
    await worker.processor.drain()
    assert tp not in store.stored_offsets or store.stored_offsets[tp] <= stale[tp][0].offset
    # The other partitions' records of that fetch are still theirs: not void.
    rest = {k: v for k, v in stale.items() if k != tp}
    assert (await worker.processor.process(epochs, rest)).committed == bool(rest)
    await worker.processor.seek_pending()
    assert worker.consumer.seeks[-1] == {tp: store.stored_offsets.get(tp)}  # back to what the store holds
    await worker.run()
    assert_exact(store, log)


async def test_a_batch_prefetched_before_a_seek_back_is_void() -> None:
    # Batch 1's commit fails while batch 2 is being fetched behind it; the processor seeks back to the stored
    # offsets (the start). Batch 2 starts past them: folding it would skip batch 1's records for good.
    log = Log(adversarial_log(seed=9, size=1_000, contract=DEFAULT_CONTRACT))
    store = FailingOnce(0)
    worker = Worker(log, store)
    await worker.start()
    await worker.step(30)
    epochs = await worker.processor.seek_pending()
    ahead = worker.consumer.fetch(30)
    with pytest.raises(OperationalError):
        await worker.processor.drain()
    await worker.processor.recover()
    await worker.processor.seek_pending()
    assert not (await worker.processor.process(epochs, ahead)).committed
    assert store.commits == 0
    await worker.run()
    assert_exact(store, log)


async def test_two_owners_of_the_same_shards_conflict_and_the_loser_redoes_its_batch(log: Log) -> None:
    store = InMemoryViews()
    a, b = Worker(log, store), Worker(log, store)
    await a.start()
    for _ in range(3):
        await a.step(100)
    assert await a.processor.drain()
    # B takes the same partitions (a rebalance A has not heard of yet) and commits a batch over A's work.
    await b.start()
    await b.step(100)
    assert await b.processor.drain()
    fences = dict(store.shard_fences)
    # A's next batch builds on fences and offsets B has moved: refused as a whole, and A seeks back.
    seeks = len(a.consumer.seeks)
    await a.step(100)
    commits = store.commits
    assert not await a.processor.drain()
    assert store.commits == commits and store.shard_fences == fences
    await a.processor.seek_pending()
    assert len(a.consumer.seeks) == seeks + 1
    assert a.consumer.seeks[-1] == {tp: store.stored_offsets.get(tp) for tp in log.partitions}
    b.processor.revoke(list(log.partitions))  # B learns it lost the partitions
    await a.run()
    assert_exact(store, log)


class FailingOnce(InMemoryViews):
    """A store whose n-th commit fails as an outage would (nothing written)."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.fail_at, self.failed = fail_at, 0

    async def commit(self, effect, commit: Commit):  # the port's signature
        if self.commits == self.fail_at and not self.failed:
            self.failed += 1
            raise OperationalError("PostgreSQL failed: the connection was closed (injected)")
        return await super().commit(effect, commit)


@pytest.mark.parametrize("fail_at", [0, 7])
async def test_a_failed_commit_drops_the_cache_and_is_redone_exactly_once(log: Log, fail_at: int) -> None:
    store = FailingOnce(fail_at)
    worker = Worker(log, store, kind="kernel")
    await worker.start()
    await worker.run(per_partition=20)
    assert store.failed == 1
    assert_exact(store, log)


async def test_a_new_owner_replays_the_stored_tails_onto_the_loaded_states(log: Log) -> None:
    store = InMemoryViews()
    first = Worker(log, store)
    first.consumer.visible = 0.5
    await first.start()
    await first.run(per_partition=5)  # small batches: large entities get events appended to their tails
    assert any(store.tails.values()), "no entity had a tail: the test would not exercise replay"
    first.processor.revoke(list(log.partitions))

    second = Worker(log, store)  # a fresh cache: every state comes from the store, tails replayed onto it
    replayed: list[int] = []
    replay = second.processor.engine.replay
    second.processor.engine.replay = lambda events, keys: (replayed.append(len(events)), replay(events, keys))
    await second.start()
    await second.run()
    assert sum(replayed) > 0
    assert_exact(store, log)


async def test_a_stale_fence_in_a_commit_is_refused_by_the_store_without_writing() -> None:
    # The processor's own guard, seen from the store: what it relies on when two owners race.
    store = InMemoryViews()
    from cohortflow.core.fold import Effect

    await store.commit(Effect(), Commit({}, {0: 0}, {("t", 0): (None, 3)}))
    with pytest.raises(FenceConflict):
        await store.commit(Effect(), Commit({("s", "x"): (0, b"body")}, {0: 0}, {("t", 0): (3, 4)}))
    assert store.states == {} and store.stored_offsets == {("t", 0): 3}
