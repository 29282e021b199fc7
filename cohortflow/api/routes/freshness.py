"""How far behind the views are: per partition, the worker's committed offset against Kafka's end; each view's age."""

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from cohortflow.api import models, queries
from cohortflow.api.access import Caller, need
from cohortflow.api.db import rows
from cohortflow.api.openapi import V1_RESPONSES, VIEW_RESPONSES
from cohortflow.api.responses import view_response

router = APIRouter(responses=V1_RESPONSES)

_NEVER = datetime(1970, 1, 1, tzinfo=UTC)  # committed_at of a partition the worker has not committed on


def partitions(committed: list[dict], ends: dict[tuple[str, int], int] | None) -> tuple[list[dict], int | None]:
    """Each partition's offsets and lag, and their total; lags unknown (None) when Kafka did not answer."""
    parts, total = [], 0 if ends is not None else None
    known = {(r["topic"], r["partition"]) for r in committed}
    for r in committed:
        end = ends.get((r["topic"], r["partition"])) if ends is not None else None
        lag = max(0, end - r["next_offset"]) if end is not None else None
        if total is not None and lag is not None:
            total += lag
        parts.append({"topic": r["topic"], "partition": r["partition"], "committed_offset": r["next_offset"],
                      "end_offset": end, "lag": lag, "committed_at": r["updated_at"]})
    # Partitions with records the worker never committed on are behind by all of them.
    for (topic, partition), end in sorted((ends or {}).items()):
        if (topic, partition) not in known and end > 0:
            total = (total or 0) + end
            parts.append({"topic": topic, "partition": partition, "committed_offset": 0, "end_offset": end,
                          "lag": end, "committed_at": _NEVER})
    return parts, total


def view_ages(ages: list[dict], now: datetime) -> dict[str, dict[str, Any]]:
    """Each view's newest as_of and updated_at, and the seconds since the latter."""
    return {a["view"]: {"as_of": a["as_of"], "updated_at": a["updated_at"],
                        "age_seconds": (now - a["updated_at"]).total_seconds() if a["updated_at"] else None}
            for a in ages}


@router.get("/v1/freshness", response_model=models.Freshness, tags=["operations"], responses=VIEW_RESPONSES)
async def freshness(request: Request, who: Caller) -> Response:
    """Per topic-partition committed offset and lag, and the age of each view."""
    need(who.all_views, "freshness (needs views:read)")
    committed = await rows(request, queries.COMMITTED_OFFSETS, [])
    try:
        ends = await request.app.state.kafka.end_offsets()
    except Exception:  # noqa: BLE001 - Kafka unreachable: the report says so with unknown lags, not a 5xx
        ends = None
    parts, total = partitions(committed, ends)
    ages = await rows(request, queries.VIEW_AGES, [])
    return view_response(request, {"partitions": parts, "total_lag": total,
                                   "views": view_ages(ages, datetime.now(UTC))})
