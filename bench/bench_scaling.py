"""Worker throughput and RSS as the cohort grows (issue 16's scaling table), without the rest of make bench.

    PYTHONPATH=. python bench/bench_scaling.py [--students 10000,50000,200000] [--runs 3] [--stages]

The scaling section of bench/bench_suite.py alone: for each cohort size, a log of 10 records per student, one
worker process folding it from Kafka to committed views, ``--runs`` times; the figures are the medians. Saved as
bench/results/scaling-<time>.json (bench/REPORT.md is left as the last full `make bench` wrote it). Targets:
the largest cohort at >= 0.85x the smallest's rate, RSS <= 400 MiB and within 1.3x of the smallest's.

``--stages`` runs no worker and needs no services: the same logs go through the worker's fold path in this
process (decode, engine apply per chunk, take_effect, encoding the changed states, the cache trim), batch by
batch as the worker cuts them, with no I/O. It prints the microseconds per record of each stage and what a
batch hands the commit per 1,000 records (changed entities, floor and mentor rows): how much of the fall in
rate comes before PostgreSQL is ever reached. Saved as bench/results/scaling-stages-<time>.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import bench_suite, contenders  # noqa: E402
from bench.bench_worker import workload  # noqa: E402
from cohortflow.contract import Rejection  # noqa: E402
from cohortflow.contract.structs import decode  # noqa: E402
from cohortflow.contract.topics import Topic, topic_name  # noqa: E402
from cohortflow.core.engine import engine, shard_of  # noqa: E402
from cohortflow.core.fold import FoldConfig, entity_key  # noqa: E402
from cohortflow.core.rows import FLOOR_TAG, MENTOR_TAG  # noqa: E402
from cohortflow.pipeline.processor import FOLD_CHUNK  # noqa: E402
from cohortflow.settings import Settings, load_settings  # noqa: E402

TARGET_RATE_RATIO, TARGET_RSS_MIB, TARGET_RSS_RATIO = 0.85, 400, 1.3


STAGES = ("decode", "apply", "take_effect", "encode", "trim")


def fold_stages(settings: Settings, students: int) -> dict:
    """One pass of the 10-records-per-student log through the worker's fold path, in this process: seconds per stage
    and the rows each batch hands the commit."""
    records = workload(10 * students, students, 21)
    names = {short: topic_name(settings.topic_prefix, Topic(short)) for short in {r[0] for r in records}}
    contract, fold = settings.contract, engine(settings.fold_engine, FoldConfig.of(settings))
    most, size = settings.cache_max_entities, settings.batch_max_records
    seconds: dict[str, float] = dict.fromkeys(STAGES, 0.0)
    rows: Counter[str] = Counter()
    mentors: set[str] = set()
    gc.collect()
    gc.freeze()  # the log itself stays out of the collector's passes, as the worker freezes its heap per batch
    try:
        for start in range(0, len(records), size):
            clock = time.perf_counter()
            events, keys = [], []
            for short, key, value in records[start:start + size]:
                result = decode(names[short], key, value, contract)
                if not isinstance(result, Rejection):
                    events.append(result)
                    keys.append(entity_key(result))
            seconds["decode"] += (now := time.perf_counter()) - clock
            for i in range(0, len(events), FOLD_CHUNK):
                fold.apply(events[i:i + FOLD_CHUNK], keys[i:i + FOLD_CHUNK])
            seconds["apply"] += (clock := time.perf_counter()) - now
            effect = fold.take_effect()
            seconds["take_effect"] += (now := time.perf_counter()) - clock
            states = {k: (shard_of(k[1], settings.partitions), fold.encode(k)) for k in effect.changed}
            seconds["encode"] += (clock := time.perf_counter()) - now
            if len(fold) > most:
                fold.trim(most - most // 8, set(states))
            seconds["trim"] += time.perf_counter() - clock
            rows["changed entities"] += len(states)
            touched = {*effect.deltas, *effect.as_of, *effect.named}  # the view rows of the batch
            rows["floor rows"] += sum(r[0] == FLOOR_TAG for r in touched)
            # the mentor rows the sink writes: of the mentors with a row by now (named, with counts or own
            # details, in this batch or before: logins alone make none), those the batch touches
            mentors |= {r[1] for r in (*effect.deltas, *effect.named) if r[0] == MENTOR_TAG} | set(effect.mentor_self)
            rows["mentor rows"] += len(mentors & ({r[1] for r in touched if r[0] == MENTOR_TAG}
                                                  | {m for m, _ in effect.activity}))
    finally:
        gc.unfreeze()
    n = len(records)
    return {"students": students, "records": n, "entities": len(fold),
            "us_per_record": {stage: seconds[stage] / n * 1e6 for stage in STAGES},
            "per_1000_records": {name: count / n * 1000 for name, count in rows.items()}}


def stages(settings: Settings, sizes: tuple[int, ...], runs: int) -> list[dict]:
    """:func:`fold_stages` ``runs`` times per cohort size; per-stage medians."""
    out = []
    with bench_suite.progress() as bar:
        task = bar.add_task("fold stages", total=len(sizes) * runs)
        for students in sizes:
            passes = []
            for i in range(runs):
                bar.update(task, description=f"fold stages: {students:,} students run {i + 1}/{runs}")
                passes.append(fold_stages(settings, students))
                bar.advance(task)
            median = {stage: statistics.median(p["us_per_record"][stage] for p in passes) for stage in STAGES}
            total = statistics.median(sum(p["us_per_record"].values()) for p in passes)
            out.append({**passes[0], "us_per_record": median, "us_per_record_total": total,
                        "runs": [p["us_per_record"] for p in passes]})
            bar.console.print(f"  {students:,} students: {total:.2f} us a record ("
                              + ", ".join(f"{stage} {median[stage]:.2f}" for stage in STAGES) + "); per 1,000 records "
                              + ", ".join(f"{v:,.0f} {k}" for k, v in passes[0]["per_1000_records"].items()))
    return out


def main_stages(sizes: tuple[int, ...], runs: int) -> None:
    began, stamp = time.monotonic(), datetime.now(UTC)
    result: dict = {"date": stamp.isoformat(), "section": "scaling-stages", "machine": bench_suite.machine()}
    result["stages"] = rows = stages(load_settings(), sizes, runs)
    result["seconds"] = time.monotonic() - began
    small, large = rows[0], rows[-1]
    ratio = small["us_per_record_total"] / large["us_per_record_total"]
    bench_suite.RESULTS.mkdir(parents=True, exist_ok=True)
    out = bench_suite.RESULTS / f"scaling-stages-{stamp:%Y-%m-%dT%H%M%S}.json"
    out.write_text(json.dumps(result, indent=2, default=str))
    print(f"the fold path alone, no I/O: {large['students']:,} students at {ratio:.2f}x the rate of"
          f" {small['students']:,} ({1e6 / large['us_per_record_total']:,.0f} against"
          f" {1e6 / small['us_per_record_total']:,.0f} records/s)")
    print(f"results: {out.relative_to(ROOT)} ({result['seconds']:.0f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", default=",".join(str(n) for n in bench_suite.FULL["scaling"]),
                        help="cohort sizes, comma-separated (default: the full suite's)")
    parser.add_argument("--runs", type=int, default=bench_suite.FULL["scaling_repeat"], help="runs per size")
    parser.add_argument("--stages", action="store_true",
                        help="no worker, no services: time the fold path's stages in this process (see above)")
    args = parser.parse_args()
    sizes = tuple(int(n) for n in args.students.split(","))
    if args.stages:
        main_stages(sizes, args.runs)
        return
    plan = {**bench_suite.FULL, "scaling": sizes, "scaling_repeat": args.runs}
    contenders.WARMUP_TIMEOUT = plan["warmup_timeout"]
    began, stamp = time.monotonic(), datetime.now(UTC)
    result: dict = {"date": stamp.isoformat(), "section": "scaling", "plan": plan, "machine": bench_suite.machine()}
    result["scaling"] = rows = bench_suite.scaling(load_settings(), plan)
    result["machine"]["load_average_at_end"] = list(Path("/proc/loadavg").read_text().split()[:3])
    result["seconds"] = time.monotonic() - began
    small, large = rows[0], rows[-1]
    rate_ratio = large["records_per_s"] / small["records_per_s"]
    rss_mib, rss_ratio = large["rss_bytes"] / 2**20, large["rss_bytes"] / small["rss_bytes"]
    result["targets"] = {"rate_ratio": rate_ratio, "rss_mib": rss_mib, "rss_ratio": rss_ratio}
    bench_suite.RESULTS.mkdir(parents=True, exist_ok=True)
    out = bench_suite.RESULTS / f"scaling-{stamp:%Y-%m-%dT%H%M%S}.json"
    out.write_text(json.dumps(result, indent=2, default=str))
    met = lambda ok: "met" if ok else "NOT met"  # noqa: E731
    print(f"{large['students']:,} students at {rate_ratio:.2f}x the rate of {small['students']:,}"
          f" (target >= {TARGET_RATE_RATIO}: {met(rate_ratio >= TARGET_RATE_RATIO)});"
          f" RSS {rss_mib:,.0f} MiB (target <= {TARGET_RSS_MIB}: {met(rss_mib <= TARGET_RSS_MIB)}),"
          f" {rss_ratio:.2f}x the smallest's (target <= {TARGET_RSS_RATIO}: {met(rss_ratio <= TARGET_RSS_RATIO)})")
    print(f"results: {out.relative_to(ROOT)} ({result['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
