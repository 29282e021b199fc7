"""The demo's live terminal table: a few floors and mentors, read from the read API every second.

It only reads the public API (``GET /v1/floors``, ``GET /v1/mentors``), as a
dashboard would, and stays up while the API starts or restarts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

FLOORS_SHOWN = 8
MENTORS_SHOWN = 10
PAGES = 4  # of 500 rows: 2,000 mentors, the default simulated cohort's


@dataclass
class Snapshot:
    """The last answer of the API (or why there is none yet)."""

    floors: list[dict[str, Any]] = field(default_factory=list)
    mentors: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    first_nonzero_after: float | None = None


def poll(client: Any, snapshot: Snapshot, started: float) -> Snapshot:
    """Refresh ``snapshot`` from the API; a failure is shown, never raised (the API may be starting)."""
    import httpx

    try:
        floors = _rows(client, "/v1/floors")
        mentors = _rows(client, "/v1/mentors")
    except _Refused as exc:
        snapshot.error = f"the API refused the token ({exc}): check --token"
        return snapshot
    except (httpx.HTTPError, ValueError, KeyError) as exc:  # down, starting, or not the JSON of a page yet
        snapshot.error = f"waiting for the API at {client.base_url} ({type(exc).__name__})"
        return snapshot
    snapshot.floors = floors
    snapshot.mentors = mentors
    snapshot.error = None
    if snapshot.first_nonzero_after is None and nonzero(snapshot):
        snapshot.first_nonzero_after = time.monotonic() - started
    return snapshot


class _Refused(Exception):
    pass


def _rows(client: Any, path: str) -> list[dict[str, Any]]:
    """Up to :data:`PAGES` pages of a view (the API's rate limit allows ~20 requests/s per token)."""
    rows: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 500}
    for _ in range(PAGES):
        response = client.get(path, params=params)
        if response.status_code in (401, 403):
            raise _Refused(response.status_code)
        response.raise_for_status()
        page = response.json()
        rows += page["items"]
        if not page.get("next_cursor"):
            break
        params["cursor"] = page["next_cursor"]
    return rows


def nonzero(snapshot: Snapshot) -> bool:
    """Floors and mentors both show figures (students on a floor, students assigned to a mentor)."""
    return any(f["students_total"] for f in snapshot.floors) and any(
        m["assigned_students"] or m["reviews_completed"] for m in snapshot.mentors)


def render(snapshot: Snapshot, base_url: str, elapsed: float) -> Group:
    """Two tables: the busiest floors, and the mentors with the most pending reviews."""
    floors = sorted(snapshot.floors, key=lambda f: (-f["students_total"], f["campus"], f["floor"]))[:FLOORS_SHOWN]
    table = Table(title="floors (busiest first)", title_justify="left")
    for column in ("floor", "students", "assigned", "mentors", "pending", "approved", "rejected", "done %"):
        table.add_column(column, justify="left" if column == "floor" else "right", no_wrap=True)
    for f in floors:
        table.add_row(f"{f['campus']}/{f['floor']}", f"{f['students_total']:,}", f"{f['students_assigned']:,}",
                      f"{f['mentors_total']:,}", f"{f['submissions_pending']:,}", f"{f['submissions_approved']:,}",
                      f"{f['submissions_rejected']:,}", f"{float(f['avg_completion']):.2f}")
    mentors = sorted(snapshot.mentors, key=lambda m: (-m["pending_reviews"], -m["reviews_completed"],
                                                      m["mentor_id"]))[:MENTORS_SHOWN]
    mtable = Table(title="mentors (most pending reviews first)", title_justify="left")
    for column in ("mentor", "floor", "students", "pending", "reviews", "approved", "avg review", "workload"):
        mtable.add_column(column, justify="left" if column in ("mentor", "floor", "workload") else "right",
                          no_wrap=True)
    for m in mentors:
        rate = "-" if m["approval_rate"] is None else f"{float(m['approval_rate']):.0%}"
        seconds = "-" if m["avg_review_seconds"] is None else f"{float(m['avg_review_seconds']) / 60:.0f} min"
        mtable.add_row(m["mentor_id"], f"{m['campus'] or '?'}/{m['floor'] or '?'}", f"{m['assigned_students']:,}",
                       f"{m['pending_reviews']:,}", f"{m['reviews_completed']:,}", rate, seconds, m["workload"])
    status = Text(f"{base_url}  ·  {len(snapshot.floors)} floors, {len(snapshot.mentors)} mentors  ·  "
                  f"{elapsed:.0f} s", style="dim")
    if snapshot.first_nonzero_after is not None:
        status.append(f"  ·  first figures after {snapshot.first_nonzero_after:.1f} s", style="green")
    if snapshot.error:
        status.append(f"\n{snapshot.error}", style="yellow")
    return Group(status, table, mtable)
