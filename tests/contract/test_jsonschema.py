"""The exported JSON Schemas are valid draft 2020-12 and agree with decode."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from cohortflow.contract import (
    DEFAULT_CONTRACT,
    EVENT_CLASSES,
    EVENT_TYPES,
    KEY_FIELD_OF_TYPE,
    Contract,
    EventBase,
    Reason,
    Rejection,
    decode,
    encode,
    export,
    json_schemas,
    record_key,
    topic_name,
)
from tests.strategies import events_of_type, mutated_records, valid_events

SCHEMAS = json_schemas(DEFAULT_CONTRACT)
VALIDATORS = {t: Draft202012Validator(s) for t, s in SCHEMAS.items()}
CUSTOM = Contract(topic_prefix="t9.", pillars=("math", "art"))


def errors(event_type: str, doc: Any, validators: dict[str, Draft202012Validator] = VALIDATORS) -> list[str]:
    return [e.message for e in validators[event_type].iter_errors(doc)]


def test_there_is_one_schema_per_type() -> None:
    assert list(SCHEMAS) == list(EVENT_TYPES)


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_every_schema_is_a_valid_draft_2020_12_schema(event_type: str) -> None:
    schema = SCHEMAS[event_type]
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)
    assert schema["properties"]["type"] == {"const": event_type}
    assert schema["properties"]["schema_version"]["const"] == 1
    assert set(schema["properties"]["data"]["required"]) == {
        name for name, info in EVENT_CLASSES[event_type].model_fields["data"].annotation.model_fields.items()
        if info.is_required()
    }


@pytest.mark.parametrize("event_type", EVENT_TYPES)
@settings(max_examples=40)
@given(data=st.data())
def test_every_schema_accepts_valid_events_of_its_type(event_type: str, data: st.DataObject) -> None:
    event = data.draw(events_of_type(event_type))
    assert errors(event_type, orjson.loads(encode(event))) == []


@pytest.mark.parametrize("event_type", EVENT_TYPES)
@settings(max_examples=10)
@given(data=st.data())
def test_a_schema_refuses_other_types(event_type: str, data: st.DataObject) -> None:
    doc = orjson.loads(encode(data.draw(events_of_type(event_type))))
    other = data.draw(st.sampled_from([t for t in EVENT_TYPES if t != event_type]))
    assert errors(other, doc) != []


@given(valid_events(types=["submission.submitted"]), st.text().filter(lambda p: p not in DEFAULT_CONTRACT.pillars))
def test_the_submission_schema_refuses_an_unknown_pillar(event: EventBase, pillar: str) -> None:
    doc = orjson.loads(encode(event))
    assert errors("submission.submitted", doc) == []
    doc["data"]["pillar"] = pillar
    assert errors("submission.submitted", doc) != []


@settings(max_examples=20)
@given(events_of_type("submission.submitted", CUSTOM))
def test_the_pillars_come_from_the_contract(event: EventBase) -> None:
    validators = {t: Draft202012Validator(s) for t, s in json_schemas(CUSTOM).items()}
    doc = orjson.loads(encode(event))
    assert errors("submission.submitted", doc, validators) == []
    doc["data"]["pillar"] = "clt"
    assert errors("submission.submitted", doc, validators) != []
    assert json_schemas(CUSTOM)["submission.submitted"]["x-topic"] == "t9.submissions"


@pytest.mark.parametrize(
    ("event_type", "path", "value"),
    [
        ("submission.submitted", "data.attempt", 0),
        ("submission.submitted", "data.attempt", "1"),
        ("submission.submitted", "data.student_id", ""),
        ("review.completed", "data.decision", "maybe"),
        ("login.succeeded", "data.role", "root"),
        ("student.assigned", "data.mentor_id", ""),
        ("audit.recorded", "data.metadata", []),
        ("student.enrolled", "schema_version", 2),
        ("student.enrolled", "event_id", "e" * 129),
        ("student.enrolled", "occurred_at", "2026-11-23T10:15:30"),
        ("student.enrolled", "occurred_at", "2026-11-23T10:15:60Z"),
        ("student.enrolled", "source", 5),
        ("student.enrolled", "data", None),
    ],
)
@settings(max_examples=10)
@given(data=st.data())
def test_schema_and_decode_refuse_the_same_broken_fields(
    event_type: str, path: str, value: Any, data: st.DataObject
) -> None:
    event = data.draw(events_of_type(event_type))
    doc = orjson.loads(encode(event))
    *parents, last = path.split(".")
    target = doc
    for part in parents:
        target = target[part]
    target[last] = value
    assert errors(event_type, doc) != []
    result = decode(topic_name("cohort.", event.TOPIC), record_key(event), orjson.dumps(doc))
    assert isinstance(result, Rejection)


@pytest.mark.parametrize("event_type", EVENT_TYPES)
@settings(max_examples=10)
@given(data=st.data())
def test_schema_and_decode_both_require_every_data_field(event_type: str, data: st.DataObject) -> None:
    event = data.draw(events_of_type(event_type))
    for name in SCHEMAS[event_type]["properties"]["data"]["required"]:
        doc = orjson.loads(encode(event))
        del doc["data"][name]
        assert errors(event_type, doc) != [], name
        result = decode(topic_name("cohort.", event.TOPIC), record_key(event), orjson.dumps(doc))
        assert isinstance(result, Rejection) and result.reason is Reason.MISSING_FIELD, name


@pytest.mark.parametrize(
    ("event_type", "changes"),
    [
        ("student.enrolled", {"source": None}),
        ("student.enrolled", {"trace": {"id": 1}, "data.note": "x"}),
        ("student.assigned", {"data.mentor_id": None}),
        ("audit.recorded", {"data.metadata": None}),
        ("audit.recorded", {"data.metadata": {"ip": "10.0.0.7"}}),
        ("student.enrolled", {"occurred_at": "2026-11-23 12:15:30.1234567+02:00"}),
        ("student.enrolled", {"occurred_at": "2026-11-23t10:15:30z"}),
    ],
)
def test_schema_accepts_the_edge_cases_decode_accepts(event_type: str, changes: dict[str, Any]) -> None:
    doc = {
        "event_id": "evt-1",
        "type": event_type,
        "schema_version": 1,
        "occurred_at": "2026-11-23T10:15:30Z",
        "data": {
            "student.enrolled": {"student_id": "stu-1", "campus": "north", "floor": "F1"},
            "student.assigned": {"student_id": "stu-1", "mentor_id": "men-1"},
            "audit.recorded": {"actor_id": "adm-1", "action": "a", "entity_type": "t", "entity_id": "x"},
        }[event_type],
    }
    for path, value in changes.items():
        *parents, last = path.split(".")
        (doc[parents[0]] if parents else doc)[last] = value
    key = next(iter(doc["data"].values())).encode()
    assert isinstance(decode(topic_name("cohort.", EVENT_CLASSES[event_type].TOPIC), key, orjson.dumps(doc)), EventBase)
    assert errors(event_type, doc) == []


@settings(max_examples=300)
@given(mutated_records())
def test_whatever_decode_accepts_its_schema_accepts(rec: tuple[str, bytes | None, bytes]) -> None:
    result = decode(*rec)
    if isinstance(result, EventBase):
        assert errors(result.type, orjson.loads(rec[2])) == []  # type: ignore[attr-defined]


def test_export_writes_one_file_per_type_and_an_index(tmp_path: Path) -> None:
    target = tmp_path / "out" / "schemas"
    written = export(target, CUSTOM)
    assert sorted(p.name for p in written) == sorted([*(f"{t}.schema.json" for t in EVENT_TYPES), "index.json"])
    assert all(p.parent == target for p in written)
    schemas = json_schemas(CUSTOM)
    for event_type in EVENT_TYPES:
        assert json.loads((target / f"{event_type}.schema.json").read_text()) == schemas[event_type]
    index = json.loads((target / "index.json").read_text())
    assert index["pillars"] == ["math", "art"]
    assert index["topics"][-1] == "t9.deadletter" and len(index["topics"]) == 7
    assert [(e["type"], e["topic"], e["key_field"]) for e in index["types"]] == [
        (t, topic_name("t9.", EVENT_CLASSES[t].TOPIC), KEY_FIELD_OF_TYPE[t]) for t in EVENT_TYPES
    ]
    assert {e["topic"] for e in index["types"]} == {
        "t9.roster", "t9.submissions", "t9.reviews", "t9.logins", "t9.audit", "t9.notifications"
    }
    assert export(target, CUSTOM) == written  # idempotent: same files, overwritten
