"""The floor and mentor folds both peers run, as plain functions over JSON-able dicts.

Each peer keeps these dicts in its own framework's state (a Faust ``Table``, a
Quix Streams stateful ``apply``) and moves the deltas between keys its own way
(a Faust topic + agent, a Quix ``group_by``); only the arithmetic is shared,
so the comparison measures the frameworks, not two versions of the maths.

What the peers skip, compared with the contract (the report says so too):
arrival order decides ("latest" by ``occurred_at`` is ignored), no
deduplication of re-sent records, no dead-letter topic (bad records are
dropped), no ``as_of``, no ``last_active_at`` from logins, and no
global_daily / global_current / badges / audit trail: logins, audit and
notifications are consumed and decoded, then dropped.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

PILLARS = ("clt", "sri", "cfc", "iipc", "scd")
LOW_BELOW, OVERLOADED_ABOVE = 5, 20
FLOOR, MENTOR = "f|", "m|"

FLOOR_DDL = """
CREATE TABLE IF NOT EXISTS peer_floor_summary (
    campus text NOT NULL, floor text NOT NULL, students_total integer, students_assigned integer,
    students_unassigned integer, mentors_total integer, submissions_pending integer,
    submissions_approved integer, submissions_rejected integer, pillar_completed jsonb,
    pillar_progress jsonb, avg_completion numeric, updated_at timestamptz, PRIMARY KEY (campus, floor));
CREATE TABLE IF NOT EXISTS peer_mentor_summary (
    mentor_id text PRIMARY KEY, campus text, floor text, active boolean, assigned_students integer,
    pending_reviews integer, reviews_completed integer, approvals integer, rejections integer,
    approval_rate double precision, avg_review_seconds double precision, workload text, updated_at timestamptz);
"""
UPSERT_FLOOR = """
INSERT INTO peer_floor_summary VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now())
ON CONFLICT (campus, floor) DO UPDATE SET students_total = excluded.students_total,
  students_assigned = excluded.students_assigned, students_unassigned = excluded.students_unassigned,
  mentors_total = excluded.mentors_total, submissions_pending = excluded.submissions_pending,
  submissions_approved = excluded.submissions_approved, submissions_rejected = excluded.submissions_rejected,
  pillar_completed = excluded.pillar_completed, pillar_progress = excluded.pillar_progress,
  avg_completion = excluded.avg_completion, updated_at = now()
"""
UPSERT_MENTOR = """
INSERT INTO peer_mentor_summary VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now())
ON CONFLICT (mentor_id) DO UPDATE SET campus = excluded.campus, floor = excluded.floor, active = excluded.active,
  assigned_students = excluded.assigned_students, pending_reviews = excluded.pending_reviews,
  reviews_completed = excluded.reviews_completed, approvals = excluded.approvals, rejections = excluded.rejections,
  approval_rate = excluded.approval_rate, avg_review_seconds = excluded.avg_review_seconds,
  workload = excluded.workload, updated_at = now()
"""


def parse(value: bytes | None) -> dict | None:
    """The event of a record value, or None for anything that is not a usable JSON event."""
    try:
        event = orjson.loads(value) if value else None
    except orjson.JSONDecodeError:
        return None
    if not isinstance(event, dict) or not isinstance(event.get("data"), dict) or not isinstance(event.get("type"), str):
        return None
    return event


def _seconds(later: str, earlier: str | None) -> float | None:
    try:
        return max(0.0, (datetime.fromisoformat(later) - datetime.fromisoformat(earlier)).total_seconds())
    except (TypeError, ValueError):
        return None


def _contributions(state: dict) -> dict[str, dict[str, float]]:
    """What one entity (student or mentor) adds to each floor and mentor row."""
    out: dict[str, dict[str, float]] = {}
    if state.get("mentor_self"):  # a mentor's own state
        if state.get("active") and state.get("floor"):
            out[FLOOR + "|".join(state["floor"])] = {"mentors_total": 1}
        return out
    subs = state.get("subs", {})
    pending = sum(1 for s in subs.values() if s[2] == "pending")
    if state.get("active") and state.get("floor"):
        row = {"students_total": 1, "students_assigned": int(state.get("mentor") is not None),
               "submissions_pending": pending,
               "submissions_approved": sum(1 for s in subs.values() if s[2] == "approved"),
               "submissions_rejected": sum(1 for s in subs.values() if s[2] == "rejected")}
        for pillar in {s[0] for s in subs.values() if s[2] == "approved" and s[0]}:
            row["pillar:" + pillar] = 1
        out[FLOOR + "|".join(state["floor"])] = row
        if state.get("mentor"):
            out[MENTOR + state["mentor"]] = {"assigned_students": 1, "pending_reviews": pending}
    for mentor, decision, seconds in state.get("reviews", {}).values():
        row = out.setdefault(MENTOR + mentor, {})
        row["reviews_completed"] = row.get("reviews_completed", 0) + 1
        row["approvals" if decision == "approved" else "rejections"] = row.get(
            "approvals" if decision == "approved" else "rejections", 0) + 1
        if seconds is not None:
            row["review_seconds_sum"] = row.get("review_seconds_sum", 0) + seconds
            row["review_seconds_n"] = row.get("review_seconds_n", 0) + 1
    return out


def apply_event(state: dict, event: dict) -> list[tuple[str, dict]]:
    """Fold ``event`` into its entity's ``state`` (in place); the deltas to send, as (row key, delta)."""
    before = _contributions(state)
    kind, data, at = event["type"], event["data"], event.get("occurred_at")
    sets: list[tuple[str, dict]] = []
    match kind:
        case "student.enrolled":
            state.update(active=True, floor=[data["campus"], data["floor"]])
        case "student.transferred":
            state["floor"] = [data["campus"], data["floor"]]
        case "student.withdrawn":
            state["active"] = False
        case "student.assigned":
            state["mentor"] = data.get("mentor_id")
        case "mentor.joined" | "mentor.transferred" | "mentor.left":
            state["mentor_self"] = True
            if kind == "mentor.left":
                state["active"] = False
            else:
                state["floor"] = [data["campus"], data["floor"]]
                if kind == "mentor.joined":
                    state["active"] = True
            floor = state.get("floor") or [None, None]
            sets.append((MENTOR + data["mentor_id"], {"set": {"campus": floor[0], "floor": floor[1],
                                                              "active": bool(state.get("active"))}}))
        case "submission.submitted":
            subs = state.setdefault("subs", {})
            sub = subs.get(data["submission_id"])
            attempt = int(data["attempt"])
            if sub is None or attempt > sub[1]:
                subs[data["submission_id"]] = [data["pillar"], attempt, "pending", at]
            else:
                sub[0] = data["pillar"]
        case "review.completed":
            subs = state.setdefault("subs", {})
            sub = subs.setdefault(data["submission_id"], [None, int(data["attempt"]), "pending", None])
            if int(data["attempt"]) >= sub[1]:
                sub[1], sub[2] = int(data["attempt"]), data["decision"]
            seconds = _seconds(at, sub[3]) if sub[3] else None
            state.setdefault("reviews", {})[data["review_id"]] = [data["mentor_id"], data["decision"], seconds]
            sets.append((MENTOR + data["mentor_id"], {}))  # names the mentor even when nothing moves
        case _:
            return []
    after = _contributions(state)
    deltas = sets
    for key in before.keys() | after.keys():
        old, new = before.get(key, {}), after.get(key, {})
        delta = {f: new.get(f, 0) - old.get(f, 0) for f in old.keys() | new.keys()}
        delta = {f: d for f, d in delta.items() if d}
        if delta or key.startswith(FLOOR) and key not in before:
            deltas.append((key, {"add": delta}))
    return deltas


def apply_delta(row: dict, delta: dict) -> dict:
    """Add a delta (and its ``set`` fields) to a summary row's counts, in place."""
    for field, d in delta.get("add", {}).items():
        row[field] = row.get(field, 0) + d
    row.update(delta.get("set", {}))
    return row


def floor_params(key: str, row: dict) -> tuple:
    campus, floor = key[len(FLOOR):].split("|", 1)
    total = row.get("students_total", 0)
    completed = {p: row.get("pillar:" + p, 0) for p in PILLARS}
    progress = {p: round(100 * c / total, 2) if total else 0 for p, c in completed.items()}
    average = round(100 * sum(completed.values()) / (len(PILLARS) * total), 2) if total else 0
    return (campus, floor, total, row.get("students_assigned", 0), total - row.get("students_assigned", 0),
            row.get("mentors_total", 0), row.get("submissions_pending", 0), row.get("submissions_approved", 0),
            row.get("submissions_rejected", 0), orjson.dumps(completed).decode(), orjson.dumps(progress).decode(),
            average)


def mentor_params(key: str, row: dict) -> tuple:
    reviews, pending = row.get("reviews_completed", 0), row.get("pending_reviews", 0)
    n = row.get("review_seconds_n", 0)
    workload = "low" if pending < LOW_BELOW else "overloaded" if pending > OVERLOADED_ABOVE else "balanced"
    return (key[len(MENTOR):], row.get("campus"), row.get("floor"), row.get("active"), row.get("assigned_students", 0),
            pending, reviews, row.get("approvals", 0), row.get("rejections", 0),
            row.get("approvals", 0) / reviews if reviews else None,
            row.get("review_seconds_sum", 0) / n if n else None, workload)


def upsert(key: str, row: dict) -> tuple[str, tuple]:
    """The statement and parameters writing one summary row."""
    if key.startswith(FLOOR):
        return UPSERT_FLOOR, floor_params(key, row)
    return UPSERT_MENTOR, mentor_params(key, row)


def safe_apply(state: dict, value: Any) -> list[tuple[str, dict]]:
    """``apply_event`` for a raw record value; a malformed event changes nothing."""
    event = parse(value) if isinstance(value, bytes | None) else value if isinstance(value, dict) else None
    if event is None:
        return []
    try:
        return apply_event(state, event)
    except (KeyError, TypeError, ValueError, AttributeError):
        return []
