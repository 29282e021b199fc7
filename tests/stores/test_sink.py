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
