"""The views held in memory: Effects applied to dicts, and the public columns derived from them.

It is the reference for what the PostgreSQL sink and its SQL views must
produce, used by the property tests and by ``validate``. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from cohortflow.contract.codec import DEFAULT_PILLARS
from cohortflow.core.clock import day_date, instant
from cohortflow.core.contributions import DAY_FIELDS, FLOOR_FIELDS, GLOBAL_FIELDS, MENTOR_FIELDS, Row, pillar_field
from cohortflow.core.fold import Effect
from cohortflow.core.rows import DAY_TAG, FLOOR_TAG, GLOBAL, MENTOR_TAG

ViewRows = dict[str, dict[Any, dict[str, Any]]]  # view name -> key -> column -> value


@dataclass(frozen=True)
class ViewConfig:
    pillars: tuple[str, ...] = DEFAULT_PILLARS
    workload_low_below: int = 5
    workload_overloaded_above: int = 20


def round_half_up(value: Decimal, places: int) -> Decimal:
    """PostgreSQL's ``round(numeric, places)``: half away from zero (values here are never negative)."""
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def percent(part: int, whole: int) -> Decimal:
    return round_half_up(Decimal(100 * part) / Decimal(whole), 2) if whole else Decimal("0.00")


def workload(pending: int, config: ViewConfig) -> str:
    if pending < config.workload_low_below:
        return "low"
    if pending > config.workload_overloaded_above:
        return "overloaded"
    return "balanced"


@dataclass
class MemoryViews:
    """Base rows (raw counts, as_of) keyed like the fold's rows."""

    rows: dict[Row, dict[str, int]] = field(default_factory=dict)
    named: set[Row] = field(default_factory=set)
    as_of: dict[Row, int] = field(default_factory=dict)
    mentor_self: dict[str, tuple[str | None, str | None, bool]] = field(default_factory=dict)
    activity: dict[str, dict[str, int]] = field(default_factory=dict)  # mentor -> contributor -> ts
    unread: dict[str, int] = field(default_factory=dict)

    def apply(self, effect: Effect) -> None:
        self.named |= effect.named
        for row, fields in effect.deltas.items():
            target = self.rows.setdefault(row, {})
            for name, delta in fields.items():
                target[name] = target.get(name, 0) + delta
        for row, ts in effect.as_of.items():
            if ts > self.as_of.get(row, -1 << 62):
                self.as_of[row] = ts
        self.mentor_self.update(effect.mentor_self)
        for (mentor_id, contributor), last in effect.activity.items():
            contributions = self.activity.setdefault(mentor_id, {})
            if last is None:
                contributions.pop(contributor, None)
            else:
                contributions[contributor] = last
        self.unread.update(effect.unread)

    def merge(self, other: MemoryViews) -> None:
        """Add the views folded from other entities (other partitions of the log) to these.

        Sound because every view row is a sum of per-entity contributions, with as_of
        a maximum, and every entity lives in one share: ``mentor_self``, ``unread``
        and each activity contributor come from exactly one side. So ``other`` is
        applied as one batch's Effect would be.
        """
        self.apply(Effect(
            deltas=other.rows, named=other.named, as_of=other.as_of, mentor_self=other.mentor_self,
            activity={(m, c): ts for m, contributions in other.activity.items() for c, ts in contributions.items()},
            unread=other.unread,
        ))

    def views(self, config: ViewConfig) -> ViewRows:
        """Every public view, as the contract names its columns (``updated_at`` excepted)."""
        out: ViewRows = {"floor_summary": {}, "mentor_summary": {}, "global_daily": {}, "global_current": {}}
        for row in sorted(r for r in self.named if r[0] == FLOOR_TAG):
            out["floor_summary"][(row[1], row[2])] = self._floor(row, config)
        for row in sorted(r for r in self.named if r[0] == MENTOR_TAG):
            out["mentor_summary"][row[1]] = self._mentor(row, config)
        students = mentors = 0
        for row in sorted(r for r in self.named if r[0] == DAY_TAG):
            counts = self.rows.get(row, {})
            students += counts.get("students_step", 0)
            mentors += counts.get("mentors_step", 0)
            day: dict[str, Any] = {
                name: counts.get(name, 0) for name in DAY_FIELDS if not name.endswith(("_step", "_us_sum"))
            }
            del day["review_count"]
            day["avg_review_seconds"] = _seconds(counts.get("review_us_sum", 0), counts.get("review_count", 0))
            day.update(students_total=students, mentors_total=mentors, as_of=_at(self.as_of.get(row)))
            out["global_daily"][day_date(row[1])] = day
        counts = self.rows.get(GLOBAL, {})
        floors = [r for r in self.named if r[0] == FLOOR_TAG]
        out["global_current"][None] = {
            **{name: counts.get(name, 0) for name in GLOBAL_FIELDS},
            "campuses": len({r[1] for r in floors}),
            "floors": len(floors),
            "as_of": _at(self.as_of.get(GLOBAL)),
        }
        return out

    def _floor(self, row: Row, config: ViewConfig) -> dict[str, Any]:
        counts = self.rows.get(row, {})
        values = {name: counts.get(name, 0) for name in FLOOR_FIELDS}
        total = values["students_total"]
        completed = {p: counts.get(pillar_field(p), 0) for p in config.pillars}
        return {
            **values,
            "students_unassigned": total - values["students_assigned"],
            "pillar_completed": completed,
            "pillar_progress": {p: percent(n, total) for p, n in completed.items()},
            "avg_completion": (
                percent(sum(completed.values()), len(config.pillars) * total) if total else Decimal("0.00")
            ),
            "as_of": _at(self.as_of.get(row)),
        }

    def _mentor(self, row: Row, config: ViewConfig) -> dict[str, Any]:
        counts = self.rows.get(row, {})
        values = {name: counts.get(name, 0) for name in MENTOR_FIELDS if name not in ("review_us_sum", "review_count")}
        campus, floor, active = self.mentor_self.get(row[1], (None, None, None))
        done = values["reviews_completed"]
        activity = self.activity.get(row[1])
        return {
            "campus": campus,
            "floor": floor,
            "active": active,
            **values,
            "approval_rate": round_half_up(Decimal(values["approvals"]) / done, 4) if done else None,
            "avg_review_seconds": _seconds(counts.get("review_us_sum", 0), counts.get("review_count", 0)),
            "workload": workload(values["pending_reviews"], config),
            "last_active_at": _at(max(activity.values())) if activity else None,
            "as_of": _at(self.as_of.get(row)),
        }


def _seconds(us_sum: int, count: int) -> Decimal | None:
    return round_half_up(Decimal(us_sum) / count / 1_000_000, 3) if count else None


def _at(us: int | None) -> datetime | None:
    return instant(us) if us is not None else None
