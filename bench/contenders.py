"""The fold-throughput contenders of `make bench`, each run over the same published log.

Each run gets its own topics. The contender starts on them, consumes a warm-up of the log's
first records (so start-up, topic creation and group join are not counted), then the rest of
the log is published at full speed and the clock runs from the first record published to:

- ``cohortflow``: N `cohortflow worker` processes; every offset committed in PostgreSQL with the
  views (the worker's only commit);
- ``faust`` / ``quix``: N processes of bench/peers/; their group's Kafka commit covering every
  record of the log *and* every delta they re-keyed through their own topic, so the figure is
  end-to-end into PostgreSQL like the worker's (the commit intervals, 2.8 s and 5 s, are part of it);
- the raw ceiling is bench/bench_worker.py's ``raw_ceiling`` over a pre-published log.

Before the warm-up, every contender waits until its consumer group is Stable with all its processes
(see ``timed``): no record is in flight across the start-up rebalance.

The warm-up and the log are each followed by one valid record in every partition (a copy of a
valid record of the log that belongs there, see ``partition_ends``): Quix commits a partition only up to the
last record it processed, so a partition ending in a record its JSON deserializer refuses was never
seen as done (its warm-up timed out on submissions[0] of the 100,000-record log).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psycopg
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from psycopg import sql

from bench.peers.fold import FLOOR_DDL
from cohortflow.contract import DEFAULT_CONTRACT, Rejection, decode
from cohortflow.contract.topics import EVENT_TOPICS, Topic, topic_name
from cohortflow.pipeline.processor import shard_of
from cohortflow.pipeline.topics import delete_topics, ensure_topics
from cohortflow.settings import Settings, load_settings
from cohortflow.stores.migrate import migrate
from tests.pipeline.harness import Worker, applied, publish

ROOT = Path(__file__).resolve().parent.parent
PEERS = {"faust": ["bench/peers/faust_agent.py", "worker", "-l", "warn", "--without-web"],
         "quix": ["bench/peers/quix_app.py"]}


WARMUP = 600  # records published first: the contender is up and consuming once they are committed
WARMUP_TIMEOUT = 180.0  # seconds a contender gets to form its group, then to commit the warm-up (lower in --quick)


# How the contenders were run, recorded in each result (the report describes the run from it).
SETUP = {"stable_group_before_warmup": True, "quix_changelog_topics": True, "valid_tail_per_partition": True}


@dataclass
class Run:
    rate: float  # records/s, from the start of publishing the log to its last record committed
    seconds: float
    capped: bool = False
    rss_bytes: int = 0
    publish_seconds: float = 0.0
    warmup: int = WARMUP  # records committed before the clock started (the warm-up and its tails)


def rss(pid: int) -> int:
    try:
        return int(next(line.split()[1] for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                        if line.startswith("VmRSS"))) * 1024
    except (FileNotFoundError, StopIteration):
        return 0


def fresh_topics(base: Settings, label: str) -> Settings:
    tag = uuid.uuid4().hex[:8]
    settings = load_settings(topic_prefix=f"bs{tag}.", postgres_schema=f"bench_{label}_{tag}",
                             redis_prefix=f"bs{tag}:", consumer_group=f"bench-{label}-{tag}",
                             partitions=base.partitions)
    asyncio.run(ensure_topics(settings))
    return settings


def drop_topics(settings: Settings) -> None:
    asyncio.run(delete_topics(settings, [topic_name(settings.topic_prefix, t) for t in EVENT_TOPICS]
                              + [f"{settings.topic_prefix}deadletter"]))


def drop_schema(settings: Settings, schema: str) -> None:
    with psycopg.connect(settings.postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def fast_publish(settings: Settings, records: list) -> None:
    """librdkafka's producer: several times the rate of the fastest contender, so it never limits one.

    Keys are hashed with murmur2, as Java clients and aiokafka do (librdkafka's default is CRC32): the
    rest of the suite publishes with aiokafka, and one entity's events must stay in one partition.
    """
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "acks": "all", "enable.idempotence": True,
                         "partitioner": "murmur2_random",
                         "linger.ms": 5, "batch.size": 1 << 20, "message.max.bytes": 3 << 20,
                         "queue.buffering.max.messages": 1_000_000})
    names = {t: topic_name(settings.topic_prefix, Topic(t)) for t in {r[0] for r in records}}
    for topic, key, value in records:
        while True:
            try:
                producer.produce(names[topic], value, key)
                break
            except BufferError:
                producer.poll(0.01)
    assert producer.flush(120) == 0, "records left unpublished"


async def _group_members(bootstrap: str, group: str) -> tuple[str, int]:
    """(state, number of members) of a consumer group."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        response = (await admin.describe_consumer_groups([group]))[0]
    finally:
        await admin.close()
    _error, _group, state, _protocol_type, _protocol, members, *_ = response.groups[0]
    return state, len(members)


def wait_stable(bootstrap: str, group: str, members: int, timeout: float = 180) -> None:
    """Until ``group`` is Stable with ``members`` members: no rebalance inside the timed window."""
    deadline = time.perf_counter() + timeout
    while True:
        state, count = asyncio.run(_group_members(bootstrap, group))
        if state == "Stable" and count >= members:
            return
        assert time.perf_counter() < deadline, (
            f"group {group}: {state} with {count}/{members} members after {timeout} s")
        time.sleep(0.5)


def partition_ends(settings: Settings, records: list) -> list:
    """One valid record of the log for every (topic, partition) it has one for: the last one found there."""
    found: dict[tuple[str, int], tuple] = {}
    wanted = len(EVENT_TOPICS) * settings.partitions
    for record in reversed(records):
        topic, key, value = record
        if key is None:
            continue
        where = (topic, shard_of(key.decode("utf-8", "replace"), settings.partitions))
        if where in found or isinstance(
                decode(topic_name(DEFAULT_CONTRACT.topic_prefix, Topic(topic)), key, value), Rejection):
            continue
        found[where] = record
        if len(found) == wanted:
            break
    return list(found.values())


def timed(settings: Settings, records: list, done: Callable[[int], bool], pids: Callable[[], list[int]],
          cap: float, group: str | None = None, members: int = 1) -> Run:
    """Wait until every process is a member of a Stable group, warm up with the first records, check the group
    is still Stable, then publish the rest and time until ``done(count)``.

    Nothing is published before the group has formed: processes started together join one by one, and
    records consumed by the first member before the second joins are in flight across the rebalance. That is
    what stalled Faust x2: its consumer tracks the offsets it has read and acked per partition, and the
    partitions it processed in the first generation were never committed by either worker after being
    handed over (the group Stable, the records processed, no offset ever committed; 4 stalls in 8 starts
    here, none in 8 once the group had formed first: faust-streaming/faust#318, robinhood/faust#681).
    A deployed Faust app starts its workers and then gets traffic; so does every contender here."""
    ends = partition_ends(settings, records)
    if group is not None:
        wait_stable(settings.kafka_bootstrap, group, members, WARMUP_TIMEOUT)
    asyncio.run(publish(settings, records[:WARMUP] + ends))
    deadline = time.perf_counter() + WARMUP_TIMEOUT
    while not done(WARMUP + len(ends)):
        assert time.perf_counter() < deadline, (
            f"the contender did not commit the warm-up records in {WARMUP_TIMEOUT:.0f} s")
        time.sleep(0.1)
    if group is not None:
        wait_stable(settings.kafka_bootstrap, group, members)
    began = time.perf_counter()
    publisher = threading.Thread(target=fast_publish, args=(settings, records[WARMUP:] + ends))
    publisher.start()
    peak, total = 0, len(records) + 2 * len(ends)
    published = None
    while True:
        finished = done(total)
        now = time.perf_counter()
        if published is None and not publisher.is_alive():
            published = now - began
        peak = max(peak, sum(rss(pid) for pid in pids()))
        if finished or now - began > cap:
            break
        time.sleep(0.1)
    publisher.join()
    elapsed = now - began
    warmup = WARMUP + len(ends)
    return Run((total - warmup) / elapsed, elapsed, not finished, peak, published or elapsed, warmup)


def worker_rate(base: Settings, records: list, processes: int, cap: float) -> Run:
    """`cohortflow worker --processes N`: Kafka -> views, state and offsets committed in PostgreSQL."""
    run = fresh_topics(base, "suite")
    migrate(run)
    workers = [Worker(run, Path(f"/tmp/bench-suite-{run.consumer_group}.log"), processes=processes).start()]

    def done(count: int) -> bool:
        for w in workers:
            assert w.alive, w.log.read_text()[-2000:]
        return applied(run) >= count

    try:
        result = timed(run, records, done, lambda: [w.proc.pid for w in workers] + workers[0].children(), cap,
                       run.consumer_group, processes)
        if result.capped:  # the rate of what was committed by the cap
            result.rate = (applied(run) - result.warmup) / result.seconds
        return result
    finally:
        for w in workers:
            w.stop()
        drop_schema(run, run.postgres_schema)
        drop_topics(run)


async def _progress(bootstrap: str, group: str, sources: set[str]) -> tuple[int, bool]:
    """(records of the source topics committed by ``group``, whether every topic it reads is drained)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    if not committed:
        return 0, False
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(list(committed))
    finally:
        await consumer.stop()
    source = sum(meta.offset for tp, meta in committed.items() if tp.topic in sources and meta.offset > 0)
    drained = all(meta.offset >= ends[tp] for tp, meta in committed.items())
    return source, drained


def peer_rate(kind: str, base: Settings, records: list, processes: int, cap: float) -> Run:
    """``processes`` processes of the ``kind`` peer, own group and schema, over the same records."""
    run = fresh_topics(base, f"peer_{kind}")
    group, schema = f"peer-{kind}-{run.consumer_group}", run.postgres_schema
    state_dir = Path(f"/tmp/{group}")
    with psycopg.connect(run.postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        conn.execute(FLOOR_DDL)  # before the processes start: two CREATE IF NOT EXISTS at once collide
    if kind == "faust":  # two workers racing to create them: one "ignores the missing topic" and never reads it
        asyncio.run(_create_faust_topics(run, group))
    env = {**os.environ, "PEER_APP_ID": group, "PEER_TOPIC_PREFIX": run.topic_prefix,
           "PEER_BOOTSTRAP": run.kafka_bootstrap, "PEER_SCHEMA": schema, "PEER_DSN": run.postgres_url}
    procs = []
    for i in range(processes):
        home = state_dir / str(i)  # Faust keeps its data directory in the working directory
        home.mkdir(parents=True, exist_ok=True)
        script, *args = PEERS[kind]
        procs.append(subprocess.Popen([sys.executable, str(ROOT / script), *args], cwd=home,
                                      env={**env, "PEER_STATE_DIR": str(home)},
                                      stdout=open(f"/tmp/bench-suite-{group}-{i}.log", "wb"),
                                      stderr=subprocess.STDOUT))
    sources = {topic_name(run.topic_prefix, t) for t in EVENT_TOPICS}

    def done(count: int) -> bool:
        for p in procs:
            assert p.poll() is None, f"{kind} peer died: see /tmp/bench-suite-{group}-*.log"
        source, drained = asyncio.run(_progress(run.kafka_bootstrap, group, sources))
        return source >= count and drained

    try:
        result = timed(run, records, done, lambda: [p.pid for p in procs], cap, group, processes)
        if result.capped:
            result.rate = ((asyncio.run(_progress(run.kafka_bootstrap, group, sources))[0] - result.warmup)
                           / result.seconds)
        return result
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(state_dir, ignore_errors=True)
        asyncio.run(_drop_peer_topics(run.kafka_bootstrap, group))
        drop_schema(run, schema)
        drop_topics(run)


async def _create_faust_topics(settings: Settings, group: str) -> None:
    """The Faust peer's delta topic and table changelogs, as Faust itself declares them."""
    from aiokafka.admin import NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([
            NewTopic(f"{group}-summary-deltas", 12, 1),
            NewTopic(f"{group}-students-changelog", 12, 1, topic_configs={"cleanup.policy": "compact"}),
            NewTopic(f"{group}-summaries-changelog", 12, 1, topic_configs={"cleanup.policy": "compact"}),
        ])
    finally:
        await admin.close()


async def _drop_peer_topics(bootstrap: str, group: str) -> None:
    """The peers' own topics (Faust's delta and changelog topics, Quix's repartition and changelogs)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        mine = [t for t in await admin.list_topics() if group in t]
        if mine:
            await admin.delete_topics(mine)
        try:
            await admin.delete_consumer_groups([group])
        except Exception:  # noqa: BLE001 - a group with members left is removed by the broker later
            pass
    finally:
        await admin.close()

