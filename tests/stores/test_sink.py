"""Pieces of the batch transaction checked against the real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest

from cohortflow.core.clock import instant, micros
from cohortflow.settings import Settings
from cohortflow.stores.sink import _instant_sql

pytestmark = pytest.mark.integration


def test_instants_sent_as_microseconds_come_back_exact_over_the_contracts_years(stack_settings: Settings) -> None:
    moments = [
        datetime(1, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 58, 499_999, tzinfo=UTC),  # negative, with a remainder
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(2026, 11, 23, 10, 15, 30, 123_457, tzinfo=UTC),
        datetime(2600, 5, 5, 1, 2, 3, 987_654, tzinfo=UTC),  # past 2**53 microseconds
        datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    ]
    with psycopg.connect(stack_settings.postgres_url) as conn:
        got = [conn.execute(f"SELECT {_instant_sql('%(us)s::bigint')}", {"us": micros(m)}).fetchone()[0]
               for m in moments]
    assert got == [instant(micros(m)) for m in moments] == moments


async def test_logins_alone_make_no_mentor_row_and_the_row_of_a_later_naming_starts_from_them(
        stack_settings: Settings) -> None:
    from cohortflow.core import state_codec
    from cohortflow.core.fold import Fold, FoldConfig, State, entity_key
    from cohortflow.stores.migrate import migrate
    from cohortflow.stores.port import Commit
    from cohortflow.stores.sink import PostgresViews, pool
    from tests.builders import at, ev

    migrate(stack_settings)
    connections = pool(stack_settings, staging=True)
    await connections.open(wait=True, timeout=15)
    store, state, fold = PostgresViews(connections), State(), Fold(FoldConfig())
    await store.ensure_config(stack_settings.pillars, 5, 20)

    async def commit(number: int, *events: object) -> None:
        effect = fold.apply(list(events), state)
        keys = {entity_key(e) for e in events}
        await store.commit(effect, Commit({k: (0, state_codec.encode(state.entities[k])) for k in keys},
                                          {0: number}, {}))

    def rows() -> list[tuple]:
        with psycopg.connect(stack_settings.postgres_url) as conn:
            conn.execute(f'SET search_path TO "{stack_settings.postgres_schema}"')
            return conn.execute("SELECT mentor_id, named, last_active_at FROM mentor_counts ORDER BY 1").fetchall()

    try:
        await commit(0, ev("login.succeeded", at(10), user_id="u1", role="student"),
                     ev("login.succeeded", at(7), user_id="u2", role="mentor"))
        assert rows() == []
        await commit(1, ev("student.assigned", at(1), student_id="s1", mentor_id="u2"))
        assert rows() == [("u2", True, at(7))]
    finally:
        await connections.close()
