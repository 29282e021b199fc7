"""Drive real worker processes against the real stack, and read back what they produced."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

import psycopg
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from cohortflow.contract.topics import EVENT_TOPICS, Topic, topic_name
from cohortflow.settings import Settings, env_name
from cohortflow.stores.queries import snapshot

ROOT = Path(__file__).resolve().parents[2]


def environment(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment a worker needs to run with exactly these settings."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("COHORTFLOW_")}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        value = value.get_secret_value() if hasattr(value, "get_secret_value") else value
        env[env_name(name)] = ",".join(value) if isinstance(value, tuple) else str(value)
    env[env_name("metrics_port")] = "0"
    env.update(extra)
    return env


def stop_process(proc: subprocess.Popen, grace: float) -> None:
    """SIGTERM, then SIGKILL if ``proc`` has not ended within ``grace`` seconds."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(30)


class Worker:
    """One `cohortflow worker` command: one process, or a parent with ``processes`` children."""

    def __init__(self, settings: Settings, log: Path, processes: int = 1, module: str = "cohortflow.cli",
                 **extra: str) -> None:
        self.settings = settings
        self.module = module  # the command's module: tests.pipeline.slow_consumer slows its consumer thread
        self.log = log
        self.processes = processes
        self.extra = extra
        self.proc: subprocess.Popen | None = None

    def start(self) -> Worker:
        out = open(self.log, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", self.module, "worker", "--processes",
                                      str(self.processes)], cwd=ROOT,
                                     env=environment(self.settings, **self.extra), stdout=out,
                                     stderr=subprocess.STDOUT)
        return self

    def children(self) -> list[int]:
        """The pids of the worker processes under the parent (``processes`` > 1), oldest first."""
        if self.proc is None:
            return []
        found = []
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                ppid = (proc / "stat").read_text().rsplit(")", 1)[1].split()[1]
                command = (proc / "cmdline").read_bytes()
            except (OSError, IndexError):  # ended meanwhile
                continue
            if ppid == str(self.proc.pid) and b"spawn_main" in command:  # not multiprocessing's resource tracker
                found.append(int(proc.name))
        return sorted(found)

    def kill(self) -> None:
        """SIGKILL: no clean-up, no leave-group, no flush."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc:
            stop_process(self.proc, 30)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


async def publish(settings: Settings, records: Iterable, *, chunk: int = 5000) -> int:
    """Publish ``(topic, key, value)`` records in order (contract topic names without prefix)."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=True,
                                linger_ms=10, max_batch_size=512 * 1024, max_request_size=3 * 1024 * 1024)
    await producer.start()
    count = 0
    try:
        pending = []
        for topic, key, value in records:
            pending.append(await producer.send(topic_name(settings.topic_prefix, Topic(topic)), value, key=key))
            count += 1
            if len(pending) >= chunk:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return count


async def end_offsets(settings: Settings, topics: Iterable[Topic] = EVENT_TOPICS) -> dict[tuple[str, int], int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition(topic_name(settings.topic_prefix, t), p)
               for t in topics for p in range(settings.partitions)]
        ends = await consumer.end_offsets(tps)
        return {(tp.topic, tp.partition): o for tp, o in ends.items()}
    finally:
        await consumer.stop()


T = TypeVar("T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate: Callable[[], T], timeout: float, what: str, workers: Iterable[Worker] = ()) -> T:
    """Poll ``predicate`` until it returns something true, and return that; fail at once if a worker died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        for worker in workers:
            assert worker.alive, f"worker died: see {worker.log}\n{worker.log.read_text()[-3000:]}"
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s: {what}")


def stored_offsets(settings: Settings) -> dict[tuple[str, int], int]:
    with psycopg.connect(settings.postgres_url, options=f"-c search_path={settings.postgres_schema}") as conn:
        return {(t, p): n for t, p, n in conn.execute("SELECT topic, partition, next_offset FROM consumer_offsets")}


def applied(settings: Settings) -> int:
    return sum(stored_offsets(settings).values())


def wait_caught_up(settings: Settings, timeout: float = 120, workers: Iterable[Worker] = ()) -> float:
    """Block until PostgreSQL's offsets reach the end of every partition; return the seconds it took."""
    ends = {tp: o for tp, o in asyncio.run(end_offsets(settings)).items() if o > 0}
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        stored = stored_offsets(settings)
        if all(stored.get(tp, 0) >= end for tp, end in ends.items()):
            return time.monotonic() - began
        for worker in workers:
            if not worker.alive:
                raise AssertionError(f"worker died: see {worker.log}\n{worker.log.read_text()[-3000:]}")
        time.sleep(0.2)
    behind = {tp: (stored_offsets(settings).get(tp, 0), end) for tp, end in ends.items()}
    raise AssertionError(f"not caught up after {timeout} s: {behind}")


def views(settings: Settings) -> dict:
    with psycopg.connect(settings.postgres_url, options=f"-c search_path={settings.postgres_schema}") as conn:
        return snapshot(conn)


def redis_badges(settings: Settings) -> dict[str, dict[str, int]]:
    prefix = f"{settings.redis_prefix}badge:"
    found = {}
    with redis.Redis.from_url(settings.redis_connection_url) as client:
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            raw = client.hgetall(key)
            badge = {"unread": int(raw[b"unread"])}
            if b"pending_reviews" in raw:
                badge["pending_reviews"] = int(raw[b"pending_reviews"])
            found[key.decode()[len(prefix):]] = badge
    return found


async def deadletters(settings: Settings, expected: int, timeout: float = 30) -> list:
    """Every record of the deadletter topic (waits until ``expected`` arrived, or the timeout)."""
    topic = topic_name(settings.topic_prefix, Topic.DEADLETTER)
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None, fetch_max_bytes=64 * 1024 * 1024,
                                max_partition_fetch_bytes=4 * 1024 * 1024)
    await consumer.start()
    found: list = []
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                found.extend(records)
            if len(found) >= expected:
                # drain a little longer: more than expected is a failure to see
                for records in (await consumer.getmany(timeout_ms=1000)).values():
                    found.extend(records)
                break
    finally:
        await consumer.stop()
    return found


def compare(got: dict, expected: dict) -> list[str]:
    """Human-readable differences between two view snapshots (empty when equal)."""
    problems = []
    for view in expected:
        keys = set(got.get(view, {})) | set(expected[view])
        for key in sorted(keys, key=repr):
            a, b = got.get(view, {}).get(key), expected[view].get(key)
            if a != b:
                if a is None or b is None:
                    problems.append(f"{view}[{key!r}]: worker {a!r} oracle {b!r}")
                else:
                    fields = {f: (a.get(f), b.get(f)) for f in b if a.get(f) != b.get(f)}
                    problems.append(f"{view}[{key!r}]: {fields}")
    return problems


def records_of(log: Iterable) -> list[tuple[str, bytes | None, bytes | None]]:
    """The ``(topic, key, value)`` records of an adversarial log, for :func:`publish`."""
    return [(r.topic.value, r.key, r.value) for r in log]


def fold_log(settings: Settings, log: Iterable, worker_log: Path, **extra: str) -> None:
    """Publish the records of an adversarial log, let one worker apply them all, stop it."""
    asyncio.run(publish(settings, records_of(log)))
    worker = Worker(settings, worker_log, **extra).start()
    try:
        wait_caught_up(settings, workers=[worker])
    finally:
        worker.stop()
