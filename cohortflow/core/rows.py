"""Row keys of the views: a tag naming the view, then the view's key.

``(FLOOR_TAG, campus, floor)`` is a floor_summary row, ``(MENTOR_TAG, mentor_id)`` a
mentor_summary row, ``(DAY_TAG, day)`` a global_daily row and ``GLOBAL`` the one
global_current row. The tags are one character (distinct from the entity kinds s/m/l/n/a of core.fold)
because millions of these tuples are built per second and they are the kernel's tags too (_kernel/effect.h).
"""

from __future__ import annotations

FLOOR_TAG = "F"
MENTOR_TAG = "M"
DAY_TAG = "D"
GLOBAL_TAG = "G"
GLOBAL: tuple[str] = (GLOBAL_TAG,)

VIEW_OF_TAG = {
    FLOOR_TAG: "floor_summary",
    MENTOR_TAG: "mentor_summary",
    DAY_TAG: "global_daily",
    GLOBAL_TAG: "global_current",
}
