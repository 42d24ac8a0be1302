"""Only the platform adapters decide by a disk reference's kind (issue 15, part 1; docs/architecture.md).

An AST scan of every package but the adapters, the registry and models.py's own definitions for
``isinstance(x, <a *Ref class>)`` (alone, in a tuple or a ``|`` union), ``type(x) is <Ref>``,
``match`` cases on a ref class, and comparisons of a ``.kind`` (or a ``kind``) with a
reference-kind string. A caller asks ``imageport.adapters.registry.adapter_for`` instead.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.infra.services import REPO

SCANNED = ("cli", "flows", "tasks", "blocks", "deployments", "imageport")
EXEMPT = ("imageport/adapters/", "imageport/models/")  # the references are defined (and validated) there
CLASS_CHECKS = ("isinstance", "issubclass")
REF_KINDS = {"vsphere", "datastore", "azure-disk", "azure-snapshot", "share", "local"}


def _is_ref_class(node: ast.AST) -> bool:
    if isinstance(node, ast.Name):
        return node.id.endswith("Ref")
    if isinstance(node, ast.Attribute):
        return node.attr.endswith("Ref")
    if isinstance(node, ast.Tuple):
        return any(_is_ref_class(e) for e in node.elts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _is_ref_class(node.left) or _is_ref_class(node.right)
    return False


def _is_kind(node: ast.AST) -> bool:
    attribute = isinstance(node, ast.Attribute) and node.attr == "kind"
    return attribute or (isinstance(node, ast.Name) and node.id == "kind")


def _is_ref_kind_text(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return node.value in REF_KINDS
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return any(_is_ref_kind_text(e) for e in node.elts)
    return False


def dispatches(source: str, filename: str = "<scan>") -> list[str]:
    """Each place in ``source`` that decides by a reference class or kind, as ``line: what``."""
    found = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in CLASS_CHECKS:
            if len(node.args) == 2 and _is_ref_class(node.args[1]):
                found.append(f"{node.lineno}: {node.func.id} on a reference class")
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(_is_kind(s) for s in sides) and any(_is_ref_kind_text(s) for s in sides):
                found.append(f"{node.lineno}: a kind compared with a reference kind")
            if any(isinstance(op, ast.Is | ast.IsNot) for op in node.ops) and any(_is_ref_class(s) for s in sides):
                found.append(f"{node.lineno}: a type compared with a reference class")
        elif isinstance(node, ast.MatchClass) and _is_ref_class(node.cls):
            found.append(f"{node.lineno}: match on a reference class")
        elif isinstance(node, ast.MatchValue) and _is_ref_kind_text(node.value):
            found.append(f"{node.lineno}: match on a reference kind")
    return sorted(found, key=lambda hit: int(hit.split(":")[0]))


def _scanned_files() -> list[Path]:
    files = [p for top in SCANNED for p in sorted((REPO / top).rglob("*.py"))]
    assert len(files) > 100, "the scan found too few modules"
    return [p for p in files if not str(p.relative_to(REPO)).startswith(EXEMPT)]


def test_no_code_outside_the_adapters_dispatches_on_a_reference_kind() -> None:
    offenders = [
        f"{path.relative_to(REPO)}:{hit}"
        for path in _scanned_files()
        for hit in dispatches(path.read_text(), str(path))
    ]
    assert offenders == []


def test_the_scan_catches_each_form_of_dispatch() -> None:
    code = (
        "if isinstance(ref, LocalRef): pass\n"
        "if isinstance(ref, (ShareRef, models.LocalRef)): pass\n"
        "if isinstance(ref, ShareRef | LocalRef): pass\n"
        "if ref.kind == 'azure-disk': pass\n"
        "if spec.disk.kind in ('local', 'share'): pass\n"
        "if kind != 'vsphere': pass\n"
        "if type(ref) is AzureSnapshotRef: pass\n"
        "match ref:\n"
        "    case VsphereDiskRef(vm=vm): pass\n"
        "match ref.kind:\n"
        "    case 'datastore': pass\n"
    )
    assert [hit.split(":")[0] for hit in dispatches(code)] == ["1", "2", "3", "4", "5", "6", "7", "9", "11"]
    assert dispatches("if resource.kind == VM: pass\nif isinstance(x, Resource): pass\n") == []
