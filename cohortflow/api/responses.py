"""View responses: exact JSON with a strong ETag (304 when the client holds it), and cursor pages."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import Response

from cohortflow.api.errors import ApiError

# Personal data: no shared cache keeps it, and a private one must revalidate (ETag) before every use.
CACHE_CONTROL = "private, no-cache"


def _default(value: Any) -> Any:  # whatever orjson cannot write itself
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value))  # exact: 33.33 stays 33.33
    raise TypeError(type(value).__name__)


def view_response(request: Request, body: dict) -> Response:
    """JSON with a strong ETag of its bytes; 304 when the client holds it already."""
    raw = orjson.dumps(body, default=_default, option=orjson.OPT_UTC_Z)
    tag = '"' + hashlib.sha256(raw).hexdigest()[:32] + '"'
    headers = {"ETag": tag, "Cache-Control": CACHE_CONTROL}
    held = request.headers.get("if-none-match")
    if held and (held.strip() == "*" or tag in [t.strip().removeprefix("W/") for t in held.split(",")]):
        return Response(status_code=304, headers=headers)
    return Response(raw, media_type="application/json", headers=headers)


def latest(rows: list[dict], name: str) -> Any:  # a column's value
    values = [r[name] for r in rows if r.get(name) is not None]
    return max(values) if values else None


def items_response(request: Request, rows: list[dict], **extra: Any) -> Response:
    """A list of view rows, with the newest ``as_of`` and ``updated_at`` among them."""
    return view_response(request, {"items": rows, **extra, "as_of": latest(rows, "as_of"),
                                   "updated_at": latest(rows, "updated_at")})


def page_response(request: Request, rows: list[dict], limit: int, key: Callable[[dict], list[str]]) -> Response:
    """The first ``limit`` of ``rows`` (read one over, to know whether a next page exists) and its cursor."""
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = encode_cursor(key(rows[-1])) if more else None
    return items_response(request, rows, next_cursor=cursor)


def encode_cursor(key: list[str]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(key)).decode().rstrip("=")


def decode_cursor(cursor: str | None, size: int) -> list[str] | None:
    """The key a cursor of :func:`encode_cursor` holds (``size`` strings); a 400 for anything else."""
    if cursor is None:
        return None
    try:
        key = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error, orjson.JSONDecodeError):
        key = None
    if not (isinstance(key, list) and len(key) == size and all(isinstance(k, str) for k in key)):
        raise ApiError(400, "invalid_parameter", "cursor: not a cursor this API returned", "cursor")
    return key
