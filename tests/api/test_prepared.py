"""The API's view reads are prepared statements: they must follow a schema swap and a changed view."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from cohortflow.settings import Settings, load_settings
from cohortflow.stores.migrate import migrate
from tests.api.helpers import body, client, ingest, token

pytestmark = pytest.mark.integration


def _execute(settings: Settings, *statements: sql.Composable | str) -> None:
    with psycopg.connect(settings.postgres_url, autocommit=True,
                         options=f"-c search_path={settings.postgres_schema}") as conn:
        for statement in statements:
            conn.execute(statement)


@pytest.fixture
def folded(stack: Settings, tmp_path: Path) -> Settings:
    ingest(stack, tmp_path, seed=5, size=600)
    return stack


async def test_prepared_reads_follow_a_swap_and_survive_a_view_whose_row_type_changed(folded: Settings) -> None:
    stack = folded
    headers = token(stack, "views:read")
    live = stack.postgres_schema
    async with client(stack) as http:
        for _ in range(3):  # every pooled connection has it prepared by now
            before = await http.get("/v1/floors", headers=headers, params={"limit": 500})
            assert before.status_code == 200 and body(before)["items"], before.text

        # A migration changes floor_summary's row type under the prepared statements: PostgreSQL refuses
        # them ("cached plan must not change result type"); the API answers anyway, with the new column.
        with psycopg.connect(stack.postgres_url, autocommit=True) as conn:
            definition = conn.execute("SELECT pg_get_viewdef(%s::regclass)", [f"{live}.floor_summary"]).fetchone()[0]
        _execute(stack, sql.SQL("CREATE OR REPLACE VIEW floor_summary AS SELECT v.*, 1 AS probe FROM ({}) v")
                 .format(sql.SQL(definition.strip().rstrip(";"))))
        for _ in range(10):
            changed = await http.get("/v1/floors", headers=headers, params={"limit": 500})
            assert changed.status_code == 200, changed.text
            assert [{**f, "probe": 1} for f in body(before)["items"]] == body(changed)["items"]

        # rebuild --swap: an empty shadow schema takes the live name. Reads must see the new (empty) views,
        # not the old schema's rows through statements prepared before the rename.
        shadow = load_settings(**{**{n: getattr(stack, n) for n in type(stack).model_fields},
                                  "postgres_schema": f"{live}_shadow"})
        try:
            migrate(shadow)
            _execute(shadow, sql.SQL("INSERT INTO api_tokens SELECT * FROM {}.api_tokens").format(sql.Identifier(live)))
            _execute(stack, sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(sql.Identifier(live),
                                                                           sql.Identifier(f"{live}_archive")),
                     sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(sql.Identifier(shadow.postgres_schema),
                                                                   sql.Identifier(live)))
            for _ in range(10):
                after = await http.get("/v1/floors", headers=headers, params={"limit": 500})
                assert after.status_code == 200, after.text
                assert body(after)["items"] == []
        finally:
            _execute(stack, sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(shadow.postgres_schema)))
