"""Apply the SQL migrations under cohortflow/stores/migrations/ to the configured schema, idempotently."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

from psycopg import sql

from cohortflow.errors import IntegrityError
from cohortflow.settings import Settings
from cohortflow.stores.postgres import connect

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    body: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.body.encode()).hexdigest()


def migrations() -> list[Migration]:
    """Every migration shipped with the package, in version order."""
    found = []
    for entry in resources.files("cohortflow.stores.migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text()))
    return sorted(found, key=lambda m: m.version)


def migrate(settings: Settings) -> list[Migration]:
    """Create the schema if needed and apply what is missing; return what was applied.

    Concurrent runs are serialised by an advisory lock; a migration whose file
    changed after it was applied is an error, never silently re-run.
    """
    schema = sql.Identifier(settings.postgres_schema)
    applied: list[Migration] = []
    with connect(settings) as conn:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('cohortflow-migrate:' || %s))",
                         [settings.postgres_schema])
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
            conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(schema))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
                " checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {v: c for v, c in conn.execute("SELECT version, checksum FROM schema_migrations")}
            for migration in migrations():
                if migration.version in done:
                    if done[migration.version] != migration.checksum:
                        raise IntegrityError(
                            f"migration {migration.version:04d}_{migration.name}.sql changed after it was applied "
                            f"to schema {settings.postgres_schema}: add a new migration instead of editing it"
                        )
                    continue
                conn.execute(migration.body)
                conn.execute("INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                             [migration.version, migration.name, migration.checksum])
                applied.append(migration)
    return applied
