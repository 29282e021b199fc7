"""The PostgreSQL side of the worker: load state and offsets, and commit one batch in one transaction.

Commit order, fixed so that concurrent workers lock rows in one global order
and never deadlock: shard fences, offsets, entity states, audit trail, floors, floor
pillars, mentors, mentor activity, days, global, badges. Within a table rows
are locked in key order. A batch costs a constant number of round trips (two
pipelines and two COPYs): entity states and audit rows go by binary COPY into
session staging tables, view rows as one orjson-encoded ``jsonb`` parameter
per table (``jsonb_to_recordset``), both far cheaper than letting the driver
dump large arrays element by element.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Coroutine, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import orjson
import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from cohortflow.core.clock import day_date, instant
from cohortflow.core.contributions import DAY_FIELDS, FLOOR_FIELDS, GLOBAL_FIELDS, MENTOR_FIELDS, Row
from cohortflow.core.fold import Effect, EntityKey
from cohortflow.core.rows import DAY_TAG, FLOOR_TAG, GLOBAL, MENTOR_TAG
from cohortflow.errors import IntegrityError, OperationalError
from cohortflow.settings import Settings
from cohortflow.stores import audit
from cohortflow.stores.port import BadgeUpdate, Commit, FenceConflict, TailEvent, TopicPartition
from cohortflow.stores.postgres import convert, copy_rows

_PILLAR = "pillar:"


def pool(settings: Settings, max_size: int = 4, *, check: bool = True, staging: bool = False) -> AsyncConnectionPool:
    """A pool on the views' schema; connections broken by a PostgreSQL restart are replaced on checkout.

    ``staging``: each connection creates the session's COPY staging tables once, when it is opened, so
    a batch commit does not spend a round trip on them.
    """
    return AsyncConnectionPool(
        settings.postgres_url,
        min_size=1,
        max_size=max_size,
        # No server-side prepared statements: their plans would keep naming the old tables after
        # `rebuild --swap` renames schemas; every statement must resolve the schema by name.
        # No JIT: the batch statements read thousands of rows by index, where compiling costs more than it
        # saves (23 ms of a 99 ms mentor update at 200,000 students, when the planner's estimate crossed
        # jit_above_cost).
        kwargs={"options": f"-c search_path={settings.postgres_schema} -c jit=off", "prepare_threshold": None},
        # The worker checks each connection on checkout; the read API (check=False) saves that round trip
        # per request and lets a connection broken by a PostgreSQL restart fail one request (503).
        check=AsyncConnectionPool.check_connection if check else None,
        open=False,
        name="cohortflow-views",
        configure=_create_staging_tables if staging else None,
    )


async def _create_staging_tables(conn: psycopg.AsyncConnection) -> None:
    # Outside any batch transaction, and committed: a batch rolled back cannot take them away.
    await conn.execute(ENTITY_STAGING_TABLE)
    await conn.execute(TAIL_STAGING_TABLE)
    await conn.execute(audit.STAGING_TABLE)
    await conn.commit()


class PostgresViews:
    """Reads and writes the views' schema; psycopg errors come out as cohortflow errors."""

    def __init__(self, connections: AsyncConnectionPool) -> None:
        self.connections = connections

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection]:
        try:
            async with self.connections.connection(timeout=10) as conn:
                yield conn
        except FenceConflict:
            raise
        except psycopg.errors.DeadlockDetected as exc:
            raise FenceConflict(f"deadlock with another worker, batch will be redone: {exc}") from exc
        except psycopg.errors.SerializationFailure as exc:
            raise FenceConflict(f"serialization failure, batch will be redone: {exc}") from exc
        except psycopg.Error as exc:
            raise convert(exc) from exc
        except TimeoutError as exc:  # the pool found no working connection in time
            raise OperationalError(f"no PostgreSQL connection within 10 s: {exc}") from exc

    # --- reads -------------------------------------------------------------------------
    async def offsets(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """The next offset to consume of each of ``tps`` that has one stored."""
        tps = list(tps)
        if not tps:
            return {}
        async with self._connection() as conn, conn.transaction():
            cur = await conn.execute(
                "SELECT topic, partition, next_offset FROM consumer_offsets o"
                " JOIN unnest(%s::text[], %s::int[]) u(t, p) ON o.topic = u.t AND o.partition = u.p",
                [[t for t, _ in tps], [p for _, p in tps]],
            )
            return {(t, p): n for t, p, n in await cur.fetchall()}

    async def fences(self, shards: Iterable[int]) -> dict[int, int]:
        async with self._connection() as conn, conn.transaction():
            cur = await conn.execute("SELECT shard, version FROM shard_fences WHERE shard = ANY(%s)",
                                          [list(shards)])
            return dict(await cur.fetchall())

    async def entities(self, keys: Iterable[EntityKey]
                       ) -> tuple[dict[EntityKey, bytes], dict[EntityKey, list[TailEvent]]]:
        """The stored states of ``keys`` (:mod:`cohortflow.core.state_codec` bodies) and the events to replay onto them
        (their tails, in order)."""
        keys = list(keys)
        if not keys:
            return {}, {}
        params = [[k for k, _ in keys], [i for _, i in keys]]
        async with self._connection() as conn, conn.transaction():
            async with conn.pipeline():
                states = await conn.execute(
                    "SELECT e.kind, e.id, e.body FROM entity_state e"
                    " JOIN unnest(%s::\"char\"[], %s::text[]) u(k, i) ON e.kind = u.k AND e.id = u.i", params)
                tails = await conn.execute(
                    "SELECT t.kind, t.id, t.topic, t.value FROM entity_tail t"
                    " JOIN unnest(%s::\"char\"[], %s::text[]) u(k, i) ON t.kind = u.k AND t.id = u.i"
                    " ORDER BY t.kind, t.id, t.seq", params)
            rows = await states.fetchall()
            replay: dict[EntityKey, list[TailEvent]] = {}
            for k, i, topic, value in await tails.fetchall():
                replay.setdefault((k, i), []).append((topic, value))
        return {(k, i): body for k, i, body in rows}, replay

    async def badges(self, after: str = "", limit: int = 5000) -> list[BadgeUpdate]:
        """Badges in user_id order from ``after`` on: the source Redis is restored from."""
        async with self._connection() as conn, conn.transaction():
            cur = await conn.execute(
                "SELECT user_id, unread, pending_reviews, rev FROM badges WHERE user_id > %s ORDER BY user_id LIMIT %s",
                [after, limit],
            )
            return [BadgeUpdate(*row) for row in await cur.fetchall()]

    async def ensure_config(self, pillars: tuple[str, ...], low_below: int, overloaded_above: int) -> None:
        """Record the configuration the views are built with; refuse other pillars than the stored ones."""
        async with self._connection() as conn, conn.transaction():
            cur = await conn.execute("SELECT pillars FROM view_config FOR UPDATE")
            row = await cur.fetchone()
            if row is not None and tuple(row[0]) != tuple(pillars):
                raise IntegrityError(
                    f"COHORTFLOW_PILLARS is {','.join(pillars)} but the views in this schema were built with "
                    f"{','.join(row[0])}: restore the setting, or rebuild the views into a new schema"
                )
            await conn.execute(
                "INSERT INTO view_config (pillars, workload_low_below, workload_overloaded_above)"
                " VALUES (%s, %s, %s) ON CONFLICT (singleton) DO UPDATE"
                " SET workload_low_below = EXCLUDED.workload_low_below,"
                " workload_overloaded_above = EXCLUDED.workload_overloaded_above",
                [list(pillars), low_below, overloaded_above],
            )

    async def ensure_audit_partitions(self) -> int:
        """Create the audit partitions of last month to two months ahead (batches create others on need)."""
        async with self._connection() as conn, conn.transaction():
            return await audit.ensure_ahead(conn)

    # --- the batch transaction ------------------------------------------------------------
    async def commit(self, effect: Effect, commit: Commit, now: datetime | None = None) -> list[BadgeUpdate]:
        """Write state, views and offsets of one batch atomically; return the badges that changed.

        Raises :class:`FenceConflict` (nothing written) when another worker moved
        a shard or an offset this batch depends on.
        """
        async with self._connection() as conn, conn.transaction():
            # Round trips are what a small batch's commit costs: the statements go in two pipelines, and
            # only the COPYs of entity states and audit rows (not allowed in a pipeline) sit between them.
            async with conn.pipeline():
                # First, before any name is resolved: `rebuild --swap` holds this lock exclusively while it
                # renames schemas, so a batch runs wholly against one schema, never half in each.
                await conn.execute("SELECT pg_advisory_xact_lock_shared(hashtext('cohortflow-swap:' ||"
                                   " current_setting('search_path')))")
                checks = [await self._fences(conn, commit.fences), await self._offsets(conn, commit.offsets)]
            try:
                for check in checks:
                    await check
            finally:
                for check in checks:
                    check.close()  # one not awaited because another raised
            staged = await stage_entities(conn, ((key, shard, body) for key, (shard, body)
                                                 in sorted(commit.entities.items())))
            tails = await stage_tails(conn, commit.tails)
            months = await audit.stage(conn, effect.audit)
            async with conn.pipeline():
                # In the global lock order: entity states, audit trail, then the shared view rows.
                if staged:
                    await conn.execute(DROP_TAILS)
                    await conn.execute(APPLY_ENTITIES)
                if tails:
                    await conn.execute(APPLY_TAILS)
                if months:
                    await conn.execute("SELECT audit_ensure_months(%s::date[])", [months])
                    await conn.execute(audit.APPLY)
                await self._floors(conn, effect)
                activity = _activity_changes(effect)
                mentors = await self._mentors(conn, effect, activity)
                await self._activity(conn, activity)
                await self._days(conn, effect)
                await self._global(conn, effect)
                return await self._badges(conn, effect, mentors)

    async def _fences(self, conn: psycopg.AsyncConnection, fences: Mapping[int, int]) -> Coroutine[Any, Any, None]:
        """Send the compare-and-set of the shard fences; await the result to check it (after the pipeline)."""
        if not fences:
            return _done()
        shards = sorted(fences)
        cur = await conn.execute(
            "INSERT INTO shard_fences AS f (shard, version) SELECT * FROM unnest(%s::int[], %s::bigint[])"
            " ON CONFLICT (shard) DO UPDATE SET version = EXCLUDED.version WHERE f.version = EXCLUDED.version - 1"
            " RETURNING shard",
            [shards, [fences[s] + 1 for s in shards]],
        )

        async def check() -> None:
            moved = set(shards) - {r[0] for r in await cur.fetchall()}
            if moved:
                raise FenceConflict(f"shards {sorted(moved)} were written by another worker since they were loaded")

        return check()

    async def _offsets(self, conn: psycopg.AsyncConnection,
                       offsets: Mapping[TopicPartition, tuple[int | None, int]]) -> Coroutine[Any, Any, None]:
        """Send the compare-and-set of the stored offsets; await the result to check it (after the pipeline)."""
        known = sorted((tp, old, new) for tp, (old, new) in offsets.items() if old is not None)
        fresh = sorted((tp, new) for tp, (old, new) in offsets.items() if old is None)
        cursors = []
        if known:
            cursors.append(await conn.execute(
                "UPDATE consumer_offsets o SET next_offset = u.n, updated_at = now()"
                " FROM unnest(%s::text[], %s::int[], %s::bigint[], %s::bigint[]) u(t, p, old, n)"
                " WHERE o.topic = u.t AND o.partition = u.p AND o.next_offset = u.old RETURNING o.topic, o.partition",
                [[tp[0] for tp, _, _ in known], [tp[1] for tp, _, _ in known], [o for _, o, _ in known],
                 [n for _, _, n in known]],
            ))
        if fresh:
            cursors.append(await conn.execute(
                "INSERT INTO consumer_offsets (topic, partition, next_offset)"
                " SELECT * FROM unnest(%s::text[], %s::int[], %s::bigint[]) ON CONFLICT DO NOTHING"
                " RETURNING topic, partition",
                [[tp[0] for tp, _ in fresh], [tp[1] for tp, _ in fresh], [n for _, n in fresh]],
            ))

        async def check() -> None:
            done: set[TopicPartition] = set()
            for cur in cursors:
                done |= {(t, p) for t, p in await cur.fetchall()}
            moved = set(offsets) - done
            if moved:
                raise FenceConflict(f"offsets of {sorted(moved)} were committed by another worker meanwhile")

        return check()

    async def _floors(self, conn: psycopg.AsyncConnection, effect: Effect) -> None:
        rows = _rows_of(effect, FLOOR_TAG)
        if not rows:
            return
        named = [r for r in rows if r in effect.named]
        if named:
            await conn.execute(
                "INSERT INTO floor_counts (campus, floor)"
                " SELECT campus, floor FROM jsonb_to_recordset(%s::jsonb) AS d(campus text, floor text)"
                " ORDER BY campus, floor ON CONFLICT DO NOTHING",
                [_json([{"campus": r[1], "floor": r[2]} for r in named])],
            )
        payload = _json([_record(effect, r, FLOOR_FIELDS, campus=r[1], floor=r[2]) for r in rows])
        await conn.execute(
            "SELECT 1 FROM floor_counts f JOIN jsonb_to_recordset(%s::jsonb) AS d(campus text, floor text)"
            " ON f.campus = d.campus AND f.floor = d.floor ORDER BY f.campus, f.floor FOR UPDATE OF f",
            [payload],
        )
        await conn.execute(
            sql.SQL(
                "UPDATE floor_counts f SET {sets}, as_of = greatest(f.as_of, d.as_of),"
                " updated_at = CASE WHEN d.changed OR d.as_of > coalesce(f.as_of, '-infinity') THEN now()"
                " ELSE f.updated_at END"
                " FROM jsonb_to_recordset(%s::jsonb) AS d(campus text, floor text, {columns},"
                " as_of timestamptz, changed boolean)"
                " WHERE f.campus = d.campus AND f.floor = d.floor"
            ).format(**_additive(FLOOR_FIELDS, "f")),
            [payload],
        )
        pillars = [
            {"campus": r[1], "floor": r[2], "pillar": name[len(_PILLAR):], "completed": delta}
            for r in rows for name, delta in sorted(effect.deltas.get(r, {}).items()) if name.startswith(_PILLAR)
        ]
        if pillars:
            await conn.execute(
                "INSERT INTO floor_pillar_counts AS p (campus, floor, pillar, completed)"
                " SELECT * FROM jsonb_to_recordset(%s::jsonb) AS d(campus text, floor text, pillar text, completed int)"
                " ORDER BY campus, floor, pillar"
                " ON CONFLICT (campus, floor, pillar) DO UPDATE SET completed = p.completed + EXCLUDED.completed",
                [_json(pillars)],
            )

    async def _mentors(self, conn: psycopg.AsyncConnection, effect: Effect, activity: list[Activity]
                       ) -> dict[str, tuple[int, bool]]:
        """Apply mentor rows; return mentor -> (pending_reviews, named) for badges that must mirror it.

        A mentor row exists once a batch names the mentor, moves its counts or its own details; a user's
        logins alone create none: they live in mentor_activity, and the row a later batch creates starts
        from that table's maximum, both as last_active_at and as as_of (before a mentor is named, logins
        are all that touch its row). Most users who log in never mentor anyone (180,000 of 197,000 in the
        200,000-student scaling log), and their rows were most of the mentor statements' writes.
        """
        rows = sorted({r for r in effect.deltas if r[0] == MENTOR_TAG} | {r for r in effect.named if r[0] == MENTOR_TAG}
                      | {(MENTOR_TAG, m) for m in effect.mentor_self})
        # Rows this batch only touches (activity, as_of) are updated where they exist.
        active = sorted(({(MENTOR_TAG, m) for m, _ in effect.activity}
                         | {r for r in effect.as_of if r[0] == MENTOR_TAG}).difference(rows))
        if not rows and not active:
            return {}
        if active:
            # Lock every existing row of the batch in mentor order before the update meets them, as the
            # INSERT below does alone when every row goes through it: two workers never wait on each other
            # in a cycle. Rows the INSERT creates are then locked in the same order after these.
            locked = await conn.execute(
                "SELECT m.mentor_id FROM mentor_counts m JOIN jsonb_array_elements_text(%s::jsonb) AS d(mentor_id)"
                " ON m.mentor_id = d.mentor_id ORDER BY m.mentor_id FOR UPDATE OF m",
                [_json([r[1] for r in sorted((*rows, *active))])],
            )
            # One round trip mid-pipeline (the fetch syncs it) so the update carries only rows that exist:
            # most activity is logins of users with no row (1,500 of 11,500 rows at 200,000 students).
            existing = {m for m, in await locked.fetchall()}
            active = [r for r in active if r[1] in existing]
            kept = existing.union(r[1] for r in rows)  # the rows the update meets
            activity = [change for change in activity if change[0] in kept]
            if not rows and not active:
                return {}
        # A row created here starts from the old activity (read before :meth:`_activity` writes this
        # batch's); the update below then moves it as it moves any other row.
        cur = await conn.execute(
            "INSERT INTO mentor_counts AS m (mentor_id, named, last_active_at, as_of)"
            " SELECT d.mentor_id, d.named, x.latest, x.latest"
            " FROM jsonb_to_recordset(%s::jsonb) AS d(mentor_id text, named boolean)"
            " CROSS JOIN LATERAL (SELECT max(a.at) AS latest FROM mentor_activity a WHERE a.mentor_id = d.mentor_id) x"
            " ORDER BY d.mentor_id"
            " ON CONFLICT (mentor_id) DO UPDATE SET named = true, updated_at = now()"
            " WHERE EXCLUDED.named AND NOT m.named RETURNING mentor_id, named",
            [_json([{"mentor_id": r[1], "named": r in effect.named} for r in rows])],
        ) if rows else None
        named_now = cur  # read below, with the update's rows: one round trip for both
        records = []
        for r in sorted((*rows, *active)):
            mine = effect.mentor_self.get(r[1])
            record = _record(effect, r, MENTOR_FIELDS, mentor_id=r[1], has_self=mine is not None)
            if mine is not None:
                record.update(campus=mine[0], floor=mine[1], active=mine[2])
            records.append(record)
        # Every row the UPDATE meets is locked by now, in mentor order: by the SELECT above, or by the INSERT
        # (ON CONFLICT DO UPDATE locks the conflicting row even where its WHERE is false; the PostgreSQL
        # manual, INSERT). The same UPDATE moves last_active_at (:data:`_LATEST_ACTIVITY`), so each touched
        # mentor row gets one new version per batch, not two.
        cur = await conn.execute(
            sql.SQL(
                "WITH {latest}"
                " UPDATE mentor_counts m SET {sets},"
                " campus = CASE WHEN d.has_self THEN d.campus ELSE m.campus END,"
                " floor = CASE WHEN d.has_self THEN d.floor ELSE m.floor END,"
                " active = CASE WHEN d.has_self THEN d.active ELSE m.active END,"
                " as_of = greatest(m.as_of, d.as_of),"
                " last_active_at = CASE WHEN v.m IS NULL THEN m.last_active_at ELSE v.latest END,"
                " updated_at = CASE WHEN d.changed OR d.has_self OR d.as_of > coalesce(m.as_of, '-infinity')"
                " OR (v.m IS NOT NULL AND m.last_active_at IS DISTINCT FROM v.latest)"
                " THEN now() ELSE m.updated_at END"
                " FROM jsonb_to_recordset(%s::jsonb) AS d(mentor_id text, {columns}, has_self boolean,"
                " campus text, floor text, active boolean, as_of timestamptz, changed boolean)"
                " LEFT JOIN v ON v.m = d.mentor_id"
                " WHERE m.mentor_id = d.mentor_id"
                " RETURNING m.mentor_id, m.pending_reviews, m.named, d.pending_reviews <> 0"
            ).format(latest=sql.SQL(_LATEST_ACTIVITY), **_additive(MENTOR_FIELDS, "m")),
            [_json(activity), _json(records)],
        )
        newly_named = {m for m, named in await named_now.fetchall() if named} if named_now is not None else set()
        return {m: (pending, named) for m, pending, named, moved in await cur.fetchall()
                if named and (moved or m in newly_named)}

    async def _activity(self, conn: psycopg.AsyncConnection, changes: list[Activity]) -> None:
        """Write each contributor's latest instant; after :meth:`_mentors`, which read the old ones."""
        upserts = [change for change in changes if change[2] is not None]
        deletes = [(m, c) for m, c, ts in changes if ts is None]
        if upserts:
            await conn.execute(
                "INSERT INTO mentor_activity (mentor_id, contributor, at)"
                f" SELECT a->>0, a->>1, {_instant_sql('(a->>2)::bigint')} FROM jsonb_array_elements(%s::jsonb) a"
                " ON CONFLICT (mentor_id, contributor) DO UPDATE SET at = EXCLUDED.at",
                [_json(upserts)],
            )
        if deletes:
            await conn.execute(
                "DELETE FROM mentor_activity a USING jsonb_array_elements(%s::jsonb) u"
                " WHERE a.mentor_id = u->>0 AND a.contributor = u->>1",
                [_json(deletes)],
            )

    async def _days(self, conn: psycopg.AsyncConnection, effect: Effect) -> None:
        rows = _rows_of(effect, DAY_TAG)
        if not rows:
            return
        records = []
        for r in rows:
            deltas = effect.deltas.get(r, {})
            records.append(_record(effect, r, DAY_FIELDS, day=day_date(r[1]),
                                   steps=bool(deltas.get("students_step") or deltas.get("mentors_step"))))
        payload = _json(records)
        await conn.execute(
            "INSERT INTO daily_counts (day) SELECT day FROM jsonb_to_recordset(%s::jsonb) AS d(day date)"
            " ORDER BY day ON CONFLICT DO NOTHING",
            [payload],
        )
        await conn.execute(
            "SELECT 1 FROM daily_counts x JOIN jsonb_to_recordset(%s::jsonb) AS d(day date) ON x.day = d.day"
            " ORDER BY x.day FOR UPDATE OF x",
            [payload],
        )
        await conn.execute(
            sql.SQL(
                "UPDATE daily_counts x SET {sets}, as_of = greatest(x.as_of, d.as_of),"
                " steps_changed_at = CASE WHEN d.steps THEN now() ELSE x.steps_changed_at END,"
                " updated_at = CASE WHEN d.changed OR d.as_of > coalesce(x.as_of, '-infinity') THEN now()"
                " ELSE x.updated_at END"
                " FROM jsonb_to_recordset(%s::jsonb) AS d(day date, {columns}, as_of timestamptz, changed boolean,"
                " steps boolean)"
                " WHERE x.day = d.day"
            ).format(**_additive(DAY_FIELDS, "x")),
            [payload],
        )

    async def _global(self, conn: psycopg.AsyncConnection, effect: Effect) -> None:
        deltas = effect.deltas.get(GLOBAL, {})
        as_of = effect.as_of.get(GLOBAL)
        if not deltas and as_of is None:
            return
        await conn.execute(
            sql.SQL(
                "UPDATE global_counts g SET {sets}, as_of = greatest(g.as_of, %s::timestamptz), updated_at = now()"
            ).format(sets=sql.SQL(", ").join(
                sql.SQL("{c} = g.{c} + %s").format(c=sql.Identifier(n)) for n in GLOBAL_FIELDS)),
            [*(deltas.get(n, 0) for n in GLOBAL_FIELDS), instant(as_of) if as_of is not None else None],
        )

    async def _badges(self, conn: psycopg.AsyncConnection, effect: Effect,
                      mentors: dict[str, tuple[int, bool]]) -> list[BadgeUpdate]:
        updates: dict[str, BadgeUpdate] = {}
        if effect.unread:
            users = sorted(effect.unread)
            cur = await conn.execute(
                "INSERT INTO badges AS b (user_id, unread) SELECT * FROM unnest(%s::text[], %s::int[])"
                " ON CONFLICT (user_id) DO UPDATE SET unread = EXCLUDED.unread, rev = b.rev + 1"
                " WHERE b.unread <> EXCLUDED.unread RETURNING user_id, unread, pending_reviews, rev",
                [users, [effect.unread[u] for u in users]],
            )
            updates.update((r[0], BadgeUpdate(*r)) for r in await cur.fetchall())
        if mentors:
            ids = sorted(mentors)
            cur = await conn.execute(
                "INSERT INTO badges AS b (user_id, pending_reviews) SELECT * FROM unnest(%s::text[], %s::int[])"
                " ON CONFLICT (user_id) DO UPDATE SET pending_reviews = EXCLUDED.pending_reviews, rev = b.rev + 1"
                " WHERE b.pending_reviews IS DISTINCT FROM EXCLUDED.pending_reviews"
                " RETURNING user_id, unread, pending_reviews, rev",
                [ids, [mentors[m][0] for m in ids]],
            )
            updates.update((r[0], BadgeUpdate(*r)) for r in await cur.fetchall())
        return list(updates.values())


ENTITY_STAGING_TABLE = (
    "CREATE TEMP TABLE IF NOT EXISTS entity_batch (kind text, id text, shard integer, body bytea)"
    " ON COMMIT DELETE ROWS"
)
"""The session's staging table for entity states (a temp table: psycopg has no binary dumper for ``"char"``)."""

APPLY_ENTITIES = (
    "INSERT INTO entity_state (kind, id, shard, body) SELECT kind::\"char\", id, shard, body"
    " FROM entity_batch ORDER BY kind, id"
    " ON CONFLICT (kind, id) DO UPDATE SET body = EXCLUDED.body, shard = EXCLUDED.shard"
)
"""Upserts the staged states: one statement, pipeline-friendly.

The staging table empties when the transaction ends (``ON COMMIT DELETE ROWS``), so a batch stages once
and leaves it; a caller staging twice in one transaction truncates it between (:func:`write_entities`).
Deleting the staged rows in the statement itself (``DELETE ... RETURNING``) cost ~10% more per batch of
15,000 states (measured on this machine's PostgreSQL 15).
"""

DROP_TAILS = (
    "DELETE FROM entity_tail t USING entity_batch b WHERE t.kind = b.kind::\"char\" AND t.id = b.id"
)
"""Deletes the tails of the staged states (they hold every event of their tails): run before :data:`APPLY_ENTITIES`."""

TAIL_STAGING_TABLE = (
    "CREATE TEMP TABLE IF NOT EXISTS tail_batch (kind text, id text, seq integer, topic text, value bytea)"
    " ON COMMIT DELETE ROWS"
)
"""The session's staging table for tail events."""

APPLY_TAILS = (
    "WITH staged AS (DELETE FROM tail_batch RETURNING *)"
    " INSERT INTO entity_tail (kind, id, seq, topic, value) SELECT kind::\"char\", id, seq, topic, value"
    " FROM staged ORDER BY kind, id, seq"
)
"""Appends the staged tail events (emptying the staging table)."""


async def stage_entities(conn: psycopg.AsyncConnection, entities: Iterable[tuple[EntityKey, int, bytes]]) -> int:
    """Binary COPY of encoded entity states (:func:`cohortflow.core.state_codec.encode`) into the staging table.

    The bodies come encoded so that the caller snapshots the states before this
    awaits anything: the worker folds the next batch into the same objects
    while this one commits. Follow with :data:`APPLY_ENTITIES` in the same transaction.
    """
    return await copy_rows(conn, "entity_batch (kind, id, shard, body)",
                           ((kind, entity_id, shard, body) for (kind, entity_id), shard, body in entities),
                           ["text", "text", "int4", "bytea"])


async def stage_tails(conn: psycopg.AsyncConnection, tails: Mapping[EntityKey, tuple[int, Sequence[TailEvent]]]) -> int:
    """Binary COPY of tail events into the staging table; follow with :data:`APPLY_TAILS`."""
    if not tails:
        return 0
    return await copy_rows(conn, "tail_batch (kind, id, seq, topic, value)",
                           ((kind, entity_id, seq, topic, value)
                            for (kind, entity_id), (first, events) in sorted(tails.items())
                            for seq, (topic, value) in enumerate(events, first)),
                           ["text", "text", "int4", "text", "bytea"])


async def write_entities(conn: psycopg.AsyncConnection, entities: Iterable[tuple[EntityKey, int, bytes]]) -> None:
    """Upsert encoded entity states on any connection (inside the caller's transaction); their tails go."""
    await conn.execute(ENTITY_STAGING_TABLE)
    if await stage_entities(conn, entities):
        await conn.execute(DROP_TAILS)
        await conn.execute(APPLY_ENTITIES)
        await conn.execute("TRUNCATE entity_batch")  # the next call in this transaction stages anew


async def _done() -> None:
    return None


def _rows_of(effect: Effect, kind: str) -> list[Row]:
    rows = {r for r in effect.deltas if r[0] == kind} | {r for r in effect.as_of if r[0] == kind}
    rows |= {r for r in effect.named if r[0] == kind}
    return sorted(rows)


def _record(effect: Effect, row: Row, fields: tuple[str, ...], **keys: object) -> dict:
    """One row of a batch for ``jsonb_to_recordset``: its keys, every delta (0 when none), as_of, changed."""
    deltas = effect.deltas.get(row, {})
    record = {**keys, **{name: deltas.get(name, 0) for name in fields}, "changed": any(deltas.values())}
    ts = effect.as_of.get(row)
    record["as_of"] = instant(ts) if ts is not None else None
    return record


def _instant_sql(us: str) -> str:
    """SQL for the timestamptz of ``us`` microseconds since the epoch, exact over years 1-9999.

    Seconds and microseconds apart: an interval times one bigint goes through a double and loses the
    microseconds after year 2255.
    """
    return f"timestamptz 'epoch' + {us} / 1000000 * interval '1 second' + mod({us}, 1000000) * interval '1 microsecond'"


Activity = tuple[str, str, int | None]


def _activity_changes(effect: Effect) -> list[Activity]:
    """(mentor, contributor, latest instant in microseconds or None: gone), sorted.

    As JSON with instants in microseconds: psycopg's array dumpers and the datetimes took about a sixth of
    the commit thread's time in py-spy (make bench-worker).
    """
    return sorted((m, c, ts) for (m, c), ts in effect.activity.items())


_LATEST_ACTIVITY = (
    # v: each mentor of the batch's activity changes (the first parameter) and its new last_active_at, read
    # while mentor_activity still holds the old values. It is the greater of the old maximum and the new
    # values, unless a value equal to the old maximum went down or away; only then are the mentor's other
    # contributors read (recomputing every touched mentor from all its rows was 15% of PostgreSQL's time in
    # make bench-worker). The mentor rows are locked by then, so no other worker moves them meanwhile.
    "d_act AS (SELECT a->>0 AS m, a->>1 AS c,"
    f"   {_instant_sql('(a->>2)::bigint')} AS at"  # NULL for a deletion (JSON null)
    "   FROM jsonb_array_elements(%s::jsonb) a),"
    " g AS (SELECT d_act.m, max(d_act.at) AS grown, array_agg(d_act.c) AS cs,"
    "   max(x.at) FILTER (WHERE d_act.at IS NULL OR d_act.at < x.at) AS lost"
    "   FROM d_act LEFT JOIN mentor_activity x ON x.mentor_id = d_act.m AND x.contributor = d_act.c"
    "   GROUP BY d_act.m),"
    " v AS (SELECT g.m, CASE WHEN g.lost IS NULL OR g.lost < c.last_active_at"
    "   THEN greatest(c.last_active_at, g.grown)"
    "   ELSE greatest(g.grown, (SELECT max(x.at) FROM mentor_activity x"
    "     WHERE x.mentor_id = g.m AND x.contributor <> ALL (g.cs))) END AS latest"
    "   FROM g JOIN mentor_counts c ON c.mentor_id = g.m)"
)


def _json(records: list) -> str:
    # orjson writes datetimes as RFC 3339 and dates as ISO dates, which jsonb_to_recordset reads back exactly.
    return orjson.dumps(records).decode()


def _additive(fields: tuple[str, ...], alias: str) -> dict[str, sql.Composable]:
    """SET clauses adding ``d.<field>`` to each column, and the recordset's column definitions."""
    types = {"review_us_sum": "bigint"}
    return {
        "sets": sql.SQL(", ").join(
            sql.SQL("{c} = {a}.{c} + d.{c}").format(c=sql.Identifier(n), a=sql.Identifier(alias)) for n in fields
        ),
        "columns": sql.SQL(", ").join(sql.SQL("{} " + types.get(n, "integer")).format(sql.Identifier(n))
                                      for n in fields),
    }
