"""`cohortflow relay`, `outbox`, `simulate` and `watch`: registered by :mod:`cohortflow.cli`.

Heavy imports stay inside the commands so `cohortflow --help` answers fast.
"""

from __future__ import annotations

from pathlib import Path

import click

from cohortflow.commands.context import Context, console, out, pass_context


@click.command()
@click.option("--schema", default=None, help="Schema of the outbox table [default: COHORTFLOW_OUTBOX_SCHEMA].")
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=1000, show_default=True,
              help="Most rows published per batch (one transaction).")
@click.option("--until-empty", is_flag=True, help="Exit once no unsent row is left (default: run until stopped).")
@pass_context
def relay(ctx: Context, schema: str | None, batch_size: int, until_empty: bool) -> None:
    """Publish the app's outbox rows to Kafka in order per key and mark them sent (run several if needed)."""
    import asyncio
    import logging
    import signal

    from cohortflow.producers.outbox import relay as run

    settings = ctx.settings
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        stats = await run(settings, schema=schema, batch_size=batch_size, until_empty=until_empty, stop=stop)
        console.print(f"relay stopped: {stats.published:,} records published in {stats.batches:,} batches")

    console.print(f"relay: outbox {schema or settings.outbox_schema} -> Kafka {settings.kafka_bootstrap} "
                  f"(topic prefix {settings.topic_prefix!r})")
    asyncio.run(main())


@click.group()
def outbox() -> None:
    """The transactional outbox table in the app's own database (COHORTFLOW_OUTBOX_DSN)."""


@outbox.command("install")
@click.option("--schema", default=None, help="Schema to create the table in [default: COHORTFLOW_OUTBOX_SCHEMA].")
@pass_context
def outbox_install(ctx: Context, schema: str | None) -> None:
    """Create the outbox table if missing (idempotent)."""
    from cohortflow.producers.outbox import TABLE, install
    from cohortflow.stores.postgres import connect

    schema = schema or ctx.settings.outbox_schema
    with connect(ctx.settings, database="outbox") as conn:
        install(conn, schema)
    out.print(f"outbox table {schema}.{TABLE} is installed")


@outbox.command("purge")
@click.option("--schema", default=None, help="Schema of the outbox table [default: COHORTFLOW_OUTBOX_SCHEMA].")
@click.option("--older-than-hours", type=click.FloatRange(0), default=168, show_default=True,
              help="Delete rows sent longer ago than this.")
@pass_context
def outbox_purge(ctx: Context, schema: str | None, older_than_hours: float) -> None:
    """Delete rows that were sent long ago (unsent rows are never deleted)."""
    from cohortflow.producers.outbox import purge
    from cohortflow.stores.postgres import connect

    with connect(ctx.settings, database="outbox") as conn:
        deleted = purge(conn, schema=schema or ctx.settings.outbox_schema, older_than_seconds=older_than_hours * 3600)
    out.print(f"deleted {deleted:,} sent rows")


class _Duration(click.ParamType):
    name = "duration"

    def convert(self, value, param, ctx):  # click's signature
        from cohortflow.producers.simulator import parse_duration

        if isinstance(value, (int, float)):
            return float(value)
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        if seconds <= 0:
            self.fail("must be positive", param, ctx)
        return seconds


@click.command()
@click.option("--campuses", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--students", type=click.IntRange(1, 10_000_000), default=50_000, show_default=True)
@click.option("--rate", type=click.FloatRange(1, 1_000_000), default=5000, show_default=True,
              help="Records per second to send.")
@click.option("--duration", type=_Duration(), default="10m", show_default=True,
              help="How long to send, e.g. 90s, 10m, 1h: rate x duration records in all.")
@click.option("--seed", type=int, default=1, show_default=True, help="Same seed, same records (event ids included).")
@click.option("--start", type=click.DateTime(formats=["%Y-%m-%d"]), default="2026-09-07", show_default=True,
              help="UTC date of the cohort's first day (event time).")
@click.option("--dry-run", is_flag=True, help="Write the records to --out as JSON lines instead of sending them.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="File for --dry-run.")
@click.option("--compression", type=click.Choice(["gzip", "none"]), default="gzip", show_default=True)
@pass_context
def simulate(ctx: Context, campuses: int, students: int, rate: float, duration: float, seed: int, start,
             dry_run: bool, out: Path | None, compression: str) -> None:
    """Send a realistic cohort day (and the next ones) to the contract's topics at a steady rate.

    Enrolments, mentor assignments and reassignments, morning login peaks, submissions per pillar with
    rejections and resubmissions, mentor reviews after realistic delays, audit records, notifications
    and their reads. Deterministic for a seed.
    """
    import asyncio
    from datetime import UTC

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from cohortflow.producers import simulator

    if students < campuses:
        raise click.BadParameter("need at least as many students as campuses", param_hint="--students")
    if dry_run and out is None:
        raise click.BadParameter("--dry-run needs --out FILE", param_hint="--out")
    settings = ctx.settings
    total = int(rate * duration)
    records = simulator.cohort_records(seed=seed, campuses=campuses, students=students, pillars=settings.pillars,
                                       start=start.replace(tzinfo=UTC))
    progress = Progress(TextColumn("[bold]simulate"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[speed]}"), TimeElapsedColumn(), console=console)
    task = progress.add_task("simulate", total=total, speed="")
    began = [0.0]

    def update(done: int) -> None:
        import time

        now = time.perf_counter()
        began[0] = began[0] or now
        progress.update(task, completed=done, speed=f"{done / max(now - began[0], 1e-3):,.0f} records/s")

    target = f"file {out}" if dry_run else f"Kafka {settings.kafka_bootstrap} (topics {settings.topic_prefix}*)"
    console.print(f"simulating {students:,} students on {campuses} campuses, seed {seed}: {total:,} records "
                  f"-> {target}" + ("" if dry_run else f" at {rate:,.0f}/s"))
    with progress:
        if dry_run:
            stats = simulator.write_jsonl(records, total, out, settings.topic_prefix, update)  # type: ignore[arg-type]
        else:
            stats = asyncio.run(simulator.send(settings, records, total, rate, update,
                                               None if compression == "none" else compression))
    console.print(f"{'wrote' if dry_run else 'sent'} {stats.records:,} records in {stats.seconds:.1f} s"
                  f" ({stats.rate:,.0f} records/s"
                  + ("" if dry_run else f", target {rate:,.0f}/s") + ")")


@click.command()
@click.option("--url", default=None, help="Base URL of the read API [default: http://COHORTFLOW_API_HOST:PORT].")
@click.option("--token", default=None, help="A bearer token with scope views:read.")
@click.option("--token-file", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="A file holding the token (what `make demo` writes).")
@click.option("--interval", type=click.FloatRange(0.1, 60), default=1.0, show_default=True,
              help="Seconds between polls.")
@click.option("--once", is_flag=True,
              help="Print the tables once figures are there and exit (exit 1 if none after --wait).")
@click.option("--wait", type=click.FloatRange(0), default=60, show_default=True,
              help="With --once: most seconds to wait.")
@pass_context
def watch(ctx: Context, url: str | None, token: str | None, token_file: Path | None, interval: float, once: bool,
          wait: float) -> None:
    """A live table of a few floors and mentors, refreshed from the read API every second (Ctrl-C quits)."""
    import time

    import httpx
    from rich.live import Live

    from cohortflow.producers.watch import Snapshot, nonzero, poll, render

    if token_file is not None:
        token = token_file.read_text().strip()
    if not token:
        raise click.UsageError("give --token or --token-file (cohortflow tokens create --name me --scope views:read)")
    settings = ctx.settings
    host = "127.0.0.1" if settings.api_host in ("0.0.0.0", "::") else settings.api_host
    url = url or f"http://{host}:{settings.api_port}"
    started = time.monotonic()
    snapshot = Snapshot()
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=5) as client:
        if once:
            while not (poll(client, snapshot, started) and nonzero(snapshot)) and time.monotonic() - started < wait:
                time.sleep(interval)
            out.print(render(snapshot, url, time.monotonic() - started))
            if not nonzero(snapshot):
                raise click.ClickException(f"no floor and mentor figures from {url} within {wait:g} s")
            return
        try:
            with Live(render(snapshot, url, 0), console=out, refresh_per_second=4, screen=False) as live:
                while True:
                    poll(client, snapshot, started)
                    live.update(render(snapshot, url, time.monotonic() - started))
                    time.sleep(interval)
        except KeyboardInterrupt:
            pass
