"""Shared fixtures.

Integration tests ask for ``stack``: settings that point at the real Kafka,
PostgreSQL and Redis started by ``make services`` but with a topic prefix,
schema, Redis key prefix and consumer group of their own, removed afterwards.
A service that does not answer fails the test: CI must never pass by skipping.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import psycopg
import pytest
import redis
from psycopg import sql

from cohortflow.devstack.process import Address, port_open
from cohortflow.settings import Settings, load_settings

STACK_FIXTURES = {"stack", "stack_settings", "base_settings"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if STACK_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


def _require_services(settings: Settings) -> None:
    from urllib.parse import urlsplit

    host, _, port = settings.kafka_bootstrap.split(",")[0].rpartition(":")
    pg = urlsplit(settings.postgres_url)
    rd = urlsplit(settings.redis_connection_url)
    missing = [
        name
        for name, addr in (
            ("Kafka", Address(host, int(port))),
            ("PostgreSQL", Address(pg.hostname or "", pg.port or 5432)),
            ("Redis", Address(rd.hostname or "", rd.port or 6379)),
        )
        if not port_open(addr)
    ]
    if missing:
        pytest.fail(f"{', '.join(missing)} not answering: run `make services` (integration tests never skip)")


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    settings = load_settings()
    _require_services(settings)
    return settings


@pytest.fixture
def stack_settings(base_settings: Settings) -> Iterator[Settings]:
    """Settings isolated for one test; its topics, schema and Redis keys are removed afterwards."""
    tag = uuid.uuid4().hex[:10]
    settings = load_settings(
        topic_prefix=f"t{tag}.",
        postgres_schema=f"t_{tag}",
        redis_prefix=f"t{tag}:",
        consumer_group=f"g{tag}",
        partitions=3,
        session_timeout_seconds=6,  # the broker's minimum: fault tests fail over fast
    )
    yield settings
    _cleanup(settings)


def _cleanup(settings: Settings) -> None:
    from cohortflow.pipeline.topics import admin_client

    async def drop_topics() -> None:
        async with admin_client(settings) as admin:
            mine = [t for t in await admin.list_topics() if t.startswith(settings.topic_prefix)]
            if mine:
                await admin.delete_topics(mine)

    asyncio.run(drop_topics())
    with psycopg.connect(settings.postgres_url, autocommit=True) as conn:
        for schema in (settings.postgres_schema, f"{settings.postgres_schema}_archive"):
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
    with redis.Redis.from_url(settings.redis_connection_url) as client:
        keys = list(client.scan_iter(match=f"{settings.redis_prefix}*", count=1000))
        if keys:
            client.delete(*keys)


@pytest.fixture
def stack(stack_settings: Settings) -> Settings:
    """Isolated settings with the contract's topics created and the migrations applied."""
    from cohortflow.pipeline.topics import ensure_topics
    from cohortflow.stores.migrate import migrate

    asyncio.run(ensure_topics(stack_settings))
    migrate(stack_settings)
    return stack_settings
