"""What an app holds while it runs: the PostgreSQL pool, Redis, the token checks, the badge fan-out, Kafka."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from fastapi import FastAPI

from cohortflow.api import db
from cohortflow.api.auth import RateLimiter, Tokens
from cohortflow.api.broadcast import Broadcaster
from cohortflow.api.offsets import EndOffsets
from cohortflow.settings import Settings
from cohortflow.stores.badges import badge_channel


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the shared resources on ``app.state`` for the app's life (its settings are there already)."""
    settings: Settings = app.state.settings
    state = app.state
    state.pool = db.pool(settings)
    await state.pool.open(wait=False)
    # A bounded pool that makes requests wait for a connection (a burst of SSE clients must not
    # open thousands), never fail for lack of one.
    state.redis = aioredis.Redis(connection_pool=aioredis.BlockingConnectionPool.from_url(
        settings.redis_connection_url, max_connections=64, timeout=5, socket_timeout=3,
        socket_connect_timeout=3))
    state.tokens = Tokens(settings.api_token_cache_seconds)
    state.limiter = RateLimiter(state.redis, settings.redis_prefix, settings.api_rate_limit,
                                settings.api_rate_window_seconds)
    state.broadcaster = Broadcaster(state.redis, badge_channel(settings.redis_prefix))
    state.kafka = EndOffsets(settings)
    try:
        yield
    finally:
        await state.broadcaster.close()
        await state.kafka.close()
        await state.redis.aclose()
        await state.pool.close()
