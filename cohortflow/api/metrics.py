"""Prometheus metrics of one app: request counts and latency by route template, method and status."""

from __future__ import annotations

import os
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cohortflow.processes import MULTIPROC_DIR, summed_registry


class Metrics:
    """The app's own registry (tests build several apps in one process), and its two series.

    Under ``cohortflow api --workers N`` (:data:`~cohortflow.processes.MULTIPROC_DIR` set) the series are
    written to the processes' shared directory and :meth:`exposition` sums them over every process.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        shared = os.environ.get(MULTIPROC_DIR)
        self.exposed = summed_registry(shared) if shared else self.registry
        self.requests = Counter("cohortflow_api_requests", "API requests by route template, method and status",
                                ["route", "method", "status"], registry=self.registry)
        self.latency = Histogram("cohortflow_api_request_seconds", "API request latency by route template and status",
                                 ["route", "method", "status"], registry=self.registry,
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))

    def exposition(self) -> bytes:
        """The text of ``GET /metrics``: this app's series, or every API process's summed."""
        return generate_latest(self.exposed)

    def observe(self, scope: Scope, status: int, seconds: float) -> None:
        route: Any = scope.get("route")
        labels = (getattr(route, "path", "unmatched"), scope["method"], str(status))
        self.requests.labels(*labels).inc()
        self.latency.labels(*labels).observe(seconds)


class Measure:
    """Request counts and latency by route template and status (pure ASGI: no per-request task)."""

    def __init__(self, inner: ASGIApp, metrics: Metrics) -> None:
        self.inner = inner
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.inner(scope, receive, send)
        began = time.perf_counter()

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.metrics.observe(scope, message["status"], time.perf_counter() - began)
            await send(message)

        await self.inner(scope, receive, sending)
