"""The fold: a batch of events -> the change it makes to the views. Pure.

For each entity a batch touches, the fold applies the entity's events to its
state (idempotent, order-insensitive merges), recomputes the entity's
contribution and emits only ``after - before``. Duplicates, interleavings of
topics and partitions and late events therefore cannot change the result.
The few monotone parts (which rows exist, ``as_of``, counted events) are
emitted as such.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from cohortflow.contract.codec import DEFAULT_PILLARS
from cohortflow.contract.events import AuditRecorded
from cohortflow.core.clock import US_PER_DAY, day_of, micros
from cohortflow.core.contributions import EMPTY, Counts, Row, _add, diff, mentor_contribution
from cohortflow.core.entities import Actor, Inbox, Logins, Mentor, Notification, Review, Student, Touched
from cohortflow.core.ledger import StudentLedger
from cohortflow.core.rows import DAY_TAG, FLOOR_TAG, GLOBAL, MENTOR_TAG

Entity = Student | Mentor | Logins | Inbox | Actor
EntityKey = tuple[str, str]  # (kind, id); kinds: s student, m mentor, l logins, n inbox, a actor

FoldEvent = Any
"""An event as the fold reads it: duck-typed over both decoders' event classes.

Events come as the pydantic models of :mod:`cohortflow.contract.events` (``codec.decode``)
or as the msgspec Structs of :mod:`cohortflow.contract.structs` (``structs.decode``). They
share no base class and the Structs' ``data`` classes are generated at import, so the fold
only relies on the attributes both have: ``type``, ``event_id``, ``occurred_at``, ``key``
and ``data.<field>``.
"""

STUDENT, MENTOR, LOGINS, INBOX, ACTOR = "s", "m", "l", "n", "a"
_KINDS: dict[str, type] = {STUDENT: Student, MENTOR: Mentor, LOGINS: Logins, INBOX: Inbox, ACTOR: Actor}

_KIND_OF_TYPE = {
    "student.enrolled": STUDENT,
    "student.transferred": STUDENT,
    "student.withdrawn": STUDENT,
    "student.assigned": STUDENT,
    "submission.submitted": STUDENT,
    "review.completed": STUDENT,
    "mentor.joined": MENTOR,
    "mentor.transferred": MENTOR,
    "mentor.left": MENTOR,
    "login.succeeded": LOGINS,
    "login.failed": LOGINS,
    "notification.created": INBOX,
    "notification.read": INBOX,
    "notification.read_all": INBOX,
    "audit.recorded": ACTOR,
}


def entity_key(event: FoldEvent) -> EntityKey:
    """The entity an event belongs to: its kind and its record key."""
    return (_KIND_OF_TYPE[event.type], event.key)


def new_entity(key: EntityKey) -> Entity:
    return _KINDS[key[0]](key[1])


class _FoldSettings(Protocol):
    """What FoldConfig.of reads from cohortflow.settings.Settings (the fold does not import it)."""

    pillars: tuple[str, ...]
    dedup_horizon_days: int


@dataclass(frozen=True)
class FoldConfig:
    pillars: tuple[str, ...] = DEFAULT_PILLARS
    dedup_horizon_days: int = 35

    @classmethod
    def of(cls, settings: _FoldSettings) -> FoldConfig:
        """The fold's part of the settings: COHORTFLOW_PILLARS and COHORTFLOW_DEDUP_HORIZON_DAYS."""
        return cls(pillars=tuple(settings.pillars), dedup_horizon_days=settings.dedup_horizon_days)

    @property
    def horizon_us(self) -> int:
        return self.dedup_horizon_days * US_PER_DAY


@dataclass
class Effect:
    """What one batch changes; the sink writes it, with the offsets, in one transaction."""

    deltas: Counts = field(default_factory=dict)  # row -> field -> additive change
    named: set[Row] = field(default_factory=set)  # rows that must exist from now on
    as_of: dict[Row, int] = field(default_factory=dict)  # row -> instant to fold in with max()
    mentor_self: dict[str, tuple[str | None, str | None, bool]] = field(default_factory=dict)
    activity: dict[tuple[str, str], int | None] = field(default_factory=dict)  # (mentor, contributor) -> ts|None
    unread: dict[str, int] = field(default_factory=dict)  # user_id -> unread count, absolute
    changed: set[EntityKey] = field(default_factory=set)  # entities whose state must be written
    audit: list[AuditRecorded] = field(default_factory=list)  # accepted audit events, first sighting

    def bump(self, row: Row, ts: int) -> None:
        if ts > self.as_of.get(row, -1 << 62):
            self.as_of[row] = ts


class State:
    """Entities in memory and what each currently contributes (the fold's working set).

    ``contributions`` holds a :class:`~cohortflow.core.ledger.StudentLedger` for students
    and a :class:`~cohortflow.core.contributions.Contribution` for mentors; it is derived
    from the entities, never persisted, and rebuilt on first use after a load.
    """

    def __init__(self) -> None:
        self.entities: dict[EntityKey, Entity] = {}
        self.contributions: dict[EntityKey, Any] = {}

    def get(self, key: EntityKey) -> Entity:
        entity = self.entities.get(key)
        if entity is None:
            entity = self.entities[key] = new_entity(key)
            # An entity nobody has heard of contributes nothing yet.
            self.contributions[key] = StudentLedger() if key[0] == STUDENT else EMPTY
        return entity

    def contribution(self, key: EntityKey, entity: Entity) -> Any:
        known = self.contributions.get(key)
        if known is None:
            if isinstance(entity, Student):
                known = StudentLedger.build(entity)
            elif isinstance(entity, Mentor):
                known = mentor_contribution(entity)
            else:
                known = EMPTY
            self.contributions[key] = known
        return known


class Fold:
    """Folds batches of decoded events into :class:`Effect`s, keeping entity state in a :class:`State`."""

    def __init__(self, config: FoldConfig | None = None) -> None:
        self.config = config or FoldConfig()

    def apply(self, events: Iterable[FoldEvent], state: State, into: Effect | None = None,
              keys: Iterable[EntityKey] | None = None) -> Effect:
        """Fold ``events`` into ``state``; return the change to the views (added to ``into`` when given).

        Folding a batch as consecutive chunks into one effect gives the views of
        folding it whole (the effect may also carry changes that cancel out, as 0
        deltas or absolute values written again), so the worker can fold a large
        batch in cache-sized pieces and commit once.
        ``keys``, when given, is :func:`entity_key` of each event (the worker has them already).
        """
        effect = Effect() if into is None else into
        by_entity: dict[EntityKey, list[tuple[int, FoldEvent]]] = defaultdict(list)
        newest_of_day: dict[int, int] = {}  # every event names its date's row and moves its as_of
        if keys is None:
            events = list(events)
            keys = [entity_key(event) for event in events]
        for event, key in zip(events, keys, strict=True):
            ts = micros(event.occurred_at)
            by_entity[key].append((ts, event))
            day = ts // US_PER_DAY
            if ts > newest_of_day.get(day, -1 << 62):
                newest_of_day[day] = ts
        for day, ts in newest_of_day.items():
            effect.named.add((DAY_TAG, day))
            effect.bump((DAY_TAG, day), ts)
        if newest_of_day:
            effect.bump(GLOBAL, max(newest_of_day.values()))
        for key, items in by_entity.items():
            self._apply_entity(key, items, state, effect)
        return effect

    def _apply_entity(self, key: EntityKey, items: Sequence[tuple[int, FoldEvent]], state: State,
                      effect: Effect) -> None:
        entity = state.get(key)
        before = state.contribution(key, entity)
        kind = key[0]
        changed = False
        if kind == STUDENT:
            touched = Touched()
            for ts, event in items:
                changed |= self._student(entity, ts, event, effect, touched)  # type: ignore[arg-type]
            if touched:
                activity: dict[str, int | None] = {}
                before.update(entity, touched, effect.deltas, activity)
                contributor = f"s:{key[1]}"
                for mentor_id, last in activity.items():
                    effect.activity[(mentor_id, contributor)] = last
        else:
            apply = _APPLY[kind]
            for ts, event in items:
                changed |= apply(self, entity, ts, event, effect)
            if changed and kind == MENTOR:
                after = mentor_contribution(entity)  # type: ignore[arg-type]
                state.contributions[key] = after
                diff(before.counts, after.counts, effect.deltas)
                # mentor_contribution always sets mentor_self: the None test only narrows its type
                if after.mentor_self is not None and after.mentor_self != before.mentor_self:
                    effect.mentor_self[key[1]] = after.mentor_self
        if not changed:
            return
        effect.changed.add(key)
        for row in _attached(entity):
            effect.bump(row, entity.max_ts)  # type: ignore[union-attr]

    # --- per kind: apply one event, return whether the state changed ----------------------
    def _student(self, s: Student, ts: int, event: FoldEvent, effect: Effect, touched: Touched) -> bool:
        changed = ts > s.max_ts
        s.max_ts = max(s.max_ts, ts)
        eid = event.event_id
        kind = event.type  # dispatch on the type, not the class: see FoldEvent
        if kind == "submission.submitted":
            d = event.data
            return s.apply_submitted(ts, eid, d.submission_id, d.pillar, d.attempt, touched) | changed
        if kind == "review.completed":
            d = event.data
            effect.named.add((MENTOR_TAG, d.mentor_id))
            review = Review(ts, eid, d.submission_id, d.attempt, d.mentor_id, d.decision == "approved")
            return s.apply_review(d.review_id, review, touched) | changed
        if kind == "student.enrolled":
            d = event.data
            effect.named.add((FLOOR_TAG, d.campus, d.floor))
            return s.apply_status(ts, eid, True, touched) | s.apply_floor(ts, eid, d.campus, d.floor, touched) | changed
        if kind == "student.transferred":
            effect.named.add((FLOOR_TAG, event.data.campus, event.data.floor))
            return s.apply_floor(ts, eid, event.data.campus, event.data.floor, touched) | changed
        if kind == "student.withdrawn":
            return s.apply_status(ts, eid, False, touched) | changed
        if kind == "student.assigned":
            if event.data.mentor_id is not None:
                effect.named.add((MENTOR_TAG, event.data.mentor_id))
            return s.apply_mentor(ts, eid, event.data.mentor_id, touched) | changed
        raise TypeError(f"not a student event: {event.type}")

    def _mentor(self, m: Mentor, ts: int, event: FoldEvent, effect: Effect) -> bool:
        changed = ts > m.max_ts
        m.max_ts = max(m.max_ts, ts)
        effect.named.add((MENTOR_TAG, m.id))
        eid, kind = event.event_id, event.type
        if kind == "mentor.joined":
            effect.named.add((FLOOR_TAG, event.data.campus, event.data.floor))
            return m.apply_status(ts, eid, True) | m.apply_floor(ts, eid, event.data.campus, event.data.floor) | changed
        if kind == "mentor.transferred":
            effect.named.add((FLOOR_TAG, event.data.campus, event.data.floor))
            return m.apply_floor(ts, eid, event.data.campus, event.data.floor) | changed
        if kind == "mentor.left":
            return m.apply_status(ts, eid, False) | changed
        raise TypeError(f"not a mentor event: {event.type}")

    def _logins(self, person: Logins, ts: int, event: FoldEvent, effect: Effect) -> bool:
        if not person.counted.first_time(event.event_id, ts, self.config.horizon_us):
            return False
        day = day_of(ts)
        if event.type == "login.succeeded":
            _add(effect.deltas, (DAY_TAG, day), "logins", 1)
            if day not in person.days:  # days only grow: the monotone part needs no before/after
                person.days.add(day)
                _add(effect.deltas, (DAY_TAG, day), "active_users", 1)
            if person.last_login is None or ts > person.last_login:
                person.last_login = ts
                person.max_ts = ts  # only successful logins are applied to the mentor row
                effect.activity[(person.id, f"l:{person.id}")] = ts
        elif event.type == "login.failed":
            _add(effect.deltas, (DAY_TAG, day), "failed_logins", 1)
        else:
            raise TypeError(f"not a login event: {event.type}")
        return True

    def _inbox(self, inbox: Inbox, ts: int, event: FoldEvent, effect: Effect) -> bool:
        before = inbox.unread
        kind = event.type
        if kind == "notification.read_all":
            if inbox.read_all is not None and inbox.read_all >= ts:
                return False
            inbox.mark_all_read(ts)
        else:
            nid = event.data.notification_id
            note = inbox.notifications.get(nid)
            if note is None:
                note = inbox.notifications[nid] = Notification()
            if kind == "notification.created":
                if event.event_id in note.created:
                    return False
                note.created[event.event_id] = ts
                _add(effect.deltas, (DAY_TAG, day_of(ts)), "notifications_created", 1)
            elif kind == "notification.read":
                if note.read:
                    return False
                note.read = True
            else:
                raise TypeError(f"not a notification event: {event.type}")
            inbox.refresh(nid)
        if inbox.unread != before:
            _add(effect.deltas, GLOBAL, "unread_notifications", inbox.unread - before)
            effect.unread[inbox.id] = inbox.unread
        return True

    def _actor(self, actor: Actor, ts: int, event: FoldEvent, effect: Effect) -> bool:
        if event.type != "audit.recorded":
            raise TypeError(f"not an audit event: {event.type}")
        if not actor.counted.first_time(event.event_id, ts, self.config.horizon_us):
            return False
        _add(effect.deltas, (DAY_TAG, day_of(ts)), "audit_events", 1)
        effect.audit.append(event)
        return True


# Per entity kind; the signatures differ (_student also takes the Touched), so the callables are typed loosely.
_APPLY: dict[str, Callable[..., bool]] = {
    STUDENT: Fold._student, MENTOR: Fold._mentor, LOGINS: Fold._logins, INBOX: Fold._inbox, ACTOR: Fold._actor,
}


def _attached(entity: Entity) -> list[Row]:
    """The floor and mentor rows a person is attached to (see docs/semantics.md, as_of)."""
    if isinstance(entity, Student):
        return [(FLOOR_TAG, *f) for f in entity.floors_named] + [(MENTOR_TAG, m) for m in entity.mentors_named]
    if isinstance(entity, Mentor):
        return [(FLOOR_TAG, *f) for f in entity.floors_named] + [(MENTOR_TAG, entity.id)]
    if isinstance(entity, Logins) and entity.last_login is not None:
        return [(MENTOR_TAG, entity.id)]
    return []
