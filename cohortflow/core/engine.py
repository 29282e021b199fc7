"""The worker's fold engine: the cached entity states and the fold over them, behind one small interface. Pure.

Two implementations answer the same calls with the same results:

- :class:`PythonEngine`, the pure Python fold (:mod:`cohortflow.core.fold` over a
  :class:`cohortflow.core.fold.State`): the reference every property test compares with;
- :class:`KernelEngine`, the compiled kernel :mod:`cohortflow.core._kernel` (C++), which
  holds the states natively and folds a whole chunk of events per call.

``COHORTFLOW_FOLD_ENGINE`` chooses (``kernel`` by default when the kernel is
built, ``python`` to run the reference). Both keep the entities in their
least-recently-used order, so the worker can bound its cache
(``COHORTFLOW_CACHE_MAX_ENTITIES``) and evict what it has committed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from aiokafka.partitioner import murmur2 as _murmur2_py

from cohortflow.core import state_codec
from cohortflow.core.fold import Effect, EntityKey, Fold, FoldConfig, State

try:  # the compiled kernel is built by `pip install -e .` (make venv); the pure Python fold works without it
    from cohortflow.core import _kernel
except ImportError:  # pragma: no cover - exercised only where no C++ compiler was found
    _kernel = None  # type: ignore[assignment]

murmur2 = getattr(_kernel, "murmur2", None) or _murmur2_py
"""Kafka's default partitioner hash of bytes (the kernel's native copy when built, aiokafka's otherwise)."""


def shard_of(entity_id: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives the id: the shard its state belongs to."""
    return (murmur2(entity_id.encode()) & 0x7FFFFFFF) % partitions


class FoldEngine(Protocol):
    """What the worker's batch processor needs from the fold and its cache of entity states."""

    def apply(self, events: Sequence[Any], keys: Sequence[EntityKey]) -> None:
        """Fold ``events`` (``keys[i]`` is the entity of ``events[i]``) into the states and the pending effect."""

    def replay(self, events: Sequence[Any], keys: Sequence[EntityKey]) -> None:
        """Fold ``events`` into the states only: their effect was committed when they first arrived."""

    def take_effect(self) -> Effect:
        """The effect accumulated since the last call; a new one starts."""

    def encode(self, key: EntityKey) -> bytes:
        """The entity's state in the ``entity_state`` layout (:mod:`cohortflow.core.state_codec`)."""

    def load(self, key: EntityKey, body: bytes) -> None:
        """Cache the entity from its stored state."""

    def evict(self, keys: Iterable[EntityKey]) -> None:
        """Forget these entities (their stored states are current)."""

    def trim(self, max_entities: int, keep: set[EntityKey]) -> list[EntityKey]:
        """Evict least-recently-used entities not in ``keep`` until at most ``max_entities`` remain; return them."""

    def keys(self) -> list[EntityKey]:
        """Every cached key, least recently used first."""

    def clear(self) -> None:
        """Forget every entity and the pending effect."""

    def __contains__(self, key: object) -> bool: ...

    def __len__(self) -> int: ...


class PythonEngine:
    """The reference: :class:`cohortflow.core.fold.Fold` over a :class:`cohortflow.core.fold.State`.

    The entities are kept in least-recently-used order.
    """

    name = "python"

    def __init__(self, config: FoldConfig) -> None:
        self.fold = Fold(config)
        self.state = State()
        self.effect = Effect()
        self.recent: dict[EntityKey, None] = {}  # every cached key, least recently used first

    def _touch(self, keys: Iterable[EntityKey]) -> None:
        recent = self.recent
        for key in dict.fromkeys(keys):
            recent.pop(key, None)
            recent[key] = None

    def apply(self, events: Sequence[Any], keys: Sequence[EntityKey]) -> None:
        self.fold.apply(events, self.state, self.effect, keys)
        self._touch(keys)

    def replay(self, events: Sequence[Any], keys: Sequence[EntityKey]) -> None:
        self.fold.apply(events, self.state, Effect(), keys)
        self._touch(keys)

    def take_effect(self) -> Effect:
        effect, self.effect = self.effect, Effect()
        return effect

    def encode(self, key: EntityKey) -> bytes:
        return state_codec.encode(self.state.entities[key])

    def load(self, key: EntityKey, body: bytes) -> None:
        self.state.entities[key] = state_codec.decode(key[0], key[1], body)
        self.state.contributions.pop(key, None)  # derived from the entity: rebuilt on first use
        self._touch((key,))

    def evict(self, keys: Iterable[EntityKey]) -> None:
        for key in keys:
            self.state.entities.pop(key, None)
            self.state.contributions.pop(key, None)
            self.recent.pop(key, None)

    def trim(self, max_entities: int, keep: set[EntityKey]) -> list[EntityKey]:
        excess = len(self.recent) - max_entities
        if excess <= 0:
            return []
        victims = []
        for key in self.recent:  # oldest first
            if key not in keep:
                victims.append(key)
                if len(victims) == excess:
                    break
        self.evict(victims)
        return victims

    def keys(self) -> list[EntityKey]:
        return list(self.recent)

    def clear(self) -> None:
        self.state = State()
        self.effect = Effect()
        self.recent = {}

    def __contains__(self, key: object) -> bool:
        return key in self.recent

    def __len__(self) -> int:
        return len(self.recent)


class KernelEngine:
    """The compiled kernel (:mod:`cohortflow.core._kernel`), adapted to :class:`FoldEngine`."""

    name = "kernel"

    def __init__(self, config: FoldConfig) -> None:
        if _kernel is None:
            raise RuntimeError("the fold kernel cohortflow.core._kernel is not built: reinstall with a C++ compiler"
                               " (make venv) or set COHORTFLOW_FOLD_ENGINE=python")
        # a compiled extension module without stubs: mypy sees only the _kernel/ source directory
        self.kernel = _kernel.Kernel(tuple(config.pillars), config.horizon_us)  # type: ignore[attr-defined]
        self.encode = self.kernel.encode
        self.load = self.kernel.load
        self.evict = self.kernel.evict
        self.trim = self.kernel.trim
        self.keys = self.kernel.keys
        self.clear = self.kernel.clear

    def apply(self, events: Sequence[Any], keys: Sequence[EntityKey]) -> None:
        self.kernel.apply(events, keys)

    def replay(self, events: Sequence[Any], keys: Sequence[EntityKey]) -> None:
        self.kernel.apply(events, keys, False)

    def take_effect(self) -> Effect:
        return Effect(*self.kernel.take_effect())

    def __contains__(self, key: object) -> bool:
        return key in self.kernel

    def __len__(self) -> int:
        return len(self.kernel)


ENGINES: dict[str, Callable[[FoldConfig], FoldEngine]] = {"python": PythonEngine, "kernel": KernelEngine}


def kernel_built() -> bool:
    """Whether the compiled kernel was built with this install."""
    return _kernel is not None


def engine(name: str, config: FoldConfig) -> FoldEngine:
    """The engine called ``name`` (``kernel``, ``python``) folding with ``config``."""
    return ENGINES[name](config)
