"""Kafka record bytes <-> events, with a machine-readable reason for every refusal.

:func:`decode` is the only way records become events. It never raises: a
record that breaks a rule of the contract comes back as a :class:`Rejection`
naming the first rule it breaks, in this order (the order the rules are
documented in :class:`Reason`), so one record always gets the same reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from typing import Any, Final

import orjson
from pydantic import ValidationError

from cohortflow.contract.events import EVENT_CLASSES, Event, EventBase, SubmissionSubmitted
from cohortflow.contract.exceptions import SchemaError
from cohortflow.contract.timestamps import format_occurred_at, parse_occurred_at
from cohortflow.contract.topics import EVENT_TOPICS, Topic, topic_name

# The spec's pillars unless COHORTFLOW_PILLARS says otherwise (settings, fold, views and simulator).
DEFAULT_PILLARS: tuple[str, ...] = ("clt", "sri", "cfc", "iipc", "scd")


@dataclass(frozen=True)
class Contract:
    """The configurable part of the contract: topic prefix, pillars, record size limit."""

    topic_prefix: str = "cohort."
    pillars: tuple[str, ...] = DEFAULT_PILLARS
    max_record_bytes: int = 1_048_576

    def __post_init__(self) -> None:
        object.__setattr__(self, "pillars", tuple(self.pillars))  # a list from settings stays hashable
        if not self.pillars or not all(isinstance(p, str) and p for p in self.pillars):
            raise SchemaError(f"pillars must be a non-empty list of non-empty names, got {self.pillars!r}")
        if len(set(self.pillars)) != len(self.pillars):
            raise SchemaError(f"pillars must be distinct, got {self.pillars!r}: remove the duplicates")
        if isinstance(self.max_record_bytes, bool) or not isinstance(self.max_record_bytes, int) or (
            self.max_record_bytes < 1
        ):
            raise SchemaError(f"max_record_bytes must be a positive integer, got {self.max_record_bytes!r}")

    @cached_property
    def _event_topics(self) -> dict[str, Topic]:
        # Full name -> topic, computed once per contract: decode looks it up per record.
        return {topic_name(self.topic_prefix, t): t for t in EVENT_TOPICS}

    def event_topic(self, name: str) -> Topic | None:
        """The contract topic a full topic name stands for, if it is an event topic."""
        return self._event_topics.get(name)

    @cached_property
    def _pillar_set(self) -> frozenset[str]:
        return frozenset(self.pillars)


DEFAULT_CONTRACT: Final = Contract()


class Reason(StrEnum):
    """Why a record was refused; the value travels in the deadletter headers and metrics labels."""

    UNKNOWN_TOPIC = "unknown_topic"
    """The record comes from a topic that is not a contract event topic (the deadletter included)."""
    OVERSIZE = "oversize"
    """The value is longer than ``Contract.max_record_bytes``."""
    BAD_JSON = "bad_json"
    """The value is absent, empty, not UTF-8, not JSON, or JSON ``null``."""
    NOT_AN_OBJECT = "not_an_object"
    """The value is JSON but not an object."""
    BAD_EVENT_ID = "bad_event_id"
    """``event_id`` is missing or not a string of 1 to 128 characters."""
    UNKNOWN_TYPE = "unknown_type"
    """``type`` is a string that names no event type of the contract."""
    TYPE_NOT_ALLOWED_ON_TOPIC = "type_not_allowed_on_topic"
    """The type belongs on another topic."""
    UNSUPPORTED_SCHEMA_VERSION = "unsupported_schema_version"
    """``schema_version`` is an integer other than 1."""
    BAD_OCCURRED_AT = "bad_occurred_at"
    """``occurred_at`` is missing or not an RFC 3339 date-time with offset."""
    MISSING_FIELD = "missing_field"
    """A required field (``type``, ``schema_version``, ``data`` or a data field) is absent."""
    INVALID_FIELD = "invalid_field"
    """A field has the wrong JSON type (``"2"`` for an integer, 5 for a string), is an empty id, or holds U+0000
    (PostgreSQL cannot store it; checked last)."""
    BAD_ATTEMPT = "bad_attempt"
    """``data.attempt`` is an integer below 1."""
    BAD_DECISION = "bad_decision"
    """``data.decision`` is a string other than ``approved``/``rejected``."""
    BAD_ROLE = "bad_role"
    """``data.role`` is a string other than ``student``/``mentor``/``admin``."""
    UNKNOWN_PILLAR = "unknown_pillar"
    """``data.pillar`` is not one of the contract's pillars."""
    KEY_MISMATCH = "key_mismatch"
    """The record key is missing, not UTF-8, or not the entity id of the event."""


@dataclass(frozen=True, slots=True)
class Rejection:
    """A refused record: the rule it broke, a sentence for humans, and where in the value.

    ``field`` is a dotted path into the value (``data.pillar``), ``"key"`` for
    the record key, or None when the record as a whole is refused.
    """

    reason: Reason
    detail: str
    field: str | None = None


_MISSING: Final = object()

# What a data field must be, by pydantic error type, for the detail sentence.
_EXPECTED: Final = {
    "string_type": "a string",
    "string_too_short": "a non-empty string",
    "int_type": "an integer",
    "dict_type": "an object or null",
    "greater_than_equal": "an integer >= 1",
    "invalid-json-value": "a JSON value",
}

# (data field, pydantic error type) -> reason, for the rules with their own reason.
_DATA_REASONS: Final[dict[tuple[str | None, str], Reason]] = {
    ("attempt", "greater_than_equal"): Reason.BAD_ATTEMPT,
    ("decision", "literal_error"): Reason.BAD_DECISION,
    ("role", "literal_error"): Reason.BAD_ROLE,
}


def decode(
    topic: str, key: bytes | None, value: bytes | None, contract: Contract = DEFAULT_CONTRACT
) -> Event | Rejection:
    """The event in one Kafka record of ``topic`` (full name), or why the record is refused; never raises."""
    source_topic = contract._event_topics.get(topic)
    if source_topic is None:
        return _unknown_topic(topic, contract)
    if value is None:
        return Rejection(Reason.BAD_JSON, "value is absent (a tombstone); expected a JSON object")
    if len(value) > contract.max_record_bytes:
        return Rejection(
            Reason.OVERSIZE, f"value is {len(value)} bytes, over the limit of {contract.max_record_bytes} bytes"
        )
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return Rejection(Reason.BAD_JSON, f"value is not UTF-8 JSON ({exc}); expected a JSON object")
    if type(doc) is not dict:
        if doc is None:
            return Rejection(Reason.BAD_JSON, "value is JSON null; expected a JSON object")
        return Rejection(Reason.NOT_AN_OBJECT, f"value is a JSON {_json_kind(doc)}; expected a JSON object")

    event_id = doc.get("event_id", _MISSING)
    if type(event_id) is not str or not 0 < len(event_id) <= 128:
        return Rejection(
            Reason.BAD_EVENT_ID, f"event_id: expected a string of 1-128 characters, got {_show(event_id)}", "event_id"
        )

    event_type = doc.get("type", _MISSING)
    cls = EVENT_CLASSES.get(event_type) if type(event_type) is str else None
    if cls is None:
        return _bad_type(event_type)
    if cls.TOPIC is not source_topic:
        return Rejection(
            Reason.TYPE_NOT_ALLOWED_ON_TOPIC,
            f"type: {event_type} belongs on topic {topic_name(contract.topic_prefix, cls.TOPIC)}, not {topic}",
            "type",
        )

    version = doc.get("schema_version", _MISSING)
    if type(version) is not int or version != 1:
        return _bad_version(version)

    occurred_at = doc.get("occurred_at", _MISSING)
    moment = parse_occurred_at(occurred_at) if type(occurred_at) is str else None
    if moment is None:
        return Rejection(
            Reason.BAD_OCCURRED_AT,
            "occurred_at: expected an RFC 3339 date-time with offset like 2026-11-23T10:15:30.123Z, "
            f"got {_show(occurred_at)}",
            "occurred_at",
        )

    source = doc.get("source")
    if source is not None and type(source) is not str:
        return Rejection(Reason.INVALID_FIELD, f"source: expected a string or null, got {_show(source)}", "source")

    data = doc.get("data", _MISSING)
    if type(data) is not dict:
        if data is _MISSING:
            return Rejection(Reason.MISSING_FIELD, f"data: required by {event_type} but missing", "data")
        return Rejection(Reason.INVALID_FIELD, f"data: expected an object, got {_show(data)}", "data")

    try:
        # The model's validator itself: model_validate's Python frame cost ~0.3 us a record (bench/bench_decode.py,
        # median 4.9 -> 4.6 us).
        event = cls.__pydantic_validator__.validate_python(
            {"event_id": event_id, "occurred_at": moment, "source": source, "data": data}
        )
    except ValidationError as exc:
        # Errors come in field order, so a record always gets the reason of its first bad field.
        return _data_rejection(event_type, exc.errors(include_url=False)[0])

    if isinstance(event, SubmissionSubmitted) and event.data.pillar not in contract._pillar_set:
        return Rejection(
            Reason.UNKNOWN_PILLAR,
            f"data.pillar: expected one of {', '.join(contract.pillars)}, got {_show(event.data.pillar)}",
            "data.pillar",
        )

    key_text = _utf8(key)
    if key_text is None or key_text != event.key:
        if key is None:
            got = "no key"
        else:
            got = "bytes that are not UTF-8" if key_text is None else _show(key_text)
        return Rejection(
            Reason.KEY_MISMATCH, f"key: expected data.{cls.KEY_FIELD} {_show(event.key)} in UTF-8, got {got}", "key"
        )
    if b"\\u0000" in value:  # JSON can only spell U+0000 this way: cheap to rule out
        path = _nul_path(event)
        if path is not None:
            return Rejection(
                Reason.INVALID_FIELD, f"{path}: contains U+0000, which PostgreSQL cannot store; remove it", path
            )
    return event


def encode(event: EventBase) -> bytes:
    """The record value of ``event``: compact JSON, ``occurred_at`` in UTC with ``Z`` and microseconds.

    Optional fields that are None (``source``, ``data.metadata``) are left
    out; ``data.mentor_id`` of ``student.assigned`` is written even when null.
    """
    doc: dict[str, Any] = {
        "event_id": event.event_id,
        "type": event.type,  # type: ignore[attr-defined]
        "schema_version": event.schema_version,
        "occurred_at": format_occurred_at(event.occurred_at),
    }
    if event.source is not None:
        doc["source"] = event.source
    data = event.data.model_dump()  # type: ignore[attr-defined]
    if data.get("metadata", _MISSING) is None:
        del data["metadata"]
    doc["data"] = data
    return orjson.dumps(doc)


def record_key(event: EventBase) -> bytes:
    """The record key of ``event``: its entity id in UTF-8."""
    return event.key.encode("utf-8")


def _unknown_topic(topic: object, contract: Contract) -> Rejection:
    if topic == topic_name(contract.topic_prefix, Topic.DEADLETTER):
        detail = f"topic {topic} is the deadletter topic; its records are never decoded again"
    else:
        names = ", ".join(contract._event_topics)
        detail = f"topic {_show(topic)} is not an event topic of the contract; expected one of {names}"
    return Rejection(Reason.UNKNOWN_TOPIC, detail)


def _bad_type(event_type: object) -> Rejection:
    if event_type is _MISSING:
        return Rejection(Reason.MISSING_FIELD, "type: required but missing", "type")
    if type(event_type) is not str:
        return Rejection(Reason.INVALID_FIELD, f"type: expected a string, got {_show(event_type)}", "type")
    return Rejection(
        Reason.UNKNOWN_TYPE, f"type: expected one of {', '.join(EVENT_CLASSES)}, got {_show(event_type)}", "type"
    )


def _bad_version(version: object) -> Rejection:
    if version is _MISSING:
        return Rejection(Reason.MISSING_FIELD, "schema_version: required but missing", "schema_version")
    if type(version) is not int:
        return Rejection(
            Reason.INVALID_FIELD, f"schema_version: expected the integer 1, got {_show(version)}", "schema_version"
        )
    return Rejection(
        Reason.UNSUPPORTED_SCHEMA_VERSION,
        f"schema_version: only 1 is supported, got {version}; upgrade cohortflow to read newer events",
        "schema_version",
    )


def _data_rejection(event_type: str, error: Any) -> Rejection:
    loc = error["loc"]
    path = ".".join(str(part) for part in loc)
    name = loc[1] if len(loc) > 1 and loc[0] == "data" else None
    kind = error["type"]
    got = error.get("input", _MISSING)
    if kind == "missing":
        return Rejection(Reason.MISSING_FIELD, f"{path}: required by {event_type} but missing", path)
    reason = _DATA_REASONS.get((name, kind))
    if kind == "literal_error":
        expected = f"one of {error['ctx']['expected']}"
        if type(got) is not str:
            reason = None  # a decision of 5 is mistyped, not a decision we do not know
    else:
        expected = _EXPECTED.get(kind, "another value")
    return Rejection(reason or Reason.INVALID_FIELD, f"{path}: expected {expected}, got {_show(got)}", path)


def _nul_path(event: EventBase) -> str | None:
    """The dotted path of the first kept string holding U+0000, if any (cohortflow's one extra rule)."""

    def walk(value: object, path: str) -> str | None:
        if isinstance(value, str):
            return path if "\x00" in value else None
        if isinstance(value, dict):
            for k, v in value.items():
                found = walk(k, path) or walk(v, f"{path}.{k}")
                if found:
                    return found
        elif isinstance(value, list):
            for i, v in enumerate(value):
                found = walk(v, f"{path}[{i}]")
                if found:
                    return found
        return None

    return walk(event.event_id, "event_id") or walk(event.source, "source") or walk(
        event.data.model_dump(), "data"  # type: ignore[attr-defined]
    )


def _utf8(key: bytes | None) -> str | None:
    try:
        return key.decode("utf-8")  # type: ignore[union-attr]
    except (UnicodeDecodeError, AttributeError):  # not UTF-8, or no key at all
        return None


def _json_kind(value: object) -> str:
    return {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}.get(type(value), "value")


def _show(value: object, limit: int = 60) -> str:
    """``value`` as JSON for a detail sentence, cut short: details travel in headers and logs."""
    if value is _MISSING:
        return "nothing"
    try:
        text = orjson.dumps(value).decode()
    except TypeError:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
