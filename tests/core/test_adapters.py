"""Every disk-reference kind through its adapter: text and reference are exact inverses (issue 15, part 1).

``parse(format(ref)) == ref`` for generated references with hostile-but-valid values, and
``format(parse(text)) == text`` for canonical texts; bad text is one ``InputError`` naming the
argument and the expected shape. No connector is needed: the text form is pure.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from cli.locations import parse_location
from imageport.adapters.protocol import DiskAdapter
from imageport.adapters.registry import (
    ADAPTERS,
    CE_HOSTS,
    adapter_for,
    adapter_for_scheme,
    ce_host,
    format_ref,
    hosts_ce,
    parse_ref,
)
from imageport.disks.local_files import LOCAL
from imageport.errors import InputError
from imageport.models import (
    AzureDiskRef,
    AzureSnapshotRef,
    BlobFolderRef,
    DatastoreFileRef,
    DiskFormat,
    LocalRef,
    ShareRef,
    VsphereDiskRef,
    XenServerDiskRef,
)
from imageport.models.refs import AhvDiskRef
from imageport.names import store_path
from imageport.storage.local import LocalDirectoryConfig
from tests.core.disks.images import MiB, make_raw
from tests.hostile import BOUNDED, SEEDS, hostile_strings

connectors = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
azure_names = st.from_regex(r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,20}[A-Za-z0-9_])?", fullmatch=True)
# Values that may hold what splits a location: %, ?, #, &, =, / (and everything else hostile_strings makes).
SPLITTERS = st.lists(st.sampled_from(["%", "%25", "%2F", "?", "#", "&", "=", "/", "a", " ", "é", "\n"]),
                     min_size=1, max_size=8).map("".join)  # fmt: skip
free_text = st.one_of(hostile_strings, SPLITTERS, st.sampled_from(SEEDS)).filter(bool)


def _path(text: str) -> str:
    """A valid connector path made from ``text`` (store_path's normal form), or a plain one if it is refused."""
    try:
        return store_path(text)
    except ValueError:
        return "gold/x.vhdx"


paths = st.one_of(hostile_strings, SPLITTERS.map(lambda s: s.replace("?", "").replace("#", ""))).map(_path)
formats = st.one_of(st.none(), st.sampled_from(list(DiskFormat)))
refs = st.one_of(
    st.builds(LocalRef, connector=connectors, path=paths, format=formats),
    st.builds(ShareRef, connector=connectors, path=paths, format=formats),
    st.builds(AzureDiskRef, connector=connectors, resource_group=azure_names, name=azure_names),
    st.builds(AzureSnapshotRef, connector=connectors, resource_group=azure_names, name=azure_names),
    st.builds(DatastoreFileRef, connector=connectors, datastore=free_text, path=paths.filter(bool),
              create_vm=st.one_of(st.none(), free_text.map(lambda t: t[:80]))),
    st.builds(VsphereDiskRef, connector=connectors, vm=free_text,
              disk=st.one_of(st.none(), free_text, st.just("")), snapshot=st.one_of(st.none(), free_text)),
    st.builds(XenServerDiskRef, connector=connectors, vm=free_text,
              disk=st.one_of(st.none(), free_text, st.just("")), snapshot=st.one_of(st.none(), free_text)),
    st.builds(AhvDiskRef, connector=connectors, vm=free_text, disk=st.one_of(st.none(), free_text, st.just(""))),
    st.builds(BlobFolderRef, connector=connectors, path=paths),
)  # fmt: skip


def test_every_reference_kind_has_one_adapter() -> None:
    kinds = [kind for kind, _ in ADAPTERS]
    union_kinds = {cls.model_fields["kind"].default for cls in
                   (VsphereDiskRef, AhvDiskRef, DatastoreFileRef, AzureDiskRef, AzureSnapshotRef, ShareRef, LocalRef,
                    XenServerDiskRef, BlobFolderRef)}  # fmt: skip
    assert sorted(kinds) == sorted(union_kinds) and len(set(kinds)) == len(kinds)
    for kind, adapter in ADAPTERS:
        assert isinstance(adapter, DiskAdapter) and adapter.kind == kind
        assert adapter.ref_type.model_fields["kind"].default == kind
        assert all(adapter_for_scheme(f"{s}://x") is adapter for s in adapter.schemes)
    with pytest.raises(InputError, match="unknown disk kind 'hyper-v'"):
        adapter_for("hyper-v")


@BOUNDED
@given(refs)
def test_parse_undoes_format_for_every_kind(ref: Any) -> None:
    text = format_ref(ref)
    assert parse_ref(text) == ref
    assert parse_location(text, "SOURCE") == ref  # what a result prints, the CLI reads back
    assert format_ref(parse_ref(text)) == text


CANONICAL = [
    "local://local/gold.vhdx",
    "local://lab/a b/Gold é.vhdx?format=vhdx",
    "smb://nas/",
    "smb://nas/images/gold.vhdx",
    "smb://nas/100%25 done/x%23y.vhd?format=vhd",
    "azure-disk://az/rg-vdi/gold",
    "azure-snapshot://az/rg.(x)/gold-snap_",
    "datastore://vc/LocalDS_0/gold/gold.vmdk",
    "datastore://vc/DS%2F1 (x)/a/b.vmdk",
    "datastore://vc/LocalDS_0/gold/gold.vmdk?create_vm=Gold %26 VM",
    "datastore://vc/LocalDS_0/gold/gold.vmdk?attach_to_vm=vm-42",
    "vsphere://vc/gold-vm",
    "vsphere://vc/DC0/vm/folder/gold",
    "vsphere://vc/vm-123?disk=[LocalDS_0] gold/gold.vmdk",
    "vsphere://vc/a%3Fb%23c?disk=Hard disk 1&snapshot=before %26 after %3D ok",
    "vsphere://vc/gold?snapshot=s",
    "xenserver://pool/gold-vm",
    "xenserver://pool/6f1c2d9e-0b7a-4c1e-9d2f-3a4b5c6d7e8f?disk=xvdb",
    "xenserver://pool/Gold & co?disk=0&snapshot=before patch %3D ok",
    "ahv://pc/gold-vm",
    "ahv://pc/0b9e5e1a-2f4c-4a77-9d1e-3c5a1b2c3d4e?disk=scsi.0",
    "ahv://pc/a%3Fb%23c?disk=sata.1",
    "blob://media/citrix/pvs",
    "blob://media/",
]


@pytest.mark.parametrize("text", CANONICAL)
def test_format_undoes_parse_for_canonical_texts(text: str) -> None:
    ref = parse_ref(text)
    assert format_ref(ref) == text
    assert adapter_for(ref).format(ref) == text and adapter_for_scheme(text) is adapter_for(ref)


def test_older_and_hand_typed_spellings_are_read() -> None:
    assert parse_ref("share://nas/a/b.vhdx") == ShareRef(connector="nas", path="a/b.vhdx")  # main's reports
    assert parse_ref("smb://nas/a%41") == ShareRef(connector="nas", path="aA")  # any %XX is undone
    assert parse_ref("smb://nas/100%.vhdx").path == "100%.vhdx"  # a % that starts no escape stays
    assert parse_ref("vsphere://vc/g?snapshot=s&disk=d") == VsphereDiskRef(connector="vc", vm="g", disk="d",
                                                                           snapshot="s")  # fmt: skip


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("azure-disk://az/only-two", "use azure-disk://CONNECTOR/RESOURCE_GROUP/DISK"),
        ("azure-snapshot://az/rg/a/b", "use azure-snapshot://CONNECTOR/RESOURCE_GROUP/NAME"),
        ("azure-disk://az/rg/d?x=1", "unknown option 'x' (known: none)"),
        ("datastore://vc/DS0", "use datastore://CONNECTOR/DATASTORE/path"),
        ("smb://nas/a?format=qcow9", "format"),
        ("smb://nas/a?format=vhd&format=vhdx", "repeats a key"),
        ("smb://nas/../etc", ".."),
        ("smb://Bad_Name/x", "not a valid connector name"),
        ("local://lab/a%FF", "not UTF-8"),
        ("vsphere://vc/", "vm"),
        ("vsphere://vc/g?disk", "not one key=value"),
        ("xen://pool/vm", "not a disk location; use one of vsphere://"),
    ],
)
def test_bad_text_names_the_argument_and_the_shape(text: str, expected: str) -> None:
    with pytest.raises(InputError) as refused:
        parse_ref(text, "SOURCE")
    message = str(refused.value)
    assert message.startswith("SOURCE ") and expected in message and "\n" not in message


def test_prepared_is_the_one_naming_rule() -> None:
    local = LocalRef(connector="lab", path="a/gold.vhdx")
    assert adapter_for(local).prepared(local) == LocalRef(connector="lab", path="a/gold-prepared.vhdx")
    disk = AzureDiskRef(connector="az", resource_group="rg", name="gold")
    assert adapter_for(disk).prepared(disk).name == "gold-prepared"
    assert adapter_for(disk).prepared(disk, "mine").name == "mine"
    snap = AzureSnapshotRef(connector="az", resource_group="rg", name="gold")
    assert adapter_for(snap).prepared(snap) == AzureDiskRef(connector="az", resource_group="rg", name="gold-prepared")
    kept = AzureSnapshotRef(connector="az", resource_group="rg", name="gold-v2")
    assert adapter_for(disk).prepared(disk, snapshot="gold-v2") == kept
    on_ds = DatastoreFileRef(connector="vc", datastore="DS1", path="gold/gold.vmdk", create_vm="Gold")
    assert adapter_for(on_ds).prepared(on_ds) == on_ds.model_copy(update={"path": "gold/gold-prepared.vmdk"})
    assert adapter_for(on_ds).plain(on_ds) == DatastoreFileRef(connector="vc", datastore="DS1", path="gold/gold.vmdk")
    vm = VsphereDiskRef(connector="vc", vm="gold")
    with pytest.raises(InputError, match="a vSphere target is a datastore disk"):
        adapter_for(vm).prepared(vm)


def test_an_invalid_reference_is_never_formatted_into_a_valid_one() -> None:
    with pytest.raises(ValidationError):
        LocalRef(connector="lab", path="../x")  # the models refuse before an adapter could format it


class _LabConnectors:
    """The injected connector lookup, without Prefect: every name is a local directory at ``root``."""

    def __init__(self, root: Path) -> None:
        self.root, self.asked = root, []  # type: ignore[var-annotated]

    def build(self, name: str, connector_kind: str, where: str) -> Any:
        self.asked.append((name, connector_kind))
        if connector_kind != "local":
            raise InputError(f"{where}: connector {name!r} is a local connector; this needs a {connector_kind} one")
        return LocalDirectoryConfig(root=str(self.root)).build()


def test_an_adapter_reads_through_the_injected_connectors(tmp_path: Path) -> None:
    lab = _LabConnectors(tmp_path)
    make_raw(tmp_path / "gold.raw", MiB, runs=2, seed=3, max_run=MiB // 4)
    ref = LocalRef(connector="lab", path="gold.raw")
    adapter = adapter_for(ref)
    with adapter.open_read(ref, lab) as (fs, path):
        assert fs is LOCAL and path == str(tmp_path / "gold.raw")
    first = adapter.identity(ref, lab)
    assert first.startswith(f"local lab/{tmp_path}/gold.raw ") and adapter.identity(ref, lab) == first
    assert adapter.identity(LocalRef(connector="lab", path="none.raw"), lab) == "missing"
    (tmp_path / "Store").mkdir()
    with adapter.store_folder(LocalRef(connector="lab", path="Store"), lab) as folder:
        assert folder is not None
    assert lab.asked and all(asked == ("lab", "local") for asked in lab.asked)
    share = ShareRef(connector="lab", path="gold.raw")
    with pytest.raises(InputError, match=r"smb://lab/gold\.raw: connector 'lab' is a local connector"):
        adapter_for(share).identity(share, lab)
    vm = VsphereDiskRef(connector="vc", vm="gold")
    refused = pytest.raises(InputError, match=r"vsphere://vc/gold: a vsphere disk is read by exporting it first")
    with refused, adapter_for(vm).open_read(vm, lab):
        pass
    assert adapter_for(vm).cache_expiry is not None and adapter.cache_expiry is None  # no content change id


def test_compositing_engine_hosts_come_from_the_table() -> None:
    assert [kind for kind in CE_HOSTS] == ["local", "azure", "vsphere", "ahv", "xenserver"]
    assert not hosts_ce("fileshare")
    with pytest.raises(InputError, match="connector 'nas' is a fileshare connector, which cannot host a compositing"):
        ce_host("fileshare", "nas")
    assert not CE_HOSTS["vsphere"].in_use(SimpleNamespace(ce_template=None))  # never made CEs there: not reaped
    assert CE_HOSTS["vsphere"].in_use(SimpleNamespace(ce_template="ce-template"))
    assert all(adapter.connector_kind in ("local", "azure", "vsphere", "fileshare", "xenserver", "ahv", "blob")
               for _, adapter in ADAPTERS)  # fmt: skip
