"""The transactional outbox against the real PostgreSQL and Kafka, with relays killed mid-way."""

from __future__ import annotations

import asyncio
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from cohortflow.contract import Rejection, decode
from cohortflow.producers import outbox
from cohortflow.producers.exceptions import InvalidEvent, NotInTransaction
from cohortflow.producers.typed import events as typed_events
from cohortflow.settings import Settings, load_settings
from tests import oracle
from tests.logs import adversarial_log, valid_events
from tests.pipeline.harness import ROOT, Worker, compare, environment, views, wait_caught_up
from tests.producers.helpers import read_topics, read_topics_sync


@pytest.fixture
def outbox_schema(stack: Settings):
    schema = f"{stack.postgres_schema}_app"
    with psycopg.connect(stack.postgres_url) as conn:
        outbox.install(conn, schema)
        outbox.install(conn, schema)  # idempotent
    yield schema
    with psycopg.connect(stack.postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def _unsent(settings: Settings, schema: str) -> tuple[int, int]:
    with psycopg.connect(settings.postgres_url) as conn:
        return conn.execute(sql.SQL("SELECT count(*) FILTER (WHERE sent_at IS NULL), count(*) FILTER (WHERE sent_at "
                                    "IS NOT NULL) FROM {}.{}").format(sql.Identifier(schema),
                                                                       sql.Identifier(outbox.TABLE))).fetchone()


def _relay(settings: Settings, schema: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "cohortflow.cli", "relay", "--batch-size", "150"], cwd=ROOT,
                            env=environment(settings, COHORTFLOW_OUTBOX_SCHEMA=schema),
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)


def test_enqueue_validates_and_needs_a_transaction(stack: Settings, outbox_schema: str) -> None:
    event = typed_events.login_succeeded(user_id="u1", role="student")
    with psycopg.connect(stack.postgres_url, autocommit=True) as conn:
        with pytest.raises(NotInTransaction):
            outbox.enqueue(conn, event, schema=outbox_schema, contract=stack.contract)
        with conn.transaction():
            outbox.enqueue(conn, event, schema=outbox_schema, contract=stack.contract)
    bad = event.model_copy(update={"event_id": ""})  # built around validation: enqueue still refuses it
    with psycopg.connect(stack.postgres_url) as conn, pytest.raises(InvalidEvent) as caught:
        outbox.enqueue(conn, bad, schema=outbox_schema, contract=stack.contract)
    assert caught.value.field == "event_id"
    assert _unsent(stack, outbox_schema) == (1, 0)


def test_committed_rows_reach_kafka_once_rolled_back_rows_never_with_a_relay_killed(
    stack: Settings, outbox_schema: str, tmp_path: Path
) -> None:
    # Distinct event_ids, so "a rolled-back event reached Kafka" cannot hide behind a committed duplicate.
    unique = list({e.event_id: e for e in valid_events(adversarial_log(seed=11, size=14_000,
                                                                       contract=stack.contract))}.values())
    rng = random.Random(5)
    transactions, i = [], 0
    while i < len(unique):
        size = rng.randint(1, 40)
        transactions.append((unique[i:i + size], rng.random() < 0.2))  # (events, rolled back?)
        i += size
    committed = [e for batch, rolled_back in transactions if not rolled_back for e in batch]
    rolled_back = [e for batch, rb in transactions if rb for e in batch]
    assert len(committed) >= 10_000 and rolled_back

    relays = [_relay(stack, outbox_schema, tmp_path / f"relay{n}.log") for n in (1, 2)]
    errors: list[BaseException] = []

    def app(worker_id: int) -> None:
        try:
            with psycopg.connect(stack.postgres_url) as conn:
                for batch, rb in transactions[worker_id::6]:
                    try:
                        with conn.transaction():
                            for event in batch:
                                outbox.enqueue(conn, event, schema=outbox_schema, contract=stack.contract)
                            if rb:
                                raise _Rollback
                    except _Rollback:
                        pass
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    apps = [threading.Thread(target=app, args=(n,)) for n in range(6)]
    worker = None
    try:
        for thread in apps:
            thread.start()
        # Kill the first relay with SIGKILL once it is well under way (published and marked some batches).
        deadline = time.monotonic() + 120
        while _unsent(stack, outbox_schema)[1] < 3000:
            assert time.monotonic() < deadline, "relays did not publish 3000 rows in 120 s"
            assert all(r.poll() is None for r in relays), (tmp_path / "relay1.log").read_text()
            time.sleep(0.05)
        relays[0].send_signal(signal.SIGKILL)
        relays[0].wait(30)
        for thread in apps:
            thread.join(300)
        assert not errors, errors
        while _unsent(stack, outbox_schema)[0]:
            assert time.monotonic() < deadline + 120, f"rows left unsent: {_unsent(stack, outbox_schema)}"
            assert relays[1].poll() is None, (tmp_path / "relay2.log").read_text()
            time.sleep(0.2)
        assert _unsent(stack, outbox_schema) == (0, len(committed))

        # Kafka: every committed event at least once (a re-send after the kill is allowed), no rolled-back one.
        records = read_topics_sync(stack, len(committed), timeout=60)
        seen = set()
        first_at: dict[str, tuple[str, int, int]] = {}  # event_id -> (topic, partition, offset) of its first copy
        for record in records:
            found = decode(record.topic, record.key, record.value, stack.contract)
            assert not isinstance(found, Rejection), found
            seen.add(found.event_id)
            place = (record.topic, record.partition, record.offset)
            first_at[found.event_id] = min(first_at.get(found.event_id, place), place)
        assert seen == {e.event_id for e in committed}
        assert not seen & {e.event_id for e in rolled_back}
        # Order per key: one transaction's events of a key reach their partition in the order they were enqueued,
        # whichever relay sent them and whatever was re-sent after the kill.
        for batch, rb in transactions:
            if rb:
                continue
            by_key: dict[tuple[str, str], list[tuple[str, int, int]]] = {}
            for event in batch:
                by_key.setdefault((event.TOPIC.value, event.key), []).append(first_at[event.event_id])
            for places in by_key.values():
                assert places == sorted(places) and len({p[:2] for p in places}) == 1, places

        # The worker's views of what the relays published equal the batch recomputation of the committed events.
        worker = Worker(stack, tmp_path / "worker.log").start()
        wait_caught_up(stack, timeout=240, workers=[worker])
        problems = compare(views(stack), oracle.recompute(committed, stack.pillars))
        assert not problems, f"{len(problems)} differences, first ones:\n" + "\n".join(problems[:15])
    finally:
        for proc in relays:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(30)
        if worker:
            worker.stop()


class _Rollback(Exception):
    pass


async def test_the_relay_waits_out_an_unreachable_kafka_and_resumes(stack: Settings, outbox_schema: str) -> None:
    # Bootstrap through a port where nothing listens yet; later a forwarder to the real broker opens there.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    fields = {name: getattr(stack, name) for name in Settings.model_fields}
    settings = load_settings(**fields | {"kafka_bootstrap": f"127.0.0.1:{port}", "publish_timeout_seconds": 1})
    sent = [typed_events.login_succeeded(user_id=f"u{i}", role="student") for i in range(50)]
    with psycopg.connect(stack.postgres_url) as conn, conn.transaction():
        for event in sent:
            outbox.enqueue(conn, event, schema=outbox_schema, contract=stack.contract)

    stop = asyncio.Event()
    running = asyncio.create_task(outbox.relay(settings, schema=outbox_schema, stop=stop, retry_seconds=1))
    await asyncio.sleep(3)
    assert not running.done(), running  # still there, not crashed
    assert _unsent(stack, outbox_schema) == (50, 0)

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host, _, kafka_port = stack.kafka_bootstrap.split(",")[0].rpartition(":")
        up_reader, up_writer = await asyncio.open_connection(host, int(kafka_port))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer), return_exceptions=True)

    server = await asyncio.start_server(forward, "127.0.0.1", port)
    try:
        for _ in range(300):
            if _unsent(stack, outbox_schema) == (0, 50):
                break
            await asyncio.sleep(0.1)
        assert _unsent(stack, outbox_schema) == (0, 50)
    finally:
        stop.set()
        stats = await asyncio.wait_for(running, 30)
        server.close()
    assert stats.outages >= 1 and stats.published == 50
    found = {decode(r.topic, r.key, r.value, stack.contract).event_id for r in await read_topics(stack, 50)}
    assert found == {e.event_id for e in sent}
