"""Reading the views back from PostgreSQL, in the shape :meth:`cohortflow.core.memory.MemoryViews.views` returns."""

from __future__ import annotations

import json
from decimal import Decimal
from functools import partial
from typing import Any

import psycopg
from psycopg.types.json import set_json_loads

from cohortflow.core.memory import ViewRows

_loads = partial(json.loads, parse_float=Decimal)

FLOOR_COLUMNS = (
    "students_total", "students_assigned", "mentors_total", "submissions_pending", "submissions_approved",
    "submissions_rejected", "students_unassigned", "pillar_completed", "pillar_progress", "avg_completion", "as_of",
)
MENTOR_COLUMNS = (
    "campus", "floor", "active", "assigned_students", "pending_reviews", "reviews_completed", "approvals",
    "rejections", "approval_rate", "avg_review_seconds", "workload", "last_active_at", "as_of",
)
DAY_COLUMNS = (
    "submissions", "reviews", "approvals", "rejections", "logins", "failed_logins", "active_users", "audit_events",
    "notifications_created", "avg_review_seconds", "students_total", "mentors_total", "as_of",
)
GLOBAL_COLUMNS = ("students_total", "mentors_total", "unread_notifications", "campuses", "floors", "as_of")


def exact_json(conn: psycopg.Connection | psycopg.AsyncConnection) -> None:
    """Read jsonb numbers as Decimal on ``conn``, so 33.33 stays 33.33."""
    set_json_loads(_loads, conn)


def snapshot(conn: psycopg.Connection) -> ViewRows:
    """Every public view (``updated_at`` left out), read in one transaction."""
    exact_json(conn)
    out: ViewRows = {}
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        out["floor_summary"] = _keyed(conn, "floor_summary", ("campus", "floor"), FLOOR_COLUMNS)
        out["mentor_summary"] = _keyed(conn, "mentor_summary", ("mentor_id",), MENTOR_COLUMNS)
        out["global_daily"] = _keyed(conn, "global_daily", ("date",), DAY_COLUMNS)
        out["global_current"] = _keyed(conn, "global_current", (), GLOBAL_COLUMNS)
    return out


def _keyed(conn: psycopg.Connection, view: str, key: tuple[str, ...], columns: tuple[str, ...]) -> dict:
    query = f"SELECT {', '.join((*key, *columns))} FROM {view}"  # names are constants of this module
    rows: dict[Any, dict[str, Any]] = {}
    for row in conn.execute(query).fetchall():
        k = row[: len(key)]
        rows[k[0] if len(key) == 1 else (tuple(k) if key else None)] = dict(zip(columns, row[len(key):]))
    return rows
