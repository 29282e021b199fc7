"""`cohortflow migrate`: idempotent, concurrent-safe, and strict about edited migrations."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from cohortflow.errors import IntegrityError
from cohortflow.settings import Settings
from cohortflow.stores import migrate as migrate_module
from cohortflow.stores.migrate import migrate, migrations


def tables(settings: Settings) -> set[str]:
    with psycopg.connect(settings.postgres_url) as conn:
        rows = conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                            [settings.postgres_schema]).fetchall()
    return {r[0] for r in rows}


def test_migrate_applies_everything_once(stack_settings: Settings) -> None:
    applied = migrate(stack_settings)
    assert [m.version for m in applied] == [m.version for m in migrations()]
    assert {"schema_migrations", "consumer_offsets"} <= tables(stack_settings)
    assert migrate(stack_settings) == []


def test_concurrent_migrations_apply_each_version_once(stack_settings: Settings) -> None:
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: migrate(stack_settings), range(4)))
    assert sum(len(r) for r in results) == len(migrations())


def test_an_edited_migration_is_refused(stack_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    migrate(stack_settings)
    edited = [migrate_module.Migration(m.version, m.name, m.body + "\n-- edited") for m in migrations()]
    monkeypatch.setattr(migrate_module, "migrations", lambda: edited)
    with pytest.raises(IntegrityError, match="changed after it was applied"):
        migrate(stack_settings)
