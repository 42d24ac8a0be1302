"""The layering rule from docs/architecture.md: arrows only point down.

The core (``imageport/``) must not import Prefect, nor any package of the
Prefect layer or the CLI above it. Checked on the source (AST), so a lazy
import inside a function is caught as well.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.infra.services import REPO

FORBIDDEN_IN_CORE = {"prefect", "flows", "tasks", "blocks", "deployments", "cli"}
# Within the core, each layer may import only the layers below it.
CORE_ORDER = [
    "redaction", "errors", "access", "retry", "hashing", "credentials", "names", "specfile", "forms", "models", "disks",
    "storage", "transfer", "platforms", "guest", "engine", "results", "preflight", "adapters",
]  # fmt: skip


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _core_files() -> list[Path]:
    files = sorted((REPO / "imageport").rglob("*.py"))
    assert files, "no core modules found"
    return files


def test_core_never_imports_prefect_or_the_layers_above() -> None:
    offenders = [
        f"{path.relative_to(REPO)} imports {name}"
        for path in _core_files()
        for name in _imports(path)
        if name.split(".")[0] in FORBIDDEN_IN_CORE
    ]
    assert offenders == []


def test_core_layers_only_import_downwards() -> None:
    offenders = []
    for path in _core_files():
        rel = path.relative_to(REPO / "imageport").parts
        own = rel[0].removesuffix(".py")
        if own not in CORE_ORDER:
            continue
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] != "imageport" or len(parts) < 2 or parts[1] not in CORE_ORDER:
                continue
            if CORE_ORDER.index(parts[1]) > CORE_ORDER.index(own):
                offenders.append(f"{path.relative_to(REPO)} imports {name} (a layer above it)")
    assert offenders == []


def test_the_rule_detects_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from prefect import flow\n")
    assert "prefect" in _imports(bad)


def test_cli_kinds_match_the_connector_blocks() -> None:
    from blocks.connectors import CONNECTOR_KINDS
    from cli.connectors import KINDS

    assert set(KINDS) == set(CONNECTOR_KINDS)


def test_only_the_results_module_builds_results_from_core_results() -> None:
    """The core's result dataclasses convert in one place (``imageport/results.py``); elsewhere a result is
    converted there, then copied (``model_copy``) or read back (``model_validate``)."""
    own = REPO / "imageport" / "results.py"
    built = []
    for top in ("imageport", "tasks", "flows", "cli", "blocks", "deployments"):
        for path in sorted((REPO / top).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                name = node.func.id if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) else None
                if name in ("StageResult", "PortResult") and path != own:
                    built.append(f"{path.relative_to(REPO)}:{node.lineno} builds a {name}")  # type: ignore[attr-defined]
    assert built == []
