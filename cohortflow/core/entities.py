"""Per-entity state whose merge is idempotent and order-insensitive.

Every piece of state is a register that keeps the greatest ``(ts, event_id)``,
a set keyed by ids, a minimum or a maximum, so applying the same events in
any order, any number of times, gives the same state. Times are integer
microseconds since the Unix epoch (UTC), see :mod:`cohortflow.core.clock`.

Entities, each keyed by its record key:

- :class:`Student` (roster ``student.*``, submissions, reviews),
- :class:`Mentor` (roster ``mentor.*``),
- :class:`Logins` (the logins topic, per user),
- :class:`Inbox` (the notifications topic, per user),
- :class:`Actor` (the audit topic, per actor).

Each ``apply_*`` returns whether the event changed anything, so duplicates
are recognised without a separate seen-set where the state already says it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# A register value: (ts, event_id, payload...). Tuples compare by (ts, event_id) first.
Status = dict[str, tuple[int, bool]]  # event_id -> (ts, active): enrolled/joined True, withdrawn/left False


def latest_status(status: Status) -> bool:
    """Active per the latest status event; no status event means inactive."""
    if not status:
        return False
    best = max(status.items(), key=lambda item: (item[1][0], item[0]))
    return best[1][1]


def status_steps(status: Status) -> dict[int, int]:
    """+1 / -1 per transition, keyed by the microsecond it happens at (events in (ts, event_id) order)."""
    steps: dict[int, int] = {}
    active = False
    for _event_id, (ts, now_active) in sorted(status.items(), key=lambda item: (item[1][0], item[0])):
        if now_active != active:
            steps[ts] = steps.get(ts, 0) + (1 if now_active else -1)
            active = now_active
    return steps


def _grow(names: set, name: object) -> bool:
    """Add ``name``; True when it was not there yet."""
    if name in names:
        return False
    names.add(name)
    return True


@dataclass(slots=True)
class Submission:
    pillar: tuple[int, str, str] | None = None  # (ts, event_id, pillar) of the latest submitted event
    submitted: dict[int, int] = field(default_factory=dict)  # attempt -> earliest submitted ts
    top: int = 0  # current attempt: highest attempt in any submitted or review event


@dataclass(slots=True)
class Review:
    ts: int
    event_id: str
    submission_id: str
    attempt: int
    mentor_id: str
    approved: bool

    @property
    def order(self) -> tuple[int, str]:
        return (self.ts, self.event_id)


@dataclass(slots=True)
class Student:
    id: str
    status: Status = field(default_factory=dict)
    floor: tuple[int, str, str, str] | None = None  # (ts, event_id, campus, floor)
    mentor: tuple[int, str, str | None] | None = None  # (ts, event_id, mentor_id)
    submissions: dict[str, Submission] = field(default_factory=dict)
    reviews: dict[str, Review] = field(default_factory=dict)
    floors_named: set[tuple[str, str]] = field(default_factory=set)
    mentors_named: set[str] = field(default_factory=set)
    max_ts: int = 0

    def apply_status(self, ts: int, event_id: str, active: bool, touched: Touched) -> bool:
        if event_id in self.status:
            return False
        self.status[event_id] = (ts, active)
        touched.status = True
        return True

    def apply_floor(self, ts: int, event_id: str, campus: str, floor: str, touched: Touched) -> bool:
        named = _grow(self.floors_named, (campus, floor))
        if self.floor is not None and self.floor[:2] >= (ts, event_id):
            return named
        self.floor = (ts, event_id, campus, floor)
        touched.placement = True
        return True

    def apply_mentor(self, ts: int, event_id: str, mentor_id: str | None, touched: Touched) -> bool:
        named = mentor_id is not None and _grow(self.mentors_named, mentor_id)
        if self.mentor is not None and self.mentor[:2] >= (ts, event_id):
            return named
        self.mentor = (ts, event_id, mentor_id)
        touched.placement = True
        return True

    def submission(self, submission_id: str) -> Submission:
        sub = self.submissions.get(submission_id)
        if sub is None:
            sub = self.submissions[submission_id] = Submission()
        return sub

    def apply_submitted(self, ts: int, event_id: str, submission_id: str, pillar: str, attempt: int,
                        touched: Touched) -> bool:
        sub = self.submission(submission_id)
        changed = False
        if sub.pillar is None or sub.pillar[:2] < (ts, event_id):
            sub.pillar = (ts, event_id, pillar)
            changed = True
        first = sub.submitted.get(attempt)
        if first is None or ts < first:
            sub.submitted[attempt] = ts
            changed = True
        if attempt > sub.top:
            sub.top = attempt
            changed = True
        if changed:
            touched.submissions.add(submission_id)
        return changed

    def apply_review(self, review_id: str, review: Review, touched: Touched) -> bool:
        changed = _grow(self.mentors_named, review.mentor_id)
        sub = self.submission(review.submission_id)
        if review.attempt > sub.top:
            sub.top = review.attempt
            touched.submissions.add(review.submission_id)
            changed = True
        known = self.reviews.get(review_id)
        if known is None or known.order < review.order:
            self.reviews[review_id] = review
            touched.reviews.add(review_id)
            changed = True
        return changed


@dataclass(slots=True)
class Mentor:
    id: str
    status: Status = field(default_factory=dict)
    floor: tuple[int, str, str, str] | None = None
    floors_named: set[tuple[str, str]] = field(default_factory=set)
    max_ts: int = 0

    def apply_status(self, ts: int, event_id: str, active: bool) -> bool:
        if event_id in self.status:
            return False
        self.status[event_id] = (ts, active)
        return True

    def apply_floor(self, ts: int, event_id: str, campus: str, floor: str) -> bool:
        named = _grow(self.floors_named, (campus, floor))
        if self.floor is not None and self.floor[:2] >= (ts, event_id):
            return named
        self.floor = (ts, event_id, campus, floor)
        return True


@dataclass(slots=True)
class Counted:
    """Event ids already counted, kept for the dedup horizon of event time."""

    seen: dict[str, int] = field(default_factory=dict)  # event_id -> ts
    newest: int = 0
    oldest: int | None = field(default=None, compare=False)  # min of seen; derived, None: not known yet

    def first_time(self, event_id: str, ts: int, horizon_us: int) -> bool:
        """Record ``event_id``; False when it was counted already (within the horizon)."""
        if event_id in self.seen:
            return False
        self.seen[event_id] = ts
        if self.oldest is None:
            self.oldest = min(self.seen.values())
        elif ts < self.oldest:
            self.oldest = ts
        if ts > self.newest:
            self.newest = ts
            cutoff = ts - horizon_us
            if self.oldest < cutoff and len(self.seen) > 64:  # O(1) unless something is due
                self.seen = {e: t for e, t in self.seen.items() if t >= cutoff}
                self.oldest = min(self.seen.values())
        return True


@dataclass(slots=True)
class Logins:
    id: str
    counted: Counted = field(default_factory=Counted)
    days: set[int] = field(default_factory=set)  # UTC day numbers with a login.succeeded
    last_login: int | None = None  # greatest ts of login.succeeded
    max_ts: int = 0


@dataclass(slots=True)
class Notification:
    created: dict[str, int] = field(default_factory=dict)  # created event_id -> ts
    read: bool = False  # a notification.read for this id was seen

    def unread(self, read_all: int | None) -> bool:
        if not self.created or self.read:
            return False
        return read_all is None or read_all < min(self.created.values())


@dataclass(slots=True)
class Inbox:
    id: str
    notifications: dict[str, Notification] = field(default_factory=dict)
    read_all: int | None = None  # greatest ts of notification.read_all
    unread: int = 0  # kept equal to the number of unread notifications
    # notification_id -> its earliest created ts, for the unread ones; derived (rebuilt after a load)
    unread_since: dict[str, int] | None = field(default=None, compare=False)

    def _unread_since(self) -> dict[str, int]:
        if self.unread_since is None:
            self.unread_since = {nid: min(n.created.values()) for nid, n in self.notifications.items()
                                 if n.unread(self.read_all)}
        return self.unread_since

    def refresh(self, notification_id: str) -> int:
        """Re-judge one notification after a change to it; return the unread count."""
        unread = self._unread_since()
        note = self.notifications[notification_id]
        if note.unread(self.read_all):
            unread[notification_id] = min(note.created.values())
        else:
            unread.pop(notification_id, None)
        self.unread = len(unread)
        return self.unread

    def mark_all_read(self, ts: int) -> int:
        """Apply a read_all at ``ts`` (the newest so far); return the unread count."""
        unread = self._unread_since()
        self.read_all = ts
        for nid in [nid for nid, created in unread.items() if created <= ts]:
            del unread[nid]
        self.unread = len(unread)
        return self.unread


@dataclass(slots=True)
class Actor:
    id: str
    counted: Counted = field(default_factory=Counted)


@dataclass(slots=True)
class Touched:
    """What the events of one batch changed in a student."""

    reviews: set[str] = field(default_factory=set)  # review ids whose latest version changed
    submissions: set[str] = field(default_factory=set)  # ids whose pillar, submitted times or top changed
    status: bool = False  # a new enrolled/withdrawn event
    placement: bool = False  # the floor or mentor register moved

    def __bool__(self) -> bool:
        return bool(self.reviews or self.submissions or self.status or self.placement)

    @classmethod
    def everything(cls, student: Student) -> Touched:
        return cls(set(student.reviews), set(student.submissions), True, True)
