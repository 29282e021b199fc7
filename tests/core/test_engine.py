"""cohortflow.core.engine: the kernel engine answers every FoldEngine call as the Python reference does.

Beyond tests/core/test_kernel.py (the fold itself), this holds the two engines to the same least-recently-used
order, the same trims (which keys a bounded cache evicts, whatever it must keep), the same effects and the same
state bytes through interleaved applies, replays, loads, evictions and trims.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cohortflow.contract import DEFAULT_CONTRACT
from cohortflow.core import engine as engines
from cohortflow.core import state_codec
from cohortflow.core.fold import FoldConfig, entity_key
from tests.builders import ev
from tests.core.test_kernel import normalised, python_fields
from tests.strategies import adversarial_events, partitionings

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def fields(effect) -> dict:
    return normalised(python_fields(effect))


class Engines:
    def __init__(self) -> None:
        config = FoldConfig(pillars=tuple(DEFAULT_CONTRACT.pillars))
        self.python = engines.engine("python", config)
        self.kernel = engines.engine("kernel", config)

    def both(self, call: str, *args):
        a, b = getattr(self.python, call)(*args), getattr(self.kernel, call)(*args)
        return a, b

    def check(self) -> None:
        assert self.kernel.keys() == self.python.keys()
        assert len(self.kernel) == len(self.python)
        for key in self.python.keys():
            assert key in self.kernel
            got = self.kernel.encode(key)
            assert state_codec.decode(key[0], key[1], got) == state_codec.decode(key[0], key[1],
                                                                                self.python.encode(key))


@PROPERTY
@given(st.data(), adversarial_events(DEFAULT_CONTRACT))
def test_both_engines_agree_through_applies_replays_loads_evictions_and_trims(data, events) -> None:
    pair = Engines()
    for batch in data.draw(partitionings(events)):
        keys = [entity_key(e) for e in batch]
        if data.draw(st.integers(0, 5)) == 0:
            pair.both("replay", batch, keys)
        else:
            pair.both("apply", batch, keys)
            python, kernel = pair.both("take_effect")
            assert fields(kernel) == fields(python)
        cached = pair.python.keys()
        action = data.draw(st.sampled_from(["none", "trim", "evict", "load"]))
        if action == "trim" and cached:
            most = data.draw(st.integers(0, len(cached)))
            keep = set(data.draw(st.lists(st.sampled_from(cached), max_size=5)))
            python, kernel = pair.both("trim", most, keep)
            assert kernel == python
            assert not keep & set(python)
            assert len(pair.python) == max(most, len(keep & set(cached)), len(cached) - len(python))
        elif action == "evict" and cached:
            pair.both("evict", data.draw(st.lists(st.sampled_from(cached), max_size=4)) + [("x", "never")])
        elif action == "load" and cached:
            key = data.draw(st.sampled_from(cached))
            body = pair.python.encode(key)
            pair.both("evict", [key])
            pair.both("load", key, body)
        pair.check()
    pair.both("clear")
    assert pair.kernel.keys() == pair.python.keys() == []


def test_trim_evicts_the_least_recently_used_first_and_never_what_it_must_keep() -> None:
    pair = Engines()
    at = datetime(2026, 11, 2, 9, tzinfo=UTC)
    logins = [ev("login.succeeded", at, user_id=f"u{i}", role="student") for i in range(6)]
    for event in logins:  # u0 .. u5, one apply each: u0 is the least recently used
        pair.both("apply", [event], [entity_key(event)])
    pair.both("apply", [logins[0]], [entity_key(logins[0])])  # u0 again: now the most recent
    order = [("l", f"u{i}") for i in (1, 2, 3, 4, 5, 0)]
    assert pair.python.keys() == pair.kernel.keys() == order
    python, kernel = pair.both("trim", 3, {("l", "u1"), ("s", "absent"), ("x", "bad kind")})
    assert python == kernel == [("l", "u2"), ("l", "u3"), ("l", "u4")]
    assert pair.kernel.keys() == [("l", "u1"), ("l", "u5"), ("l", "u0")]
    assert pair.both("trim", 3, set()) == ([], [])
    python, kernel = pair.both("trim", 0, {("l", "u0")})
    assert python == kernel == [("l", "u1"), ("l", "u5")]
    with pytest.raises(ValueError, match="max_entities"):
        pair.kernel.trim(-1, set())


def test_the_kernels_murmur2_is_kafkas() -> None:
    assert engines.murmur2 is not aiokafka_murmur2
    for size in range(40):
        for _ in range(25):
            data = os.urandom(size)
            assert engines.murmur2(data) == aiokafka_murmur2(data)
    assert engines.shard_of("stu-00042", 12) == (aiokafka_murmur2(b"stu-00042") & 0x7FFFFFFF) % 12
