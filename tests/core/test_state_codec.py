"""Entity state survives the trip to PostgreSQL's bytes and back, exactly."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cohortflow.contract import DEFAULT_CONTRACT
from cohortflow.core import state_codec
from cohortflow.core.fold import Fold, State
from tests.strategies import valid_events


@settings(max_examples=200, deadline=None)
@given(st.lists(valid_events(DEFAULT_CONTRACT), max_size=40))
def test_every_entity_round_trips(events) -> None:
    state = State()
    Fold().apply(events, state)
    for (kind, entity_id), entity in state.entities.items():
        assert state_codec.decode(kind, entity_id, state_codec.encode(entity)) == entity
