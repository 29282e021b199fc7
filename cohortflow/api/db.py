"""The API's PostgreSQL: a pool of read-only autocommit connections, and view reads as prepared statements."""

from __future__ import annotations

import psycopg
from fastapi import Request
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from cohortflow.settings import Settings
from cohortflow.stores.queries import exact_json


async def _configure(conn: psycopg.AsyncConnection) -> None:
    exact_json(conn)


def pool(settings: Settings) -> AsyncConnectionPool:
    """Read-only connections on the views' schema.

    Autocommit: a read is one round trip, where a transaction would add a BEGIN before it and the
    pool's ROLLBACK after it. Only the reads that ask are prepared (see :func:`read`; psycopg's
    automatic preparation is pushed out of reach, as ``None`` would refuse even those), and no check on
    checkout: a connection broken by a PostgreSQL restart fails one request with a 503 and is replaced.
    """
    return AsyncConnectionPool(
        settings.postgres_url, min_size=4, max_size=8, open=False, name="cohortflow-api", configure=_configure,
        kwargs={"options": f"-c search_path={settings.postgres_schema}", "prepare_threshold": 2**31,
                "autocommit": True})


async def read(pool: AsyncConnectionPool, query: str, params: list) -> list[dict]:
    """The rows of a view read, as a server-side prepared statement.

    The views are SQL views over the count tables: planning one costs PostgreSQL 0.4-0.6 ms, ten
    times its execution, so unprepared reads spent most of the database's CPU re-planning the same
    few statements (measured: 0.37 of a core at 1,000 summary reads/s, 0.16 prepared). A prepared
    statement still resolves its names anew when the schema changes under it: ``rebuild --swap``
    renames schemas, which invalidates every cached plan, and the next execution is analysed again
    on the search_path (the new schema's views). Only a change of the row type (a migration that
    alters a view) makes PostgreSQL refuse it ("cached plan must not change result type"): that
    connection is closed (its statements go with it) and the read runs once more, unprepared.
    """
    for prepare in (True, False):
        async with pool.connection() as conn:
            try:
                cur = conn.cursor(row_factory=dict_row)
                await cur.execute(query, params, prepare=prepare)
                return await cur.fetchall()
            except psycopg.errors.FeatureNotSupported:
                if not prepare:
                    raise
                await conn.close()  # the pool replaces a closed connection
    raise AssertionError("unreachable")


async def rows(request: Request, query: str, params: list) -> list[dict]:
    """:func:`read` on the pool of the request's app."""
    return await read(request.app.state.pool, query, params)
