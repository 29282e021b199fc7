"""PostgreSQL connections, with driver errors converted into cohortflow's error tree."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, Literal

import psycopg

from cohortflow.errors import CohortflowError, IntegrityError, OperationalError, ServiceUnavailable
from cohortflow.settings import Settings, mask_password


def convert(exc: psycopg.Error) -> CohortflowError:
    """The cohortflow error for a driver error: only operational ones are worth a retry."""
    if isinstance(exc, psycopg.OperationalError):
        return OperationalError(f"PostgreSQL failed: {exc}".strip())
    if isinstance(exc, psycopg.IntegrityError | psycopg.DataError):
        return IntegrityError(f"PostgreSQL rejected the data: {exc}".strip())
    return CohortflowError(f"PostgreSQL error: {exc}".strip())


async def copy_rows(conn: psycopg.AsyncConnection, target: str, rows: Iterable[tuple], types: list[str]) -> int:
    """Binary COPY of ``rows`` into ``target`` (``table (columns)``) with ``types``; return how many went."""
    written = 0
    async with conn.cursor().copy(f"COPY {target} FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(types)
        for row in rows:
            await copy.write_row(row)
            written += 1
    return written


def scalar(row: tuple[Any, ...] | None) -> Any:
    """The first column of ``cursor.fetchone()`` for a query that always returns one row (an aggregate, a
    function call): a missing row is a broken invariant, reported as such rather than as a TypeError."""
    if row is None:
        raise CohortflowError("PostgreSQL returned no row where one is always expected")
    return row[0]


def _where(settings: Settings, database: Literal["views", "outbox"], schema: str | None) -> tuple[str, str, str]:
    """URL, connect options and the variable to name in errors, for the views' or the app's database."""
    if database == "outbox":
        url, variable = settings.outbox_url, "COHORTFLOW_OUTBOX_DSN"
        shown = mask_password(url)
    else:
        url, variable = settings.postgres_url, "COHORTFLOW_POSTGRES_DSN"
        shown = settings.redacted()[variable]
        schema = schema or settings.postgres_schema
    return url, f"-c search_path={schema}" if schema else "", f"{shown} ({variable})"


def _unavailable(where: str, exc: psycopg.OperationalError) -> ServiceUnavailable:
    return ServiceUnavailable(f"PostgreSQL did not answer at {where}: {exc}. "
                              "Start it with `make services` or set the variable")


@contextmanager
def connect(settings: Settings, *, autocommit: bool = False, timeout: int = 5, schema: str | None = None,
            database: Literal["views", "outbox"] = "views") -> Iterator[psycopg.Connection]:
    """A connection whose search_path is the views' schema (or ``schema``); driver errors come out converted.

    ``database="outbox"`` connects to the app's database (COHORTFLOW_OUTBOX_DSN) with no search_path.
    """
    url, options, where = _where(settings, database, schema)
    try:
        conn = psycopg.connect(url, autocommit=autocommit, connect_timeout=timeout, options=options)
    except psycopg.OperationalError as exc:
        raise _unavailable(where, exc) from exc
    try:
        with conn:
            yield conn
    except psycopg.Error as exc:
        raise convert(exc) from exc


@asynccontextmanager
async def aconnect(settings: Settings, *, autocommit: bool = False, timeout: int = 5, schema: str | None = None,
                   database: Literal["views", "outbox"] = "views") -> AsyncIterator[psycopg.AsyncConnection]:
    """:func:`connect` for asyncio code."""
    url, options, where = _where(settings, database, schema)
    try:
        conn = await psycopg.AsyncConnection.connect(url, autocommit=autocommit, connect_timeout=timeout,
                                                     options=options)
    except psycopg.OperationalError as exc:
        raise _unavailable(where, exc) from exc
    try:
        async with conn:
            yield conn
    except psycopg.Error as exc:
        raise convert(exc) from exc
