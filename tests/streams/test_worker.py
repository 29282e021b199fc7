"""The worker on the real stack: a seeded adversarial log in, the oracle's views out, exactly once."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from cohortflow.settings import Settings, env_name
from tests import oracle
from tests.logs import adversarial_log, expected_deadletters, valid_events
from tests.streams.harness import (
    Worker,
    compare,
    deadletters,
    fold_log,
    publish,
    records_of,
    redis_badges,
    stored_offsets,
    views,
    wait_caught_up,
)
from views.fold import Fold, State  # noqa: F401  (imported so a broken fold fails collection loudly)


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

    from streams.processor import TAIL_FROM_BYTES

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
