"""The import paths of the five top-level packages before 0.2, kept for one release.

``schemas``, ``views``, ``streams`` and ``producers`` moved into layers of this package
(docs/architecture.md). Importing an old path, e.g. ``from producers.publisher import
Publisher``, gives the very module object of the new path (so classes compare equal and
monkeypatching one patches the other) and warns once with a DeprecationWarning naming the
new path.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType

MOVED: dict[str, str] = {
    # producers/
    "producers.cohort_day": "cohortflow.producers.cohort_day",
    "producers.commands": "cohortflow.commands.producers",
    "producers.exceptions": "cohortflow.producers.exceptions",
    "producers.outbox": "cohortflow.producers.outbox",
    "producers.publisher": "cohortflow.producers.publisher",
    "producers.simulator": "cohortflow.producers.simulator",
    "producers.typed": "cohortflow.producers.typed",
    "producers.watch": "cohortflow.producers.watch",
    # schemas/
    "schemas._timestamps": "cohortflow.contract._timestamps",
    "schemas.codec": "cohortflow.contract.codec",
    "schemas.events": "cohortflow.contract.events",
    "schemas.exceptions": "cohortflow.contract.exceptions",
    "schemas.jsonschema": "cohortflow.contract.jsonschema",
    "schemas.structs": "cohortflow.contract.structs",
    "schemas.timestamps": "cohortflow.contract.timestamps",
    "schemas.topics": "cohortflow.contract.topics",
    # streams/
    "streams.app": "cohortflow.pipeline.app",
    "streams.committer": "cohortflow.pipeline.committer",
    "streams.deadletter": "cohortflow.pipeline.deadletter",
    "streams.metrics": "cohortflow.pipeline.metrics",
    "streams.observer": "cohortflow.pipeline.observer",
    "streams.processor": "cohortflow.pipeline.processor",
    "streams.replay": "cohortflow.pipeline.replay",
    "streams.topics": "cohortflow.pipeline.topics",
    "streams.workers": "cohortflow.pipeline.workers",
    # views/
    "views._kernel": "cohortflow.core._kernel",
    "views.api": "cohortflow.api",
    "views.api.app": "cohortflow.api.app",
    "views.api.auth": "cohortflow.api.auth",
    "views.api.commands": "cohortflow.commands.api",
    "views.api.models": "cohortflow.api.models",
    "views.api.params": "cohortflow.api.params",
    "views.api.processes": "cohortflow.api.processes",
    "views.api.serve": "cohortflow.api.serve",
    "views.audit": "cohortflow.stores.audit",
    "views.audit_commands": "cohortflow.commands.audit",
    "views.badges": "cohortflow.stores.badges",
    "views.clock": "cohortflow.core.clock",
    "views.contributions": "cohortflow.core.contributions",
    "views.engine": "cohortflow.core.engine",
    "views.entities": "cohortflow.core.entities",
    "views.fold": "cohortflow.core.fold",
    "views.ledger": "cohortflow.core.ledger",
    "views.memory": "cohortflow.core.memory",
    "views.migrate": "cohortflow.stores.migrate",
    "views.migrations": "cohortflow.stores.migrations",
    "views.postgres": "cohortflow.stores.postgres",
    "views.queries": "cohortflow.stores.queries",
    "views.rebuild": "cohortflow.pipeline.rebuild",
    "views.sink": "cohortflow.stores.sink",
    "views.snapshot": "cohortflow.pipeline.snapshot",
    "views.state_codec": "cohortflow.core.state_codec",
    "views.validate": "cohortflow.pipeline.validate",
}

# Package-level names: ``from schemas import decode`` and the like.
PACKAGES: dict[str, str | None] = {
    "schemas": "cohortflow.contract",
    "producers": "cohortflow.producers",
    "streams": None,
    "views": None,
}


def _warn(old: str, new: str) -> None:
    warnings.warn(f"{old} moved to {new}; the old path works until the next release", DeprecationWarning,
                  stacklevel=3)


class _Alias(importlib.abc.Loader):
    """Loads an old name as the module already importable under its new name."""

    def __init__(self, old: str, new: str) -> None:
        self.old, self.new = old, new
        self._spec: importlib.machinery.ModuleSpec | None = None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        module = importlib.import_module(self.new)
        self._spec = module.__spec__  # the import system overwrites it; exec_module puts it back
        return module

    def exec_module(self, module: ModuleType) -> None:
        module.__spec__ = self._spec
        _warn(self.old, self.new)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: object = None,
                  target: object = None) -> importlib.machinery.ModuleSpec | None:
        new = MOVED.get(fullname)
        if new is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _Alias(fullname, new))


_FINDER = _Finder()


def install(package: str) -> tuple[object, object]:
    """Called by an old package's ``__init__``: routes its submodules to the new ones.

    Returns the ``__getattr__`` and ``__dir__`` the old package exposes for its own names.
    """
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
    target = PACKAGES[package]

    def __getattr__(name: str) -> object:
        full = f"{package}.{name}"
        if full in MOVED:
            return importlib.import_module(full)
        if target is not None and not name.startswith("__"):
            module = importlib.import_module(target)
            if hasattr(module, name):
                _warn(full, f"{target}.{name}")
                return getattr(module, name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        names = {k.split(".")[1] for k in MOVED if k.startswith(package + ".")}
        if target is not None:
            names |= set(dir(importlib.import_module(target)))
        return sorted(names)

    return __getattr__, __dir__
