"""The read API's response bodies, as documented in its OpenAPI."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    code: str = Field(description="machine-readable: unauthorized, forbidden, not_found, invalid_parameter, ...")
    message: str
    parameter: str | None = Field(None, description="the query or path parameter at fault, when one is")


class Error(BaseModel):
    error: ErrorDetail


class _Row(BaseModel):
    as_of: datetime | None = Field(description="greatest occurred_at among the events applied to the row")
    updated_at: datetime = Field(description="wall clock of the row's last change")


class Floor(_Row):
    campus: str
    floor: str
    students_total: int
    students_assigned: int
    students_unassigned: int
    mentors_total: int
    submissions_pending: int
    submissions_approved: int
    submissions_rejected: int
    pillar_completed: dict[str, int]
    pillar_progress: dict[str, float]
    avg_completion: float


class Mentor(_Row):
    mentor_id: str
    campus: str | None
    floor: str | None
    active: bool | None
    assigned_students: int
    pending_reviews: int
    reviews_completed: int
    approvals: int
    rejections: int
    approval_rate: float | None
    avg_review_seconds: float | None
    workload: Literal["low", "balanced", "overloaded"]
    last_active_at: datetime | None


class Day(_Row):
    date: date
    submissions: int
    reviews: int
    approvals: int
    rejections: int
    avg_review_seconds: float | None
    logins: int
    failed_logins: int
    active_users: int
    audit_events: int
    notifications_created: int
    students_total: int
    mentors_total: int


class Global(_Row):
    students_total: int
    mentors_total: int
    campuses: int
    floors: int
    unread_notifications: int


class _Page(BaseModel):
    as_of: datetime | None = Field(description="greatest as_of of the items")
    updated_at: datetime | None = Field(description="greatest updated_at of the items")


class FloorPage(_Page):
    items: list[Floor]
    next_cursor: str | None


class MentorPage(_Page):
    items: list[Mentor]
    next_cursor: str | None


class DayList(_Page):
    items: list[Day]


class Badge(BaseModel):
    user_id: str
    unread: int
    pending_reviews: int | None = Field(None, description="present for mentors")


class AuditRow(BaseModel):
    event_id: str
    occurred_at: datetime
    actor_id: str
    action: str
    entity_type: str
    entity_id: str
    metadata: dict | None
    source: str | None


class AuditPage(BaseModel):
    items: list[AuditRow]
    next_cursor: str | None


class PartitionFreshness(BaseModel):
    topic: str
    partition: int
    committed_offset: int
    end_offset: int | None
    lag: int | None
    committed_at: datetime


class ViewFreshness(BaseModel):
    as_of: datetime | None
    updated_at: datetime | None
    age_seconds: float | None = Field(description="seconds since the view last changed")


class Freshness(BaseModel):
    partitions: list[PartitionFreshness]
    total_lag: int | None
    views: dict[str, ViewFreshness]


class Check(BaseModel):
    status: Literal["ok", "degraded", "failed"]
    ms: float
    detail: str | None = None


class Health(BaseModel):
    status: Literal["healthy", "degraded", "unhealthy"]
    checks: dict[str, Check]
    response_ms: float


class Live(BaseModel):
    status: Literal["alive"]
