"""Operations, open to load balancers and scrapers (no token): health, liveness, readiness, Prometheus metrics."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from cohortflow.api import models, queries

router = APIRouter()


def _elapsed_ms(began: float) -> float:
    return (time.perf_counter() - began) * 1000


async def _check(name: str, probe: Callable[[], Awaitable[Any]]) -> tuple[str, dict]:
    """``name`` and how its probe went within two seconds: ok with its answer, or failed with why."""
    began = time.perf_counter()
    try:
        detail = await asyncio.wait_for(probe(), 2)
        return name, {"status": "ok", "ms": _elapsed_ms(began), "detail": detail}
    except Exception as exc:  # noqa: BLE001 - any failure is the answer
        return name, {"status": "failed", "ms": _elapsed_ms(began), "detail": f"{type(exc).__name__}: {exc}"[:300]}


# The probes answer nothing (a check's detail is None when it passes), only whether they raise.
async def _postgres(state: Any, query: str) -> None:  # the app's state
    async with state.pool.connection(timeout=2) as conn:
        await conn.execute(query)


async def _redis(state: Any) -> None:
    await state.redis.ping()


async def _kafka(state: Any) -> None:
    await state.kafka.end_offsets()


async def _lag_check(state: Any) -> dict:  # the app's state
    """Records in Kafka the worker has not committed yet: ok, or degraded above the settings' bound."""
    began = time.perf_counter()
    ends = await state.kafka.end_offsets()
    async with state.pool.connection(timeout=2) as conn:
        cur = await conn.execute(queries.STORED_OFFSETS)
        stored = {(t, p): o for t, p, o in await cur.fetchall()}
    lag = sum(max(0, end - stored.get(tp, 0)) for tp, end in ends.items())
    bound = state.settings.api_lag_degraded
    return {"status": "ok" if lag <= bound else "degraded", "ms": _elapsed_ms(began),
            "detail": f"{lag} records behind (degraded above {bound})"}


@router.get("/health", response_model=models.Health, tags=["operations"],
            responses={503: {"model": models.Health, "description": "unhealthy: a service check failed"}})
async def health(request: Request) -> JSONResponse:
    """PostgreSQL, Redis, Kafka and lag: healthy (200), degraded (200: lag too high) or unhealthy (503)."""
    began = time.perf_counter()
    state = request.app.state
    checks = dict(await asyncio.gather(_check("postgresql", partial(_postgres, state, queries.HEALTH_PROBE)),
                                       _check("redis", partial(_redis, state)),
                                       _check("kafka", partial(_kafka, state))))
    status = "healthy" if all(c["status"] == "ok" for c in checks.values()) else "unhealthy"
    if status == "healthy":
        checks["lag"] = await _lag_check(state)
        status = "healthy" if checks["lag"]["status"] == "ok" else "degraded"
    body = {"status": status, "checks": checks, "response_ms": _elapsed_ms(began)}
    return JSONResponse(body, status_code=503 if status == "unhealthy" else 200, headers={"Cache-Control": "no-store"})


@router.get("/health/live", tags=["operations"], response_model=models.Live)
async def live() -> dict:
    """The process answers."""
    return {"status": "alive"}


@router.get("/health/ready", tags=["operations"], response_model=models.Health,
            responses={503: {"model": models.Health}})
async def ready(request: Request) -> JSONResponse:
    """PostgreSQL and Redis answer: this process can serve (200), or not (503)."""
    began = time.perf_counter()
    state = request.app.state
    checks = dict(await asyncio.gather(_check("postgresql", partial(_postgres, state, queries.READY_PROBE)),
                                       _check("redis", partial(_redis, state))))
    ok = all(c["status"] == "ok" for c in checks.values())
    return JSONResponse({"status": "healthy" if ok else "unhealthy", "checks": checks,
                         "response_ms": _elapsed_ms(began)}, status_code=200 if ok else 503)


@router.get("/metrics", tags=["operations"], response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def metrics(request: Request) -> Response:
    """Prometheus: request counts and latency histograms by route and status (over every `api --workers` process)."""
    return Response(request.app.state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
