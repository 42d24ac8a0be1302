"""No import circles inside the core (``imageport/``) or the CLI (``cli/``).

A circle is two or more modules that import each other, directly or through others -- also
lazily, inside a function (that is how the ``disks/base.py`` <-> ``disks/staged.py`` and
``cli/disk.py`` <-> ``cli/upload.py`` circles were hidden). Imports under ``if TYPE_CHECKING:``
never run, so they do not count. Checked on the source (AST), like tests/test_layering.py.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.infra.services import REPO

TREES = ("imageport", "cli")


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node except what sits under ``if TYPE_CHECKING:``."""
    found: list[ast.AST] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        found.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return found


def import_graph(root: Path, trees: tuple[str, ...] = TREES) -> dict[str, set[str]]:
    """Module -> the modules of ``trees`` it imports (``from a.b import c`` is ``a.b.c`` when that is a module)."""
    files = {_module_name(p, root): p for tree in trees for p in sorted((root / tree).rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in _runtime_nodes(ast.parse(path.read_text(), filename=str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            edges.update(t for t in targets if t in files and t != name)
        graph[name] = edges
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def test_no_import_circles_in_the_core_or_the_cli() -> None:
    assert circles(import_graph(REPO)) == []


def test_a_lazy_circle_is_found(tmp_path: Path) -> None:
    pkg = tmp_path / "imageport"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from imageport.b import thing\n")
    (pkg / "b.py").write_text("def thing():\n    from imageport import a\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from imageport import a\n")
    (pkg / "d.py").write_text("from .a import thing\n")
    (tmp_path / "cli").mkdir()
    assert circles(import_graph(tmp_path)) == [["imageport.a", "imageport.b"]]
