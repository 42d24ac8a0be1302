"""Every spec model and the spec loader under generated hostile strings (issue 18, part 6).

Each example takes a valid spec of one model, puts a hostile string into one of its string fields
(or as a tags key, or as an unknown field), and validates it: the only failure allowed is an
``InputError`` whose every line names a field; whatever passes is confined (paths inside their
root, vDisk names by PVS's rules, display names on one line).
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from imageport import specfile
from imageport.errors import InputError
from imageport.models import (
    AzureDiskRef,
    AzureSnapshotRef,
    DatastoreFileRef,
    DiagnosticsSpec,
    ExportSpec,
    LocalRef,
    PortSpec,
    PortTarget,
    PrepareSpec,
    PublishSpec,
    ShareRef,
    UploadSpec,
    VsphereDiskRef,
    parse_model,
)
from imageport.names import free_text, store_path, vdisk_name
from imageport.storage.local import LocalDirectory, LocalDirectoryConfig
from tests.hostile import BOUNDED, hostile_strings

LOCAL = {"kind": "local", "connector": "local", "path": "vms/gold.vhdx"}
SHARE = {"kind": "share", "connector": "nas", "path": "exports/gold.vhdx"}
AZURE = {"kind": "azure-disk", "connector": "az", "resource_group": "rg-vdi", "name": "gold"}
VSPHERE = {"kind": "vsphere", "connector": "vc", "vm": "DC0/vm/gold", "disk": "Hard disk 1", "snapshot": "base"}
VALID: list[tuple[type, dict[str, Any]]] = [
    (VsphereDiskRef, VSPHERE),
    (DatastoreFileRef, {"kind": "datastore", "connector": "vc", "datastore": "DS0", "path": "gold/gold.vmdk"}),
    (AzureDiskRef, AZURE),
    (AzureSnapshotRef, {**AZURE, "kind": "azure-snapshot"}),
    (ShareRef, SHARE),
    (LocalRef, LOCAL),
    (ExportSpec, {"source": VSPHERE, "destination": SHARE}),
    (UploadSpec, {"source": SHARE, "target": AZURE, "tags": {"team": "vdi"}}),
    (PrepareSpec, {"disk": LOCAL, "target_platform": "local", "output": {**LOCAL, "path": "vms/out.vhdx"},
                   "installers": SHARE, "output_disk_name": "gold-prepared",
                   "xd_reconfigure": [{"name": "/controllers", "value": "dc1.example.com"}]}),
    (PublishSpec, {"source": LOCAL, "store": SHARE, "name": "Win11-Gold", "pvs_site": "Site1", "pvs_store": "S1"}),
    (DiagnosticsSpec, {"disk": LOCAL, "output": SHARE}),
    (PortTarget, {"disk": LOCAL, "store": SHARE, "vdisk_name": "Gold"}),
    (PortSpec, {"workflow": "mcs-to-pvs", "source": VSPHERE, "staging": SHARE,
                "targets": [{"disk": LOCAL, "store": {**SHARE, "path": "Store"}, "vdisk_name": "Gold"}],
                "prepare": {"provisioning_type": "pvs"}, "publish": {"pvs_site": "Site1", "pvs_store": "S1"},
                "upload": {"tags": {"k": "v"}}}),
]  # fmt: skip


def _slots(data: Any, at: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], str]]:
    """Where a hostile string can go: ("value", path) for string leaves, ("key", path) for mappings."""
    found: list[tuple[tuple[Any, ...], str]] = []
    if isinstance(data, dict):
        found.append((at, "key"))
        for key, value in data.items():
            found += _slots(value, (*at, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            found += _slots(value, (*at, i))
    elif isinstance(data, str):
        found.append((at, "value"))
    return found


def _plant(data: dict[str, Any], at: tuple[Any, ...], how: str, text: str) -> dict[str, Any]:
    planted = copy.deepcopy(data)
    parent: Any = planted
    for step in at[:-1] if how == "value" else at:
        parent = parent[step]
    if how == "value":
        parent[at[-1]] = text
    else:
        parent[text] = "x"  # a tags key, or an unknown field
    return planted


def _walk(data: Any, key: str = "") -> list[tuple[str, Any]]:
    if isinstance(data, dict):
        return [pair for k, v in data.items() for pair in _walk(v, str(k))]
    if isinstance(data, list):
        return [pair for v in data for pair in _walk(v, key)]
    return [(key, data)]


def _assert_confined(model: Any, root: Path) -> None:
    local = LocalDirectory(LocalDirectoryConfig(root=str(root)))
    for key, value in _walk(model.model_dump(mode="json")):
        if key == "path":
            assert store_path(value) == value and "\\" not in value and not value.startswith("/")
            assert ".." not in value.split("/") and "\x00" not in value
            assert local.path(value).is_relative_to(root.resolve())
        elif key in ("vdisk_name",) or (key == "name" and isinstance(model, PublishSpec)):
            assert vdisk_name(value) == value
        elif key in ("pvs_site", "pvs_store") and value is not None:
            assert free_text(value) == value


@BOUNDED
@given(st.data(), hostile_strings)
def test_every_spec_model_refuses_hostile_strings_cleanly_or_confines_them(data: st.DataObject, text: str) -> None:
    model, valid = data.draw(st.sampled_from(VALID), label="model")
    at, how = data.draw(st.sampled_from(_slots(valid)), label="slot")
    planted = _plant(valid, at, how, text)
    try:
        parsed = parse_model(model, planted)
    except InputError as exc:
        head, *lines = str(exc).split("\n")
        assert head == f"invalid {model.__name__}:" and lines
        assert all(line.startswith("  ") and ": " in line for line in lines), str(exc)
        return
    with tempfile.TemporaryDirectory() as root:
        _assert_confined(parsed, Path(root))


@BOUNDED
@given(st.one_of(hostile_strings, st.recursive(hostile_strings, lambda inner: st.builds(
    lambda key, child, flow: f"{{{key}: {child}}}" if flow else f"{key}:\n  {child}", inner, inner, st.booleans()),
    max_leaves=40)))  # fmt: skip
def test_the_spec_loader_refuses_hostile_documents_cleanly(text: str) -> None:
    try:
        specfile.loads(text, "spec.yaml")
    except InputError as exc:
        assert str(exc).startswith("spec.yaml") and "\n" not in str(exc).rstrip("\n").split("\n", 1)[0]
