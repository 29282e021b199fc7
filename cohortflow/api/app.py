"""The read API: the views for dashboards, live badges, health and metrics, behind bearer tokens.

``create_app(settings)`` builds one app per settings (tests build one per isolated
stack). Every view response carries ``as_of`` and ``updated_at``, a strong
``ETag`` (304 on ``If-None-Match``) and ``Cache-Control: private, no-cache``, so
a private cache may keep a copy but must revalidate before serving it. Errors are
JSON ``{"error": {"code", "message", "parameter"}}``.

The routes live in :mod:`cohortflow.api.routes`, their SQL in :mod:`cohortflow.api.queries`, and
what the app holds while it runs (pool, Redis, tokens, Kafka) in :mod:`cohortflow.api.resources`.
"""

from fastapi import FastAPI

from cohortflow.api import errors, openapi
from cohortflow.api.metrics import Measure, Metrics
from cohortflow.api.resources import lifespan
from cohortflow.api.routes import ROUTERS
from cohortflow.settings import Settings

DESCRIPTION = ("Materialized analytics views of a learning platform, exactly once. Every /v1 route needs "
               "`Authorization: Bearer <token>` (see `cohortflow tokens`). Errors are "
               '`{"error": {"code", "message", "parameter"}}`.')


def create_app(settings: Settings) -> FastAPI:
    """The app for ``settings``: its routes, error bodies and metrics; its pool and clients open while it runs."""
    app = FastAPI(title="cohortflow read API", version="1", lifespan=lifespan, description=DESCRIPTION)
    app.state.settings = settings  # routes and the lifespan read it from the request's app
    app.state.metrics = Metrics()
    app.openapi = lambda: openapi.document(app)  # type: ignore[method-assign]
    errors.install(app)
    app.add_middleware(Measure, metrics=app.state.metrics)
    for router in ROUTERS:
        app.include_router(router)
    return app
