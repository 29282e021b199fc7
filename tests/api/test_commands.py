"""`cohortflow tokens create|list|revoke` end to end, and the token they print opening the API."""

from __future__ import annotations

import subprocess
import sys

import psycopg
import pytest

from cohortflow.api.auth import token_hash
from cohortflow.settings import Settings
from tests.api.helpers import client
from tests.pipeline.harness import ROOT, environment

pytestmark = pytest.mark.integration


def run(stack: Settings, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cohortflow.cli", "tokens", *args], cwd=ROOT, text=True,
                          capture_output=True, env={**environment(stack), "COLUMNS": "200"}, timeout=60)


async def test_tokens_create_list_revoke(stack: Settings) -> None:
    made = run(stack, "create", "--name", "dash", "--scope", "floor:c1/f1", "--scope", "user:u-1", "--quiet")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert made.stdout == token + "\n" and token.startswith("cf_")  # --quiet: the token and nothing else

    with psycopg.connect(stack.postgres_url, options=f"-c search_path={stack.postgres_schema}") as conn:
        stored = conn.execute("SELECT token_hash, scopes, revoked_at FROM api_tokens WHERE name = 'dash'").fetchone()
        assert conn.execute("SELECT count(*) FROM api_tokens WHERE token_hash = %s OR name = %s",
                            [token, token]).fetchone()[0] == 0  # the token itself is stored nowhere
    assert stored == (token_hash(token), ["floor:c1/f1", "user:u-1"], None)

    listed = run(stack, "list")
    assert listed.returncode == 0 and "dash" in listed.stdout and "floor:c1/f1" in listed.stdout
    assert token not in listed.stdout

    bearer = {"Authorization": f"Bearer {token}"}
    async with client(stack) as http:
        assert (await http.get("/v1/notifications/u-1", headers=bearer)).status_code == 200
    assert run(stack, "revoke", "dash").returncode == 0
    async with client(stack) as http:  # a new app: no cached answer
        refused = await http.get("/v1/notifications/u-1", headers=bearer)
        assert refused.status_code == 401 and refused.json()["error"]["parameter"] == "Authorization"

    again = run(stack, "revoke", "dash")
    assert again.returncode != 0 and "dash" in again.stderr + again.stdout
    twice = run(stack, "create", "--name", "other", "--scope", "views:write")
    assert twice.returncode != 0 and "views:write" in twice.stderr + twice.stdout
    duplicate = run(stack, "create", "--name", "dash", "--scope", "views:read")
    assert duplicate.returncode != 0 and "--name" in duplicate.stderr + duplicate.stdout
