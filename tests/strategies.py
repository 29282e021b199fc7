"""Hypothesis strategies for the events of the contract, for any test that needs them.

``valid_events(contract)`` draws every event type with realistic ids (and,
now and then, arbitrary Unicode ones), microsecond UTC instants and pillars
from the contract. ``valid_records(contract)`` draws the Kafka records that
carry them: ``(full topic name, key, value)``, and ``mutated_records()`` the same
records with a few fields deleted or set to likely-wrong values.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import orjson
from hypothesis import strategies as st

from cohortflow.contract import (
    DEFAULT_CONTRACT,
    EVENT_CLASSES,
    EVENT_TYPES,
    Contract,
    EventBase,
    Topic,
    encode,
    record_key,
    topic_name,
)

# Valid events never hold U+0000: PostgreSQL cannot store it, so decode refuses it (invalid_field).
TEXT = st.characters(codec="utf-8", exclude_characters="\x00")

EARLIEST = datetime(1970, 1, 1)
LATEST = datetime(2100, 1, 1)


def ids(prefix: str) -> st.SearchStrategy[str]:
    """Entity ids as apps make them (``stu-00042``, UUIDs), and sometimes any non-empty text."""
    return st.one_of(
        st.integers(0, 99_999).map(lambda n: f"{prefix}-{n:05d}"),
        st.uuids().map(str),
        st.text(TEXT, min_size=1, max_size=24),
    )


def event_ids() -> st.SearchStrategy[str]:
    """Valid event ids: UUIDs mostly, any 1-128 characters sometimes."""
    return st.one_of(st.uuids().map(str), st.text(TEXT, min_size=1, max_size=128))


def moments(earliest: datetime = EARLIEST, latest: datetime = LATEST) -> st.SearchStrategy[datetime]:
    """UTC instants with microsecond precision."""
    return st.datetimes(min_value=earliest, max_value=latest, timezones=st.just(UTC))


def labels() -> st.SearchStrategy[str]:
    """Free strings such as campus, floor, kind or action names."""
    return st.one_of(st.sampled_from(["north", "south", "F1", "F2", "3", "review", "login"]),
                     st.text(TEXT, max_size=20))


def json_values() -> st.SearchStrategy[Any]:
    """Any JSON value orjson reads back as it was written."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**63 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(TEXT, max_size=12),
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(TEXT, max_size=8), inner, max_size=3),
        max_leaves=8,
    )


@cache  # building strategies is slow; composites call these per example
def event_data(event_type: str, contract: Contract = DEFAULT_CONTRACT) -> st.SearchStrategy[dict[str, Any]]:
    """The ``data`` object of a valid ``event_type`` event, as a plain dict."""
    student, mentor = ids("stu"), ids("men")
    attempt = st.one_of(st.integers(1, 5), st.integers(1, 2**63 - 1))
    placement = {"campus": labels(), "floor": labels()}
    fields: dict[str, dict[str, st.SearchStrategy[Any]]] = {
        "student.enrolled": {"student_id": student, **placement},
        "student.transferred": {"student_id": student, **placement},
        "student.withdrawn": {"student_id": student},
        "student.assigned": {"student_id": student, "mentor_id": st.none() | mentor},
        "mentor.joined": {"mentor_id": mentor, **placement},
        "mentor.transferred": {"mentor_id": mentor, **placement},
        "mentor.left": {"mentor_id": mentor},
        "submission.submitted": {
            "submission_id": ids("sub"),
            "student_id": student,
            "pillar": st.sampled_from(contract.pillars),
            "attempt": attempt,
        },
        "review.completed": {
            "review_id": ids("rev"),
            "submission_id": ids("sub"),
            "student_id": student,
            "mentor_id": mentor,
            "attempt": attempt,
            "decision": st.sampled_from(["approved", "rejected"]),
        },
        "login.succeeded": {"user_id": ids("usr"), "role": st.sampled_from(["student", "mentor", "admin"])},
        "login.failed": {"user_id": ids("usr"), "reason": labels()},
        "audit.recorded": {
            "actor_id": ids("usr"),
            "action": labels(),
            "entity_type": labels(),
            "entity_id": ids("ent"),
            "metadata": st.none() | st.dictionaries(st.text(TEXT, max_size=10), json_values(), max_size=4),
        },
        "notification.created": {"notification_id": ids("ntf"), "user_id": ids("usr"), "kind": labels()},
        "notification.read": {"notification_id": ids("ntf"), "user_id": ids("usr")},
        "notification.read_all": {"user_id": ids("usr")},
    }
    return st.fixed_dictionaries(fields[event_type])


@cache
def events_of_type(
    event_type: str, contract: Contract = DEFAULT_CONTRACT, at: st.SearchStrategy[datetime] | None = None
) -> st.SearchStrategy[EventBase]:
    """Valid events of one type."""
    cls = EVENT_CLASSES[event_type]
    return st.builds(
        lambda event_id, occurred_at, source, data: cls.model_validate(
            {"event_id": event_id, "occurred_at": occurred_at, "source": source, "data": data}
        ),
        event_ids(),
        at if at is not None else moments(),
        st.none() | st.sampled_from(["cohort-app", "admin-console"]) | st.text(TEXT, max_size=16),
        event_data(event_type, contract),
    )


def valid_events(
    contract: Contract = DEFAULT_CONTRACT, types: Sequence[str] = EVENT_TYPES
) -> st.SearchStrategy[EventBase]:
    """Valid events of any of ``types`` (all by default) under ``contract``."""
    return _valid_events(contract, tuple(types))


@cache
def _valid_events(contract: Contract, types: tuple[str, ...]) -> st.SearchStrategy[EventBase]:
    return st.one_of([events_of_type(t, contract) for t in types])


@cache
def valid_records(contract: Contract = DEFAULT_CONTRACT) -> st.SearchStrategy[tuple[str, bytes, bytes]]:
    """``(topic, key, value)`` of Kafka records that carry valid events under ``contract``."""
    return valid_events(contract).map(
        lambda event: (topic_name(contract.topic_prefix, event.TOPIC), record_key(event), encode(event))
    )


TOPICS = st.sampled_from([topic_name(DEFAULT_CONTRACT.topic_prefix, t) for t in Topic]) | st.text(max_size=30)
"""Topic names: the default contract's (deadletter included) and any other text."""

KEYS = st.none() | st.binary(max_size=40) | st.text(max_size=10).map(str.encode)
"""Record keys: none, any bytes, any UTF-8 text."""


ENVELOPE_FIELDS = ["event_id", "type", "schema_version", "occurred_at", "source", "data", "extra"]
DATA_FIELDS = sorted({"pillar", "attempt", "decision", "role", "metadata", "mentor_id", "campus", "floor", "kind"})
ODD_VALUES = st.one_of(
    json_values(),
    st.sampled_from(["", "0", "2026-11-23T10:15:30", "approved", "clt", "stu-1", 0, 1, -1, 2, 1.0, True, None]),
    st.builds(list),  # a fresh one each time: a shared literal, mutated as `data`, could end up inside itself
    st.builds(dict),
    st.sampled_from(EVENT_TYPES),
)


@st.composite
def mutated_records(draw: st.DrawFn, contract: Contract = DEFAULT_CONTRACT) -> tuple[str, bytes | None, bytes]:
    """A valid record with a few fields deleted, retyped or set to likely-wrong values."""
    topic, key, value = draw(valid_records(contract))
    doc: dict[str, Any] = orjson.loads(value)
    for _ in range(draw(st.integers(1, 3))):
        in_data = draw(st.booleans()) and isinstance(doc.get("data"), dict)
        target = doc["data"] if in_data else doc
        name = draw(st.sampled_from(sorted({*target, *(DATA_FIELDS if in_data else ENVELOPE_FIELDS)})))
        if draw(st.booleans()):
            target.pop(name, None)
        else:
            target[name] = draw(ODD_VALUES)
    if draw(st.booleans()):
        topic = draw(TOPICS)
    if draw(st.booleans()):
        key = draw(KEYS)
    return topic, key, orjson.dumps(doc)


# --- adversarial event lists, for properties of the views ------------------------------------
#
# Tiny id pools and a narrow window of time, so that collisions, corrections,
# late events, re-enrolments and reads before creates happen in most examples.

ADVERSARIAL_START = datetime(2026, 11, 2, tzinfo=UTC)
"""The first instant of the window ``adversarial_events`` draws from (the window is 3 days)."""
ADVERSARIAL_FLOORS = (("north", "F1"), ("north", "F2"), ("south", "F1"))
"""(campus, floor): two campuses, and a floor name both campuses have."""
ADVERSARIAL_MENTORS = ("men-1", "men-2", "men-3")
ADVERSARIAL_STUDENTS = ("stu-1", "stu-2", "stu-3", "stu-4")
ADVERSARIAL_USERS = ("stu-1", "men-1")
"""Who logs in and gets notifications: a student and a mentor (so badges and last_active_at are hit)."""
ADVERSARIAL_ACTORS = ("adm-1", "men-2")
ADVERSARIAL_NOTIFICATIONS = (("ntf-1", "stu-1"), ("ntf-2", "stu-1"), ("ntf-3", "men-1"))
"""(notification_id, its user): an id always belongs to the same user."""


def _instants() -> tuple[datetime, ...]:
    day = timedelta(days=1)
    s = ADVERSARIAL_START
    return (
        s + timedelta(hours=9),
        s + timedelta(hours=9, milliseconds=1),
        s + day - timedelta(microseconds=1),  # the last instant of a date
        s + day,  # and the first of the next
        s + day + timedelta(hours=9),
        s + day + timedelta(hours=12, minutes=30),
        s + 2 * day + timedelta(hours=8),
        s + 2 * day + timedelta(hours=23, minutes=59, seconds=59, microseconds=999_999),
    )


ADVERSARIAL_INSTANTS = _instants()
"""The few instants most events take, so that equal ``occurred_at`` are common."""

ADVERSARIAL_MOMENTS = st.one_of(
    st.sampled_from(ADVERSARIAL_INSTANTS),
    st.sampled_from(ADVERSARIAL_INSTANTS),
    moments(ADVERSARIAL_START.replace(tzinfo=None), (ADVERSARIAL_START + timedelta(days=3)).replace(tzinfo=None)),
)


def _submission_ids(student: str) -> st.SearchStrategy[str]:
    return st.sampled_from([f"{student}/sub-{k}" for k in (1, 2, 3)])


@st.composite
def _adversarial_data(draw: st.DrawFn, event_type: str, contract: Contract) -> dict[str, Any]:
    student = draw(st.sampled_from(ADVERSARIAL_STUDENTS))
    mentor = draw(st.sampled_from(ADVERSARIAL_MENTORS))
    campus, floor = draw(st.sampled_from(ADVERSARIAL_FLOORS))
    attempt = st.integers(1, 3)
    pillar = st.sampled_from(contract.pillars[:2]) | st.sampled_from(contract.pillars)
    match event_type:
        case "student.enrolled" | "student.transferred":
            return {"student_id": student, "campus": campus, "floor": floor}
        case "student.withdrawn":
            return {"student_id": student}
        case "student.assigned":
            return {"student_id": student, "mentor_id": draw(st.none() | st.sampled_from(ADVERSARIAL_MENTORS))}
        case "mentor.joined" | "mentor.transferred":
            return {"mentor_id": mentor, "campus": campus, "floor": floor}
        case "mentor.left":
            return {"mentor_id": mentor}
        case "submission.submitted":
            return {
                "submission_id": draw(_submission_ids(student)),
                "student_id": student,
                "pillar": draw(pillar),
                "attempt": draw(attempt),
            }
        case "review.completed":
            # Mostly one of the student's submissions; now and then one never submitted, rarely
            # another student's (two different submissions, by the project's rule of ownership).
            other = draw(st.sampled_from(ADVERSARIAL_STUDENTS))
            submission = draw(
                st.one_of(
                    _submission_ids(student),
                    _submission_ids(student),
                    _submission_ids(student),
                    st.sampled_from([f"{student}/sub-9", f"{student}/sub-1" if other == student else f"{other}/sub-1"]),
                )
            )
            return {
                "review_id": draw(st.sampled_from([f"{student}/rev-{k}" for k in (1, 2, 3)])),
                "submission_id": submission,
                "student_id": student,
                "mentor_id": mentor,
                "attempt": draw(attempt),
                "decision": draw(st.sampled_from(["approved", "rejected"])),
            }
        case "login.succeeded":
            user = draw(st.sampled_from(ADVERSARIAL_USERS))
            usual = "student" if user.startswith("stu") else "mentor"
            return {"user_id": user, "role": draw(st.sampled_from([usual, usual, usual, "admin"]))}
        case "login.failed":
            return {
                "user_id": draw(st.sampled_from([*ADVERSARIAL_USERS, "ghost"])),
                "reason": draw(st.sampled_from(["bad_password", "account_locked"])),
            }
        case "audit.recorded":
            entity_type, entity_id = draw(
                st.sampled_from([("student", student), ("mentor", mentor), ("submission", f"{student}/sub-1")])
            )
            return {
                "actor_id": draw(st.sampled_from(ADVERSARIAL_ACTORS)),
                "action": draw(st.sampled_from(["student.update", "review.override", "report.export"])),
                "entity_type": entity_type,
                "entity_id": entity_id,
                "metadata": draw(
                    st.none() | st.just({"ip": "10.0.0.1"}) | st.just({"changes": {"floor": ["F1", "F2"]}})
                ),
            }
        case "notification.created":
            notification, user = draw(st.sampled_from(ADVERSARIAL_NOTIFICATIONS))
            kind = draw(st.sampled_from(["review.completed", "submission.received", "announcement"]))
            return {"notification_id": notification, "user_id": user, "kind": kind}
        case "notification.read":
            notification, user = draw(st.sampled_from(ADVERSARIAL_NOTIFICATIONS))
            return {"notification_id": notification, "user_id": user}
        case "notification.read_all":
            return {"user_id": draw(st.sampled_from(ADVERSARIAL_USERS))}
    raise AssertionError(event_type)


# Every type, the ones whose folding has the most rules more often.
_ADVERSARIAL_TYPES = tuple(
    t
    for t in EVENT_TYPES
    for _ in range(3 if t in ("submission.submitted", "review.completed", "student.assigned") else
                   1 if t.startswith(("login.", "audit.")) else 2)
)


@st.composite
def _adversarial_events(draw: st.DrawFn, contract: Contract, max_size: int) -> list[EventBase]:
    events: list[EventBase] = []
    for i in range(draw(st.integers(0, max_size))):
        choice = draw(st.integers(0, 7)) if events else 7
        if choice == 0:  # a re-delivery: the very same event again
            events.append(draw(st.sampled_from(events)))
            continue
        # A small rank decides most event_id comparisons ("03.17" < "10.2"); equal ranks fall back
        # on the position, compared as a string too ("03.17" < "03.2").
        event_id = f"{draw(st.integers(0, 12)):02d}.{i}"
        occurred_at = draw(ADVERSARIAL_MOMENTS)
        if choice <= 2:
            # Another event of an earlier event's entity and type (a correction of a review, a second
            # assignment, ...): its ids kept, some other fields redrawn, often at the very same instant.
            base = draw(st.sampled_from(events))
            event_type = base.type  # type: ignore[attr-defined]
            fresh = draw(_adversarial_data(event_type, contract))
            keep = {EVENT_CLASSES[event_type].KEY_FIELD, "review_id", "submission_id", "notification_id"}
            data = base.data.model_dump()  # type: ignore[attr-defined]
            data.update({k: v for k, v in fresh.items() if k not in keep and draw(st.booleans())})
            if "campus" in data:  # a (campus, floor) pair moves as one
                data["campus"], data["floor"] = draw(st.sampled_from(ADVERSARIAL_FLOORS))
            if draw(st.booleans()):
                occurred_at = base.occurred_at
        else:
            event_type = draw(st.sampled_from(_ADVERSARIAL_TYPES))
            data = draw(_adversarial_data(event_type, contract))
        events.append(
            EVENT_CLASSES[event_type].model_validate(
                {
                    "event_id": event_id,
                    "occurred_at": occurred_at,
                    "source": draw(st.none() | st.just("cohort-app")),
                    "data": data,
                }
            )
        )
    return events


def adversarial_events(
    contract: Contract = DEFAULT_CONTRACT, max_size: int = 60
) -> st.SearchStrategy[list[EventBase]]:
    """Short lists of valid events that collide: tiny id pools, few instants, re-deliveries.

    2 campuses and 3 (campus, floor) pairs, 3 mentors, 4 students with 3
    submission ids and 3 review ids each, 3 notification ids of 2 users, 2
    audit actors; a 3-day window where most events take one of 8 instants
    (two of them either side of midnight). Every event type is drawn, the
    roster, submission, review and notification ones more often. One
    event in eight is an earlier one again (the same object: same
    event_id, same content). Reviews name one of their student's submissions
    most of the time, a never-submitted id or another student's now and then;
    one event in four is another event of an earlier event's entity and type
    (its ids kept, other fields redrawn: corrected reviews, second
    assignments, transfers), at the very same instant half of the time.
    The list order is meant as publication order.
    """
    return _adversarial_events(contract, max_size)


def partition_of(event: EventBase, partitions: int, salt: int = 0) -> tuple[Topic, int]:
    """The (topic, partition) ``event``'s record lands in, for ``partitions`` partitions per topic."""
    return event.TOPIC, zlib.crc32(salt.to_bytes(4, "big") + record_key(event)) % partitions


@st.composite
def partitionings(draw: st.DrawFn, events: Sequence[EventBase]) -> list[list[EventBase]]:
    """``events`` as a consumer could receive them: interleaved by partition, cut in batches.

    Each topic gets 1 to 4 partitions (drawn); an event goes to the partition of
    its record key's hash (salted by a drawn number, so that the grouping
    varies), keeping the list's order within each partition, as Kafka does.
    The partitions are then interleaved in a drawn order and the result cut
    into consecutive non-empty batches at drawn boundaries. Shrinks towards
    one partition after the other, in one batch.
    """
    partitions = draw(st.integers(1, 4))
    salt = draw(st.integers(0, 2**16))
    queues: dict[tuple[Topic, int], list[EventBase]] = {}
    for event in events:
        queues.setdefault(partition_of(event, partitions, salt), []).append(event)
    pending = [list(reversed(queue)) for queue in queues.values()]
    order: list[EventBase] = []
    while pending:
        i = draw(st.integers(0, len(pending) - 1))
        order.append(pending[i].pop())
        if not pending[i]:
            pending.pop(i)
    batches: list[list[EventBase]] = []
    batch: list[EventBase] = []
    for event in order:
        batch.append(event)
        if draw(st.booleans()):
            batches.append(batch)
            batch = []
    if batch:
        batches.append(batch)
    return batches
