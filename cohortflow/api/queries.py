"""The SQL of the read API, by name: every statement its routes send to PostgreSQL.

The views' names and columns are constants here; only values travel as parameters.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

FLOOR = "SELECT * FROM floor_summary WHERE campus = %s AND floor = %s"
MENTOR = "SELECT * FROM mentor_summary WHERE mentor_id = %s"
GLOBAL_CURRENT = "SELECT * FROM global_current"
# Parameters: from, from, to, to (either may be None: no bound).
GLOBAL_DAILY = ("SELECT * FROM global_daily WHERE (%s::date IS NULL OR date >= %s)"
                " AND (%s::date IS NULL OR date <= %s) ORDER BY date")

# Freshness: the worker's committed offsets, and the newest row of each view.
COMMITTED_OFFSETS = "SELECT topic, partition, next_offset, updated_at FROM consumer_offsets ORDER BY topic, partition"
VIEW_AGES = " UNION ALL ".join(
    f"SELECT '{v}' AS view, max(as_of) AS as_of, max(updated_at) AS updated_at FROM {v}"
    for v in ("floor_summary", "mentor_summary", "global_daily", "global_current"))

# Health: PostgreSQL answers with the views' schema (the probe), and the offsets the lag is measured from.
HEALTH_PROBE = "SELECT 1 FROM consumer_offsets LIMIT 1"
STORED_OFFSETS = "SELECT topic, partition, next_offset FROM consumer_offsets"
READY_PROBE = "SELECT 1"

# A floor-scoped token's rows: parameters are the campuses and the floors of its floors, in the same order.
_IN_FLOORS = "(campus, floor) IN (SELECT * FROM unnest(%s::text[], %s::text[]))"


@dataclass(frozen=True)
class Keyset:
    """A view read a page at a time in the order of its key, a page's last key the cursor of the next."""

    view: str
    key: tuple[str, ...]
    filters: tuple[str, ...]  # the columns a list may be filtered on (equality)

    def cursor(self, row: Mapping[str, str]) -> list[str]:
        """The key of ``row``: where the page after it starts."""
        return [row[k] for k in self.key]

    def page(self, filters: Mapping[str, object], after: Sequence[str] | None,
             floors: Collection[tuple[str, str]] | None, limit: int) -> tuple[str, list]:
        """The statement and parameters for up to ``limit`` + 1 rows (one over: is there a next page?).

        ``filters`` maps columns to values (None: no filter), ``after`` is a cursor's key, and
        ``floors`` restricts the rows to those floors (None: every floor).
        """
        where, params = ["true"], []
        for column, value in filters.items():
            if column not in self.filters:
                raise ValueError(f"{self.view}: no filter on {column!r}")
            if value is not None:
                where.append(f"{column} = %s")
                params.append(value)
        if after:
            columns, marks = ", ".join(self.key), ", ".join(["%s"] * len(self.key))
            where.append(f"({columns}) > ({marks})" if len(self.key) > 1 else f"{columns} > %s")
            params += after
        if floors is not None:
            where.append(_IN_FLOORS)
            params += [[c for c, _ in floors], [f for _, f in floors]]
        query = f"SELECT * FROM {self.view} WHERE {' AND '.join(where)} ORDER BY {', '.join(self.key)} LIMIT %s"
        return query, [*params, limit + 1]


FLOORS = Keyset("floor_summary", ("campus", "floor"), filters=("campus",))
MENTORS = Keyset("mentor_summary", ("mentor_id",), filters=("campus", "floor", "workload", "active"))
