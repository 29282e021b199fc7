"""Small builders for hand-written event logs in view tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count

from cohortflow.contract import EVENT_CLASSES
from cohortflow.contract.events import EventBase

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
_ids = count()


def at(minutes: float = 0, days: int = 0) -> datetime:
    return T0 + timedelta(days=days, minutes=minutes)


def ev(event_type: str, when: datetime, event_id: str | None = None, **data: object) -> EventBase:
    """One valid event; ``event_id`` defaults to a fresh one."""
    return EVENT_CLASSES[event_type](event_id=event_id or f"ev-{next(_ids):06d}", occurred_at=when, data=data)
