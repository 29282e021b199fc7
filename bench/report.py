"""bench/REPORT.md and its charts from one bench/bench_suite.py result: every figure beside its baseline."""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

from cohortflow.settings import Settings  # noqa: E402

CHARTS = BENCH / "charts"

PEERS = """\
- **cohortflow**: `cohortflow worker` with the default settings (batches of up to {batch:,} records, one
  PostgreSQL transaction per batch holding entity state, view rows and offsets; Redis badges).
- **raw ceiling**: an aiokafka consumer group, `getmany(max_records=20000)` + `orjson.loads` of every
  value, no other work (bench/bench_worker.py `raw_ceiling`).
- **Faust** (bench/peers/faust_agent.py, faust-streaming 0.15.3): one `@app.agent` per topic,
  `async for key, value in stream.items()`, a `students` Table updated per event, deltas re-keyed
  through a topic to a `summaries` Table (the docs' co-partitioning rule) whose agent upserts the
  changed row into PostgreSQL per event (psycopg, autocommit). `store="memory://"`,
  `table_standby_replicas=0`, `value_serializer="raw"` + orjson, default commit interval (2.8 s).
- **Quix Streams** (bench/peers/quix_app.py, quixstreams 3.28.1): `Application` (at-least-once,
  commit every 5 s, RocksDB state), the three student-keyed topics `concat`-ed into one
  `StreamingDataFrame`, stateful `apply(..., expand=True)`, `group_by` by summary row, a second
  stateful `apply`, a custom `BatchingSink` upserting the newest row versions per checkpoint.
  {quix_changelog}
- Both peers fold only floor_summary and mentor_summary (shared arithmetic, bench/peers/fold.py) and
  skip, compared with cohortflow: event-time "latest" ordering (arrival order decides),
  deduplication of re-sent records, dead letters, `as_of`, `last_active_at` from logins,
  global_daily/global_current, Redis badges and the audit trail (logins, audit and notifications
  are decoded and dropped). They do less work than cohortflow, not more.
{start_up}
"""


QUIX_CHANGELOG = {
    True: "Changelog topics on (Quix's default: each state write is also produced to a compacted topic).",
    False: "Changelog topics were off in this run (the suite then worked around a KeyError in Quix 3.28's"
           " buffering of a concat-ed dataframe, seen when a changelog message reached the buffer); without"
           " them Quix does less work than its default. The suite now runs Quix with them on.",
}
START_UP = {
    True: "- Start-up: each contender's processes start together and nothing is published until their"
          " consumer group is Stable with every process a member; then the warm-up, then the timed log. Without"
          " that wait, Faust x2 stalled in 4 of 8 starts on this machine: the first worker joins alone, takes"
          " all 12 partitions and processes the warm-up, the second joins 3 s later (the broker's initial"
          " rebalance delay), and the partitions that changed hands with records in flight were never"
          " committed by either worker (the group Stable, the records processed, no offset committed; Faust's"
          " acked-offset tracking across reassignment, cf. faust-streaming/faust#318, robinhood/faust#681)."
          " With the wait: 0 stalls in 8. A deployed Faust app starts its workers before it gets traffic; the"
          " same wait applies to cohortflow and Quix. A run that still fails is retried once and reported.",
    False: "- Start-up (this run): the warm-up was published as the processes started, so for 2 processes it"
           " was in flight during the start-up rebalance; Faust x2 could then stall (its partitions handed over"
           " mid-warm-up were never committed) and is reported as failed after the warm-up timeout. The suite"
           " now waits for a Stable group before publishing anything.",
}


def _bar(path: Path, title: str, labels: list[str], values: list[float], unit: str) -> str:
    fig, ax = plt.subplots(figsize=(7, 3.2))
    bars = ax.barh(labels, values, color=["#1f77b4" if "cohortflow" in lbl else "#999999" for lbl in labels])
    ax.bar_label(bars, labels=[f"{v:,.0f}" if v >= 10 else f"{v:.2f}" for v in values], padding=3, fontsize=8)
    ax.set_xlabel(unit)
    ax.set_title(title, fontsize=10)
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"![{title}]({path.relative_to(BENCH)})"


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:,.2f}x" if a and b else "n/a"


def _share(a: float | None, b: float | None) -> str:
    return f"{a / b:.1%}" if a and b else "n/a"


def _runs(result: dict, key: str) -> int:
    return int(result.get("plan", {}).get(key, 1))


def render(result: dict, name: str) -> Path:
    """Write the report of ``result`` (bench/REPORT.md, or REPORT-quick.md and charts/quick/ for a quick run)."""
    quick = result["mode"] == "quick"
    charts = CHARTS / "quick" if quick else CHARTS
    charts.mkdir(parents=True, exist_ok=True)
    m = result["machine"]
    lines = [
        "# cohortflow benchmarks (issue 8)",
        "",
        f"Generated by `make bench{'-quick' if result['mode'] == 'quick' else ''}` from "
        f"`bench/results/{name}` ({result['mode']} mode), {result['date'][:19]} UTC, "
        f"in {result['seconds'] / 60:.1f} minutes.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_bytes'] / 2**30:.0f} GiB, Linux {m['kernel']},"
        f" Python {m['python']}; Kafka 4.1, PostgreSQL 15, Redis 7 on the same host (`make services`)."
        f" Load average {', '.join(m['load_average_at_start'])} at start and"
        f" {', '.join(m.get('load_average_at_end', ['?']))} at the end: the machine is shared with other"
        " engineers building and testing, so absolute figures are taken under contention. Ratios compare"
        " figures from the same run.",
        "",
    ]
    fold = result.get("fold")
    if fold:
        raw = fold["raw_ceiling_per_s"]
        lines += ["## Fold throughput (Kafka -> committed views)", "",
                  f"Log: {fold['records']:,} records (adversarial cohort log, {fold['students']:,} students)."
                  " Each contender gets its own topics, "
                  + ("waits until its consumer group is Stable with every process a member, "
                     if result.get("setup", {}).get("stable_group_before_warmup") else "")
                  + f"consumes a warm-up of {result['warmup_records']} records, "
                  + ("each followed by one valid record in every partition (Quix commits a partition only up to the"
                     " last record it processed, so one ending in bad JSON never looked done), "
                     if result.get("setup", {}).get("valid_tail_per_partition") else "")
                  + ("checks the group is still Stable (no rebalance inside the timed window), "
                     if result.get("setup", {}).get("stable_group_before_warmup") else "")
                  + "then the rest is published at full speed (librdkafka producer) and the clock runs until"
                  " every record is committed (for the peers: their Kafka commit of the log and of their own"
                  " re-keyed deltas). Each figure is the median of its runs (the runs column; this run's plan:"
                  f" {_runs(result, 'repeat')} of the raw ceiling and of cohortflow, {_runs(result, 'peer_repeat')} of"
                  " each Faust and Quix configuration); baseline: the raw consume ceiling.", "",
                  "| contender | processes | records/s (median) | runs | vs raw ceiling | vs Faust (same processes) |"
                  " peak RSS |",
                  "|---|---|---|---|---|---|---|",
                  f"| raw ceiling (aiokafka getmany + orjson) | 1 | {raw:,.0f} | {len(fold.get('raw_runs', [raw]))} |"
                  " 100% | | |"]
        labels, values = ["raw ceiling"], [raw]
        for key, c in fold["contenders"].items():
            name_, n = key.rsplit("x", 1)
            faust = fold["contenders"].get(f"faustx{n}", {}).get("records_per_s")
            if c["records_per_s"] is None:
                lines.append(f"| {name_} | {n} | failed: {'; '.join(c.get('failures', []))} | 0 | | | |")
                continue
            spread = sorted(r["rate"] for r in c["runs"])
            runs = f"{len(spread)}" + (f" ({spread[0]:,.0f}-{spread[-1]:,.0f})" if len(spread) > 1 else "")
            runs += f", {len(c['failures'])} failed" if c.get("failures") else ""
            lines.append(f"| {name_}{' (capped)' if c['capped'] else ''} | {n} | {c['records_per_s']:,.0f} | {runs} |"
                         f" {_share(c['records_per_s'], raw)} | {_ratio(c['records_per_s'], faust)} |"
                         f" {c['rss_bytes'] / 2**20:,.0f} MiB |")
            labels.append(f"{name_} x{n}")
            values.append(c["records_per_s"])
        if any(c["capped"] for c in fold["contenders"].values()):
            lines += ["", "(capped): the run hit the time cap; its figure is the log records committed by then per"
                      " second, which ignores the deltas still queued in the peer's own topic (it flatters the peer)."]
        lines += ["", _bar(charts / "fold.png", "fold throughput, records/s", labels, values, "records/s"), ""]
    served = result.get("served")
    if served:
        lines += ["## Freshness (published -> visible in the API)", "",
                  "A worker caught up on the fold log, `cohortflow api` beside it; records are published at a"
                  " steady rate and each counts from its Kafka acknowledgement until `/v1/freshness` (read by"
                  " HTTP, every 5 ms) shows its offset committed, which happens in the transaction that"
                  " writes the views. Baseline: the 5-minute cron job, whose data is on average 150 s old.", "",
                  "| target rate | achieved | p50 | p99 | vs cron (150,000 ms mean staleness) |",
                  "|---|---|---|---|---|"]
        for f in served["freshness"]:
            lines.append(f"| {f['rate']:,}/s | {f['achieved_rate']:,.0f}/s | {f['p50_ms']:.0f} ms |"
                         f" {f['p99_ms']:.0f} ms | {150_000 / f['p50_ms']:,.0f}x fresher at p50 |")
        lines += ["", _bar(charts / "freshness.png", "freshness p99 (ms)",
                           [f"cohortflow {f['rate']:,}/s" for f in served["freshness"]],
                           [f["p99_ms"] for f in served["freshness"]], "ms"), ""]
    live = result.get("live")
    if served and live:
        rows = live["rows"]
        lines += ["## Reads: dashboard from the views vs live SQL", "",
                  f"The API (one uvicorn process, sequential requests, p50/p99 of"
                  f" {served['api_reads']['floor_dashboard']['n']}"
                  f" requests) serves the first page (100 rows) from the views. Live SQL computes the same"
                  f" figures per request over normalised tables of {rows['students']:,} students,"
                  f" {rows['mentors']:,} mentors, {rows['submissions']:,} submissions and"
                  f" {rows['reviews']:,} reviews, indexed for these queries (bench/live_sql.py;"
                  f" {live['floor_dashboard']['n']} runs after a warm-up, in the database only: no HTTP).", "",
                  "| read | API from the views p50 / p99 | live SQL p50 / p99 | live / API (p50) |",
                  "|---|---|---|---|"]
        labels, values = [], []
        for read in ("floor_dashboard", "mentor_list"):
            a, s = served["api_reads"][read], live[read]
            lines.append(f"| {read.replace('_', ' ')} | {a['p50_ms']:.1f} / {a['p99_ms']:.1f} ms |"
                         f" {s['p50_ms']:.1f} / {s['p99_ms']:.1f} ms | {_ratio(s['p50_ms'], a['p50_ms'])} |")
            labels += [f"cohortflow API {read}", f"live SQL {read}"]
            values += [a["p50_ms"], s["p50_ms"]]
        lines += ["", _bar(charts / "reads.png", "read p50 (ms)", labels, values, "ms"), ""]
        rb = served["rebuild"]
        cron = live["cron_recompute_seconds"]
        slow = next((f for f in served["freshness"] if f["rate"] == 1_000), served["freshness"][0])
        rate = result.get("fold", {}).get("contenders", {}).get("cohortflowx1", {}).get("records_per_s")
        incremental = (300 * slow["rate"] * slow["worker_cpu_seconds"] / slow["samples"]
                       if slow.get("worker_cpu_seconds") and slow.get("samples")
                       else 300 * slow["rate"] / rate if rate else None)
        how = ("worker CPU measured while the freshness run published 1,000 records/s"
               if slow.get("worker_cpu_seconds") else f"300,000 records at the measured {rate or 0:,.0f}/s")
        lines += ["## Recompute: cron vs rebuild vs incremental", "",
                  "What each approach costs to keep the summaries right, and how stale they are meanwhile."
                  " Baseline: the cron job every 5 minutes.", "",
                  "| approach | work | seconds | per 5 minutes | staleness | cost vs cron (per 5 min) |",
                  "|---|---|---|---|---|---|",
                  f"| cron: every summary recomputed from the normalised tables (one transaction, PostgreSQL) |"
                  f" {rows['students']:,} students, {rows['submissions']:,} submissions, {rows['reviews']:,} reviews |"
                  f" {cron:.1f} s | {cron:.1f} s | mean 150 s + {cron:.1f} s, up to 300 s | 1.00x |",
                  (f"| `cohortflow rebuild` from the topics (its own process, wall clock) | {rb['records']:,} records |"
                   f" FAILED: `{rb['failed']}` | | | |" if rb.get("failed") else
                   f"| `cohortflow rebuild` from the topics (its own process, wall clock) | {rb['records']:,} records"
                   f" ({rb['records'] / rb['seconds']:,.0f}/s) | {rb['seconds']:.1f} s |"
                   " once, after a fix or a new view |"
                   " n/a (a shadow, swapped in) | n/a |"),
                  f"| incremental: `cohortflow worker` at 1,000 records/s ({how}) | 300,000 records per 5 minutes |"
                  f" | {incremental or 0:.1f} s | p50 {slow['p50_ms']:,.0f} ms, p99 {slow['p99_ms']:,.0f} ms |"
                  f" {_ratio(incremental, cron)} |"]
        collected_rebuild = result.get("collected", {}).get("rebuild", {})
        for label in ("base", "full"):
            r = collected_rebuild.get(label)
            if r:
                lines.append(f"| `make bench-rebuild` ({collected_rebuild['file']}, {label}) | {r['records']:,} records"
                             f" ({r['records_per_s']:,.0f}/s) | {r['seconds']:.1f} s | once | n/a | n/a |")
        lines += ["", "The cron row runs over the synthetic normalised tables, the rebuild rows over the cohort log"
                  " (different worlds of similar size), so compare rates and orders of magnitude. The cron job's"
                  " cost is PostgreSQL time; the incremental row counts the worker process only (its PostgreSQL"
                  " commits are not in it).", ""]
    scaling = result.get("scaling")
    if scaling:
        base = scaling[0]
        lines += ["## Scaling with the cohort", "",
                  "One worker, 10 records per student (the first row is the baseline);"
                  " medians of the runs.", "",
                  "| students | records | records/s (median) | runs | vs first | worker RSS | vs first |",
                  "|---|---|---|---|---|---|---|"]
        for s in scaling:
            lines.append(f"| {s['students']:,} | {s['records']:,} | {s['records_per_s']:,.0f} |"
                         f" {len(s.get('runs', [s]))} |"
                         f" {_ratio(s['records_per_s'], base['records_per_s'])} | {s['rss_bytes'] / 2**20:,.0f} MiB |"
                         f" {_ratio(s['rss_bytes'], base['rss_bytes'])} |")
        fig, ax = plt.subplots(figsize=(7, 3.2))
        ax.plot([s["students"] for s in scaling], [s["records_per_s"] for s in scaling], "o-", label="records/s")
        ax2 = ax.twinx()
        ax2.plot([s["students"] for s in scaling], [s["rss_bytes"] / 2**20 for s in scaling], "s--", color="gray",
                 label="RSS MiB")
        ax.set_xlabel("students")
        ax.set_ylabel("records/s")
        ax2.set_ylabel("RSS (MiB)")
        ax.set_title("worker throughput and memory vs cohort size", fontsize=10)
        fig.tight_layout()
        fig.savefig(charts / "scaling.png", dpi=110)
        plt.close(fig)
        lines += ["", f"![scaling]({(charts / 'scaling.png').relative_to(BENCH)})", ""]
    other = result.get("collected", {})
    if other:
        lines += ["## Figures from the other benchmarks", "",
                  "Collected from their newest result files in bench/results/ (their own runs and dates).", ""]
        if "rebuild" in other:
            r = other["rebuild"]
            parts = []
            for label, target in (("base", "target: 1,000,000 in <= 30 s"), ("full", "target: within 20% of base")):
                if label in r:
                    x = dict(r[label])
                    if label == "base":
                        x.setdefault("target_met", x["seconds"] * 1_000_000 / x["records"] <= 30)
                    extra = f", {x['rate_vs_base']:.0%} of base" if "rate_vs_base" in x else ""
                    parts.append(f"{x['records']:,} records in {x['seconds']:.1f} s = {x['records_per_s']:,.0f}/s"
                                 f"{extra} ({target}"
                                 f"{'' if 'target_met' not in x else ', met' if x['target_met'] else ', NOT met'})")
            lines.append(f"- rebuild (`make bench-rebuild`, {r['file']}): " + "; ".join(parts))
        if "audit" in other:
            a = other["audit"]
            lines.append(f"- audit (`make bench-audit`, {a['file']}): ingest {a.get('ingest_rows_per_s', 0):,.0f}"
                         f" rows/s, first page p99 {a.get('actor_30d_first_page_ms', {}).get('p99', 0):.2f} ms,"
                         f" page 1000 / page 1 = {a.get('cursor_walk', {}).get('ratio', 0):.2f}")
        if "api" in other:
            a = other["api"]
            lines.append(f"- API load (`make bench-api`, {a['file']}): summary reads p99"
                         f" {a.get('summary_reads', {}).get('p99_ms', 0):.2f} ms, badge reads p99"
                         f" {a.get('badge_reads', {}).get('p99_ms', 0):.2f} ms at {a.get('rate', 0):,}/s")
        if "worker" in other:
            w = other["worker"]
            lines.append(f"- worker (`make bench-worker`, {w['file']}): {w.get('worker_per_s', 0):,.0f} records/s,"
                         f" {w.get('ratio', 0):.1%} of the raw ceiling,"
                         f" RSS {w.get('worker_rss_bytes', 0) / 2**20:,.0f} MiB")
        lines.append("")
    setup = result.get("setup", {})
    lines += ["## How each contender was configured", "",
              PEERS.format(batch=Settings.model_fields["batch_max_records"].default,
                           quix_changelog=QUIX_CHANGELOG[setup.get("quix_changelog_topics", False)],
                           start_up=START_UP[setup.get("stable_group_before_warmup", False)])]
    path = BENCH / ("REPORT-quick.md" if quick else "REPORT.md")
    path.write_text("\n".join(lines))
    return path


def main() -> None:
    import argparse
    import json

    parser = argparse.ArgumentParser(description="Regenerate bench/REPORT.md (or REPORT-quick.md) and its charts"
                                     " from a bench/results/<date>.json the suite wrote, without running anything.")
    parser.add_argument("result", type=Path, help="a result file of bench/bench_suite.py")
    args = parser.parse_args()
    print(render(json.loads(args.result.read_text()), args.result.name))


if __name__ == "__main__":
    main()
