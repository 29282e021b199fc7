"""The pure fold, scenario by scenario (each number worked out by hand from docs/semantics.md)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cohortflow.core.fold import Fold, State
from cohortflow.core.memory import MemoryViews, ViewConfig
from tests.builders import at, ev


def fold(events, batches: int = 1) -> dict:
    state, views, folder = State(), MemoryViews(), Fold()
    size = max(1, -(-len(events) // batches))
    for i in range(0, len(events), size):
        views.apply(folder.apply(events[i : i + size], state))
    return views.views(ViewConfig())


def floor(v, campus="north", fl="3"):
    return v["floor_summary"][(campus, fl)]


@pytest.mark.parametrize("batches", [1, 3])
def test_transfer_withdraw_reenrol(batches: int) -> None:
    events = [
        ev("student.enrolled", at(0), student_id="s1", campus="north", floor="3"),
        ev("student.transferred", at(10), student_id="s1", campus="north", floor="4"),
        ev("student.withdrawn", at(20), student_id="s1"),
        ev("student.enrolled", at(30), student_id="s1", campus="north", floor="3"),
    ]
    v = fold(events, batches)
    assert floor(v)["students_total"] == 1  # the re-enrolment's floor is the latest floor event
    assert floor(v, fl="4")["students_total"] == 0  # the old floor keeps its row
    assert v["global_current"][None]["students_total"] == 1
    assert v["global_current"][None]["floors"] == 2


def test_reassignment_to_null_unassigns() -> None:
    events = [
        ev("student.enrolled", at(0), student_id="s1", campus="north", floor="3"),
        ev("student.assigned", at(1), student_id="s1", mentor_id="m1"),
        ev("student.assigned", at(2), student_id="s1", mentor_id=None),
    ]
    v = fold(events)
    assert floor(v)["students_assigned"] == 0 and floor(v)["students_unassigned"] == 1
    assert v["mentor_summary"]["m1"]["assigned_students"] == 0


def test_resubmission_after_rejection_is_pending_again() -> None:
    events = [
        ev("student.enrolled", at(0), student_id="s1", campus="north", floor="3"),
        ev("student.assigned", at(0), student_id="s1", mentor_id="m1"),
        ev("submission.submitted", at(10), submission_id="a", student_id="s1", pillar="clt", attempt=1),
        ev("review.completed", at(70), review_id="r1", submission_id="a", student_id="s1", mentor_id="m1",
           attempt=1, decision="rejected"),
        ev("submission.submitted", at(100), submission_id="a", student_id="s1", pillar="clt", attempt=2),
    ]
    v = fold(events)
    assert (floor(v)["submissions_pending"], floor(v)["submissions_rejected"]) == (1, 0)
    m = v["mentor_summary"]["m1"]
    assert (m["pending_reviews"], m["reviews_completed"], m["rejections"]) == (1, 1, 1)
    assert m["avg_review_seconds"] == Decimal("3600.000")
    assert m["approval_rate"] == Decimal("0.0000")


def test_corrected_review_keeps_only_its_latest_version() -> None:
    events = [
        ev("student.enrolled", at(0), student_id="s1", campus="north", floor="3"),
        ev("submission.submitted", at(0), submission_id="a", student_id="s1", pillar="sri", attempt=1),
        ev("review.completed", at(30), review_id="r1", submission_id="a", student_id="s1", mentor_id="m1",
           attempt=1, decision="rejected"),
        ev("review.completed", at(45), review_id="r1", submission_id="a", student_id="s1", mentor_id="m2",
           attempt=1, decision="approved"),
    ]
    v = fold(events, batches=4)
    assert v["mentor_summary"]["m1"]["reviews_completed"] == 0
    assert v["mentor_summary"]["m1"]["last_active_at"] is None  # its only review moved to m2
    assert v["mentor_summary"]["m2"]["approvals"] == 1
    assert floor(v)["pillar_completed"]["sri"] == 1
    assert floor(v)["pillar_progress"]["sri"] == Decimal("100.00")
    assert floor(v)["avg_completion"] == Decimal("20.00")


def test_review_before_its_submission_gets_its_time_when_the_submission_arrives() -> None:
    review = ev("review.completed", at(90), review_id="r1", submission_id="a", student_id="s1", mentor_id="m1",
                attempt=1, decision="approved")
    submitted = ev("submission.submitted", at(0), submission_id="a", student_id="s1", pillar="clt", attempt=1)
    state, views, folder = State(), MemoryViews(), Fold()
    views.apply(folder.apply([review], state))
    assert views.views(ViewConfig())["mentor_summary"]["m1"]["avg_review_seconds"] is None
    views.apply(folder.apply([submitted], state))
    assert views.views(ViewConfig())["mentor_summary"]["m1"]["avg_review_seconds"] == Decimal("5400.000")


def test_read_before_create_and_read_all() -> None:
    events = [
        ev("notification.read", at(1), notification_id="n1", user_id="u1"),
        ev("notification.created", at(0), notification_id="n1", user_id="u1", kind="review"),
        ev("notification.created", at(5), notification_id="n2", user_id="u1", kind="review"),
        ev("notification.created", at(9), notification_id="n3", user_id="u1", kind="review"),
        ev("notification.read_all", at(5), user_id="u1"),  # reads n2 (created at the same instant), not n3
    ]
    state, views, folder = State(), MemoryViews(), Fold()
    effect = folder.apply(events, state)
    views.apply(effect)
    assert effect.unread == {"u1": 1}
    v = views.views(ViewConfig())
    assert v["global_current"][None]["unread_notifications"] == 1
    assert v["global_daily"][at(0).date()]["notifications_created"] == 3


def test_duplicates_count_once() -> None:
    login = ev("login.succeeded", at(0), user_id="u1", role="student")
    audit = ev("audit.recorded", at(0), actor_id="a1", action="x", entity_type="y", entity_id="z")
    v = fold([login, login, audit, audit, login], batches=3)
    day = v["global_daily"][at(0).date()]
    assert (day["logins"], day["active_users"], day["audit_events"]) == (1, 1, 1)


def test_students_total_of_a_date_replays_the_roster_up_to_its_end() -> None:
    events = [
        ev("student.enrolled", at(0), student_id="s1", campus="north", floor="3"),
        ev("student.enrolled", at(0), student_id="s2", campus="north", floor="3"),
        ev("student.withdrawn", at(60, days=1), student_id="s1"),
        ev("login.succeeded", at(0, days=2), user_id="s2", role="student"),
        # A late enrolment dated day 1, withdrawn again the same day: no trace at the end of day 1.
        ev("student.withdrawn", at(120, days=1), student_id="s3"),
        ev("student.enrolled", at(90, days=1), student_id="s3", campus="north", floor="3"),
    ]
    v = fold(events, batches=6)
    daily = v["global_daily"]
    assert [daily[at(days=d).date()]["students_total"] for d in range(3)] == [2, 1, 1]


def test_equal_instants_are_ordered_by_event_id() -> None:
    events = [
        ev("student.enrolled", at(0), "b", student_id="s1", campus="north", floor="3"),
        ev("student.withdrawn", at(0), "a", student_id="s1"),
    ]
    assert floor(fold(events))["students_total"] == 1  # ("b" > "a"): the enrolment is the latest


def test_as_of_is_the_newest_event_of_every_attached_person() -> None:
    events = [
        ev("student.enrolled", at(0), student_id="s1", campus="north", floor="3"),
        ev("student.transferred", at(10), student_id="s1", campus="north", floor="4"),
        ev("submission.submitted", at(50), submission_id="a", student_id="s1", pillar="clt", attempt=1),
    ]
    v = fold(events, batches=3)
    assert floor(v)["as_of"] == at(50) and floor(v, fl="4")["as_of"] == at(50)
    assert v["global_daily"][at(0).date()]["as_of"] == at(50)
