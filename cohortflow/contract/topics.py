"""The contract's topics and which event type travels on which, keyed by what.

Section 2 of the contract, as data: every other module (the models, the codec,
the JSON Schemas, the topic admin) reads the routing from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Final


class Topic(StrEnum):
    """A contract topic, by its name without the configurable prefix."""

    ROSTER = "roster"
    SUBMISSIONS = "submissions"
    REVIEWS = "reviews"
    LOGINS = "logins"
    AUDIT = "audit"
    NOTIFICATIONS = "notifications"
    DEADLETTER = "deadletter"


# type -> (topic, name of the data field whose value is the record key)
_ROUTES: Final = {
    "student.enrolled": (Topic.ROSTER, "student_id"),
    "student.transferred": (Topic.ROSTER, "student_id"),
    "student.withdrawn": (Topic.ROSTER, "student_id"),
    "student.assigned": (Topic.ROSTER, "student_id"),
    "mentor.joined": (Topic.ROSTER, "mentor_id"),
    "mentor.transferred": (Topic.ROSTER, "mentor_id"),
    "mentor.left": (Topic.ROSTER, "mentor_id"),
    "submission.submitted": (Topic.SUBMISSIONS, "student_id"),
    "review.completed": (Topic.REVIEWS, "student_id"),
    "login.succeeded": (Topic.LOGINS, "user_id"),
    "login.failed": (Topic.LOGINS, "user_id"),
    "audit.recorded": (Topic.AUDIT, "actor_id"),
    "notification.created": (Topic.NOTIFICATIONS, "user_id"),
    "notification.read": (Topic.NOTIFICATIONS, "user_id"),
    "notification.read_all": (Topic.NOTIFICATIONS, "user_id"),
}

EVENT_TYPES: Final[tuple[str, ...]] = tuple(_ROUTES)
"""Every event type of schema_version 1, in the contract's order."""

TOPIC_OF_TYPE: Final[Mapping[str, Topic]] = MappingProxyType({t: r[0] for t, r in _ROUTES.items()})
"""Event type -> the only topic it may be published on."""

KEY_FIELD_OF_TYPE: Final[Mapping[str, str]] = MappingProxyType({t: r[1] for t, r in _ROUTES.items()})
"""Event type -> the data field whose value must equal the record key."""

EVENT_TOPICS: Final[tuple[Topic, ...]] = tuple(t for t in Topic if t is not Topic.DEADLETTER)
"""The topics that carry events (every topic but the deadletter)."""


def topic_name(prefix: str, topic: Topic) -> str:
    """The full Kafka topic name of ``topic`` under ``prefix`` (``"cohort."`` + ``"roster"``)."""
    return prefix + topic.value


def topic_from_name(prefix: str, name: str) -> Topic | None:
    """The contract topic whose full name under ``prefix`` is ``name``; None for any other name."""
    if not name.startswith(prefix):
        return None
    try:
        return Topic(name[len(prefix) :])
    except ValueError:
        return None
