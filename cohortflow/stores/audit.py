"""The audit trail: every accepted ``audit.recorded`` once, in monthly partitions of ``audit_log``.

- **Ingest** (:func:`write`): inside the worker's batch transaction, beside the
  offsets: the months the batch touches get their partition if missing
  (``audit_ensure_months``), the rows go by binary COPY into a temp table and
  from there by one ``INSERT ... ON CONFLICT DO NOTHING`` (the key
  ``(occurred_at, event_id)`` absorbs a record seen again past the fold's
  deduplication horizon).
- **Query** (:func:`page`): newest first, keyset pagination on
  ``(occurred_at, event_id)``, so page 1,000 costs what page 1 does.
- **Archive** (:func:`archive`, :func:`restore`): whole months past a horizon are
  detached and moved to the schema ``<schema>_archive`` (optionally also
  exported to gzip JSON lines with a SHA-256 file); counts are checked before
  anything is moved or dropped.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg import sql

from cohortflow.contract.events import AuditRecorded
from cohortflow.errors import CohortflowError
from cohortflow.stores.postgres import copy_rows, scalar

COLUMNS = ("event_id", "occurred_at", "actor_id", "action", "entity_type", "entity_id", "metadata", "source")
_SELECT = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
_MAX_LIMIT = 1000


class AuditError(CohortflowError):
    """An archive or restore cannot go ahead (nothing was changed)."""

    exit_code = 4


class BadAuditQuery(CohortflowError):
    """A filter or cursor of an audit query is wrong; ``parameter`` names it (an API 4xx)."""

    exit_code = 2

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter


# --- partitions ---------------------------------------------------------------------------
def month_of(moment: datetime | date) -> date:
    return date(moment.year, moment.month, 1)


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def partition_name(month: date) -> str:
    return f"audit_log_y{month.year:04d}m{month.month:02d}"


def parse_month(text: str) -> date:
    """``YYYY-MM`` (or a partition name) as the first day of that month."""
    raw = text.strip()
    if raw.startswith("audit_log_y"):
        raw = raw[len("audit_log_y"):].replace("m", "-", 1)
    try:
        return datetime.strptime(raw, "%Y-%m").date()
    except ValueError:
        raise AuditError(f"month {text!r}: expected YYYY-MM, e.g. 2026-08") from None


def archive_schema(schema: str) -> str:
    return f"{schema}_archive"[:63]


async def ensure_ahead(conn: psycopg.AsyncConnection, today: date | None = None, ahead: int = 2) -> int:
    """Create the partitions of last month, this month and ``ahead`` more (idempotent)."""
    month = month_of(today or datetime.now(UTC).date())
    months = [date(month.year - (month.month == 1), (month.month - 2) % 12 + 1, 1), month]
    for _ in range(ahead):
        months.append(next_month(months[-1]))
    cur = await conn.execute("SELECT audit_ensure_months(%s::date[])", [months])
    return scalar(await cur.fetchone())


# --- ingest -------------------------------------------------------------------------------
def _row(event: AuditRecorded) -> tuple:
    data = event.data
    metadata = None if data.metadata is None else orjson.dumps(data.metadata).decode()
    return (event.occurred_at, event.event_id, data.actor_id, data.action, data.entity_type, data.entity_id,
            metadata, event.source)


STAGING_TABLE = (
    "CREATE TEMP TABLE IF NOT EXISTS audit_batch (occurred_at timestamptz, event_id text, actor_id text,"
    " action text, entity_type text, entity_id text, metadata text, source text) ON COMMIT DELETE ROWS"
)
"""The session's staging table (the worker's connections create it once, see :func:`cohortflow.stores.sink.pool`)."""

APPLY = (
    "WITH staged AS (DELETE FROM audit_batch RETURNING *)"
    " INSERT INTO audit_log (occurred_at, event_id, actor_id, action, entity_type, entity_id, metadata, source)"
    " SELECT occurred_at, event_id, actor_id, action, entity_type, entity_id, metadata::json, source"
    " FROM staged ORDER BY occurred_at, event_id ON CONFLICT DO NOTHING"
)
"""Moves the staged rows into ``audit_log`` (emptying the staging table): one statement, pipeline-friendly."""


async def stage(conn: psycopg.AsyncConnection, events: Iterable[AuditRecorded]) -> list[date]:
    """COPY the rows of ``events`` into the staging table; return the months whose partitions they need.

    Follow with ``audit_ensure_months`` for those months, then :data:`APPLY`, in the same transaction.
    """
    rows = [_row(e) for e in events]
    if not rows:
        return []
    await copy_rows(conn, "audit_batch (occurred_at, event_id, actor_id, action, entity_type, entity_id, metadata,"
                    " source)", rows, ["timestamptz", "text", "text", "text", "text", "text", "text", "text"])
    return sorted({month_of(r[0]) for r in rows})


async def write(conn: psycopg.AsyncConnection, events: Iterable[AuditRecorded]) -> int:
    """Insert the audit events of a batch (call inside its transaction); return the rows added."""
    await conn.execute(STAGING_TABLE)
    months = await stage(conn, events)
    if not months:
        return 0
    await conn.execute("SELECT audit_ensure_months(%s::date[])", [months])
    return (await conn.execute(APPLY)).rowcount


# --- query --------------------------------------------------------------------------------
@dataclass(frozen=True)
class AuditFilter:
    actor_id: str | None = None
    entity_type: str | None = None
    entity_id: str | None = None
    action: str | None = None
    since: datetime | None = None  # inclusive lower bound of occurred_at
    until: datetime | None = None  # exclusive upper bound of occurred_at

    def check(self) -> None:
        for name in ("actor_id", "entity_type", "entity_id", "action"):
            value = getattr(self, name)
            if value is not None and not (0 < len(value) <= 256) or value is not None and "\x00" in value:
                raise BadAuditQuery(name, f"{name}: expected 1 to 256 characters")
        if self.entity_id is not None and self.entity_type is None:
            raise BadAuditQuery("entity_type", "entity_type: required with entity_id (entities are typed)")
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise BadAuditQuery("from" if name == "since" else "to",
                                    f"{'from' if name == 'since' else 'to'}: expected a time with a UTC offset")
        if self.since is not None and self.until is not None and self.since > self.until:
            raise BadAuditQuery("from", "from: must not be after to")

    def fingerprint(self) -> str:
        """Ties a cursor to the filters it was made with."""
        text = orjson.dumps([self.actor_id, self.entity_type, self.entity_id, self.action,
                             self.since.isoformat() if self.since else None,
                             self.until.isoformat() if self.until else None])
        return hashlib.blake2b(text, digest_size=6).hexdigest()


@dataclass(frozen=True)
class AuditPage:
    # newest first: event_id, occurred_at, actor_id, action, entity_type, entity_id, metadata, source
    rows: list[dict[str, Any]]
    next_cursor: str | None  # None on the last page


def encode_cursor(flt: AuditFilter, occurred_at: datetime, event_id: str) -> str:
    us = (occurred_at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    raw = orjson.dumps([flt.fingerprint(), us, event_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(flt: AuditFilter, cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        fingerprint, us, event_id = orjson.loads(raw)
        if not (isinstance(us, int) and isinstance(event_id, str) and isinstance(fingerprint, str)):
            raise ValueError(cursor)
        moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)
    except (ValueError, TypeError, binascii.Error, OverflowError, orjson.JSONDecodeError):
        raise BadAuditQuery("cursor", "cursor: not a cursor this API returned") from None
    if fingerprint != flt.fingerprint():
        raise BadAuditQuery("cursor", "cursor: made for other filters; pass the same filters as the first page")
    return moment, event_id


def _page_query(flt: AuditFilter, after: tuple[datetime, str] | None, limit: int) -> tuple[sql.Composed, list]:
    where: list[sql.Composable] = []
    params: list[Any] = []
    for name in ("actor_id", "entity_type", "entity_id", "action"):
        value = getattr(flt, name)
        if value is not None:
            where.append(sql.SQL("{} = %s").format(sql.Identifier(name)))
            params.append(value)
    if flt.since is not None:
        where.append(sql.SQL("occurred_at >= %s"))
        params.append(flt.since)
    if flt.until is not None:
        where.append(sql.SQL("occurred_at < %s"))
        params.append(flt.until)
    if after is not None:
        where.append(sql.SQL("(occurred_at, event_id) < (%s, %s)"))
        params.extend(after)
    query = sql.SQL("SELECT {} FROM audit_log{} ORDER BY occurred_at DESC, event_id DESC LIMIT %s").format(
        _SELECT, sql.SQL(" WHERE ") + sql.SQL(" AND ").join(where) if where else sql.SQL(""))
    params.append(limit + 1)
    return query, params


async def page(conn: psycopg.AsyncConnection, schema: str, flt: AuditFilter, *, limit: int,
               cursor: str | None) -> AuditPage:
    """One page newest first, keyset-paginated; :class:`BadAuditQuery` for a bad filter or cursor.

    ``conn`` must have ``schema`` on its search_path (the pools of the worker and the API do).
    """
    if not 1 <= limit <= _MAX_LIMIT:
        raise BadAuditQuery("limit", f"limit: expected 1 to {_MAX_LIMIT}")
    flt.check()
    after = decode_cursor(flt, cursor) if cursor else None
    query, params = _page_query(flt, after, limit)
    cur = await conn.execute(query, params)
    found = await cur.fetchall()
    rows = [dict(zip(COLUMNS, r)) for r in found[:limit]]
    more = len(found) > limit
    return AuditPage(rows, encode_cursor(flt, rows[-1]["occurred_at"], rows[-1]["event_id"]) if more else None)


# --- stats, archive, restore (synchronous: command-line work) ---------------------------------
@dataclass(frozen=True)
class PartitionStat:
    schema: str
    name: str
    month: date
    rows: int
    bytes: int
    attached: bool


def stats(conn: psycopg.Connection, schema: str) -> list[PartitionStat]:
    """Every monthly partition, live (attached) and archived, with its exact rows and total size."""
    found = conn.execute(
        "SELECT n.nspname, c.relname, i.inhparent IS NOT NULL FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " LEFT JOIN pg_inherits i ON i.inhrelid = c.oid"
        " WHERE n.nspname IN (%s, %s) AND c.relkind = 'r' AND c.relname ~ '^audit_log_y[0-9]{4}m[0-9]{2}$'"
        " ORDER BY c.relname, n.nspname",
        [schema, archive_schema(schema)],
    ).fetchall()
    out = []
    for nsp, name, attached in found:
        table = sql.Identifier(nsp, name)
        rows = scalar(conn.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone())
        size = scalar(conn.execute("SELECT pg_total_relation_size(%s::regclass)",
                                   [f'"{nsp}"."{name}"']).fetchone())
        out.append(PartitionStat(nsp, name, parse_month(name), rows, size, attached))
    return out


@dataclass(frozen=True)
class Archived:
    month: date
    rows: int
    seconds: float
    file: Path | None = None
    sha256: str | None = None
    dropped: bool = False


def _count(conn: psycopg.Connection, schema: str, name: str) -> int:
    return scalar(conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, name))).fetchone())


def export_file(directory: Path, month: date) -> Path:
    return directory / f"{partition_name(month)}.jsonl.gz"


def _export(conn: psycopg.Connection, schema: str, name: str, path: Path) -> tuple[int, str]:
    """Write a partition as gzip JSON lines (one row per line, metadata verbatim); return (rows, sha256)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    rows = 0
    with gzip.open(tmp, "wb", compresslevel=6) as out, conn.cursor(name=f"ex_{name}") as cur:
        cur.itersize = 10_000
        cur.execute(sql.SQL("SELECT {}, metadata::text FROM {} ORDER BY occurred_at, event_id").format(
            sql.SQL(", ").join(map(sql.Identifier, COLUMNS[:6] + ("source",))), sql.Identifier(schema, name)))
        for event_id, occurred_at, actor, action, etype, eid, source, metadata in cur:
            line = orjson.dumps({"event_id": event_id, "occurred_at": occurred_at.isoformat(), "actor_id": actor,
                                 "action": action, "entity_type": etype, "entity_id": eid,
                                 "metadata": orjson.Fragment(metadata) if metadata is not None else None,
                                 "source": source})
            out.write(line + b"\n")
            rows += 1
    digest = _sha256(tmp)
    tmp.rename(path)
    Path(str(path) + ".sha256").write_text(f"{digest}  {path.name}\n")
    return rows, digest


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _verify_file(path: Path) -> tuple[int, str]:
    """(rows, sha256) of an export after checking it against its .sha256 file."""
    sums = Path(str(path) + ".sha256")
    if not path.exists() or not sums.exists():
        raise AuditError(f"{path}: export or its .sha256 file is missing")
    expected = sums.read_text().split()[0]
    actual = _sha256(path)
    if actual != expected:
        raise AuditError(f"{path}: SHA-256 {actual} differs from {expected} in {sums.name}; the file is damaged")
    with gzip.open(path, "rb") as f:
        rows = sum(1 for _ in f)
    return rows, actual


def archive(conn: psycopg.Connection, schema: str, older_than: timedelta, *, export_to: Path | None = None,
            drop: bool = False, now: datetime | None = None,
            progress: Callable[[str], None] | None = None) -> list[Archived]:
    """Move every live month that ended more than ``older_than`` ago to ``<schema>_archive``.

    One transaction per month: the partition is locked against writes, counted,
    (exported and the export re-read and counted), detached and moved, and the
    count is checked again in its new place before commit. ``drop`` (only with
    ``export_to``) drops the archived table once its export is verified.
    """
    if drop and export_to is None:
        raise AuditError("--drop needs --export DIR: the rows must be kept somewhere before the table goes")
    horizon = (now or datetime.now(UTC)) - older_than
    archive_to = archive_schema(schema)
    done: list[Archived] = []
    if not conn.autocommit:
        raise TypeError("archive needs an autocommit connection: one transaction per month")
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(archive_to)))
    for stat in stats(conn, schema):
        if not stat.attached or stat.schema != schema:
            continue
        end = next_month(stat.month)
        if datetime(end.year, end.month, 1, tzinfo=UTC) > horizon:
            continue
        if progress:
            progress(stat.name)
        began = datetime.now(UTC)
        name = stat.name
        with conn.transaction():
            conn.execute(sql.SQL("LOCK TABLE {} IN SHARE MODE").format(sql.Identifier(schema, name)))
            if conn.execute("SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                            " WHERE n.nspname = %s AND c.relname = %s", [archive_to, name]).fetchone():
                raise AuditError(f"{archive_to}.{name} already exists: restore it first (cohortflow audit restore "
                                 f"{stat.month:%Y-%m}), then archive again")
            rows = _count(conn, schema, name)
            file = digest = None
            if export_to is not None:
                file = export_file(export_to, stat.month)
                exported, digest = _export(conn, schema, name, file)
                reread, _ = _verify_file(file)
                if not rows == exported == reread:
                    raise AuditError(f"{name}: {rows} rows in the table but {exported} exported and {reread} read "
                                     "back; nothing was archived")
            conn.execute(sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(
                sql.Identifier(schema, "audit_log"), sql.Identifier(schema, name)))
            conn.execute(sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(
                sql.Identifier(schema, name), sql.Identifier(archive_to)))
            moved = _count(conn, archive_to, name)
            if moved != rows:
                raise AuditError(f"{name}: {rows} rows before the move, {moved} after; rolled back")
            dropped = False
            if drop:
                conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(archive_to, name)))
                dropped = True
        done.append(Archived(stat.month, rows, (datetime.now(UTC) - began).total_seconds(), file, digest, dropped))
    return done


def restore(conn: psycopg.Connection, schema: str, month: date, *, from_dir: Path | None = None) -> Archived:
    """Bring one archived month back into ``audit_log``, from the archive schema or from an export.

    Rows that arrived for that month after it was archived (late events got a
    fresh partition) are merged in; every row is checked to be there before the
    fresh partition is dropped.
    """
    name = partition_name(month)
    archive_to = archive_schema(schema)
    began = datetime.now(UTC)
    lower = datetime(month.year, month.month, 1, tzinfo=UTC)
    end = next_month(month)
    upper = datetime(end.year, end.month, 1, tzinfo=UTC)
    with conn.transaction():
        conn.execute(sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(sql.Identifier(schema, "audit_log")))
        in_archive = conn.execute(
            "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s"
            " AND c.relname = %s", [archive_to, name]).fetchone() is not None
        staging = f"{name}_restoring"  # built in the archive schema: its index names cannot clash there
        digest = None
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(archive_to)))
        if in_archive:
            conn.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(sql.Identifier(archive_to, name),
                                                                       sql.Identifier(staging)))
            expected = _count(conn, archive_to, staging)
        elif from_dir is not None:
            file = export_file(from_dir, month)
            expected, digest = _verify_file(file)
            conn.execute(sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS INCLUDING INDEXES)").format(
                sql.Identifier(archive_to, staging), sql.Identifier(schema, "audit_log")))
            with gzip.open(file, "rb") as f, conn.cursor().copy(sql.SQL(
                    "COPY {} (event_id, occurred_at, actor_id, action, entity_type, entity_id, metadata, source)"
                    " FROM STDIN").format(sql.Identifier(archive_to, staging))) as copy:
                for line in f:
                    r = orjson.loads(line)
                    meta = orjson.dumps(r["metadata"]).decode() if r["metadata"] is not None else None
                    copy.write_row((r["event_id"], r["occurred_at"], r["actor_id"], r["action"], r["entity_type"],
                                    r["entity_id"], meta, r["source"]))
            loaded = _count(conn, archive_to, staging)
            if loaded != expected:
                raise AuditError(f"{file}: {expected} lines but {loaded} rows loaded; nothing restored")
        else:
            raise AuditError(f"{name} is not in {archive_to}; pass --from DIR to restore it from an export")
        late = 0
        live = conn.execute(
            "SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_namespace n"
            " ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s", [schema, name]).fetchone()
        if live:  # late records for the month arrived while it was archived
            late = _count(conn, schema, name)
            conn.execute(sql.SQL("INSERT INTO {} SELECT * FROM {} ON CONFLICT DO NOTHING").format(
                sql.Identifier(archive_to, staging), sql.Identifier(schema, name)))
            conn.execute(sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(
                sql.Identifier(schema, "audit_log"), sql.Identifier(schema, name)))
            conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(schema, name)))
        total = _count(conn, archive_to, staging)
        if total < expected or total > expected + late:
            raise AuditError(f"{name}: expected {expected} archived rows (+{late} late), found {total}; rolled back")
        conn.execute(sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(sql.Identifier(archive_to, staging),
                                                                    sql.Identifier(schema)))
        conn.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(sql.Identifier(schema, staging),
                                                                   sql.Identifier(name)))
        conn.execute(sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
            sql.Identifier(schema, "audit_log"), sql.Identifier(schema, name), sql.Literal(lower),
            sql.Literal(upper)))
    return Archived(month, total, (datetime.now(UTC) - began).total_seconds(), None, digest)
