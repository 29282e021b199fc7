"""A user's notification badge from Redis: read once, or followed as Server-Sent Events."""

import asyncio
import contextlib
from collections.abc import AsyncIterator

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from cohortflow.api import models
from cohortflow.api.access import Caller, need
from cohortflow.api.broadcast import Broadcaster
from cohortflow.api.openapi import V1_RESPONSES, VIEW_RESPONSES
from cohortflow.api.params import Name as UserId
from cohortflow.api.responses import view_response
from cohortflow.stores.badges import badge_key, held_badge

router = APIRouter(responses=V1_RESPONSES)

_STREAM_RESPONSES: dict[int | str, dict] = {
    200: {"content": {"text/event-stream": {}},
          "description": "`event: badge` with the badge JSON on each change, `: heartbeat` comments in between"}}


def _badge(user_id: str, unread: int, pending: int | None) -> dict:
    out: dict = {"user_id": user_id, "unread": unread}
    if pending is not None:
        out["pending_reviews"] = pending
    return out


def _event(badge: dict) -> bytes:
    return b"event: badge\ndata: " + orjson.dumps(badge) + b"\n\n"


async def _badge_and_rev(request: Request, user_id: str) -> tuple[dict, int]:
    """The badge held in Redis and its revision."""
    prefix = request.app.state.settings.redis_prefix
    unread, pending, rev = held_badge(await request.app.state.redis.hgetall(badge_key(prefix, user_id)))
    return _badge(user_id, unread, pending), rev


@router.get("/v1/notifications/{user_id}", response_model=models.Badge, tags=["notifications"],
            responses=VIEW_RESPONSES)
async def notifications(request: Request, who: Caller, user_id: UserId) -> Response:
    """A user's badge: unread notifications (and pending_reviews for mentors), one Redis read."""
    need(who.user(user_id), f"the counters of user {user_id}")
    return view_response(request, (await _badge_and_rev(request, user_id))[0])


async def _events(request: Request, user_id: str, broadcaster: Broadcaster,
                  queue: asyncio.Queue) -> AsyncIterator[bytes]:
    """The badge now, then each newer one the channel brings, with heartbeats between."""
    try:
        heartbeat = request.app.state.settings.sse_heartbeat_seconds
        # Subscribed before the read, so no change falls between them; the worker's script sets the
        # hash and publishes in one step, so revisions up to the one read are already in `now`.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(broadcaster.ready.wait(), 2)
        now, seen = await _badge_and_rev(request, user_id)
        yield _event(now)
        while True:
            try:
                data = await asyncio.wait_for(queue.get(), heartbeat)
            except TimeoutError:
                yield b": heartbeat\n\n"
                continue
            message = orjson.loads(data)
            rev = message.get("rev") or 0
            if rev and rev <= seen:
                continue  # older than what this client holds
            seen = max(seen, rev)
            yield _event(_badge(user_id, message["unread"], message.get("pending_reviews")))
    finally:
        broadcaster.unsubscribe(user_id, queue)


@router.get("/v1/notifications/{user_id}/stream", tags=["notifications"], responses=_STREAM_RESPONSES)
async def notifications_stream(request: Request, who: Caller, user_id: UserId) -> StreamingResponse:
    """Server-Sent Events: the badge now, then each change of it."""
    need(who.user(user_id), f"the counters of user {user_id}")
    broadcaster: Broadcaster = request.app.state.broadcaster
    queue = broadcaster.subscribe(user_id)
    return StreamingResponse(_events(request, user_id, broadcaster, queue), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
