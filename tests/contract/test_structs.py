"""The msgspec hot-path decoder answers what the pydantic codec answers: the same event or the exact Rejection.

Every record goes through both :func:`cohortflow.contract.codec.decode` (the contract)
and :func:`cohortflow.contract.structs.decode`; they must agree on the adversarial logs,
on every rule case of test_decode.py, on Hypothesis records valid and mutated,
and on JSON that the two parsers could read differently.
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cohortflow.contract import DEFAULT_CONTRACT, EVENT_CLASSES, Contract, Rejection, SchemaError, codec, structs
from cohortflow.contract.structs import STRUCTS, StructEvent, as_dict
from tests.contract.test_decode import CASES, ORDER, document, record
from tests.logs import adversarial_log, kafka_records
from tests.strategies import KEYS, TOPICS, mutated_records, valid_records

PROPERTY = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_agree(topic: str, key: bytes | None, value: bytes | None, contract: Contract = DEFAULT_CONTRACT) -> Any:
    expected = codec.decode(topic, key, value, contract)
    got = structs.decode(topic, key, value, contract)
    if isinstance(expected, Rejection):
        assert got == expected, (value, got)
    else:  # a Struct, or the model itself when the fast path passed the record on (an attempt >= 2**63)
        assert not isinstance(got, Rejection), (value, got)
        assert as_dict(got) == as_dict(expected), value
        assert got.key == expected.key and got.TOPIC is expected.TOPIC
        assert got.occurred_at.tzinfo is expected.occurred_at.tzinfo
    return got


def test_the_structs_have_the_models_fields_and_nothing_else() -> None:
    assert set(STRUCTS) == set(EVENT_CLASSES)
    for event_type, model in EVENT_CLASSES.items():
        struct = STRUCTS[event_type]
        assert set(struct.__struct_fields__) == set(model.model_fields) - {"type"}
        data_struct = msgspec.inspect.type_info(struct).fields[-1].type.cls
        assert set(data_struct.__struct_fields__) == set(model.model_fields["data"].annotation.model_fields)
        assert struct.type == event_type and struct.KEY_FIELD == model.KEY_FIELD


@pytest.mark.parametrize("seed", [3, 7])
def test_both_decoders_agree_on_every_record_of_an_adversarial_log(seed: int) -> None:
    records = kafka_records(adversarial_log(seed=seed, size=20_000))
    fast = 0
    for topic, key, value in records:
        fast += isinstance(assert_agree(topic, key, value), StructEvent)
    assert fast > 0.9 * len(records)  # the valid ones took the fast path


@pytest.mark.parametrize(("topic", "key", "value", "contract", "reason", "field"), CASES)
def test_both_decoders_refuse_each_rule_case_alike(topic, key, value, contract, reason, field) -> None:
    assert_agree(topic, key, value, contract)


@pytest.mark.parametrize(("reason", "rec"), ORDER, ids=[f"{i}-{r}" for i, (r, _) in enumerate(ORDER)])
def test_both_decoders_pick_the_first_rule_alike(reason, rec) -> None:
    assert_agree(*rec)


@PROPERTY
@given(valid_records())
def test_both_decoders_agree_on_valid_records(rec: tuple[str, bytes, bytes]) -> None:
    assert isinstance(assert_agree(*rec), StructEvent)


@PROPERTY
@given(mutated_records())
def test_both_decoders_agree_on_mutated_records(rec: tuple[str, bytes | None, bytes]) -> None:
    assert_agree(*rec)


@PROPERTY
@given(TOPICS, KEYS, st.binary(max_size=200) | st.none())
def test_both_decoders_agree_on_any_bytes(topic: str, key: bytes | None, value: bytes | None) -> None:
    assert_agree(topic, key, value)


def _raw(event_type: str, data_json: bytes, envelope: bytes = b"") -> tuple[str, bytes, bytes]:
    topic, key, _ = record(event_type)
    doc = orjson.dumps({k: v for k, v in document(event_type).items() if k != "data"})
    return topic, key, doc[:-1] + envelope + b',"data":' + data_json + b"}"


LOGIN = b'{"user_id":"stu-1","role":"student"}'
SUB = b'{"submission_id":"sub-1","student_id":"stu-1","pillar":"clt","attempt":%s}'
AUDIT = b'{"actor_id":"adm-1","action":"a","entity_type":"e","entity_id":"x","metadata":%s}'

PARSER_EDGES = [
    # integers: orjson reads past 64 bits (and below -2**63) as floats, which the models refuse
    _raw("submission.submitted", SUB % b"9223372036854775807"),
    _raw("submission.submitted", SUB % b"9223372036854775808"),
    _raw("submission.submitted", SUB % b"18446744073709551615"),
    _raw("submission.submitted", SUB % b"18446744073709551616"),
    _raw("submission.submitted", SUB % b"1" + b"0" * 30),
    _raw("submission.submitted", SUB % b"1.0"),
    _raw("submission.submitted", SUB % b"1e0"),
    _raw("submission.submitted", SUB % b"true"),
    _raw("submission.submitted", SUB % b"-0"),
    # metadata values: big integers, floats at the edges, nesting at orjson's depth limit, duplicate keys
    _raw("audit.recorded", AUDIT % b'{"n":123456789012345678901234567890,"m":-9223372036854775809}'),
    _raw("audit.recorded", AUDIT % b'{"a":1e400}'),
    _raw("audit.recorded", AUDIT % b'{"a":5e-324,"b":-0.0,"c":1.7976931348623157e308}'),
    _raw("audit.recorded", AUDIT % b'{"a":1,"a":2}'),
    _raw("audit.recorded", AUDIT % b"[]"),
    _raw("audit.recorded", AUDIT % b"5"),
    _raw("audit.recorded", AUDIT % b"null"),
    *(_raw("audit.recorded", AUDIT % (b'{"a":' + b"[" * n + b"]" * n + b"}")) for n in (1019, 1020, 1021, 1022, 1023)),
    # duplicate keys: the last one counts in both
    _raw("login.succeeded", b'{"user_id":"stu-2","role":"student","user_id":"stu-1"}'),
    _raw("login.succeeded", LOGIN, b',"type":"login.failed"'),
    _raw("login.succeeded", LOGIN, b',"event_id":""'),
    _raw("login.succeeded", LOGIN, b',"schema_version":2'),
    _raw("login.succeeded", LOGIN, b',"occurred_at":"2026-11-23T10:15:30.1234567Z"'),
    _raw("login.succeeded", LOGIN, b',"occurred_at":"2026-11-23T10:15:30+0100"'),
    _raw("login.succeeded", LOGIN, b',"occurred_at":"0001-01-01T00:00:00+01:00"'),
    _raw("login.succeeded", LOGIN, b',"source":5'),
    _raw("login.succeeded", LOGIN, b',"schema_version":true'),
    _raw("login.succeeded", LOGIN, b',"schema_version":1.0'),
    # strings: escapes, surrogates, control characters, NUL anywhere
    _raw("login.succeeded", b'{"user_id":"stu-1","role":"stu\\u0064ent"}'),
    _raw("login.succeeded", b'{"user_id":"stu-1","role":"student","x":"\\ud800"}'),
    _raw("login.succeeded", b'{"user_id":"stu-1","role":"student","x":"\\ud83d\\ude00"}'),
    _raw("login.succeeded", b'{"user_id":"stu-1","role":"student","x":"\\u0000"}'),
    _raw("login.succeeded", b'{"user_id":"stu-1\\u0000","role":"student"}'),
    _raw("login.failed", b'{"user_id":"stu-1","reason":"bad\\u0000"}'),
    _raw("audit.recorded", AUDIT % b'{"k":["x\\u0000"]}'),
    _raw("audit.recorded", AUDIT % b'{"k\\u0000":1}'),
    _raw("login.succeeded", LOGIN, b',"source":"app\\u0000"'),
    _raw("login.failed", b'{"user_id":"stu-1","reason":"\t"}'),
    _raw("login.failed", b'{"user_id":"stu-1","reason":"\xff"}'),
    # whitespace, BOM, trailing content
    (lambda t, k, v: (t, k, b" \n" + v + b" \t\r\n"))(*record("login.succeeded")),
    (lambda t, k, v: (t, k, b"\xef\xbb\xbf" + v))(*record("login.succeeded")),
    (lambda t, k, v: (t, k, v + b" x"))(*record("login.succeeded")),
    # the type tag: missing on a topic of one type, empty, repeated
    (lambda t, k, v: (t, k, v.replace(b'"type":"audit.recorded",', b"")))(*record("audit.recorded")),
    (lambda t, k, v: (t, k, v.replace(b'"type":"audit.recorded"', b'"type":""')))(*record("audit.recorded")),
    (lambda t, k, v: (t, k, v.replace(b'"type":"audit.recorded"', b'"type":"audit.recorded","type":"x"')))(
        *record("audit.recorded")),
    # event_id length counts characters, not bytes
    record("login.succeeded", {"event_id": "\U0001F600" * 128}),
    record("login.succeeded", {"event_id": "\U0001F600" * 129}),
    record("student.assigned", {"data.mentor_id": None}),
    record("student.assigned", {"data.mentor_id": ""}),
]


@pytest.mark.parametrize("rec", PARSER_EDGES)
def test_both_decoders_agree_where_the_parsers_could_differ(rec: tuple[str, bytes, bytes]) -> None:
    assert_agree(*rec)


def test_large_integer_metadata_keeps_orjsons_reading() -> None:
    event = assert_agree(*PARSER_EDGES[9])
    assert isinstance(event.data.metadata["n"], float)


def test_configured_pillars_and_prefix_apply_to_the_fast_path() -> None:
    contract = Contract(topic_prefix="t1.", pillars=("math",))
    topic, key, value = record(changes={"data.pillar": "math"}, topic="t1.submissions")
    assert isinstance(assert_agree(topic, key, value, contract), StructEvent)
    assert isinstance(assert_agree(*record(topic="t1.submissions"), contract), Rejection)


def test_a_constraint_the_generator_cannot_translate_stops_it() -> None:
    from typing import Annotated

    from annotated_types import Gt

    with pytest.raises(SchemaError, match="cannot translate"):
        structs._translate(Annotated[int, Gt(3)])
    with pytest.raises(SchemaError, match="cannot translate"):
        structs._translate(float)
