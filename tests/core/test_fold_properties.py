"""Properties of the fold (Hypothesis): the views are a pure function of the set of events.

Folding any interleaving of partitions, with any duplication and any batch
boundaries, with restarts that reload the state from its stored bytes, gives
the views of folding the events once in order, and those of the independent
batch recomputation in tests/oracle.py.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cohortflow.contract import DEFAULT_CONTRACT
from cohortflow.core import state_codec
from cohortflow.core.fold import Fold, State
from cohortflow.core.memory import MemoryViews, ViewConfig
from tests import oracle
from tests.strategies import adversarial_events, partitionings

CONFIG = ViewConfig()
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def fold_batches(batches, restart_after: set[int] = frozenset()) -> MemoryViews:
    state, views, folder = State(), MemoryViews(), Fold()
    for i, batch in enumerate(batches):
        views.apply(folder.apply(batch, state))
        if i in restart_after:
            state = reloaded(state)
    return views


def reloaded(state: State) -> State:
    """A worker restarting: only the stored bytes of each entity survive; contributions are rebuilt."""
    fresh = State()
    for (kind, entity_id), entity in state.entities.items():
        fresh.entities[(kind, entity_id)] = state_codec.decode(kind, entity_id, state_codec.encode(entity))
    return fresh


def badges(views: MemoryViews, rows) -> dict[str, dict[str, int]]:
    out = {user: {"unread": n} for user, n in views.unread.items()}
    for mentor_id, row in rows["mentor_summary"].items():
        out.setdefault(mentor_id, {"unread": 0})["pending_reviews"] = row["pending_reviews"]
    return out


@PROPERTY
@given(st.data(), adversarial_events(DEFAULT_CONTRACT))
def test_any_interleaving_duplication_and_batching_gives_the_oracle_views(data, events) -> None:
    batches = data.draw(partitionings(events))
    restarts = data.draw(st.sets(st.integers(0, max(0, len(batches) - 1))))
    views = fold_batches(batches, restarts)
    once = fold_batches([events])
    got = views.views(CONFIG)
    assert got == once.views(CONFIG)
    assert got == oracle.recompute(events)


@PROPERTY
@given(adversarial_events(DEFAULT_CONTRACT))
def test_badges_equal_the_oracle(events) -> None:
    views = fold_batches([[e] for e in events])
    rows = views.views(CONFIG)
    mine = {u: b for u, b in badges(views, rows).items() if b != {"unread": 0}}
    theirs = {u: b for u, b in oracle.badges(events).items() if b != {"unread": 0}}
    assert mine == theirs


@PROPERTY
@given(adversarial_events(DEFAULT_CONTRACT, max_size=40), st.randoms(use_true_random=False))
def test_replaying_everything_again_changes_nothing(events, rnd) -> None:
    state, views, folder = State(), MemoryViews(), Fold()
    views.apply(folder.apply(events, state))
    before = views.views(CONFIG)
    again = list(events)
    rnd.shuffle(again)
    effect = folder.apply(again, state)
    assert not effect.deltas and not effect.changed and not effect.activity and not effect.unread
    views.apply(effect)
    assert views.views(CONFIG) == before


@PROPERTY
@given(adversarial_events(DEFAULT_CONTRACT, max_size=40))
def test_effects_name_every_row_they_change(events) -> None:
    state, views, folder = State(), MemoryViews(), Fold()
    for event in events:
        effect = folder.apply([event], state)
        views.apply(effect)
        for row in effect.deltas:
            # A row gets counts only once it is named (floors and days) or may stay hidden (mentors).
            assert row[0] in ("M", "G") or row in views.named, row


@PROPERTY
@given(adversarial_events(DEFAULT_CONTRACT), st.integers(2, 5))
def test_folding_shares_of_the_partitions_apart_and_merging_gives_the_same_views(events, shares) -> None:
    """What `rebuild` relies on to fold in several processes: each entity's events sit in one partition number."""
    from cohortflow.core.fold import entity_key
    from cohortflow.pipeline.processor import shard_of

    parts = [[e for e in events if shard_of(entity_key(e)[1], shares) == i] for i in range(shares)]
    merged = MemoryViews()
    for part in parts:
        merged.merge(fold_batches([part]))
    whole = fold_batches([events])
    assert merged.views(CONFIG) == whole.views(CONFIG)
    assert merged.unread == whole.unread


@PROPERTY
@given(st.data(), adversarial_events(DEFAULT_CONTRACT))
def test_a_batch_folded_in_chunks_into_one_effect_gives_the_views_of_folding_it_whole(data, events) -> None:
    """What the worker relies on to fold a large batch in cache-sized chunks and commit it once."""
    before, batch = data.draw(st.integers(0, len(events)).map(lambda cut: (events[:cut], events[cut:])))
    chunks = data.draw(partitionings(batch))
    state, views, folder = State(), MemoryViews(), Fold()
    views.apply(folder.apply(before, state))
    effect = folder.apply([], state)
    for chunk in chunks:
        assert folder.apply(chunk, state, effect) is effect
    whole_state, whole = State(), MemoryViews()
    whole.apply(folder.apply(before, whole_state))
    whole_effect = folder.apply(batch, whole_state)
    assert effect.changed == whole_effect.changed
    # Badges are absolute: an inbox whose count moved and moved back may be written again, with its count.
    assert whole_effect.unread.items() <= effect.unread.items()
    assert all(n == state.entities[("n", u)].unread for u, n in effect.unread.items())
    views.apply(effect)
    whole.apply(whole_effect)
    assert views.views(CONFIG) == whole.views(CONFIG) == oracle.recompute(events)
    assert views.unread == whole.unread
