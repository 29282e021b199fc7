"""cohortflow.contract._timestamps: the compiled parse_occurred_at gives what the Python reference gives,
for any text."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cohortflow.contract import timestamps
from cohortflow.contract._timestamps import parse_occurred_at as native

reference = timestamps.reference_parse_occurred_at


def test_the_schemas_parser_is_the_compiled_one() -> None:
    assert timestamps.parse_occurred_at is native
    assert reference is not native


def same(text: str) -> None:
    expected, got = reference(text), native(text)
    assert got == expected, text
    if got is not None:
        assert got.tzinfo is UTC and expected.tzinfo is UTC


CASES = [
    "2026-11-23T10:15:30Z", "2026-11-23t10:15:30z", "2026-11-23 10:15:30Z", "2026-11-23T10:15:30.1Z",
    "2026-11-23T10:15:30.123456Z", "2026-11-23T10:15:30.1234567891Z", "2026-11-23T10:15:30.999999999+05:30",
    "2026-11-23T10:15:30-00:00", "2026-11-23T10:15:30+23:59", "2026-11-23T10:15:30+24:00", "2026-11-23T10:15:30+05:60",
    "2026-02-29T00:00:00Z", "2024-02-29T00:00:00Z", "2000-02-29T00:00:00Z", "1900-02-29T00:00:00Z",
    "2026-04-31T00:00:00Z", "2026-13-01T00:00:00Z", "2026-00-01T00:00:00Z", "2026-01-00T00:00:00Z",
    "2026-01-01T24:00:00Z", "2026-01-01T23:60:00Z", "2026-01-01T23:59:60Z", "0000-01-01T00:00:00Z",
    "0001-01-01T00:00:00Z", "0001-01-01T00:00:00+00:01", "0001-01-01T00:00:00-00:01", "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59-00:01", "9999-12-31T23:59:59+00:01", "2026-11-23T10:15:30", "2026-11-23T10:15:30.Z",
    "2026-11-23T10:15:30Z\n", " 2026-11-23T10:15:30Z", "2026-11-23T10:15Z", "20261123T101530Z",
    "2026-11-23T10:15:30+0530", "2026-11-23T10:15:30+05", "2026-11-23T10:15:30ZZ", "2026-11-23T10:15:30+05:30Z",
    "２０２６-11-23T10:15:30Z", "2026-11-23T10:15:30.１Z", "2026-11-23T10:15:30\u00e9", "", "Z",
    "1969-12-31T23:59:59.5Z", "1970-01-01T00:00:00+14:00", "2026-11-23X10:15:30Z", "2026/11/23T10:15:30Z",
]


@pytest.mark.parametrize("text", CASES)
def test_edge_cases(text: str) -> None:
    same(text)


def rfc3339ish() -> st.SearchStrategy[str]:
    """Texts near the shape: valid ones and ones a character or a field away from it."""
    two = st.integers(0, 99).map(lambda v: f"{v:02d}")
    frac = st.one_of(st.just(""), st.text("0123456789", min_size=0, max_size=12).map(lambda d: "." + d))
    offset = st.one_of(st.sampled_from(["Z", "z", "", "+", "-00:00"]),
                       st.tuples(st.sampled_from("+-"), two, two).map(lambda t: f"{t[0]}{t[1]}:{t[2]}"))
    valid = st.tuples(st.integers(0, 9999).map(lambda v: f"{v:04d}"), two, two, st.sampled_from("Tt X"), two, two, two,
                      frac, offset).map(lambda t: f"{t[0]}-{t[1]}-{t[2]}{t[3]}{t[4]}:{t[5]}:{t[6]}{t[7]}{t[8]}")
    mutated = st.tuples(valid, st.integers(0, 40), st.characters()).map(
        lambda t: t[0][:t[1]] + t[2] + t[0][t[1] + 1:])
    return st.one_of(valid, mutated, st.text(max_size=40))


@settings(max_examples=1500, deadline=None)
@given(rfc3339ish())
def test_any_text(text: str) -> None:
    same(text)


@settings(max_examples=500, deadline=None)
@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.timezones()))
def test_any_instant_in_any_zone(moment: datetime) -> None:
    for text in (moment.isoformat(), moment.isoformat(timespec="microseconds"), moment.isoformat(sep=" ")):
        if moment.utcoffset() is not None and moment.utcoffset().seconds % 60 == 0:
            same(text)


def test_refuses_what_is_not_a_str() -> None:
    with pytest.raises(TypeError, match="expected str"):
        native(b"2026-11-23T10:15:30Z")
