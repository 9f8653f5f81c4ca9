"""Each layer only uses the ones below it, and no modules import each other in a cycle.

Layers, lowest first: ``contracts`` (the client's package, no worker inside) < ``worker.errors``,
``worker.observability`` < ``worker.engine`` < ``worker.settings``, ``worker.replay`` <
``worker.service`` < ``worker.commands``. Imports are read from the source with ``ast``, all of
them: in functions and under ``TYPE_CHECKING`` too (a cycle hidden there is still a cycle).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
PACKAGES = ("contracts", "worker")

#: package prefix -> prefixes it must never import
FORBIDDEN = {
    "contracts": ("worker",),
    "worker.errors": ("worker.engine", "worker.service", "worker.commands", "worker.replay"),
    "worker.observability": ("worker.engine", "worker.service", "worker.commands", "worker.replay"),
    "worker.engine": ("worker.service", "worker.commands", "worker.replay", "worker.settings"),
    "worker.replay": ("worker.service", "worker.commands"),
    "worker.service": ("worker.commands",),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Modules named by the imports of ``tree`` (relative ones resolved)."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            out.add(base)
            out.update(f"{base}.{alias.name}" for alias in node.names)
    return out


def import_graph() -> dict[str, set[str]]:
    """Our module -> our modules it imports (``from a import b`` counts b when b is a module)."""
    files = {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    graph = {}
    for module, path in files.items():
        names = imported(ast.parse(path.read_text()), module, path.name == "__init__.py")
        graph[module] = {n for n in names if n in files and n != module}
    return graph


def within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


GRAPH = import_graph()


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_layer_never_imports_the_layers_above_it(layer: str) -> None:
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        if within(module, layer)
        for target in targets
        if any(within(target, above) for above in FORBIDDEN[layer])
    )
    assert not wrong, wrong


@pytest.mark.parametrize("package", ["contracts", "worker.engine", "worker.service", "worker"])
def test_no_import_cycles(package: str) -> None:
    inside = {
        m: {t for t in ts if within(t, package)} for m, ts in GRAPH.items() if within(m, package)
    }
    # a package's __init__ re-exporting its own modules is not a cycle of the code
    inside = {m: {t for t in ts if not within(m, t)} for m, ts in inside.items()}
    assert cycles(inside) == []


def test_the_graph_sees_the_imports_it_checks() -> None:
    """Guards the walker itself: known edges, including one inside a function, are found."""
    assert "worker.engine.render" in GRAPH["worker.engine.plan"]
    assert "worker.engine.statements" in GRAPH["worker.engine.render"]
    assert "worker.engine.results_json" in GRAPH["worker.service.replies"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
