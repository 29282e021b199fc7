"""cohortflow.core.rows: the view tags of row keys, the kernel's tags, and no clash with entity kinds."""

from __future__ import annotations

from pathlib import Path

from cohortflow.core import fold, rows


def test_view_tags_are_distinct_from_entity_kinds() -> None:
    # A row (MENTOR_TAG, id) and an entity key (MENTOR, id) once shared a name in core.fold: keep them apart.
    kinds = {fold.STUDENT, fold.MENTOR, fold.LOGINS, fold.INBOX, fold.ACTOR}
    assert not kinds & set(rows.VIEW_OF_TAG)
    assert rows.GLOBAL == (rows.GLOBAL_TAG,)
    assert set(rows.VIEW_OF_TAG.values()) == {"floor_summary", "mentor_summary", "global_daily", "global_current"}


def test_the_kernel_uses_the_same_tags() -> None:
    header = (Path(rows.__file__).parent / "_kernel" / "effect.h").read_text()
    for tag in rows.VIEW_OF_TAG:
        assert f"'{tag}'" in header, tag


def test_the_fold_tags_rows_with_the_view_tags() -> None:
    from tests.builders import at, ev

    effect = fold.Fold().apply([ev("mentor.joined", at(), mentor_id="men-1", campus="north", floor="F1")],
                               fold.State())
    assert {row[0] for row in effect.named} <= set(rows.VIEW_OF_TAG)
    assert (rows.MENTOR_TAG, "men-1") in effect.named
