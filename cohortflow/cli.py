"""The `cohortflow` command line, the composition root: every subcommand has --help.

Subcommands import their machinery lazily, so `--help` and bad settings answer
fast and a missing service only matters to the command that needs it.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from cohortflow.commands import api, audit, producers
from cohortflow.commands.context import Context, console, out, pass_context
from cohortflow.errors import CohortflowError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="cohortflow")
def cli() -> None:
    """cohortflow: exactly-once analytics views folded from Kafka into PostgreSQL and Redis.

    Settings come from COHORTFLOW_* environment variables; `cohortflow settings` shows them.
    """


@cli.command("settings")
@pass_context
def show_settings(ctx: Context) -> None:
    """Validate the COHORTFLOW_* variables and print the effective settings (passwords masked)."""
    table = Table("variable", "value")
    for name, value in ctx.settings.redacted().items():
        table.add_row(name, value)
    out.print(table)


@cli.group()
def topics() -> None:
    """Manage the contract's Kafka topics."""


@topics.command("ensure")
@click.option("--partitions", type=click.IntRange(1, 10_000), default=None,
              help="Partitions for topics created now [default: COHORTFLOW_PARTITIONS].")
@pass_context
def topics_ensure(ctx: Context, partitions: int | None) -> None:
    """Create the missing contract topics and check the existing ones (exit 4 on a mismatch)."""
    from cohortflow.pipeline.topics import check, ensure_topics

    states = asyncio.run(ensure_topics(ctx.settings, partitions))
    table = Table("topic", "partitions", "state")
    for state in states:
        table.add_row(state.name, str(state.partitions), state.action)
    out.print(table)
    check(states)


@topics.command("list")
@pass_context
def topics_list(ctx: Context) -> None:
    """Show the contract topics and their partition counts on the broker."""
    from cohortflow.pipeline.topics import admin_client, contract_topics, describe

    async def run() -> dict[str, int]:
        async with admin_client(ctx.settings) as admin:
            return await describe(admin, contract_topics(ctx.settings))

    counts = asyncio.run(run())
    table = Table("topic", "partitions")
    for name in contract_topics(ctx.settings):
        table.add_row(name, str(counts.get(name, "missing")))
    out.print(table)


@cli.command()
@pass_context
def migrate(ctx: Context) -> None:
    """Apply the database migrations to COHORTFLOW_POSTGRES_SCHEMA (idempotent, safe to run concurrently)."""
    from cohortflow.stores.migrate import migrate as apply

    applied = apply(ctx.settings)
    schema = ctx.settings.postgres_schema
    if applied:
        for m in applied:
            out.print(f"applied {m.version:04d}_{m.name} to schema {schema}")
    else:
        out.print(f"schema {schema} is up to date")


class ProcessCount(click.ParamType):
    """A number of processes, or ``auto`` for one per CPU this process may use."""

    name = "N|auto"

    def convert(self, value, param, ctx):  # click's signature
        from cohortflow.processes import cpu_count

        if isinstance(value, int):
            count = value
        elif str(value).strip().lower() == "auto":
            return cpu_count()
        else:
            try:
                count = int(value)
            except ValueError:
                self.fail(f"expected a number of processes (1-256) or 'auto', got {value!r}", param, ctx)
        if not 1 <= count <= 256:
            self.fail(f"expected a number of processes (1-256) or 'auto', got {value!r}", param, ctx)
        return count


@cli.command()
@click.option("--metrics/--no-metrics", default=True, show_default=True,
              help="Serve Prometheus /metrics on COHORTFLOW_METRICS_PORT (one endpoint for all processes).")
@click.option("--processes", type=ProcessCount(), default="auto", show_default=True,
              help="Worker processes under this one, members of one consumer group (auto: one per CPU); a dead "
                   "one is restarted, SIGTERM is passed on.")
@pass_context
def worker(ctx: Context, metrics: bool, processes: int) -> None:
    """Run the worker: fold the contract topics into the views (N workers share the partitions)."""
    settings = ctx.settings
    if processes == 1:
        from cohortflow.pipeline.workers import run_worker

        run_worker(settings, serve_metrics=metrics)
    else:
        from cohortflow.pipeline.workers import run_workers

        run_workers(settings, processes, serve_metrics=metrics)


def _progress(label: str):  # a rich Progress and a callback for it
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                        TimeRemainingColumn(), console=console)
    task = progress.add_task(label, total=None, rate="")
    started: list[float | None] = [None]

    def update(done: int, total: int) -> None:
        import time

        begun = started[0] = started[0] or time.monotonic()
        elapsed = max(time.monotonic() - begun, 1e-6)
        progress.update(task, completed=done, total=total, rate=f"{done / elapsed:,.0f} records/s")

    return progress, update


def _views_option(f):  # click decorator
    return click.option("--views", "views", default="floors,mentors,global,notifications", show_default=True,
                        help="Comma-separated views: floors, mentors, global, notifications.")(f)


@cli.command()
@_views_option
@click.option("--until", type=click.DateTime(formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z",
                                                        "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"]),
              help="Keep only events that occurred at or before this instant (UTC when no offset): the views "
                   "as they stood then.")
@click.option("--into", help="Schema to build into [default: <schema>_rebuild, or <schema>_asof_<T> with --until].")
@click.option("--swap", is_flag=True, help="Promote the rebuilt schema to live atomically (the worker may run).")
@click.option("--processes", type=click.IntRange(1, 256), default=None,
              help="Processes folding the log, each a share of the partitions [default: one per CPU].")
@pass_context
def rebuild(ctx: Context, views: str, until, into: str | None, swap: bool,
            processes: int | None) -> None:
    """Replay the topics from the start up to the current end into a shadow schema."""
    from datetime import UTC

    from cohortflow.pipeline.rebuild import rebuild as run

    if until is not None and until.tzinfo is None:
        until = until.replace(tzinfo=UTC)
    progress, update = _progress("replaying")
    with progress:
        result = run(ctx.settings, views=tuple(v.strip() for v in views.split(",") if v.strip()), until=until,
                     into=into, swap=swap, progress=update, processes=processes)
    stats = result.stats
    out.print(f"rebuilt {result.schema}: {stats.records:,} records ({stats.events:,} events, {stats.rejected:,} "
              f"rejected) in {result.seconds:.1f} s ({stats.records / max(result.seconds, 1e-9):,.0f} records/s)")
    if swap:
        out.print(f"swapped: {ctx.settings.postgres_schema} is live; the previous views are in schema "
                  f"{result.swapped_out or '(none existed)'} (drop it when you no longer need it)")


@cli.command()
@_views_option
@click.option("--repair", is_flag=True, help="Correct the live rows found different, in the same transaction.")
@pass_context
def validate(ctx: Context, views: str, repair: bool) -> None:
    """Compare the live views with a recomputation from the log, field by field (exit 1 on a difference)."""
    from cohortflow.pipeline.validate import validate as run

    progress, update = _progress("recomputing")
    with progress:
        result = run(ctx.settings, views=tuple(v.strip() for v in views.split(",") if v.strip()), repair=repair,
                     progress=update)
    table = Table("view", "key", "field", "live", "expected")
    for d in result.differences[:50]:
        table.add_row(d.view + (" (redis)" if d.table == "redis" else ""), ", ".join(map(str, d.key)), d.field,
                      str(d.live), str(d.expected))
    if result.differences:
        out.print(table)
    out.print(f"validate {result.run_id}: {result.compared_rows:,} rows compared, {len(result.differences)} "
              f"difference(s)" + (", repaired" if result.repaired and result.differences else "")
              + " (all in view_validation_log)")
    if result.differences and not result.repaired:
        sys.exit(1)


@cli.group()
def schemas() -> None:
    """The event contract as JSON Schema, for producers in other languages."""


@schemas.command("export")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@pass_context
def schemas_export(ctx: Context, directory: Path) -> None:
    """Write one JSON Schema per event type (and index.json) into DIRECTORY."""
    from cohortflow.contract.jsonschema import export

    written = export(directory, ctx.settings.contract)
    out.print(f"wrote {len(written)} files to {directory}")


# Commands kept in modules of their own; each keeps its heavy imports inside the command,
# so `cohortflow --help` stays fast.
for command in (api.api, api.tokens, producers.relay, producers.simulate, producers.outbox, producers.watch,
                audit.audit):
    cli.add_command(command)


def main() -> None:
    """Console-script entry point: cohortflow errors become one clear line and an exit code."""
    try:
        cli(standalone_mode=True)
    except CohortflowError as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
