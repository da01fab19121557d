"""The package's import graph: no cycles, and no import that points up the layering.

Every ``import`` statement counts, including those inside functions (a lazy import is still a
dependency, and a cycle through one is still a cycle). The graph is read from the source with
``ast``, so nothing is imported to check it.

Layers, bottom first (``docs/architecture.md``)::

    version, errors, settings → layers → models → weights → hub → checkpoint → transforms, seg_transforms
    → resolve → inference, segment, api, arguments, cards, viz, export, export_transformers → train → bench → cli

A module may import its own layer or any layer below it; ``__main__`` modules (``python -m``
entry points) belong to the command-line layer. ``beitv2_zoo/__init__.py`` re-exports
the public API lazily and is left out (importing any submodule runs it). A package's own
``__init__`` may import its submodules; a submodule must not import its package's ``__init__``
when that ``__init__`` imports it back (that is a cycle like any other).
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "beitv2_zoo"

LAYERS = [
    ("version", "errors", "settings"),
    ("layers",),
    ("models",),
    ("weights",),
    ("hub",),
    ("checkpoint",),
    ("transforms", "seg_transforms"),
    ("resolve",),
    ("inference", "segment", "api", "pretrained", "arguments", "cards", "viz", "export", "export_transformers"),
    ("train",),
    ("bench",),
    ("cli", "__main__"),
]
RANK = {top: rank for rank, tops in enumerate(LAYERS) for top in tops}


def module_name(path: Path) -> str:
    parts = ["beitv2_zoo", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py") if "recipes" not in p.parts or p.name == "__init__.py"}


def _resolve(current: str, is_package: bool, level: int, target: str | None) -> str:
    base = current.split(".") if is_package else current.split(".")[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def imports_of(name: str) -> set[str]:
    """The package modules ``name`` imports (a ``from pkg import sub`` counts as ``pkg.sub`` when that is a module)."""
    path = MODULES[name]
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = _resolve(name, is_package, node.level, node.module) if node.level else (node.module or "")
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in MODULES else module for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:  # `import beitv2_zoo.hub.cache as x` → the deepest module
                target = target.rpartition(".")[0]
            if target.startswith("beitv2_zoo.") and target != name:
                found.add(target)
    return found


GRAPH = {name: imports_of(name) for name in MODULES if name != "beitv2_zoo"}


def _rank(name: str) -> int:
    """A module's layer; ``__main__`` modules are command-line entry points, the top layer."""
    return RANK["cli"] if name.endswith(".__main__") else RANK[name.split(".")[1]]


def test_every_top_level_module_has_a_layer():
    assert {n.split(".")[1] for n in GRAPH} <= set(RANK), "add the new module to LAYERS (and to docs/architecture.md)"


@pytest.mark.parametrize("name", sorted(GRAPH))
def test_imports_point_down(name):
    upward = sorted(t for t in GRAPH[name] if t != "beitv2_zoo" and _rank(t) > _rank(name))
    assert not upward, f"{name} (layer {_rank(name)}) imports a higher layer: {upward}"


def test_the_download_layer_never_reads_checkpoints():
    hub = {n: sorted(t for t in GRAPH[n] if t.startswith("beitv2_zoo.checkpoint")) for n in GRAPH if n.startswith("beitv2_zoo.hub")}
    assert not any(hub.values()), hub


def test_no_import_cycles():
    """Tarjan's strongly connected components: any component of more than one module is a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in GRAPH.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(GRAPH):
        if node not in index:
            visit(node)
    assert not cycles, f"import cycles: {cycles}"


def test_the_checker_sees_a_cycle_and_an_upward_import():
    """The graph reader itself: the real edges it must find (lazy ones included)."""
    assert "beitv2_zoo.hub.cache" in GRAPH["beitv2_zoo.checkpoint.cache_copy"]
    assert "beitv2_zoo.api" in GRAPH["beitv2_zoo.cli.predict"]  # imported inside the handler
    assert _rank("beitv2_zoo.cli.predict") > _rank("beitv2_zoo.api") > _rank("beitv2_zoo.models.beit")
