"""Benchmark of the worker (issues 3 and 16), on the local stack: `make bench-worker`.

In one run, on the same records:

- raw ceiling: an aiokafka consumer group doing batch consume + orjson.loads, nothing else;
- the worker: `cohortflow worker --processes 1` from Kafka to committed views (time from its first
  commit to the last, so start-up is not counted), with a py-spy profile of one repetition;
- the same with `--processes 2` (every child in the group before the clock starts), and the ratio;
- freshness: p50/p99 of record published -> its offset committed with the views, at a steady rate;
- the worker's RSS once it holds the state of every student of the log.

Repetitions are medians; the ratio compares figures from the same process tree and minute.
Results go to bench/results/worker-<date>.json and a short table on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pickle
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections import deque
from datetime import UTC, datetime
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cohortflow.contract.topics import EVENT_TOPICS, topic_name  # noqa: E402
from cohortflow.pipeline.topics import delete_topics, ensure_topics  # noqa: E402
from cohortflow.settings import Settings, load_settings  # noqa: E402
from cohortflow.stores.migrate import migrate  # noqa: E402
from tests.logs import adversarial_log  # noqa: E402
from tests.pipeline.harness import Worker, applied, publish  # noqa: E402

console = Console()
CACHE = ROOT / "bench" / ".cache"
WARMUP = 5.0  # seconds of the freshness run not counted (cache warm-up after the worker starts)
RESULTS = ROOT / "bench" / "results"


def workload(size: int, students: int, seed: int) -> list[tuple[str, bytes | None, bytes | None]]:
    """A realistic cohort log (plus its adversarial 1%), cached on disk: generating 1M takes a minute."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"log-{seed}-{size}-{students}.pickle"
    if path.exists():
        return pickle.loads(path.read_bytes())
    with console.status(f"generating {size:,} records for {students:,} students (cached afterwards)"):
        records = [(r.topic.value, r.key, r.value) for r in adversarial_log(seed, size, students=students)]
    path.write_bytes(pickle.dumps(records))
    return records


def isolated(base: Settings, label: str) -> Settings:
    tag = uuid.uuid4().hex[:8]
    return load_settings(topic_prefix=f"bench{tag}.", postgres_schema=f"bench_{label}_{tag}",
                         redis_prefix=f"bench{tag}:", consumer_group=f"bench-{label}-{tag}",
                         partitions=base.partitions)


def _overrides(settings: Settings) -> dict:
    return {k: getattr(settings, k) for k in ("postgres_schema", "redis_prefix", "consumer_group", "partitions")}


async def raw_ceiling(settings: Settings, total: int) -> float:
    """Records/s of a bare consumer group: getmany in batches + orjson.loads of every value."""
    topics = [topic_name(settings.topic_prefix, t) for t in EVENT_TOPICS]
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=settings.kafka_bootstrap, group_id=f"raw-{uuid.uuid4()}",
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                max_partition_fetch_bytes=4 * 1024 * 1024, fetch_max_bytes=64 * 1024 * 1024)
    await consumer.start()
    seen, began = 0, None
    try:
        while seen < total:
            batch = await consumer.getmany(timeout_ms=1000, max_records=20_000)
            if batch and began is None:
                began = time.perf_counter()
            for records in batch.values():
                for record in records:
                    if record.value is not None:
                        try:
                            orjson.loads(record.value)
                        except orjson.JSONDecodeError:
                            pass
                seen += len(records)
    finally:
        await consumer.stop()
    return seen / (time.perf_counter() - began)


def rss(pid: int) -> int:
    try:
        return int(next(line.split()[1] for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                        if line.startswith("VmRSS"))) * 1024
    except (OSError, StopIteration):  # ended
        return 0


def worker_run(settings: Settings, total: int, log: Path, profile: Path | None, processes: int = 1
               ) -> tuple[float, int]:
    """Records/s of `cohortflow worker --processes N` from its first commit to its last, and its RSS (bytes,
    every process) at the end."""
    worker = Worker(settings, log, processes=processes).start()
    if processes > 1:  # the clock starts once every child is a member of the group (no rebalance inside it)
        from bench.contenders import wait_stable

        wait_stable(settings.kafka_bootstrap, settings.consumer_group, processes)
    spy = None
    try:
        with Progress(TextColumn("worker"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                      TimeRemainingColumn(), console=console, transient=True) as progress:
            task = progress.add_task("", total=total, rate="")
            while applied(settings) == 0:
                assert worker.alive, log.read_text()[-2000:]
                time.sleep(0.01)
            began, first = time.perf_counter(), applied(settings)
            if profile and shutil.which(str(ROOT / ".venv" / "bin" / "py-spy")):
                spy = subprocess.Popen([str(ROOT / ".venv" / "bin" / "py-spy"), "record", "--pid",
                                        str(worker.proc.pid), "--output", str(profile), "--duration", "15",
                                        "--nonblocking", "--rate", "100"], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
            done = first
            while done < total:
                assert worker.alive, log.read_text()[-2000:]
                time.sleep(0.05)
                done = applied(settings)
                elapsed = time.perf_counter() - began
                progress.update(task, completed=done, rate=f"{(done - first) / max(elapsed, 1e-9):,.0f}/s")
            rate = (total - first) / (time.perf_counter() - began)
        return rate, rss(worker.proc.pid) + sum(rss(pid) for pid in worker.children())
    finally:
        if spy:
            spy.wait(60)
        worker.stop()


async def freshness(settings: Settings, records: list, rate: int, seconds: float) -> list[float]:
    """Publish ``rate`` records/s; latency of each from its acknowledgement to its offset committed."""
    import psycopg

    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=True,
                                linger_ms=1, max_request_size=3 * 1024 * 1024)
    await producer.start()
    acked: dict[tuple[str, int], deque[tuple[int, float]]] = {}  # partition -> (offset, acked at), in order
    unseen = 0
    latencies: list[tuple[float, float]] = []  # (seconds into the run, latency)
    stop = asyncio.Event()

    async def watch() -> None:
        # Cheap per poll (only what got committed is touched): the watcher shares the 2 cores with the worker.
        nonlocal unseen
        async with await psycopg.AsyncConnection.connect(settings.postgres_url, autocommit=True,
                                                         options=f"-c search_path={settings.postgres_schema}") as conn:
            while not stop.is_set() or unseen:
                cur = await conn.execute("SELECT topic, partition, next_offset FROM consumer_offsets")
                offsets = {(t, p): n for t, p, n in await cur.fetchall()}
                now = time.perf_counter()
                for tp, waiting in acked.items():
                    committed = offsets.get(tp, 0)
                    while waiting and waiting[0][0] < committed:
                        _, at = waiting.popleft()
                        latencies.append((at - began, now - at))
                        unseen -= 1
                await asyncio.sleep(0.005)

    def on_ack(future: asyncio.Future) -> None:
        nonlocal unseen
        if not future.exception():
            meta = future.result()
            waiting = acked.setdefault((meta.topic, meta.partition), deque())
            entry = (meta.offset, time.perf_counter())
            if waiting and waiting[-1][0] > meta.offset:  # acks of one partition come in offset order; be safe
                waiting.append(entry)
                acked[(meta.topic, meta.partition)] = deque(sorted(waiting))
            else:
                waiting.append(entry)
            unseen += 1

    began = time.perf_counter()
    watcher = asyncio.create_task(watch())
    sent = 0
    try:
        while time.perf_counter() - began < seconds:
            due = int((time.perf_counter() - began) * rate)
            while sent < due and sent < len(records):
                topic, key, value = records[sent]
                future = await producer.send(topic_name(settings.topic_prefix, _topic(topic)), value, key=key)
                future.add_done_callback(on_ack)
                sent += 1
            await asyncio.sleep(0.002)
        sent_rate = sent / (time.perf_counter() - began)
        if sent_rate < 0.95 * rate:
            console.print(f"[yellow]freshness publisher reached only {sent_rate:,.0f}/s of {rate:,}/s[/]")
    finally:
        await producer.stop()
        stop.set()
        await asyncio.wait_for(watcher, timeout=120)
    return latencies


def _topic(name: str):
    from cohortflow.contract.topics import Topic

    return Topic(name)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000, help="records in the log [1,000,000]")
    parser.add_argument("--students", type=int, default=50_000, help="students in the cohort [50,000]")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions for the medians [3]")
    parser.add_argument("--fresh-rate", type=int, default=5_000, help="steady rate for freshness, records/s")
    parser.add_argument("--fresh-seconds", type=float, default=30, help="length of the freshness run")
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--processes", type=int, default=2, help="processes of the scale-out runs [2]")
    args = parser.parse_args()

    base = load_settings()
    records = workload(args.records, args.students, args.seed)
    total = len(records)
    topics_settings = isolated(base, "log")
    asyncio.run(ensure_topics(topics_settings))
    began = time.perf_counter()
    with console.status(f"publishing {total:,} records"):
        asyncio.run(publish(topics_settings, records))
    console.print(f"published {total:,} records in {time.perf_counter() - began:.1f} s")
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H%M%S")
    RESULTS.mkdir(parents=True, exist_ok=True)
    profile = RESULTS / f"worker-profile-{stamp}.svg"

    raw, rates, rss, multi, multi_rss = [], [], [], [], []
    schemas = []
    try:
        for i in range(args.repeat):
            raw.append(asyncio.run(raw_ceiling(topics_settings, total)))
            run = isolated(base, "w")
            run = load_settings(**{**_overrides(run), "topic_prefix": topics_settings.topic_prefix})
            migrate(run)
            schemas.append(run)
            rate, memory = worker_run(run, total, Path(f"/tmp/bench-worker-{i}.log"), profile if i == 0 else None)
            rates.append(rate)
            rss.append(memory)
            console.print(f"run {i + 1}: raw {raw[-1]:,.0f}/s, worker {rate:,.0f}/s, RSS {memory / 2**20:,.0f} MiB")
            run = isolated(base, "wn")
            run = load_settings(**{**_overrides(run), "topic_prefix": topics_settings.topic_prefix})
            migrate(run)
            schemas.append(run)
            rate, memory = worker_run(run, total, Path(f"/tmp/bench-worker-n{i}.log"), None, args.processes)
            multi.append(rate)
            multi_rss.append(memory)
            console.print(f"       --processes {args.processes}: {rate:,.0f}/s ({rate / rates[-1]:.2f}x),"
                          f" RSS {memory / 2**20:,.0f} MiB")

        # Freshness: a worker (one process) caught up on the whole log, then a steady stream.
        run = schemas[-2]
        fresh_records = workload(max(int(args.fresh_rate * (args.fresh_seconds + WARMUP)) + 1000, 500), 2_000,
                                 args.seed + 1)
        worker = Worker(run, Path("/tmp/bench-worker-fresh.log")).start()
        try:
            while applied(run) < total:
                time.sleep(0.1)
            with console.status(f"freshness at {args.fresh_rate:,}/s for {args.fresh_seconds:.0f} s"):
                timed = asyncio.run(freshness(run, fresh_records, args.fresh_rate, args.fresh_seconds + WARMUP))
            by_second = []
            for second in range(int(args.fresh_seconds + WARMUP)):
                bucket = [lat for at, lat in timed if second <= at < second + 1]
                if bucket:
                    by_second.append({"second": second, "p50_ms": 1000 * percentile(bucket, 50),
                                      "p99_ms": 1000 * percentile(bucket, 99), "n": len(bucket)})
                    console.print(f"  second {second:3d}: p50 {1000 * percentile(bucket, 50):6.0f} ms,"
                                  f" p99 {1000 * percentile(bucket, 99):6.0f} ms, n={len(bucket)}")
            # Steady state: the first seconds warm the cache after the worker's start.
            latencies = [lat for at, lat in timed if at >= WARMUP]
        finally:
            worker.stop()
    finally:
        asyncio.run(delete_topics(topics_settings, [topic_name(topics_settings.topic_prefix, t)
                                                    for t in EVENT_TOPICS]))
        import psycopg

        with psycopg.connect(base.postgres_url, autocommit=True) as conn:
            for run in schemas:
                conn.execute(f'DROP SCHEMA IF EXISTS "{run.postgres_schema}" CASCADE')

    result = {
        "date": stamp,
        "records": total,
        "students": args.students,
        "batch_max_records": base.batch_max_records,
        "raw_ceiling_per_s": statistics.median(raw),
        "worker_per_s": statistics.median(rates),
        "ratio": statistics.median(rates) / statistics.median(raw),
        "raw_runs": raw,
        "worker_runs": rates,
        "worker_rss_bytes": max(rss),
        "processes": args.processes,
        "multi_per_s": statistics.median(multi),
        "multi_runs": multi,
        "multi_ratio": statistics.median(multi) / statistics.median(rates),
        "multi_rss_bytes": max(multi_rss),
        "freshness_rate_per_s": args.fresh_rate,
        "freshness_p50_ms": 1000 * percentile(latencies, 50),
        "freshness_p99_ms": 1000 * percentile(latencies, 99),
        "freshness_max_ms": 1000 * max(latencies),
        "freshness_over_1s": sum(1 for lat in latencies if lat > 1.0),
        "freshness_samples": len(latencies),
        "freshness_warmup_seconds": WARMUP,
        "freshness_by_second": by_second,
        "profile": profile.name if profile.exists() else None,
        "targets": {"worker_per_s": 50_000, "multi_ratio": 1.7, "freshness_p99_ms": 250},
    }
    (RESULTS / f"worker-{stamp}.json").write_text(json.dumps(result, indent=2))
    table = Table("figure", "measured", "target")
    table.add_row("raw ceiling (median)", f"{result['raw_ceiling_per_s']:,.0f} records/s", "")
    table.add_row("worker, Kafka -> committed views", f"{result['worker_per_s']:,.0f} records/s", ">= 50,000")
    table.add_row("worker / raw", f"{result['ratio']:.1%}", "")
    table.add_row(f"--processes {args.processes}", f"{result['multi_per_s']:,.0f} records/s"
                  f" ({result['multi_ratio']:.2f}x one process)", ">= 1.7x")
    table.add_row(f"freshness p50 / p99 at {args.fresh_rate:,}/s",
                  f"{result['freshness_p50_ms']:.0f} / {result['freshness_p99_ms']:.0f} ms", "p99 <= 250 ms")
    table.add_row("freshness max (records over 1 s)",
                  f"{result['freshness_max_ms']:,.0f} ms ({result['freshness_over_1s']:,} of {len(latencies):,})", "")
    table.add_row(f"worker RSS, {args.students:,} students", f"{result['worker_rss_bytes'] / 2**20:,.0f} MiB"
                  f" (--processes {args.processes}: {result['multi_rss_bytes'] / 2**20:,.0f} MiB)", "")
    console.print(table)
    console.print(f"results: bench/results/worker-{stamp}.json" + (f", profile: {profile}" if profile.exists() else ""))


if __name__ == "__main__":
    main()
