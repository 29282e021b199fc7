"""Events from keyword arguments, validated exactly as the worker will read them.

Every event goes through :func:`cohortflow.contract.decode` before it leaves the app, so
nothing the worker would deadletter can be published or enqueued: a bad field
is an :class:`InvalidEvent` at the call site, with the worker's own words.

:func:`event_methods` gives a class one method per event type of the contract
(``student_enrolled``, ``submission_submitted``...), generated from the
models in :mod:`cohortflow.contract.events` with real signatures: the data fields as
keyword-only parameters, then ``event_id``, ``occurred_at`` and ``source``.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson

from cohortflow.contract import (
    DEFAULT_CONTRACT,
    EVENT_CLASSES,
    KEY_FIELD_OF_TYPE,
    TOPIC_OF_TYPE,
    Contract,
    EventBase,
    Reason,
    Rejection,
    decode,
    encode,
    format_occurred_at,
    record_key,
    topic_name,
)
from cohortflow.producers.exceptions import InvalidEvent

Record = tuple[str, bytes, bytes]
"""A Kafka record ready to send: (full topic name, key, value)."""

_ENVELOPE = ("event_id", "occurred_at", "source")
_Cls = TypeVar("_Cls", bound=type)


def validated_record(event: EventBase, contract: Contract = DEFAULT_CONTRACT) -> Record:
    """The record of ``event`` under ``contract``, or :class:`InvalidEvent` if the worker would reject it."""
    topic = topic_name(contract.topic_prefix, event.TOPIC)
    try:
        key, value = record_key(event), encode(event)
    except (TypeError, UnicodeEncodeError) as exc:  # a string with lone surrogates is not UTF-8
        raise InvalidEvent(event.type, f"not representable as UTF-8 JSON ({exc})", None,  # type: ignore[attr-defined]
                           Reason.INVALID_FIELD) from None
    found = decode(topic, key, value, contract)
    if isinstance(found, Rejection):
        raise InvalidEvent(event.type, found.detail, found.field, found.reason)  # type: ignore[attr-defined]
    return topic, key, value


def build_event(
    event_type: str,
    data: dict[str, Any],
    *,
    event_id: str | None = None,
    occurred_at: datetime | str | None = None,
    source: str | None = None,
    contract: Contract = DEFAULT_CONTRACT,
) -> tuple[EventBase, Record]:
    """The event of ``event_type`` with ``data`` and its record, validated by :func:`cohortflow.contract.decode`.

    ``event_id`` defaults to a new uuid4, ``occurred_at`` to now (UTC); a
    datetime must be timezone-aware, a string RFC 3339 with offset.
    """
    if event_type not in EVENT_CLASSES:
        raise InvalidEvent(event_type, f"type: expected one of {', '.join(EVENT_CLASSES)}", "type",
                           Reason.UNKNOWN_TYPE)
    doc: dict[str, Any] = {
        "event_id": str(uuid.uuid4()) if event_id is None else event_id,
        "type": event_type,
        "schema_version": 1,
        "occurred_at": _occurred_at(event_type, occurred_at),
        "data": data,
    }
    if source is not None:
        doc["source"] = source
    try:
        value = orjson.dumps(doc)
    except TypeError as exc:  # a value JSON cannot carry (a set, a Decimal, an int over 64 bits...)
        raise InvalidEvent(event_type, f"data: not representable as JSON ({exc})", "data",
                           Reason.INVALID_FIELD) from None
    key_value = data.get(KEY_FIELD_OF_TYPE[event_type])
    key = key_value.encode() if isinstance(key_value, str) else b""  # dumps refused surrogates above
    topic = topic_name(contract.topic_prefix, TOPIC_OF_TYPE[event_type])
    found = decode(topic, key, value, contract)
    if isinstance(found, Rejection):
        raise InvalidEvent(event_type, found.detail, found.field, found.reason)
    return found, (topic, key, encode(found))


def _occurred_at(event_type: str, value: datetime | str | None) -> object:
    if value is None:
        return format_occurred_at(datetime.now(UTC))
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            raise InvalidEvent(
                event_type,
                f"occurred_at: expected a timezone-aware datetime, got naive {value.isoformat()} "
                "(use datetime.now(UTC) or attach a tzinfo)",
                "occurred_at",
                Reason.BAD_OCCURRED_AT,
            )
        return format_occurred_at(value)
    return value  # a string (or a mistake) that decode judges


def method_name(event_type: str) -> str:
    """``submission.submitted`` -> ``submission_submitted``."""
    return event_type.replace(".", "_")


def signature_of(event_type: str) -> inspect.Signature:
    """The keyword-only parameters of the typed method for ``event_type`` (``self`` first)."""
    data_model = EVENT_CLASSES[event_type].model_fields["data"].annotation
    kw = inspect.Parameter.KEYWORD_ONLY
    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    for name, field in data_model.model_fields.items():  # type: ignore[union-attr]
        default = inspect.Parameter.empty if field.is_required() else field.default
        params.append(inspect.Parameter(name, kw, annotation=field.annotation, default=default))
    params += [
        inspect.Parameter("event_id", kw, annotation=str | None, default=None),
        inspect.Parameter("occurred_at", kw, annotation=datetime | str | None, default=None),
        inspect.Parameter("source", kw, annotation=str | None, default=None),
    ]
    return inspect.Signature(params, return_annotation=EVENT_CLASSES[event_type])


def event_methods(cls: _Cls) -> _Cls:
    """Class decorator: add one method per event type that builds the event and hands it to ``cls._deliver``.

    ``_deliver(self, event, record)`` publishes (or stores) the validated
    event and returns what the method returns; when it is a coroutine
    function the methods are too. The class provides ``contract`` and
    ``source`` (the default source of its events).
    """
    coroutine = inspect.iscoroutinefunction(cls._deliver)  # type: ignore[attr-defined]
    for event_type in EVENT_CLASSES:
        setattr(cls, method_name(event_type), _typed_method(cls, event_type, coroutine))
    return cls


def _typed_method(owner: type, event_type: str, coroutine: bool) -> Callable[..., Any]:
    signature = signature_of(event_type)
    event_cls = EVENT_CLASSES[event_type]
    data_fields = tuple(event_cls.model_fields["data"].annotation.model_fields)  # type: ignore[union-attr]

    def build(self: Any, args: tuple, kwargs: dict) -> tuple[EventBase, Record]:
        bound = signature.bind(self, *args, **kwargs)  # TypeError for unknown, missing or positional arguments
        bound.apply_defaults()
        values = bound.arguments
        return build_event(
            event_type,
            {name: values[name] for name in data_fields},
            event_id=values["event_id"],
            occurred_at=values["occurred_at"],
            source=values["source"] if values["source"] is not None else self.source,
            contract=self.contract,
        )

    method: Callable[..., Any]  # a coroutine function for AsyncPublisher, a plain one otherwise
    if coroutine:
        async def method(self: Any, *args: Any, **kwargs: Any) -> Any:
            return await self._deliver(*build(self, args, kwargs))
    else:
        def method(self: Any, *args: Any, **kwargs: Any) -> Any:
            return self._deliver(*build(self, args, kwargs))

    # inspect.signature reads __signature__, set at run time: typeshed's function type has no such attribute
    method.__signature__ = signature  # type: ignore[union-attr]
    method.__name__ = method_name(event_type)
    method.__qualname__ = f"{owner.__qualname__}.{method.__name__}"
    method.__module__ = owner.__module__
    method.__doc__ = (
        f"``{event_type}`` on topic {event_cls.TOPIC.value}, keyed by data.{event_cls.KEY_FIELD}: "
        f"{(event_cls.model_fields['data'].annotation.__doc__ or '').strip()}"
    )
    return method


@event_methods
class EventFactory:
    """Typed constructors of validated events that are not published, e.g. for
    :func:`cohortflow.producers.outbox.enqueue`.

    ``events.submission_submitted(submission_id="sub-1", student_id="s1",
    pillar="clt", attempt=1)`` returns the event, or raises
    :class:`InvalidEvent` naming the field.
    """

    def __init__(self, contract: Contract = DEFAULT_CONTRACT, *, source: str | None = None) -> None:
        self.contract = contract
        self.source = source

    def _deliver(self, event: EventBase, record: Record) -> EventBase:
        return event


events = EventFactory()
"""Typed event constructors under the default contract."""
