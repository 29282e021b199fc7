"""Faults on the real stack; each ends with views equal to the batch recomputation (exactly once)."""

from __future__ import annotations

import asyncio
import random
import subprocess
import time
from pathlib import Path

from cohortflow.settings import Settings
from tests.logs import adversarial_log, valid_events
from tests.pipeline.harness import ROOT, Worker, applied, publish, records_of, redis_badges, wait_caught_up
from tests.pipeline.test_worker import assert_views_match, expected_badges
from tests.stores.test_audit import expected_rows as expected_audit_rows
from tests.stores.test_audit import stored as audit_rows


def services(*args: str) -> None:
    done = subprocess.run([str(ROOT / "dev" / "services"), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr


def wait_progress(settings: Settings, beyond: int, worker: Worker, timeout: float = 60) -> int:
    """Wait until more than ``beyond`` records are applied; return how many are."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = applied(settings)
        if now > beyond:
            return now
        assert worker.alive, worker.log.read_text()[-3000:]
        time.sleep(0.05)
    raise AssertionError(f"no progress beyond {beyond} in {timeout} s")


def test_sigkill_at_ten_random_moments_during_200000_records(stack: Settings, tmp_path: Path) -> None:
    log = adversarial_log(seed=21, size=200_000, contract=stack.contract)
    total = asyncio.run(publish(stack, records_of(log)))
    rnd = random.Random(2026)
    extra = {"COHORTFLOW_BATCH_MAX_RECORDS": "2000"}  # many commits: kills land between and inside them
    kills_mid_ingest, more = 0, 0
    worker = Worker(stack, tmp_path / "worker.log", **extra).start()
    try:
        done = 0
        while kills_mid_ingest < 10:
            if applied(stack) >= total:  # caught up before ten kills: keep the ingest going
                more += 1
                chunk = adversarial_log(seed=100 + more, size=20_000, contract=stack.contract)
                log += chunk
                total += asyncio.run(publish(stack, records_of(chunk)))
            done = wait_progress(stack, done, worker)
            time.sleep(rnd.uniform(0.0, 0.4))  # somewhere in fetching, folding, committing or writing Redis
            worker.kill()
            if applied(stack) < total:
                kills_mid_ingest += 1
            worker = Worker(stack, tmp_path / "worker.log", **extra).start()
        wait_caught_up(stack, timeout=300, workers=[worker])
        events = valid_events(log)
        assert_views_match(stack, events)
        assert {u: b for u, b in redis_badges(stack).items() if b != {"unread": 0}} == expected_badges(events)
        assert audit_rows(stack) == expected_audit_rows(events)  # the audit trail too: once each
    finally:
        worker.stop()


def test_redis_restarted_empty_mid_stream(stack: Settings, tmp_path: Path) -> None:
    log = adversarial_log(seed=22, size=30_000, contract=stack.contract)
    half = len(log) // 2
    asyncio.run(publish(stack, records_of(log[:half])))
    worker = Worker(stack, tmp_path / "worker.log").start()
    try:
        wait_caught_up(stack, workers=[worker])
        assert redis_badges(stack)
        services("down", "redis")
        services("up", "redis")
        assert redis_badges(stack) == {}  # restarted empty
        asyncio.run(publish(stack, records_of(log[half:])))
        wait_caught_up(stack, workers=[worker])
        events = valid_events(log)
        deadline = time.monotonic() + 30  # the restore runs with the next batches
        while time.monotonic() < deadline:
            got = {u: b for u, b in redis_badges(stack).items() if b != {"unread": 0}}
            if got == expected_badges(events):
                break
            time.sleep(0.2)
        assert got == expected_badges(events)
        assert_views_match(stack, events)
    finally:
        worker.stop()
        services("up", "redis")


def test_postgres_restarted_mid_stream(stack: Settings, tmp_path: Path) -> None:
    log = adversarial_log(seed=23, size=40_000, contract=stack.contract)
    asyncio.run(publish(stack, records_of(log)))
    worker = Worker(stack, tmp_path / "worker.log").start()
    try:
        wait_progress(stack, 0, worker)
        services("down", "postgresql")
        time.sleep(1)
        services("up", "postgresql")
        wait_caught_up(stack, timeout=180, workers=[worker])
        assert worker.alive
        assert_views_match(stack, valid_events(log))
    finally:
        worker.stop()
        services("up", "postgresql")


def test_two_workers_one_killed_during_ingest(stack: Settings, tmp_path: Path) -> None:
    log = adversarial_log(seed=24, size=60_000, contract=stack.contract)
    first = Worker(stack, tmp_path / "first.log").start()
    second = Worker(stack, tmp_path / "second.log").start()
    try:
        time.sleep(4)  # both in the group before the records arrive: they share the partitions
        asyncio.run(publish(stack, records_of(log)))
        wait_progress(stack, 5_000, first)
        first.kill()  # its partitions move to the second worker
        wait_caught_up(stack, timeout=240, workers=[second])
        assert_views_match(stack, valid_events(log))
    finally:
        first.stop()
        second.stop()


def test_sigkill_at_five_random_moments_with_a_cache_of_500_entities(stack: Settings, tmp_path: Path) -> None:
    """Crashes while most entities live only in PostgreSQL (evicted), some with tails, lose and repeat nothing."""
    log = adversarial_log(seed=25, size=50_000, contract=stack.contract)
    total = asyncio.run(publish(stack, records_of(log)))
    rnd = random.Random(2027)
    extra = {"COHORTFLOW_BATCH_MAX_RECORDS": "1000", "COHORTFLOW_CACHE_MAX_ENTITIES": "500"}
    worker = Worker(stack, tmp_path / "worker.log", **extra).start()
    try:
        done = 0
        for _ in range(5):
            done = wait_progress(stack, done, worker)
            if done >= total:
                break
            time.sleep(rnd.uniform(0.0, 0.4))
            worker.kill()
            worker = Worker(stack, tmp_path / "worker.log", **extra).start()
        wait_caught_up(stack, timeout=600, workers=[worker])
        events = valid_events(log)
        assert_views_match(stack, events)
        assert {u: b for u, b in redis_badges(stack).items() if b != {"unread": 0}} == expected_badges(events)
        assert audit_rows(stack) == expected_audit_rows(events)
    finally:
        worker.stop()
