"""The hot-path decoder: msgspec Structs generated from the pydantic models, pydantic for every refusal.

The pydantic models of :mod:`cohortflow.contract.events` stay the one written contract.
This module derives a msgspec ``Struct`` per event type from them at import
(field names, required fields, defaults, and the constraints pydantic
checks: non-empty ids, ``event_id`` of at most 128 characters, ``attempt >=
1``, the literals), so a field added to a model appears here without being
written twice, and a constraint this module cannot translate stops the import.

:func:`decode` answers what :func:`cohortflow.contract.codec.decode` answers, about
ten times faster on a valid record (bench/bench_decode.py). A record msgspec
refuses, or one of the few rules msgspec cannot check (the pillar list, the
record key, U+0000, ``occurred_at``'s exact RFC 3339 shape), goes through
``cohortflow.contract.codec.decode`` itself, so every Rejection reason and detail is
that path's. tests/contract/test_structs.py holds both decoders to the same
answer, event or exact rejection, on every record of the adversarial logs
and of Hypothesis strategies.

The events come back as Structs with the models' attribute names and values
(``type``, ``event_id``, ``schema_version``, ``occurred_at`` as an aware UTC
datetime, ``source``, ``data.<field>``, ``key``), for code that reads events
rather than validates them: the fold, the audit trail, the worker.
"""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any, ClassVar, Final, Literal, Union, cast

import annotated_types
import msgspec
import orjson
from pydantic import AwareDatetime, BaseModel
from pydantic.fields import FieldInfo

from cohortflow.contract import codec
from cohortflow.contract.codec import Contract, Rejection
from cohortflow.contract.events import EVENT_CLASSES, Event, EventBase
from cohortflow.contract.exceptions import SchemaError
from cohortflow.contract.timestamps import parse_occurred_at
from cohortflow.contract.topics import EVENT_TOPICS, Topic, topic_name

# orjson reads JSON integers in [-2**63, 2**64) as int and larger ones as float, which the strict models refuse;
# msgspec reads any integer, and its bounds must fit an int64: so it is held to int64 and the rare integer in
# [2**63, 2**64) takes the contract path.
_INT_RANGE: Final = (-(2**63), 2**63 - 1)


class StructEvent(msgspec.Struct, kw_only=True, tag_field="type"):
    """Base of the generated event Structs.

    They have the envelope's attributes, as on :class:`cohortflow.contract.events.EventBase`.

    ``occurred_at`` arrives as the RFC 3339 text and leaves :func:`decode` as
    the aware UTC datetime :func:`cohortflow.contract.timestamps.parse_occurred_at` makes of it.
    """

    TOPIC: ClassVar[Topic]
    KEY_FIELD: ClassVar[str]
    type: ClassVar[str]

    @property
    def key(self) -> str:
        """The entity id this event's record is keyed by."""
        return getattr(self.data, self.KEY_FIELD)  # type: ignore[attr-defined]


def _meta(constraints: list[Any], annotation: Any) -> msgspec.Meta | None:
    kwargs: dict[str, Any] = {}  # ints, and annotated_types' bound (an int on the contract's models)
    for c in constraints:
        if isinstance(c, annotated_types.MinLen):
            kwargs["min_length"] = c.min_length
        elif isinstance(c, annotated_types.MaxLen):
            kwargs["max_length"] = c.max_length
        elif isinstance(c, annotated_types.Ge):
            kwargs["ge"] = c.ge
        else:
            raise SchemaError(f"cohortflow.contract.structs cannot translate the constraint {c!r} of {annotation!r}")
    if annotation is int:
        kwargs["ge"] = max(kwargs.get("ge", _INT_RANGE[0]), _INT_RANGE[0])
        kwargs["le"] = _INT_RANGE[1]
    return msgspec.Meta(**kwargs) if kwargs else None


def _translate(annotation: Any, constraints: list[Any] = ()) -> Any:  # type: ignore[assignment]
    """The msgspec type checking what pydantic's strict mode checks of ``annotation``."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        inner, *extra = typing.get_args(annotation)
        # Field(...) inside Annotated carries its constraints as metadata
        flat = [m for e in extra for m in (e.metadata if isinstance(e, FieldInfo) else [e])]
        return _translate(inner, [*constraints, *flat])
    if origin in (Union, types.UnionType):
        return Union[tuple(_translate(arg) for arg in typing.get_args(annotation))]  # noqa: UP007
    if origin is Literal:
        return annotation
    if annotation is type(None):
        return annotation
    if annotation in (str, int):
        meta = _meta(list(constraints), annotation)
        return Annotated[annotation, meta] if meta else annotation
    if annotation is AwareDatetime:
        return str  # the codec's own parser reads it (decode), as cohortflow.contract.codec.decode does
    if origin is dict and typing.get_args(annotation)[0] is str:
        return dict[str, Any]  # the shape; the values are taken from orjson's reading (decode)
    raise SchemaError(f"cohortflow.contract.structs cannot translate the annotation {annotation!r}")


def _fields(model: type[BaseModel], skip: tuple[str, ...] = ()) -> list[tuple]:
    out: list[tuple] = []  # (name, type) or (name, type, default), as msgspec.defstruct takes them
    for name, info in model.model_fields.items():
        if name in skip:
            continue
        kind = _translate(info.annotation, list(info.metadata))
        # The codec requires schema_version although the model defaults it: the Struct does too.
        if info.is_required() or name == "schema_version":
            out.append((name, kind))
        else:
            out.append((name, kind, info.default))
    return out


def _struct(event_type: str, model: type[EventBase]) -> type[StructEvent]:
    # every event model's ``data`` is annotated with its data model (cohortflow.contract.events)
    data_model = cast(type[BaseModel], model.model_fields["data"].annotation)
    data = msgspec.defstruct(data_model.__name__, _fields(data_model), kw_only=True)
    fields = _fields(model, skip=("type", "data")) + [("data", data)]
    struct = msgspec.defstruct(
        model.__name__, fields, bases=(StructEvent,), tag=event_type,
        namespace={"TOPIC": model.TOPIC, "KEY_FIELD": model.KEY_FIELD, "type": event_type}, kw_only=True,
    )
    return cast(type[StructEvent], struct)  # bases=(StructEvent,)


STRUCTS: Final = {event_type: _struct(event_type, model) for event_type, model in EVENT_CLASSES.items()}
"""Event type -> its generated Struct."""



class _NoType(StructEvent, tag=""):
    """Never an event: in every topic's union, so that msgspec requires the ``type`` tag even on a topic of one
    type (a lone tagged Struct decodes without it). Decoding to it takes the contract path."""


_BY_TOPIC: Final = {
    topic: msgspec.json.Decoder(Union[(_NoType, *(s for s in STRUCTS.values() if s.TOPIC is topic))])
    for topic in EVENT_TOPICS
}


def _decoders(contract: Contract) -> dict[str, msgspec.json.Decoder]:
    global _last
    last = _last
    if last[0] is contract:  # a process decodes with one contract: no hashing it for every record
        return last[1]
    found = _CACHE.get(contract)
    if found is None:
        found = _CACHE[contract] = {topic_name(contract.topic_prefix, t): d for t, d in _BY_TOPIC.items()}
    _last = (contract, found)
    return found


_CACHE: dict[Contract, dict[str, msgspec.json.Decoder]] = {}
_last: tuple[Contract | None, dict[str, msgspec.json.Decoder]] = (None, {})  # the latest call's, held as one tuple


def decode(topic: str, key: bytes | None, value: bytes | None,
           contract: Contract = codec.DEFAULT_CONTRACT) -> StructEvent | Event | Rejection:
    """The event in one record, as :func:`cohortflow.contract.codec.decode` finds it (or its exact Rejection).

    Never raises. A record msgspec refuses but the contract accepts (an integer in [2**63, 2**64), say)
    comes back as the contract path's pydantic event.
    """
    decoder = _decoders(contract).get(topic)
    if decoder is None or value is None or len(value) > contract.max_record_bytes or b"\\u0000" in value:
        return codec.decode(topic, key, value, contract)
    try:
        event = decoder.decode(value)
    except (msgspec.DecodeError, RecursionError):  # ValidationError included
        return codec.decode(topic, key, value, contract)
    if type(event) is _NoType:
        return codec.decode(topic, key, value, contract)
    moment = parse_occurred_at(event.occurred_at)
    data = event.data
    if moment is None or key is None or key != getattr(data, event.KEY_FIELD).encode():
        return codec.decode(topic, key, value, contract)
    event.occurred_at = moment
    if event.type == "submission.submitted":
        if data.pillar not in contract._pillar_set:
            return codec.decode(topic, key, value, contract)
    elif event.type == "audit.recorded" and data.metadata is not None:
        # msgspec reads integers past 64 bits as ints where orjson (the contract path) reads floats.
        try:
            data.metadata = orjson.loads(value)["data"]["metadata"]
        except orjson.JSONDecodeError:
            return codec.decode(topic, key, value, contract)
    return event


def as_dict(event: EventBase | StructEvent) -> dict[str, Any]:
    """An event of either decoder as plain data (``type`` included), to compare them."""
    if isinstance(event, StructEvent):
        out = msgspec.structs.asdict(event)
        out["data"] = msgspec.structs.asdict(event.data)  # type: ignore[attr-defined]
    else:
        out = event.model_dump()
    out["type"] = event.type  # type: ignore[union-attr]
    return out


__all__ = ["STRUCTS", "StructEvent", "as_dict", "decode"]
