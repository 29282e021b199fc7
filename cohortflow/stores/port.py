"""The store port: what :class:`cohortflow.pipeline.processor.BatchProcessor` asks of its stores.

Three Protocols, typed to exactly the calls the processor makes, and the values that cross them.
:class:`cohortflow.stores.sink.PostgresViews`, :class:`cohortflow.stores.badges.RedisBadges` and
:class:`cohortflow.pipeline.deadletter.DeadLetters` are the production adapters;
:mod:`cohortflow.stores.in_memory` holds the in-memory ones. One contract test suite
(tests/stores/test_store_contract.py) runs against both view stores, so what the processor's unit
tests show with the in-memory store holds with PostgreSQL.

The rules every :class:`ViewStore` keeps (docs/architecture.md):

- ``commit`` is atomic: it writes the entity states, tails, audit rows, view rows, badges and offsets
  of one batch, or (raising :class:`FenceConflict`) nothing at all;
- a shard fence is compare-and-set: the commit names the version it loaded (0: none stored) and the
  store moves it one up, or refuses when another commit moved it first;
- an offset is compare-and-set: ``(old, new)`` with ``old`` the stored next offset the batch started from
  (None: none stored yet) and ``new`` the one to store;
- writing an entity's state drops its tail; tail events are appended at the sequence numbers given and
  read back in order;
- badges come back from ``commit`` only when a value changed, each with a revision one higher.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from cohortflow.errors import OperationalError

if TYPE_CHECKING:
    from cohortflow.contract import Rejection
    from cohortflow.core.fold import Effect, EntityKey

TopicPartition = tuple[str, int]
TailEvent = tuple[str, bytes]  # (topic without prefix, record value) of an event applied to an entity


class FenceConflict(OperationalError):
    """Another worker committed to a shard or partition since this worker loaded it: reload and redo."""


@dataclass(frozen=True, slots=True)
class BadgeUpdate:
    user_id: str
    unread: int
    pending_reviews: int | None
    rev: int


@dataclass(frozen=True)
class Commit:
    """What a batch commits besides its Effect."""

    entities: Mapping[EntityKey, tuple[int, bytes]]  # key -> (shard, encoded state) to write
    fences: Mapping[int, int]  # shard -> version this worker loaded (0: none yet)
    offsets: Mapping[TopicPartition, tuple[int | None, int]]  # tp -> (next offset loaded, new next offset)
    # key -> (seq of the first, events) to append to the entity's tail instead of writing its state
    tails: Mapping[EntityKey, tuple[int, Sequence[TailEvent]]] = field(default_factory=dict)


class ViewStore(Protocol):
    """Entity states, shard fences, stored offsets and the views: the processor's source of truth."""

    async def offsets(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """The next offset to consume of each of ``tps`` that has one stored."""
        ...

    async def fences(self, shards: Iterable[int]) -> dict[int, int]:
        """The stored version of each of ``shards`` that has one."""
        ...

    async def entities(self, keys: Iterable[EntityKey]
                       ) -> tuple[dict[EntityKey, bytes], dict[EntityKey, list[TailEvent]]]:
        """The stored states of ``keys`` that have one, and the tail events to replay onto them, in order."""
        ...

    async def badges(self, after: str = "", limit: int = 5000) -> list[BadgeUpdate]:
        """Badges in user_id order after ``after``, at most ``limit``: what the badge cache is restored from."""
        ...

    async def commit(self, effect: Effect, commit: Commit) -> list[BadgeUpdate]:
        """One batch, atomically; the badges that changed. :class:`FenceConflict`: nothing was written."""
        ...


class BadgeCache(Protocol):
    """Where dashboards read badges from (Redis): absolute values with revisions, restorable from the store."""

    needs_restore: bool

    async def write(self, updates: Iterable[BadgeUpdate]) -> int:
        """Write the updates newer than what is held (by revision); the number written."""
        ...

    async def restore(self, pages: Callable[[str], Awaitable[list[BadgeUpdate]]]) -> int:
        """Copy every badge ``pages`` yields (called with the last user_id seen); the number copied."""
        ...


class DeadLetterSink(Protocol):
    """Where rejected records go, with their reasons; ``send`` returns once they are durable."""

    async def send(self, rejected: Sequence[tuple[SourceRecord, Rejection]]) -> None: ...


class SourceRecord(Protocol):
    """A consumed Kafka record, as far as the processor reads it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
