"""`cohortflow audit`: archive, restore and inspect the monthly partitions of the audit trail."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import click
import psycopg

from cohortflow.commands.context import Context, out, pass_context
from cohortflow.errors import SettingsError

_AGE = re.compile(r"^\s*(\d+)\s*([dwh]?)\s*$")


def parse_age(text: str) -> timedelta:
    """``90d``, ``12w``, ``48h`` or a bare number of days."""
    match = _AGE.match(text)
    if not match or int(match.group(1)) == 0:
        raise click.BadParameter(f"{text!r}: expected an age such as 90d, 12w or 48h")
    n, unit = int(match.group(1)), match.group(2) or "d"
    return {"d": timedelta(days=n), "w": timedelta(weeks=n), "h": timedelta(hours=n)}[unit]


@contextmanager
def _connect(ctx: Context) -> Iterator[psycopg.Connection]:
    from cohortflow.stores.postgres import connect, scalar

    with connect(ctx.settings, autocommit=True) as conn:
        found = conn.execute("SELECT to_regclass(%s)", [f'"{ctx.settings.postgres_schema}".audit_log']).fetchone()
        if not scalar(found):
            raise SettingsError(f"schema {ctx.settings.postgres_schema} has no audit_log: run `cohortflow migrate` "
                                "(or check COHORTFLOW_POSTGRES_SCHEMA)")
        yield conn


@click.group()
def audit() -> None:
    """The audit trail: monthly partitions of audit_log, archive and restore.

    Queries go through the read API (GET /v1/audit, scope audit:read).
    """


@audit.command("stats")
@pass_context
def audit_stats(ctx: Context) -> None:
    """Rows and size of every monthly partition, live and archived."""
    from rich.table import Table

    from cohortflow.stores import audit as trail

    with _connect(ctx) as conn:
        found = trail.stats(conn, ctx.settings.postgres_schema)
    table = Table("partition", "schema", "state", "rows", "size")
    for s in found:
        table.add_row(s.name, s.schema, "live" if s.attached else "archived", f"{s.rows:,}", _size(s.bytes))
    table.add_section()
    table.add_row("total", "", "", f"{sum(s.rows for s in found):,}", _size(sum(s.bytes for s in found)))
    out.print(table)


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return str(n)


@audit.command("archive")
@click.option("--older-than", "older_than", default="90d", show_default=True,
              callback=lambda _ctx, _param, value: (value, parse_age(value)),
              help="Archive the months that ended longer ago than this (e.g. 90d, 12w).")
@click.option("--export", "export_to", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also write each month as DIR/audit_log_yYYYYmMM.jsonl.gz with a .sha256 beside it.")
@click.option("--drop", is_flag=True, help="With --export: drop each archived table once its export is verified.")
@pass_context
def audit_archive(ctx: Context, older_than: tuple[str, timedelta], export_to: Path | None, drop: bool) -> None:
    """Detach whole months past the horizon into <schema>_archive (one transaction per month).

    Rows are counted before and after the move (and in the export, read back), and
    a month whose counts differ is left untouched.
    """
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from cohortflow.stores import audit as trail

    shown, age = older_than
    with _connect(ctx) as conn, Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                                         console=out, transient=True) as progress:
        task = progress.add_task("looking for months to archive")
        done = trail.archive(conn, ctx.settings.postgres_schema, age, export_to=export_to, drop=drop,
                             progress=lambda name: progress.update(task, description=f"archiving {name}"))
    if not done:
        out.print(f"nothing to archive: no live month ended more than {shown} ago")
    for a in done:
        where = (f"{a.file} (sha256 {(a.sha256 or '')[:12]}…)" if a.file
                 else trail.archive_schema(ctx.settings.postgres_schema))
        out.print(f"{a.month:%Y-%m}: {a.rows:,} rows archived to {where}{', table dropped' if a.dropped else ''}"
                  f" in {a.seconds:.2f} s")


@audit.command("restore")
@click.argument("month")
@click.option("--from", "from_dir", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None,
              help="Restore from the export in DIR when the month's table was dropped.")
@pass_context
def audit_restore(ctx: Context, month: str, from_dir: Path | None) -> None:
    """Bring MONTH (YYYY-MM) back into audit_log, merging records that arrived late meanwhile."""
    from cohortflow.stores import audit as trail

    when = trail.parse_month(month)
    with _connect(ctx) as conn:
        done = trail.restore(conn, ctx.settings.postgres_schema, when, from_dir=from_dir)
    out.print(f"{done.month:%Y-%m}: {done.rows:,} rows back in audit_log in {done.seconds:.2f} s")
