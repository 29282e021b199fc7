"""Worker throughput and RSS as the cohort grows (issue 16's scaling table), without the rest of make bench.

    PYTHONPATH=. python bench/bench_scaling.py [--students 10000,50000,200000] [--runs 3]

The scaling section of bench/bench_suite.py alone: for each cohort size, a log of 10 records per student, one
worker process folding it from Kafka to committed views, ``--runs`` times; the figures are the medians. Saved as
bench/results/scaling-<time>.json (bench/REPORT.md is left as the last full `make bench` wrote it). Targets:
the largest cohort at >= 0.85x the smallest's rate, RSS <= 400 MiB and within 1.3x of the smallest's.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import bench_suite, contenders  # noqa: E402
from cohortflow.settings import load_settings  # noqa: E402

TARGET_RATE_RATIO, TARGET_RSS_MIB, TARGET_RSS_RATIO = 0.85, 400, 1.3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", default=",".join(str(n) for n in bench_suite.FULL["scaling"]),
                        help="cohort sizes, comma-separated (default: the full suite's)")
    parser.add_argument("--runs", type=int, default=bench_suite.FULL["scaling_repeat"], help="runs per size")
    args = parser.parse_args()
    sizes = tuple(int(n) for n in args.students.split(","))
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
