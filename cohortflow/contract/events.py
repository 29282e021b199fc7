"""The events of the contract (sections 1 and 2) as frozen pydantic models.

One model per event type, each with its own ``data`` model whose fields are
exactly the contract's. Validation is strict: strings must be ``str``, ints
must be ``int`` (never ``bool``, ``float`` or ``"2"``), ids are non-empty.
Unknown extra fields are ignored. Pillars are configurable, so their check
lives in the codec (:func:`cohortflow.contract.codec.decode`), not here.

Serialisation is not a method of the models: see :mod:`cohortflow.contract.codec`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, JsonValue

from cohortflow.contract.topics import Topic


def _as_utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is UTC else moment.astimezone(UTC)


def _exactly_one(value: object) -> object:
    # Literal[1] alone lets True and 1.0 through (they compare equal to 1).
    if type(value) is not int:
        raise ValueError("schema_version must be the integer 1")
    return value


Id = Annotated[str, Field(min_length=1)]
"""An entity id: a non-empty string."""

UtcDatetime = Annotated[AwareDatetime, AfterValidator(_as_utc)]
"""A tz-aware instant, stored in UTC."""

Attempt = Annotated[int, Field(ge=1)]
"""1 for the first submission, 2 and up for resubmissions after a rejection."""


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, strict=True, extra="ignore")


# --- data ----------------------------------------------------------------------------------


class _StudentPlacement(_Strict):
    student_id: Id
    campus: str
    floor: str


class StudentEnrolledData(_StudentPlacement):
    """The student, now active, and the floor it joins."""


class StudentTransferredData(_StudentPlacement):
    """The student and the floor it moves to."""


class StudentWithdrawnData(_Strict):
    """The student, now inactive."""

    student_id: Id


class StudentAssignedData(_Strict):
    """The student and its mentor; ``mentor_id`` null (but present) unassigns it."""

    student_id: Id
    mentor_id: Id | None


class _MentorPlacement(_Strict):
    mentor_id: Id
    campus: str
    floor: str


class MentorJoinedData(_MentorPlacement):
    """The mentor, now active, and its floor."""


class MentorTransferredData(_MentorPlacement):
    """The mentor and the floor it moves to."""


class MentorLeftData(_Strict):
    """The mentor, now inactive."""

    mentor_id: Id


class SubmissionSubmittedData(_Strict):
    """One attempt of an activity submission in one pillar."""

    submission_id: Id
    student_id: Id
    pillar: str
    attempt: Attempt


class ReviewCompletedData(_Strict):
    """A mentor's decision on one attempt of a submission."""

    review_id: Id
    submission_id: Id
    student_id: Id
    mentor_id: Id
    attempt: Attempt
    decision: Literal["approved", "rejected"]


class LoginSucceededData(_Strict):
    """A user (student, mentor or admin) signed in."""

    user_id: Id
    role: Literal["student", "mentor", "admin"]


class LoginFailedData(_Strict):
    """A sign-in of ``user_id`` was refused, and why."""

    user_id: Id
    reason: str


class AuditRecordedData(_Strict):
    """An action of ``actor_id`` on an entity; ``metadata`` null means absent."""

    actor_id: Id
    action: str
    entity_type: str
    entity_id: Id
    metadata: dict[str, JsonValue] | None = None


class NotificationCreatedData(_Strict):
    """A new, unread notification for a user."""

    notification_id: Id
    user_id: Id
    kind: str


class NotificationReadData(_Strict):
    """One notification was read."""

    notification_id: Id
    user_id: Id


class NotificationReadAllData(_Strict):
    """Every notification of the user created up to this instant was read."""

    user_id: Id


# --- events --------------------------------------------------------------------------------


class EventBase(_Strict):
    """The envelope every event shares (contract section 1).

    Subclasses set ``TOPIC`` (where the type may be published), ``KEY_FIELD``
    (the data field that is the record key), a ``type`` literal and ``data``.
    """

    TOPIC: ClassVar[Topic]
    KEY_FIELD: ClassVar[str]

    event_id: Annotated[str, Field(min_length=1, max_length=128)]
    schema_version: Annotated[Literal[1], BeforeValidator(_exactly_one)] = 1
    occurred_at: UtcDatetime
    source: str | None = None

    @property
    def key(self) -> str:
        """The entity id this event's record is keyed by."""
        return getattr(self.data, self.KEY_FIELD)  # type: ignore[attr-defined]


class StudentEnrolled(EventBase):
    """``student.enrolled``: a student becomes active on a floor."""

    TOPIC: ClassVar[Topic] = Topic.ROSTER
    KEY_FIELD: ClassVar[str] = "student_id"
    type: Literal["student.enrolled"] = "student.enrolled"
    data: StudentEnrolledData


class StudentTransferred(EventBase):
    """``student.transferred``: a student moves to another floor."""

    TOPIC: ClassVar[Topic] = Topic.ROSTER
    KEY_FIELD: ClassVar[str] = "student_id"
    type: Literal["student.transferred"] = "student.transferred"
    data: StudentTransferredData


class StudentWithdrawn(EventBase):
    """``student.withdrawn``: a student becomes inactive."""

    TOPIC: ClassVar[Topic] = Topic.ROSTER
    KEY_FIELD: ClassVar[str] = "student_id"
    type: Literal["student.withdrawn"] = "student.withdrawn"
    data: StudentWithdrawnData


class StudentAssigned(EventBase):
    """``student.assigned``: a student gets a mentor (or none)."""

    TOPIC: ClassVar[Topic] = Topic.ROSTER
    KEY_FIELD: ClassVar[str] = "student_id"
    type: Literal["student.assigned"] = "student.assigned"
    data: StudentAssignedData


class MentorJoined(EventBase):
    """``mentor.joined``: a mentor becomes active on a floor."""

    TOPIC: ClassVar[Topic] = Topic.ROSTER
    KEY_FIELD: ClassVar[str] = "mentor_id"
    type: Literal["mentor.joined"] = "mentor.joined"
    data: MentorJoinedData


class MentorTransferred(EventBase):
    """``mentor.transferred``: a mentor moves to another floor."""

    TOPIC: ClassVar[Topic] = Topic.ROSTER
    KEY_FIELD: ClassVar[str] = "mentor_id"
    type: Literal["mentor.transferred"] = "mentor.transferred"
    data: MentorTransferredData


class MentorLeft(EventBase):
    """``mentor.left``: a mentor becomes inactive."""

    TOPIC: ClassVar[Topic] = Topic.ROSTER
    KEY_FIELD: ClassVar[str] = "mentor_id"
    type: Literal["mentor.left"] = "mentor.left"
    data: MentorLeftData


class SubmissionSubmitted(EventBase):
    """``submission.submitted``: a student submits (or resubmits) an activity."""

    TOPIC: ClassVar[Topic] = Topic.SUBMISSIONS
    KEY_FIELD: ClassVar[str] = "student_id"
    type: Literal["submission.submitted"] = "submission.submitted"
    data: SubmissionSubmittedData


class ReviewCompleted(EventBase):
    """``review.completed``: a mentor approves or rejects one attempt."""

    TOPIC: ClassVar[Topic] = Topic.REVIEWS
    KEY_FIELD: ClassVar[str] = "student_id"
    type: Literal["review.completed"] = "review.completed"
    data: ReviewCompletedData


class LoginSucceeded(EventBase):
    """``login.succeeded``."""

    TOPIC: ClassVar[Topic] = Topic.LOGINS
    KEY_FIELD: ClassVar[str] = "user_id"
    type: Literal["login.succeeded"] = "login.succeeded"
    data: LoginSucceededData


class LoginFailed(EventBase):
    """``login.failed``."""

    TOPIC: ClassVar[Topic] = Topic.LOGINS
    KEY_FIELD: ClassVar[str] = "user_id"
    type: Literal["login.failed"] = "login.failed"
    data: LoginFailedData


class AuditRecorded(EventBase):
    """``audit.recorded``: one entry of the audit trail."""

    TOPIC: ClassVar[Topic] = Topic.AUDIT
    KEY_FIELD: ClassVar[str] = "actor_id"
    type: Literal["audit.recorded"] = "audit.recorded"
    data: AuditRecordedData


class NotificationCreated(EventBase):
    """``notification.created``."""

    TOPIC: ClassVar[Topic] = Topic.NOTIFICATIONS
    KEY_FIELD: ClassVar[str] = "user_id"
    type: Literal["notification.created"] = "notification.created"
    data: NotificationCreatedData


class NotificationRead(EventBase):
    """``notification.read``."""

    TOPIC: ClassVar[Topic] = Topic.NOTIFICATIONS
    KEY_FIELD: ClassVar[str] = "user_id"
    type: Literal["notification.read"] = "notification.read"
    data: NotificationReadData


class NotificationReadAll(EventBase):
    """``notification.read_all``."""

    TOPIC: ClassVar[Topic] = Topic.NOTIFICATIONS
    KEY_FIELD: ClassVar[str] = "user_id"
    type: Literal["notification.read_all"] = "notification.read_all"
    data: NotificationReadAllData


Event = (
    StudentEnrolled
    | StudentTransferred
    | StudentWithdrawn
    | StudentAssigned
    | MentorJoined
    | MentorTransferred
    | MentorLeft
    | SubmissionSubmitted
    | ReviewCompleted
    | LoginSucceeded
    | LoginFailed
    | AuditRecorded
    | NotificationCreated
    | NotificationRead
    | NotificationReadAll
)
"""Any event of the contract; narrow it with ``isinstance`` or ``match``."""

EVENT_CLASSES: Mapping[str, type[EventBase]] = MappingProxyType(
    {cls.model_fields["type"].default: cls for cls in Event.__args__}
)
"""Event type string -> its model."""
