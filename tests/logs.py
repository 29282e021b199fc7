"""A seeded, adversarial log of Kafka records for integration tests.

:func:`adversarial_log` simulates a cohort (campuses with floors, mentors on
floors, students enrolled on floors and assigned to mentors, submissions per
pillar with attempts, reviews minutes to days later with about 30% rejections
followed by resubmissions, logins with a morning peak, audit records,
notifications created and read) and publishes it the way real producers do,
out of order and with mistakes: every adversarial case of the contract is in
it, many times (see the function's docstring for the list).

The log is a pure function of its arguments (one ``random.Random(seed)``, no
wall clock, no set iteration), so a failing integration test can be replayed
from its seed.

Every record says what it must become: ``event`` is the event ``decode`` must
return for a valid record, ``reason`` the ``Reason`` of the rejection for an
invalid one. Both are known by construction, never by calling ``decode``.

Note that a valid record's ``value`` is not always ``encode(event)``: about a
third of the records are written the way other producers write them
(``occurred_at`` in milliseconds, with an offset, in lower case, with
nanoseconds; unknown extra fields; ``"metadata": null``), and decode to the
same event.
"""

from __future__ import annotations

import gc
import itertools
import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import orjson

from cohortflow.contract import (
    DEFAULT_CONTRACT,
    AuditRecorded,
    Contract,
    EventBase,
    LoginFailed,
    LoginSucceeded,
    MentorJoined,
    MentorLeft,
    MentorTransferred,
    NotificationCreated,
    NotificationRead,
    NotificationReadAll,
    Reason,
    ReviewCompleted,
    StudentAssigned,
    StudentEnrolled,
    StudentTransferred,
    StudentWithdrawn,
    SubmissionSubmitted,
    Topic,
    encode,
    record_key,
    topic_name,
)

__all__ = [
    "INVALID_REASONS",
    "Record",
    "adversarial_log",
    "expected_deadletters",
    "kafka_records",
    "valid_events",
]


@dataclass(frozen=True)
class Record:
    """One Kafka record of the log, and what the processor must make of it."""

    topic: Topic
    """The contract topic it is published on (never ``Topic.DEADLETTER``); prefix it with ``topic_name``."""
    key: bytes | None
    value: bytes | None
    event: EventBase | None
    """The decoded event when the record is valid, None when it is invalid."""
    reason: Reason | None
    """The rejection reason ``decode`` must return when the record is invalid, None when it is valid."""


INVALID_REASONS: Final[tuple[Reason, ...]] = tuple(r for r in Reason if r is not Reason.UNKNOWN_TOPIC)
"""Every reason the log contains (``unknown_topic`` cannot be: records come from the contract's topics)."""

MS: Final = 1_000
SECOND: Final = 1_000_000
MINUTE: Final = 60 * SECOND
HOUR: Final = 60 * MINUTE
DAY: Final = 24 * HOUR

DUPLICATE_SHARE: Final = 0.02
INVALID_SHARE: Final = 0.01
RANDOM_LATE_SHARE: Final = 0.025  # plus the late records of the scenarios: about 3% in all
STRUCTURED_SHARE: Final = 0.55  # roster, submissions, reviews and their notifications; the rest is traffic
MIN_SIZE: Final = 500
MIN_DAYS: Final = 3
DEDUP_SAFE: Final = 29 * DAY  # a re-send stays this close to its original (the project's horizon is >= 30 days)

CAMPUSES: Final = ("north", "south", "east", "west", "central")
SOURCES: Final = {
    Topic.ROSTER: "roster-service",
    Topic.SUBMISSIONS: "cohort-app",
    Topic.REVIEWS: "mentor-portal",
    Topic.LOGINS: "auth",
    Topic.AUDIT: "admin-console",
    Topic.NOTIFICATIONS: "notifier",
}
FAILED_LOGIN_REASONS: Final = ("bad_password", "bad_password", "bad_password", "account_locked", "mfa_failed",
                               "expired_token", "unknown_user")
AUDIT_ACTIONS: Final = (
    ("student.view", "student"),
    ("student.update", "student"),
    ("student.view", "student"),
    ("submission.download", "submission"),
    ("submission.view", "submission"),
    ("review.override", "review"),
    ("mentor.view", "mentor"),
    ("report.export", "report"),
    ("settings.update", "settings"),
)


def adversarial_log(
    seed: int,
    size: int,
    contract: Contract = DEFAULT_CONTRACT,
    *,
    students: int | None = None,
    start: datetime = datetime(2026, 11, 2, tzinfo=UTC),
    days: int = 14,
) -> list[Record]:
    """``size`` records (exactly) of a cohort's ``days`` days from ``start``, in publication order.

    Deterministic for ``(seed, size, contract, students, start, days)``. Every
    ``occurred_at`` is in ``[start, start + days)``; publication can run a few
    days past the end (late records). ``students`` defaults to ``size // 70``
    (at least 20); mentors are one per 12 students, admins one per 150.

    What it contains, besides the daily life of the cohort:

    - student and mentor transfers (some to another campus), withdrawals and
      re-enrolments, mentors leaving (their students unassigned) and rejoining
      (the same students assigned back), reassignments, ``mentor_id: null``
      and back;
    - resubmissions (attempt + 1 after a rejection; a few change the pillar),
      double submissions of one attempt (another event_id, seconds later or at
      the same instant), corrected reviews (same review_id re-published later
      with the other decision, some by another mentor, some dated at the same
      instant or earlier than the original);
    - reviews published before their submission record, reads published
      before their notification's create, reads dated before the create (clock
      skew), ``notification.read_all`` at exactly a create's instant and
      before late-published creates, notifications created twice;
    - re-sent records: byte-identical copies of earlier valid records, about
      2% of the log, published seconds to 10 days later (never more than 29
      days after the original's ``occurred_at``, nor more than 29 days before
      the newest event of the same key);
    - late records (about 3%): published hours or days after records with a
      later ``occurred_at``, some of them still the latest of their register
      (a withdrawal or transfer published a day late) and some not (a
      transfer dated before one already published);
    - pairs of events of one entity at exactly equal ``occurred_at``, where
      the event_id decides (``"7-10" < "7-9"``: the order is by string);
    - invalid records (about 1%, at least 3 of each ``Reason`` but
      ``unknown_topic``), each a plausible event breaking exactly one rule.

    Event ids are ``f"{seed}-{n}"``, unique per logical event (re-sends reuse
    their original's). Keys are ``record_key(event)`` except for the
    ``key_mismatch`` records.
    """
    if type(size) is not int or size < MIN_SIZE:
        raise ValueError(f"size must be an integer >= {MIN_SIZE}, got {size!r}")
    if type(days) is not int or days < MIN_DAYS:
        raise ValueError(f"days must be an integer >= {MIN_DAYS}, got {days!r}")
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    if contract.max_record_bytes < 4096:
        raise ValueError("contract.max_record_bytes must be >= 4096: the log's valid records are up to ~1 KiB")
    n_invalid = max(3 * len(INVALID_REASONS), round(size * INVALID_SHARE))
    n_dup = round(size * DUPLICATE_SHARE)
    n_unique = size - n_invalid - n_dup
    n_students = students if students is not None else max(20, size // 70)
    if type(n_students) is not int or n_students < 4:
        raise ValueError(f"students must be an integer >= 4, got {students!r}")

    collecting = gc.isenabled()
    gc.disable()  # hundreds of thousands of small objects, no cycles: full collections would dominate
    try:
        log = _Cohort(seed, contract, start.astimezone(UTC), days)
        log.roster(n_students)
        if len(log.items) > 0.5 * n_unique:
            raise ValueError(
                f"{n_students} students need {len(log.items)} roster records, too many for size {size}: "
                f"ask for at most about {size // 8} students"
            )
        log.work(round(n_unique * STRUCTURED_SHARE))
        log.traffic(n_unique - len(log.items))
        log.delay_some(RANDOM_LATE_SHARE)
        return log.publish(n_dup, n_invalid)
    finally:
        if collecting:
            gc.enable()


def valid_events(records: Iterable[Record]) -> list[EventBase]:
    """The events of the valid records, in publication order, re-sent duplicates included."""
    return [r.event for r in records if r.event is not None]


def expected_deadletters(records: Iterable[Record]) -> list[tuple[Record, Reason]]:
    """The invalid records, in publication order, each with the reason it must be deadlettered for."""
    return [(r, r.reason) for r in records if r.reason is not None]


def kafka_records(
    records: Iterable[Record], contract: Contract = DEFAULT_CONTRACT
) -> list[tuple[str, bytes | None, bytes | None]]:
    """``(full topic name, key, value)`` of each record, ready for a producer."""
    return [(topic_name(contract.topic_prefix, r.topic), r.key, r.value) for r in records]


# --- the simulation ---------------------------------------------------------------------------


class _Item:
    """A valid logical event, with when it occurred and when it gets published (µs from start)."""

    __slots__ = ("event", "occ", "pub", "seq")

    def __init__(self, event: EventBase, occ: int, pub: int, seq: int) -> None:
        self.event = event
        self.occ = occ
        self.pub = pub
        self.seq = seq


Entry = tuple[int, str, Any]  # (occurred_at µs, event_id, value): one event of a register


def _latest(entries: list[Entry], t: int, default: Any = None) -> Any:
    """The value of the latest ``(occ, event_id)`` entry at or before ``t``."""
    best: Entry | None = None
    for entry in entries:
        if entry[0] <= t and (best is None or entry[:2] > best[:2]):
            best = entry
    return default if best is None else best[2]


class _Person:
    """A student's or mentor's registers, as the roster events written so far make them."""

    __slots__ = ("id", "floors", "active", "mentors")

    def __init__(self, person_id: str) -> None:
        self.id = person_id
        self.floors: list[Entry] = []
        self.active: list[Entry] = []
        self.mentors: list[Entry] = []  # students only

    def floor_at(self, t: int) -> tuple[str, str] | None:
        return _latest(self.floors, t)

    def active_at(self, t: int) -> bool:
        return _latest(self.active, t, False)

    def mentor_at(self, t: int) -> str | None:
        return _latest(self.mentors, t)


class _Cohort:
    def __init__(self, seed: int, contract: Contract, start: datetime, days: int) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.contract = contract
        self.start = start
        self.days = days
        self.end = days * DAY
        self.items: list[_Item] = []
        self.counter = 0
        self.ids: dict[str, int] = {}
        weekday = start.weekday()
        self.day_weights = [0.45 if (weekday + d) % 7 >= 5 else 1.0 for d in range(days)]  # quieter weekends
        self.all_days = range(days)
        self.cum_day_weights = list(itertools.accumulate(self.day_weights))
        self.creates: list[_Item] = []  # notification.created items
        self.reviews: list[_Item] = []
        self.submissions: list[_Item] = []
        self.delayed: set[int] = set()  # seq of items whose publication a scenario already moved

    # --- ids, times, emission ----------------------------------------------------------------

    def event_id(self) -> str:
        self.counter += 1
        return f"{self.seed}-{self.counter}"

    def new_id(self, prefix: str, width: int) -> str:
        n = self.ids.get(prefix, 0) + 1
        self.ids[prefix] = n
        return f"{prefix}-{n:0{width}d}"

    def moment(self, us: int) -> datetime:
        return self.start + timedelta(microseconds=us)

    def rounded(self, us: int) -> int:
        """Most apps send milliseconds, some microseconds, a few whole seconds (always rounded down)."""
        r = self.rng.random()
        if r < 0.88:
            return us - us % MS
        if r < 0.98:
            return us
        return us - us % SECOND

    def between(self, lo: int, hi: int) -> int:
        return self.rounded(self.rng.randrange(lo, max(hi, lo + 1)))

    def after(self, t: int, lo: int, hi: int) -> int | None:
        """A moment ``lo`` to ``hi`` after ``t``, or None when it falls past the window."""
        moment = self.between(t + lo, t + hi)
        return moment if moment < self.end else None

    def pick_day(self, first: int = 0, last: int | None = None) -> int:
        if first == 0 and last is None:
            return self.rng.choices(self.all_days, cum_weights=self.cum_day_weights)[0]
        last = self.days if last is None else last
        return self.rng.choices(range(first, last), weights=self.day_weights[first:last])[0]

    def hour(self, profile: str) -> float:
        rng = self.rng
        r = rng.random()
        if profile == "login":  # morning peak, a long afternoon tail, a few night owls
            h = rng.gauss(8.75, 0.9) if r < 0.55 else rng.uniform(10, 22.5) if r < 0.92 else rng.uniform(0, 24)
        elif profile == "work":  # submissions and reviews: working hours, evenings
            h = rng.gauss(14.5, 3.2) if r < 0.9 else rng.uniform(0, 24)
        else:  # office: audit, roster
            h = rng.gauss(11, 2.5)
        return min(max(h, 0.0), 23.9999)

    def day_time(self, profile: str, first: int = 0, last: int | None = None) -> int:
        day = self.pick_day(first, last)
        return self.rounded(day * DAY + int(self.hour(profile) * HOUR))

    def jitter(self) -> int:
        """How long a well-behaved producer takes to publish: milliseconds to seconds."""
        return self.rng.randrange(2 * MS, 3 * SECOND)

    def emit(self, cls: type[EventBase], occ: int, data: dict[str, Any], *, pub: int | None = None) -> _Item:
        assert 0 <= occ < self.end, (cls, occ)
        source = None if self.rng.random() < 0.15 else SOURCES[cls.TOPIC]
        event = cls.model_validate(
            {"event_id": self.event_id(), "occurred_at": self.moment(occ), "source": source, "data": data}
        )
        item = _Item(event, occ, occ + self.jitter() if pub is None else pub, len(self.items))
        self.items.append(item)
        return item

    def late(self, item: _Item, lo: int, hi: int) -> None:
        """Publish ``item`` ``lo`` to ``hi`` after it occurred."""
        item.pub = item.occ + self.rng.randrange(lo, hi)
        self.delayed.add(item.seq)

    def publish_after(self, item: _Item, other: _Item, lo: int, hi: int) -> None:
        """Publish ``item`` ``lo`` to ``hi`` after ``other`` is."""
        item.pub = max(item.occ, other.pub) + self.rng.randrange(lo, hi)
        self.delayed.add(item.seq)

    # --- roster ------------------------------------------------------------------------------

    def enrol(self, s: _Person, t: int, floor: tuple[str, str]) -> _Item:
        item = self.emit(StudentEnrolled, t, {"student_id": s.id, "campus": floor[0], "floor": floor[1]})
        s.floors.append((t, item.event.event_id, floor))
        s.active.append((t, item.event.event_id, True))
        return item

    def transfer(self, s: _Person, t: int, floor: tuple[str, str]) -> _Item:
        item = self.emit(StudentTransferred, t, {"student_id": s.id, "campus": floor[0], "floor": floor[1]})
        s.floors.append((t, item.event.event_id, floor))
        return item

    def withdraw(self, s: _Person, t: int) -> _Item:
        item = self.emit(StudentWithdrawn, t, {"student_id": s.id})
        s.active.append((t, item.event.event_id, False))
        return item

    def assign(self, s: _Person, t: int, mentor: str | None) -> _Item:
        item = self.emit(StudentAssigned, t, {"student_id": s.id, "mentor_id": mentor})
        s.mentors.append((t, item.event.event_id, mentor))
        return item

    def join(self, m: _Person, t: int, floor: tuple[str, str]) -> _Item:
        item = self.emit(MentorJoined, t, {"mentor_id": m.id, "campus": floor[0], "floor": floor[1]})
        m.floors.append((t, item.event.event_id, floor))
        m.active.append((t, item.event.event_id, True))
        self.place(m, floor)
        return item

    def move(self, m: _Person, t: int, floor: tuple[str, str]) -> _Item:
        item = self.emit(MentorTransferred, t, {"mentor_id": m.id, "campus": floor[0], "floor": floor[1]})
        m.floors.append((t, item.event.event_id, floor))
        self.place(m, floor)
        return item

    def leave(self, m: _Person, t: int) -> _Item:
        item = self.emit(MentorLeft, t, {"mentor_id": m.id})
        m.active.append((t, item.event.event_id, False))
        return item

    def place(self, m: _Person, floor: tuple[str, str]) -> None:
        ever = self.floor_mentors.setdefault(floor, [])
        if m not in ever:
            ever.append(m)

    def mentors_on(self, floor: tuple[str, str] | None, t: int) -> list[_Person]:
        return [m for m in self.floor_mentors.get(floor, ()) if m.active_at(t) and m.floor_at(t) == floor]

    def pick_mentor(self, floor: tuple[str, str] | None, t: int, exclude: str | None = None) -> _Person:
        """An active mentor of ``floor`` at ``t``; any active mentor when the floor has none."""
        candidates = [m for m in self.mentors_on(floor, t) if m.id != exclude]
        if not candidates:
            candidates = [m for m in self.mentors if m.active_at(t) and m.id != exclude] or [
                m for m in self.mentors if m.id != exclude
            ]
        return self.rng.choice(candidates)

    def other_floor(self, floor: tuple[str, str] | None) -> tuple[str, str]:
        rng = self.rng
        if floor is not None and rng.random() < 0.7:
            same_campus = [f for f in self.floors if f[0] == floor[0] and f != floor]
            if same_campus:
                return rng.choice(same_campus)
        return rng.choice([f for f in self.floors if f != floor])

    def students_of(self, m: _Person, t: int) -> list[_Person]:
        return [s for s in self.students if s.mentor_at(t) == m.id]

    def audit(self, t: int, action: str, entity_type: str, entity_id: str, actor: str | None = None) -> _Item:
        metadata = self.metadata(entity_type) if self.rng.random() < 0.6 else None
        data = {
            "actor_id": actor or self.rng.choice(self.admins),
            "action": action,
            "entity_type": entity_type,
            "entity_id": entity_id,
            "metadata": metadata,
        }
        return self.emit(AuditRecorded, t, data)

    def roster(self, n_students: int) -> None:
        rng = self.rng
        n_campuses = 2 if n_students < 120 else 3
        per_campus = max(2, math.ceil(n_students / 40 / n_campuses))
        self.floors = [(c, f"F{i + 1}") for c in CAMPUSES[:n_campuses] for i in range(per_campus)]
        self.floor_mentors: dict[tuple[str, str], list[_Person]] = {}
        self.mentors = [_Person(f"men-{i:04d}") for i in range(max(len(self.floors) + 1, round(n_students / 12)))]
        self.students = [_Person(f"stu-{i:05d}") for i in range(n_students)]
        self.admins = [f"adm-{i:02d}" for i in range(max(2, n_students // 150))]
        end = self.end

        # Mentors join on the first morning (every floor gets one), a few later.
        for i, m in enumerate(self.mentors):
            floor = self.floors[i % len(self.floors)]
            if i < len(self.floors) or rng.random() < 0.9:
                t = self.between(6 * HOUR + 30 * MINUTE, 8 * HOUR)
            else:
                t = self.day_time("office", 1, max(2, self.days // 3))
            self.join(m, t, floor)

        # Students enrol on the first morning, some during the first third; a mentor of the floor follows.
        for s in self.students:
            floor = rng.choice(self.floors)
            if rng.random() < 0.85:
                t = self.between(8 * HOUR, 12 * HOUR)
            else:
                t = self.day_time("office", 1, max(2, self.days // 3))
            self.enrol(s, t, floor)
            ta = self.after(t, 2 * MINUTE, 90 * MINUTE)
            if ta is not None:
                self.assign(s, ta, self.pick_mentor(floor, ta).id)

        def some(people: Sequence[_Person], share: float, least: int = 4) -> list[_Person]:
            return [rng.choice(people) for _ in range(max(least, round(len(people) * share)))]

        def mid() -> int:
            return self.between(DAY, end - 8 * HOUR)

        # Student transfers, some to another campus, with the reassignment that usually follows.
        for s in some(self.students, 0.10):
            t = mid()
            new = self.other_floor(s.floor_at(t))
            moved = self.transfer(s, t, new)
            r = rng.random()
            if r < 0.65:
                ta = self.after(t, 10 * MINUTE, 6 * HOUR)
                if ta is not None:
                    self.assign(s, ta, self.pick_mentor(new, ta).id)
            elif r < 0.85:  # unassigned on the way, and a mentor of the new floor later
                self.assign(s, self.between(t, t + 5 * MINUTE), None)
                ta = self.after(t, 4 * HOUR, 2 * DAY)
                if ta is not None:
                    self.assign(s, ta, self.pick_mentor(new, ta).id)
            if rng.random() < 0.4:
                self.audit(self.between(t, t + 2 * SECOND), "student.transfer", "student", s.id)
            r = rng.random()
            if r < 0.35:  # late loser: an older transfer request published after this one
                older = self.transfer(s, max(DAY // 2, t - rng.randrange(HOUR, 20 * HOUR)), self.other_floor(new))
                self.publish_after(older, moved, HOUR, DAY)
            elif r < 0.5:  # late winner: this transfer itself is published hours late
                self.late(moved, 2 * HOUR, 2 * DAY)

        # Withdrawals, half of them unassigned too, many re-enrolled days later.
        for s in some(self.students, 0.06):
            t = mid()
            gone = self.withdraw(s, t)
            if rng.random() < 0.5:
                self.assign(s, t if rng.random() < 0.2 else self.between(t, t + MINUTE), None)
            if rng.random() < 0.15:
                self.late(gone, 3 * HOUR, DAY)
            if rng.random() < 0.6:
                tb = self.after(t, 6 * HOUR, 4 * DAY)
                if tb is not None:
                    floor = (s.floor_at(t) if rng.random() < 0.6 else None) or self.other_floor(s.floor_at(t))
                    self.enrol(s, tb, floor)
                    ta = self.after(tb, 5 * MINUTE, 2 * HOUR)
                    if ta is not None:
                        self.assign(s, ta, self.pick_mentor(floor, ta).id)

        # Reassignments to another mentor of the floor.
        for s in some(self.students, 0.10):
            t = mid()
            self.assign(s, t, self.pick_mentor(s.floor_at(t), t, exclude=s.mentor_at(t)).id)
            if rng.random() < 0.3:
                self.audit(self.between(t, t + 2 * SECOND), "student.reassign", "student", s.id)

        # Unassigned, then back to the same mentor (or another).
        for s in some(self.students, 0.03):
            t = mid()
            before = s.mentor_at(t)
            self.assign(s, t, None)
            tb = self.after(t, HOUR, 3 * DAY)
            if tb is not None:
                back = before if before is not None and rng.random() < 0.7 else self.pick_mentor(s.floor_at(tb), tb).id
                self.assign(s, tb, back)

        # Mentor transfers; some of their students follow another mentor of their floor.
        for m in some(self.mentors, 0.15):
            t = mid()
            self.move(m, t, self.other_floor(m.floor_at(t)))
            if rng.random() < 0.5:
                for s in self.students_of(m, t):
                    ta = self.after(t, HOUR, 12 * HOUR)
                    if ta is not None:
                        self.assign(s, ta, self.pick_mentor(s.floor_at(ta), ta, exclude=m.id).id)

        # Mentors leaving: their students unassigned; half rejoin and get the same students back.
        for m in some(self.mentors, 0.15, 8):
            t = mid()
            mine = self.students_of(m, t)
            self.leave(m, t)
            for s in mine:
                if rng.random() < 0.6:
                    self.assign(s, self.between(t, t + 30 * MINUTE), None)
            tb = self.after(t, DAY, 3 * DAY)
            if tb is not None and rng.random() < 0.7:
                home = m.floor_at(t) or rng.choice(self.floors)  # it may leave before its own late join
                self.join(m, tb, home if rng.random() < 0.7 else self.other_floor(home))
                for s in mine:
                    ta = self.after(tb, 5 * MINUTE, 3 * HOUR)
                    if ta is not None:
                        self.assign(s, ta, m.id)
            else:
                for s in mine:
                    ta = self.after(t, 2 * HOUR, DAY)
                    if ta is not None:
                        self.assign(s, ta, self.pick_mentor(s.floor_at(ta), ta, exclude=m.id).id)

        # Two events of one entity at exactly the same instant: the event_id decides.
        for i in range(max(10, round(n_students * 0.02))):
            t = mid()
            s, m = rng.choice(self.students), rng.choice(self.mentors)
            pair: list[Callable[[], _Item]]
            match i % 5:
                case 0:
                    pair = [lambda: self.assign(s, t, self.pick_mentor(s.floor_at(t), t).id),
                            lambda: self.assign(s, t, None if rng.random() < 0.5 else self.pick_mentor(None, t).id)]
                case 1:
                    pair = [lambda: self.transfer(s, t, self.other_floor(s.floor_at(t))),
                            lambda: self.transfer(s, t, self.other_floor(s.floor_at(t)))]
                case 2:
                    floor = s.floor_at(t) or rng.choice(self.floors)
                    pair = [lambda: self.withdraw(s, t), lambda: self.enrol(s, t, floor)]
                case 3:
                    floor = m.floor_at(t) or rng.choice(self.floors)
                    pair = [lambda: self.leave(m, t), lambda: self.join(m, t, floor)]
                case _:
                    pair = [lambda: self.move(m, t, self.other_floor(m.floor_at(t))),
                            lambda: self.move(m, t, self.other_floor(m.floor_at(t)))]
            rng.shuffle(pair)
            first, second = pair[0](), pair[1]()
            if rng.random() < 0.5:  # and published in either order
                self.publish_after(first, second, MS, MINUTE)

    # --- submissions, reviews, notifications --------------------------------------------------

    def notify(self, user: str, t: int, kind: str) -> _Item | None:
        if t >= self.end:
            return None
        rng = self.rng
        nid = self.new_id("ntf", 7)
        created = self.emit(NotificationCreated, t, {"notification_id": nid, "user_id": user, "kind": kind})
        self.creates.append(created)
        if rng.random() < 0.55:
            tr = self.after(t, 2 * MINUTE, int(rng.lognormvariate(math.log(3 * HOUR), 1.2)) + 3 * MINUTE)
            if tr is not None:
                r = rng.random()
                if r < 0.015:  # the reader's clock is behind: dated before the create, published after it
                    tr = max(0, t - rng.randrange(SECOND, 2 * MINUTE))
                    read = self.emit(NotificationRead, tr, {"notification_id": nid, "user_id": user})
                    self.publish_after(read, created, SECOND, MINUTE)
                else:
                    read = self.emit(NotificationRead, tr, {"notification_id": nid, "user_id": user})
                    if r < 0.08:  # the create is stuck in the notifier and published after the read
                        self.publish_after(created, read, SECOND, HOUR)
        if rng.random() < 0.01:  # created twice (another event_id, later)
            t2 = self.after(t, MINUTE, DAY)
            if t2 is not None:
                self.emit(NotificationCreated, t2, {"notification_id": nid, "user_id": user, "kind": kind})
        return created

    def review_delay(self) -> int:
        minutes = self.rng.lognormvariate(math.log(150), 1.0)
        return int(min(max(minutes, 3), 3 * 24 * 60) * MINUTE)

    def chain(self) -> None:
        """One activity of one student: submitted, reviewed, resubmitted after each rejection."""
        rng = self.rng
        for _ in range(5):
            s = rng.choice(self.students)
            t = self.day_time("work")
            if s.active_at(t):
                break
        sub = self.new_id("sub", 6)
        pillar = rng.choice(self.contract.pillars)
        attempt = 1
        while True:
            data = {"submission_id": sub, "student_id": s.id, "pillar": pillar, "attempt": attempt}
            submitted = self.emit(SubmissionSubmitted, t, data)
            self.submissions.append(submitted)
            if rng.random() < 0.015:  # double click: the same attempt again, another event_id
                again = t if rng.random() < 0.3 else self.after(t, MS, 3 * SECOND)
                if again is not None:
                    other = rng.choice(self.contract.pillars) if rng.random() < 0.2 else pillar
                    self.emit(SubmissionSubmitted, again, {**data, "pillar": other})
            mentor = s.mentor_at(t)
            if mentor is not None and rng.random() < 0.5:
                self.notify(mentor, self.between(t + SECOND, t + 3 * SECOND), "submission.received")
            tr = t + self.review_delay()
            if tr >= self.end:
                return  # still pending when the window closes
            tr = self.rounded(tr)
            reviewer = s.mentor_at(tr)
            if reviewer is None or not self.mentor(reviewer).active_at(tr):
                reviewer = self.pick_mentor(s.floor_at(tr), tr).id
            decision = "rejected" if rng.random() < 0.3 else "approved"
            rid = self.new_id("rev", 6)
            rdata = {
                "review_id": rid,
                "submission_id": sub,
                "student_id": s.id,
                "mentor_id": reviewer,
                "attempt": attempt,
                "decision": decision,
            }
            review = self.emit(ReviewCompleted, tr, rdata)
            self.reviews.append(review)
            if rng.random() < 0.015:  # the review reaches Kafka before its submission
                self.publish_after(submitted, review, SECOND, 2 * HOUR)
            if rng.random() < 0.03:
                self.correct(review, rdata, s)
            if rng.random() < 0.9:
                self.notify(s.id, self.between(tr + SECOND, tr + 5 * SECOND), "review.completed")
            if decision == "approved" or attempt >= 5:
                return
            nxt = self.after(tr, 30 * MINUTE, 2 * DAY)
            if nxt is None:
                return
            t, attempt = nxt, attempt + 1
            if rng.random() < 0.02:
                pillar = rng.choice(self.contract.pillars)

    def correct(self, review: _Item, rdata: dict[str, Any], s: _Person) -> None:
        """The same review_id again with the other decision: later, at the same instant, or dated earlier."""
        rng = self.rng
        flipped = {**rdata, "decision": "approved" if rdata["decision"] == "rejected" else "rejected"}
        if rng.random() < 0.2:
            flipped["mentor_id"] = self.pick_mentor(s.floor_at(review.occ), review.occ, exclude=rdata["mentor_id"]).id
        r = rng.random()
        if r < 0.75:
            t = self.after(review.occ, 10 * MINUTE, 2 * DAY)
            if t is not None:
                self.emit(ReviewCompleted, t, flipped)
        elif r < 0.9:  # same instant: the event_id decides which one is the review
            fixed = self.emit(ReviewCompleted, review.occ, flipped)
            self.publish_after(fixed, review, SECOND, HOUR)
        else:  # a stale version, dated before the original but published after it
            fixed = self.emit(ReviewCompleted, max(0, review.occ - rng.randrange(SECOND, HOUR)), flipped)
            self.publish_after(fixed, review, MINUTE, DAY)

    def mentor(self, mentor_id: str) -> _Person:
        return self.mentors[int(mentor_id.rsplit("-", 1)[1])]

    def work(self, budget: int) -> None:
        while len(self.items) < budget:
            self.chain()
        rng = self.rng
        n = max(4, len(self.items) // 1000)
        users = [s.id for s in self.students]
        # read_all at exactly the instant of a create: the create is read (>=).
        for created in rng.sample(self.creates, min(n, len(self.creates))):
            self.emit(NotificationReadAll, created.occ, {"user_id": created.event.data.user_id})
        # read_all published before a create dated before it.
        for _ in range(n):
            user, t = rng.choice(users), self.between(DAY, self.end)
            read_all = self.emit(NotificationReadAll, t, {"user_id": user})
            created = self.notify(user, max(0, t - rng.randrange(SECOND, 2 * HOUR)), "reminder")
            if created is not None:
                self.publish_after(created, read_all, MINUTE, 3 * HOUR)
        # Created, all read, created again (same id, later): still read, its earliest create counts.
        for _ in range(n):
            user, t = rng.choice(users), self.between(DAY, self.end - DAY)
            nid = self.new_id("ntf", 7)
            first = self.emit(NotificationCreated, t, {"notification_id": nid, "user_id": user, "kind": "reminder"})
            self.creates.append(first)
            t2 = self.between(t + MINUTE, t + 12 * HOUR)
            self.emit(NotificationReadAll, t2, {"user_id": user})
            self.emit(NotificationCreated, self.between(t2 + MINUTE, t2 + 12 * HOUR),
                      {"notification_id": nid, "user_id": user, "kind": "reminder"})

    # --- logins, audit, announcements: fills the log to its exact size ----------------------

    def metadata(self, entity_type: str) -> dict[str, Any]:
        rng = self.rng
        if rng.random() < 0.6:
            return {"ip": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
                    "user_agent": rng.choice(("Mozilla/5.0", "cohort-ios/3.2", "cohort-android/3.1"))}
        return {"changes": {"campus": [rng.choice(CAMPUSES), rng.choice(CAMPUSES)]}, "entity": entity_type,
                "bulk": rng.random() < 0.1, "count": rng.randrange(1, 50), "note": None}

    def user(self) -> tuple[str, str]:
        rng = self.rng
        r = rng.random()
        if r < 0.82:
            return rng.choice(self.students).id, "student"
        if r < 0.97:
            m = rng.choice(self.mentors).id
            return m, "admin" if rng.random() < 0.02 else "mentor"
        return rng.choice(self.admins), "admin"

    def entity(self, entity_type: str) -> str:
        rng = self.rng
        match entity_type:
            case "student":
                return rng.choice(self.students).id
            case "mentor":
                return rng.choice(self.mentors).id
            case "submission":
                return rng.choice(self.submissions).event.data.submission_id
            case "review":
                return rng.choice(self.reviews).event.data.review_id
            case "report":
                return f"report-{rng.choice(('floor', 'mentor', 'daily'))}-{rng.randrange(100)}"
            case _:
                return rng.choice(("workload", "pillars", "notifications"))

    def traffic(self, count: int) -> None:
        assert count >= 0, count
        rng = self.rng
        kinds = ("login", "failed", "audit", "announcement", "read_all")
        weights = (0.64, 0.07, 0.20, 0.05, 0.04)
        for kind in rng.choices(kinds, weights, k=count):
            match kind:
                case "login":
                    user, role = self.user()
                    self.emit(LoginSucceeded, self.day_time("login"), {"user_id": user, "role": role})
                case "failed":
                    user = self.user()[0] if rng.random() < 0.65 else f"unknown-{rng.randrange(10**6):06d}"
                    data = {"user_id": user, "reason": rng.choice(FAILED_LOGIN_REASONS)}
                    self.emit(LoginFailed, self.day_time("login"), data)
                case "audit":
                    action, entity_type = rng.choice(AUDIT_ACTIONS)
                    r = rng.random()
                    actor = (rng.choice(self.admins) if r < 0.55
                             else rng.choice(self.mentors).id if r < 0.95 else "system")
                    self.audit(self.day_time("office"), action, entity_type, self.entity(entity_type), actor)
                case "announcement":
                    data = {"notification_id": self.new_id("ntf", 7), "user_id": self.user()[0], "kind": "announcement"}
                    self.creates.append(self.emit(NotificationCreated, self.day_time("office"), data))
                case _:
                    self.emit(NotificationReadAll, self.day_time("login"), {"user_id": self.user()[0]})

    def delay_some(self, share: float) -> None:
        """Publish a random ``share`` of the records hours or days late, at least one of each type."""
        rng = self.rng
        by_type: dict[str, list[_Item]] = {}
        for item in self.items:
            if item.seq not in self.delayed:
                by_type.setdefault(item.event.type, []).append(item)  # type: ignore[attr-defined]
        for items in by_type.values():
            self.late(rng.choice(items), 2 * HOUR, DAY)
        for item in rng.sample(self.items, round(len(self.items) * share)):
            if item.seq not in self.delayed:
                self.late(item, HOUR, 12 * HOUR) if rng.random() < 0.6 else self.late(item, 12 * HOUR, 3 * DAY)

    # --- publication --------------------------------------------------------------------------

    def publish(self, n_dup: int, n_invalid: int) -> list[Record]:
        rng = self.rng
        items = sorted(self.items, key=lambda i: (i.pub, i.seq))
        newest: dict[str, int] = {}
        for item in items:
            key = item.event.key
            if item.occ > newest.get(key, -1):
                newest[key] = item.occ
        entries: list[tuple[int, int, Record]] = []
        for item in items:
            event = item.event
            entries.append((item.pub, item.seq, Record(event.TOPIC, record_key(event), self.value(event), event, None)))
        seq = len(entries)

        # Re-sends: the same bytes again, soon (a producer retry) or days later (a replayed batch).
        # Never re-send an event older than DEDUP_SAFE before the newest event of its key, nor publish
        # the copy more than DEDUP_SAFE after the original occurred: every copy stays inside the dedup
        # horizon, however the horizon is measured.
        copies: list[tuple[int, int, Record]] = []  # (pub, occ, record)
        first_of_type: dict[str, int] = {}  # one re-send of every type at least, then any record
        for i, item in enumerate(items):
            first_of_type.setdefault(item.event.type, i)  # type: ignore[attr-defined]
        forced = list(first_of_type.values())
        tries = 0
        while len(copies) < n_dup:
            tries += 1
            if tries > 100 * n_dup + 1000:
                raise AssertionError("no event can be re-sent inside the dedup horizon")
            if copies and rng.random() < 0.1:  # a third or fourth copy
                pub, occ, record = rng.choice(copies)
            else:
                i = forced.pop() if forced else rng.randrange(len(items))
                occ, pub, record = items[i].occ, items[i].pub, entries[i][2]
            if newest[record.event.key] - occ > DEDUP_SAFE:  # type: ignore[union-attr]
                continue
            r = rng.random()
            delay = rng.randrange(MS, 5 * SECOND) if r < 0.6 else (
                rng.randrange(MINUTE, 6 * HOUR) if r < 0.9 else rng.randrange(DAY, 10 * DAY))
            when = min(pub + delay, occ + DEDUP_SAFE)
            if when <= pub:
                continue
            copies.append((when, occ, record))
            entries.append((when, seq, record))
            seq += 1

        # Invalid records, each a plausible event breaking exactly one rule.
        breaker = _Breaker(self)
        extra_oversize = n_invalid // 500
        plan = [Reason.OVERSIZE] * (3 + extra_oversize)
        others = [r for r in INVALID_REASONS if r is not Reason.OVERSIZE]
        plan += [others[i % len(others)] for i in range(n_invalid - len(plan))]
        for reason in plan:
            occ = self.between(0, self.end)
            topic, key, value = breaker.make(reason, occ)
            entries.append((occ + self.jitter(), seq, Record(topic, key, value, None, reason)))
            seq += 1

        entries.sort(key=lambda e: (e[0], e[1]))
        return [e[2] for e in entries]

    def value(self, event: EventBase) -> bytes:
        """The record value, written by a producer that may format things its own way."""
        rng = self.rng
        r = rng.random()
        if r < 0.66:
            return encode(event)
        doc = orjson.loads(encode(event))
        micro = event.occurred_at.microsecond
        if r < 0.96:
            if micro % MS == 0:
                doc["occurred_at"] = doc["occurred_at"][:-4] + "Z"  # milliseconds, like JavaScript
        else:
            doc["occurred_at"] = self.odd_timestamp(event.occurred_at)
        r = rng.random()
        if r < 0.03:
            doc["trace_id"] = f"{rng.getrandbits(64):016x}"
            doc["data"]["client"] = rng.choice(("web", "ios", "android"))
        elif r < 0.04:
            doc = {"data": doc.pop("data"), **doc}
        elif r < 0.05 and event.type == "audit.recorded" and "metadata" not in doc["data"]:  # type: ignore[attr-defined]
            doc["data"]["metadata"] = None
        return orjson.dumps(doc)

    def odd_timestamp(self, moment: datetime) -> str:
        """``moment`` in another valid RFC 3339 form that reads back as the same microsecond."""
        rng = self.rng
        r = rng.random()
        if r < 0.4:
            offset = rng.choice((60, 120, -300, -480, 330, 545, 0))
            local = moment.astimezone(UTC) + timedelta(minutes=offset)
            sign = "-" if offset < 0 else "+"
            hh, mm = divmod(abs(offset), 60)
            return f"{local:%Y-%m-%dT%H:%M:%S}.{local.microsecond:06d}{sign}{hh:02d}:{mm:02d}"
        base = f"{moment:%Y-%m-%d}T{moment:%H:%M:%S}.{moment.microsecond:06d}"
        if r < 0.7:
            return f"{base}{rng.randrange(1, 1000):03d}Z"  # nanoseconds, truncated on the way in
        if r < 0.85:
            return base.replace("T", "t") + "z"
        return base.replace("T", " ") + "Z"


# --- invalid records -------------------------------------------------------------------------


class _Breaker:
    """Builds plausible events of the cohort and breaks exactly one rule of each."""

    def __init__(self, cohort: _Cohort) -> None:
        self.c = cohort
        self.rng = cohort.rng
        self.pillars = cohort.contract.pillars
        self.counts: dict[Reason, int] = {}

    def template(self, event_type: str, occ: int) -> tuple[type[EventBase], dict[str, Any]]:
        """A fresh, valid-looking ``event_type`` event of the cohort: (model, JSON document)."""
        c, rng = self.c, self.rng
        s = rng.choice(c.students)
        m = rng.choice(c.mentors)
        floor = rng.choice(c.floors)
        sub = rng.choice(c.submissions).event.data if c.submissions else None
        data: dict[str, Any]
        match event_type:
            case "student.enrolled":
                cls, data = StudentEnrolled, {"student_id": s.id, "campus": floor[0], "floor": floor[1]}
            case "student.assigned":
                cls, data = StudentAssigned, {"student_id": s.id, "mentor_id": m.id}
            case "mentor.joined":
                cls, data = MentorJoined, {"mentor_id": m.id, "campus": floor[0], "floor": floor[1]}
            case "mentor.left":
                cls, data = MentorLeft, {"mentor_id": m.id}
            case "submission.submitted":
                cls, data = SubmissionSubmitted, {
                    "submission_id": sub.submission_id if sub else c.new_id("sub", 6),
                    "student_id": sub.student_id if sub else s.id,
                    "pillar": sub.pillar if sub else rng.choice(self.pillars),
                    "attempt": sub.attempt if sub else 1,
                }
            case "review.completed":
                cls, data = ReviewCompleted, {
                    "review_id": c.new_id("rev", 6),
                    "submission_id": sub.submission_id if sub else c.new_id("sub", 6),
                    "student_id": sub.student_id if sub else s.id,
                    "mentor_id": m.id,
                    "attempt": sub.attempt if sub else 1,
                    "decision": rng.choice(("approved", "rejected")),
                }
            case "login.succeeded":
                cls, data = LoginSucceeded, {"user_id": s.id, "role": "student"}
            case "audit.recorded":
                cls, data = AuditRecorded, {
                    "actor_id": rng.choice(c.admins),
                    "action": "student.update",
                    "entity_type": "student",
                    "entity_id": s.id,
                    "metadata": {"changes": {"floor": ["F1", "F2"]}},
                }
            case "notification.created":
                cls, data = NotificationCreated, {
                    "notification_id": c.new_id("ntf", 7), "user_id": s.id, "kind": "reminder"}
            case "notification.read":
                created = rng.choice(c.creates).event.data
                cls, data = NotificationRead, {"notification_id": created.notification_id, "user_id": created.user_id}
            case "notification.read_all":
                cls, data = NotificationReadAll, {"user_id": s.id}
            case _:
                raise AssertionError(event_type)
        event = cls.model_validate(
            {"event_id": c.event_id(), "occurred_at": c.moment(occ), "source": SOURCES[cls.TOPIC], "data": data}
        )
        return cls, orjson.loads(encode(event))

    def make(self, reason: Reason, occ: int) -> tuple[Topic, bytes | None, bytes | None]:
        n = self.counts.get(reason, 0)  # the n-th record of that reason: its variants take turns
        self.counts[reason] = n + 1
        return getattr(self, reason.value)(occ, n)

    def _out(self, cls: type[EventBase], doc: Any, *, topic: Topic | None = None, key: bytes | None | str = "",
             value: bytes | None = None) -> tuple[Topic, bytes | None, bytes | None]:
        if key == "":
            key = doc["data"][cls.KEY_FIELD].encode()
        return (topic or cls.TOPIC), key, (orjson.dumps(doc) if value is None else value)  # type: ignore[return-value]

    def _pick(self, n: int, options: Sequence[Any]) -> Any:
        return options[n % len(options)]

    def oversize(self, occ: int, n: int) -> tuple[Topic, bytes | None, bytes | None]:
        limit = self.c.contract.max_record_bytes
        if n % 2 == 0:  # an audit record carrying a whole export
            cls, doc = self.template("audit.recorded", occ)
            doc["data"]["metadata"] = {"export": ""}
            holder = doc["data"]["metadata"]
            field = "export"
        else:  # a submission with its attachment inlined (an unknown field, but too big anyway)
            cls, doc = self.template("submission.submitted", occ)
            doc["data"]["attachment"] = ""
            holder, field = doc["data"], "attachment"
        pad = limit - len(orjson.dumps(doc)) + 1 + self.rng.randrange(0, 2048)
        holder[field] = ("UEsDBBQAAAAIA" * (pad // 13 + 1))[:pad]
        return self._out(cls, doc)

    def bad_json(self, occ: int, n: int) -> tuple[Topic, bytes | None, bytes | None]:
        variant = self._pick(n, ("tombstone", "latin1", "truncated", "null", "empty", "repr", "nan", "trailing", "bom"))
        if variant == "latin1":  # a producer that writes Latin-1
            cls, doc = self.template("audit.recorded", occ)
            doc["data"]["metadata"] = {"file": "relatório_turma_são_paulo.csv"}
            return self._out(cls, doc, value=orjson.dumps(doc).decode().encode("latin-1"))
        cls, doc = self.template(self.rng.choice(("submission.submitted", "review.completed", "student.enrolled")), occ)
        raw = orjson.dumps(doc)
        match variant:
            case "tombstone":
                return cls.TOPIC, doc["data"][cls.KEY_FIELD].encode(), None
            case "truncated":
                return self._out(cls, doc, value=raw[: self.rng.randrange(len(raw) // 3, len(raw) - 1)])
            case "null":
                return self._out(cls, doc, value=b"null")
            case "empty":
                return self._out(cls, doc, value=b"")
            case "repr":
                return self._out(cls, doc, value=repr(doc).encode())
            case "nan":
                return self._out(cls, doc, value=raw.replace(b'"schema_version":1', b'"schema_version":NaN'))
            case "trailing":
                return self._out(cls, doc, value=raw + b"\n" + raw)
            case _:
                return self._out(cls, doc, value=b"\xef\xbb\xbf" + raw)

    def not_an_object(self, occ: int, n: int) -> tuple[Topic, bytes | None, bytes | None]:
        cls, doc = self.template(self.rng.choice(("login.succeeded", "submission.submitted", "notification.read")), occ)
        variant = self._pick(n, ("array", "string", "batch", "number"))
        match variant:
            case "array":
                value = orjson.dumps([doc])
            case "string":  # JSON encoded twice
                value = orjson.dumps(orjson.dumps(doc).decode())
            case "batch":
                value = orjson.dumps([doc, doc])
            case _:
                value = str(occ).encode()
        return self._out(cls, doc, value=value)

    def bad_event_id(self, occ: int, n: int) -> tuple[Topic, bytes | None, bytes | None]:
        cls, doc = self.template(self.rng.choice(("review.completed", "login.succeeded", "student.assigned")), occ)
        variant = self._pick(n, ("missing", "empty", "long", "number", "null"))
        match variant:
            case "missing":
                del doc["event_id"]
            case "empty":
                doc["event_id"] = ""
            case "long":
                doc["event_id"] = (f"{doc['event_id']}-" + "0123456789abcdef" * 9)[:129]
            case "number":
                doc["event_id"] = int(doc["event_id"].replace("-", ""))
            case _:
                doc["event_id"] = None
        return self._out(cls, doc)

    def unknown_type(self, occ: int, n: int) -> tuple[Topic, bytes | None, bytes | None]:
        real, typo = self._pick(n, (
            ("student.enrolled", "student.enroled"),
            ("review.completed", "Review.Completed"),
            ("submission.submitted", "submission.created"),
            ("login.succeeded", "login.success"),
            ("notification.read_all", "notification.read-all"),
            ("mentor.joined", "mentor.joined.v2"),
            ("student.assigned", "student.assigned "),
        ))
        cls, doc = self.template(real, occ)
        doc["type"] = typo
        return self._out(cls, doc)

    def type_not_allowed_on_topic(self, occ: int, n: int) -> tuple[Topic, bytes | None, bytes | None]:
        real, topic = self._pick(n, (
            ("review.completed", Topic.SUBMISSIONS),
            ("submission.submitted", Topic.REVIEWS),
            ("login.succeeded", Topic.AUDIT),
            ("audit.recorded", Topic.LOGINS),
            ("notification.read", Topic.LOGINS),
            ("student.enrolled", Topic.SUBMISSIONS),
            ("mentor.left", Topic.NOTIFICATIONS),
        ))
        cls, doc = self.template(real, occ)
        return self._out(cls, doc, topic=topic)

    def unsupported_schema_version(self, occ: int, n: int) -> tuple[Topic, bytes | None, bytes | None]:
        cls, doc = self.template(
            self.rng.choice(("submission.submitted", "student.enrolled", "notification.created")), occ)
        doc["schema_version"] = self._pick(n, (2, 0, 3, 10, -1))
        return self._out(cls, doc)

    def bad_occurred_at(self, occ: int, n: int) -> tuple[Topic, bytes | None, bytes | None]:
        cls, doc = self.template(self.rng.choice(("login.succeeded", "review.completed", "audit.recorded")), occ)
        moment = self.c.moment(occ)
        variant = self._pick(n, ("naive", "epoch", "bad_day", "local", "missing", "hour24", "no_colon", "empty"))
        match variant:
            case "naive":
                doc["occurred_at"] = f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}"
            case "epoch":
                doc["occurred_at"] = int(moment.timestamp() * 1000)
            case "bad_day":
                doc["occurred_at"] = f"{moment:%Y}-{'02-30' if moment.month != 2 else '04-31'}T{moment:%H:%M:%S}Z"
            case "local":
                doc["occurred_at"] = f"{moment:%d/%m/%Y %H:%M}"
            case "missing":
                del doc["occurred_at"]
            case "hour24":
                doc["occurred_at"] = f"{moment:%Y-%m-%d}T24:00:00Z"
            case "no_colon":
                doc["occurred_at"] = f"{moment:%Y-%m-%dT%H:%M:%S}+0100"
            case _:
                doc["occurred_at"] = ""
        return self._out(cls, doc)

    def missing_field(self, occ: int, n: int) -> tuple[Topic, bytes | None, bytes | None]:
        real, field = self._pick(n, (
            ("submission.submitted", "data.attempt"),
            ("review.completed", "data.decision"),
            ("student.assigned", "data.mentor_id"),  # null must be written, not left out
            ("student.enrolled", "data.floor"),
            ("login.succeeded", "data.role"),
            ("notification.read", "data.notification_id"),
            ("review.completed", "data"),
            ("submission.submitted", "type"),
            ("notification.created", "schema_version"),
        ))
        cls, doc = self.template(real, occ)
        key = doc["data"][cls.KEY_FIELD].encode()
        if field.startswith("data."):
            del doc["data"][field[5:]]
        else:
            del doc[field]
        return self._out(cls, doc, key=key)

    def invalid_field(self, occ: int, n: int) -> tuple[Topic, bytes | None, bytes | None]:
        real, path, bad = self._pick(n, (
            ("submission.submitted", "data.attempt", "2"),
            ("review.completed", "data.attempt", 2.0),
            ("review.completed", "data.student_id", 42),
            ("review.completed", "data.mentor_id", ""),
            ("login.succeeded", "data.user_id", None),
            ("audit.recorded", "data.metadata", ["student.update"]),
            ("student.enrolled", "source", 7),
            ("mentor.left", "data", ["men-0001"]),
            ("notification.created", "schema_version", "1"),
            ("login.failed", "type", 5),
            ("review.completed", "data.decision", 1),
            ("student.enrolled", "data.campus", None),
            ("submission.submitted", "data.pillar", 3),
            ("submission.submitted", "data.attempt", True),
            ("student.assigned", "data.mentor_id", 17),
        ))
        if real == "login.failed":  # no template: a failed login is as plausible as any
            cls, doc = self.template("login.succeeded", occ)
            doc["data"] = {"user_id": doc["data"]["user_id"], "reason": "bad_password"}
            cls = LoginFailed
        else:
            cls, doc = self.template(real, occ)
        key = doc["data"][cls.KEY_FIELD].encode()
        if path.startswith("data."):
            doc["data"][path[5:]] = bad
        else:
            doc[path] = bad
        return self._out(cls, doc, key=key)

    def bad_attempt(self, occ: int, n: int) -> tuple[Topic, bytes | None, bytes | None]:
        real, attempt = self._pick(
            n, (("submission.submitted", 0), ("review.completed", 0), ("submission.submitted", -1)))
        cls, doc = self.template(real, occ)
        doc["data"]["attempt"] = attempt
        return self._out(cls, doc)

    def bad_decision(self, occ: int, n: int) -> tuple[Topic, bytes | None, bytes | None]:
        cls, doc = self.template("review.completed", occ)
        doc["data"]["decision"] = self._pick(n, ("approve", "Approved", "pending", "rejected ", ""))
        return self._out(cls, doc)

    def bad_role(self, occ: int, n: int) -> tuple[Topic, bytes | None, bytes | None]:
        cls, doc = self.template("login.succeeded", occ)
        doc["data"]["role"] = self._pick(n, ("teacher", "Student", "staff", "", "mentor "))
        return self._out(cls, doc)

    def unknown_pillar(self, occ: int, n: int) -> tuple[Topic, bytes | None, bytes | None]:
        cls, doc = self.template("submission.submitted", occ)
        known = set(self.pillars)
        first = self.pillars[0]
        candidates = [p for p in ("math", first.upper(), f"{first} ", "", "pillar-6", first + "2") if p not in known]
        doc["data"]["pillar"] = self._pick(n, candidates)
        return self._out(cls, doc)

    def key_mismatch(self, occ: int, n: int) -> tuple[Topic, bytes | None, bytes | None]:
        c = self.c
        variant = self._pick(n, ("none", "other", "mentor", "latin1", "newline", "empty", "submission", "upper"))
        real = {"mentor": "review.completed", "submission": "submission.submitted", "upper": "login.succeeded"}.get(
            variant, self.rng.choice(("student.assigned", "review.completed", "submission.submitted"))
        )
        cls, doc = self.template(real, occ)
        data = doc["data"]
        right = data[cls.KEY_FIELD]
        match variant:
            case "none":
                key = None
            case "other":
                key = next(s.id for s in c.students if s.id != right).encode()
            case "mentor":
                key = data["mentor_id"].encode()  # a producer that keys reviews by their reviewer
            case "latin1":
                data[cls.KEY_FIELD] = right = right + "-ã"
                key = right.encode("latin-1")
            case "newline":
                key = (right + "\n").encode()
            case "empty":
                key = b""
            case "submission":
                key = data["submission_id"].encode()
            case _:
                key = right.upper().encode()
        return self._out(cls, doc, key=key)
