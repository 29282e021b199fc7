"""The compiled fold kernel (cohortflow.core._kernel) against its reference, the Python fold.

For any sequence of operations the kernel and cohortflow.core.fold (Fold + State +
state_codec) must agree: equal effects (zero deltas and empty rows dropped),
the same audit event objects in the same order, and entity states that decode
to equal entities. Restarts are modelled by evicting entities and loading them
back from either side's bytes.
"""

from __future__ import annotations

import gc
import resource
import sys
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cohortflow.contract import DEFAULT_CONTRACT, EVENT_TYPES, Rejection, decode
from cohortflow.core import state_codec
from cohortflow.core._kernel import Kernel
from cohortflow.core.fold import Effect, Fold, FoldConfig, State, entity_key
from cohortflow.core.memory import MemoryViews, ViewConfig
from tests.builders import ev
from tests.logs import adversarial_log, kafka_records
from tests.strategies import adversarial_events, events_of_type, moments, partitionings, valid_events

CONFIG = ViewConfig()
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FIELDS = ("deltas", "named", "as_of", "mentor_self", "activity", "unread", "changed", "audit")


def normalised(fields: tuple) -> dict:
    """An effect's fields with the changes that cancelled out dropped, audit as object identities."""
    out = dict(zip(FIELDS, fields, strict=True))
    deltas = {row: {name: v for name, v in counts.items() if v} for row, counts in out["deltas"].items()}
    out["deltas"] = {row: counts for row, counts in deltas.items() if counts}
    out["audit"] = [id(e) for e in out["audit"]]
    return out


def python_fields(effect: Effect) -> tuple:
    return tuple(getattr(effect, name) for name in FIELDS)


DEFAULT_FOLD_CONFIG = FoldConfig()


class Pair:
    """The reference and the kernel, fed the same operations and compared after each."""

    def __init__(self, config: FoldConfig = DEFAULT_FOLD_CONFIG) -> None:
        self.fold, self.state = Fold(config), State()
        self.kernel = Kernel(tuple(config.pillars), config.horizon_us)
        self.views, self.kernel_views = MemoryViews(), MemoryViews()

    def batch(self, chunks: list[list], with_keys: bool = True, effect: bool = True) -> None:
        """Fold one batch, chunk by chunk into one effect on each side, and compare the effects."""
        expected = Effect()
        for chunk in chunks:
            keys = [entity_key(e) for e in chunk] if with_keys else None
            self.fold.apply(chunk, self.state, expected, keys)
            self.kernel.apply(chunk, keys, effect)
        got = self.kernel.take_effect()
        if not effect:  # a replayed tail moves the states only
            assert normalised(got) == normalised(python_fields(Effect()))
            return
        assert normalised(got) == normalised(python_fields(expected))
        assert all(a is b for a, b in zip(got[7], expected.audit, strict=True))
        self.views.apply(expected)
        self.kernel_views.apply(Effect(*got))
        assert self.kernel_views.views(CONFIG) == self.views.views(CONFIG)
        assert self.kernel_views.unread == self.views.unread

    def reload(self, keys, from_python: bool) -> None:
        """A restart of these entities: the kernel loads the bytes either side wrote; Python reloads its own."""
        for key in keys:
            mine = state_codec.encode(self.state.entities[key])
            body = mine if from_python else self.kernel.encode(key)
            self.kernel.evict([key])
            assert key not in self.kernel
            self.kernel.load(key, body)
            self.state.entities[key] = state_codec.decode(key[0], key[1], mine)
            self.state.contributions.pop(key, None)

    def assert_same_states(self) -> None:
        assert len(self.kernel) == len(self.state.entities)
        for (kind, entity_id), entity in self.state.entities.items():
            body = self.kernel.encode((kind, entity_id))
            assert state_codec.decode(kind, entity_id, body) == entity
            if kind in "lna":  # no sets in these layouts: orjson's very bytes
                assert body == state_codec.encode(entity)


def chunked(batch: list, cuts: list[int]) -> list[list]:
    bounds = [0, *sorted(set(cuts)), len(batch)]
    return [batch[a:b] for a, b in zip(bounds, bounds[1:]) if b > a] or [[]]


# --- differential properties -----------------------------------------------------------------------------


@PROPERTY
@given(st.data(), adversarial_events(DEFAULT_CONTRACT))
def test_the_kernel_folds_like_the_reference_through_batches_chunks_and_restarts(data, events) -> None:
    pair = Pair()
    for batch in data.draw(partitionings(events)):
        cuts = data.draw(st.lists(st.integers(0, len(batch)), max_size=3))
        replay = data.draw(st.integers(0, 9)) == 0
        pair.batch(chunked(batch, cuts), with_keys=data.draw(st.booleans()), effect=not replay)
        known = sorted(pair.state.entities)
        if known and data.draw(st.booleans()):
            keys = data.draw(st.lists(st.sampled_from(known), unique=True, max_size=4))
            pair.reload(keys, from_python=data.draw(st.booleans()))
    pair.assert_same_states()


@PROPERTY
@given(st.lists(valid_events(DEFAULT_CONTRACT), max_size=30), st.booleans())
def test_any_unicode_any_time_from_1970_to_2100(events, from_python) -> None:
    """Arbitrary ids and labels (astral characters too), review times far above 2**31 microseconds."""
    pair = Pair()
    pair.batch([events[: len(events) // 2]])
    pair.reload(sorted(pair.state.entities), from_python)
    pair.batch([events[len(events) // 2:], events])
    pair.assert_same_states()


EARLY = st.sampled_from(EVENT_TYPES).flatmap(
    lambda t: events_of_type(t, DEFAULT_CONTRACT, moments(datetime(1, 1, 1), datetime(1970, 1, 3)))
)


@PROPERTY
@given(st.lists(EARLY, max_size=30))
def test_instants_before_1970_down_to_year_1(events) -> None:
    """Negative instants: day numbers are floor divisions, review times are still exact."""
    pair = Pair()
    pair.batch([events])
    pair.reload(sorted(pair.state.entities), from_python=False)
    pair.batch([events[::-1]])
    pair.assert_same_states()


@st.composite
def login_storms(draw) -> list:
    """Many logins and audit records of two people over ten days, re-sent: Counted's pruning (> 64 seen) runs."""
    out = []
    start = datetime(2026, 11, 2, tzinfo=UTC)
    for _ in range(draw(st.integers(0, 220))):
        who = draw(st.sampled_from(["u-1", "u-2"]))
        eid = f"e{draw(st.integers(0, 150))}"
        when = start + timedelta(hours=draw(st.integers(-30, 240)))
        kind = draw(st.sampled_from(["login.succeeded", "login.failed", "audit.recorded"]))
        if kind == "audit.recorded":
            out.append(ev(kind, when, eid, actor_id=who, action="a", entity_type="t", entity_id="x"))
        elif kind == "login.succeeded":
            out.append(ev(kind, when, eid, user_id=who, role="mentor"))
        else:
            out.append(ev(kind, when, eid, user_id=who, reason="bad_password"))
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), login_storms())
def test_dedup_horizon_pruning(data, events) -> None:
    pair = Pair(FoldConfig(dedup_horizon_days=1))
    for batch in data.draw(partitionings(events)):
        pair.batch([batch])
        if data.draw(st.booleans()) and pair.state.entities:
            pair.reload(sorted(pair.state.entities), from_python=data.draw(st.booleans()))
    pair.assert_same_states()


@pytest.mark.parametrize("kind", ["login.failed", "audit.recorded"])
@pytest.mark.parametrize("seen", [63, 64, 65])
def test_pruning_starts_above_64_counted_ids(kind, seen) -> None:
    """Counted prunes only once more than 64 ids are held and the oldest is past the horizon."""
    pair = Pair(FoldConfig(dedup_horizon_days=1))
    data = {"user_id": "u"} if kind == "login.failed" else {"actor_id": "u", "action": "a", "entity_type": "t",
                                                              "entity_id": "x"}
    if kind == "login.failed":
        data["reason"] = "r"
    old = [ev(kind, T, f"old-{n}", **data) for n in range(seen - 1)]
    late = ev(kind, T + timedelta(days=2), "late", **data)
    pair.batch([old])
    pair.batch([[late]])
    pair.batch([old[:3]])  # counted again only if they were pruned
    pair.assert_same_states()


def decoded_log(seed: int, size: int) -> list:
    events = []
    for topic, key, value in kafka_records(adversarial_log(seed=seed, size=size)):
        event = decode(topic, key, value, DEFAULT_CONTRACT)
        if not isinstance(event, Rejection):
            events.append(event)
    return events


@pytest.fixture(scope="module")
def log_events() -> list:
    return decoded_log(seed=41, size=20_000)


def test_the_adversarial_log_in_chunks_of_1000(log_events) -> None:
    pair = Pair()
    for at in range(0, len(log_events), 1000):
        pair.batch([log_events[at:at + 1000]], with_keys=at % 2000 == 0)
        if at == 10_000:  # a restart of everything, half from each side's bytes
            keys = sorted(pair.state.entities)
            pair.reload(keys[::2], from_python=True)
            pair.reload(keys[1::2], from_python=False)
    pair.assert_same_states()


def test_events_are_read_through_their_attributes_only(log_events) -> None:
    """Plain objects with the models' attribute names fold like the models (the worker's msgspec Structs)."""
    events = log_events[:6000]
    copies = [SimpleNamespace(type=e.type, event_id=e.event_id, occurred_at=e.occurred_at,
                              data=SimpleNamespace(**dict(e.data))) for e in events]
    keys = [entity_key(e) for e in events]
    models, plain = Kernel(CONFIG.pillars, FoldConfig().horizon_us), Kernel(CONFIG.pillars, FoldConfig().horizon_us)
    for at in range(0, len(events), 1000):
        models.apply(events[at:at + 1000], keys[at:at + 1000])
        plain.apply(copies[at:at + 1000], None if at % 2000 else keys[at:at + 1000])
    a, b = models.take_effect(), plain.take_effect()
    where = {id(e): i for i, e in enumerate(events)}
    assert [where[id(e)] for e in a[7]] == [copies.index(e) for e in b[7]]
    assert normalised(a[:7] + ([],)) == normalised(b[:7] + ([],))
    for key in set(keys):
        assert models.encode(key) == plain.encode(key)


# --- exact corners, by hand ----------------------------------------------------------------------------------


T = datetime(2026, 11, 2, 9, tzinfo=UTC)


def test_event_ids_compare_by_code_point_not_utf16() -> None:
    """U+FFFF < U+10000 in code points (and UTF-8 bytes); UTF-16 would order them the other way."""
    pair = Pair()
    pair.batch([[
        ev("student.enrolled", T, "\U00010000", student_id="s", campus="north", floor="F1"),
        ev("student.transferred", T, "\uffff", student_id="s", campus="south", floor="F2"),
    ]])
    pair.assert_same_states()
    assert pair.state.entities[("s", "s")].floor[3] == "F1"


def test_review_time_sums_beyond_int64_stay_exact() -> None:
    """Each review time fits 64 bits; their sum in one effect does not."""
    pair = Pair()
    old, new = datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, tzinfo=UTC)
    events = []
    for n in range(40):
        events.append(ev("submission.submitted", old, f"s{n}", submission_id=f"sub{n}", student_id=f"st{n}",
                         pillar="clt", attempt=2**63 + n))
        events.append(ev("review.completed", new, f"r{n}", review_id="r", submission_id=f"sub{n}",
                         student_id=f"st{n}", mentor_id="m", attempt=2**63 + n, decision="approved"))
    pair.batch([events])
    pair.assert_same_states()
    assert pair.views.rows[("M", "m")]["review_us_sum"] > 2**63


def test_a_bad_event_leaves_the_kernel_as_it_was() -> None:
    k = Kernel(CONFIG.pillars, FoldConfig().horizon_us)
    good = ev("student.enrolled", T, student_id="s", campus="c", floor="f")
    with pytest.raises(TypeError, match="belongs to an entity of kind 's'"):
        k.apply([good, good], [("s", "s"), ("m", "s")])
    with pytest.raises(TypeError, match="not an event type"):
        k.apply([good, SimpleNamespace(type="student.graduated", event_id="x", occurred_at=T, data=None)])
    with pytest.raises(TypeError, match="timezone-aware"):
        k.apply([SimpleNamespace(type="student.withdrawn", event_id="x", occurred_at=datetime(2026, 1, 1),
                                 data=SimpleNamespace(student_id="s"))])
    with pytest.raises(ValueError, match="2 events but 1 keys"):
        k.apply([good, good], [("s", "s")])
    assert len(k) == 0 and normalised(k.take_effect()) == normalised(python_fields(Effect()))


def test_other_time_zones_count_as_their_utc_instant() -> None:
    k = Kernel(CONFIG.pillars, FoldConfig().horizon_us)
    east = T.astimezone(__import__("datetime").timezone(timedelta(hours=5, minutes=30)))
    k.apply([SimpleNamespace(type="student.withdrawn", event_id="x", occurred_at=east,
                             data=SimpleNamespace(student_id="s"))])
    assert orjson.loads(k.encode(("s", "s")))[-1] == int((T - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() * 1e6)


# --- bodies and keys -----------------------------------------------------------------------------------------


def test_encode_load_evict_clear_and_keys() -> None:
    k = Kernel(CONFIG.pillars, FoldConfig().horizon_us)
    with pytest.raises(KeyError):
        k.encode(("s", "nobody"))
    with pytest.raises(ValueError, match="unknown entity kind 'x'"):
        k.encode(("x", "nobody"))
    with pytest.raises(ValueError, match="unknown entity kind"):
        k.load(("student", "a"), b"[1]")
    with pytest.raises(TypeError, match=r"\(kind, id\) tuple"):
        k.encode(["s", "a"])
    with pytest.raises(TypeError, match=r"\(kind, id\) tuple"):
        k.evict([("s",)])
    assert ("x", "a") not in k and "s" not in k and ("s", 1) not in k
    body = state_codec.encode(state_codec.decode("a", "adm", b'[1,{"e1":5,"e2":7},7]'))
    k.load(("a", "adm"), body)
    assert ("a", "adm") in k and len(k) == 1 and k.encode(("a", "adm")) == body
    k.evict([("a", "adm"), ("a", "absent"), ("zz", "absent")])
    assert len(k) == 0
    k.load(("a", "adm"), body)
    k.apply([ev("audit.recorded", T, actor_id="adm", action="a", entity_type="t", entity_id="x")])
    k.clear()
    assert len(k) == 0 and k.take_effect()[7] == []


GOOD = {
    "s": b'[1,[["e",1,true]],[1,"e","c","f"],[2,"m","x"],{"sub":[[3,"p","clt"],[[1,3]],1]},'
         b'{"r":[4,"q","sub",1,"x",true]},[["c","f"]],["x"],4]',
    "m": b'[1,[["e",1,true]],[1,"e","c","f"],[["c","f"]],1]',
    "l": b'[1,{"e":1},1,[0],1,1]',
    "n": b'[1,{"n1":[{"e":1},false]},null,1]',
    "a": b'[1,{"e":1},1]',
}
MALFORMED = [
    ("s", b""), ("s", b"[1"), ("s", b"{}"), ("s", b"[]"), ("s", b"[1,2]"), ("a", b'[1,{"e":1.5},1]'),
    ("a", b'[1,{"e":1},1] x'), ("a", b'[1,{"e":true},1]'), ("a", b'[1,["e",1],1]'), ("a", b'[1,{"e":1}]'),
    ("a", b'[1,{"\\ud800":1},1]'), ("a", b'[1,{"\xff":1},1]'), ("a", b'[1,{"e":4611686018427387904},1]'),
    ("l", b'[1,{},0,["1"],null,0]'), ("n", b'[1,{"n":[{},1]},null,0]'),
    ("s", GOOD["s"].replace(b'"r":[4,"q","sub"', b'"r":[4,"q","other"')),  # a review of no known submission
    ("s", GOOD["s"].replace(b"[[1,3]],1]", b"[[-1,3]],1]")),  # a negative attempt
    ("m", b'[1,[["e",1,true]],[1,"e","c"],[],1]'), ("a", b"[" * 100 + b"]" * 100),
]


@pytest.mark.parametrize(("kind", "body"), list(GOOD.items()))
def test_well_formed_bodies_load_as_the_python_decoder_reads_them(kind, body) -> None:
    k = Kernel(CONFIG.pillars, FoldConfig().horizon_us)
    k.load((kind, "id"), body)
    assert state_codec.decode(kind, "id", k.encode((kind, "id"))) == state_codec.decode(kind, "id", body)


@pytest.mark.parametrize(("kind", "body"), MALFORMED)
def test_malformed_bodies_are_refused_and_change_nothing(kind, body) -> None:
    k = Kernel(CONFIG.pillars, FoldConfig().horizon_us)
    k.load((kind, "id"), GOOD[kind])
    before = k.encode((kind, "id"))
    with pytest.raises(ValueError, match=r"cannot load the state of \("):
        k.load((kind, "id"), body)
    assert k.encode((kind, "id")) == before


@pytest.mark.parametrize("version", [b"2", b"0", b"true", b'"1"', b"1.0"])
def test_other_layout_versions_are_refused(version) -> None:
    k = Kernel(CONFIG.pillars, FoldConfig().horizon_us)
    with pytest.raises(ValueError, match="layout .* is not 1"):
        k.load(("a", "id"), b"[" + version + b',{"e":1},1]')


# --- references and memory --------------------------------------------------------------------------------------


def test_reference_counts_of_the_events() -> None:
    k = Kernel(CONFIG.pillars, FoldConfig().horizon_us)
    audit = ev("audit.recorded", T, actor_id="adm", action="a", entity_type="t", entity_id="x")
    other = ev("login.succeeded", T, user_id="u", role="admin")
    base_audit, base_other = sys.getrefcount(audit), sys.getrefcount(other)
    k.apply([audit, other, audit])
    assert sys.getrefcount(audit) == base_audit + 1  # held once by the pending effect, first sighting only
    assert sys.getrefcount(other) == base_other
    effect = k.take_effect()
    assert effect[7] == [audit] and effect[7][0] is audit
    assert sys.getrefcount(audit) == base_audit + 1
    del effect
    assert sys.getrefcount(audit) == base_audit
    k.apply([ev("audit.recorded", T, actor_id="adm2", action="a", entity_type="t", entity_id="x")] * 2)
    k.clear()  # the pending effect goes too


def rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() // 1024


def test_no_leak_over_many_rounds(log_events) -> None:
    events = log_events[:3000]
    keys = [entity_key(e) for e in events]
    k = Kernel(CONFIG.pillars, FoldConfig().horizon_us)

    def rounds(n: int) -> None:
        for _ in range(n):
            k.apply(events, keys)
            k.take_effect()
            for key in keys[:200]:
                k.load(key, k.encode(key))
            k.evict(keys[200:400])
            k.apply(events[:1000], keys[:1000], False)

    rounds(5)
    gc.collect()
    before = rss_kib()
    counts = [sys.getrefcount(e) for e in events[:50]]
    rounds(40)
    gc.collect()
    assert [sys.getrefcount(e) for e in events[:50]] == counts
    assert rss_kib() - before < 2048, "RSS grew over repeated rounds"
