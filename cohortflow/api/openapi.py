"""What the OpenAPI document declares beyond the routes' own models: error responses, ETags, no 422."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from cohortflow.api import models
from cohortflow.api.responses import CACHE_CONTROL

Responses = dict[int | str, dict[str, Any]]

_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}}
# Every /v1 route (its router's responses).
V1_RESPONSES: Responses = {
    400: {"model": models.Error, "description": "a parameter is malformed or out of range (`parameter` names it)"},
    401: {"model": models.Error, "description": "missing, malformed, unknown or revoked bearer token"},
    403: {"model": models.Error, "description": "the token's scopes do not cover this resource"},
    429: {"model": models.Error, "description": "the token's rate limit is spent", "headers": _RETRY_AFTER},
    503: {"model": models.Error, "description": "PostgreSQL or Redis unavailable", "headers": _RETRY_AFTER},
}
# A view: 200 with a strong ETag, or 304 when If-None-Match holds it.
VIEW_RESPONSES: Responses = {
    200: {"headers": {"ETag": {"description": "strong validator of the body", "schema": {"type": "string"}},
                      "Cache-Control": {"description": CACHE_CONTROL, "schema": {"type": "string"}}}},
    304: {"description": "Not Modified: If-None-Match holds the current ETag (empty body)"},
}
NOT_FOUND: Responses = {404: {"model": models.Error, "description": "no such row in the views"}}


def document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, less the 422 it adds to every route: bad input here is a 400 naming the parameter."""
    if app.openapi_schema is None:
        doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        for path in doc["paths"].values():
            for operation in path.values():
                operation["responses"].pop("422", None)
        for name in ("HTTPValidationError", "ValidationError"):
            doc.get("components", {}).get("schemas", {}).pop(name, None)
        app.openapi_schema = doc
    return app.openapi_schema
