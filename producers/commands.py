"""`cohortflow relay`, `outbox`, `simulate` and `watch`: registered by :mod:`cohortflow.cli`.

Heavy imports stay inside the commands so `cohortflow --help` answers fast.
"""

from __future__ import annotations

import click

from cohortflow.cli import Context, console, out, pass_context


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

    from producers.outbox import relay as run

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
    import psycopg

    from producers.outbox import TABLE, install

    schema = schema or ctx.settings.outbox_schema
    with psycopg.connect(ctx.settings.outbox_url) as conn:
        install(conn, schema)
    out.print(f"outbox table {schema}.{TABLE} is installed")


@outbox.command("purge")
@click.option("--schema", default=None, help="Schema of the outbox table [default: COHORTFLOW_OUTBOX_SCHEMA].")
@click.option("--older-than-hours", type=click.FloatRange(0), default=168, show_default=True,
              help="Delete rows sent longer ago than this.")
@pass_context
def outbox_purge(ctx: Context, schema: str | None, older_than_hours: float) -> None:
    """Delete rows that were sent long ago (unsent rows are never deleted)."""
    import psycopg

    from producers.outbox import purge

    with psycopg.connect(ctx.settings.outbox_url) as conn:
        deleted = purge(conn, schema=schema or ctx.settings.outbox_schema, older_than_seconds=older_than_hours * 3600)
    out.print(f"deleted {deleted:,} sent rows")
