"""Test oracle: a naive, from-scratch recomputation of every view of the contract.

Written only from ``shared/spec/events-and-views.md`` (sections 3 and 4) and
``docs/semantics.md``, never from the production fold in ``views/``. It takes
the whole set of accepted events at once and rebuilds every row from the
definitions, so tests can compare the incremental fold to it field by field.

Public functions:

- :func:`recompute` -> ``{"floor_summary", "mentor_summary", "global_daily", "global_current"}``
- :func:`badges` -> ``{user_id: {"unread": n[, "pending_reviews": m]}}``

Choices where the documents leave room (the most literal reading was taken;
tests/test_oracle.py pins each one with an example):

- a person is a *student* (every event keyed by its student_id: ``student.*``,
  ``submission.submitted``, ``review.completed``), a *mentor* (its ``mentor.*``
  events) or a *user's logins* (its ``login.succeeded`` events only). A
  student and a mentor that share an id are two persons;
- a notification is owned by the user that keys its records, like
  submissions and reviews: ``(user_id, notification_id)``;
- events that reuse an event_id with different content (outside the contract)
  are reduced to one canonical choice (the smallest ``(type, JSON)``), so the
  result stays a function of the set.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from cohortflow.contract import EventBase

__all__ = ["recompute", "badges", "dedupe", "round_half_up", "active_at_end_of"]

DEFAULT_PILLARS: tuple[str, ...] = ("clt", "sri", "cfc", "iipc", "scd")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)

STUDENT_TYPES = frozenset(
    {"student.enrolled", "student.transferred", "student.withdrawn", "student.assigned",
     "submission.submitted", "review.completed"}
)
MENTOR_TYPES = frozenset({"mentor.joined", "mentor.transferred", "mentor.left"})
NOTIFICATION_TYPES = frozenset({"notification.created", "notification.read", "notification.read_all"})


# --- small helpers -------------------------------------------------------------------------


def _order(event: EventBase) -> tuple[datetime, str]:
    """"Latest" order: (UTC instant, event_id as a plain string)."""
    return (event.occurred_at, event.event_id)


def _latest(events: Iterable[EventBase]) -> EventBase | None:
    events = list(events)
    return max(events, key=_order) if events else None


def _us(moment: datetime) -> int:
    """Exact integer microseconds since the epoch."""
    return (moment - EPOCH) // MICROSECOND


def round_half_up(numerator: int, denominator: int, places: int) -> Decimal:
    """``numerator / denominator`` rounded half away from zero to ``places`` decimals, exactly.

    Integer arithmetic only (no intermediate Decimal context rounding); the
    result is a Decimal with exactly ``places`` decimals, e.g. ``Decimal("12.50")``.
    """
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    negative = numerator < 0
    scaled = abs(numerator) * 10**places
    quotient, remainder = divmod(scaled, denominator)
    if 2 * remainder >= denominator:
        quotient += 1
    if negative:
        quotient = -quotient
    return Decimal(quotient).scaleb(-places)


def _zero(places: int) -> Decimal:
    return Decimal(0).scaleb(-places)


def _canonical(event: EventBase) -> tuple[str, str]:
    return (event.type, event.model_dump_json())  # type: ignore[attr-defined]


def dedupe(events: Iterable[EventBase]) -> list[EventBase]:
    """One event per event_id, with no time horizon, independent of input order."""
    by_id: dict[str, EventBase] = {}
    for event in events:
        kept = by_id.get(event.event_id)
        if kept is None:
            by_id[event.event_id] = event
        elif kept != event and _canonical(event) < _canonical(kept):
            by_id[event.event_id] = event
    return sorted(by_id.values(), key=_order)


def active_at_end_of(life_events: Iterable[EventBase], day: date, on_type: str) -> bool:
    """Literal replay: the latest of ``life_events`` with occurred_at <= end of ``day`` is ``on_type``.

    ``life_events`` are one person's enrolled/withdrawn (or joined/left) events.
    Used directly by tests on small logs to cross-check the per-date sweep.
    """
    end_of_day = datetime(day.year, day.month, day.day, 23, 59, 59, 999_999, tzinfo=UTC)
    latest = _latest(e for e in life_events if e.occurred_at <= end_of_day)
    return latest is not None and latest.type == on_type


# --- entities ------------------------------------------------------------------------------


@dataclass
class _Submission:
    submission_id: str
    submitted: list[EventBase] = field(default_factory=list)
    review_events: list[EventBase] = field(default_factory=list)  # every version naming it
    current_attempt: int = 0
    pillar: str | None = None
    status: str = "pending"


@dataclass
class _Review:
    review_id: str
    latest: EventBase
    time_us: int | None  # review time in microseconds, None while undefined


@dataclass
class _Student:
    student_id: str
    events: list[EventBase]
    active: bool = False
    floor: tuple[str, str] | None = None
    mentor: str | None = None
    floors_named: set[tuple[str, str]] = field(default_factory=set)
    mentors_named: set[str] = field(default_factory=set)
    submissions: dict[str, _Submission] = field(default_factory=dict)
    reviews: dict[str, _Review] = field(default_factory=dict)
    submitted_time: dict[tuple[str, int], datetime] = field(default_factory=dict)
    newest: datetime | None = None


@dataclass
class _Mentor:
    mentor_id: str
    events: list[EventBase]
    active: bool = False
    floor: tuple[str, str] | None = None
    floors_named: set[tuple[str, str]] = field(default_factory=set)
    newest: datetime | None = None


def _build_student(student_id: str, events: list[EventBase]) -> _Student:
    student = _Student(student_id, sorted(events, key=_order))
    evs = student.events
    student.newest = max(e.occurred_at for e in evs)

    life = _latest(e for e in evs if e.type in ("student.enrolled", "student.withdrawn"))
    student.active = life is not None and life.type == "student.enrolled"
    place = _latest(e for e in evs if e.type in ("student.enrolled", "student.transferred"))
    student.floor = (place.data.campus, place.data.floor) if place is not None else None
    assign = _latest(e for e in evs if e.type == "student.assigned")
    student.mentor = assign.data.mentor_id if assign is not None else None

    for e in evs:
        if e.type in ("student.enrolled", "student.transferred"):
            student.floors_named.add((e.data.campus, e.data.floor))
        elif e.type == "student.assigned" and e.data.mentor_id is not None:
            student.mentors_named.add(e.data.mentor_id)
        elif e.type == "review.completed":
            student.mentors_named.add(e.data.mentor_id)

    # Submitted time of (submission_id, attempt): earliest submitted event of that pair.
    for e in evs:
        if e.type == "submission.submitted":
            pair = (e.data.submission_id, e.data.attempt)
            if pair not in student.submitted_time or e.occurred_at < student.submitted_time[pair]:
                student.submitted_time[pair] = e.occurred_at

    # Reviews: the latest event of each review_id (within this student).
    versions: dict[str, list[EventBase]] = defaultdict(list)
    for e in evs:
        if e.type == "review.completed":
            versions[e.data.review_id].append(e)
    for review_id, vs in versions.items():
        latest = _latest(vs)
        assert latest is not None
        submitted_at = student.submitted_time.get((latest.data.submission_id, latest.data.attempt))
        time_us = None if submitted_at is None else max(0, _us(latest.occurred_at) - _us(submitted_at))
        student.reviews[review_id] = _Review(review_id, latest, time_us)

    # Submissions: named by any submitted event or any review event (any version).
    for e in evs:
        if e.type == "submission.submitted":
            sub = student.submissions.setdefault(e.data.submission_id, _Submission(e.data.submission_id))
            sub.submitted.append(e)
        elif e.type == "review.completed":
            sub = student.submissions.setdefault(e.data.submission_id, _Submission(e.data.submission_id))
            sub.review_events.append(e)
    # The latest version of each review belongs to the (submission_id, attempt) it names.
    reviews_of: dict[tuple[str, int], list[EventBase]] = defaultdict(list)
    for r in student.reviews.values():
        reviews_of[(r.latest.data.submission_id, r.latest.data.attempt)].append(r.latest)
    for sub in student.submissions.values():
        sub.current_attempt = max(e.data.attempt for e in sub.submitted + sub.review_events)
        latest_submitted = _latest(sub.submitted)
        sub.pillar = latest_submitted.data.pillar if latest_submitted is not None else None
        deciding = _latest(reviews_of.get((sub.submission_id, sub.current_attempt), []))
        sub.status = deciding.data.decision if deciding is not None else "pending"
    return student


def _build_mentor(mentor_id: str, events: list[EventBase]) -> _Mentor:
    mentor = _Mentor(mentor_id, sorted(events, key=_order))
    evs = mentor.events
    mentor.newest = max(e.occurred_at for e in evs)
    life = _latest(e for e in evs if e.type in ("mentor.joined", "mentor.left"))
    mentor.active = life is not None and life.type == "mentor.joined"
    place = _latest(e for e in evs if e.type in ("mentor.joined", "mentor.transferred"))
    mentor.floor = (place.data.campus, place.data.floor) if place is not None else None
    for e in evs:
        if e.type in ("mentor.joined", "mentor.transferred"):
            mentor.floors_named.add((e.data.campus, e.data.floor))
    return mentor


def _unread_by_user(events: list[EventBase]) -> dict[str, int]:
    """Unread notifications per user that has any notification event."""
    per_user: dict[str, list[EventBase]] = defaultdict(list)
    for e in events:
        if e.type in NOTIFICATION_TYPES:
            per_user[e.data.user_id].append(e)
    result: dict[str, int] = {}
    for user_id, evs in per_user.items():
        created_at: dict[str, datetime] = {}
        read_ids: set[str] = set()
        read_all_times = [e.occurred_at for e in evs if e.type == "notification.read_all"]
        for e in evs:
            if e.type == "notification.created":
                n = e.data.notification_id
                if n not in created_at or e.occurred_at < created_at[n]:
                    created_at[n] = e.occurred_at
            elif e.type == "notification.read":
                read_ids.add(e.data.notification_id)
        latest_read_all = max(read_all_times) if read_all_times else None
        unread = 0
        for n, first_created in created_at.items():
            if n in read_ids:
                continue
            if latest_read_all is not None and latest_read_all >= first_created:
                continue  # some read_all at or after its earliest create
            unread += 1
        result[user_id] = unread
    return result


# --- the views -----------------------------------------------------------------------------


def _workload(pending: int, low_below: int, overloaded_above: int) -> str:
    if pending < low_below:
        return "low"
    if pending > overloaded_above:
        return "overloaded"
    return "balanced"


def _avg_seconds(times_us: list[int]) -> Decimal | None:
    if not times_us:
        return None
    return round_half_up(sum(times_us), len(times_us) * 1_000_000, 3)


def _max_time(*candidates: datetime | None) -> datetime | None:
    present = [c for c in candidates if c is not None]
    return max(present) if present else None


def recompute(
    events: Iterable[EventBase],
    pillars: tuple[str, ...] = DEFAULT_PILLARS,
    workload_low_below: int = 5,
    workload_overloaded_above: int = 20,
) -> dict[str, dict[Any, dict[str, Any]]]:
    """Every view, recomputed from scratch from the set of accepted ``events``."""
    pillars = tuple(pillars)
    evs = dedupe(events)

    # Persons and their events.
    student_events: dict[str, list[EventBase]] = defaultdict(list)
    mentor_events: dict[str, list[EventBase]] = defaultdict(list)
    login_events: dict[str, list[EventBase]] = defaultdict(list)  # login.succeeded only
    for e in evs:
        if e.type in STUDENT_TYPES:
            student_events[e.data.student_id].append(e)
        elif e.type in MENTOR_TYPES:
            mentor_events[e.data.mentor_id].append(e)
        elif e.type == "login.succeeded":
            login_events[e.data.user_id].append(e)

    students = {sid: _build_student(sid, es) for sid, es in student_events.items()}
    mentors = {mid: _build_mentor(mid, es) for mid, es in mentor_events.items()}
    login_newest = {uid: max(e.occurred_at for e in es) for uid, es in login_events.items()}

    # ---------------------------------------------------------------- floor_summary
    floor_keys: set[tuple[str, str]] = set()
    for s in students.values():
        floor_keys |= s.floors_named
    for m in mentors.values():
        floor_keys |= m.floors_named

    # Indexes only to avoid floors x students loops; each is a plain filter of the persons.
    active_on_floor: dict[tuple[str, str], list[_Student]] = defaultdict(list)
    attached_to_floor: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    mentors_on_floor: dict[tuple[str, str], int] = defaultdict(int)
    for s in students.values():
        if s.active:
            assert s.floor is not None  # enrolled always names a floor
            active_on_floor[s.floor].append(s)
        for key in s.floors_named:
            attached_to_floor[key].append(s.newest)
    for m in mentors.values():
        if m.active and m.floor is not None:
            mentors_on_floor[m.floor] += 1
        for key in m.floors_named:
            attached_to_floor[key].append(m.newest)

    floor_summary: dict[tuple[str, str], dict[str, Any]] = {}
    for key in floor_keys:
        on_floor = active_on_floor.get(key, [])
        total = len(on_floor)
        assigned = sum(1 for s in on_floor if s.mentor is not None)
        statuses = [sub.status for s in on_floor for sub in s.submissions.values()]
        completed = {
            p: sum(
                1
                for s in on_floor
                if any(sub.pillar == p and sub.status == "approved" for sub in s.submissions.values())
            )
            for p in pillars
        }
        if total:
            progress = {p: round_half_up(100 * completed[p], total, 2) for p in pillars}
        else:
            progress = {p: _zero(2) for p in pillars}
        if total and pillars:
            avg_completion = round_half_up(100 * sum(completed.values()), len(pillars) * total, 2)
        else:
            avg_completion = _zero(2)
        floor_summary[key] = {
            "students_total": total,
            "students_assigned": assigned,
            "students_unassigned": total - assigned,
            "mentors_total": mentors_on_floor.get(key, 0),
            "submissions_pending": statuses.count("pending"),
            "submissions_approved": statuses.count("approved"),
            "submissions_rejected": statuses.count("rejected"),
            "pillar_completed": completed,
            "pillar_progress": progress,
            "avg_completion": avg_completion,
            "as_of": max(attached_to_floor[key]),
        }

    # ---------------------------------------------------------------- mentor_summary
    mentor_keys: set[str] = set(mentors)
    for s in students.values():
        mentor_keys |= s.mentors_named  # non-null assigned mentors and every review version's mentor

    active_of_mentor: dict[str, list[_Student]] = defaultdict(list)
    attached_to_mentor: dict[str, list[datetime]] = defaultdict(list)
    reviews_of_mentor: dict[str, list[_Review]] = defaultdict(list)
    for s in students.values():
        if s.active and s.mentor is not None:
            active_of_mentor[s.mentor].append(s)
        for mid in s.mentors_named:
            attached_to_mentor[mid].append(s.newest)
        for r in s.reviews.values():
            reviews_of_mentor[r.latest.data.mentor_id].append(r)

    mentor_summary: dict[str, dict[str, Any]] = {}
    for mid in mentor_keys:
        own = mentors.get(mid)
        mine = active_of_mentor.get(mid, [])
        pending = sum(1 for s in mine for sub in s.submissions.values() if sub.status == "pending")
        reviews = reviews_of_mentor.get(mid, [])
        approvals = sum(1 for r in reviews if r.latest.data.decision == "approved")
        rejections = sum(1 for r in reviews if r.latest.data.decision == "rejected")
        times = [r.time_us for r in reviews if r.time_us is not None]
        last_active = _max_time(
            max((r.latest.occurred_at for r in reviews), default=None), login_newest.get(mid)
        )
        attached_times = list(attached_to_mentor.get(mid, []))
        if own is not None:
            attached_times.append(own.newest)
        if mid in login_newest:
            attached_times.append(login_newest[mid])
        mentor_summary[mid] = {
            "campus": own.floor[0] if own is not None and own.floor is not None else None,
            "floor": own.floor[1] if own is not None and own.floor is not None else None,
            "active": own.active if own is not None else None,
            "assigned_students": len(mine),
            "pending_reviews": pending,
            "reviews_completed": len(reviews),
            "approvals": approvals,
            "rejections": rejections,
            "approval_rate": round_half_up(approvals, len(reviews), 4) if reviews else None,
            "avg_review_seconds": _avg_seconds(times),
            "workload": _workload(pending, workload_low_below, workload_overloaded_above),
            "last_active_at": last_active,
            "as_of": max(attached_times),
        }

    # ---------------------------------------------------------------- global_daily
    days = sorted({e.occurred_at.date() for e in evs})
    daily: dict[date, dict[str, Any]] = {
        d: {
            "submissions": 0,
            "reviews": 0,
            "approvals": 0,
            "rejections": 0,
            "logins": 0,
            "failed_logins": 0,
            "active_users": 0,
            "audit_events": 0,
            "notifications_created": 0,
            "avg_review_seconds": None,
            "students_total": 0,
            "mentors_total": 0,
            "as_of": None,
        }
        for d in days
    }
    active_users: dict[date, set[str]] = defaultdict(set)
    review_times: dict[date, list[int]] = defaultdict(list)
    for e in evs:
        row = daily[e.occurred_at.date()]
        row["as_of"] = _max_time(row["as_of"], e.occurred_at)
        if e.type == "login.succeeded":
            row["logins"] += 1
            active_users[e.occurred_at.date()].add(e.data.user_id)
        elif e.type == "login.failed":
            row["failed_logins"] += 1
        elif e.type == "audit.recorded":
            row["audit_events"] += 1
        elif e.type == "notification.created":
            row["notifications_created"] += 1
    for d, users in active_users.items():
        daily[d]["active_users"] = len(users)
    for s in students.values():
        for submitted_at in s.submitted_time.values():
            daily[submitted_at.date()]["submissions"] += 1
        for r in s.reviews.values():
            d = r.latest.occurred_at.date()
            daily[d]["reviews"] += 1
            daily[d]["approvals" if r.latest.data.decision == "approved" else "rejections"] += 1
            if r.time_us is not None:
                review_times[d].append(r.time_us)
    for d, times in review_times.items():
        daily[d]["avg_review_seconds"] = _avg_seconds(times)

    day_index = {d: i for i, d in enumerate(days)}

    def totals_per_day(people_events: Iterable[list[EventBase]], on: str, off: str) -> list[int]:
        # Replay each person's on/off events in (occurred_at, event_id) order; the status at the
        # end of a date is that of its last event dated on or before it. Each status holds from
        # the date of its event until the next date one of that person's events changes it.
        diff = [0] * (len(days) + 1)
        for person in people_events:
            life = sorted((e for e in person if e.type in (on, off)), key=_order)
            status_at_end: dict[date, bool] = {}
            for e in life:  # later events of the same date overwrite earlier ones
                status_at_end[e.occurred_at.date()] = e.type == on
            changes = sorted(status_at_end.items())
            for i, (d, is_active) in enumerate(changes):
                if is_active:
                    diff[day_index[d]] += 1
                    end = day_index[changes[i + 1][0]] if i + 1 < len(changes) else len(days)
                    diff[end] -= 1
        counts, running = [], 0
        for i in range(len(days)):
            running += diff[i]
            counts.append(running)
        return counts

    for d, n in zip(days, totals_per_day(student_events.values(), "student.enrolled", "student.withdrawn")):
        daily[d]["students_total"] = n
    for d, n in zip(days, totals_per_day(mentor_events.values(), "mentor.joined", "mentor.left")):
        daily[d]["mentors_total"] = n

    # ---------------------------------------------------------------- global_current
    unread = _unread_by_user(evs)
    global_current = {
        None: {
            "students_total": sum(1 for s in students.values() if s.active),
            "mentors_total": sum(1 for m in mentors.values() if m.active),
            "unread_notifications": sum(unread.values()),
            "campuses": len({campus for campus, _ in floor_summary}),
            "floors": len(floor_summary),
            "as_of": max((e.occurred_at for e in evs), default=None),
        }
    }

    return {
        "floor_summary": floor_summary,
        "mentor_summary": mentor_summary,
        "global_daily": daily,
        "global_current": global_current,
    }


def badges(events: Iterable[EventBase]) -> dict[str, dict[str, int]]:
    """Redis badge counters: ``unread`` per user with a notification event, ``pending_reviews`` per mentor row."""
    evs = dedupe(events)
    result: dict[str, dict[str, int]] = {uid: {"unread": n} for uid, n in _unread_by_user(evs).items()}
    for mid, row in recompute(evs)["mentor_summary"].items():
        result.setdefault(mid, {"unread": 0})["pending_reviews"] = row["pending_reviews"]
    return result
