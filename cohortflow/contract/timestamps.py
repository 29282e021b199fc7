"""RFC 3339 timestamps as the contract wants them: offset mandatory, kept as UTC.

The shape is checked with a strict regex before any number is read, because
``datetime.fromisoformat`` also accepts forms RFC 3339 does not (no offset,
basic format ``20261123T101530Z``, minutes only, week dates).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Final

# One RFC 3339 date-time (section 5.6), ASCII digits only. Ranges a regex can
# check are checked here (no second 60: leap seconds cannot be represented in
# a datetime, so they are refused rather than silently moved); day-of-month
# against the month is left to datetime().
RFC3339_PATTERN: Final = (
    r"^[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
    r"[Tt ](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]+)?"
    r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])$"
)
"""The accepted shape, also usable as a JSON Schema ``pattern`` (ECMA 262 compatible)."""

_RFC3339: Final = re.compile(RFC3339_PATTERN)


def parse_occurred_at(text: str) -> datetime | None:
    """The UTC instant ``text`` names, or None when it is not an RFC 3339 date-time with offset.

    Accepts ``T``, ``t`` or a space between date and time, ``Z``/``z`` or
    ``±HH:MM`` (``-00:00`` is read as UTC). Fractions beyond microseconds are
    truncated, not rounded, so an instant never moves into the next second.
    Instants that fall outside years 1-9999 once moved to UTC are refused.
    """
    if _RFC3339.fullmatch(text) is None:  # fullmatch: a "$" alone would let a final newline through
        return None
    try:
        # Safe now that the shape is checked: fromisoformat (3.11) reads exactly these forms,
        # upper-cased, and truncates digits beyond microseconds.
        moment = datetime.fromisoformat(text.upper())
        return moment if moment.tzinfo is UTC else moment.astimezone(UTC)
    except (ValueError, OverflowError):  # 2026-02-30, or year 1 / 9999 pushed out of range by the offset
        return None


reference_parse_occurred_at: Final = parse_occurred_at
"""The Python parser: the reference the compiled one (``cohortflow.contract._timestamps``) is tested against."""

try:  # built by `pip install -e .` (make venv) where a C compiler is found; same results, several times cheaper
    from cohortflow.contract._timestamps import parse_occurred_at  # type: ignore[no-redef]
except ImportError:  # pragma: no cover - only where nothing could be compiled
    pass


def format_occurred_at(moment: datetime) -> str:
    """``moment`` (tz-aware) as RFC 3339 UTC with microseconds: ``2026-11-23T10:15:30.123000Z``."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
