"""PostgreSQL connections, with driver errors converted into cohortflow's error tree."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import psycopg

from cohortflow.errors import CohortflowError, IntegrityError, OperationalError, ServiceUnavailable
from cohortflow.settings import Settings


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


@contextmanager
def connect(settings: Settings, *, autocommit: bool = False, timeout: float = 5) -> Iterator[psycopg.Connection]:
    """A connection whose search_path is the views' schema; driver errors come out converted."""
    try:
        conn = psycopg.connect(settings.postgres_url, autocommit=autocommit, connect_timeout=timeout,
                               options=f"-c search_path={settings.postgres_schema}")
    except psycopg.OperationalError as exc:
        raise ServiceUnavailable(
            f"PostgreSQL did not answer at {settings.redacted()['COHORTFLOW_POSTGRES_DSN']}: {exc}. "
            "Start it with `make services` or set COHORTFLOW_POSTGRES_DSN"
        ) from exc
    try:
        with conn:
            yield conn
    except psycopg.Error as exc:
        raise convert(exc) from exc
