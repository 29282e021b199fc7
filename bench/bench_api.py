"""Benchmark of the read API (issue 4), on the local stack: `make bench-api`.

1. Views for ``--students`` students (default 50,000): the cached realistic log of
   bench/bench_worker.py (1,000,000 records) folded by a real worker into a fresh schema.
2. `cohortflow api` (``--api-processes`` uvicorn processes, uvloop) on that schema.
3. Load at a fixed arrival rate (default 1,000 requests/s) with ``wrk`` (Debian's, `apt-get install
   wrk`): a Lua script gives every request a slot on a fixed schedule (``delay()``), so the rate
   does not fall when the server slows down, and reports how many requests left late (more than
   1 ms after their slot) and by how much: latency counted from the slot is wrk's latency plus
   that lateness, so with no late requests wrk's percentiles carry no coordinated omission. Two
   mixes, each for ``--seconds``: summary reads (floor dashboard, one floor, mentor list page,
   one mentor, global) and badge reads (GET /v1/notifications/{user}). p50/p90/p99/max in ms.
   Without wrk, an open-loop asyncio generator in its own process does the same (``--tool python``).
   ``--repeat N`` (default 3) runs both mixes N times, each on freshly started API processes after
   a warm-up, on the same views; the figures reported are the medians over the runs, every run is
   kept under ``runs``. Each mix also records the CPU the API processes and wrk used.
4. SSE capacity: ``--sse`` clients (default 5,000) each stream their own user's badge; one
   change per user is published on the worker's Redis channel (the worker's exact message,
   sent with PUBLISH so the figure is the API's fan-out, not the fold), and we count the
   clients that received their change, and how fast.

Results go to bench/results/api-<date>.json and a table on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from datetime import date
from multiprocessing import Process, Queue
from pathlib import Path

import orjson
import psycopg
import redis
from psycopg import sql
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_worker import workload  # noqa: E402
from cohortflow.api import auth  # noqa: E402
from cohortflow.pipeline.topics import delete_topics, ensure_topics  # noqa: E402
from cohortflow.settings import Settings, load_settings  # noqa: E402
from cohortflow.stores.badges import badge_channel  # noqa: E402
from cohortflow.stores.migrate import migrate  # noqa: E402
from tests.pipeline.harness import Worker, end_offsets, environment, publish, stop_process, stored_offsets  # noqa: E402

console = Console()
RESULTS = ROOT / "bench" / "results"


def progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=console)


# --- fixed-rate load with wrk ------------------------------------------------------------------------
# One wrk thread; every connection, before each request, takes the next slot of a schedule of
# 1000/rate ms and waits for it (wrk's delay() is in whole ms, so a request leaves up to 1 ms early).
WRK_SCRIPT = r"""
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } cf_timespec;
int clock_gettime(int clk_id, cf_timespec *tp);
]]
local ts = ffi.new("cf_timespec[1]")
local function now_ms()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts[0].tv_sec) * 1000 + tonumber(ts[0].tv_nsec) / 1e6
end

local threads = {}
function setup(thread) table.insert(threads, thread) end

local paths, interval, next_at = {}, 1, nil
late, late_max, slots = 0, 0, 0
function init(args)
  interval = 1000 / tonumber(args[1])
  for line in io.lines(args[2]) do paths[#paths + 1] = line end
  math.randomseed(7)
end

function delay()
  local now = now_ms()
  if next_at == nil then next_at = now end
  local slot = next_at
  next_at = next_at + interval
  slots = slots + 1
  local wait = slot - now
  if wait < -1 then
    late = late + 1
    if -wait > late_max then late_max = -wait end
  end
  if wait < 0 then return 0 end
  return wait
end

function request()
  return wrk.format("GET", paths[math.random(#paths)])
end

function done(summary, latency, requests)
  local late_n, late_worst = 0, 0
  for _, t in ipairs(threads) do
    late_n = late_n + t:get("late")
    if t:get("late_max") > late_worst then late_worst = t:get("late_max") end
  end
  local e = summary.errors
  io.write(string.format(
    'WRK-JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "p999_us": %d, ' ..
    '"max_us": %d, "mean_us": %.1f, "non_2xx_3xx": %d, "errors": {"connect": %d, "read": %d, "write": %d, ' ..
    '"timeout": %d}, "late_over_1ms": %d, "max_late_ms": %.2f}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean, e.status, e.connect, e.read, e.write, e.timeout,
    late_n, late_worst))
end
"""


def _cpu_seconds(pid: int) -> float:
    """CPU (user + system) of process ``pid`` and its children, now."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            total += _cpu_seconds(int(child))
    except (OSError, ValueError):
        pass
    return total


def wrk_load(port: int, token: str, paths: list[str], rate: int, seconds: float, label: str) -> dict:
    """``rate`` requests/s for ``seconds`` over 64 keep-alive connections, paths drawn at random."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        script, listing = Path(tmp) / "load.lua", Path(tmp) / "paths.txt"
        script.write_text(WRK_SCRIPT)
        listing.write_text("\n".join(paths) + "\n")
        command = ["wrk", "-t1", "-c64", f"-d{seconds:g}s", "--timeout", "10s", "-H", f"Authorization: Bearer {token}",
                   "-s", str(script), f"http://127.0.0.1:{port}", "--", str(rate), str(listing)]
        with progress() as bar:
            task = bar.add_task(f"{label} at {rate:,}/s (wrk)", total=int(seconds))
            children = resource.getrusage(resource.RUSAGE_CHILDREN)
            proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            began = time.monotonic()
            while proc.poll() is None:
                time.sleep(0.25)
                bar.update(task, completed=min(int(seconds), int(time.monotonic() - began)))
            output = proc.stdout.read()
            proc.wait()
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            wrk_cpu = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    line = next((x for x in output.splitlines() if x.startswith("WRK-JSON ")), None)
    if proc.returncode != 0 or line is None:
        raise SystemExit(f"wrk failed ({proc.returncode}):\n{output}")
    raw = json.loads(line[len("WRK-JSON "):])
    ms = {f"{k[:-3]}_ms": raw[k] / 1000 for k in ("p50_us", "p90_us", "p99_us", "p999_us", "max_us", "mean_us")}
    return {"tool": "wrk 4.1.0, 1 thread, 64 connections, Lua fixed-rate schedule", "requests": raw["requests"],
            "achieved_rate": raw["requests"] / (raw["duration_us"] / 1e6), **ms,
            "non_2xx_3xx": raw["non_2xx_3xx"], "socket_errors": raw["errors"],
            "late_over_1ms": raw["late_over_1ms"], "max_late_ms": raw["max_late_ms"],
            "load_generator_cpu_cores": wrk_cpu / (raw["duration_us"] / 1e6)}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] if ordered else float("nan")


# --- the load generator (its own process) -------------------------------------------------
async def _load(port: int, token: str, paths: list[str], rate: int, seconds: float, connections: int) -> dict:
    total = int(rate * seconds)
    idle: asyncio.Queue = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    latencies: list[float] = []
    by_route: dict[str, list[float]] = {}
    statuses: dict[int, int] = {}
    rnd = random.Random(1)

    async def one(at: float, path: str) -> None:
        reader, writer = await idle.get()
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            took = (time.perf_counter() - at) * 1000
            latencies.append(took)
            route = "/".join(path.split("?")[0].split("/")[:3]) + ("/{id}" if path.count("/") > 2 else "")
            by_route.setdefault(route, []).append(took)
            statuses[status] = statuses.get(status, 0) + 1
        finally:
            idle.put_nowait((reader, writer))

    began = time.perf_counter()
    tasks = []
    for i in range(total):
        at = began + i / rate
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(at, paths[rnd.randrange(len(paths))])))
    await asyncio.gather(*tasks)
    achieved = total / (time.perf_counter() - began)
    return {"requests": total, "achieved_rate": achieved, "statuses": statuses,
            "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99), "max_ms": max(latencies),
            "by_route": {r: {"requests": len(v), "p50_ms": percentile(v, 50), "p99_ms": percentile(v, 99)}
                         for r, v in sorted(by_route.items())}}


def _load_process(out: Queue, *args) -> None:
    out.put(asyncio.run(_load(*args)))


def python_load(port: int, token: str, paths: list[str], rate: int, seconds: float, label: str) -> dict:
    out: Queue = Queue()
    proc = Process(target=_load_process, args=(out, port, token, paths, rate, seconds, 64))
    proc.start()
    with console.status(f"{label} at {rate:,}/s (python open-loop generator)"):
        result = out.get()
    proc.join()
    return {"tool": "open-loop asyncio generator (own process), 64 connections", **result}


# --- SSE capacity -------------------------------------------------------------------------------
async def sse_capacity(port: int, token: str, settings: Settings, clients: int) -> dict:
    users = [f"sse-user-{i:05d}" for i in range(clients)]
    connected: list[tuple] = []
    received: dict[str, float] = {}
    failed = 0
    reasons: dict[str, int] = {}

    async def open_stream(user: str) -> None:
        nonlocal failed
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 16)
            writer.write(f"GET /v1/notifications/{user}/stream HTTP/1.1\r\nHost: bench\r\n"
                         f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            if b" 200 " not in head[:16]:
                raise RuntimeError(head[:40])
            await reader.readuntil(b"\n\n")  # chunk header + the current badge
            connected.append((user, reader, writer))
        except Exception as exc:  # noqa: BLE001 - counted
            failed += 1
            reason = f"{type(exc).__name__}: {exc}"[:120]
            reasons[reason] = reasons.get(reason, 0) + 1

    with progress() as bar:
        task = bar.add_task("opening SSE streams", total=clients)
        for i in range(0, clients, 200):
            await asyncio.gather(*(open_stream(u) for u in users[i:i + 200]))
            bar.update(task, completed=min(clients, i + 200))

    async def listen(user: str, reader: asyncio.StreamReader) -> None:
        while True:
            line = await reader.readline()
            if not line:
                return
            if b'"unread":1' in line:
                received[user] = time.perf_counter()
                return

    listeners = [asyncio.create_task(listen(u, r)) for u, r, _ in connected]
    client = redis.asyncio.Redis.from_url(settings.redis_connection_url)
    channel = badge_channel(settings.redis_prefix)
    sent = time.perf_counter()
    async with client.pipeline(transaction=False) as pipe:
        for rev, (user, _, _) in enumerate(connected, start=1):
            pipe.publish(channel, orjson.dumps({"user_id": user, "unread": 1, "pending_reviews": None, "rev": rev}))
        await pipe.execute()
    with progress() as bar:
        task = bar.add_task("streams that got their change", total=len(listeners))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(received) < len(listeners):
            await asyncio.sleep(0.1)
            bar.update(task, completed=len(received))
        bar.update(task, completed=len(received))
    for task in listeners:
        task.cancel()
    for _, _, writer in connected:
        writer.close()
    await client.aclose()
    delays = sorted((t - sent) * 1000 for t in received.values())
    return {"requested": clients, "connected": len(connected), "failed_to_connect": failed, "failures": reasons,
            "received_update": len(received), "p50_ms": percentile(delays, 50), "p99_ms": percentile(delays, 99),
            "all_within_ms": delays[-1] if delays else None}


def medians(runs: list[dict]) -> dict:
    """The median of each figure over the runs (counts of errors and late requests: their sums)."""
    out: dict = {"tool": runs[0]["tool"], "runs": len(runs)}
    for key, value in runs[0].items():
        if key in ("non_2xx_3xx", "late_over_1ms"):
            out[key] = sum(r[key] for r in runs)
        elif key == "max_late_ms":
            out[key] = max(r[key] for r in runs)
        elif key == "statuses":  # --tool python
            out[key] = {code: sum(r[key].get(code, 0) for r in runs) for code in {c for r in runs for c in r[key]}}
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = statistics.median(r[key] for r in runs)
    out["max_ms_worst_run"] = max(r["max_ms"] for r in runs)
    return out


def fold(settings: Settings, worker: Worker, timeout: float) -> None:
    """Wait, with a progress bar, until the worker has committed every published record."""
    ends = {tp: o for tp, o in asyncio.run(end_offsets(settings)).items() if o > 0}
    total = sum(ends.values())
    deadline = time.monotonic() + timeout
    with progress() as bar:
        task = bar.add_task("the worker folds them into the views", total=total)
        while True:
            stored = stored_offsets(settings)
            bar.update(task, completed=sum(min(stored.get(tp, 0), end) for tp, end in ends.items()))
            if all(stored.get(tp, 0) >= end for tp, end in ends.items()):
                return
            if not worker.alive or time.monotonic() > deadline:
                raise SystemExit(f"the worker did not catch up: see {worker.log}")
            time.sleep(1)


def start_api(env: dict, port: int, processes: int, tag: str) -> subprocess.Popen:
    import httpx

    def more_files() -> None:
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    api = subprocess.Popen([sys.executable, "-m", "cohortflow.cli", "api", "--port", str(port), "--workers",
                            str(processes)], cwd=ROOT, env=env, stdout=open(f"/tmp/bench-api-{tag}.log", "ab"),
                           stderr=subprocess.STDOUT, preexec_fn=more_files)
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=1).status_code == 200:
                return api
        except httpx.HTTPError:
            if api.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the API did not start: see /tmp/bench-api-{tag}.log") from None
            time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000, help="records of the log folded into the views")
    parser.add_argument("--students", type=int, default=50_000)
    parser.add_argument("--rate", type=int, default=1_000, help="requests/s of the open-loop load")
    parser.add_argument("--seconds", type=float, default=30, help="seconds of load per mix")
    parser.add_argument("--sse", type=int, default=5_000, help="concurrent SSE clients")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--api-processes", type=int, default=2,
                        help="uvicorn processes serving the read mixes (SSE is measured on one)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of both mixes, each on fresh API processes; medians are reported [default: 3]")
    parser.add_argument("--tool", choices=("wrk", "python"), default="wrk" if shutil.which("wrk") else "python",
                        help="load generator [default: wrk when installed]")
    args = parser.parse_args()
    load = wrk_load if args.tool == "wrk" else python_load

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * args.sse + 1000)), hard))
    # Each SSE client is a socket in this process and one in the API's (raised to the hard limit).
    files = {"soft_before": soft, "hard": hard, "soft_now": resource.getrlimit(resource.RLIMIT_NOFILE)[0]}
    tag = uuid.uuid4().hex[:8]
    settings = load_settings(topic_prefix=f"bapi{tag}.", postgres_schema=f"bench_api_{tag}",
                             redis_prefix=f"bapi{tag}:", consumer_group=f"bapi{tag}")
    results: dict = {"students": args.students, "records": args.records, "rate": args.rate,
                     "api_processes_for_reads": args.api_processes,
                     "seconds_per_mix": args.seconds, "tool": args.tool, "ulimit_n": files,
                     "cpus": os.cpu_count(), "repeat": args.repeat}
    api = worker = None
    began = time.monotonic()
    try:
        asyncio.run(ensure_topics(settings))
        migrate(settings)
        records = workload(args.records, args.students, 21)
        with console.status(f"publishing {len(records):,} records"):
            asyncio.run(publish(settings, records))
        worker = Worker(settings, Path(f"/tmp/bench-api-worker-{tag}.log")).start()
        fold(settings, worker, timeout=1800)
        with psycopg.connect(settings.postgres_url, autocommit=True,
                             options=f"-c search_path={settings.postgres_schema}") as conn:
            token = auth.create(conn, "bench", ["views:read"])
            floors = conn.execute("SELECT campus, floor FROM floor_summary").fetchall()
            mentors = [r[0] for r in conn.execute("SELECT mentor_id FROM mentor_summary")]
            students = conn.execute("SELECT sum(students_total) FROM floor_summary").fetchone()[0]
            users = [r[0] for r in conn.execute("SELECT user_id FROM badges")]
        results["views"] = {"floors": len(floors), "mentors": len(mentors), "active_students": students,
                            "badges": len(users)}
        env = {**environment(settings), "COHORTFLOW_API_RATE_LIMIT": "1000000",
               "COHORTFLOW_SSE_HEARTBEAT_SECONDS": "15"}
        rnd = random.Random(3)
        summary_paths = ["/v1/floors?limit=100", "/v1/mentors?limit=100", "/v1/global"]
        summary_paths += [f"/v1/floors/{c}/{f}" for c, f in rnd.sample(floors, min(50, len(floors)))]
        summary_paths += [f"/v1/mentors/{m}" for m in rnd.sample(mentors, min(50, len(mentors)))]
        badge_paths = [f"/v1/notifications/{u}" for u in rnd.sample(users, min(2000, len(users)))]
        results["load_average_before_reads"] = list(os.getloadavg())
        results["runs"] = []
        for run in range(1, args.repeat + 1):
            api = start_api(env, args.port, args.api_processes, tag)
            load(args.port, token, summary_paths + badge_paths, 200, 3, f"run {run}/{args.repeat}: warm-up")
            figures: dict = {"run": run, "load_average_before": list(os.getloadavg())}
            for name, paths in (("summary_reads", summary_paths), ("badge_reads", badge_paths)):
                cpu, began_mix = _cpu_seconds(api.pid), time.monotonic()
                figures[name] = load(args.port, token, paths, args.rate, args.seconds,
                                     f"run {run}/{args.repeat}: {name.replace('_', ' ')}")
                figures[name]["api_cpu_cores"] = (_cpu_seconds(api.pid) - cpu) / (time.monotonic() - began_mix)
            figures["load_average_after"] = list(os.getloadavg())
            results["runs"].append(figures)
            stop_process(api, 15)
            api = None
        for name in ("summary_reads", "badge_reads"):
            results[name] = medians([r[name] for r in results["runs"]])
        api = start_api(env, args.port, 1, tag)  # SSE capacity is per process
        results["sse"] = asyncio.run(sse_capacity(args.port, token, settings, args.sse))
        results["api_rss_bytes"] = int(next(line.split()[1] for line in Path(f"/proc/{api.pid}/status").read_text()
                                            .splitlines() if line.startswith("VmRSS"))) * 1024
    finally:
        if api is not None:
            stop_process(api, 15)
        if worker is not None:
            worker.stop()
        from cohortflow.contract.topics import EVENT_TOPICS, topic_name

        asyncio.run(delete_topics(settings, [topic_name(settings.topic_prefix, t) for t in EVENT_TOPICS]
                                  + [f"{settings.topic_prefix}deadletter"]))
        with psycopg.connect(settings.postgres_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(settings.postgres_schema)))
        with redis.Redis.from_url(settings.redis_connection_url) as client:
            keys = list(client.scan_iter(match=f"{settings.redis_prefix}*", count=1000))
            if keys:
                client.delete(*keys)
    results["seconds"] = time.monotonic() - began
    # Everything shares this machine's cores (PostgreSQL, Redis, Kafka, the load generator, anyone else's
    # jobs): the load average says how far the figures are from a quiet box.
    results["load_average_1_5_15"] = list(os.getloadavg())
    results["targets_met"] = {"summary_p99_le_10ms": results["summary_reads"]["p99_ms"] <= 10,
                              "badge_p99_le_5ms": results["badge_reads"]["p99_ms"] <= 5,
                              "sse_5000_clients": results["sse"]["received_update"] >= 5000}

    table = Table("figure", "value", "target")
    for name, target in (("summary_reads", "p99 <= 10 ms"), ("badge_reads", "p99 <= 5 ms")):
        r = results[name]
        late = (f"; {r['late_over_1ms']:,} sent > 1 ms late (worst {r['max_late_ms']:.0f} ms)"
                if "late_over_1ms" in r else "")
        errors = r.get("non_2xx_3xx", r.get("statuses"))
        table.add_row(f"{name.replace('_', ' ')} at {args.rate:,}/s (achieved {r['achieved_rate']:,.0f}/s), "
                      f"median of {r.get('runs', 1)} runs",
                      f"p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, max {r['max_ms']:.1f} ms; "
                      f"{'non-2xx ' if 'non_2xx_3xx' in r else ''}{errors}{late}", target)
    for r in results["runs"]:
        table.add_row(f"  run {r['run']}", "; ".join(
            f"{name.split('_')[0]} p50 {r[name]['p50_ms']:.2f} / p99 {r[name]['p99_ms']:.2f}"
            f" / max {r[name]['max_ms']:.1f} ms"
            f" at {r[name]['achieved_rate']:,.0f}/s" for name in ("summary_reads", "badge_reads"))
            + f"; load {r['load_average_before'][0]:.2f}", "")
    s = results["sse"]
    table.add_row("SSE clients in one API process", f"{s['received_update']:,} of {s['requested']:,} got their update "
                  f"(p50 {s['p50_ms']:.0f} ms, p99 {s['p99_ms']:.0f} ms)", "5,000")
    table.add_row("load average (1, 5, 15 min)", ", ".join(f"{v:.2f}" for v in results["load_average_1_5_15"]), "")
    table.add_row("API RSS", f"{results['api_rss_bytes'] / 2**20:,.0f} MiB", "")
    console.print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"api-{date.today().isoformat()}.json"
    path.write_text(json.dumps(results, indent=2, default=str))
    console.print(f"results: {path.relative_to(ROOT)} ({results['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
