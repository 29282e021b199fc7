"""The API's routes, one router per concern, in the order the app includes them (and OpenAPI lists them)."""

from fastapi import APIRouter

from cohortflow.api.routes import audit, badges, dashboard, freshness, health, views

ROUTERS: tuple[APIRouter, ...] = (health.router, views.router, badges.router, audit.router, freshness.router,
                                  dashboard.router)
