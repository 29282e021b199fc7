"""The views' base rows as plain data: derived from a fold in memory, read from or written to a schema.

`rebuild` writes a fold's rows into a fresh schema (by COPY, a schema a
worker can continue from); `validate` reads the live rows and compares them,
row by row and field by field, with a fold of the log. One shape serves both:
``BaseRows[table][key][column] = value``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import psycopg

from cohortflow.core.clock import day_date, instant
from cohortflow.core.contributions import DAY_FIELDS, FLOOR_FIELDS, MENTOR_FIELDS
from cohortflow.core.fold import EntityKey
from cohortflow.core.memory import MemoryViews
from cohortflow.core.rows import DAY_TAG, FLOOR_TAG, GLOBAL, MENTOR_TAG
from cohortflow.stores.postgres import copy_rows
from cohortflow.stores.sink import write_entities

BaseRows = dict[str, dict[tuple, dict[str, Any]]]

UNFENCED = -1
"""Shard version written by a rebuild: no worker holds it, so a worker still running on the old
schema loses its next compare-and-set after a swap and reloads from this one."""

# table -> (key columns, compared columns, view it feeds)
TABLES: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    "floor_counts": (("campus", "floor"), (*FLOOR_FIELDS, "as_of"), "floor_summary"),
    "floor_pillar_counts": (("campus", "floor", "pillar"), ("completed",), "floor_summary"),
    "mentor_counts": (("mentor_id",), ("named", "campus", "floor", "active", *MENTOR_FIELDS, "last_active_at",
                                       "as_of"), "mentor_summary"),
    "mentor_activity": (("mentor_id", "contributor"), ("at",), "mentor_summary"),
    "daily_counts": (("day",), (*DAY_FIELDS, "as_of"), "global_daily"),
    "global_counts": (("singleton",), ("students_total", "mentors_total", "unread_notifications", "as_of"),
                      "global_current"),
    "badges": (("user_id",), ("unread", "pending_reviews"), "notifications"),
}
VIEW_TABLES = {
    "floors": ("floor_counts", "floor_pillar_counts"),
    "mentors": ("mentor_counts", "mentor_activity"),
    "global": ("daily_counts", "global_counts"),
    "notifications": ("badges",),
}


def _at(us: int | None) -> datetime | None:
    return instant(us) if us is not None else None


def from_memory(memory: MemoryViews) -> BaseRows:
    """The base rows a worker would hold after applying the same effects."""
    rows = memory.rows
    out: BaseRows = {table: {} for table in TABLES}
    for r in (r for r in memory.named if r[0] == FLOOR_TAG):
        counts = rows.get(r, {})
        out["floor_counts"][(r[1], r[2])] = {**{f: counts.get(f, 0) for f in FLOOR_FIELDS},
                                             "as_of": _at(memory.as_of.get(r))}
        for name, n in counts.items():
            if name.startswith("pillar:") and n:
                out["floor_pillar_counts"][(r[1], r[2], name.removeprefix("pillar:"))] = {"completed": n}
    # Logins alone make no mentor row: they stay in mentor_activity (see PostgresViews._mentors).
    mentors = ({r for r in memory.named | set(rows) if r[0] == MENTOR_TAG}
               | {(MENTOR_TAG, m) for m in memory.mentor_self})
    for r in mentors:
        counts = rows.get(r, {})
        campus, floor, active = memory.mentor_self.get(r[1], (None, None, None))
        activity = memory.activity.get(r[1])
        out["mentor_counts"][(r[1],)] = {
            "named": r in memory.named, "campus": campus, "floor": floor, "active": active,
            **{f: counts.get(f, 0) for f in MENTOR_FIELDS},
            "last_active_at": _at(max(activity.values())) if activity else None,
            "as_of": _at(memory.as_of.get(r)),
        }
    for mentor_id, contributions in memory.activity.items():
        for contributor, ts in contributions.items():
            out["mentor_activity"][(mentor_id, contributor)] = {"at": instant(ts)}
    for r in {r for r in memory.named | set(rows) if r[0] == DAY_TAG}:
        counts = rows.get(r, {})
        out["daily_counts"][(day_date(r[1]),)] = {**{f: counts.get(f, 0) for f in DAY_FIELDS},
                                                  "as_of": _at(memory.as_of.get(r))}
    totals = rows.get(GLOBAL, {})
    out["global_counts"][(True,)] = {"students_total": totals.get("students_total", 0),
                                     "mentors_total": totals.get("mentors_total", 0),
                                     "unread_notifications": totals.get("unread_notifications", 0),
                                     "as_of": _at(memory.as_of.get(GLOBAL))}
    badges = {user: {"unread": n, "pending_reviews": None} for user, n in memory.unread.items()}
    for (mentor_id,), row in out["mentor_counts"].items():
        if row["named"]:
            badges.setdefault(mentor_id, {"unread": 0, "pending_reviews": None})["pending_reviews"] = \
                row["pending_reviews"]
    out["badges"] = {(user,): badge for user, badge in badges.items()}
    return out


def read(conn: psycopg.Connection, tables: Iterable[str] = TABLES) -> BaseRows:
    """The live base rows (call inside the caller's snapshot transaction)."""
    out: BaseRows = {}
    for table in tables:
        keys, columns, _ = TABLES[table]
        found = conn.execute(f"SELECT {', '.join((*keys, *columns))} FROM {table}").fetchall()  # constant names
        out[table] = {tuple(row[: len(keys)]): dict(zip(columns, row[len(keys):])) for row in found}
    return out


async def write(conn: psycopg.AsyncConnection, base: BaseRows, entities: Iterable[tuple[EntityKey, bytes]] | None,
                offsets: Mapping[tuple[str, int], int], partitions: int, pillars: tuple[str, ...],
                low_below: int, overloaded_above: int, tables: Iterable[str] = TABLES) -> None:
    """Fill a fresh, migrated schema on ``conn``'s search_path (in the caller's transaction).

    Offsets, shard fences and entity states are written only with ``entities`` (encoded states, see
    :func:`cohortflow.core.state_codec.encode`): then the schema is one a worker can continue from.
    """
    now = datetime.now(UTC)
    await conn.execute(
        "INSERT INTO view_config (pillars, workload_low_below, workload_overloaded_above) VALUES (%s, %s, %s)",
        [list(pillars), low_below, overloaded_above],
    )
    if entities is not None:
        from cohortflow.core.engine import shard_of  # the same mapping the worker uses

        await copy_rows(conn, "consumer_offsets (topic, partition, next_offset)",
                        ((t, p, o) for (t, p), o in sorted(offsets.items())), ["text", "int4", "int8"])
        await copy_rows(conn, "shard_fences (shard, version)", ((s, UNFENCED) for s in range(partitions)),
                        ["int4", "int8"])
        await write_entities(conn, ((key, shard_of(key[1], partitions), body) for key, body in entities))
    extra: dict[str, dict[str, Any]] = {
        "floor_counts": {"updated_at": now, "created_at": now}, "mentor_counts": {"updated_at": now},
        "daily_counts": {"updated_at": now, "steps_changed_at": now}, "badges": {"rev": 1}}
    types = {"review_us_sum": "int8", "named": "bool", "active": "bool", "campus": "text", "floor": "text",
             "as_of": "timestamptz", "last_active_at": "timestamptz", "at": "timestamptz", "updated_at": "timestamptz",
             "created_at": "timestamptz", "steps_changed_at": "timestamptz", "day": "date", "rev": "int8",
             "mentor_id": "text", "contributor": "text", "pillar": "text", "user_id": "text"}
    for table in tables:
        keys, columns, _ = TABLES[table]
        if table == "global_counts":
            row = base[table].get((True,), {})
            await conn.execute("UPDATE global_counts SET students_total = %s, mentors_total = %s,"
                               " unread_notifications = %s, as_of = %s, updated_at = %s",
                               [row.get("students_total", 0), row.get("mentors_total", 0),
                                row.get("unread_notifications", 0), row.get("as_of"), now])
            continue
        more = extra.get(table, {})
        names = (*keys, *columns, *more)
        ordered = sorted(base[table].items(), key=lambda kv: key_order(kv[0]))
        await copy_rows(conn, f"{table} ({', '.join(names)})",
                        ((*key, *(values[c] for c in columns), *more.values()) for key, values in ordered),
                        [types.get(n, "int4") for n in names])


def key_order(key: tuple) -> tuple:
    """A total order on row keys of mixed types (text, dates, booleans)."""
    return tuple("" if v is None else str(v) for v in key)

