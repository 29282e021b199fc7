"""Benchmark of `cohortflow rebuild` (issue 6), on the local stack: `make bench-rebuild`.

Publishes ``--records`` records of the realistic cohort log (bench/bench_worker.py's cached
workload, 1,000,000 by default, 50,000 students) to fresh topics, then times
:func:`cohortflow.pipeline.rebuild.rebuild` (what `cohortflow rebuild` runs: replay every topic to its end,
fold in memory, write a fresh shadow schema) and reports records/s. Target: 1,000,000 in <= 30 s.

``--full`` also rebuilds 10,000,000 records and compares its rate with the 1M rate (target:
within 20%). The 10M log is the 1M log published ten times with every event_id made unique
(``-r<i>`` appended) and event times shifted by 14 days per copy, so it is a 140-day cohort,
not ten copies the fold would deduplicate.

Results go to bench/results/rebuild-<date>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path

import orjson
import psycopg
from psycopg import sql
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_worker import workload  # noqa: E402
from bench.contenders import fast_publish  # noqa: E402
from cohortflow.contract.topics import EVENT_TOPICS, topic_name  # noqa: E402
from cohortflow.pipeline.rebuild import rebuild  # noqa: E402
from cohortflow.pipeline.topics import delete_topics, ensure_topics  # noqa: E402
from cohortflow.settings import Settings, load_settings  # noqa: E402
from cohortflow.stores.migrate import migrate  # noqa: E402

console = Console()
RESULTS = ROOT / "bench" / "results"


def copy_of(records: list, i: int) -> list:
    """The log again with event_ids made unique and times moved ``14 * i`` days on."""
    if i == 0:
        return records
    shift = timedelta(days=14 * i)
    out = []
    for topic, key, value in records:
        try:
            event = orjson.loads(value) if value is not None else None
        except orjson.JSONDecodeError:
            event = None
        if isinstance(event, dict) and isinstance(event.get("event_id"), str):
            event["event_id"] += f"-r{i}"
            try:
                at = datetime.fromisoformat(str(event["occurred_at"]).replace("Z", "+00:00"))
                event["occurred_at"] = (at + shift).isoformat().replace("+00:00", "Z")
            except (KeyError, ValueError, TypeError):
                pass
            value = orjson.dumps(event)
        out.append((topic, key, value))
    return out


def one_run(base: Settings, records: list, copies: int) -> dict:
    tag = uuid.uuid4().hex[:8]
    settings = load_settings(topic_prefix=f"brb{tag}.", postgres_schema=f"bench_rebuild_{tag}",
                             redis_prefix=f"brb{tag}:", consumer_group=f"brb{tag}", partitions=base.partitions)
    total = len(records) * copies
    try:
        asyncio.run(ensure_topics(settings))
        migrate(settings)
        with console.status(f"publishing {total:,} records"):
            for i in range(copies):
                fast_publish(settings, copy_of(records, i))
        with Progress(TextColumn("rebuild"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                      TimeRemainingColumn(), console=console) as progress:
            task = progress.add_task("rebuild", total=total, rate="")
            began = time.perf_counter()

            def update(done: int, all_: int) -> None:
                progress.update(task, completed=done, total=all_,
                                rate=f"{done / max(time.perf_counter() - began, 1e-9):,.0f} records/s")

            result = rebuild(settings, progress=update)
            seconds = time.perf_counter() - began
        return {"records": total, "seconds": seconds, "records_per_s": total / seconds,
                "fold_and_replay_seconds": result.seconds,
                "load_average_after": Path("/proc/loadavg").read_text().split()[:3]}
    finally:
        asyncio.run(delete_topics(settings, [topic_name(settings.topic_prefix, t) for t in EVENT_TOPICS]
                                  + [f"{settings.topic_prefix}deadletter"]))
        with psycopg.connect(settings.postgres_url, autocommit=True) as conn:
            for schema in (settings.postgres_schema, f"{settings.postgres_schema}_rebuild"):
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000, help="records of the base log")
    parser.add_argument("--students", type=int, default=50_000)
    parser.add_argument("--full", action="store_true", help="also rebuild ten times the log (10,000,000 by default)")
    args = parser.parse_args()
    base = load_settings()
    records = workload(args.records, args.students, 21)
    results = {"date": date.today().isoformat(), "cores": os.cpu_count(),
               "load_average_before": Path("/proc/loadavg").read_text().split()[:3],
               "base": one_run(base, records, 1)}
    results["base"]["target_met"] = (results["base"]["seconds"] * 1_000_000 / results["base"]["records"]) <= 30
    if args.full:
        results["full"] = one_run(base, records, 10)
        results["full"]["rate_vs_base"] = results["full"]["records_per_s"] / results["base"]["records_per_s"]
        results["full"]["target_met"] = results["full"]["rate_vs_base"] >= 0.8
    table = Table("run", "records", "seconds", "records/s", "target")
    table.add_row("base", f"{results['base']['records']:,}", f"{results['base']['seconds']:.1f}",
                  f"{results['base']['records_per_s']:,.0f}", "1,000,000 in <= 30 s")
    if "full" in results:
        f = results["full"]
        table.add_row("full", f"{f['records']:,}", f"{f['seconds']:.1f}", f"{f['records_per_s']:,.0f} "
                      f"({f['rate_vs_base']:.0%} of base)", "within 20% of base")
    console.print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"rebuild-{date.today().isoformat()}{'' if args.records == 1_000_000 else f'-{args.records}'}.json"
    path.write_text(json.dumps(results, indent=2))
    console.print(f"results: {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
