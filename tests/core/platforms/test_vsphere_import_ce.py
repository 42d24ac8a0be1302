"""Import to a datastore and the compositing-engine host calls, against the suite's vCenter simulator."""

from __future__ import annotations

from pathlib import Path

import pytest

from imageport.disks.convert import hash_disk
from imageport.disks.local_files import LOCAL
from imageport.errors import DatastoreFileExists, InputError
from imageport.platforms.vsphere.ce_host import (
    attach_disk,
    attributes,
    create_ce_vm,
    destroy_ce_vm,
    detach_disk,
    list_ce_vms,
)
from imageport.platforms.vsphere.imports import create_vm_for_disk, import_to_datastore
from imageport.platforms.vsphere.inventory import describe_vm, find_vm, retrieve
from imageport.results import ImportDetails, StageResult, from_vsphere_import
from tests.core.disks.images import MiB, make_raw, qemu_compare, qemu_convert

pytestmark = pytest.mark.integration


@pytest.fixture()
def session(ce_session):  # type: ignore[no-untyped-def]
    return ce_session


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("import")
    raw = make_raw(d / "gold.raw", 32 * MiB, runs=6, seed=23, max_run=3 * MiB)
    return raw, qemu_convert(raw, d / "gold.vhdx", "vhdx-dynamic")


def nics(session, vm: str) -> list[object]:  # type: ignore[no-untyped-def]
    from pyVmomi import vim

    ((_, props),) = retrieve(session.si, [find_vm(session.si, vm)], ["config.hardware.device"])
    return [d for d in props["config.hardware.device"] if isinstance(d, vim.vm.device.VirtualEthernetCard)]


def download(session, datastore_path: str, to: Path) -> Path:  # type: ignore[no-untyped-def]
    datastore, path = datastore_path.split("] ", 1)
    fs = session.datastore_files(datastore.lstrip("["))
    source = fs.open(path)
    to.write_bytes(source.pread(0, source.size))
    fs.close()
    return to


@pytest.mark.parametrize("kind", ["flat", "stream"])
def test_import_writes_a_vmdk_qemu_reads_as_identical(session, image, tmp_path: Path, kind: str) -> None:  # type: ignore[no-untyped-def]
    raw, vhdx = image
    result = import_to_datastore(session, str(vhdx), LOCAL, "LocalDS_0", f"imp-{kind}", "gold", kind=kind)
    assert result.disk == f"[LocalDS_0] imp-{kind}/gold.vmdk"
    assert result.content_hash == hash_disk(raw).content_hash
    local = tmp_path / "dl"
    local.mkdir()
    for f in result.files:
        download(session, f, local / f.rsplit("/", 1)[1])
    assert sorted(p.name for p in local.iterdir()) == sorted(f.rsplit("/", 1)[1] for f in result.files)
    assert qemu_compare(raw, "raw", local / "gold.vmdk", "vmdk").returncode == 0
    if kind == "flat":
        assert 'createType="vmfs"' in (local / "gold.vmdk").read_text()
    files = session.datastore_files("LocalDS_0")
    assert not files.isfile(f"imp-{kind}/gold-flat.vmdk.imageport-partial")
    assert not files.isfile(f"imp-{kind}/gold.vmdk.imageport-partial")
    with pytest.raises(DatastoreFileExists, match="--force"):
        import_to_datastore(session, str(vhdx), LOCAL, "LocalDS_0", f"imp-{kind}", "gold", kind=kind)


def test_a_vm_is_created_around_an_imported_disk(session, image) -> None:  # type: ignore[no-untyped-def]
    _, vhdx = image
    result = import_to_datastore(session, str(vhdx), LOCAL, "LocalDS_0", "imp-vm", "gold")
    moref = create_vm_for_disk(
        session, "imported-gold", result.disk, capacity_bytes=result.virtual_size, firmware="efi"
    )
    info = describe_vm(session.si, find_vm(session.si, moref))
    assert info.name == "imported-gold" and info.firmware == "efi"
    assert [d.file for d in info.disks] == [result.disk] and info.disks[0].controller == "pvscsi"
    typed = from_vsphere_import(result, source="local://x/gold.vhdx")  # the one converter to a StageResult
    assert (typed.stage, typed.target, typed.content_hash) == ("upload", result.disk, result.content_hash)
    assert [r.describe() for r in typed.created] == [f"vsphere-disk {result.disk}"]
    assert isinstance(typed.details, ImportDetails) and typed.details.files == result.files
    assert StageResult.model_validate_json(typed.model_dump_json()) == typed
    with pytest.raises(InputError, match="controller"):
        create_vm_for_disk(session, "x", result.disk, capacity_bytes=1, controller="floppy")


def test_helper_vm_lifecycle_and_listing_by_mark(session, image) -> None:  # type: ignore[no-untyped-def]
    _, vhdx = image
    disk = import_to_datastore(session, str(vhdx), LOCAL, "LocalDS_0", "imp-ce", "work").disk
    tags = {"cost center": "vdi-7", "owner": "team a"}
    ce = create_ce_vm(session, "imageport-ce-test", run_id="run42", ttl_s=600, tags=tags)
    assert not ce.expired
    # The user's tags are the helper VM's custom attributes, as the simulator's CustomFieldsManager holds them
    # (read back through pyVmomi: the fields' definitions and the VM's customValue).
    assert attributes(session, find_vm(session.si, ce.moref)) == tags
    again = create_ce_vm(session, "imageport-ce-test2", run_id="run43", ttl_s=600, tags={"owner": "team b"})
    assert attributes(session, find_vm(session.si, again.moref)) == {"owner": "team b"}  # the definition is reused
    destroy_ce_vm(session, again.moref)
    assert nics(session, "DC0_H0_VM1") and not nics(session, ce.moref)  # the template's NIC is not cloned along
    assert [(v.moref, v.run_id) for v in list_ce_vms(session)] == [(ce.moref, "run42")]
    attach_disk(session, ce.moref, disk, mode="independent_nonpersistent")
    disks = describe_vm(session.si, find_vm(session.si, ce.moref)).disks
    attached = [d for d in disks if d.file == disk]
    assert attached and attached[0].mode == "independent_nonpersistent"
    detach_disk(session, ce.moref, disk)
    assert disk not in [d.file for d in describe_vm(session.si, find_vm(session.si, ce.moref)).disks]
    assert session.datastore_files("LocalDS_0").isfile("imp-ce/work.vmdk")  # detaching keeps the file
    destroy_ce_vm(session, ce.moref)
    assert list_ce_vms(session) == []
    with pytest.raises(InputError, match="not an imageport helper VM"):
        destroy_ce_vm(session, "DC0_H0_VM0")
