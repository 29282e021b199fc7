"""The package's shape (docs/architecture.md): layers import only downwards, no module cycle,
and the import paths of before 0.2 still work, as the very same objects, with a warning."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

# The old paths warn by design; these tests import them on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:.* moved to cohortflow:DeprecationWarning")

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "cohortflow"

# Lowest first. A module may import its own layer and the layers before it; peers that share a
# number (api, producers, devstack) may not import one another.
LAYERS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (0, ("cohortflow.errors",)),
    (1, ("cohortflow.contract",)),
    (2, ("cohortflow.settings", "cohortflow.processes")),
    (3, ("cohortflow.core",)),
    (4, ("cohortflow.stores",)),
    (5, ("cohortflow.pipeline",)),
    (6, ("cohortflow.api",)),
    (6, ("cohortflow.producers",)),
    (6, ("cohortflow.devstack",)),
    (7, ("cohortflow.commands", "cohortflow.cli")),
    (8, ("cohortflow._moved",)),
)


def layer_of(module: str) -> tuple[int, tuple[str, ...]]:
    if module == "cohortflow":
        return 0, ("cohortflow",)  # the root package holds only its docstring and version
    for rank, prefixes in LAYERS:
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank, prefixes
    raise AssertionError(f"{module} is in no layer: add it to LAYERS and docs/architecture.md")


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def import_graph() -> dict[str, set[str]]:
    """Each module of the package -> the package's modules it imports (lazy imports included)."""
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
                for alias in node.names:  # `from pkg import module` imports the module, else pkg itself
                    name = f"{base}.{alias.name}"
                    targets |= {name} if name in files else {base} & files.keys()
            elif isinstance(node, ast.Import):
                targets |= {a.name for a in node.names if a.name in files}
        graph[module] = targets - {module}
    return graph


GRAPH = import_graph()


def test_the_graph_sees_imports() -> None:
    # The checks below are empty if the parser finds nothing: hold it to edges known to exist.
    assert "cohortflow.core.fold" in GRAPH["cohortflow.core.engine"]
    assert "cohortflow.contract.events" in GRAPH["cohortflow.core.fold"]
    assert "cohortflow.commands.api" in GRAPH["cohortflow.cli"]
    assert len(GRAPH) > 60


def test_layers_import_only_downwards() -> None:
    upward = []
    for module, targets in GRAPH.items():
        rank, group = layer_of(module)
        for target in targets:
            target_rank, target_group = layer_of(target)
            if target_rank > rank or (target_rank == rank and target_group != group):
                upward.append(f"{module} -> {target}")
    assert not upward, "imports that point up or sideways:\n" + "\n".join(sorted(upward))


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle() -> None:
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or ())


def test_find_cycle_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_core_imports_no_io_library() -> None:
    # The fold is pure (guides/style.md): no driver, broker or web framework below the stores.
    banned = ("psycopg", "redis", "faust", "fastapi", "uvicorn", "httpx")
    found = []
    for path in [*(PACKAGE / "core").rglob("*.py"), *(PACKAGE / "contract").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            found += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in banned]
    assert not found, found


# Every path the README and docs showed before 0.2, and every old module.
DOCUMENTED = (
    ("producers.publisher", "Publisher", "cohortflow.producers.publisher"),
    ("producers.publisher", "AsyncPublisher", "cohortflow.producers.publisher"),
    ("producers", "outbox", "cohortflow.producers"),
    ("producers.typed", "events", "cohortflow.producers.typed"),
    ("schemas", "decode", "cohortflow.contract"),
    ("schemas", "Contract", "cohortflow.contract"),
    ("schemas.events", "EventBase", "cohortflow.contract.events"),
    ("views.fold", "Fold", "cohortflow.core.fold"),
    ("views.api.app", "create_app", "cohortflow.api.app"),
    ("streams.topics", "ensure_topics", "cohortflow.pipeline.topics"),
)


def test_old_module_paths_are_the_new_modules() -> None:
    from cohortflow._moved import MOVED

    assert len(MOVED) > 40
    for old, new in MOVED.items():
        if old.endswith(("._kernel", "._timestamps")) and importlib.util.find_spec(new) is None:
            continue  # an optional compiled module this install did not build
        assert importlib.import_module(old) is importlib.import_module(new), old


@pytest.mark.parametrize(("module", "name", "new"), DOCUMENTED)
def test_documented_imports_still_work(module: str, name: str, new: str) -> None:
    old = importlib.import_module(module)
    assert getattr(old, name) is getattr(importlib.import_module(new), name)


def test_old_paths_warn_in_a_fresh_interpreter() -> None:
    code = ("import warnings; warnings.simplefilter('error', DeprecationWarning)\n"
            "try:\n    from producers.publisher import Publisher\nexcept DeprecationWarning as e:\n    print(e)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "producers.publisher moved to cohortflow.producers.publisher" in done.stdout


def test_old_package_names_unknown_raise() -> None:
    import views

    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        views.nothing_here  # noqa: B018
