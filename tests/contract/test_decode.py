"""decode: one refusal reason per contract rule, the rule order, and the edge cases it accepts.

Every case starts from a valid record of its type and breaks one thing, so a
case fails if the rule it names is removed (the record would be accepted, or
refused for a later reason).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from cohortflow.contract import (
    DEFAULT_CONTRACT,
    EVENT_TYPES,
    AuditRecorded,
    Contract,
    Reason,
    Rejection,
    SchemaError,
    StudentAssigned,
    SubmissionSubmitted,
    decode,
    topic_name,
)
from cohortflow.contract.topics import KEY_FIELD_OF_TYPE, TOPIC_OF_TYPE

AT = "2026-11-23T10:15:30.123456Z"

DATA: dict[str, dict[str, Any]] = {
    "student.enrolled": {"student_id": "stu-1", "campus": "north", "floor": "F2"},
    "student.transferred": {"student_id": "stu-1", "campus": "south", "floor": "F1"},
    "student.withdrawn": {"student_id": "stu-1"},
    "student.assigned": {"student_id": "stu-1", "mentor_id": "men-1"},
    "mentor.joined": {"mentor_id": "men-1", "campus": "north", "floor": "F2"},
    "mentor.transferred": {"mentor_id": "men-1", "campus": "south", "floor": "F1"},
    "mentor.left": {"mentor_id": "men-1"},
    "submission.submitted": {"submission_id": "sub-1", "student_id": "stu-1", "pillar": "clt", "attempt": 1},
    "review.completed": {
        "review_id": "rev-1",
        "submission_id": "sub-1",
        "student_id": "stu-1",
        "mentor_id": "men-1",
        "attempt": 1,
        "decision": "approved",
    },
    "login.succeeded": {"user_id": "stu-1", "role": "student"},
    "login.failed": {"user_id": "stu-1", "reason": "bad_password"},
    "audit.recorded": {"actor_id": "adm-1", "action": "update", "entity_type": "student", "entity_id": "stu-1"},
    "notification.created": {"notification_id": "ntf-1", "user_id": "stu-1", "kind": "review"},
    "notification.read": {"notification_id": "ntf-1", "user_id": "stu-1"},
    "notification.read_all": {"user_id": "stu-1"},
}

DELETE = object()
KEY_OF_DATA = object()


def document(event_type: str = "submission.submitted", changes: dict[str, Any] | None = None) -> dict[str, Any]:
    """A valid record value of ``event_type`` as a dict, with ``changes`` (dotted path -> value or DELETE)."""
    doc: dict[str, Any] = {
        "event_id": "evt-1",
        "type": event_type,
        "schema_version": 1,
        "occurred_at": AT,
        "source": "cohort-app",
        "data": dict(DATA[event_type]),
    }
    for path, value in (changes or {}).items():
        *parents, last = path.split(".")
        target = doc
        for part in parents:
            target = target[part]
        if value is DELETE:
            del target[last]
        else:
            target[last] = value
    return doc


def record(
    event_type: str = "submission.submitted",
    changes: dict[str, Any] | None = None,
    *,
    topic: str | None = None,
    key: Any = KEY_OF_DATA,
    value: bytes | None | object = KEY_OF_DATA,
) -> tuple[str, bytes | None, bytes | None]:
    """``(topic, key, value)`` of a valid record of ``event_type`` with one thing changed."""
    full_topic = topic if topic is not None else topic_name("cohort.", TOPIC_OF_TYPE[event_type])
    if key is KEY_OF_DATA:
        key = DATA[event_type][KEY_FIELD_OF_TYPE[event_type]].encode()
    if value is KEY_OF_DATA:
        value = orjson.dumps(document(event_type, changes))
    return full_topic, key, value  # type: ignore[return-value]


def case(reason: Reason, field: str | None, *rec: Any, contract: Contract = DEFAULT_CONTRACT, id: str) -> Any:
    topic, key, value = rec[0] if rec else record()
    return pytest.param(topic, key, value, contract, reason, field, id=f"{reason}-{id}")


VALID = orjson.dumps(document())
TINY = Contract(max_record_bytes=len(VALID) - 1)
MIB = 1_048_576
HUGE_ATTEMPT = VALID.replace(b'"attempt":1', b'"attempt":1' + b"0" * 30)  # orjson reads it as a float


def padded(size: int) -> bytes:
    """A valid submission record of exactly ``size`` bytes (an ignored extra field takes the slack)."""
    base = len(orjson.dumps(document(changes={"pad": ""})))
    return orjson.dumps(document(changes={"pad": "x" * (size - base)}))


R = Reason
CASES = [
    # unknown_topic
    case(R.UNKNOWN_TOPIC, None, record(topic="cohort.grades"), id="not-a-contract-topic"),
    case(R.UNKNOWN_TOPIC, None, record(topic="cohort.deadletter"), id="deadletter"),
    case(R.UNKNOWN_TOPIC, None, record(topic="submissions"), id="no-prefix"),
    case(R.UNKNOWN_TOPIC, None, record(topic="other.submissions"), id="other-prefix"),
    case(R.UNKNOWN_TOPIC, None, record(), contract=Contract(topic_prefix="t1."), id="prefix-of-contract"),
    # oversize
    case(R.OVERSIZE, None, record(), contract=TINY, id="one-byte-over-small-limit"),
    case(R.OVERSIZE, None, record(value=padded(MIB + 1)), id="one-byte-over-1MiB"),
    # bad_json
    case(R.BAD_JSON, None, record(value=None), id="tombstone"),
    case(R.BAD_JSON, None, record(value=b""), id="empty"),
    case(R.BAD_JSON, None, record(value=b"  \n"), id="whitespace"),
    case(R.BAD_JSON, None, record(value=b"null"), id="json-null"),
    case(R.BAD_JSON, None, record(value=VALID[:-1]), id="truncated"),
    case(R.BAD_JSON, None, record(value=VALID + VALID), id="two-documents"),
    case(R.BAD_JSON, None, record(value=VALID.replace(b"cohort-app", b"cohort-\xff")), id="not-utf8"),
    case(R.BAD_JSON, None, record(value=b"\xef\xbb\xbf" + VALID), id="utf8-bom"),
    case(R.BAD_JSON, None, record(value=VALID.replace(b'"attempt":1', b'"attempt":NaN')), id="nan"),
    # not_an_object
    case(R.NOT_AN_OBJECT, None, record(value=b"[" + VALID + b"]"), id="array"),
    case(R.NOT_AN_OBJECT, None, record(value=b'"evt-1"'), id="string"),
    case(R.NOT_AN_OBJECT, None, record(value=b"42"), id="number"),
    case(R.NOT_AN_OBJECT, None, record(value=b"true"), id="boolean"),
    # bad_event_id
    case(R.BAD_EVENT_ID, "event_id", record(changes={"event_id": DELETE}), id="missing"),
    case(R.BAD_EVENT_ID, "event_id", record(changes={"event_id": ""}), id="empty"),
    case(R.BAD_EVENT_ID, "event_id", record(changes={"event_id": "e" * 129}), id="129-chars"),
    case(R.BAD_EVENT_ID, "event_id", record(changes={"event_id": 42}), id="number"),
    case(R.BAD_EVENT_ID, "event_id", record(changes={"event_id": None}), id="null"),
    # unknown_type
    case(R.UNKNOWN_TYPE, "type", record(changes={"type": "student.graduated"}), id="unknown"),
    case(R.UNKNOWN_TYPE, "type", record(changes={"type": "Submission.Submitted"}), id="case"),
    case(R.UNKNOWN_TYPE, "type", record(changes={"type": "submission.submitted "}), id="trailing-space"),
    case(R.UNKNOWN_TYPE, "type", record(changes={"type": ""}), id="empty"),
    # type_not_allowed_on_topic
    case(R.TYPE_NOT_ALLOWED_ON_TOPIC, "type", record(topic="cohort.roster"), id="submission-on-roster"),
    case(R.TYPE_NOT_ALLOWED_ON_TOPIC, "type", record("student.enrolled", topic="cohort.submissions"), id="roster"),
    case(R.TYPE_NOT_ALLOWED_ON_TOPIC, "type", record("login.failed", topic="cohort.audit"), id="login-on-audit"),
    # unsupported_schema_version
    case(R.UNSUPPORTED_SCHEMA_VERSION, "schema_version", record(changes={"schema_version": 2}), id="2"),
    case(R.UNSUPPORTED_SCHEMA_VERSION, "schema_version", record(changes={"schema_version": 0}), id="0"),
    case(R.UNSUPPORTED_SCHEMA_VERSION, "schema_version", record(changes={"schema_version": -1}), id="-1"),
    # bad_occurred_at
    *[
        case(R.BAD_OCCURRED_AT, "occurred_at", record(changes={"occurred_at": at}), id=str(at))
        for at in [
            "2026-11-23T10:15:30",  # no offset
            "2026-11-23T10:15:30.123",  # no offset
            "20261123T101530Z",  # basic format
            "2026-11-23T10:15Z",  # minutes only
            "2026-11-23T10:15:60Z",  # leap second
            "2026-11-23T24:00:00Z",
            "2026-02-30T10:15:30Z",  # no such day
            "2026-13-01T10:15:30Z",
            "2026-11-23T10:15:30+0200",  # offset without colon
            "2026-11-23T10:15:30+02",
            "2026-11-23T10:15:30+24:00",
            "2026-11-23T10:15:30.Z",
            "2026-11-23T10:15:30Z\n",
            " 2026-11-23T10:15:30Z",
            "2026-11-23",
            "2026-W47-1T10:15:30Z",  # week date
            "２０２６-11-23T10:15:30Z",  # full-width digits
            "0001-01-01T00:30:00+01:00",  # before year 1 in UTC
            "9999-12-31T23:30:00-01:00",  # after year 9999 in UTC
            "",
            1763892930,
            None,
            {"at": AT},
            DELETE,
        ]
    ],
    # missing_field
    case(R.MISSING_FIELD, "type", record(changes={"type": DELETE}), id="type"),
    case(R.MISSING_FIELD, "schema_version", record(changes={"schema_version": DELETE}), id="schema_version"),
    case(R.MISSING_FIELD, "data", record(changes={"data": DELETE}), id="data"),
    case(R.MISSING_FIELD, "data.pillar", record(changes={"data.pillar": DELETE}), id="pillar"),
    case(R.MISSING_FIELD, "data.attempt", record(changes={"data.attempt": DELETE}), id="attempt"),
    case(R.MISSING_FIELD, "data.mentor_id", record("student.assigned", {"data.mentor_id": DELETE}), id="mentor"),
    case(R.MISSING_FIELD, "data.floor", record("mentor.joined", {"data.floor": DELETE}), id="floor"),
    case(R.MISSING_FIELD, "data.decision", record("review.completed", {"data.decision": DELETE}), id="decision"),
    case(R.MISSING_FIELD, "data.role", record("login.succeeded", {"data.role": DELETE}), id="role"),
    case(R.MISSING_FIELD, "data.kind", record("notification.created", {"data.kind": DELETE}), id="kind"),
    case(R.MISSING_FIELD, "data.user_id", record("notification.read_all", {"data": {}}, key=b""), id="key-field"),
    # invalid_field
    case(R.INVALID_FIELD, "type", record(changes={"type": 7}), id="type-number"),
    case(R.INVALID_FIELD, "schema_version", record(changes={"schema_version": "1"}), id="version-string"),
    case(R.INVALID_FIELD, "schema_version", record(changes={"schema_version": 1.0}), id="version-float"),
    case(R.INVALID_FIELD, "schema_version", record(changes={"schema_version": True}), id="version-bool"),
    case(R.INVALID_FIELD, "schema_version", record(changes={"schema_version": None}), id="version-null"),
    case(R.INVALID_FIELD, "source", record(changes={"source": 5}), id="source-number"),
    case(R.INVALID_FIELD, "data", record(changes={"data": None}), id="data-null"),
    case(R.INVALID_FIELD, "data", record(changes={"data": [DATA["submission.submitted"]]}), id="data-array"),
    case(R.INVALID_FIELD, "data.student_id", record(changes={"data.student_id": 1}), id="id-number"),
    case(R.INVALID_FIELD, "data.student_id", record(changes={"data.student_id": ""}, key=b""), id="id-empty"),
    case(R.INVALID_FIELD, "data.submission_id", record(changes={"data.submission_id": ""}), id="other-id-empty"),
    case(R.INVALID_FIELD, "data.submission_id", record(changes={"data.submission_id": None}), id="id-null"),
    case(R.INVALID_FIELD, "data.attempt", record(changes={"data.attempt": "2"}), id="attempt-string"),
    case(R.INVALID_FIELD, "data.attempt", record(changes={"data.attempt": 2.0}), id="attempt-float"),
    case(R.INVALID_FIELD, "data.attempt", record(changes={"data.attempt": True}), id="attempt-bool"),
    case(R.INVALID_FIELD, "data.attempt", record(value=HUGE_ATTEMPT), id="attempt-beyond-64-bits"),
    case(R.INVALID_FIELD, "data.pillar", record(changes={"data.pillar": 3}), id="pillar-number"),
    case(R.INVALID_FIELD, "data.campus", record("student.enrolled", {"data.campus": None}), id="campus-null"),
    case(R.INVALID_FIELD, "data.floor", record("student.enrolled", {"data.floor": 3}), id="floor-number"),
    case(R.INVALID_FIELD, "data.mentor_id", record("student.assigned", {"data.mentor_id": ""}), id="mentor-empty"),
    case(R.INVALID_FIELD, "data.mentor_id", record("student.assigned", {"data.mentor_id": 9}), id="mentor-number"),
    case(R.INVALID_FIELD, "data.decision", record("review.completed", {"data.decision": 1}), id="decision-number"),
    case(R.INVALID_FIELD, "data.role", record("login.succeeded", {"data.role": None}), id="role-null"),
    case(R.INVALID_FIELD, "data.metadata", record("audit.recorded", {"data.metadata": []}), id="metadata-array"),
    case(R.INVALID_FIELD, "data.metadata", record("audit.recorded", {"data.metadata": "x"}), id="metadata-str"),
    case(R.INVALID_FIELD, "data.entity_id", record("audit.recorded", {"data.entity_id": ""}), id="entity-empty"),
    # bad_attempt
    case(R.BAD_ATTEMPT, "data.attempt", record(changes={"data.attempt": 0}), id="0"),
    case(R.BAD_ATTEMPT, "data.attempt", record(changes={"data.attempt": -3}), id="negative"),
    case(R.BAD_ATTEMPT, "data.attempt", record("review.completed", {"data.attempt": 0}), id="review"),
    # bad_decision
    case(R.BAD_DECISION, "data.decision", record("review.completed", {"data.decision": "approve"}), id="approve"),
    case(R.BAD_DECISION, "data.decision", record("review.completed", {"data.decision": "APPROVED"}), id="case"),
    case(R.BAD_DECISION, "data.decision", record("review.completed", {"data.decision": ""}), id="empty"),
    # bad_role
    case(R.BAD_ROLE, "data.role", record("login.succeeded", {"data.role": "teacher"}), id="teacher"),
    case(R.BAD_ROLE, "data.role", record("login.succeeded", {"data.role": "Admin"}), id="case"),
    # unknown_pillar
    case(R.UNKNOWN_PILLAR, "data.pillar", record(changes={"data.pillar": "xyz"}), id="unknown"),
    case(R.UNKNOWN_PILLAR, "data.pillar", record(changes={"data.pillar": "CLT"}), id="case"),
    case(R.UNKNOWN_PILLAR, "data.pillar", record(changes={"data.pillar": ""}), id="empty"),
    case(R.UNKNOWN_PILLAR, "data.pillar", record(), contract=Contract(pillars=("math", "art")), id="configured"),
    # key_mismatch
    case(R.KEY_MISMATCH, "key", record(key=None), id="no-key"),
    case(R.KEY_MISMATCH, "key", record(key=b""), id="empty-key"),
    case(R.KEY_MISMATCH, "key", record(key=b"stu-2"), id="other-id"),
    case(R.KEY_MISMATCH, "key", record(key=b"stu-1 "), id="trailing-space"),
    case(R.KEY_MISMATCH, "key", record(key=b"\xffstu-1"), id="not-utf8"),
    case(R.KEY_MISMATCH, "key", record(key=b"sub-1"), id="submission-id-not-student-id"),
    case(R.KEY_MISMATCH, "key", record("review.completed", key=b"men-1"), id="review-keyed-by-mentor"),
    case(R.KEY_MISMATCH, "key", record("student.assigned", {"data.mentor_id": None}, key=b"men-1"), id="assign"),
]


@pytest.mark.parametrize(("topic", "key", "value", "contract", "reason", "field"), CASES)
def test_a_record_breaking_one_rule_is_refused_for_that_rule(
    topic: str, key: bytes | None, value: bytes | None, contract: Contract, reason: Reason, field: str | None
) -> None:
    result = decode(topic, key, value, contract)
    assert isinstance(result, Rejection), result
    assert (result.reason, result.field) == (reason, field), result.detail
    assert result.detail
    if field is not None:
        assert result.detail.startswith(f"{field}:")


def test_every_reason_has_a_case() -> None:
    assert {p.values[4] for p in CASES} == set(Reason)


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_the_base_record_of_every_type_is_valid(event_type: str) -> None:
    """The cases above break exactly one rule of a record that is valid as it stands."""
    event = decode(*record(event_type))
    assert not isinstance(event, Rejection), event
    assert event.type == event_type
    assert event.key == DATA[event_type][KEY_FIELD_OF_TYPE[event_type]]


def test_detail_names_the_field_what_was_expected_and_what_came() -> None:
    result = decode(*record(changes={"data.attempt": 0}))
    assert result == Rejection(Reason.BAD_ATTEMPT, "data.attempt: expected an integer >= 1, got 0", "data.attempt")


def test_detail_of_a_huge_value_is_cut_short() -> None:
    result = decode(*record(changes={"data.pillar": "p" * 10_000}))
    assert isinstance(result, Rejection) and result.reason is Reason.UNKNOWN_PILLAR
    assert len(result.detail) < 200


# --- the order of the rules --------------------------------------------------------------------


ORDER = [
    (R.UNKNOWN_TOPIC, record(topic="cohort.deadletter", value=b"\xff")),
    (R.OVERSIZE, record(value=b"{" * 100)),
    (R.BAD_JSON, record(value=b"[" * 5)),
    (R.BAD_EVENT_ID, record(changes={"event_id": "", "type": "nope"})),
    (R.UNKNOWN_TYPE, record(changes={"type": "nope", "schema_version": 2}, topic="cohort.roster")),
    (R.MISSING_FIELD, record(changes={"type": DELETE, "schema_version": 2})),
    (R.TYPE_NOT_ALLOWED_ON_TOPIC, record(changes={"schema_version": 2}, topic="cohort.reviews")),
    (R.UNSUPPORTED_SCHEMA_VERSION, record(changes={"schema_version": 2, "occurred_at": "yesterday"})),
    (R.INVALID_FIELD, record(changes={"schema_version": "1", "occurred_at": "yesterday"})),
    (R.BAD_OCCURRED_AT, record(changes={"occurred_at": "yesterday", "data.attempt": 0})),
    (R.MISSING_FIELD, record(changes={"data.submission_id": DELETE, "data.attempt": 0})),
    (R.BAD_ATTEMPT, record(changes={"data.attempt": 0, "data.pillar": "xyz"}, key=b"other")),
    (R.BAD_ATTEMPT, record("review.completed", {"data.attempt": 0, "data.decision": "maybe"})),
    (R.INVALID_FIELD, record(changes={"data.pillar": 3, "data.attempt": "1"}, key=b"other")),
    (R.UNKNOWN_PILLAR, record(changes={"data.pillar": "xyz"}, key=b"other")),
]


@pytest.mark.parametrize(("reason", "rec"), ORDER, ids=[f"{i}-{r}" for i, (r, _) in enumerate(ORDER)])
def test_a_record_breaking_several_rules_gets_the_first_in_contract_order(reason: Reason, rec: Any) -> None:
    contract = Contract(max_record_bytes=50)
    result = decode(*rec, contract if reason is R.OVERSIZE else DEFAULT_CONTRACT)
    assert isinstance(result, Rejection) and result.reason is reason, result


# --- accepted edge cases -------------------------------------------------------------------


def occurred(at: str) -> datetime:
    event = decode(*record(changes={"occurred_at": at}))
    assert not isinstance(event, Rejection), event
    assert event.occurred_at.tzinfo is UTC
    return event.occurred_at


@pytest.mark.parametrize(
    ("text", "instant"),
    [
        ("2026-11-23T12:15:30+02:00", datetime(2026, 11, 23, 10, 15, 30, tzinfo=UTC)),
        ("2026-11-23T04:45:30-05:30", datetime(2026, 11, 23, 10, 15, 30, tzinfo=UTC)),
        ("2026-11-24T00:15:30+14:00", datetime(2026, 11, 23, 10, 15, 30, tzinfo=UTC)),
        ("2026-11-23T10:15:30-00:00", datetime(2026, 11, 23, 10, 15, 30, tzinfo=UTC)),
        ("2026-11-23t10:15:30z", datetime(2026, 11, 23, 10, 15, 30, tzinfo=UTC)),
        ("2026-11-23 10:15:30Z", datetime(2026, 11, 23, 10, 15, 30, tzinfo=UTC)),
        ("2026-11-23T10:15:30.1Z", datetime(2026, 11, 23, 10, 15, 30, 100_000, tzinfo=UTC)),
        ("2026-11-23T10:15:30.123Z", datetime(2026, 11, 23, 10, 15, 30, 123_000, tzinfo=UTC)),
        ("2026-11-23T10:15:30.1234569Z", datetime(2026, 11, 23, 10, 15, 30, 123_456, tzinfo=UTC)),  # truncated
        ("2026-11-23T10:15:30.999999999Z", datetime(2026, 11, 23, 10, 15, 30, 999_999, tzinfo=UTC)),
        ("2026-12-31T23:30:00-01:00", datetime(2027, 1, 1, 0, 30, tzinfo=UTC)),
        ("2028-02-29T00:00:00Z", datetime(2028, 2, 29, tzinfo=UTC)),
        ("0001-01-01T00:00:00Z", datetime(1, 1, 1, tzinfo=UTC)),
    ],
)
def test_occurred_at_is_normalised_to_utc(text: str, instant: datetime) -> None:
    assert occurred(text) == instant


def test_unknown_extra_fields_are_ignored() -> None:
    extra = {"trace_id": "t-1", "data.note": "hi", "data.nested": {"a": [1]}, "headers": None}
    event = decode(*record(changes=extra))
    assert isinstance(event, SubmissionSubmitted)
    assert event == decode(*record())
    assert not hasattr(event.data, "note")


def test_a_null_mentor_unassigns() -> None:
    event = decode(*record("student.assigned", {"data.mentor_id": None}))
    assert isinstance(event, StudentAssigned) and event.data.mentor_id is None


@pytest.mark.parametrize(
    ("changes", "metadata"),
    [
        ({}, None),
        ({"data.metadata": None}, None),
        ({"data.metadata": {}}, {}),
        ({"data.metadata": {"ip": "10.0.0.7", "n": [1, 2.5, None]}}, {"ip": "10.0.0.7", "n": [1, 2.5, None]}),
    ],
)
def test_audit_metadata_is_optional_and_null_means_absent(changes: dict[str, Any], metadata: Any) -> None:
    event = decode(*record("audit.recorded", changes))
    assert isinstance(event, AuditRecorded) and event.data.metadata == metadata


@pytest.mark.parametrize(
    ("changes", "source"), [({"source": DELETE}, None), ({"source": None}, None), ({}, "cohort-app")]
)
def test_source_is_optional(changes: dict[str, Any], source: str | None) -> None:
    event = decode(*record(changes=changes))
    assert isinstance(event, SubmissionSubmitted) and event.source == source


@pytest.mark.parametrize("event_id", ["e" * 128, "é" * 128, "1"])
def test_event_id_of_1_to_128_characters_is_accepted(event_id: str) -> None:
    event = decode(*record(changes={"event_id": event_id}))
    assert not isinstance(event, Rejection) and event.event_id == event_id


@pytest.mark.parametrize("limit", [len(VALID), MIB])
def test_a_record_of_exactly_the_limit_is_accepted(limit: int) -> None:
    value = VALID if limit == len(VALID) else padded(MIB)
    assert len(value) == limit
    assert isinstance(decode(*record(value=value), Contract(max_record_bytes=limit)), SubmissionSubmitted)


def test_configured_pillars_replace_the_default_ones() -> None:
    contract = Contract(pillars=("math", "art"))
    event = decode(*record(changes={"data.pillar": "art"}), contract)
    assert isinstance(event, SubmissionSubmitted) and event.data.pillar == "art"


def test_topic_prefix_is_configurable() -> None:
    contract = Contract(topic_prefix="t1.")
    assert isinstance(decode(*record(topic="t1.submissions"), contract), SubmissionSubmitted)


def test_ids_are_unicode_and_so_are_keys() -> None:
    changes = {"data.student_id": "étudiant-ü"}
    event = decode(*record(changes=changes, key="étudiant-ü".encode()))
    assert isinstance(event, SubmissionSubmitted) and event.key == "étudiant-ü"


def test_attempts_up_to_64_bits_are_accepted() -> None:
    event = decode(*record(changes={"data.attempt": 2**63 - 1}))
    assert isinstance(event, SubmissionSubmitted) and event.data.attempt == 2**63 - 1


def test_decoded_events_are_frozen() -> None:
    event = decode(*record())
    with pytest.raises(ValidationError, match="frozen"):
        event.event_id = "other"  # type: ignore[misc]


# --- the contract itself -------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [{"pillars": ()}, {"pillars": ("clt", "")}, {"pillars": ("clt", "clt")}, {"max_record_bytes": 0}],
)
def test_a_contract_no_record_could_satisfy_is_an_error(kwargs: dict[str, Any]) -> None:
    with pytest.raises(SchemaError):
        Contract(**kwargs)


def test_a_contract_from_a_list_of_pillars_is_usable() -> None:
    contract = Contract(pillars=["clt", "sri"])  # type: ignore[arg-type]
    assert contract.pillars == ("clt", "sri") and hash(contract) == hash(Contract(pillars=("clt", "sri")))
    assert isinstance(decode(*record(), contract), SubmissionSubmitted)


def test_models_accept_any_offset_and_keep_utc() -> None:
    at = datetime(2026, 11, 23, 12, 15, 30, tzinfo=UTC) + timedelta(0)
    event = SubmissionSubmitted(event_id="e", occurred_at=at.astimezone(), data=DATA["submission.submitted"])
    assert event.occurred_at.tzinfo is UTC and event.occurred_at == at


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"user_id": "u\x001", "role": "student"}, "data.user_id"),
        ({"user_id": "u1", "role": "student", "ignored": "x\x00"}, None),
    ],
)
def test_a_kept_string_holding_nul_is_refused_naming_the_field(data: dict, field: str | None) -> None:
    import orjson

    from cohortflow.contract import Reason, Rejection, decode

    value = orjson.dumps({"event_id": "e1", "type": "login.succeeded", "schema_version": 1,
                          "occurred_at": "2026-11-23T10:00:00Z", "data": data})
    result = decode("cohort.logins", data["user_id"].encode(), value)
    if field is None:  # an unknown extra field is dropped, so its NUL harms nothing
        assert not isinstance(result, Rejection)
    else:
        assert result == Rejection(Reason.INVALID_FIELD, result.detail, field)
        assert "U+0000" in result.detail
