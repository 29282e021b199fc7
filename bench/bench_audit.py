"""Benchmark of the audit trail (issue 7), on the local PostgreSQL: `make bench-audit`.

In one run, in a fresh schema:

- ingest: ``rows`` audit records over 12 months written by the worker's own write path
  (:func:`cohortflow.stores.audit.write`: COPY into a temp table, one INSERT ... ON CONFLICT into the
  partitions, one transaction per batch of ``--batch`` rows), rows/s;
- the worker end to end on ``--worker-records`` audit records published to Kafka (rows/s from its
  first commit to its last), beside the write path's rate;
- queries (via :func:`cohortflow.stores.audit.page`, the read API's query, on one connection): first page
  (50 rows) of "actor X, last 30 days" and of "entity Y, all time", p50/p99 over many X and Y;
- a cursor walk of 1,000 pages of 50 (filter: one action): page 1,000 against page 1, medians;
- archiving the oldest month (detach + move to the archive schema), and its restore; once more
  with the gzip JSON-lines export.

Results go to bench/results/audit-<date>.json and a table on stdout. `--rows 10000000` is the
stretch run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg
from psycopg import sql
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cohortflow.contract import encode, record_key  # noqa: E402
from cohortflow.contract.events import AuditRecorded, AuditRecordedData  # noqa: E402
from cohortflow.settings import Settings, load_settings  # noqa: E402
from cohortflow.stores import audit  # noqa: E402
from cohortflow.stores.audit import AuditFilter  # noqa: E402
from cohortflow.stores.migrate import migrate  # noqa: E402

console = Console()
RESULTS = ROOT / "bench" / "results"
START = datetime(2025, 12, 1, tzinfo=UTC)  # 12 months up to 2026-11-30
SPAN_US = 365 * 86_400_000_000
ACTIONS = [f"{verb}_{noun}" for verb in ("create", "update", "delete", "approve", "reject")
           for noun in ("submission", "review", "student", "mentor")]  # 20 actions
ENTITY_TYPES = ("submission", "review", "student", "mentor", "notification")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def events(count: int, seed: int, actors: int, entities: int, first: int = 0) -> list[AuditRecorded]:
    """``count`` audit events spread over 12 months (uniform time, Zipf-ish actors and entities)."""
    rnd = random.Random(seed * 1_000_003 + first)
    out = []
    for i in range(first, first + count):
        at = START + timedelta(microseconds=rnd.randrange(SPAN_US))
        actor = f"user-{int(actors * rnd.random() ** 2):06d}"
        etype = ENTITY_TYPES[rnd.randrange(len(ENTITY_TYPES))]
        meta = {"ip": f"10.0.{rnd.randrange(256)}.{rnd.randrange(256)}", "field": "status",
                "from": "pending", "to": "approved"} if rnd.random() < 0.7 else None
        out.append(AuditRecorded(event_id=f"audit-{i:010d}", occurred_at=at, source="bench",
                                 data=AuditRecordedData(actor_id=actor, action=ACTIONS[rnd.randrange(len(ACTIONS))],
                                                        entity_type=etype,
                                                        entity_id=f"{etype[:3]}-{rnd.randrange(entities):08d}",
                                                        metadata=meta)))
    return out


async def ingest(settings: Settings, total: int, batch: int, seed: int, actors: int, entities: int) -> float:
    """Write ``total`` rows through audit.write; return rows/s of the writes (generation not counted)."""
    spent = 0.0
    with Progress(TextColumn("ingest"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                  TimeRemainingColumn(), console=console) as progress:
        task = progress.add_task("ingest", total=total, rate="")
        async with await psycopg.AsyncConnection.connect(
                settings.postgres_url, options=f"-c search_path={settings.postgres_schema}") as conn:
            for first in range(0, total, batch):
                chunk = events(min(batch, total - first), seed, actors, entities, first)
                began = time.perf_counter()
                async with conn.transaction():
                    await audit.write(conn, chunk)
                spent += time.perf_counter() - began
                progress.update(task, advance=len(chunk), rate=f"{(first + len(chunk)) / spent:,.0f} rows/s")
    return total / spent


async def worker_rate(base: Settings, count: int) -> float:
    """The worker end to end on ``count`` audit records only (a fresh prefix, schema and group)."""
    from cohortflow.pipeline.topics import delete_topics, ensure_topics
    from tests.pipeline.harness import Worker, applied, publish

    tag = uuid.uuid4().hex[:8]
    settings = load_settings(topic_prefix=f"ba{tag}.", postgres_schema=f"bench_audit_w_{tag}",
                             consumer_group=f"ba{tag}", redis_prefix=f"ba{tag}:", partitions=base.partitions)
    await ensure_topics(settings)
    migrate(settings)
    recs = [("audit", record_key(e), encode(e)) for e in events(count, 99, 5_000, 50_000)]
    with console.status(f"publishing {count:,} audit records"):
        await publish(settings, recs)
    log = Path(tempfile.gettempdir()) / f"bench-audit-worker-{tag}.log"
    worker = Worker(settings, log).start()
    try:
        first_commit = last = None
        seen = first_count = 0
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            now_applied = await asyncio.to_thread(applied, settings)
            if now_applied > seen:
                last = time.monotonic()
                if first_commit is None:
                    first_commit, first_count = last, now_applied
                seen = now_applied
            if seen >= count:
                break
            await asyncio.sleep(0.05)
        rate = (seen - first_count) / (last - first_commit) if last and last > first_commit else float("nan")
    finally:
        worker.stop()
        from cohortflow.contract.topics import EVENT_TOPICS, topic_name

        await delete_topics(settings, [topic_name(settings.topic_prefix, t) for t in EVENT_TOPICS]
                            + [f"{settings.topic_prefix}deadletter"])
        with psycopg.connect(settings.postgres_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(settings.postgres_schema)))
    return rate


async def query_times(settings: Settings, filters: list[AuditFilter], repeat: int = 1) -> list[float]:
    """Milliseconds of a first page of 50 for each filter."""
    times = []
    async with await psycopg.AsyncConnection.connect(
            settings.postgres_url, options=f"-c search_path={settings.postgres_schema}", autocommit=True) as conn:
        for flt in filters[:5]:  # warm the connection and the plans
            await audit.page(conn, settings.postgres_schema, flt, limit=50, cursor=None)
        for _ in range(repeat):
            for flt in filters:
                began = time.perf_counter()
                await audit.page(conn, settings.postgres_schema, flt, limit=50, cursor=None)
                times.append((time.perf_counter() - began) * 1000)
    return times


async def cursor_walk(settings: Settings, flt: AuditFilter, pages: int, repeat: int) -> tuple[float, float, int]:
    """Median ms of page 1 and of page ``pages`` (re-read ``repeat`` times), and the rows walked."""
    async with await psycopg.AsyncConnection.connect(
            settings.postgres_url, options=f"-c search_path={settings.postgres_schema}", autocommit=True) as conn:
        cursor, walked, last_cursor = None, 0, None
        with Progress(TextColumn("cursor walk"), BarColumn(), MofNCompleteColumn(), console=console) as progress:
            task = progress.add_task("walk", total=pages)
            for n in range(1, pages + 1):
                if n == pages:
                    last_cursor = cursor
                found = await audit.page(conn, settings.postgres_schema, flt, limit=50, cursor=cursor)
                walked += len(found.rows)
                cursor = found.next_cursor
                progress.advance(task)
                if cursor is None:
                    break
        if n < pages:
            raise SystemExit(f"the filter has only {n} pages of 50; use more --rows")

        async def timed(c: str | None) -> float:
            began = time.perf_counter()
            await audit.page(conn, settings.postgres_schema, flt, limit=50, cursor=c)
            return (time.perf_counter() - began) * 1000

        first = [await timed(None) for _ in range(repeat)]
        last = [await timed(last_cursor) for _ in range(repeat)]
    return statistics.median(first), statistics.median(last), walked


def archive_month(settings: Settings, export: Path | None) -> tuple[float, int, float]:
    """Seconds to archive the oldest month (detach + move, or with the export), rows, seconds to restore."""
    with psycopg.connect(settings.postgres_url, autocommit=True,
                         options=f"-c search_path={settings.postgres_schema}") as conn:
        months = sorted(s.month for s in audit.stats(conn, settings.postgres_schema) if s.attached and s.rows)
        oldest = months[0]
        # A horizon that lets exactly the oldest month go.
        end = audit.next_month(oldest)
        now = datetime(end.year, end.month, 1, tzinfo=UTC) + timedelta(days=1)
        began = time.perf_counter()
        done = audit.archive(conn, settings.postgres_schema, timedelta(days=1), export_to=export, now=now)
        took = time.perf_counter() - began
        assert [a.month for a in done] == [oldest], done
        began = time.perf_counter()
        audit.restore(conn, settings.postgres_schema, oldest)
        restored = time.perf_counter() - began
    return took, done[0].rows, restored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="audit rows to load (10000000: stretch run)")
    parser.add_argument("--batch", type=int, default=20_000, help="rows per write transaction (the worker's batch)")
    parser.add_argument("--actors", type=int, default=2_000, help="distinct actors")
    parser.add_argument("--entities", type=int, default=100_000, help="distinct entities per type")
    parser.add_argument("--queries", type=int, default=400, help="first-page queries per kind")
    parser.add_argument("--pages", type=int, default=1_000, help="pages of the cursor walk")
    parser.add_argument("--worker-records", type=int, default=200_000,
                        help="audit records for the end-to-end worker run (0: skip)")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark schema afterwards")
    args = parser.parse_args()

    base = load_settings()
    settings = load_settings(postgres_schema=f"bench_audit_{uuid.uuid4().hex[:8]}")
    migrate(settings)
    began = time.monotonic()
    results: dict = {"rows": args.rows, "batch": args.batch, "actors": args.actors,
                     "entities_per_type": args.entities, "started": datetime.now(UTC).isoformat()}
    try:
        results["ingest_rows_per_s"] = asyncio.run(
            ingest(settings, args.rows, args.batch, 1, args.actors, args.entities))
        with psycopg.connect(settings.postgres_url, autocommit=True,
                             options=f"-c search_path={settings.postgres_schema}") as conn, \
                console.status("VACUUM ANALYZE"):
            conn.execute("VACUUM ANALYZE audit_log")
        rnd = random.Random(7)
        newest = START + timedelta(microseconds=SPAN_US)
        actor_filters = [AuditFilter(actor_id=f"user-{int(args.actors * rnd.random() ** 2):06d}",
                                     since=newest - timedelta(days=30)) for _ in range(args.queries)]
        entity_filters = []
        for _ in range(args.queries):
            etype = ENTITY_TYPES[rnd.randrange(len(ENTITY_TYPES))]
            entity_filters.append(AuditFilter(entity_type=etype,
                                              entity_id=f"{etype[:3]}-{rnd.randrange(args.entities):08d}"))
        with console.status("first pages: actor X, last 30 days; entity Y, all time"):
            actor_ms = asyncio.run(query_times(settings, actor_filters))
            entity_ms = asyncio.run(query_times(settings, entity_filters))
        results["actor_30d_first_page_ms"] = {"p50": percentile(actor_ms, 50), "p99": percentile(actor_ms, 99)}
        results["entity_all_time_first_page_ms"] = {"p50": percentile(entity_ms, 50), "p99": percentile(entity_ms, 99)}
        page1, page_n, walked = asyncio.run(cursor_walk(settings, AuditFilter(action=ACTIONS[3]), args.pages, 51))
        results["cursor_walk"] = {"pages": args.pages, "rows_walked": walked, "page_1_ms": page1,
                                  f"page_{args.pages}_ms": page_n, "ratio": page_n / page1}
        with console.status("archiving the oldest month (detach + move), then restoring it"):
            took, rows, back = archive_month(settings, None)
        results["archive_month"] = {"rows": rows, "seconds": took, "restore_seconds": back}
        with tempfile.TemporaryDirectory() as tmp, console.status("again with the gzip JSON-lines export"):
            took, rows, back = archive_month(settings, Path(tmp))
        results["archive_month_with_export"] = {"rows": rows, "seconds": took, "restore_seconds": back}
        if args.worker_records:
            results["worker_audit_rows_per_s"] = asyncio.run(worker_rate(base, args.worker_records))
    finally:
        if not args.keep:
            with psycopg.connect(settings.postgres_url, autocommit=True) as conn:
                for schema in (settings.postgres_schema, audit.archive_schema(settings.postgres_schema)):
                    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
    results["seconds"] = time.monotonic() - began

    table = Table("figure", "value", "target")
    table.add_row("ingest (write path)", f"{results['ingest_rows_per_s']:,.0f} rows/s", ">= 50,000 rows/s")
    if "worker_audit_rows_per_s" in results:
        table.add_row("ingest (worker, Kafka -> audit_log)", f"{results['worker_audit_rows_per_s']:,.0f} rows/s", "")
    a, e = results["actor_30d_first_page_ms"], results["entity_all_time_first_page_ms"]
    table.add_row("actor X, last 30 days, page 1", f"p50 {a['p50']:.2f} ms, p99 {a['p99']:.2f} ms", "p99 <= 20 ms")
    table.add_row("entity Y, all time, page 1", f"p50 {e['p50']:.2f} ms, p99 {e['p99']:.2f} ms", "p99 <= 20 ms")
    w = results["cursor_walk"]
    table.add_row(f"page {args.pages} vs page 1", f"{w[f'page_{args.pages}_ms']:.2f} / {w['page_1_ms']:.2f} ms = "
                  f"{w['ratio']:.2f}x", "<= 2x")
    m, x = results["archive_month"], results["archive_month_with_export"]
    table.add_row("archive one month",
                  f"{m['seconds']:.2f} s ({m['rows']:,} rows; restore {m['restore_seconds']:.2f} s)", "< 5 s")
    table.add_row("archive one month + export", f"{x['seconds']:.2f} s (restore {x['restore_seconds']:.2f} s)", "")
    console.print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"audit-{date.today().isoformat()}{'' if args.rows == 1_000_000 else f'-{args.rows}'}.json"
    path.write_text(json.dumps(results, indent=2))
    console.print(f"results: {path.relative_to(ROOT)} ({results['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
