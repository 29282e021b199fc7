"""The worker on the real stack: a seeded adversarial log in, the oracle's views out, exactly once."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import psycopg
import pytest

from cohortflow.core.fold import Fold, State  # noqa: F401  (imported so a broken fold fails collection loudly)
from cohortflow.settings import Settings, env_name
from tests import oracle
from tests.logs import adversarial_log, expected_deadletters, valid_events
from tests.pipeline.harness import (
    Worker,
    applied,
    compare,
    deadletters,
    fold_log,
    free_port,
    publish,
    records_of,
    redis_badges,
    stored_offsets,
    views,
    wait_caught_up,
)


def expected_badges(events) -> dict[str, dict[str, int]]:
    return {u: b for u, b in oracle.badges(events).items() if b != {"unread": 0}}


def assert_views_match(settings: Settings, events) -> None:
    problems = compare(views(settings), oracle.recompute(events, settings.pillars))
    assert not problems, f"{len(problems)} differences, first ones:\n" + "\n".join(problems[:15])


@pytest.fixture
def logs_dir(tmp_path: Path) -> Path:
    return tmp_path


def test_adversarial_log_of_50000_records_gives_the_oracle_views(stack: Settings, logs_dir: Path) -> None:
    log = adversarial_log(seed=7, size=50_000, contract=stack.contract)
    asyncio.run(publish(stack, records_of(log)))
    worker = Worker(stack, logs_dir / "worker.log").start()
    try:
        wait_caught_up(stack, timeout=240, workers=[worker])
        events = valid_events(log)
        assert_views_match(stack, events)

        # The deadletter topic holds exactly the invalid records, each once, with its reason and origin.
        expected = expected_deadletters(log)
        found = asyncio.run(deadletters(stack, expected=len(expected)))
        got = Counter((r.key, r.value, dict(r.headers)["reason"].decode()) for r in found)
        assert got == Counter((rec.key, rec.value, reason.value) for rec, reason in expected)
        for record in found:
            headers = dict(record.headers)
            assert headers["source_topic"].decode().startswith(stack.topic_prefix)
            assert int(headers["source_offset"]) >= 0 and headers["detail"]

        # Redis holds the badges PostgreSQL holds (absolute values, after the commit).
        wanted = expected_badges(events)
        got_badges = {u: b for u, b in redis_badges(stack).items() if b != {"unread": 0}}
        assert got_badges == wanted
    finally:
        worker.stop()


def test_a_restart_resumes_from_the_stored_offsets_without_replaying(stack: Settings, logs_dir: Path) -> None:
    first = adversarial_log(seed=11, size=3_000, contract=stack.contract)
    fold_log(stack, first, logs_dir / "worker.log")
    offsets = stored_offsets(stack)
    second = adversarial_log(seed=12, size=2_000, contract=stack.contract)
    fold_log(stack, second, logs_dir / "worker2.log")
    after = stored_offsets(stack)
    assert all(after[tp] >= offsets[tp] for tp in offsets)
    assert_views_match(stack, valid_events(first) + valid_events(second))


def test_large_entities_keep_tails_that_a_restart_replays(stack: Settings, logs_dir: Path) -> None:
    """Entities past 1 KB get events appended instead of their state rewritten; a cold worker replays them."""
    import psycopg

    from cohortflow.pipeline.processor import TAIL_FROM_BYTES

    log = adversarial_log(seed=13, size=12_000, students=25, contract=stack.contract)  # ~480 records a student
    half = len(log) // 2
    # Tails start at an entity's second batch: keep batches small, whatever one fetch could bring.
    batches = {env_name("batch_max_records"): "500"}
    fold_log(stack, log[:half], logs_dir / "worker.log", **batches)
    with psycopg.connect(stack.postgres_url, options=f"-c search_path={stack.postgres_schema}") as conn:
        tails = conn.execute("SELECT count(*), count(DISTINCT (kind, id)) FROM entity_tail").fetchone()
        large = conn.execute("SELECT count(*) FROM entity_state WHERE length(body) >= %s",
                             [TAIL_FROM_BYTES]).fetchone()[0]
    assert tails[0] > tails[1] > 0 and large > 0, (tails, large)
    assert_views_match(stack, valid_events(log[:half]))

    # A new worker loads every entity from its stored state and tail; the rest of the log builds on them.
    fold_log(stack, log[half:], logs_dir / "worker2.log", **batches)
    assert_views_match(stack, valid_events(log))
    wanted = expected_badges(valid_events(log))
    assert {u: b for u, b in redis_badges(stack).items() if b != {"unread": 0}} == wanted


def scrape(port: int) -> dict[str, float]:
    """The worker's unlabelled Prometheus samples."""
    import httpx

    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
            if line and not line.startswith("#") and "{" not in line}


@pytest.mark.parametrize(("cache", "batch"), [(500, 1000), (100, 5000)],
                         ids=["cache-500", "cache-smaller-than-a-batch"])
def test_a_cache_of_500_entities_gives_the_oracle_views_of_the_50000_record_log(
        stack: Settings, logs_dir: Path, cache: int, batch: int) -> None:
    """Far fewer entities fit in memory than the log names: the evicted ones are read back from PostgreSQL.

    With 5,000-record batches a batch names more entities than the cache holds: those of a batch stay until
    its commit ends (PostgreSQL still holds their previous states meanwhile), whatever the bound.
    """
    from cohortflow.core.fold import entity_key

    log = adversarial_log(seed=7, size=50_000, contract=stack.contract)
    events = valid_events(log)
    entities = len({entity_key(e) for e in events})
    assert entities > 5 * cache
    asyncio.run(publish(stack, records_of(log)))
    port = free_port()
    worker = Worker(stack, logs_dir / "worker.log", COHORTFLOW_CACHE_MAX_ENTITIES=str(cache),
                    COHORTFLOW_BATCH_MAX_RECORDS=str(batch), COHORTFLOW_METRICS_PORT=str(port)).start()
    try:
        # Hold a few commits up while the next batches load and fold: the entities of a commit in flight must
        # stay cached until it ends.
        for beyond in (10_000, 25_000):
            while applied(stack) < beyond:
                time.sleep(0.05)
            with psycopg.connect(stack.postgres_url, options=f"-c search_path={stack.postgres_schema}") as conn:
                conn.execute("LOCK TABLE global_counts IN EXCLUSIVE MODE")
                time.sleep(3)
        wait_caught_up(stack, timeout=600, workers=[worker])
        metrics = scrape(port)
        # A batch keeps its own entities until it commits: at most cache + batch stay.
        assert metrics["cohortflow_cache_entities"] <= cache + batch
        assert metrics["cohortflow_cache_evictions_total"] >= max(entities - cache - batch, entities // 2)
        assert_views_match(stack, events)
        assert {u: b for u, b in redis_badges(stack).items() if b != {"unread": 0}} == expected_badges(events)
    finally:
        worker.stop()
