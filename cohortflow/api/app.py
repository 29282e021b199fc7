"""The read API: the views for dashboards, live badges, health and metrics, behind bearer tokens.

``create_app(settings)`` builds one app per settings (tests build one per isolated
stack). Every view response carries ``as_of`` and ``updated_at``, a strong
``ETag`` (304 on ``If-None-Match``) and ``Cache-Control: no-cache``, so a cache
may keep a copy but must revalidate before serving it. Errors are JSON
``{"error": {"code", "message", "parameter"}}``.
"""


import asyncio
import base64
import binascii
import contextlib
import hashlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

import orjson
import psycopg
import redis.asyncio as aioredis
from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from psycopg_pool import AsyncConnectionPool
from redis.exceptions import RedisError
from starlette.exceptions import HTTPException as StarletteHTTPException

from cohortflow.settings import Settings
from cohortflow.stores import audit as trail
from cohortflow.api import models
from cohortflow.api.params import BOOLEAN, INTEGER, ISO_DATE, ISO_DATETIME, unknown_query_parameter
from cohortflow.api.auth import Principal, RateLimiter, Tokens
from cohortflow.stores.badges import badge_channel, badge_key, held_badge
from cohortflow.stores.queries import exact_json

MAX_LIMIT = 500
# Personal data: no shared cache keeps it, and a private one must revalidate (ETag) before every use.
CACHE_CONTROL = "private, no-cache"
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}}
V1_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": models.Error, "description": "a parameter is malformed or out of range (`parameter` names it)"},
    401: {"model": models.Error, "description": "missing, malformed, unknown or revoked bearer token"},
    403: {"model": models.Error, "description": "the token's scopes do not cover this resource"},
    429: {"model": models.Error, "description": "the token's rate limit is spent", "headers": _RETRY_AFTER},
    503: {"model": models.Error, "description": "PostgreSQL or Redis unavailable", "headers": _RETRY_AFTER},
}
# A view: 200 with a strong ETag, or 304 when If-None-Match holds it.
VIEW_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"headers": {"ETag": {"description": "strong validator of the body", "schema": {"type": "string"}},
                      "Cache-Control": {"description": CACHE_CONTROL, "schema": {"type": "string"}}}},
    304: {"description": "Not Modified: If-None-Match holds the current ETag (empty body)"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": models.Error, "description": "no such row in the views"}}


def _openapi(app: FastAPI) -> dict:
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
NO_NUL = r"^[^\x00]*$"  # PostgreSQL text cannot hold NUL: a 400 naming the parameter, not a driver error


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, parameter: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.parameter, self.headers = status, code, message, parameter, headers


def _error(status: int, code: str, message: str, parameter: str | None = None,
           headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "parameter": parameter}}
    return JSONResponse(body, status_code=status, headers=headers)


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value))  # exact: 33.33 stays 33.33
    raise TypeError(type(value).__name__)


def _view_response(request: Request, body: dict) -> Response:
    """JSON with a strong ETag of its bytes; 304 when the client holds it already."""
    raw = orjson.dumps(body, default=_default, option=orjson.OPT_UTC_Z)
    tag = '"' + hashlib.sha256(raw).hexdigest()[:32] + '"'
    headers = {"ETag": tag, "Cache-Control": CACHE_CONTROL}
    held = request.headers.get("if-none-match")
    if held and (held.strip() == "*" or tag in [t.strip().removeprefix("W/") for t in held.split(",")]):
        return Response(status_code=304, headers=headers)
    return Response(raw, media_type="application/json", headers=headers)


def _latest(rows: list[dict], name: str) -> Any:
    values = [r[name] for r in rows if r.get(name) is not None]
    return max(values) if values else None


def _page(request: Request, rows: list[dict], limit: int, key) -> Response:  # noqa: ANN001
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = _encode_cursor(key(rows[-1])) if more else None
    return _view_response(request, {"items": rows, "next_cursor": cursor, "as_of": _latest(rows, "as_of"),
                                    "updated_at": _latest(rows, "updated_at")})


def _encode_cursor(key: list[str]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(key)).decode().rstrip("=")


def _decode_cursor(cursor: str | None, size: int) -> list[str] | None:
    if cursor is None:
        return None
    try:
        key = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error, orjson.JSONDecodeError):
        key = None
    if not (isinstance(key, list) and len(key) == size and all(isinstance(k, str) for k in key)):
        raise ApiError(400, "invalid_parameter", "cursor: not a cursor this API returned", "cursor")
    return key


async def _configure(conn: psycopg.AsyncConnection) -> None:
    exact_json(conn)


def _pool(settings: Settings) -> AsyncConnectionPool:
    """Read-only connections on the views' schema.

    Autocommit: a read is one round trip, where a transaction would add a BEGIN before it and the
    pool's ROLLBACK after it. Only the reads that ask are prepared (see :func:`_read`; psycopg's
    automatic preparation is pushed out of reach, as ``None`` would refuse even those), and no check on
    checkout: a connection broken by a PostgreSQL restart fails one request with a 503 and is replaced.
    """
    return AsyncConnectionPool(
        settings.postgres_url, min_size=4, max_size=8, open=False, name="cohortflow-api", configure=_configure,
        kwargs={"options": f"-c search_path={settings.postgres_schema}", "prepare_threshold": 2**31,
                "autocommit": True})


async def _read(pool: AsyncConnectionPool, query: str, params: list) -> list[dict]:
    """The rows of a view read, as a server-side prepared statement.

    The views are SQL views over the count tables: planning one costs PostgreSQL 0.4-0.6 ms, ten
    times its execution, so unprepared reads spent most of the database's CPU re-planning the same
    few statements (measured: 0.37 of a core at 1,000 summary reads/s, 0.16 prepared). A prepared
    statement still resolves its names anew when the schema changes under it: ``rebuild --swap``
    renames schemas, which invalidates every cached plan, and the next execution is analysed again
    on the search_path (the new schema's views). Only a change of the row type (a migration that
    alters a view) makes PostgreSQL refuse it ("cached plan must not change result type"): that
    connection is closed (its statements go with it) and the read runs once more, unprepared.
    """
    for prepare in (True, False):
        async with pool.connection() as conn:
            try:
                cur = conn.cursor(row_factory=psycopg.rows.dict_row)
                await cur.execute(query, params, prepare=prepare)
                return await cur.fetchall()
            except psycopg.errors.FeatureNotSupported:
                if not prepare:
                    raise
                await conn.close()  # the pool replaces a closed connection
    raise AssertionError("unreachable")


class Broadcaster:
    """One Redis subscription to the badge channel, fanned out to every SSE client's queue."""

    def __init__(self, client: aioredis.Redis, channel: str) -> None:
        self.client = client
        self.channel = channel
        self.listeners: dict[str, set[asyncio.Queue]] = {}
        self._task: asyncio.Task | None = None
        self.ready = asyncio.Event()

    def subscribe(self, user_id: str) -> asyncio.Queue:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        queue: asyncio.Queue = asyncio.Queue(maxsize=8)
        self.listeners.setdefault(user_id, set()).add(queue)
        return queue

    def unsubscribe(self, user_id: str, queue: asyncio.Queue) -> None:
        queues = self.listeners.get(user_id)
        if queues is not None:
            queues.discard(queue)
            if not queues:
                del self.listeners[user_id]

    @property
    def clients(self) -> int:
        return sum(len(q) for q in self.listeners.values())

    async def _run(self) -> None:
        while True:
            try:
                async with self.client.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    self.ready.set()
                    async for message in pubsub.listen():
                        if message.get("type") != "message":
                            continue
                        data = message["data"]
                        user = orjson.loads(data).get("user_id")
                        for queue in tuple(self.listeners.get(user, ())):
                            if queue.full():  # values are absolute: only the newest matters
                                queue.get_nowait()
                            queue.put_nowait(data)
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis restarted: subscribe again
                self.ready.clear()
                await asyncio.sleep(0.5)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task


class Kafka:
    """End offsets of the contract topics, cached for a second (freshness and health)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._consumer = None
        self._cached: tuple[float, dict[tuple[str, int], int]] | None = None
        self._lock = asyncio.Lock()

    async def end_offsets(self) -> dict[tuple[str, int], int]:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        from cohortflow.contract.topics import EVENT_TOPICS, topic_name

        async with self._lock:
            if self._cached and self._cached[0] > time.monotonic():
                return self._cached[1]
            if self._consumer is None:
                consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap,
                                            request_timeout_ms=3000, connections_max_idle_ms=60_000)
                await asyncio.wait_for(consumer.start(), 3)
                self._consumer = consumer
            names = [topic_name(self.settings.topic_prefix, t) for t in EVENT_TOPICS]
            tps = [TopicPartition(n, p) for n in names for p in (self._consumer.partitions_for_topic(n) or ())]
            if not tps:
                await self._consumer._client.force_metadata_update()  # noqa: SLF001 - topics made after start
                tps = [TopicPartition(n, p) for n in names for p in (self._consumer.partitions_for_topic(n) or ())]
            ends = await asyncio.wait_for(self._consumer.end_offsets(tps), 3) if tps else {}
            found = {(tp.topic, tp.partition): o for tp, o in ends.items()}
            self._cached = (time.monotonic() + 1.0, found)
            return found

    async def close(self) -> None:
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                await self._consumer.stop()


def create_app(settings: Settings) -> FastAPI:
    registry = CollectorRegistry()
    requests = Counter("cohortflow_api_requests", "API requests by route template, method and status",
                       ["route", "method", "status"], registry=registry)
    latency = Histogram("cohortflow_api_request_seconds", "API request latency by route template and status",
                        ["route", "method", "status"], registry=registry,
                        buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = _pool(settings)
        await app.state.pool.open(wait=False)
        # A bounded pool that makes requests wait for a connection (a burst of SSE clients must not
        # open thousands), never fail for lack of one.
        app.state.redis = aioredis.Redis(connection_pool=aioredis.BlockingConnectionPool.from_url(
            settings.redis_connection_url, max_connections=64, timeout=5, socket_timeout=3,
            socket_connect_timeout=3))
        app.state.tokens = Tokens(settings.api_token_cache_seconds)
        app.state.limiter = RateLimiter(app.state.redis, settings.redis_prefix, settings.api_rate_limit,
                                        settings.api_rate_window_seconds)
        app.state.broadcaster = Broadcaster(app.state.redis, badge_channel(settings.redis_prefix))
        app.state.kafka = Kafka(settings)
        try:
            yield
        finally:
            await app.state.broadcaster.close()
            await app.state.kafka.close()
            await app.state.redis.aclose()
            await app.state.pool.close()

    app = FastAPI(title="cohortflow read API", version="1", lifespan=lifespan,
                  description="Materialized analytics views of a learning platform, exactly once. Every /v1 route "
                              "needs `Authorization: Bearer <token>` (see `cohortflow tokens`). Errors are "
                              '`{"error": {"code", "message", "parameter"}}`.')
    app.openapi = lambda: _openapi(app)
    v1 = APIRouter(responses=V1_RESPONSES)

    # --- errors ---------------------------------------------------------------------------
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message, exc.parameter, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("query", "path", "header", "body")]
        parameter = loc[0] if loc else None
        return _error(400, "invalid_parameter", f"{parameter}: {first.get('msg', 'invalid')}", parameter)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "error")
        return _error(exc.status_code, code, str(exc.detail))

    @app.exception_handler(RedisError)
    async def _redis(_: Request, exc: RedisError) -> JSONResponse:
        return _error(503, "unavailable", f"Redis: {type(exc).__name__}", None, {"Retry-After": "1"})

    @app.exception_handler(psycopg.Error)
    async def _db(_: Request, exc: psycopg.Error) -> JSONResponse:
        return _error(503, "unavailable", f"PostgreSQL: {type(exc).__name__}", None, {"Retry-After": "1"})

    class Measure:
        """Request counts and latency by route template and status (pure ASGI: no per-request task)."""

        def __init__(self, inner) -> None:  # noqa: ANN001
            self.inner = inner

        async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
            if scope["type"] != "http":
                return await self.inner(scope, receive, send)
            began = time.perf_counter()
            status = [500]

            async def sending(message) -> None:  # noqa: ANN001
                if message["type"] == "http.response.start":
                    status[0] = message["status"]
                    route = scope.get("route")
                    labels = (getattr(route, "path", "unmatched"), scope["method"], str(status[0]))
                    requests.labels(*labels).inc()
                    latency.labels(*labels).observe(time.perf_counter() - began)
                await send(message)

            await self.inner(scope, receive, sending)

    app.add_middleware(Measure)

    # --- access ---------------------------------------------------------------------------
    # Documents the scheme in OpenAPI; the checks below give the JSON errors (HTTPBearer's own would not).
    bearer = HTTPBearer(auto_error=False, description="a token from `cohortflow tokens create`")

    async def principal(request: Request,
                        _: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> Principal:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if not header:
            raise ApiError(401, "unauthorized", "Authorization: missing; send `Authorization: Bearer <token>`",
                           "Authorization", {"WWW-Authenticate": "Bearer"})
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "unauthorized", "Authorization: expected `Bearer <token>`", "Authorization",
                           {"WWW-Authenticate": "Bearer"})
        known, found = request.app.state.tokens.cached(token.strip())
        if not known:
            async with request.app.state.pool.connection() as conn:
                found = await request.app.state.tokens.principal(conn, token.strip())
        if found is None:
            raise ApiError(401, "unauthorized", "Authorization: unknown or revoked token", "Authorization",
                           {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        wait = await request.app.state.limiter.retry_after(found)
        if wait > 0:
            seconds = max(1, int(wait + 0.999))
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
        if not ok:
            raise ApiError(403, "forbidden", f"this token's scopes do not cover {what}")

    async def rows(request: Request, query: str, params: list) -> list[dict]:
        return await _read(request.app.state.pool, query, params)

    Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"items per page (1-{MAX_LIMIT})"), INTEGER]
    Cursor = Annotated[str | None, Query(max_length=2000, description="next_cursor of the previous page")]
    Text = Annotated[str | None, Query(min_length=1, max_length=200, pattern=NO_NUL)]
    Name = Annotated[str, Path(min_length=1, max_length=200, pattern=NO_NUL)]

    # --- views ----------------------------------------------------------------------------
    @v1.get("/v1/floors", response_model=models.FloorPage, tags=["views"],
            responses=VIEW_RESPONSES)
    async def floors(request: Request, who: Caller, campus: Text = None, limit: Limit = 100,
                     cursor: Cursor = None) -> Response:
        """Floor summaries in (campus, floor) order; a floor-scoped token sees its floors only."""
        after = _decode_cursor(cursor, 2)
        where, params = ["true"], []
        if campus is not None:
            where.append("campus = %s")
            params.append(campus)
        if after:
            where.append("(campus, floor) > (%s, %s)")
            params += after
        if not who.all_views:
            if not who.floors:
                need(False, "floors")
            where.append("(campus, floor) IN (SELECT * FROM unnest(%s::text[], %s::text[]))")
            params += [[c for c, _ in who.floors], [f for _, f in who.floors]]
        found = await rows(request, f"SELECT * FROM floor_summary WHERE {' AND '.join(where)}"
                                    " ORDER BY campus, floor LIMIT %s", [*params, limit + 1])
        return _page(request, found, limit, lambda r: [r["campus"], r["floor"]])

    @v1.get("/v1/floors/{campus}/{floor}", response_model=models.Floor, tags=["views"],
            responses={**VIEW_RESPONSES, **NOT_FOUND})
    async def floor(request: Request, who: Caller, campus: Name, floor: Name) -> Response:
        """One floor's summary."""
        need(who.floor(campus, floor), f"floor {campus}/{floor}")
        found = await rows(request, "SELECT * FROM floor_summary WHERE campus = %s AND floor = %s", [campus, floor])
        if not found:
            raise ApiError(404, "not_found", f"floor {campus}/{floor}: no such floor in the views", "floor")
        return _view_response(request, found[0])

    @v1.get("/v1/mentors", response_model=models.MentorPage, tags=["views"],
            responses=VIEW_RESPONSES)
    async def mentors(request: Request, who: Caller, campus: Text = None, floor: Text = None,
                      workload: Literal["low", "balanced", "overloaded"] | None = None,
                      active: Annotated[bool | None, Query(), BOOLEAN] = None, limit: Limit = 100, cursor: Cursor = None) -> Response:
        """Mentor summaries in mentor_id order; a floor-scoped token sees the mentors of its floors."""
        after = _decode_cursor(cursor, 1)
        where, params = ["true"], []
        for name, value in (("campus", campus), ("floor", floor), ("workload", workload), ("active", active)):
            if value is not None:
                where.append(f"{name} = %s")
                params.append(value)
        if after:
            where.append("mentor_id > %s")
            params += after
        if not who.all_views:
            if not who.floors:
                need(False, "mentors")
            where.append("(campus, floor) IN (SELECT * FROM unnest(%s::text[], %s::text[]))")
            params += [[c for c, _ in who.floors], [f for _, f in who.floors]]
        found = await rows(request, f"SELECT * FROM mentor_summary WHERE {' AND '.join(where)}"
                                    " ORDER BY mentor_id LIMIT %s", [*params, limit + 1])
        return _page(request, found, limit, lambda r: [r["mentor_id"]])

    @v1.get("/v1/mentors/{mentor_id}", response_model=models.Mentor, tags=["views"],
            responses={**VIEW_RESPONSES, **NOT_FOUND})
    async def mentor(request: Request, who: Caller, mentor_id: Name) -> Response:
        """One mentor's summary."""
        if not who.all_views and not who.floors:
            need(False, f"mentor {mentor_id}")
        found = await rows(request, "SELECT * FROM mentor_summary WHERE mentor_id = %s", [mentor_id])
        if found:
            need(who.floor(found[0]["campus"], found[0]["floor"]), f"mentor {mentor_id}")
            return _view_response(request, found[0])
        need(who.all_views, f"mentor {mentor_id}")  # no existence oracle for narrower tokens
        raise ApiError(404, "not_found", f"mentor {mentor_id}: no such mentor in the views", "mentor_id")

    @v1.get("/v1/global", response_model=models.Global, tags=["views"],
            responses={**VIEW_RESPONSES, **NOT_FOUND})
    async def global_current(request: Request, who: Caller) -> Response:
        """The whole platform now (global_current)."""
        need(who.all_views, "the global views (needs views:read)")
        found = await rows(request, "SELECT * FROM global_current", [])
        if not found:
            raise ApiError(404, "not_found", "global_current: no event applied yet")
        return _view_response(request, found[0])

    @v1.get("/v1/global/daily", response_model=models.DayList, tags=["views"],
            responses=VIEW_RESPONSES)
    async def global_daily(request: Request, who: Caller,
                           from_: Annotated[date | None, Query(alias="from", description="first date, inclusive"), ISO_DATE] = None,
                           to: Annotated[date | None, Query(description="last date, inclusive"), ISO_DATE] = None) -> Response:
        """One row per UTC date (global_daily), oldest first."""
        need(who.all_views, "the global views (needs views:read)")
        if from_ is not None and to is not None and from_ > to:
            raise ApiError(400, "invalid_parameter", "from: must not be after to", "from")
        if from_ is not None and to is not None and (to - from_).days > 3660:
            raise ApiError(400, "invalid_parameter", "to: at most 10 years after from", "to")
        found = await rows(request, "SELECT * FROM global_daily WHERE (%s::date IS NULL OR date >= %s)"
                                    " AND (%s::date IS NULL OR date <= %s) ORDER BY date", [from_, from_, to, to])
        return _view_response(request, {"items": found, "as_of": _latest(found, "as_of"),
                                        "updated_at": _latest(found, "updated_at")})

    # --- badges ---------------------------------------------------------------------------
    UserId = Name

    async def badge(request: Request, user_id: str) -> dict:
        return (await badge_and_rev(request, user_id))[0]

    async def badge_and_rev(request: Request, user_id: str) -> tuple[dict, int]:
        raw = await request.app.state.redis.hgetall(badge_key(settings.redis_prefix, user_id))
        unread, pending, rev = held_badge(raw)
        out = {"user_id": user_id, "unread": unread}
        if pending is not None:
            out["pending_reviews"] = pending
        return out, rev

    @v1.get("/v1/notifications/{user_id}", response_model=models.Badge, tags=["notifications"],
            responses=VIEW_RESPONSES)
    async def notifications(request: Request, who: Caller, user_id: UserId) -> Response:
        """A user's badge: unread notifications (and pending_reviews for mentors), one Redis read."""
        need(who.user(user_id), f"the counters of user {user_id}")
        return _view_response(request, await badge(request, user_id))

    @v1.get("/v1/notifications/{user_id}/stream", tags=["notifications"],
             responses={200: {"content": {"text/event-stream": {}},
                              "description": "`event: badge` with the badge JSON on each change, "
                                             "`: heartbeat` comments in between"}})
    async def notifications_stream(request: Request, who: Caller, user_id: UserId) -> StreamingResponse:
        """Server-Sent Events: the badge now, then each change of it."""
        need(who.user(user_id), f"the counters of user {user_id}")
        broadcaster: Broadcaster = request.app.state.broadcaster
        queue = broadcaster.subscribe(user_id)

        async def events() -> AsyncIterator[bytes]:
            try:
                # Subscribed before the read, so no change falls between them; the worker's script sets the
                # hash and publishes in one step, so revisions up to the one read are already in `now`.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(broadcaster.ready.wait(), 2)
                now, seen = await badge_and_rev(request, user_id)
                yield b"event: badge\ndata: " + orjson.dumps(now) + b"\n\n"
                while True:
                    try:
                        data = await asyncio.wait_for(queue.get(), settings.sse_heartbeat_seconds)
                    except TimeoutError:
                        yield b": heartbeat\n\n"
                        continue
                    message = orjson.loads(data)
                    rev = message.get("rev") or 0
                    if rev and rev <= seen:
                        continue  # older than what this client holds
                    seen = max(seen, rev)
                    body = {"user_id": user_id, "unread": message["unread"]}
                    if message.get("pending_reviews") is not None:
                        body["pending_reviews"] = message["pending_reviews"]
                    yield b"event: badge\ndata: " + orjson.dumps(body) + b"\n\n"
            finally:
                broadcaster.unsubscribe(user_id, queue)

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    # --- audit ----------------------------------------------------------------------------
    @v1.get("/v1/audit", response_model=models.AuditPage, tags=["audit"],
            responses=VIEW_RESPONSES)
    async def audit_log(request: Request, who: Caller, actor_id: Text = None, entity_type: Text = None,
                        entity_id: Text = None, action: Text = None,
                        from_: Annotated[datetime | None, Query(alias="from", description="inclusive, with offset"),
                                         ISO_DATETIME] = None,
                        to: Annotated[datetime | None, Query(description="exclusive, with offset"), ISO_DATETIME] = None,
                        limit: Annotated[int, Query(ge=1, le=1000, description="items per page (1-1000)"), INTEGER] = 100,
                        cursor: Cursor = None) -> Response:
        """The audit trail newest first, keyset-paginated (scope audit:read)."""
        need("audit:read" in who.scopes, "the audit trail (needs audit:read)")
        flt = trail.AuditFilter(actor_id, entity_type, entity_id, action, from_, to)
        try:
            async with request.app.state.pool.connection() as conn:
                found = await trail.page(conn, settings.postgres_schema, flt, limit=limit, cursor=cursor)
        except trail.BadAuditQuery as exc:
            raise ApiError(400, "invalid_parameter", str(exc), exc.parameter) from None
        return _view_response(request, {"items": found.rows, "next_cursor": found.next_cursor})

    # --- freshness, health, metrics ----------------------------------------------------------
    @v1.get("/v1/freshness", response_model=models.Freshness, tags=["operations"],
            responses=VIEW_RESPONSES)
    async def freshness(request: Request, who: Caller) -> Response:
        """Per topic-partition committed offset and lag, and the age of each view."""
        need(who.all_views, "freshness (needs views:read)")
        committed = await rows(request, "SELECT topic, partition, next_offset, updated_at FROM consumer_offsets"
                                        " ORDER BY topic, partition", [])
        try:
            ends = await request.app.state.kafka.end_offsets()
        except Exception:
            ends = None
        parts, total = [], 0 if ends is not None else None
        known = {(r["topic"], r["partition"]) for r in committed}
        for r in committed:
            end = ends.get((r["topic"], r["partition"])) if ends is not None else None
            lag = max(0, end - r["next_offset"]) if end is not None else None
            if total is not None and lag is not None:
                total += lag
            parts.append({"topic": r["topic"], "partition": r["partition"], "committed_offset": r["next_offset"],
                          "end_offset": end, "lag": lag, "committed_at": r["updated_at"]})
        for (topic, partition), end in sorted((ends or {}).items()):
            if (topic, partition) not in known and end > 0:
                total = (total or 0) + end
                parts.append({"topic": topic, "partition": partition, "committed_offset": 0, "end_offset": end,
                              "lag": end, "committed_at": datetime(1970, 1, 1, tzinfo=UTC)})
        ages = await rows(request, " UNION ALL ".join(
            f"SELECT '{v}' AS view, max(as_of) AS as_of, max(updated_at) AS updated_at FROM {v}"
            for v in ("floor_summary", "mentor_summary", "global_daily", "global_current")), [])
        now = datetime.now(UTC)
        views = {a["view"]: {"as_of": a["as_of"], "updated_at": a["updated_at"],
                             "age_seconds": (now - a["updated_at"]).total_seconds() if a["updated_at"] else None}
                 for a in ages}
        return _view_response(request, {"partitions": parts, "total_lag": total, "views": views})

    async def _check(name: str, probe) -> tuple[str, dict]:  # noqa: ANN001
        began = time.perf_counter()
        try:
            detail = await asyncio.wait_for(probe(), 2)
            return name, {"status": "ok", "ms": (time.perf_counter() - began) * 1000, "detail": detail}
        except Exception as exc:  # noqa: BLE001 - any failure is the answer
            return name, {"status": "failed", "ms": (time.perf_counter() - began) * 1000,
                          "detail": f"{type(exc).__name__}: {exc}"[:300]}

    @app.get("/health", response_model=models.Health, tags=["operations"],
             responses={503: {"model": models.Health, "description": "unhealthy: a service check failed"}})
    async def health(request: Request) -> JSONResponse:
        """PostgreSQL, Redis, Kafka and lag: healthy (200), degraded (200: lag too high) or unhealthy (503)."""
        began = time.perf_counter()
        state = request.app.state

        async def pg() -> None:
            async with state.pool.connection(timeout=2) as conn:
                await conn.execute("SELECT 1 FROM consumer_offsets LIMIT 1")

        async def rd() -> None:
            await state.redis.ping()

        async def kafka() -> None:
            await state.kafka.end_offsets()

        checks = dict(await asyncio.gather(_check("postgresql", pg), _check("redis", rd), _check("kafka", kafka)))
        status = "healthy" if all(c["status"] == "ok" for c in checks.values()) else "unhealthy"
        if status == "healthy":
            lag_began = time.perf_counter()
            ends = await state.kafka.end_offsets()
            async with state.pool.connection(timeout=2) as conn:
                cur = await conn.execute("SELECT topic, partition, next_offset FROM consumer_offsets")
                stored = {(t, p): o for t, p, o in await cur.fetchall()}
            lag = sum(max(0, end - stored.get(tp, 0)) for tp, end in ends.items())
            ok = lag <= settings.api_lag_degraded
            checks["lag"] = {"status": "ok" if ok else "degraded", "ms": (time.perf_counter() - lag_began) * 1000,
                             "detail": f"{lag} records behind (degraded above {settings.api_lag_degraded})"}
            status = "healthy" if ok else "degraded"
        body = {"status": status, "checks": checks, "response_ms": (time.perf_counter() - began) * 1000}
        return JSONResponse(body, status_code=503 if status == "unhealthy" else 200,
                            headers={"Cache-Control": "no-store"})

    @app.get("/health/live", tags=["operations"], response_model=models.Live)
    async def live() -> dict:
        """The process answers."""
        return {"status": "alive"}

    @app.get("/health/ready", tags=["operations"], response_model=models.Health,
             responses={503: {"model": models.Health}})
    async def ready(request: Request) -> JSONResponse:
        """PostgreSQL and Redis answer: this process can serve (200), or not (503)."""
        began = time.perf_counter()
        state = request.app.state

        async def pg() -> None:
            async with state.pool.connection(timeout=2) as conn:
                await conn.execute("SELECT 1")

        async def rd() -> None:
            await state.redis.ping()

        checks = dict(await asyncio.gather(_check("postgresql", pg), _check("redis", rd)))
        ok = all(c["status"] == "ok" for c in checks.values())
        return JSONResponse({"status": "healthy" if ok else "unhealthy", "checks": checks,
                             "response_ms": (time.perf_counter() - began) * 1000}, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["operations"], response_class=Response,
             responses={200: {"content": {"text/plain": {}}}})
    async def metrics() -> Response:
        """Prometheus: request counts and latency histograms by route and status."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.include_router(v1)
    return app
