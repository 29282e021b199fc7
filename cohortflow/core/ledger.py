"""A student's contribution to the views, kept part by part so that a change costs only what it touches.

The parts: one per review (its mentor's and its date's review counts and
times), one per submission (its submitted dates), the roster status (daily
steps and the global total) and the placement (the floor's and the mentor's
counts, from running aggregates of the submissions' statuses). An update
recomputes the touched parts and emits ``new - old`` of each; building a
ledger for a loaded student is the same update with every part touched and
the output thrown away, so there is one code path.
"""

from __future__ import annotations

from collections import Counter

from cohortflow.core.clock import day_of
from cohortflow.core.entities import Student, Touched, latest_status, status_steps
from cohortflow.core.rows import DAY_TAG, FLOOR_TAG, GLOBAL, MENTOR_TAG

Flat = dict[tuple[tuple, str], int]  # (row, field) -> value
Deltas = dict[tuple, dict[str, int]]  # row -> field -> change (the Effect's layout)

PENDING, APPROVED, REJECTED = 0, 1, 2


def _emit(out: Deltas | None, old: Flat, new: Flat) -> None:
    if out is None:
        return
    for key, value in new.items():
        delta = value - old.get(key, 0)
        if delta:
            fields = out.setdefault(key[0], {})
            fields[key[1]] = fields.get(key[1], 0) + delta
    for key, value in old.items():
        if key not in new:
            fields = out.setdefault(key[0], {})
            fields[key[1]] = fields.get(key[1], 0) - value


class StudentLedger:
    __slots__ = ("review_parts", "review_sid", "by_sub", "sub_parts", "sub_state", "status_counts",
                 "approved_pillars", "status_part", "active", "place_part", "activity")

    def __init__(self) -> None:
        self.review_parts: dict[str, Flat] = {}
        self.review_sid: dict[str, str] = {}  # review id -> submission of its latest version
        self.by_sub: dict[str, set[str]] = {}  # submission id -> review ids whose latest version names it
        self.sub_parts: dict[str, Flat] = {}
        self.sub_state: dict[str, tuple[int, str | None]] = {}  # submission -> (status, pillar)
        self.status_counts = [0, 0, 0]
        self.approved_pillars: Counter[str] = Counter()
        self.status_part: Flat = {}
        self.active = False
        self.place_part: Flat = {}
        self.activity: dict[str, int] = {}  # mentor -> latest of this student's reviews naming it

    @classmethod
    def build(cls, student: Student) -> StudentLedger:
        ledger = cls()
        ledger.update(student, Touched.everything(student), None, None)
        return ledger

    def update(self, student: Student, touched: Touched, out: Deltas | None,
               activity_out: dict[str, int | None] | None) -> None:
        """Recompute the touched parts; add ``new - old`` to ``out`` and activity changes to ``activity_out``."""
        subs = student.submissions
        affected = set(touched.submissions)
        reviews = set(touched.reviews)
        for rid in touched.reviews:
            new_sid = student.reviews[rid].submission_id
            old_sid = self.review_sid.get(rid)
            if old_sid != new_sid:
                if old_sid is not None:
                    self.by_sub[old_sid].discard(rid)
                    affected.add(old_sid)
                self.by_sub.setdefault(new_sid, set()).add(rid)
                self.review_sid[rid] = new_sid
            affected.add(new_sid)
        for sid in touched.submissions:
            reviews |= self.by_sub.get(sid, set())  # their review times depend on the submitted times

        for rid in reviews:
            new = _review_part(student, rid)
            _emit(out, self.review_parts.get(rid, {}), new)
            self.review_parts[rid] = new
        for sid in touched.submissions:
            new = {}
            for submitted in subs[sid].submitted.values():
                key = ((DAY_TAG, day_of(submitted)), "submissions")
                new[key] = new.get(key, 0) + 1
            _emit(out, self.sub_parts.get(sid, {}), new)
            self.sub_parts[sid] = new

        aggregates_moved = False
        for sid in affected:
            state = self._sub_state(student, sid)
            old = self.sub_state.get(sid)
            if state != old:
                if old is not None:
                    self._count(old, -1)
                self._count(state, +1)
                self.sub_state[sid] = state
                aggregates_moved = True

        if touched.status:
            self.active = latest_status(student.status)
            new = {}
            for ts, step in status_steps(student.status).items():
                key = ((DAY_TAG, day_of(ts)), "students_step")
                new[key] = new.get(key, 0) + step
            new = {k: v for k, v in new.items() if v}
            if self.active:
                new[(GLOBAL, "students_total")] = 1
            _emit(out, self.status_part, new)
            self.status_part = new
        if touched.status or touched.placement or aggregates_moved:
            new = self._placement(student)
            _emit(out, self.place_part, new)
            self.place_part = new
        if reviews:
            latest: dict[str, int] = {}
            for review in student.reviews.values():
                if review.ts > latest.get(review.mentor_id, -1 << 62):
                    latest[review.mentor_id] = review.ts
            if activity_out is not None:
                for mentor_id in latest.keys() | self.activity.keys():
                    if latest.get(mentor_id) != self.activity.get(mentor_id):
                        activity_out[mentor_id] = latest.get(mentor_id)
            self.activity = latest

    def _sub_state(self, student: Student, sid: str) -> tuple[int, str | None]:
        sub = student.submissions[sid]
        best = None
        for rid in self.by_sub.get(sid, ()):
            review = student.reviews[rid]
            if review.attempt == sub.top and (best is None or best.order < review.order):
                best = review
        status = PENDING if best is None else (APPROVED if best.approved else REJECTED)
        return (status, sub.pillar[2] if sub.pillar is not None else None)

    def _count(self, state: tuple[int, str | None], sign: int) -> None:
        status, pillar = state
        self.status_counts[status] += sign
        if status == APPROVED and pillar is not None:
            self.approved_pillars[pillar] += sign

    def _placement(self, student: Student) -> Flat:
        new: Flat = {}
        if not self.active:
            return new
        pending, approved, rejected = self.status_counts
        mentor_id = student.mentor[2] if student.mentor is not None else None
        if student.floor is not None:
            row = (FLOOR_TAG, student.floor[2], student.floor[3])
            new[(row, "students_total")] = 1
            new[(row, "students_assigned")] = 1 if mentor_id is not None else 0
            new[(row, "submissions_pending")] = pending
            new[(row, "submissions_approved")] = approved
            new[(row, "submissions_rejected")] = rejected
            for pillar, count in self.approved_pillars.items():
                if count > 0:
                    new[(row, f"pillar:{pillar}")] = 1
        if mentor_id is not None:
            mentor_row = (MENTOR_TAG, mentor_id)
            new[(mentor_row, "assigned_students")] = 1
            new[(mentor_row, "pending_reviews")] = pending
        return {k: v for k, v in new.items() if v}


def _review_part(student: Student, rid: str) -> Flat:
    review = student.reviews[rid]
    mentor_row, day_row = (MENTOR_TAG, review.mentor_id), (DAY_TAG, day_of(review.ts))
    verdict = "approvals" if review.approved else "rejections"
    part: Flat = {
        (mentor_row, "reviews_completed"): 1,
        (mentor_row, verdict): 1,
        (day_row, "reviews"): 1,
        (day_row, verdict): 1,
    }
    submitted = student.submissions[review.submission_id].submitted.get(review.attempt)
    if submitted is not None:
        took = max(0, review.ts - submitted)
        part[(mentor_row, "review_count")] = part[(day_row, "review_count")] = 1
        if took:
            part[(mentor_row, "review_us_sum")] = part[(day_row, "review_us_sum")] = took
    return part
