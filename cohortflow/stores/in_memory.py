"""In-memory adapters of the store port (:mod:`cohortflow.stores.port`): the processor without services.

:class:`InMemoryViews` keeps the rules of :class:`~cohortflow.stores.port.ViewStore` that
:class:`~cohortflow.stores.sink.PostgresViews` keeps in SQL (the contract test suite,
tests/stores/test_store_contract.py, holds both to them) and its views in a
:class:`~cohortflow.core.memory.MemoryViews`, the reference the sink's SQL must match.
Pure: nothing here does I/O, so it is for unit tests and what-if runs, never for a worker.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cohortflow.core.clock import micros
from cohortflow.core.memory import MemoryViews, ViewConfig, ViewRows
from cohortflow.core.rows import MENTOR_TAG
from cohortflow.errors import IntegrityError
from cohortflow.stores.port import BadgeUpdate, Commit, FenceConflict, SourceRecord, TailEvent, TopicPartition

if TYPE_CHECKING:
    from cohortflow.contract import Rejection
    from cohortflow.contract.events import AuditRecorded
    from cohortflow.core.fold import Effect, EntityKey


class InMemoryViews:
    """A :class:`~cohortflow.stores.port.ViewStore` in dicts; ``commits`` counts the batches it accepted."""

    def __init__(self) -> None:
        self.states: dict[EntityKey, tuple[int, bytes]] = {}  # key -> (shard, body)
        self.tails: dict[EntityKey, dict[int, TailEvent]] = {}  # key -> seq -> event
        self.shard_fences: dict[int, int] = {}
        self.stored_offsets: dict[TopicPartition, int] = {}
        self.memory = MemoryViews()
        self.audit: dict[tuple[int, str], AuditRecorded] = {}  # (occurred_at us, event_id) -> event
        self.badge_rows: dict[str, BadgeUpdate] = {}
        self.commits = 0

    # --- reads -------------------------------------------------------------------------
    async def offsets(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.stored_offsets[tp] for tp in tps if tp in self.stored_offsets}

    async def fences(self, shards: Iterable[int]) -> dict[int, int]:
        return {s: self.shard_fences[s] for s in shards if s in self.shard_fences}

    async def entities(self, keys: Iterable[EntityKey]
                       ) -> tuple[dict[EntityKey, bytes], dict[EntityKey, list[TailEvent]]]:
        keys = list(keys)
        bodies = {k: self.states[k][1] for k in keys if k in self.states}
        replay = {k: [self.tails[k][seq] for seq in sorted(self.tails[k])] for k in keys if self.tails.get(k)}
        return bodies, replay

    async def badges(self, after: str = "", limit: int = 5000) -> list[BadgeUpdate]:
        return [self.badge_rows[u] for u in sorted(self.badge_rows) if u > after][:limit]

    def views(self, config: ViewConfig | None = None) -> ViewRows:
        """The public views, as :func:`cohortflow.stores.queries.snapshot` reads them from PostgreSQL."""
        return self.memory.views(config or ViewConfig())

    # --- the batch transaction ------------------------------------------------------------
    async def commit(self, effect: Effect, commit: Commit) -> list[BadgeUpdate]:
        """Check every fence, offset and tail first; then apply the whole batch (nothing, on any refusal)."""
        moved = sorted(s for s, loaded in commit.fences.items()
                       if s in self.shard_fences and self.shard_fences[s] != loaded)
        if moved:
            raise FenceConflict(f"shards {moved} were written by another worker since they were loaded")
        stale = sorted(tp for tp, (old, _) in commit.offsets.items() if self.stored_offsets.get(tp) != old)
        if stale:
            raise FenceConflict(f"offsets of {stale} were committed by another worker meanwhile")
        for key, (first, events) in commit.tails.items():
            held = {} if key in commit.entities else self.tails.get(key, {})
            taken = sorted(held.keys() & set(range(first, first + len(events))))
            if taken:  # the primary key (kind, id, seq) of entity_tail: PostgreSQL's unique violation
                raise IntegrityError(f"tail events {taken} of {key[0]}:{key[1]} are stored already")
        for shard, loaded in commit.fences.items():
            self.shard_fences[shard] = loaded + 1
        for tp, (_, new) in commit.offsets.items():
            self.stored_offsets[tp] = new
        for key, (shard, body) in commit.entities.items():
            self.states[key] = (shard, body)
            self.tails.pop(key, None)  # a written state holds every event of its tail
        for key, (first, events) in commit.tails.items():
            self.tails.setdefault(key, {}).update(enumerate(events, first))
        for event in effect.audit:
            self.audit.setdefault((micros(event.occurred_at), event.event_id), event)
        mentors = {row[1] for row in effect.deltas if row[0] == MENTOR_TAG} | {
            row[1] for row in effect.named if row[0] == MENTOR_TAG}
        self.memory.apply(effect)
        self.commits += 1
        return self._badges(effect, mentors)

    def _badges(self, effect: Effect, mentors: set[str]) -> list[BadgeUpdate]:
        updates: dict[str, BadgeUpdate] = {}
        for user in sorted(effect.unread):
            self._badge(updates, user, unread=effect.unread[user])
        for mentor in sorted(mentors):
            if (MENTOR_TAG, mentor) in self.memory.named:  # only a mentor row is a mentor's badge
                pending = self.memory.rows.get((MENTOR_TAG, mentor), {}).get("pending_reviews", 0)
                self._badge(updates, mentor, pending_reviews=pending)
        return list(updates.values())

    def _badge(self, updates: dict[str, BadgeUpdate], user: str, **values: int) -> None:
        held = self.badge_rows.get(user)
        if held is None:
            new = BadgeUpdate(user, values.get("unread", 0), values.get("pending_reviews"), 1)
        elif all(getattr(held, name) == value for name, value in values.items()):
            return
        else:
            new = BadgeUpdate(user, values.get("unread", held.unread),
                              values.get("pending_reviews", held.pending_reviews), held.rev + 1)
        self.badge_rows[user] = updates[user] = new


@dataclass
class InMemoryBadges:
    """A :class:`~cohortflow.stores.port.BadgeCache` in a dict: keeps the newest revision of each badge."""

    held: dict[str, BadgeUpdate] = field(default_factory=dict)
    needs_restore: bool = True
    restores: int = 0

    async def write(self, updates: Iterable[BadgeUpdate]) -> int:
        written = 0
        for update in updates:
            known = self.held.get(update.user_id)
            if known is None or update.rev > known.rev:
                self.held[update.user_id] = update
                written += 1
        return written

    async def restore(self, pages: Callable[[str], Awaitable[list[BadgeUpdate]]]) -> int:
        self.restores += 1
        written, after = 0, ""
        while page := await pages(after):
            written += await self.write(page)
            after = page[-1].user_id
        return written


@dataclass
class InMemoryDeadLetters:
    """A :class:`~cohortflow.stores.port.DeadLetterSink` that keeps what it is sent."""

    sent: list[tuple[SourceRecord, Rejection]] = field(default_factory=list)

    async def send(self, rejected: Sequence[tuple[SourceRecord, Rejection]]) -> None:
        self.sent.extend(rejected)
