"""`cohortflow rebuild`: the views recomputed from the topics into a shadow schema, optionally swapped in.

The topics are the source of truth and the views a pure function of them, so
a rebuild is the same fold as the worker's, run once over the log up to the
end offsets captured when it starts, in memory, then written by COPY.

``--swap`` renames the live schema away and the shadow in, in one
transaction, while the worker keeps running: its next commit meets shard
fences it never held (see :data:`cohortflow.pipeline.snapshot.UNFENCED`), so it drops its
cache, reads the shadow's offsets and seeks there; records published since
the capture are applied once, by the worker. Badge revisions are lifted above
the live ones so that the worker's restore of Redis is accepted.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import os
import re
import zlib
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from cohortflow.core import state_codec
from cohortflow.core.fold import EntityKey, Fold, FoldConfig, FoldEvent, State, entity_key
from cohortflow.core.memory import MemoryViews
from cohortflow.errors import CohortflowError
from cohortflow.pipeline import snapshot
from cohortflow.pipeline.replay import ReplayStats, end_offsets, replay
from cohortflow.settings import Settings, load_settings
from cohortflow.stores.migrate import migrate
from cohortflow.stores.postgres import aconnect, connect, scalar

log = logging.getLogger(__name__)

VIEWS = ("floors", "mentors", "global", "notifications")
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class RebuildError(CohortflowError):
    """A rebuild was asked for something it cannot do (bad name, swap of a partial or past copy)."""

    exit_code = 2


@dataclass
class Rebuilt:
    schema: str
    stats: ReplayStats
    offsets: dict[tuple[str, int], int]
    seconds: float
    swapped_out: str | None = None


def shadow_name(settings: Settings, into: str | None, until: datetime | None) -> str:
    if into is None:
        into = (f"{settings.postgres_schema}_asof_{until.strftime('%Y%m%dT%H%M%S')}" if until
                else f"{settings.postgres_schema}_rebuild")
    if not _NAME.match(into) or into.startswith("pg_"):
        raise RebuildError(f"--into {into!r}: expected a lower-case SQL identifier (letters, digits, _)")
    if into == settings.postgres_schema:
        raise RebuildError(f"--into {into}: that is the live schema (COHORTFLOW_POSTGRES_SCHEMA); name a shadow")
    return into


def fold_log(settings: Settings, offsets: dict[tuple[str, int], int], until: datetime | None = None,
             progress: Callable[[int], None] | None = None, processes: int | None = None,
             ) -> tuple[MemoryViews, list[tuple[EntityKey, bytes]], ReplayStats]:
    """Fold every record before ``offsets`` (only events up to ``until`` if given) in memory.

    Returns the views, every entity's encoded state and the replay's counts. With
    ``processes`` > 1 the work is shared by that many forked processes whose views
    are merged (:meth:`MemoryViews.merge`): the same sum the worker's consumer group
    computes. Default: one process per CPU.

    First each process folds a share of the partition numbers of every topic: right
    when each entity's events sit in one partition number, as one partitioner keyed by
    entity id puts them. Producers with different partitioners (librdkafka hashes keys
    with CRC32, Java and aiokafka with murmur2) can split an entity over two partitions;
    an entity found in two shares proves it, and the fold is redone with the shares dealt
    by entity instead (every process reads every record and folds its entities only).
    """
    numbers = sorted({p for _, p in offsets})
    processes = max(1, min(processes or os.cpu_count() or 1, len(numbers)))
    if processes == 1:
        return _fold_share(settings, offsets, until, progress)
    by_partition: list[Share] = [
        ({tp: end for tp, end in offsets.items() if numbers.index(tp[1]) % processes == i}, None)
        for i in range(processes)]
    parts = _fold_in_processes(settings, by_partition, until, progress, 1)
    seen: set[EntityKey] = set()
    split = False
    for _, part_entities, _ in parts:
        keys = {key for key, _ in part_entities}
        split = split or not seen.isdisjoint(keys)
        seen |= keys
    if split:
        log.warning("an entity's events sit in more than one partition (producers with different partitioners);"
                    " folding again with the processes sharing entities instead of partitions")
        by_entity: list[Share] = [(offsets, (i, processes)) for i in range(processes)]
        parts = _fold_in_processes(settings, by_entity, until, progress, processes)
    memory, entities, stats = MemoryViews(), [], ReplayStats()
    for part, part_entities, part_stats in parts:
        memory.merge(part)
        entities += part_entities
        stats.merge(part_stats)
    if split:  # every process read every record
        stats = parts[0][2]
        stats.events = sum(p[2].events for p in parts)
    if progress:
        progress(stats.records)
    return memory, entities, stats


Share = tuple[dict[tuple[str, int], int], tuple[int, int] | None]  # offsets to read, (index, of) entities to fold


def _fold_in_processes(settings: Settings, shares: list[Share], until: datetime | None,
                       progress: Callable[[int], None] | None, readers_per_record: int) -> list:
    context = multiprocessing.get_context("fork")  # the children inherit the settings and the progress counters
    done = context.Array("q", len(shares), lock=False)
    # The children must not copy the parent's heap: a collection touching every inherited object would
    # (copy-on-write pages). Frozen objects are never scanned.
    gc.freeze()
    try:
        with ProcessPoolExecutor(len(shares), mp_context=context, initializer=_share_counters,
                                 initargs=(done,)) as pool:
            running = [pool.submit(_fold_counted, settings, share, until, i) for i, share in enumerate(shares)]
            while not all(f.done() for f in running):
                wait(running, timeout=0.2, return_when=FIRST_EXCEPTION)
                if any(f.done() and f.exception() for f in running):
                    break
                if progress:
                    progress(sum(done) // readers_per_record)
            return [future.result() for future in running]  # raises a child's error, if any
    finally:
        gc.unfreeze()


_counters: Any = None  # the multiprocessing Array a forked child writes its progress to


def _share_counters(counters) -> None:  # a multiprocessing Array
    global _counters
    _counters = counters


def _fold_counted(settings: Settings, share: Share, until: datetime | None, slot: int,
                  ) -> tuple[MemoryViews, list[tuple[EntityKey, bytes]], ReplayStats]:
    def count(records: int) -> None:
        _counters[slot] = records

    offsets, entities = share
    return _fold_share(settings, offsets, until, count, entities)


def _fold_share(settings: Settings, offsets: dict[tuple[str, int], int], until: datetime | None,
                progress: Callable[[int], None] | None, entities: tuple[int, int] | None = None,
                ) -> tuple[MemoryViews, list[tuple[EntityKey, bytes]], ReplayStats]:
    folder = Fold(FoldConfig.of(settings))
    state, memory = State(), MemoryViews()
    folded = 0

    def on_events(events: list[FoldEvent]) -> None:
        nonlocal folded
        if entities is not None:
            index, of = entities
            events = [e for e in events if zlib.crc32(entity_key(e)[1].encode()) % of == index]
            folded += len(events)
        if until is not None:
            events = [e for e in events if e.occurred_at <= until]
        memory.apply(folder.apply(events, state))
        gc.freeze()  # the state only grows: keep the collector off it

    stats = asyncio.run(replay(settings, offsets, on_events, progress=progress))
    if entities is not None:
        stats.events = folded
    return memory, [(key, state_codec.encode(e)) for key, e in state.entities.items()], stats


def rebuild(settings: Settings, *, views: tuple[str, ...] = VIEWS, until: datetime | None = None,
            into: str | None = None, swap: bool = False,
            progress: Callable[[int, int], None] | None = None, processes: int | None = None) -> Rebuilt:
    """Replay the topics into the schema ``into``; with ``swap``, make it the live schema."""
    unknown = set(views) - set(VIEWS)
    if unknown:
        raise RebuildError(f"--views: unknown {', '.join(sorted(unknown))}; expected some of {', '.join(VIEWS)}")
    if swap and (until is not None or set(views) != set(VIEWS)):
        raise RebuildError("--swap replaces the live views, so it needs every view and no --until")
    target = shadow_name(settings, into, until)
    began = datetime.now(UTC)
    offsets = asyncio.run(end_offsets(settings))
    total = sum(offsets.values())
    memory, entities, stats = fold_log(settings, offsets, until,
                                       (lambda done: progress(done, total)) if progress else None, processes)
    complete = set(views) == set(VIEWS) and until is None
    shadow = load_settings(**_same_as(settings), postgres_schema=target)
    with connect(settings, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(target)))
    migrate(shadow)
    tables = [t for view in views for t in snapshot.VIEW_TABLES[view]]
    partitions = len({p for _, p in offsets})

    async def write() -> None:
        async with aconnect(settings, schema=target) as conn:
            async with conn.transaction():
                await snapshot.write(conn, snapshot.from_memory(memory), entities if complete else None, offsets,
                                     partitions, settings.pillars, settings.workload_low_below,
                                     settings.workload_overloaded_above, tables)
                note = (f"cohortflow rebuild of {settings.postgres_schema} at {began.isoformat()}"
                        + (f": the views as they stood at {until.isoformat()} (event time)" if until else "")
                        + (f", views {', '.join(views)} only" if set(views) != set(VIEWS) else ""))
                await conn.execute(sql.SQL("COMMENT ON SCHEMA {} IS {}").format(sql.Identifier(target),
                                                                                sql.Literal(note)))

    asyncio.run(write())
    result = Rebuilt(target, stats, offsets, (datetime.now(UTC) - began).total_seconds())
    if swap:
        result.swapped_out = promote(settings, target)
    return result


def promote(settings: Settings, shadow: str) -> str:
    """Atomically make ``shadow`` the live schema; return the name the old live schema now has."""
    live = settings.postgres_schema
    retired = f"{live}_replaced_{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}"[:63]
    with connect(settings) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('cohortflow-swap:' || %s))", [live])
        exists = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [live]).fetchone()
        if exists:
            top = scalar(conn.execute(sql.SQL("SELECT coalesce(max(rev), 0) FROM {}.badges").format(
                sql.Identifier(live))).fetchone())
            conn.execute(sql.SQL("UPDATE {}.badges SET rev = rev + %s").format(sql.Identifier(shadow)), [top])
            _carry_audit_trail(conn, live, shadow)
            conn.execute(sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(sql.Identifier(live), sql.Identifier(retired)))
        conn.execute(sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(sql.Identifier(shadow), sql.Identifier(live)))
    return retired if exists else ""


def _carry_audit_trail(conn: psycopg.Connection, live: str, shadow: str) -> None:
    """The audit trail is a record, not a view: the live one (every partition) moves into the shadow."""
    parts = [r[0] for r in conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = to_regclass(%s)", [f'"{live}".audit_log'])]
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier(shadow, "audit_log")))
    for name in ["audit_log", *parts]:
        conn.execute(sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(sql.Identifier(live, name),
                                                                    sql.Identifier(shadow)))


def _same_as(settings: Settings) -> dict:
    """The settings of ``settings`` as overrides (to derive the shadow's settings from them)."""
    return {name: getattr(settings, name) for name in type(settings).model_fields if name != "postgres_schema"}
