"""encode/decode are inverse for every valid event, and decode never raises, whatever the bytes."""

from __future__ import annotations

import re
from datetime import datetime

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cohortflow.contract import (
    DEFAULT_CONTRACT,
    EVENT_TYPES,
    Contract,
    EventBase,
    Rejection,
    decode,
    encode,
    record_key,
    topic_name,
)
from tests.strategies import (
    KEYS,
    TOPICS,
    events_of_type,
    json_values,
    moments,
    mutated_records,
    valid_events,
    valid_records,
)

CUSTOM = Contract(topic_prefix="dev-7.", pillars=("math", "art", "ünï"), max_record_bytes=4096)


def roundtrip(event: EventBase, contract: Contract = DEFAULT_CONTRACT) -> EventBase | Rejection:
    return decode(topic_name(contract.topic_prefix, event.TOPIC), record_key(event), encode(event), contract)


@pytest.mark.parametrize("event_type", EVENT_TYPES)
@given(data=st.data())
def test_every_type_survives_encode_then_decode(event_type: str, data: st.DataObject) -> None:
    event = data.draw(events_of_type(event_type))
    assert roundtrip(event) == event


@given(valid_events(CUSTOM))
def test_roundtrip_under_a_configured_contract(event: EventBase) -> None:
    decoded = roundtrip(event, CUSTOM)
    # A record over CUSTOM's 4 KiB is refused, as it must be; everything else comes back intact.
    if len(encode(event)) > CUSTOM.max_record_bytes:
        assert isinstance(decoded, Rejection) and decoded.reason == "oversize"
    else:
        assert decoded == event


@given(events_of_type("review.completed", at=moments(datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59))))
def test_roundtrip_over_every_representable_year(event: EventBase) -> None:
    assert roundtrip(event) == event


@given(valid_events())
def test_encoding_is_compact_json_with_utc_microseconds(event: EventBase) -> None:
    doc = orjson.loads(encode(event))
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z", doc["occurred_at"])
    assert doc["type"] == event.type and doc["schema_version"] == 1  # type: ignore[attr-defined]
    assert record_key(event) == doc["data"][event.KEY_FIELD].encode()
    assert ("source" in doc) == (event.source is not None)


@given(events_of_type("audit.recorded"))
def test_absent_metadata_is_left_out_not_written_as_null(event: EventBase) -> None:
    data = orjson.loads(encode(event))["data"]
    assert ("metadata" in data) == (event.data.metadata is not None)  # type: ignore[attr-defined]


def test_a_null_mentor_is_written_not_left_out() -> None:
    event = decode(
        "cohort.roster",
        b"stu-1",
        b'{"event_id":"e","type":"student.assigned","schema_version":1,"occurred_at":"2026-01-01T00:00:00Z",'
        b'"data":{"student_id":"stu-1","mentor_id":null}}',
    )
    assert isinstance(event, EventBase)
    assert orjson.loads(encode(event))["data"] == {"student_id": "stu-1", "mentor_id": None}


# --- decode never raises -------------------------------------------------------------------



def assert_decodes_or_refuses(topic: str, key: bytes | None, value: bytes | None) -> None:
    result = decode(topic, key, value)
    assert isinstance(result, (EventBase, Rejection))
    if isinstance(result, Rejection):
        assert result.detail
    else:  # whatever got through is a valid event: it encodes and comes back the same
        assert roundtrip(result) == result


@given(TOPICS, KEYS, st.none() | st.binary(max_size=300))
def test_decode_never_raises_on_arbitrary_bytes(topic: str, key: bytes | None, value: bytes | None) -> None:
    assert_decodes_or_refuses(topic, key, value)


@given(TOPICS, KEYS, json_values().map(orjson.dumps))
def test_decode_never_raises_on_arbitrary_json(topic: str, key: bytes | None, value: bytes) -> None:
    assert_decodes_or_refuses(topic, key, value)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_records())
def test_decode_never_raises_on_mutated_records(rec: tuple[str, bytes | None, bytes]) -> None:
    assert_decodes_or_refuses(*rec)


@given(valid_records(), st.data())
def test_decode_never_raises_on_damaged_bytes(rec: tuple[str, bytes, bytes], data: st.DataObject) -> None:
    topic, key, value = rec
    position = data.draw(st.integers(0, len(value) - 1))
    damaged = data.draw(
        st.sampled_from(
            [
                value[:position],
                value[:position] + value[position + 1 :],
                value[:position] + bytes([value[position] ^ data.draw(st.integers(1, 255))]) + value[position + 1 :],
            ]
        )
    )
    assert_decodes_or_refuses(topic, key, damaged)
