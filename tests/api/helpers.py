"""Shared by the read API tests: isolated stacks with views the real worker wrote, tokens, clients."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from decimal import Decimal
from pathlib import Path

import httpx
import orjson
import psycopg

from cohortflow.api import auth
from cohortflow.api.app import create_app
from cohortflow.settings import Settings, load_settings
from tests.conftest import _cleanup, _require_services
from tests.logs import adversarial_log, valid_events
from tests.pipeline.harness import ROOT, environment, fold_log, free_port, stop_process


def token(settings: Settings, *scopes: str, name: str | None = None) -> dict[str, str]:
    """Authorization headers with a new token of ``scopes``."""
    with psycopg.connect(settings.postgres_url, autocommit=True,
                         options=f"-c search_path={settings.postgres_schema}") as conn:
        value = auth.create(conn, name or f"t-{'-'.join(scopes)}-{time.monotonic_ns()}", list(scopes))
    return {"Authorization": f"Bearer {value}"}


@asynccontextmanager
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An app for ``settings`` (its lifespan running) behind an in-process httpx client."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
            yield http


def db_rows(settings: Settings, query: str) -> list:
    """Rows straight from PostgreSQL, in the JSON the API should give (Decimal kept exact)."""
    with psycopg.connect(settings.postgres_url, options=f"-c search_path={settings.postgres_schema}") as conn:
        rows = conn.cursor(row_factory=psycopg.rows.dict_row).execute(query).fetchall()
    return [json.loads(orjson.dumps(r, default=lambda d: orjson.Fragment(str(d)), option=orjson.OPT_UTC_Z),
                       parse_float=Decimal) for r in rows]


def body(response: httpx.Response):  # any JSON
    return json.loads(response.content, parse_float=Decimal)


async def walk(http: httpx.AsyncClient, url: str, headers: dict, limit: int, **params) -> list[dict]:
    """Every item of a cursor-paginated list, page by page."""
    items, cursor = [], None
    while True:
        query = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        response = await http.get(url, headers=headers, params=query)
        assert response.status_code == 200, response.text
        page = body(response)
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


def ingest(settings: Settings, logs: Path, *, seed: int, size: int) -> list:
    """Publish an adversarial log and let a real worker fold it; the log's valid events."""
    log = adversarial_log(seed=seed, size=size, contract=settings.contract)
    fold_log(settings, log, logs / "worker.log")
    return valid_events(log)


def isolated_settings(**overrides: object) -> Settings:
    """Settings of a stack of their own (no I/O: see :func:`isolated_stack`)."""
    tag = uuid.uuid4().hex[:10]
    return load_settings(**{"topic_prefix": f"t{tag}.", "postgres_schema": f"t_{tag}", "redis_prefix": f"t{tag}:",
                            "consumer_group": f"g{tag}", "partitions": 3, "session_timeout_seconds": 6,
                            **overrides})


@contextmanager
def isolated_stack(settings: Settings | None = None, **overrides: object) -> Iterator[Settings]:
    """Like the ``stack`` fixture, for fixtures wider than one test: topics, migrations, and removal after."""
    from cohortflow.pipeline.topics import ensure_topics
    from cohortflow.stores.migrate import migrate

    settings = settings or isolated_settings(**overrides)
    _require_services(settings)
    try:
        asyncio.run(ensure_topics(settings))
        migrate(settings)
        yield settings
    finally:
        _cleanup(settings)


@contextmanager
def served(settings: Settings, log: Path, *args: str, **env: str) -> Iterator[str]:
    """A real `cohortflow api` process (``args`` added) for ``settings``; its base URL once it answers."""
    port = free_port()
    api = subprocess.Popen([sys.executable, "-m", "cohortflow.cli", "api", "--port", str(port), *args], cwd=ROOT,
                           env={**environment(settings), **env}, stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/health/live", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                assert api.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.2)
        yield url
        assert api.poll() is None, log.read_text()[-3000:]
    finally:
        stop_process(api, 10)
