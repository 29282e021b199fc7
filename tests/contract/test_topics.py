"""Topics, the type -> topic and type -> key maps, and the models' constants agree with the contract."""

from __future__ import annotations

import pytest

from cohortflow.contract import (
    EVENT_CLASSES,
    EVENT_TOPICS,
    EVENT_TYPES,
    KEY_FIELD_OF_TYPE,
    TOPIC_OF_TYPE,
    Topic,
    topic_from_name,
    topic_name,
)

# Section 2 of the contract, typed out again on purpose: a change to the code must be a change here too.
CONTRACT_TABLE = [
    ("roster", "student_id", "student.enrolled"),
    ("roster", "student_id", "student.transferred"),
    ("roster", "student_id", "student.withdrawn"),
    ("roster", "student_id", "student.assigned"),
    ("roster", "mentor_id", "mentor.joined"),
    ("roster", "mentor_id", "mentor.transferred"),
    ("roster", "mentor_id", "mentor.left"),
    ("submissions", "student_id", "submission.submitted"),
    ("reviews", "student_id", "review.completed"),
    ("logins", "user_id", "login.succeeded"),
    ("logins", "user_id", "login.failed"),
    ("audit", "actor_id", "audit.recorded"),
    ("notifications", "user_id", "notification.created"),
    ("notifications", "user_id", "notification.read"),
    ("notifications", "user_id", "notification.read_all"),
]


def test_the_topics_are_the_contracts() -> None:
    assert [t.value for t in Topic] == [
        "roster", "submissions", "reviews", "logins", "audit", "notifications", "deadletter"
    ]
    assert Topic.DEADLETTER not in EVENT_TOPICS and len(EVENT_TOPICS) == 6


def test_the_routing_is_the_contract_table() -> None:
    assert list(EVENT_TYPES) == [row[2] for row in CONTRACT_TABLE]
    assert {t: (TOPIC_OF_TYPE[t].value, KEY_FIELD_OF_TYPE[t]) for t in EVENT_TYPES} == {
        t: (topic, key) for topic, key, t in CONTRACT_TABLE
    }


@pytest.mark.parametrize(("topic", "key_field", "event_type"), CONTRACT_TABLE)
def test_every_model_carries_its_topic_key_field_and_type(topic: str, key_field: str, event_type: str) -> None:
    cls = EVENT_CLASSES[event_type]
    assert cls.TOPIC is Topic(topic) and cls.KEY_FIELD == key_field
    assert cls.model_fields["type"].default == event_type
    assert key_field in cls.model_fields["data"].annotation.model_fields  # type: ignore[union-attr]


@pytest.mark.parametrize("topic", list(Topic))
@pytest.mark.parametrize("prefix", ["cohort.", "", "t1a2b3."])
def test_topic_name_and_back(prefix: str, topic: Topic) -> None:
    name = topic_name(prefix, topic)
    assert name == prefix + topic.value
    assert topic_from_name(prefix, name) is topic


@pytest.mark.parametrize(
    ("prefix", "name"),
    [
        ("cohort.", "roster"),
        ("cohort.", "cohort.grades"),
        ("cohort.", "other.roster"),
        ("cohort.", "cohort.roster.x"),
        ("cohort.", "cohort.ROSTER"),
        ("t1.", "cohort.roster"),
        ("cohort.", ""),
    ],
)
def test_other_names_are_no_topic(prefix: str, name: str) -> None:
    assert topic_from_name(prefix, name) is None
