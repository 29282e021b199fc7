"""The audit trail, newest first and keyset-paginated, for tokens with audit:read."""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from cohortflow.api import models
from cohortflow.api.access import Caller, need
from cohortflow.api.errors import ApiError
from cohortflow.api.openapi import V1_RESPONSES, VIEW_RESPONSES
from cohortflow.api.params import INTEGER, ISO_DATETIME, Cursor, Text
from cohortflow.api.responses import view_response
from cohortflow.stores import audit as trail

router = APIRouter(responses=V1_RESPONSES)

From = Annotated[datetime | None, Query(alias="from", description="inclusive, with offset"), ISO_DATETIME]
To = Annotated[datetime | None, Query(description="exclusive, with offset"), ISO_DATETIME]
AuditLimit = Annotated[int, Query(ge=1, le=1000, description="items per page (1-1000)"), INTEGER]


@router.get("/v1/audit", response_model=models.AuditPage, tags=["audit"], responses=VIEW_RESPONSES)
async def audit_log(request: Request, who: Caller, actor_id: Text = None, entity_type: Text = None,
                    entity_id: Text = None, action: Text = None, from_: From = None, to: To = None,
                    limit: AuditLimit = 100, cursor: Cursor = None) -> Response:
    """The audit trail newest first, keyset-paginated (scope audit:read)."""
    need("audit:read" in who.scopes, "the audit trail (needs audit:read)")
    flt = trail.AuditFilter(actor_id, entity_type, entity_id, action, from_, to)
    try:
        async with request.app.state.pool.connection() as conn:
            found = await trail.page(conn, request.app.state.settings.postgres_schema, flt, limit=limit,
                                     cursor=cursor)
    except trail.BadAuditQuery as exc:
        raise ApiError(400, "invalid_parameter", str(exc), exc.parameter) from None
    return view_response(request, {"items": found.rows, "next_cursor": found.next_cursor})
