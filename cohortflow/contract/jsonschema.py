"""JSON Schemas (draft 2020-12) of the events, for the apps that publish them.

The data part is generated from the pydantic models, so the schemas cannot
drift from what :func:`cohortflow.contract.codec.decode` validates; the envelope and the
configurable pillars are added here. A schema cannot say everything decode
checks: the record key, dates that do not exist (2026-02-30), and JSON
numbers like ``1.0`` (an integer to JSON Schema, a float to decode).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import orjson

from cohortflow.contract.codec import DEFAULT_CONTRACT, Contract
from cohortflow.contract.events import EVENT_CLASSES, EventBase
from cohortflow.contract.timestamps import RFC3339_PATTERN
from cohortflow.contract.topics import KEY_FIELD_OF_TYPE, TOPIC_OF_TYPE, Topic, topic_name

DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"


def json_schemas(contract: Contract = DEFAULT_CONTRACT) -> dict[str, dict[str, Any]]:
    """One JSON Schema per event type, by type, with the contract's pillars."""
    return {event_type: _event_schema(event_type, cls, contract) for event_type, cls in EVENT_CLASSES.items()}


def export(directory: Path | str, contract: Contract = DEFAULT_CONTRACT) -> list[Path]:
    """Write ``<type>.schema.json`` for every type and an ``index.json`` into ``directory``; the paths written."""
    schemas = json_schemas(contract)
    index = {
        "schema_version": 1,
        "topic_prefix": contract.topic_prefix,
        "pillars": list(contract.pillars),
        "topics": [topic_name(contract.topic_prefix, t) for t in Topic],
        "types": [
            {
                "type": event_type,
                "topic": topic_name(contract.topic_prefix, TOPIC_OF_TYPE[event_type]),
                "key_field": KEY_FIELD_OF_TYPE[event_type],
                "schema": f"{event_type}.schema.json",
            }
            for event_type in schemas
        ],
    }
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name, document in [*((f"{t}.schema.json", s) for t, s in schemas.items()), ("index.json", index)]:
        path = target / name
        path.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
        written.append(path)
    return written


def _event_schema(event_type: str, cls: type[EventBase], contract: Contract) -> dict[str, Any]:
    data = _data_schema(cls.model_fields["data"].annotation, contract)  # type: ignore[arg-type]
    return {
        "$schema": DIALECT,
        "$id": f"urn:cohortflow:event:{event_type}:1",
        "title": event_type,
        "description": (cls.__doc__ or event_type).strip(),
        "type": "object",
        "required": ["event_id", "type", "schema_version", "occurred_at", "data"],
        "properties": {
            "event_id": {"type": "string", "minLength": 1, "maxLength": 128},
            "type": {"const": event_type},
            "schema_version": {"type": "integer", "const": 1},
            "occurred_at": {"type": "string", "format": "date-time", "pattern": RFC3339_PATTERN},
            "source": {"type": ["string", "null"]},
            "data": data,
        },
        "additionalProperties": True,
        "x-topic": topic_name(contract.topic_prefix, cls.TOPIC),
        "x-key-field": cls.KEY_FIELD,
    }


def _data_schema(model: type[Any], contract: Contract) -> dict[str, Any]:
    generated = model.model_json_schema()
    schema = _inline(generated, generated.pop("$defs", {}))
    schema.pop("title", None)
    for prop in schema["properties"].values():
        prop.pop("title", None)
    if "pillar" in schema["properties"]:
        schema["properties"]["pillar"]["enum"] = list(contract.pillars)
    schema["additionalProperties"] = True
    return schema


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """``node`` with every ``#/$defs/`` reference replaced by its definition (the files stand alone)."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(v, defs) for v in node]
    return node
