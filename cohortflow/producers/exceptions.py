"""Errors of the producers package: what a publishing app can see, and what to do about it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cohortflow.errors import CohortflowError, IntegrityError, ServiceUnavailable

if TYPE_CHECKING:
    from cohortflow.contract import EventBase, Reason


class InvalidEvent(CohortflowError, ValueError):
    """An event the worker would reject; raised at the call site, nothing was published or enqueued.

    ``field`` is the dotted path of the offending field (``data.attempt``),
    ``reason`` the :class:`schemas.Reason` the worker would deadletter it for.
    """

    exit_code = 2

    def __init__(self, event_type: str, detail: str, field: str | None, reason: Reason | None) -> None:
        super().__init__(f"{event_type} not published: {detail}")
        self.event_type = event_type
        self.detail = detail
        self.field = field
        self.reason = reason


class PublishTimeout(ServiceUnavailable):
    """Kafka did not acknowledge within the publisher's timeout.

    The outcome is unknown: the record may still be written. Publishing the
    same event again (``exc.event``, same ``event_id``) is safe: the worker
    counts an event_id once.
    """

    def __init__(self, message: str, event: EventBase | None = None) -> None:
        super().__init__(message)
        self.event = event


class NotInTransaction(CohortflowError):
    """``enqueue`` was called on an autocommit connection outside a transaction: it would not be atomic."""

    exit_code = 2


class OutboxMissing(IntegrityError):
    """The relay found no outbox table where the settings say: install it first."""
