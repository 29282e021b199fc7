"""Who calls a /v1 route: the bearer token's principal, within its rate limit, and the scope checks routes make."""

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from cohortflow.api.auth import Principal
from cohortflow.api.errors import ApiError
from cohortflow.api.params import unknown_query_parameter

# Documents the scheme in OpenAPI; the checks below give the JSON errors (HTTPBearer's own would not).
bearer = HTTPBearer(auto_error=False, description="a token from `cohortflow tokens create`")


def _unauthorized(message: str, challenge: str = "Bearer") -> ApiError:
    return ApiError(401, "unauthorized", message, "Authorization", {"WWW-Authenticate": challenge})


async def principal(request: Request,
                    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Principal:
    """The principal of the request's bearer token; 401 without a valid one, 429 past its rate limit."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise _unauthorized("Authorization: missing; send `Authorization: Bearer <token>`")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("Authorization: expected `Bearer <token>`")
    state = request.app.state
    known, found = state.tokens.cached(token.strip())
    if not known:
        async with state.pool.connection() as conn:
            found = await state.tokens.principal(conn, token.strip())
    if found is None:
        raise _unauthorized("Authorization: unknown or revoked token", 'Bearer error="invalid_token"')
    wait = await state.limiter.retry_after(found)
    if wait > 0:
        seconds = max(1, int(wait + 0.999))
        settings = state.settings
        raise ApiError(429, "rate_limited", f"more than {settings.api_rate_limit} requests in "
                       f"{settings.api_rate_window_seconds:g} s for this token; retry in {seconds} s",
                       None, {"Retry-After": str(seconds)})
    return found


async def caller(request: Request, who: Annotated[Principal, Depends(principal)]) -> Principal:
    """The token's principal, once the query names only parameters the route has."""
    unknown = unknown_query_parameter(request)
    if unknown is not None:
        raise ApiError(400, "invalid_parameter", f"{unknown}: not a parameter of this route", unknown[:100])
    return who


Caller = Annotated[Principal, Depends(caller)]


def need(ok: bool, what: str) -> None:
    """A 403 naming ``what`` unless ``ok``."""
    if not ok:
        raise ApiError(403, "forbidden", f"this token's scopes do not cover {what}")
