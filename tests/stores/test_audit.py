"""The audit trail on the real stack: exactly once through the worker, keyset pages, archive and restore."""

from __future__ import annotations

import asyncio
import random
import re
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from cohortflow.contract.events import AuditRecorded, AuditRecordedData
from cohortflow.settings import Settings
from cohortflow.stores import audit
from cohortflow.stores.audit import AuditError, AuditFilter, BadAuditQuery
from tests import oracle
from tests.logs import adversarial_log, valid_events
from tests.pipeline.harness import Worker, applied, publish, records_of, wait_caught_up

pytestmark = pytest.mark.integration

ROW = ("event_id", "occurred_at", "actor_id", "action", "entity_type", "entity_id", "metadata", "source")


def connect(settings: Settings, **kwargs) -> psycopg.Connection:
    return psycopg.connect(settings.postgres_url, options=f"-c search_path={settings.postgres_schema}", **kwargs)


def stored(settings: Settings) -> list[tuple]:
    """Every audit row as (event_id, occurred_at, actor, action, entity_type, entity_id, metadata, source)."""
    with connect(settings) as conn:
        return conn.execute(f"SELECT {', '.join(ROW)} FROM audit_log ORDER BY event_id").fetchall()


def expected_rows(events) -> list[tuple]:
    audits = [e for e in oracle.dedupe(events) if isinstance(e, AuditRecorded)]
    return sorted((e.event_id, e.occurred_at, e.data.actor_id, e.data.action, e.data.entity_type, e.data.entity_id,
                   e.data.metadata, e.source) for e in audits)


def months_of(settings: Settings) -> dict[str, int]:
    with connect(settings) as conn:
        return {s.name: s.rows for s in audit.stats(conn, settings.postgres_schema) if s.attached}


def test_worker_writes_each_audit_record_once_across_months_late_records_and_sigkills(stack: Settings,
                                                                                      tmp_path: Path) -> None:
    # Two weeks around a month boundary: re-sent records (same event_id, days later), late ones, both months.
    log = adversarial_log(seed=31, size=30_000, contract=stack.contract, start=datetime(2026, 10, 24, tzinfo=UTC))
    events = valid_events(log)
    audits = [e for e in events if isinstance(e, AuditRecorded)]
    assert len(audits) > len({e.event_id for e in audits}), "the log must re-send audit records"
    assert {e.occurred_at.month for e in audits} == {10, 11}
    total = asyncio.run(publish(stack, records_of(log)))
    extra = {"COHORTFLOW_BATCH_MAX_RECORDS": "1500"}
    rnd = random.Random(5)
    worker = Worker(stack, tmp_path / "worker.log", **extra).start()
    kills = 0
    try:
        while kills < 4 and applied(stack) < total:
            time.sleep(rnd.uniform(0.5, 1.5))
            worker.kill()
            kills += 1
            worker = Worker(stack, tmp_path / "worker.log", **extra).start()
        wait_caught_up(stack, timeout=240, workers=[worker])
    finally:
        worker.stop()
    assert kills >= 2, "the worker caught up before it could be killed mid-ingest"
    got = stored(stack)
    assert len(got) == len({r[0] for r in got})
    assert got == expected_rows(events)
    months = months_of(stack)
    assert months["audit_log_y2026m10"] > 0 and months["audit_log_y2026m11"] > 0


def _event(i: int, at: datetime, actor: str = "a1", entity: tuple[str, str] = ("submission", "s1"),
           action: str = "update", metadata: dict | None = None) -> AuditRecorded:
    return AuditRecorded(event_id=f"e{i:07d}", occurred_at=at, source="tests",
                         data=AuditRecordedData(actor_id=actor, action=action, entity_type=entity[0],
                                                entity_id=entity[1], metadata=metadata))


def insert(settings: Settings, events: list[AuditRecorded]) -> int:
    async def go() -> int:
        async with await psycopg.AsyncConnection.connect(
                settings.postgres_url, options=f"-c search_path={settings.postgres_schema}") as conn:
            async with conn.transaction():
                return await audit.write(conn, events)
    return asyncio.run(go())


def walk(settings: Settings, flt: AuditFilter, limit: int, between=None) -> list[dict]:
    async def go() -> list[dict]:
        out: list[dict] = []
        cursor = None
        async with await psycopg.AsyncConnection.connect(
                settings.postgres_url, options=f"-c search_path={settings.postgres_schema}", autocommit=True) as conn:
            while True:
                found = await audit.page(conn, settings.postgres_schema, flt, limit=limit, cursor=cursor)
                out.extend(found.rows)
                if found.next_cursor is None:
                    return out
                cursor = found.next_cursor
                if between:
                    await asyncio.to_thread(between, len(out))  # writes from another connection
    return asyncio.run(go())


def test_a_write_is_idempotent_and_creates_the_partitions_it_needs(stack: Settings) -> None:
    old = datetime(2019, 3, 31, 23, 59, 59, 999999, tzinfo=UTC)  # years late: a partition made on need
    batch = [_event(1, old), _event(2, old + timedelta(microseconds=1), metadata={"z": 1, "a": [1.5, None]})]
    assert insert(stack, batch) == 2
    assert insert(stack, batch) == 0
    assert set(months_of(stack)) >= {"audit_log_y2019m03", "audit_log_y2019m04"}
    rows = walk(stack, AuditFilter(), limit=10)
    assert [r["event_id"] for r in rows] == ["e0000002", "e0000001"]
    assert list(rows[0]["metadata"]) == ["z", "a"] and rows[0]["metadata"] == {"z": 1, "a": [1.5, None]}
    assert rows[1]["metadata"] is None


def test_pages_return_every_row_exactly_once_while_rows_keep_arriving(stack: Settings) -> None:
    rnd = random.Random(3)
    base = datetime(2026, 9, 1, tzinfo=UTC)
    actors = ["a1", "a2", "a3"]
    events = [_event(i, base + timedelta(seconds=rnd.randrange(90 * 86400), microseconds=rnd.choice([0, 7])),
                     actor=rnd.choice(actors), entity=("submission", f"s{rnd.randrange(20)}"),
                     action=rnd.choice(["create", "update", "delete"])) for i in range(3000)]
    insert(stack, events)
    later = iter(range(10_000, 20_000))

    def more(_: int) -> None:  # newer rows and a few late ones land between page reads
        at = [base + timedelta(days=100, seconds=rnd.randrange(1000)) for _ in range(20)]
        at += [base + timedelta(seconds=rnd.randrange(90 * 86400)) for _ in range(3)]
        insert(stack, [_event(next(later), t, actor=rnd.choice(actors)) for t in at])

    for flt in (AuditFilter(), AuditFilter(actor_id="a2"), AuditFilter(entity_type="submission", entity_id="s4"),
                AuditFilter(action="delete", since=base + timedelta(days=30), until=base + timedelta(days=60))):
        before = [e for e in events if _matches(e, flt)]
        seen = walk(stack, flt, limit=37, between=more)
        ids = [r["event_id"] for r in seen]
        assert len(ids) == len(set(ids)), f"{flt}: a row came twice"
        assert {e.event_id for e in before} <= set(ids), f"{flt}: a row present from the start was skipped"
        keys = [(r["occurred_at"], r["event_id"]) for r in seen]
        assert keys == sorted(keys, reverse=True), "newest first"
        assert all(_matches_row(r, flt) for r in seen)


def _matches(e: AuditRecorded, flt: AuditFilter) -> bool:
    d = e.data
    return ((flt.actor_id is None or d.actor_id == flt.actor_id) and (flt.action is None or d.action == flt.action)
            and (flt.entity_id is None or (d.entity_type, d.entity_id) == (flt.entity_type, flt.entity_id))
            and (flt.since is None or e.occurred_at >= flt.since) and (flt.until is None or e.occurred_at < flt.until))


def _matches_row(r: dict, flt: AuditFilter) -> bool:
    return _matches(_event(0, r["occurred_at"], r["actor_id"], (r["entity_type"], r["entity_id"]), r["action"]), flt)


@pytest.mark.parametrize(("flt", "cursor", "limit", "parameter"), [
    (AuditFilter(), None, 0, "limit"),
    (AuditFilter(), None, 1001, "limit"),
    (AuditFilter(), "not-a-cursor", 10, "cursor"),
    (AuditFilter(entity_id="s1"), None, 10, "entity_type"),
    (AuditFilter(since=datetime(2026, 2, 1, tzinfo=UTC), until=datetime(2026, 1, 1, tzinfo=UTC)), None, 10, "from"),
    (AuditFilter(since=datetime(2026, 2, 1)), None, 10, "from"),
    (AuditFilter(actor_id=""), None, 10, "actor_id"),
])
def test_bad_queries_name_the_parameter(stack: Settings, flt, cursor, limit, parameter) -> None:
    async def go() -> None:
        async with await psycopg.AsyncConnection.connect(
                stack.postgres_url, options=f"-c search_path={stack.postgres_schema}") as conn:
            await audit.page(conn, stack.postgres_schema, flt, limit=limit, cursor=cursor)
    with pytest.raises(BadAuditQuery) as caught:
        asyncio.run(go())
    assert caught.value.parameter == parameter


def test_a_cursor_is_refused_with_other_filters(stack: Settings) -> None:
    insert(stack, [_event(i, datetime(2026, 5, 1, tzinfo=UTC) + timedelta(minutes=i)) for i in range(5)])

    async def go() -> None:
        async with await psycopg.AsyncConnection.connect(
                stack.postgres_url, options=f"-c search_path={stack.postgres_schema}") as conn:
            first = await audit.page(conn, stack.postgres_schema, AuditFilter(actor_id="a1"), limit=2, cursor=None)
            assert first.next_cursor
            with pytest.raises(BadAuditQuery, match="other filters"):
                await audit.page(conn, stack.postgres_schema, AuditFilter(actor_id="a2"), limit=2,
                                 cursor=first.next_cursor)
    asyncio.run(go())


def _months_rows(settings: Settings) -> list[tuple]:
    with connect(settings) as conn:
        return conn.execute(f"SELECT {', '.join(ROW)}, metadata::text FROM audit_log ORDER BY occurred_at, event_id"
                            ).fetchall()


def test_archive_then_restore_gives_back_identical_rows(stack: Settings, tmp_path: Path) -> None:
    rnd = random.Random(9)
    events = [_event(i, datetime(2026, 6, 1, tzinfo=UTC) + timedelta(seconds=rnd.randrange(120 * 86400)),
                     actor=f"a{rnd.randrange(5)}", metadata={"i": i, "note": "é\u2028", "n": None} if i % 3 else None)
              for i in range(4000)]
    insert(stack, events)
    original = _months_rows(stack)
    now = datetime(2026, 11, 23, tzinfo=UTC)
    with connect(stack, autocommit=True) as conn:
        done = audit.archive(conn, stack.postgres_schema, timedelta(days=90), now=now)
    # 90 days before 2026-11-23 is 2026-08-25: June and July ended before it, August did not.
    assert [a.month for a in done] == [date(2026, 6, 1), date(2026, 7, 1)]
    left = _months_rows(stack)
    assert left == [r for r in original if r[1] >= datetime(2026, 8, 1, tzinfo=UTC)]
    with connect(stack, autocommit=True) as conn:
        archived = {s.name: s.rows for s in audit.stats(conn, stack.postgres_schema) if not s.attached}
    assert archived == {"audit_log_y2026m06": done[0].rows, "audit_log_y2026m07": done[1].rows}
    assert sum(archived.values()) == len(original) - len(left)

    # A late record for an archived month gets a fresh partition; restore merges it in.
    late = _event(99_999, datetime(2026, 6, 15, tzinfo=UTC), metadata={"late": True})
    insert(stack, [late])
    with connect(stack, autocommit=True) as conn:
        audit.restore(conn, stack.postgres_schema, date(2026, 6, 1))
        audit.restore(conn, stack.postgres_schema, date(2026, 7, 1))
        with pytest.raises(AuditError, match="not in"):
            audit.restore(conn, stack.postgres_schema, date(2026, 7, 1))
    restored = _months_rows(stack)
    assert [r for r in restored if r[0] != late.event_id] == original
    assert len(restored) == len(original) + 1


def test_archive_to_files_and_drop_then_restore_from_files(stack: Settings, tmp_path: Path) -> None:
    events = [_event(i, datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=7 * i), actor=f"a{i % 4}",
                     metadata={"k": [i, "x"], "nested": {"b": 1, "a": 2}}) for i in range(600)]
    insert(stack, events)
    original = _months_rows(stack)
    now = datetime(2026, 11, 23, tzinfo=UTC)
    with connect(stack, autocommit=True) as conn:
        with pytest.raises(AuditError, match="--drop needs"):
            audit.archive(conn, stack.postgres_schema, timedelta(days=90), drop=True, now=now)
        done = audit.archive(conn, stack.postgres_schema, timedelta(days=90), export_to=tmp_path, drop=True, now=now)
    assert done and all(a.dropped and a.file and a.file.exists() for a in done)
    assert sum(a.rows for a in done) == len(original)
    assert _months_rows(stack) == []

    # A damaged export is refused, nothing changes.
    victim = done[0].file
    good = victim.read_bytes()
    victim.write_bytes(good[:-3] + b"\x00\x00\x00")
    with connect(stack, autocommit=True) as conn, pytest.raises(AuditError, match="damaged"):
        audit.restore(conn, stack.postgres_schema, done[0].month, from_dir=tmp_path)
    victim.write_bytes(good)

    with connect(stack, autocommit=True) as conn:
        for a in done:
            audit.restore(conn, stack.postgres_schema, a.month, from_dir=tmp_path)
    assert _months_rows(stack) == original
    with connect(stack) as conn:  # restored partitions are real partitions, with the key
        assert conn.execute("SELECT count(*) FROM pg_indexes WHERE schemaname = %s AND tablename = %s",
                            [stack.postgres_schema, audit.partition_name(done[0].month)]).fetchone()[0] >= 4
    assert insert(stack, events[:10]) == 0


def test_queries_use_the_indexes(stack: Settings) -> None:
    insert(stack, [_event(i, datetime(2026, 3, 1, tzinfo=UTC) + timedelta(minutes=i), actor=f"a{i % 50}",
                          entity=("submission", f"s{i % 200}"), action=["c", "u", "d"][i % 3]) for i in range(20000)])
    with connect(stack) as conn:
        conn.execute("ANALYZE audit_log")
        for flt, index in ((AuditFilter(actor_id="a7", since=datetime(2026, 3, 5, tzinfo=UTC)), "audit_log_by_actor"),
                           (AuditFilter(entity_type="submission", entity_id="s9"), "by_entity"),
                           (AuditFilter(action="d"), "by_action")):
            query, params = audit._page_query(flt, None, 50)
            plan = "\n".join(r[0] for r in conn.execute(sql.SQL("EXPLAIN ") + query, params))
            assert "Index" in plan and "Seq Scan" not in plan, plan
            assert not re.search(r"(^|->)\s*Sort\s+\(", plan, re.M), (
                f"{index}: sorts instead of reading in order\n{plan}")


def test_the_audit_commands_archive_restore_and_show_stats(stack: Settings, tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.pipeline.harness import ROOT, environment

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "cohortflow.cli", "audit", *args], cwd=ROOT, text=True,
                              capture_output=True, env={**environment(stack), "COLUMNS": "200"}, timeout=120)

    old = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0) - timedelta(days=200)
    insert(stack, [_event(i, old + timedelta(hours=i)) for i in range(50)])
    month = f"{old:%Y-%m}"
    stats = run("stats")
    assert stats.returncode == 0, stats.stderr
    assert f"audit_log_y{old:%Y}m{old:%m}" in stats.stdout and "live" in stats.stdout
    done = run("archive", "--older-than", "90d", "--export", str(tmp_path), "--drop")
    assert done.returncode == 0, done.stderr
    assert f"{month}: 50 rows archived" in done.stdout and "table dropped" in done.stdout
    assert _months_rows(stack) == []
    bad = run("restore", month)
    assert bad.returncode == 4 and "--from DIR" in bad.stderr
    back = run("restore", month, "--from", str(tmp_path))
    assert back.returncode == 0, back.stderr
    assert f"{month}: 50 rows back" in back.stdout
    assert len(_months_rows(stack)) == 50
