"""Every benchmark of issue 8 in one run, each figure beside its baseline: `make bench` (`make bench-quick`).

1. fold throughput: `cohortflow worker` (Kafka -> committed views) vs the raw consume ceiling vs the
   Faust and Quix Streams peers (bench/peers/), 1 and 2 processes, the same log (bench/contenders.py);
2. freshness: record published -> its offset visible through the API's /v1/freshness (committed in
   the same transaction as the views), p50/p99 at 1,000, 5,000 and 20,000 records/s;
3. reads: the API's floor dashboard and mentor list vs the same figures computed live with SQL over
   normalised tables (bench/live_sql.py: 50,000 students, 1,000,000 submissions);
4. recompute: the cron job (every summary from the normalised tables) vs `cohortflow rebuild` from
   the topics vs the incremental cost (worker CPU seconds per 5 minutes of traffic at 1,000 records/s);
5. scaling: worker records/s and RSS at 10,000, 50,000 and 200,000 students (10 records each);
6. the latest rebuild-*, audit-*, api-* results other benchmarks wrote.

Writes bench/results/<date>.json and regenerates bench/REPORT.md with charts in bench/charts/ (bench/report.py);
--quick writes bench/results/<date>-quick.json and bench/REPORT-quick.md (charts in bench/charts/quick/), so a
smoke run never replaces the full report the README quotes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
from aiokafka import AIOKafkaProducer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import contenders, live_sql, report  # noqa: E402
from bench.bench_worker import raw_ceiling, workload  # noqa: E402
from bench.contenders import WARMUP, drop_schema, drop_topics, fast_publish, fresh_topics, peer_rate, worker_rate  # noqa: E402
from cohortflow.api import auth  # noqa: E402
from cohortflow.contract.topics import Topic, topic_name  # noqa: E402
from cohortflow.settings import Settings, load_settings  # noqa: E402
from cohortflow.stores.migrate import migrate  # noqa: E402
from tests.pipeline.harness import Worker, environment, wait_caught_up  # noqa: E402

console = Console()
RESULTS = ROOT / "bench" / "results"
# repeat: runs of the raw ceiling, the cohortflow worker and the cron recompute; peer_repeat: runs of each
# Faust / Quix configuration; scaling_repeat: runs per cohort size. Figures are the medians of the runs.
FULL = {"fold_log": (100_000, 10_000), "repeat": 3, "peer_repeat": 3, "scaling_repeat": 3, "peer_cap": 180,
        "fresh_rates": (1_000, 5_000, 20_000), "fresh_seconds": 20, "live": (50_000, 1_000_000), "reads": 200,
        "live_reads": 20, "scaling": (10_000, 50_000, 200_000), "warmup_timeout": 180}
QUICK = {"fold_log": (10_000, 1_000), "repeat": 1, "peer_repeat": 1, "scaling_repeat": 1, "peer_cap": 60,
         "fresh_rates": (1_000, 5_000, 20_000), "fresh_seconds": 4, "live": (5_000, 100_000), "reads": 30,
         "live_reads": 5, "scaling": (1_000, 2_000, 5_000), "warmup_timeout": 45}
RETRIES = 1  # extra runs a contender configuration gets when one fails (a failure is reported either way)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] if ordered else float("nan")


def progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console)


def contender_summary(runs: list, failures: list[str]) -> dict:
    """Median records/s of a configuration's runs (None if none finished), every run, and what failed."""
    if not runs:
        return {"records_per_s": None, "runs": [], "rss_bytes": 0, "capped": False, "failures": failures}
    return {"records_per_s": statistics.median(r.rate for r in runs), "runs": [r.__dict__ for r in runs],
            "rss_bytes": max(r.rss_bytes for r in runs), "capped": any(r.capped for r in runs),
            "failures": failures}


def fold_throughput(base: Settings, plan: dict) -> dict:
    records = workload(*plan["fold_log"], 21)
    log = fresh_topics(base, "raw")
    try:
        fast_publish(log, records)
        raw = [asyncio.run(raw_ceiling(log, len(records))) for _ in range(plan["repeat"])]
    finally:
        drop_topics(log)
    out = {"records": len(records), "students": plan["fold_log"][1], "raw_ceiling_per_s": statistics.median(raw),
           "raw_runs": raw, "contenders": {}}
    configurations = [(name, n) for name in ("cohortflow", "faust", "quix") for n in (1, 2)]
    with progress() as bar:
        task = bar.add_task("fold throughput", total=sum(plan["repeat"] if name == "cohortflow" else
                                                         plan["peer_repeat"] for name, _ in configurations))
        for name, processes in configurations:
            wanted = plan["repeat"] if name == "cohortflow" else plan["peer_repeat"]
            runs, failures = [], []
            while len(runs) < wanted and len(failures) <= RETRIES:
                bar.update(task, description=f"fold: {name} x{processes} run {len(runs) + 1}/{wanted}")
                try:
                    run = (worker_rate(base, records, processes, plan["peer_cap"]) if name == "cohortflow"
                           else peer_rate(name, base, records, processes, plan["peer_cap"]))
                except AssertionError as exc:  # a contender that never got going: say so, go on
                    failures.append(str(exc).splitlines()[0][:200])
                    bar.console.print(f"  {name} x{processes}: FAILED: {failures[-1]}")
                    continue
                runs.append(run)
                bar.advance(task)
                bar.console.print(f"  {name} x{processes}: {run.rate:,.0f} records/s"
                                  f"{' (capped)' if run.capped else ''}, RSS {run.rss_bytes / 2**20:,.0f} MiB")
            out["contenders"][f"{name}x{processes}"] = contender_summary(runs, failures)
    return out


async def _freshness(settings: Settings, port: int, token: str, records: list, rate: int, seconds: float) -> dict:
    """Publish ``rate`` records/s; latency of each from its ack to its offset visible in the API."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=True,
                                linger_ms=1, max_request_size=3 * 1024 * 1024)
    await producer.start()
    acked: list[tuple[str, int, int, float]] = []
    latencies: list[float] = []
    stop = asyncio.Event()

    async def watch() -> None:
        seen = 0
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}",
                                     headers={"Authorization": f"Bearer {token}"}) as client:
            while not stop.is_set() or seen < len(acked):
                body = (await client.get("/v1/freshness")).json()
                offsets = {(p["topic"], p["partition"]): p["committed_offset"] for p in body["partitions"]}
                now = time.perf_counter()
                pending = []
                for item in acked[seen:]:
                    if offsets.get(item[:2], 0) > item[2]:
                        latencies.append(now - item[3])
                    else:
                        pending.append(item)
                acked[seen:] = pending
                await asyncio.sleep(0.005)

    def on_ack(future: asyncio.Future) -> None:
        if not future.exception():
            meta = future.result()
            acked.append((meta.topic, meta.partition, meta.offset, time.perf_counter()))

    began = time.perf_counter()
    watcher = asyncio.create_task(watch())
    sent = 0
    try:
        while time.perf_counter() - began < seconds and sent < len(records):
            due = int((time.perf_counter() - began) * rate)
            while sent < due and sent < len(records):
                topic, key, value = records[sent]
                (await producer.send(topic_name(settings.topic_prefix, Topic(topic)), value, key=key)
                 ).add_done_callback(on_ack)
                sent += 1
            await asyncio.sleep(0.002)
        achieved = sent / (time.perf_counter() - began)
    finally:
        await producer.stop()
        stop.set()
        await asyncio.wait_for(watcher, timeout=180)
    return {"rate": rate, "achieved_rate": achieved, "samples": len(latencies), "sent": sent,
            "p50_ms": 1000 * percentile(latencies, 50), "p99_ms": 1000 * percentile(latencies, 99)}


def served(base: Settings, plan: dict, port: int) -> dict:
    """Freshness and API reads on one worker + `cohortflow api` over the fold log."""
    settings = fresh_topics(base, "api")
    migrate(settings)
    worker = api = None
    out: dict = {}
    try:
        fast_publish(settings, workload(*plan["fold_log"], 21))
        worker = Worker(settings, Path(f"/tmp/bench-suite-api-{settings.consumer_group}.log")).start()
        wait_caught_up(settings, timeout=900, workers=[worker])
        with psycopg.connect(settings.postgres_url, autocommit=True,
                             options=f"-c search_path={settings.postgres_schema}") as conn:
            token = auth.create(conn, "bench-suite", ["views:read"])
        env = {**environment(settings), "COHORTFLOW_API_RATE_LIMIT": "1000000"}
        env.pop("COHORTFLOW_METRICS_PORT", None)
        api = subprocess.Popen([sys.executable, "-m", "cohortflow.cli", "api", "--port", str(port)], cwd=ROOT, env=env,
                               stdout=open(f"/tmp/bench-suite-api-{settings.consumer_group}-api.log", "wb"),
                               stderr=subprocess.STDOUT)
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"})
        for _ in range(300):
            try:
                if client.get("/health/live").status_code == 200:
                    break
            except httpx.TransportError:
                assert api.poll() is None, f"cohortflow api exited: see {api.args}"
                time.sleep(0.1)
        fresh_log = workload(max(500, int(max(plan["fresh_rates"]) * plan["fresh_seconds"] * 1.2)), 2_000, 22)
        out["freshness"] = []
        offset = 0
        for rate in plan["fresh_rates"]:
            chunk = fresh_log[offset:offset + int(rate * plan["fresh_seconds"]) + 1]
            offset = (offset + len(chunk)) % max(1, len(fresh_log) - len(chunk))
            with console.status(f"freshness at {rate:,}/s"):
                cpu, began = cpu_seconds(worker.proc.pid), time.perf_counter()
                result = asyncio.run(_freshness(settings, port, token, chunk, rate, plan["fresh_seconds"]))
                result["worker_cpu_seconds"] = cpu_seconds(worker.proc.pid) - cpu
                result["seconds"] = time.perf_counter() - began
            console.print(f"  freshness at {rate:,}/s (achieved {result['achieved_rate']:,.0f}/s):"
                          f" p50 {result['p50_ms']:.0f} ms, p99 {result['p99_ms']:.0f} ms")
            out["freshness"].append(result)
        out["api_reads"] = {}
        for name, path in (("floor_dashboard", "/v1/floors?limit=100"), ("mentor_list", "/v1/mentors?limit=100")):
            client.get(path)
            times = []
            for _ in range(plan["reads"]):
                began = time.perf_counter()
                assert client.get(path).status_code == 200
                times.append((time.perf_counter() - began) * 1000)
            out["api_reads"][name] = {"p50_ms": percentile(times, 50), "p99_ms": percentile(times, 99),
                                      "n": len(times)}
        client.close()
        # recompute from the topics: `cohortflow rebuild` of this log, as a user runs it
        began = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "cohortflow.cli", "rebuild", "--into",
                               f"{settings.postgres_schema}_rb"], cwd=ROOT, env=environment(settings),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        replayed = len(workload(*plan["fold_log"], 21)) + sum(f["sent"] for f in out["freshness"])
        out["rebuild"] = {"seconds": time.perf_counter() - began, "records": replayed}
        if done.returncode:  # reported in the table, not fatal: the other sections still run
            errors = [line for line in done.stderr.splitlines() if "Error" in line] or [f"exit {done.returncode}"]
            out["rebuild"]["failed"] = errors[-1].strip()[:300]
            console.print(f"  cohortflow rebuild FAILED: {out['rebuild']['failed']}")
        drop_schema(settings, f"{settings.postgres_schema}_rb")
    finally:
        if api is not None:
            api.terminate()
            api.wait(15)
        if worker is not None:
            worker.stop()
        drop_schema(settings, settings.postgres_schema)
        drop_topics(settings)
    return out


def live(base: Settings, plan: dict) -> dict:
    schema = f"bench_live_{datetime.now(UTC):%H%M%S}"
    students, submissions = plan["live"]
    try:
        with console.status(f"normalised tables: {students:,} students, {submissions:,} submissions"):
            out = live_sql.load(base.postgres_url, schema, students, submissions)
        for name, query in (("floor_dashboard", live_sql.FLOOR_DASHBOARD), ("mentor_list", live_sql.MENTOR_LIST)):
            times = live_sql.timings(base.postgres_url, schema, query, plan["live_reads"])
            out[name] = {"p50_ms": percentile(times, 50), "p99_ms": percentile(times, 99), "n": len(times)}
        out["cron_recompute_seconds"] = statistics.median(
            live_sql.recompute(base.postgres_url, schema) for _ in range(plan["repeat"]))
    finally:
        drop_schema(base, schema)
    return out


def scaling(base: Settings, plan: dict) -> list[dict]:
    out = []
    with progress() as bar:
        task = bar.add_task("scaling", total=len(plan["scaling"]) * plan["scaling_repeat"])
        for students in plan["scaling"]:
            records = workload(10 * students, students, 21)
            runs = []
            for i in range(plan["scaling_repeat"]):
                bar.update(task, description=f"scaling: {students:,} students run {i + 1}/{plan['scaling_repeat']}")
                runs.append(worker_rate(base, records, 1, 1800))
                bar.advance(task)
            rate = statistics.median(r.rate for r in runs)
            rss_bytes = int(statistics.median(r.rss_bytes for r in runs))
            bar.console.print(f"  {students:,} students: {rate:,.0f} records/s (median of {len(runs)}),"
                              f" RSS {rss_bytes / 2**20:,.0f} MiB")
            out.append({"students": students, "records": len(records), "records_per_s": rate, "rss_bytes": rss_bytes,
                        "runs": [r.__dict__ for r in runs]})
    return out


def collected() -> dict:
    """The newest result file of each other benchmark."""
    found = {}
    for kind in ("rebuild", "audit", "api", "worker"):
        files = sorted(RESULTS.glob(f"{kind}-*.json"), key=lambda p: p.stat().st_mtime)
        if files:
            found[kind] = {"file": files[-1].name, **json.loads(files[-1].read_text())}
    return found


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                      if line.startswith("MemTotal"))) * 1024
    return {"cpu": cpu, "cores": len([1 for line in Path("/proc/cpuinfo").read_text().splitlines()
                                      if line.startswith("processor")]),
            "memory_bytes": memory, "kernel": platform.release(), "python": platform.python_version(),
            "load_average_at_start": list(Path("/proc/loadavg").read_text().split()[:3])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="small sizes, one run each, under 5 minutes: checks every path (REPORT-quick.md)")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--only", default="fold,served,live,scaling", help="sections to run (comma-separated)")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    contenders.WARMUP_TIMEOUT = plan["warmup_timeout"]
    only = set(args.only.split(","))
    base = load_settings()
    began, stamp = time.monotonic(), datetime.now(UTC)
    result: dict = {"date": stamp.isoformat(), "mode": "quick" if args.quick else "full", "plan": plan,
                    "machine": machine(), "warmup_records": WARMUP, "setup": contenders.SETUP}
    if "fold" in only:
        console.rule("fold throughput")
        result["fold"] = fold_throughput(base, plan)
    if "served" in only:
        console.rule("freshness, API reads, rebuild")
        result["served"] = served(base, plan, args.port)
    if "live" in only:
        console.rule("live SQL and cron recompute")
        result["live"] = live(base, plan)
    if "scaling" in only:
        console.rule("scaling")
        result["scaling"] = scaling(base, plan)
    result["collected"] = collected()
    result["machine"]["load_average_at_end"] = list(Path("/proc/loadavg").read_text().split()[:3])
    result["seconds"] = time.monotonic() - began
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = f"{stamp:%Y-%m-%d}{'-quick' if args.quick else ''}.json"
    (RESULTS / name).write_text(json.dumps(result, indent=2, default=str))
    written = report.render(result, name)
    console.print(f"results: bench/results/{name}, report: {written.relative_to(ROOT)} ({result['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
