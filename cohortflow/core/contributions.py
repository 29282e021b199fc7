"""What each entity contributes to every view row, derived from its state alone.

A row is a tuple: ``("F", campus, floor)`` floor_summary, ``("M", mentor_id)``
mentor_summary, ``("D", day)`` global_daily, ``("G",)`` global_current.
Counts are additive: a view row is the sum of its contributions, so the fold
applies ``after - before`` of every entity a batch touched and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cohortflow.core.clock import day_of
from cohortflow.core.entities import Inbox, Logins, Mentor, Review, Student, latest_status, status_steps
from cohortflow.core.rows import DAY_TAG, FLOOR_TAG, GLOBAL, MENTOR_TAG

Row = tuple
Counts = dict[Row, dict[str, int]]


FLOOR_FIELDS = (
    "students_total",
    "students_assigned",
    "mentors_total",
    "submissions_pending",
    "submissions_approved",
    "submissions_rejected",
)
MENTOR_FIELDS = (
    "assigned_students",
    "pending_reviews",
    "reviews_completed",
    "approvals",
    "rejections",
    "review_us_sum",
    "review_count",
)
DAY_FIELDS = (
    "submissions",
    "reviews",
    "approvals",
    "rejections",
    "review_us_sum",
    "review_count",
    "logins",
    "failed_logins",
    "active_users",
    "audit_events",
    "notifications_created",
    "students_step",
    "mentors_step",
)
GLOBAL_FIELDS = ("students_total", "mentors_total", "unread_notifications")


def pillar_field(pillar: str) -> str:
    """The count field of floor rows for one pillar."""
    return f"pillar:{pillar}"


@dataclass(frozen=True, slots=True)
class Contribution:
    """One entity's share of the views."""

    counts: Counts = field(default_factory=dict)
    activity: dict[str, int] = field(default_factory=dict)  # mentor_id -> latest activity it gives that mentor
    mentor_self: tuple[str | None, str | None, bool] | None = None  # a mentor's own campus, floor, active
    unread: int | None = None  # an inbox's unread count


EMPTY = Contribution()


def _add(counts: Counts, row: Row, name: str, value: int) -> None:
    if value:
        fields = counts.get(row)
        if fields is None:
            counts[row] = {name: value}
        else:
            fields[name] = fields.get(name, 0) + value


def student_contribution(student: Student) -> Contribution:
    counts: Counts = {}
    activity: dict[str, int] = {}
    subs = student.submissions

    # The latest review (latest version of each review_id) of each submission's current attempt.
    deciding: dict[str, Review] = {}
    for review in student.reviews.values():
        sub = subs[review.submission_id]
        if review.attempt == sub.top:
            best = deciding.get(review.submission_id)
            if best is None or best.order < review.order:
                deciding[review.submission_id] = review

        mentor_row = (MENTOR_TAG, review.mentor_id)
        day_row = (DAY_TAG, day_of(review.ts))
        verdict = "approvals" if review.approved else "rejections"
        for row in (mentor_row, day_row):
            _add(counts, row, "reviews_completed" if row is mentor_row else "reviews", 1)
            _add(counts, row, verdict, 1)
        submitted = sub.submitted.get(review.attempt)
        if submitted is not None:
            took = max(0, review.ts - submitted)
            for row in (mentor_row, day_row):
                _add(counts, row, "review_us_sum", took)
                _add(counts, row, "review_count", 1)
        if review.ts > activity.get(review.mentor_id, -1 << 62):
            activity[review.mentor_id] = review.ts

    for sub in subs.values():
        for submitted in sub.submitted.values():
            _add(counts, (DAY_TAG, day_of(submitted)), "submissions", 1)
    for ts, step in status_steps(student.status).items():
        _add(counts, (DAY_TAG, day_of(ts)), "students_step", step)

    active = latest_status(student.status)
    if active:
        _add(counts, GLOBAL, "students_total", 1)
        pending = approved = rejected = 0
        completed: set[str] = set()
        for submission_id, sub in subs.items():
            decided = deciding.get(submission_id)
            if decided is None:
                pending += 1
            elif decided.approved:
                approved += 1
                if sub.pillar is not None:
                    completed.add(sub.pillar[2])
            else:
                rejected += 1
        mentor_id = student.mentor[2] if student.mentor is not None else None
        if student.floor is not None:
            floor_row = (FLOOR_TAG, student.floor[2], student.floor[3])
            _add(counts, floor_row, "students_total", 1)
            _add(counts, floor_row, "students_assigned", 1 if mentor_id is not None else 0)
            _add(counts, floor_row, "submissions_pending", pending)
            _add(counts, floor_row, "submissions_approved", approved)
            _add(counts, floor_row, "submissions_rejected", rejected)
            for pillar in completed:
                _add(counts, floor_row, pillar_field(pillar), 1)
        if mentor_id is not None:
            _add(counts, (MENTOR_TAG, mentor_id), "assigned_students", 1)
            _add(counts, (MENTOR_TAG, mentor_id), "pending_reviews", pending)
    return Contribution(counts=counts, activity=activity)


def mentor_contribution(mentor: Mentor) -> Contribution:
    counts: Counts = {}
    active = latest_status(mentor.status)
    if active:
        _add(counts, GLOBAL, "mentors_total", 1)
        if mentor.floor is not None:
            _add(counts, (FLOOR_TAG, mentor.floor[2], mentor.floor[3]), "mentors_total", 1)
    for ts, step in status_steps(mentor.status).items():
        _add(counts, (DAY_TAG, day_of(ts)), "mentors_step", step)
    campus, floor = (mentor.floor[2], mentor.floor[3]) if mentor.floor is not None else (None, None)
    return Contribution(counts=counts, mentor_self=(campus, floor, active))


def logins_contribution(logins: Logins) -> Contribution:
    counts: Counts = {(DAY_TAG, day): {"active_users": 1} for day in logins.days}
    activity = {logins.id: logins.last_login} if logins.last_login is not None else {}
    return Contribution(counts=counts, activity=activity)


def inbox_contribution(inbox: Inbox) -> Contribution:
    counts: Counts = {}
    _add(counts, GLOBAL, "unread_notifications", inbox.unread)
    return Contribution(counts=counts, unread=inbox.unread)


def diff(before: Counts, after: Counts, into: Counts) -> None:
    """Add ``after - before`` into ``into``."""
    for row, fields in after.items():
        old = before.get(row)
        for name, value in fields.items():
            delta = value - (old.get(name, 0) if old else 0)
            if delta:
                _add(into, row, name, delta)
    for row, fields in before.items():
        new = after.get(row)
        for name, value in fields.items():
            if not new or name not in new:
                _add(into, row, name, -value)
