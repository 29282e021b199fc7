"""Event time as integer microseconds since the Unix epoch (UTC): exact, cheap to compare and to sum."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
US_PER_DAY = 86_400_000_000
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def micros(moment: datetime) -> int:
    """``moment`` (tz-aware) in microseconds since the epoch."""
    return (moment - EPOCH) // _US


def instant(us: int) -> datetime:
    """The UTC datetime of ``us`` microseconds since the epoch."""
    return EPOCH + timedelta(microseconds=us)


def day_of(us: int) -> int:
    """The UTC day number (days since 1970-01-01) of an instant."""
    return us // US_PER_DAY


def day_date(day: int) -> date:
    """The calendar date of a day number."""
    return date.fromordinal(_EPOCH_ORDINAL + day)


def date_day(value: date) -> int:
    """The day number of a calendar date."""
    return value.toordinal() - _EPOCH_ORDINAL
