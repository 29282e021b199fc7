"""The transactional outbox: publish an event if and only if the app's transaction commits.

The app writes its rows and calls :func:`enqueue` in the same PostgreSQL
transaction; ``cohortflow relay`` (:func:`relay`) later publishes the outbox
rows to Kafka and marks them sent. A rolled-back transaction leaves no row, so
nothing is published for it; a committed one leaves a row that stays until
Kafka has acknowledged it.

Several relays may run at once. Rows are spread over :data:`BUCKETS` buckets
by a hash of their record key; a relay claims a few buckets for one batch with
transaction-scoped advisory locks, reads their unsent rows oldest first
(``FOR UPDATE SKIP LOCKED``), publishes them, waits for every acknowledgement
and only then marks them sent and commits, which releases the buckets. One
key is therefore never published by two relays at once, and its rows go out
in outbox order. A relay killed at any point leaves its rows unsent: they are
published again later, and the worker absorbs the re-sent records by event_id.

"Outbox order" is id order among committed rows: an app whose writes to one
entity are serialised (its own row lock) enqueues that entity's events in
commit order. Two concurrent transactions touching one key without such a
lock may be published in either order, which the contract tolerates: the
views never depend on arrival order.
"""

from __future__ import annotations

import asyncio
import logging
import random
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from psycopg import sql

from cohortflow.contract import DEFAULT_CONTRACT, Contract, EventBase, Topic, topic_name
from cohortflow.producers.exceptions import NotInTransaction, OutboxMissing, PublishTimeout
from cohortflow.producers.typed import validated_record

if TYPE_CHECKING:
    import psycopg

    from cohortflow.settings import Settings

log = logging.getLogger(__name__)

TABLE = "cohortflow_outbox"
BUCKETS = 64
"""Key-hash buckets; the unit a relay claims. More buckets than relays lets relays share the load."""

_DDL = """
CREATE TABLE IF NOT EXISTS {table} (
    id          bigserial PRIMARY KEY,
    bucket      smallint    NOT NULL CHECK (bucket >= 0),
    topic       text        NOT NULL,
    key         bytea       NOT NULL,
    value       bytea       NOT NULL,
    event_id    text        NOT NULL,
    enqueued_at timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz
);
CREATE INDEX IF NOT EXISTS {unsent} ON {table} (bucket, id) WHERE sent_at IS NULL;
CREATE INDEX IF NOT EXISTS {sent} ON {table} (sent_at) WHERE sent_at IS NOT NULL;
"""


def _table(schema: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(TABLE))


def install(conn: psycopg.Connection, schema: str = "public") -> None:
    """Create the outbox table (and ``schema``) in the app's database if missing; idempotent."""
    with conn.transaction():
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        # Two installs at once would race on CREATE TABLE IF NOT EXISTS: serialise them.
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"cohortflow-outbox-install:{schema}",))
        conn.execute(sql.SQL(_DDL).format(table=_table(schema), unsent=sql.Identifier(f"{TABLE}_unsent"),
                                          sent=sql.Identifier(f"{TABLE}_sent")))


def bucket_of(key: bytes) -> int:
    """The bucket of a record key: stable across processes and versions (CRC-32)."""
    return zlib.crc32(key) % BUCKETS


def enqueue(conn: psycopg.Connection, event: EventBase, *, schema: str = "public",
            contract: Contract = DEFAULT_CONTRACT) -> None:
    """Add ``event`` to the outbox inside the caller's open transaction (validated first).

    Raises :class:`cohortflow.producers.exceptions.InvalidEvent` naming the field for an
    event the worker would reject, and :class:`NotInTransaction` on an
    autocommit connection outside a transaction block (the row would commit on
    its own, whatever happens to the app's write).
    """
    _, key, value = validated_record(event, contract)
    if conn.autocommit and not _in_transaction_block(conn):
        raise NotInTransaction(
            "enqueue needs the app's open transaction: call it inside `with conn.transaction():` (or on a "
            "connection with autocommit off) together with the writes it announces"
        )
    conn.execute(
        sql.SQL("INSERT INTO {} (bucket, topic, key, value, event_id) VALUES (%s, %s, %s, %s, %s)").format(
            _table(schema)),
        (bucket_of(key), event.TOPIC.value, key, value, event.event_id),
    )


def _in_transaction_block(conn: psycopg.Connection) -> bool:
    from psycopg.pq import TransactionStatus

    return conn.info.transaction_status == TransactionStatus.INTRANS


@dataclass
class RelayStats:
    """What a relay did so far."""

    published: int = 0
    batches: int = 0
    outages: int = 0  # Kafka or PostgreSQL errors waited out


async def relay(
    settings: Settings,
    *,
    schema: str | None = None,
    batch_size: int = 1000,
    buckets_per_batch: int = 8,
    idle_seconds: float = 0.2,
    until_empty: bool = False,
    stop: asyncio.Event | None = None,
    on_batch: Callable[[RelayStats], Any] | None = None,
    retry_seconds: float = 5.0,
) -> RelayStats:
    """Publish unsent outbox rows until ``stop`` is set (or, with ``until_empty``, until none is left).

    Kafka or PostgreSQL going away is waited out: the batch in hand is rolled
    back (its rows stay unsent), and the relay reconnects every
    ``retry_seconds`` at most, logging why. A missing outbox table stops it.
    """
    import psycopg

    schema = schema or settings.outbox_schema
    stats = RelayStats()
    stop = stop or asyncio.Event()
    delay = 0.5
    while not stop.is_set():
        try:
            if await _session(settings, schema, stats, stop, batch_size, buckets_per_batch, idle_seconds,
                              until_empty, on_batch):
                break
            delay = 0.5
        except (PublishTimeout, psycopg.OperationalError) as exc:
            stats.outages += 1
            log.warning("relay: %s; the batch in hand stays unsent, retrying in %.1f s", exc, delay)
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except TimeoutError:
                pass
            delay = min(retry_seconds, delay * 2)
    return stats


async def _session(settings: Settings, schema: str, stats: RelayStats, stop: asyncio.Event, batch_size: int,
                   buckets_per_batch: int, idle_seconds: float, until_empty: bool,
                   on_batch: Callable[[RelayStats], Any] | None) -> bool:
    """One connection to each side, publishing until stopped (True when ``until_empty`` found nothing left)."""
    import psycopg

    from cohortflow.producers.publisher import AsyncPublisher

    table = _table(schema)
    lock_space = f"cohortflow-outbox:{schema}"
    rng = random.Random()
    publisher = AsyncPublisher(settings, source=None)
    try:
        conn = await psycopg.AsyncConnection.connect(settings.outbox_url, autocommit=False,
                                                     connect_timeout=max(1, int(settings.publish_timeout_seconds)))
        try:
            await _check_installed(conn, schema)
            await publisher.start()
            while not stop.is_set():
                sent = await _one_batch(conn, publisher, settings, table, lock_space, rng, batch_size,
                                        buckets_per_batch)
                if sent:
                    stats.published += sent
                    stats.batches += 1
                    if on_batch:
                        on_batch(stats)
                    continue
                if until_empty and not await _pending(conn, table):
                    return True
                try:
                    await asyncio.wait_for(stop.wait(), idle_seconds)
                except TimeoutError:
                    pass
        finally:
            await conn.close()
    finally:
        await publisher.close()  # a fresh producer after an outage: no batch of the failed one is reused
    return False


async def _check_installed(conn: Any, schema: str) -> None:
    async with conn.transaction():
        cur = await conn.execute("SELECT to_regclass(%s)", (f'"{schema}"."{TABLE}"',))
        if (await cur.fetchone())[0] is None:
            raise OutboxMissing(f"no outbox table {schema}.{TABLE} in the app database: run `cohortflow outbox "
                                "install` (or cohortflow.producers.outbox.install) there first, or fix "
                                "COHORTFLOW_OUTBOX_SCHEMA")


async def _pending(conn: Any, table: sql.Composed) -> bool:
    async with conn.transaction():
        cur = await conn.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE sent_at IS NULL)").format(table))
        return bool((await cur.fetchone())[0])


async def _one_batch(conn: Any, publisher: Any, settings: Settings, table: sql.Composed, lock_space: str,
                     rng: random.Random, batch_size: int, buckets_per_batch: int) -> int:
    """Claim a few buckets, publish their oldest unsent rows, mark them sent; the number published."""
    async with conn.transaction():
        cur = await conn.execute(
            sql.SQL("SELECT DISTINCT bucket FROM {} WHERE sent_at IS NULL").format(table))
        waiting = [row[0] for row in await cur.fetchall()]
        rng.shuffle(waiting)  # relays start from different buckets, so they rarely contend
        claimed = []
        for bucket in waiting:
            cur = await conn.execute("SELECT pg_try_advisory_xact_lock(hashtext(%s), %s)", (lock_space, bucket))
            if (await cur.fetchone())[0]:
                claimed.append(bucket)
                if len(claimed) >= buckets_per_batch:
                    break
        if not claimed:
            return 0
        # Oldest first per bucket (hence per key); a bucket's rows after this batch wait for the next one,
        # which starts only after this batch is acknowledged and marked.
        cur = await conn.execute(
            sql.SQL("SELECT id, topic, key, value FROM {} WHERE sent_at IS NULL AND bucket = ANY(%s) "
                    "ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED").format(table),
            (claimed, batch_size),
        )
        rows = await cur.fetchall()
        if not rows:
            return 0
        prefix = settings.topic_prefix
        await publisher.send_records((topic_name(prefix, Topic(t)), bytes(k), bytes(v)) for _, t, k, v in rows)
        await conn.execute(sql.SQL("UPDATE {} SET sent_at = now() WHERE id = ANY(%s)").format(table),
                           ([row[0] for row in rows],))
    return len(rows)


def purge(conn: psycopg.Connection, *, schema: str = "public", older_than_seconds: float = 7 * 86400) -> int:
    """Delete rows sent more than ``older_than_seconds`` ago; the number deleted."""
    with conn.transaction():
        cur = conn.execute(
            sql.SQL("DELETE FROM {} WHERE sent_at < now() - make_interval(secs => %s)").format(_table(schema)),
            (older_than_seconds,),
        )
        return cur.rowcount
