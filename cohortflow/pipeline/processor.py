"""The worker's batch path: records in, views committed, offsets stored with them.

Faust-independent: :mod:`cohortflow.pipeline.app` feeds it batches from Faust's consumer
and implements :class:`Consumer` (seek, commit) on top of it.

Exactly-once effect comes from three rules:

1. The next offset of every partition lives in PostgreSQL, written in the same
   transaction as the state and the views; on assignment the consumer seeks
   there and records below it are skipped.
2. Each transaction compare-and-sets the version of every shard whose
   entities it writes and the stored offset of every partition it consumed;
   a worker working from a stale cache (after a rebalance, say) loses, drops
   its cache, seeks back to the stored offsets and redoes the work.
3. Redis receives absolute values with a revision after the commit, and is
   restored from PostgreSQL whenever it may have missed one.

Batches are pipelined: batch N commits (on the committer's thread) while
batch N+1 decodes and folds. N+1 snapshots its entity states as bytes before
anything awaits, commits only after N has, and counts on N's fences and
offsets; if N failed, N+1 is thrown away with the cache and both are redone
from the stored offsets.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from cohortflow.contract import Contract, Rejection
from cohortflow.contract.structs import decode  # the hot path: msgspec, with the contract path for every refusal
from cohortflow.contract.topics import Topic, topic_name
from cohortflow.core.clock import micros
from cohortflow.core.engine import FoldEngine, shard_of
from cohortflow.core.fold import Effect, EntityKey, FoldEvent, entity_key
from cohortflow.core.rows import VIEW_OF_TAG
from cohortflow.errors import IntegrityError
from cohortflow.pipeline.observer import BatchReport, Observer
from cohortflow.stores.port import (
    BadgeCache,
    BadgeUpdate,
    Commit,
    DeadLetterSink,
    FenceConflict,
    SourceRecord,
    TailEvent,
    ViewStore,
)

log = logging.getLogger(__name__)

TP = tuple[str, int]

# State tails (docs/semantics.md): an entity whose stored state is at least TAIL_FROM_BYTES long gets the
# events of the next batches appended to its tail instead, until TAIL_MAX_EVENTS; then its state is written.
TAIL_FROM_BYTES = 1024
TAIL_MAX_EVENTS = 16

# Records decoded and folded at a time within a batch: small enough for their objects to stay in the
# CPU's caches between the two (measured in-process on the 1M log: decoding and folding a 10,000-record
# batch in one piece took ~20% more CPU than in chunks of this size).
FOLD_CHUNK = 1000


class Committer(Protocol):
    """Where a batch's transaction runs: the store itself, or
    :class:`cohortflow.pipeline.committer.ThreadedCommitter`."""

    async def commit(self, effect: Effect, commit: Commit) -> list[BadgeUpdate]: ...


class Consumer(Protocol):
    """What the processor needs from the Kafka consumer it is fed by."""

    async def seek(self, positions: Mapping[TP, int | None]) -> None:
        """Move each partition to an offset; None means the earliest offset still in the log."""

    async def earliest(self, tps: Iterable[TP]) -> dict[TP, int]: ...

    async def commit(self, offsets: Mapping[TP, int]) -> None:
        """Report offsets to Kafka (informative only: PostgreSQL holds the truth); may be deferred."""


@dataclass
class Outcome:
    committed: bool
    records: int = 0
    events: int = 0
    rejected: int = 0


class BatchProcessor:
    """Folds fetched batches and commits them exactly once, through the store port (:mod:`cohortflow.stores.port`).

    The worker gives it PostgresViews, RedisBadges and DeadLetters; its unit tests the in-memory adapters.
    """

    def __init__(self, *, contract: Contract, engine: FoldEngine, store: ViewStore, badges: BadgeCache,
                 deadletters: DeadLetterSink, consumer: Consumer, partitions: int, cache_max_entities: int,
                 observer: Observer | None = None, committer: Committer | None = None) -> None:
        self.contract = contract
        self.engine = engine  # the entity states this worker holds, and the fold over them
        self.cache_max_entities = cache_max_entities
        self.store = store
        self.committer = committer or store
        self.badges = badges
        self.deadletters = deadletters
        self.consumer = consumer
        self.partitions = partitions
        self.observer = observer or Observer()
        self.fences: dict[int, int] = {}  # shard -> version our cache reflects
        self.tails: dict[EntityKey, int] = {}  # events in the stored tail of each large cached entity
        self.assigned: set[TP] = set()  # partitions the group gave us
        self.positions: dict[TP, int | None] = {}  # next offset per ready partition; None: start of the log
        self.pending_seeks: dict[TP, int | None] = {}  # stored offsets the consumer must seek to
        self.epochs: dict[TP, int] = {}  # bumped by every seek of a partition: older fetches are void
        self._restoring: asyncio.Future | None = None
        self._committing: asyncio.Future | None = None  # the previous batch's commit, while this one folds

    # --- assignment ----------------------------------------------------------------------
    async def assign(self, tps: Iterable[TP]) -> None:
        """Take partitions: read their stored offsets and schedule the consumer's seek there.

        Their records are refused until :meth:`seek_pending` has moved the
        consumer, so nothing fetched from another position can be applied.
        """
        tps = list(tps)
        self.assigned.update(tps)
        if not tps:
            return
        stored = await self.store.offsets(tps)
        earliest = await self.consumer.earliest(tps)
        for tp in tps:
            if tp in stored and stored[tp] < earliest.get(tp, 0):
                raise IntegrityError(
                    f"{tp[0]}[{tp[1]}]: the views stand at offset {stored[tp]} but the log now starts at "
                    f"{earliest[tp]} (retention deleted records not yet applied); rebuild the views"
                )
        for tp in tps:
            self.positions.pop(tp, None)
            self.pending_seeks[tp] = stored.get(tp)
        self.badges.needs_restore = True  # the previous owner may have died between its two writes

    async def seek_pending(self) -> dict[TP, int]:
        """Move the consumer to the scheduled offsets; return the epoch of every partition for the next fetch.

        Called by the task that fetches, right before fetching, so a fetch tagged
        with these epochs started after the seek: aiokafka drops what it had
        prefetched for a partition it seeks.
        """
        if self.pending_seeks:
            pending = {tp: o for tp, o in self.pending_seeks.items() if tp in self.assigned}
            self.pending_seeks.clear()
            try:
                await self.consumer.seek(pending)
            except BaseException:
                self.pending_seeks.update(pending)  # try again before the next fetch
                raise
            for tp, offset in pending.items():
                self.epochs[tp] = self.epochs.get(tp, 0) + 1
                self.positions[tp] = offset
        return dict(self.epochs)

    def revoke(self, tps: Iterable[TP]) -> None:
        """Give partitions up: forget their positions and the state of their shards."""
        tps = list(tps)
        self.assigned.difference_update(tps)
        for tp in tps:
            self.positions.pop(tp, None)
            self.pending_seeks.pop(tp, None)
            self.epochs[tp] = self.epochs.get(tp, 0) + 1
            self.observer.revoked(*tp)
        self._evict({tp[1] for tp in tps if tp[1] not in {p for _, p in self.assigned}})

    def _evict(self, shards: Iterable[int]) -> None:
        """Drop the cache of ``shards`` (and their fences): from now on only PostgreSQL is trusted for them."""
        shards = set(shards)
        if not shards:
            return
        for shard in shards:
            self.fences.pop(shard, None)
        if not self.fences:  # every shard: the usual case of a failure
            self.engine.clear()
            self.tails.clear()
            return
        gone = [key for key in self.engine.keys() if shard_of(key[1], self.partitions) in shards]
        self.engine.evict(gone)
        for key in gone:
            self.tails.pop(key, None)

    # --- one batch -----------------------------------------------------------------------
    async def process(self, epochs: Mapping[TP, int], batch: Mapping[TP, Sequence[SourceRecord]]) -> Outcome:
        """Fold one fetched batch and commit it; a stale or conflicting batch changes nothing.

        ``epochs`` are those :meth:`seek_pending` returned before the fetch: the
        records of a partition sought (or revoked) since are void, and will be
        fetched again from the new position.
        """
        report = BatchReport()
        chunks: list[list[tuple[SourceRecord, str]]] = [[]]  # records to fold, with their topic's short name
        offsets: dict[TP, tuple[int | None, int]] = {}
        for tp, records in batch.items():
            if tp not in self.positions or epochs.get(tp) != self.epochs.get(tp):
                continue  # not ours (any more), its seek is pending, or it was fetched before a seek
            expected = self.positions[tp]
            last = None
            topic = self.contract.event_topic(tp[0])
            short = topic.value if topic is not None else ""  # records of other topics are all rejected
            for record in records:
                if expected is not None and record.offset < expected:
                    continue  # applied before: its effect is in PostgreSQL already
                last = record.offset
                if len(chunks[-1]) == FOLD_CHUNK:
                    chunks.append([])
                chunks[-1].append((record, short))
            if last is not None:
                offsets[tp] = (expected, last + 1)
        if not offsets:
            return Outcome(committed=False)

        keys: list[EntityKey] = []
        values: list[TailEvent] = []  # beside each key: what its entity's tail would keep of the event
        rejected: list[tuple[SourceRecord, Rejection]] = []
        started = time.perf_counter()
        try:
            # Decoded a chunk at a time; the entities the cache lacks are read in one query for the whole batch
            # (a round trip per chunk would stall the fold on PostgreSQL); then folded a chunk per engine call.
            # The chunks add up to the effect of the whole batch, which commits once.
            decoded: list[tuple[list[FoldEvent], list[EntityKey]]] = []
            for chunk in chunks:
                events: list[FoldEvent] = []
                chunk_keys: list[EntityKey] = []
                for record, short in chunk:
                    result = decode(record.topic, record.key, record.value, self.contract)
                    if isinstance(result, Rejection):
                        rejected.append((record, result))
                        report.rejected[result.reason.value] += 1
                    else:
                        events.append(result)
                        chunk_keys.append(entity_key(result))
                        # decode refuses a record without a value, so an event's value is bytes
                        values.append((short, record.value))  # type: ignore[arg-type]
                        report.by_type[result.type] += 1
                decoded.append((events, chunk_keys))
                keys += chunk_keys
            await self._load(set(keys))
            for events, chunk_keys in decoded:
                self.engine.apply(events, chunk_keys)
            effect = self.engine.take_effect()
            # Snapshot the states now: the next batch folds into the same objects while this one commits.
            changed, tails = self._snapshot(effect.changed, keys, values)
        except Exception:
            self._evict(list(self.fences))  # the cache may be half-updated: trust only PostgreSQL now
            self.engine.clear()
            raise
        report.fold_seconds = time.perf_counter() - started
        report.records = len(keys) + len(rejected)

        # Dead letters travel while the previous batch's commit ends; they are acknowledged before this commit.
        sending = asyncio.ensure_future(self.deadletters.send(rejected))
        try:
            # This batch builds on the previous one (its fences and offsets): that one must have committed.
            drained = await self.drain()
        except BaseException:
            await asyncio.gather(sending, return_exceptions=True)
            raise
        await sending
        if not drained:
            return Outcome(committed=False)  # it did not: the cache is gone and the consumer seeks back
        # Every earlier batch has committed: what the cache holds beyond its bound can go, but for this
        # batch's entities, whose states PostgreSQL will only hold once this commit ends.
        report.evicted = self._trim(changed.keys() | tails.keys())
        report.cached_entities = len(self.engine)
        fences = {shard: self.fences.get(shard, 0) for shard, _ in changed.values()}
        fences.update((shard, self.fences.get(shard, 0)) for shard in {shard_of(k[1], self.partitions) for k in tails})
        self._committing = asyncio.ensure_future(
            self._commit(effect, Commit(changed, fences, offsets, tails), report))
        # Counted as done while the commit runs: the next batch folds meanwhile and commits after it, or
        # finds it failed (drain) and throws its own work away with the cache.
        for shard in fences:
            self.fences[shard] = fences[shard] + 1
        for tp, (_, new) in offsets.items():
            self.positions[tp] = new
        return Outcome(committed=True, records=report.records, events=len(keys), rejected=len(rejected))

    def _trim(self, keep: set[EntityKey]) -> int:
        """Past ``cache_max_entities``, evict the least recently used entities (never those of ``keep``).

        Down to 7/8 of the bound, so the engine's scan for the oldest runs once per eighth of the cache filled,
        not after every batch.
        """
        most = self.cache_max_entities
        if len(self.engine) <= most:
            return 0
        gone = self.engine.trim(most - most // 8, keep)
        for key in gone:
            self.tails.pop(key, None)
        return len(gone)

    def _snapshot(self, touched: set[EntityKey], keys: list[EntityKey], values: list[TailEvent]
                  ) -> tuple[dict[EntityKey, tuple[int, bytes]], dict[EntityKey, tuple[int, list[TailEvent]]]]:
        """What to write of each changed entity: (shard, encoded state), or (a large one) its events to append.

        Counted as written (like fences and positions): if the commit fails, the cache goes with them.
        """
        partitions, encode, held_by = self.partitions, self.engine.encode, self.tails
        appended: dict[EntityKey, list[TailEvent]] = {}
        if held_by:
            for key, value in zip(keys, values):
                if key in held_by and key in touched:
                    appended.setdefault(key, []).append(value)
        states: dict[EntityKey, tuple[int, bytes]] = {}
        tails: dict[EntityKey, tuple[int, list[TailEvent]]] = {}
        for key in touched:
            held = held_by.get(key)
            if held is not None and held + len(appended[key]) <= TAIL_MAX_EVENTS:
                tails[key] = (held, appended[key])
                held_by[key] = held + len(appended[key])
                continue
            body = encode(key)
            states[key] = (shard_of(key[1], partitions), body)
            if len(body) >= TAIL_FROM_BYTES:
                held_by[key] = 0
            elif held is not None:
                del held_by[key]
        return states, tails

    async def _commit(self, effect: Effect, commit: Commit, report: BatchReport) -> None:
        """One batch's transaction, then its Redis writes and Kafka offsets; runs while the next batch folds."""
        started = time.perf_counter()
        updates = await self.committer.commit(effect, commit)
        report.commit_seconds = time.perf_counter() - started
        await self.badges.write(updates)
        if self.badges.needs_restore and (self._restoring is None or self._restoring.done()):
            # Off the batch path: every write carries a revision, so a restore racing new writes is safe.
            self._restoring = asyncio.ensure_future(self._restore_badges())
        await self.consumer.commit({tp: new for tp, (_, new) in commit.offsets.items()})
        report.freshness = _freshness(effect)
        self.observer.batch(report)

    async def drain(self) -> bool:
        """Wait for the batch being committed; False when it conflicted and the processor recovered.

        Any other failure is raised after the cache and positions are dropped (the caller recovers).
        Whoever calls it holds the batch lock, so no fold runs on a cache it drops.
        """
        committing, self._committing = self._committing, None
        if committing is None:
            return True
        try:
            await committing
        except FenceConflict as exc:
            log.warning("batch not committed, redoing from the stored offsets: %s", exc)
            self.observer.conflict(type(exc).__name__)
            await self.recover()
            return False
        except BaseException:
            self._evict(list(self.fences))  # the cache may be ahead of PostgreSQL: the caller recovers
            self.positions.clear()
            raise
        return True

    @property
    def committing(self) -> asyncio.Future | None:
        """The commit in flight, if any."""
        return self._committing

    async def _restore_badges(self) -> None:
        self.badges.needs_restore = False  # a failure or a Redis restart meanwhile sets it again
        try:
            self.observer.badges_restored(await self.badges.restore(self.store.badges))
        except Exception as exc:  # noqa: BLE001 - PostgreSQL or Redis trouble: try again after the next batch
            log.warning("restoring badges into Redis failed: %s", exc)
            self.badges.needs_restore = True

    async def _load(self, keys: set[EntityKey]) -> None:
        """Bring the entities of ``keys`` into the cache: the fence of a new shard first, then the rows."""
        engine = self.engine
        missing = [k for k in keys if k not in engine]
        if not missing:
            return
        unfenced = {shard_of(k[1], self.partitions) for k in missing} - set(self.fences)
        if unfenced:
            known = await self.store.fences(unfenced)
            self.fences.update({s: known.get(s, 0) for s in unfenced})
        bodies, replay = await self.store.entities(missing)
        for key, body in bodies.items():
            engine.load(key, body)
        if replay:
            self._replay(replay)
        for key in missing:
            if key in replay or len(bodies.get(key, b"")) >= TAIL_FROM_BYTES:
                self.tails[key] = len(replay.get(key, ()))

    def _replay(self, replay: Mapping[EntityKey, list[TailEvent]]) -> None:
        """Apply the stored tails, in order, onto the loaded states (their effect was committed with them)."""
        events, keys = [], []
        for key, tail in replay.items():
            for topic, value in tail:
                event = decode(topic_name(self.contract.topic_prefix, Topic(topic)), key[1].encode(), value,
                               self.contract)
                if isinstance(event, Rejection):
                    raise IntegrityError(f"the stored tail of {key[0]}:{key[1]} holds an event this contract"
                                         f" refuses ({event.detail}); rebuild the views")
                events.append(event)
                keys.append(key)
        self.engine.replay(events, keys)

    async def recover(self) -> None:
        """Forget the cache and every position; seek back to what PostgreSQL holds (after any failure)."""
        committing, self._committing = self._committing, None
        if committing is not None:  # let it end first: the offsets read below must be final
            await asyncio.gather(committing, return_exceptions=True)
        self._evict(list(self.fences))
        self.positions.clear()
        await self.assign(sorted(self.assigned))


def _freshness(effect: Effect) -> dict[str, float]:
    now = micros(datetime.now(UTC))
    newest: dict[str, int] = {}
    for row, ts in effect.as_of.items():
        name = VIEW_OF_TAG[row[0]]
        if ts > newest.get(name, -1 << 62):
            newest[name] = ts
    return {name: max(0.0, (now - ts) / 1e6) for name, ts in newest.items()}
