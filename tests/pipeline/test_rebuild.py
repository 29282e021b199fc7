"""rebuild, validate and point-in-time copies against the real stack (issue 6)."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
import redis
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from click.testing import CliRunner

from cohortflow.errors import IntegrityError
from cohortflow.pipeline.rebuild import rebuild
from cohortflow.pipeline.validate import validate
from cohortflow.settings import Settings, load_settings
from cohortflow.stores.badges import badge_key
from tests import oracle
from tests.logs import adversarial_log, valid_events
from tests.pipeline.harness import Worker, compare, environment, publish, records_of, views, wait_caught_up


def in_schema(settings: Settings, schema: str) -> Settings:
    return load_settings(**{n: getattr(settings, n) for n in type(settings).model_fields if n != "postgres_schema"},
                         postgres_schema=schema)


def drop(settings: Settings, schema: str) -> None:
    with psycopg.connect(settings.postgres_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    """A live schema after the worker ingested an adversarial log (shared by the tests that only read it)."""
    import uuid

    from tests.conftest import _cleanup, _require_services

    base = load_settings()
    _require_services(base)
    tag = uuid.uuid4().hex[:10]
    settings = load_settings(topic_prefix=f"t{tag}.", postgres_schema=f"t_{tag}", redis_prefix=f"t{tag}:",
                             consumer_group=f"g{tag}", partitions=3, session_timeout_seconds=6)
    from cohortflow.pipeline.topics import ensure_topics
    from cohortflow.stores.migrate import migrate

    asyncio.run(ensure_topics(settings))
    migrate(settings)
    log = adversarial_log(seed=31, size=20_000, contract=settings.contract)
    asyncio.run(publish(settings, records_of(log)))
    worker = Worker(settings, tmp_path_factory.mktemp("rebuild") / "worker.log").start()
    try:
        wait_caught_up(settings, workers=[worker])
        time.sleep(1)  # the badge restore after start runs beside the batches
    finally:
        worker.stop()
    yield settings, log
    for suffix in ("_rebuild", "_copy"):
        drop(settings, settings.postgres_schema + suffix)
    _cleanup(settings)


def test_rebuild_equals_the_live_views_and_validate_finds_nothing(ingested) -> None:
    settings, log = ingested
    result = rebuild(settings)
    assert result.schema == f"{settings.postgres_schema}_rebuild"
    assert result.stats.records == len(log)
    problems = compare(views(in_schema(settings, result.schema)), views(settings))
    assert not problems, problems[:10]
    check = validate(settings)
    assert check.differences == [] and check.compared_rows > 1000


def test_validate_reports_exactly_the_corrupted_fields_and_repair_fixes_them(ingested) -> None:
    settings, _ = ingested
    with psycopg.connect(settings.postgres_url, options=f"-c search_path={settings.postgres_schema}") as conn:
        campus, floor, students = conn.execute(
            "SELECT campus, floor, students_total FROM floor_counts WHERE students_total > 0 ORDER BY 1, 2 LIMIT 1"
        ).fetchone()
        mentor, approvals = conn.execute(
            "SELECT mentor_id, approvals FROM mentor_counts WHERE named AND approvals > 0 ORDER BY 1 LIMIT 1"
        ).fetchone()
        day, logins = conn.execute(
            "SELECT day, logins FROM daily_counts WHERE logins > 0 ORDER BY 1 LIMIT 1"
        ).fetchone()
        user, unread = conn.execute("SELECT user_id, unread FROM badges WHERE unread > 0 ORDER BY 1 LIMIT 1").fetchone()
        conn.execute("UPDATE floor_counts SET students_total = students_total + 7 WHERE campus = %s AND floor = %s",
                     [campus, floor])
        conn.execute("UPDATE mentor_counts SET approvals = approvals - 1 WHERE mentor_id = %s", [mentor])
        conn.execute("UPDATE daily_counts SET logins = 0 WHERE day = %s", [day])
    with redis.Redis.from_url(settings.redis_connection_url) as client:
        client.hset(badge_key(settings.redis_prefix, user), "unread", unread + 40)

    found = validate(settings)
    got = {(d.view, d.table, d.key, d.field, d.live, d.expected) for d in found.differences}
    assert got == {
        ("floor_summary", "floor_counts", (campus, floor), "students_total", students + 7, students),
        ("mentor_summary", "mentor_counts", (mentor,), "approvals", approvals - 1, approvals),
        ("global_daily", "daily_counts", (day,), "logins", 0, logins),
        ("notifications", "redis", (user,), "unread", unread + 40, unread),
    }
    with psycopg.connect(settings.postgres_url, options=f"-c search_path={settings.postgres_schema}") as conn:
        logged = conn.execute("SELECT count(*) FROM view_validation_log WHERE run_id = %s", [found.run_id]).fetchone()
    assert logged == (4,)

    runner = CliRunner()
    result = runner.invoke(_cli(), ["validate"], env=environment(settings))
    assert result.exit_code == 1, result.output  # a difference makes validate fail
    repaired = validate(settings, repair=True)
    assert len(repaired.differences) == 4 and repaired.repaired
    assert validate(settings).differences == []
    result = runner.invoke(_cli(), ["validate"], env=environment(settings))
    assert result.exit_code == 0, result.output


def test_point_in_time_copy_equals_the_oracle_up_to_t(ingested) -> None:
    settings, log = ingested
    events = valid_events(log)
    instants = sorted(e.occurred_at for e in events)
    until = instants[len(instants) // 2] + timedelta(microseconds=7)
    result = rebuild(settings, until=until, into=f"{settings.postgres_schema}_copy")
    expected = oracle.recompute([e for e in events if e.occurred_at <= until], settings.pillars)
    problems = compare(views(in_schema(settings, result.schema)), expected)
    assert not problems, problems[:10]
    with psycopg.connect(settings.postgres_url) as conn:
        note = conn.execute("SELECT obj_description(oid) FROM pg_namespace WHERE nspname = %s",
                            [result.schema]).fetchone()[0]
    assert until.isoformat() in note


def test_swap_while_records_flow_ends_equal_to_the_recomputation(stack: Settings, tmp_path: Path) -> None:
    log = adversarial_log(seed=32, size=24_000, contract=stack.contract)
    first, rest = log[:8_000], log[8_000:]
    asyncio.run(publish(stack, records_of(first)))
    worker = Worker(stack, tmp_path / "worker.log").start()
    try:
        wait_caught_up(stack, workers=[worker])

        async def flow() -> None:  # 2,000 records/s while the rebuild runs and swaps
            for i in range(0, len(rest), 200):
                await publish(stack, records_of(rest[i : i + 200]))
                await asyncio.sleep(0.1)

        async def both() -> None:
            flowing = asyncio.create_task(flow())
            await asyncio.sleep(1)
            await asyncio.to_thread(rebuild, stack, swap=True)
            await flowing

        asyncio.run(both())
        wait_caught_up(stack, timeout=180, workers=[worker])
        events = valid_events(log)
        problems = compare(views(stack), oracle.recompute(events, stack.pillars))
        assert not problems, problems[:10]
        from tests.stores.test_audit import expected_rows, stored

        assert stored(stack) == expected_rows(events)  # the audit trail came along with the swap, once each
        wanted = {u: b for u, b in oracle.badges(events).items() if b != {"unread": 0}}
        deadline = time.monotonic() + 20
        from tests.pipeline.harness import redis_badges

        while time.monotonic() < deadline:
            got = {u: b for u, b in redis_badges(stack).items() if b != {"unread": 0}}
            if got == wanted:
                break
            time.sleep(0.2)
        assert got == wanted
    finally:
        worker.stop()
        with psycopg.connect(stack.postgres_url, autocommit=True) as conn:
            for (name,) in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE %s",
                                        [f"{stack.postgres_schema}_replaced_%"]).fetchall():
                conn.execute(f'DROP SCHEMA "{name}" CASCADE')


def test_rebuild_refuses_when_retention_deleted_the_start(stack: Settings) -> None:
    log = adversarial_log(seed=33, size=2_000, contract=stack.contract)
    asyncio.run(publish(stack, records_of(log)))
    roster = f"{stack.topic_prefix}roster"

    async def delete_start() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
        await admin.start()
        try:
            await admin.delete_records({TopicPartition(roster, 0): RecordsToDelete(before_offset=5)})
        finally:
            await admin.close()

    asyncio.run(delete_start())
    with pytest.raises(IntegrityError, match=rf"{roster}\[0\] starts at 5"):
        rebuild(stack)


def _cli():
    from cohortflow.cli import cli

    return cli


def test_rebuild_in_processes_is_exact_when_producers_partition_differently(stack: Settings) -> None:
    """An entity's events on several partitions (librdkafka hashes keys with CRC32, aiokafka with murmur2)."""
    import random

    from aiokafka import AIOKafkaProducer

    from cohortflow.contract.topics import Topic, topic_name

    log = adversarial_log(seed=37, size=6_000, contract=stack.contract)
    rnd = random.Random(37)

    async def scatter() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap, acks="all", enable_idempotence=True,
                                    max_request_size=3 * 1024 * 1024)  # the oversize record of the log
        await producer.start()
        try:
            sent = [await producer.send(topic_name(stack.topic_prefix, Topic(topic)), value, key=key,
                                        partition=rnd.randrange(stack.partitions))
                    for topic, key, value in records_of(log)]
            await asyncio.gather(*sent)
        finally:
            await producer.stop()

    asyncio.run(scatter())
    result = rebuild(stack, into=f"{stack.postgres_schema}_scattered", processes=2)
    try:
        problems = compare(views(in_schema(stack, result.schema)), oracle.recompute(valid_events(log), stack.pillars))
        assert not problems, problems[:10]
        assert result.stats.records == len(log)
    finally:
        drop(stack, result.schema)
