"""Hypothesis strategies for the events of the contract, for any test that needs them.

``valid_events(contract)`` draws every event type with realistic ids (and,
now and then, arbitrary Unicode ones), microsecond UTC instants and pillars
from the contract. ``valid_records(contract)`` draws the Kafka records that
carry them: ``(full topic name, key, value)``, and ``mutated_records()`` the same
records with a few fields deleted or set to likely-wrong values.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any

import orjson
from hypothesis import strategies as st

from schemas import (
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
    return st.one_of(st.sampled_from(["north", "south", "F1", "F2", "3", "review", "login"]), st.text(TEXT, max_size=20))


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
    st.sampled_from(["", "0", "2026-11-23T10:15:30", "approved", "clt", "stu-1", 0, 1, -1, 2, 1.0, True, None, [], {}]),
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
