"""`cohortflow validate`: the live views against a recomputation from the log, field by field.

One REPEATABLE READ transaction reads the stored offsets and every base row:
a consistent snapshot, whatever the worker does meanwhile. The log is folded
up to exactly those offsets, and every stored field compared (derived
percentages and means follow from them, so a corrupted count shows once).
Redis badges are compared too, except where Redis holds a newer revision
than the snapshot (the worker moved on). Differences go to
``view_validation_log``; ``--repair`` corrects them in the same transaction:
counts by an additive correction (so it commutes with a running worker's
deltas), other fields only where they still hold the snapshot's value.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import orjson
import psycopg
import redis
from psycopg import sql

from cohortflow.pipeline import snapshot
from cohortflow.pipeline.rebuild import VIEWS, RebuildError, fold_log
from cohortflow.pipeline.replay import ReplayStats
from cohortflow.settings import Settings
from cohortflow.stores.badges import badge_key, held_badge
from cohortflow.stores.postgres import connect

# Set where they still hold the snapshot's value rather than corrected by a delta: registers, instants,
# and the badges table, which the worker itself writes as absolute values.
ABSOLUTE = {"named", "campus", "floor", "active", "last_active_at", "as_of", "at"}


@dataclass(frozen=True)
class Difference:
    view: str
    table: str
    key: tuple
    field: str
    live: Any
    expected: Any


@dataclass
class Validation:
    run_id: uuid.UUID
    differences: list[Difference] = field(default_factory=list)
    compared_rows: int = 0
    stats: ReplayStats | None = None
    repaired: bool = False


def validate(settings: Settings, *, views: tuple[str, ...] = VIEWS, repair: bool = False,
             progress: Callable[[int, int], None] | None = None) -> Validation:
    unknown = set(views) - set(VIEWS)
    if unknown:
        raise RebuildError(f"--views: unknown {', '.join(sorted(unknown))}; expected some of {', '.join(VIEWS)}")
    tables = [t for view in views for t in snapshot.VIEW_TABLES[view]]
    run = Validation(uuid.uuid4())
    with connect(settings) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        with conn.transaction():
            offsets = {(t, p): n for t, p, n in
                       conn.execute("SELECT topic, partition, next_offset FROM consumer_offsets")}
            live = snapshot.read(conn, tables)
            revs = dict(conn.execute("SELECT user_id, rev FROM badges").fetchall()) if "badges" in tables else {}
        conn.isolation_level = None

        total = sum(offsets.values())
        memory, _, run.stats = fold_log(settings, offsets,
                                        progress=(lambda n: progress(n, total)) if progress else None)
        expected = snapshot.from_memory(memory)
        for table in tables:
            keys, columns, view = snapshot.TABLES[table]
            for key in sorted(set(live[table]) | set(expected[table]), key=snapshot.key_order):
                run.compared_rows += 1
                have, want = live[table].get(key), expected[table].get(key)
                for column in columns:
                    a = have.get(column) if have else None
                    b = want.get(column) if want else None
                    if not _equal(a, b, column):
                        run.differences.append(Difference(view, table, key, column, a, b))
        redis_differences = _redis(settings, expected["badges"], revs) if "badges" in tables else []
        run.differences += redis_differences

        with conn.transaction():
            for d in run.differences:
                conn.execute(
                    "INSERT INTO view_validation_log (run_id, view, key, field, live_value, expected_value, repaired)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    [run.run_id, d.view, _json(list(d.key)), d.field, _json(d.live), _json(d.expected), repair],
                )
            if repair:
                for d in run.differences:
                    if d.table != "redis":
                        _repair(conn, d)
        if repair:
            _repair_redis(settings, conn, [d for d in run.differences if d.table in ("redis", "badges")])
            run.repaired = True
    return run


def _equal(live: Any, expected: Any, column: str) -> bool:
    if column in ("named",):
        return bool(live) == bool(expected)
    if live is None and expected is not None and not isinstance(expected, (datetime, str, bool)):
        return expected == 0  # a count missing on one side is a zero
    if expected is None and live is not None and not isinstance(live, (datetime, str, bool)):
        return live == 0
    return live == expected


def _redis(settings: Settings, expected: dict, revs: dict[str, int]) -> list[Difference]:
    """Badges in Redis that differ from the recomputation (skipping those newer than the snapshot)."""
    found = []
    prefix = f"{settings.redis_prefix}badge:"
    with redis.Redis.from_url(settings.redis_connection_url) as client:
        held = {key.decode()[len(prefix):]: client.hgetall(key)
                for key in client.scan_iter(match=f"{prefix}*", count=1000)}
    for (user,), want in expected.items():
        unread, pending, rev = held_badge(held.get(user, {}))
        if rev > revs.get(user, 0):
            continue  # Redis is newer than the snapshot: the worker moved on
        if unread != want["unread"]:
            found.append(Difference("notifications", "redis", (user,), "unread", unread, want["unread"]))
        if pending != want["pending_reviews"]:
            found.append(Difference("notifications", "redis", (user,), "pending_reviews", pending,
                                    want["pending_reviews"]))
    return found


def _repair(conn: psycopg.Connection, d: Difference) -> None:
    keys, _, _ = snapshot.TABLES[d.table]
    where: sql.Composable = sql.SQL(" AND ").join(sql.SQL("{} = %s").format(sql.Identifier(k)) for k in keys)
    column = sql.Identifier(d.field)
    table = sql.Identifier(d.table)
    if d.table == "global_counts":
        where, key = sql.SQL("singleton"), []
    else:
        key = list(d.key)
    value = d.expected if d.expected is not None else d.live
    additive = (isinstance(value, int) and not isinstance(value, bool) and d.field not in ABSOLUTE
                and d.table != "badges")
    if additive:
        correction = (d.expected or 0) - (d.live or 0)
        updated = conn.execute(sql.SQL("UPDATE {} SET {} = {} + %s WHERE {}").format(table, column, column, where),
                               [correction, *key]).rowcount
        if not updated:  # the row is missing altogether: create it with the expected value
            conn.execute(sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT DO NOTHING").format(
                table, sql.SQL(", ").join(sql.Identifier(k) for k in (*keys, d.field)),
                sql.SQL(", ").join(sql.Placeholder() * (len(keys) + 1))), [*key, d.expected])
    else:
        conn.execute(sql.SQL("UPDATE {} SET {} = %s WHERE {} AND {} IS NOT DISTINCT FROM %s").format(
            table, column, where, column), [d.expected, *key, d.live])
    if d.table == "badges":
        conn.execute("UPDATE badges SET rev = rev + 1 WHERE user_id = %s", [d.key[0]])


def _repair_redis(settings: Settings, conn: psycopg.Connection, differences: list[Difference]) -> None:
    users = sorted({d.key[0] for d in differences})
    if not users:
        return
    rows = conn.execute("SELECT user_id, unread, pending_reviews, rev FROM badges WHERE user_id = ANY(%s)",
                        [users]).fetchall()
    with redis.Redis.from_url(settings.redis_connection_url) as client:
        for user, unread, pending, rev in rows:
            key = badge_key(settings.redis_prefix, user)
            mapping = {"unread": unread, "rev": rev}
            if pending is not None:
                mapping["pending_reviews"] = pending
            client.hset(key, mapping=mapping)
            if pending is None:
                client.hdel(key, "pending_reviews")


def _json(value: Any) -> str:
    def default(v: Any) -> Any:
        if isinstance(v, Decimal):
            return str(v)
        if isinstance(v, (datetime, date)):
            return v.isoformat()
        raise TypeError

    return orjson.dumps(value, default=default).decode()
