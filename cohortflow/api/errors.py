"""The API's error body, ``{"error": {"code", "message", "parameter"}}``, for every failure a request can meet."""

from __future__ import annotations

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException


class ApiError(Exception):
    """A refusal a route raises: its status, code, message, the parameter at fault and extra headers."""

    def __init__(self, status: int, code: str, message: str, parameter: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.parameter, self.headers = status, code, message, parameter, headers


def error_response(status: int, code: str, message: str, parameter: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "parameter": parameter}}
    return JSONResponse(body, status_code=status, headers=headers)


async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
    return error_response(exc.status, exc.code, exc.message, exc.parameter, exc.headers)


async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422, as a 400 naming the first parameter at fault."""
    first = exc.errors()[0] if exc.errors() else {}
    loc = [str(p) for p in first.get("loc", ()) if p not in ("query", "path", "header", "body")]
    parameter = loc[0] if loc else None
    return error_response(400, "invalid_parameter", f"{parameter}: {first.get('msg', 'invalid')}", parameter)


async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "error")
    return error_response(exc.status_code, code, str(exc.detail))


async def _redis(_: Request, exc: RedisError) -> JSONResponse:
    return error_response(503, "unavailable", f"Redis: {type(exc).__name__}", None, {"Retry-After": "1"})


async def _db(_: Request, exc: psycopg.Error) -> JSONResponse:
    return error_response(503, "unavailable", f"PostgreSQL: {type(exc).__name__}", None, {"Retry-After": "1"})


def install(app: FastAPI) -> None:
    """Answer every failure with the error body; a lost PostgreSQL or Redis is a 503 to retry in a second."""
    app.exception_handler(ApiError)(_api_error)
    app.exception_handler(RequestValidationError)(_invalid)
    app.exception_handler(StarletteHTTPException)(_http)
    app.exception_handler(RedisError)(_redis)
    app.exception_handler(psycopg.Error)(_db)
