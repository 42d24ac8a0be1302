"""Exporting a VM's disk from the suite's vCenter simulator to the Samba share; NFC through a stand-in lease."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from imageport.disks.convert import hash_disk
from imageport.errors import FormatError, InputError
from imageport.models import DiskFormat
from imageport.platforms.vsphere.export import export_vm_disk
from imageport.platforms.vsphere.inventory import describe_vm, find_vm, list_vms, retrieve, split_datastore_path
from imageport.platforms.vsphere.nfc import disk_urls
from imageport.results import ExportDetails, StageResult, from_vsphere_export
from imageport.storage.smb_files import SmbFileSystem
from tests.core.disks.images import MiB, make_raw, qemu_compare, qemu_convert
from tests.infra.configs import samba_share, vcsim_vsphere
from tests.infra.nfc_standin import NfcHost, StandInLease

pytestmark = pytest.mark.integration

VM = "DC0_H0_VM0"


@pytest.fixture(scope="module")
def seed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("vmseed")
    raw = make_raw(d / "seed.raw", 40 * MiB, runs=8, seed=17, max_run=3 * MiB)
    return {
        "raw": raw,
        "sparse": qemu_convert(raw, d / "seed.vmdk", "vmdk-sparse"),
        "stream": qemu_convert(raw, d / "seed-stream.vmdk", "vmdk-stream"),
    }


@pytest.fixture()
def vsphere(vcsim, seed):  # type: ignore[no-untyped-def]
    """A logged-in session whose VM's disk file holds the seed (put through /folder)."""
    session = vcsim_vsphere(vcsim).build()
    session.connect()
    info = describe_vm(session.si, find_vm(session.si, VM))
    datastore, path = split_datastore_path(info.disks[0].file)
    files = session.datastore_files(datastore)
    files.put(path, seed["sparse"].read_bytes())
    yield session, files, path
    files.close()
    session.close()


@pytest.fixture()
def share(samba, request):  # type: ignore[no-untyped-def]
    folder = request.node.name[:40]
    config = samba_share(samba, f"exports/{folder}")
    config.build().check()
    fs = SmbFileSystem(config.build())
    yield fs, Path(samba.info["share_dir"]) / "exports" / folder
    fs.close()


def vm_file_digest(files, path: str) -> str:  # type: ignore[no-untyped-def]
    source = files.open(path)
    return hashlib.sha256(source.pread(0, source.size)).hexdigest()


def test_inventory_lists_vms_and_their_disks(vsphere) -> None:  # type: ignore[no-untyped-def]
    session, _, path = vsphere
    vms = {v.name: v for v in list_vms(session.si)}
    assert VM in vms and vms[VM].moref.startswith("vm-") and vms[VM].firmware == "bios"
    disk = vms[VM].disks[0]
    assert disk.file == f"[LocalDS_0] {path}" and disk.datastore == "LocalDS_0" and disk.chain == [disk.file]
    assert disk.controller != "other" and disk.capacity_bytes > 0
    assert find_vm(session.si, vms[VM].moref)._moId == vms[VM].moref
    assert find_vm(session.si, f"DC0/vm/{VM}")._moId == vms[VM].moref
    with pytest.raises(Exception, match="no VM 'nope'"):
        find_vm(session.si, "nope")


def test_datastore_export_matches_the_seed_and_leaves_the_vm_as_it_was(vsphere, share, seed) -> None:  # type: ignore[no-untyped-def]
    session, files, path = vsphere
    fs, on_disk = share
    before = vm_file_digest(files, path)
    seen: list[str] = []

    def snapshot_said(done: int, total: int) -> None:  # while the snapshot exists: what vCenter holds of it
        if not seen:
            ((_, props),) = retrieve(session.si, [find_vm(session.si, VM)], ["snapshot"])
            seen.append(props["snapshot"].rootSnapshotList[0].description)

    result = export_vm_disk(session, VM, "gold.vhdx", fs, DiskFormat.VHDX, run_id="t1", progress=snapshot_said,
                            tags={"cost center": "vdi-7"})  # fmt: skip
    assert seen == ['Taken by imageport export run t1; removed when the export ends. Tags: {"cost center": "vdi-7"}']
    assert result.read_path == "datastore" and result.snapshot_created and result.snapshot == "imageport-export-t1"
    assert result.content_hash == hash_disk(seed["raw"]).content_hash
    assert qemu_compare(seed["raw"], "raw", on_disk / "gold.vhdx", "vhdx").returncode == 0
    assert vm_file_digest(files, path) == before
    assert describe_vm(session.si, find_vm(session.si, VM)).snapshots == []
    typed = from_vsphere_export(result)  # the one converter to a StageResult: the same facts, typed
    assert (typed.stage, typed.content_hash, typed.virtual_size) == ("export", result.content_hash, result.virtual_size)
    assert typed.bytes_written == result.data_written > 0 and typed.target == "gold.vhdx"
    assert typed.verified == result.verified == "written"  # the copy's proof, carried through
    assert [r.describe() for r in typed.removed] == [f"vsphere-snapshot {VM}/imageport-export-t1"]
    assert isinstance(typed.details, ExportDetails) and typed.details.read_path == "datastore"
    assert StageResult.model_validate_json(typed.model_dump_json()) == typed


def test_a_failed_export_still_removes_its_snapshot_and_leaves_nothing_complete(vsphere, share) -> None:  # type: ignore[no-untyped-def]
    session, _, _ = vsphere
    fs, on_disk = share

    def fail_half_way(done: int, total: int) -> None:
        if done >= total // 2:
            raise FormatError("test", "progress", None, "made to fail half-way")

    with pytest.raises(FormatError, match="half-way"):
        export_vm_disk(session, VM, "gold.vhdx", fs, DiskFormat.VHDX, progress=fail_half_way)
    assert describe_vm(session.si, find_vm(session.si, VM)).snapshots == []
    assert not (on_disk / "gold.vhdx").exists()


def test_an_expired_session_is_renewed_to_remove_the_snapshot(vsphere, share, seed) -> None:  # type: ignore[no-untyped-def]
    session, _, _ = vsphere
    fs, _ = share
    expired = []

    def expire_half_way(done: int, total: int) -> None:
        if not expired and done >= total // 2:
            session.si.content.sessionManager.Logout()  # as vCenter's idle timeout would
            expired.append(True)

    result = export_vm_disk(session, VM, "late.vhdx", fs, DiskFormat.VHDX, progress=expire_half_way)
    assert expired and result.snapshot_created and result.content_hash == hash_disk(seed["raw"]).content_hash
    assert describe_vm(session.si, find_vm(session.si, VM)).snapshots == []  # removed after logging in again


def test_a_named_snapshot_is_used_and_kept(vsphere, share, seed) -> None:  # type: ignore[no-untyped-def]
    from imageport.platforms.vsphere.waiting import wait_for_task

    session, _, _ = vsphere
    fs, _ = share
    vm = find_vm(session.si, VM)
    snap = wait_for_task(session.si, vm.CreateSnapshot_Task(name="golden", memory=False, quiesce=False), "snap")
    try:
        result = export_vm_disk(session, VM, "named.vhdx", fs, DiskFormat.VHDX, snapshot="golden")
        assert not result.snapshot_created and result.content_hash == hash_disk(seed["raw"]).content_hash
        assert describe_vm(session.si, vm).snapshots == ["golden"]
    finally:
        wait_for_task(session.si, snap.RemoveSnapshot_Task(removeChildren=False), "cleanup")
    with pytest.raises(Exception, match="no snapshot named 'missing'"):
        export_vm_disk(session, VM, "x.vhdx", fs, DiskFormat.VHDX, snapshot="missing")


def test_nfc_export_streams_the_same_disk_in_one_pass(vsphere, share, seed) -> None:  # type: ignore[no-untyped-def]
    session, _, _ = vsphere
    fs, on_disk = share
    cookie = session.si._stub.cookie
    host = NfcHost({"/nfc/lease-1/disk-0.vmdk": seed["stream"]}, cookie)
    lease = StandInLease([f"{host.url}/nfc/lease-1/disk-0.vmdk"])
    seen = []
    try:
        result = export_vm_disk(
            session,
            VM,
            "nfc.vhdx",
            fs,
            DiskFormat.VHDX,
            read_path="nfc",
            lease_factory=lambda si, vm, snap: seen.append(snap) or lease,
        )
    finally:
        host.close()
    assert result.read_path == "nfc" and lease.completed and not lease.aborted and lease.progress[-1] == 100
    assert seen[0] is not None  # a running VM is exported from its snapshot (ExportSnapshot)
    assert result.content_hash == hash_disk(seed["raw"]).content_hash
    assert qemu_compare(seed["raw"], "raw", on_disk / "nfc.vhdx", "vhdx").returncode == 0
    assert host.requests == ["/nfc/lease-1/disk-0.vmdk"]
    assert describe_vm(session.si, find_vm(session.si, VM)).snapshots == []


def test_a_cut_nfc_download_aborts_the_lease(vsphere, share, seed) -> None:  # type: ignore[no-untyped-def]
    session, _, _ = vsphere
    fs, on_disk = share
    host = NfcHost({"/nfc/l2/disk-0.vmdk": seed["stream"]}, session.si._stub.cookie, cut_after=2 * MiB)
    lease = StandInLease([f"{host.url}/nfc/l2/disk-0.vmdk"])
    try:
        with pytest.raises(Exception, match=r"cut short|IncompleteRead|ProtocolError|connection"):
            export_vm_disk(
                session, VM, "cut.vhdx", fs, DiskFormat.VHDX, read_path="nfc", lease_factory=lambda *a: lease
            )
    finally:
        host.close()
    assert lease.aborted and not lease.completed
    assert [p for p in os.listdir(on_disk) if p.startswith("cut")] == []
    assert describe_vm(session.si, find_vm(session.si, VM)).snapshots == []


def test_lease_urls_name_the_host_and_bad_choices_are_refused(vsphere, share) -> None:  # type: ignore[no-untyped-def]
    lease = StandInLease(["https://*/nfc/abc/disk-0.vmdk"])
    assert disk_urls(lease, "vc.example:443") == ["https://vc.example:443/nfc/abc/disk-0.vmdk"]
    session, _, _ = vsphere
    fs, _ = share
    with pytest.raises(InputError, match="read path"):
        export_vm_disk(session, VM, "x.vhdx", fs, read_path="ftp")
    with pytest.raises(InputError, match="no disk 'Hard disk 9'"):
        export_vm_disk(session, VM, "x.vhdx", fs, disk="Hard disk 9")
