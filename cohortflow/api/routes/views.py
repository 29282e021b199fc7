"""The views: floor and mentor summaries (keyset-paginated lists and single rows), the global views."""

from collections.abc import Mapping
from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from cohortflow.api import models, queries
from cohortflow.api.access import Caller, need
from cohortflow.api.auth import Principal
from cohortflow.api.db import rows
from cohortflow.api.errors import ApiError
from cohortflow.api.openapi import NOT_FOUND, V1_RESPONSES, VIEW_RESPONSES
from cohortflow.api.params import BOOLEAN, ISO_DATE, Cursor, Limit, Name, Text
from cohortflow.api.responses import decode_cursor, items_response, page_response, view_response

router = APIRouter(responses=V1_RESPONSES)


async def _keyset_page(request: Request, who: Principal, keyset: queries.Keyset, what: str,
                       filters: Mapping[str, object], limit: int, cursor: str | None) -> Response:
    """One page of ``keyset``'s view after ``cursor``; a floor-scoped token's floors only."""
    after = decode_cursor(cursor, len(keyset.key))
    if not who.all_views and not who.floors:
        need(False, what)
    query, params = keyset.page(filters, after, None if who.all_views else who.floors, limit)
    return page_response(request, await rows(request, query, params), limit, keyset.cursor)


@router.get("/v1/floors", response_model=models.FloorPage, tags=["views"], responses=VIEW_RESPONSES)
async def floors(request: Request, who: Caller, campus: Text = None, limit: Limit = 100,
                 cursor: Cursor = None) -> Response:
    """Floor summaries in (campus, floor) order; a floor-scoped token sees its floors only."""
    return await _keyset_page(request, who, queries.FLOORS, "floors", {"campus": campus}, limit, cursor)


@router.get("/v1/floors/{campus}/{floor}", response_model=models.Floor, tags=["views"],
            responses={**VIEW_RESPONSES, **NOT_FOUND})
async def floor(request: Request, who: Caller, campus: Name, floor: Name) -> Response:
    """One floor's summary."""
    need(who.floor(campus, floor), f"floor {campus}/{floor}")
    found = await rows(request, queries.FLOOR, [campus, floor])
    if not found:
        raise ApiError(404, "not_found", f"floor {campus}/{floor}: no such floor in the views", "floor")
    return view_response(request, found[0])


@router.get("/v1/mentors", response_model=models.MentorPage, tags=["views"], responses=VIEW_RESPONSES)
async def mentors(request: Request, who: Caller, campus: Text = None, floor: Text = None,
                  workload: Literal["low", "balanced", "overloaded"] | None = None,
                  active: Annotated[bool | None, Query(), BOOLEAN] = None, limit: Limit = 100,
                  cursor: Cursor = None) -> Response:
    """Mentor summaries in mentor_id order; a floor-scoped token sees the mentors of its floors."""
    filters = {"campus": campus, "floor": floor, "workload": workload, "active": active}
    return await _keyset_page(request, who, queries.MENTORS, "mentors", filters, limit, cursor)


@router.get("/v1/mentors/{mentor_id}", response_model=models.Mentor, tags=["views"],
            responses={**VIEW_RESPONSES, **NOT_FOUND})
async def mentor(request: Request, who: Caller, mentor_id: Name) -> Response:
    """One mentor's summary."""
    if not who.all_views and not who.floors:
        need(False, f"mentor {mentor_id}")
    found = await rows(request, queries.MENTOR, [mentor_id])
    if found:
        need(who.floor(found[0]["campus"], found[0]["floor"]), f"mentor {mentor_id}")
        return view_response(request, found[0])
    need(who.all_views, f"mentor {mentor_id}")  # no existence oracle for narrower tokens
    raise ApiError(404, "not_found", f"mentor {mentor_id}: no such mentor in the views", "mentor_id")


@router.get("/v1/global", response_model=models.Global, tags=["views"], responses={**VIEW_RESPONSES, **NOT_FOUND})
async def global_current(request: Request, who: Caller) -> Response:
    """The whole platform now (global_current)."""
    need(who.all_views, "the global views (needs views:read)")
    found = await rows(request, queries.GLOBAL_CURRENT, [])
    if not found:
        raise ApiError(404, "not_found", "global_current: no event applied yet")
    return view_response(request, found[0])


FromDate = Annotated[date | None, Query(alias="from", description="first date, inclusive"), ISO_DATE]
ToDate = Annotated[date | None, Query(description="last date, inclusive"), ISO_DATE]


@router.get("/v1/global/daily", response_model=models.DayList, tags=["views"], responses=VIEW_RESPONSES)
async def global_daily(request: Request, who: Caller, from_: FromDate = None, to: ToDate = None) -> Response:
    """One row per UTC date (global_daily), oldest first."""
    need(who.all_views, "the global views (needs views:read)")
    if from_ is not None and to is not None and from_ > to:
        raise ApiError(400, "invalid_parameter", "from: must not be after to", "from")
    if from_ is not None and to is not None and (to - from_).days > 3660:
        raise ApiError(400, "invalid_parameter", "to: at most 10 years after from", "to")
    found = await rows(request, queries.GLOBAL_DAILY, [from_, from_, to, to])
    return items_response(request, found)
