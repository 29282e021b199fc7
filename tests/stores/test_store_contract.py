"""The store port's contract (cohortflow.stores.port), held by the in-memory and the PostgreSQL view store alike.

Every test runs twice: against :class:`~cohortflow.stores.in_memory.InMemoryViews` and against
:class:`~cohortflow.stores.sink.PostgresViews` on the real PostgreSQL (a schema of its own). What the
processor's unit tests (tests/pipeline/test_batch_processor.py) show with the first holds with the second.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

import pytest

from cohortflow.core import state_codec
from cohortflow.core.fold import Effect, Fold, FoldConfig, State, entity_key
from cohortflow.core.memory import ViewConfig
from cohortflow.errors import IntegrityError
from cohortflow.stores import queries
from cohortflow.stores.in_memory import InMemoryViews
from cohortflow.stores.port import BadgeUpdate, Commit, FenceConflict, ViewStore
from tests import oracle
from tests.builders import at, ev
from tests.logs import adversarial_log, valid_events
from tests.pipeline.harness import compare

TP = ("cohort.roster", 0)


class Backend:
    """A view store and how to read its views (not part of the port: the read API's business)."""

    def __init__(self, store: ViewStore, read_views) -> None:  # a callable
        self.store = store
        self.read_views = read_views


@pytest.fixture(params=["memory", "postgres"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    if request.param == "memory":
        memory = InMemoryViews()
        yield Backend(memory, lambda: memory.views(ViewConfig()))
        return
    from cohortflow.stores.migrate import migrate
    from cohortflow.stores.postgres import connect
    from cohortflow.stores.sink import PostgresViews, pool

    settings = request.getfixturevalue("stack_settings")
    migrate(settings)
    connections = pool(settings, staging=True)
    await connections.open(wait=True, timeout=15)
    store = PostgresViews(connections)
    await store.ensure_config(settings.pillars, 5, 20)

    def read_views() -> dict:
        with connect(settings) as conn:
            return queries.snapshot(conn)

    try:
        yield Backend(store, read_views)
    finally:
        await connections.close()


def batch(events: Iterable, state: State | None = None) -> tuple[Effect, State]:
    state = state or State()
    events = list(events)
    return Fold(FoldConfig()).apply(events, state), state


def states(state: State, keys: Iterable) -> dict:
    return {key: (0, state_codec.encode(state.entities[key])) for key in keys}


async def commit_comparing(backend: Backend, batches: list[list]) -> None:
    """Commit each batch in turn; after each, the views equal the recomputation of every event so far."""
    state, fold, done = State(), Fold(FoldConfig()), []
    for number, events in enumerate(batches):
        effect = fold.apply(events, state)
        done += events
        keys = {entity_key(e) for e in events}
        await backend.store.commit(effect, Commit(states(state, keys), {0: number}, {}))
        problems = compare(backend.read_views(), oracle.recompute(done))
        assert not problems, f"after batch {number + 1}: " + "\n".join(problems[:10])


async def test_offsets_are_compare_and_set(backend: Backend) -> None:
    store = backend.store
    assert await store.offsets([TP]) == {}
    await store.commit(Effect(), Commit({}, {}, {TP: (None, 5)}))
    assert await store.offsets([TP, ("cohort.roster", 1)]) == {TP: 5}
    for stale in [(None, 9), (3, 9), (6, 9)]:  # none stored, or another than the stored one
        with pytest.raises(FenceConflict):
            await store.commit(Effect(), Commit({}, {}, {TP: stale}))
    await store.commit(Effect(), Commit({}, {}, {TP: (5, 9)}))
    assert await store.offsets([TP]) == {TP: 9}


async def test_a_shard_fence_moves_one_up_per_commit_and_refuses_the_version_it_left(backend: Backend) -> None:
    store = backend.store
    assert await store.fences([0, 1]) == {}
    await store.commit(Effect(), Commit({}, {0: 0, 1: 0}, {}))
    assert await store.fences([0, 1, 2]) == {0: 1, 1: 1}
    with pytest.raises(FenceConflict):
        await store.commit(Effect(), Commit({}, {0: 1, 1: 0}, {}))
    await store.commit(Effect(), Commit({}, {0: 1}, {}))
    assert await store.fences([0, 1]) == {0: 2, 1: 1}


async def test_a_refused_commit_writes_nothing(backend: Backend) -> None:
    store = backend.store
    await store.commit(Effect(), Commit({}, {0: 0}, {TP: (None, 1)}))
    before = backend.read_views()
    effect, state = batch([
        ev("student.enrolled", at(), student_id="stu-1", campus="north", floor="F1"),
        ev("notification.created", at(1), notification_id="n-1", user_id="stu-1", kind="review"),
    ])
    key = ("s", "stu-1")
    for refused in [Commit(states(state, [key]), {0: 0}, {TP: (1, 2)}),  # a fence another commit moved
                    Commit(states(state, [key]), {0: 1}, {TP: (0, 2)})]:  # an offset another commit moved
        with pytest.raises(FenceConflict):
            await store.commit(effect, refused)
    assert await store.entities([key]) == ({}, {})
    assert await store.offsets([TP]) == {TP: 1} and await store.fences([0]) == {0: 1}
    assert await store.badges() == []
    assert backend.read_views() == before


async def test_states_and_tails_come_back_in_order_and_a_written_state_drops_its_tail(backend: Backend) -> None:
    store = backend.store
    a, b = ("s", "stu-a"), ("m", "men-b")
    await store.commit(Effect(), Commit({a: (0, b"state a")}, {}, {}, {b: (0, [("roster", b"1"), ("roster", b"2")])}))
    await store.commit(Effect(), Commit({}, {}, {}, {b: (2, [("reviews", b"3")])}))
    assert await store.entities([a, b, ("s", "nobody")]) == (
        {a: b"state a"}, {b: [("roster", b"1"), ("roster", b"2"), ("reviews", b"3")]})
    await store.commit(Effect(), Commit({b: (1, b"state b")}, {}, {}))
    assert await store.entities([a, b]) == ({a: b"state a", b: b"state b"}, {})


async def test_a_tail_event_stored_twice_is_refused_as_bad_data(backend: Backend) -> None:
    store = backend.store
    key = ("s", "stu-a")
    await store.commit(Effect(), Commit({}, {}, {TP: (None, 1)}, {key: (0, [("roster", b"1")])}))
    with pytest.raises(IntegrityError):
        await store.commit(Effect(), Commit({}, {}, {TP: (1, 2)}, {key: (0, [("roster", b"again")])}))
    assert await store.entities([key]) == ({}, {key: [("roster", b"1")]})
    assert await store.offsets([TP]) == {TP: 1}


async def test_badges_change_with_a_revision_only_when_a_value_does(backend: Backend) -> None:
    store = backend.store
    effect, state = batch([
        ev("mentor.joined", at(), mentor_id="men-1", campus="north", floor="F1"),
        ev("student.enrolled", at(), student_id="stu-1", campus="north", floor="F1"),
        ev("student.assigned", at(1), student_id="stu-1", mentor_id="men-1"),
        ev("notification.created", at(2), notification_id="n-1", user_id="stu-1", kind="review"),
    ])
    got = sorted(await store.commit(effect, Commit({}, {}, {})), key=lambda b: b.user_id)
    assert got == [BadgeUpdate("men-1", 0, 0, 1), BadgeUpdate("stu-1", 1, None, 1)]
    # A submission waiting for review moves the mentor's badge; the student's unread stays: no update for it.
    effect, _ = batch([ev("submission.submitted", at(3), student_id="stu-1", submission_id="sub-1",
                          pillar="clt", attempt=1)], state)
    assert await store.commit(effect, Commit({}, {}, {})) == [BadgeUpdate("men-1", 0, 1, 2)]
    again, _ = batch([ev("notification.created", at(2), notification_id="n-1", user_id="stu-1", kind="review")],
                     state)  # a re-sent event: nothing changes
    assert await store.commit(again, Commit({}, {}, {})) == []
    assert await store.badges() == [BadgeUpdate("men-1", 0, 1, 2), BadgeUpdate("stu-1", 1, None, 1)]
    assert await store.badges(after="men-1", limit=5) == [BadgeUpdate("stu-1", 1, None, 1)]
    assert await store.badges(limit=1) == [BadgeUpdate("men-1", 0, 1, 2)]


async def test_the_views_of_batch_after_batch_equal_the_recomputation(backend: Backend) -> None:
    records = adversarial_log(seed=3, size=1_500)
    events = valid_events(records)
    state, fold = State(), Fold(FoldConfig())
    offset = 0
    for start in range(0, len(events), 200):
        chunk = events[start:start + 200]
        effect = fold.apply(chunk, state)
        keys = {entity_key(e) for e in chunk}
        commit = Commit(states(state, keys), {0: start // 200}, {TP: (offset or None, start + len(chunk))})
        await backend.store.commit(effect, commit)
        offset = start + len(chunk)
    problems = compare(backend.read_views(), oracle.recompute(events))
    assert not problems, "\n".join(problems[:10])
    bodies, _ = await backend.store.entities(list(state.entities))
    assert bodies == {key: body for key, (_, body) in states(state, state.entities).items()}


async def test_a_mentors_last_activity_moves_back_when_its_latest_review_is_corrected_away(backend: Backend) -> None:
    """last_active_at is a maximum that can fall, batch after batch: to the next contributor, then to none."""
    def review(review_id: str, minutes: float, student: str, submission: str, mentor: str) -> object:
        return ev("review.completed", at(minutes), review_id=review_id, submission_id=submission,
                  student_id=student, mentor_id=mentor, attempt=1, decision="approved")

    def submitted(submission: str, student: str) -> object:
        return ev("submission.submitted", at(0), submission_id=submission, student_id=student, pillar="clt",
                  attempt=1)

    batches = [
        [submitted("a", "s1"), submitted("b", "s2"), submitted("c", "s3"), submitted("d", "s3"),
         review("r1", 50, "s1", "a", "m1"), review("r2", 30, "s2", "b", "m1"),
         review("r3", 20, "s3", "c", "m1"), review("r4", 40, "s3", "d", "m1")],  # m1 last active at 50 (s1)
        [review("r1", 60, "s1", "a", "m2")],  # s1's review goes to m2: m1 falls back to 40 (s3's r4)
        [review("r4", 65, "s3", "d", "m2")],  # s3's latest for m1 falls to 20, below s2's 30: m1 at 30
        [review("r2", 70, "s2", "b", "m2"), review("r3", 75, "s3", "c", "m2")],  # m1 has no review left
    ]
    await commit_comparing(backend, batches)


async def test_a_user_who_logged_in_before_being_named_a_mentor_is_last_active_at_its_latest_login(
        backend: Backend) -> None:
    """Logins alone make no mentor row; the row a later naming creates starts from them, and moves on after."""
    def login(minutes: float) -> object:
        return ev("login.succeeded", at(minutes), user_id="u1", role="mentor")

    batches = [
        [login(10), login(5)],
        [login(3)],  # not the latest
        [ev("student.assigned", at(1), student_id="s1", mentor_id="u1")],  # named, no activity in the batch
        [login(2), ev("student.assigned", at(4), student_id="s2", mentor_id="u1")],
        [login(12)],  # a named mentor's login alone
    ]
    await commit_comparing(backend, batches)
    assert backend.read_views()["mentor_summary"]["u1"]["last_active_at"] == at(12)
