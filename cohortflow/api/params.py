"""Query parameters read exactly as the OpenAPI document spells them.

Pydantic's lax parsing would take ``to=0`` as 1970-01-01, ``limit=1.0`` as 1 and
``active=on`` as true: values the document does not allow, silently turned into
other queries. These types check the text first, so such input is a 400 naming
the parameter; and a query parameter the route does not have (``?campsu=x``) is
refused rather than ignored.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import Path, Query, Request
from pydantic import BeforeValidator


def _lexical(pattern: str, expected: str) -> BeforeValidator:
    form = re.compile(pattern)

    def check(value: Any) -> Any:
        if isinstance(value, str) and not form.fullmatch(value):
            raise ValueError(f"expected {expected}")
        return value

    return BeforeValidator(check)


# Put after Query(...) in Annotated[...] (FastAPI writes the constraints of a nested Annotated into the
# OpenAPI document as "ge"/"le" instead of "minimum"/"maximum").
INTEGER = _lexical(r"-?[0-9]{1,18}", "an integer in decimal digits")
BOOLEAN = _lexical(r"true|false", "true or false")
ISO_DATE = _lexical(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", "a date YYYY-MM-DD")
ISO_DATETIME = _lexical(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?([Zz]|[+-][0-9]{2}:?[0-9]{2})?",
    "an ISO 8601 date-time with an offset, e.g. 2026-11-02T09:00:00Z")


def unknown_query_parameter(request: Request) -> str | None:
    """The first query parameter the matched route does not declare, if any."""
    route = request.scope.get("route")
    if route is None or not request.query_params:
        return None
    known = getattr(route, "declared_query", None)
    if known is None:
        known = route.declared_query = frozenset(_query_names(route.dependant))
    return next((name for name in request.query_params if name not in known), None)


def _query_names(dependant: Any) -> set[str]:  # fastapi's Dependant
    names = {p.alias for p in dependant.query_params}
    for inner in dependant.dependencies:
        names |= _query_names(inner)
    return names


# --- the routes' shared parameter types --------------------------------------------------
MAX_LIMIT = 500
NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot hold NUL: a 400 naming the parameter, not a driver error

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"items per page (1-{MAX_LIMIT})"), INTEGER]
Cursor = Annotated[str | None, Query(max_length=2000, description="next_cursor of the previous page")]
Text = Annotated[str | None, Query(min_length=1, max_length=200, pattern=NO_NUL)]
Name = Annotated[str, Path(min_length=1, max_length=200, pattern=NO_NUL)]
