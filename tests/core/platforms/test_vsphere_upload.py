"""vSphere as an upload target, on the simulator: a verified flat disk on a datastore, with a VM made or attached."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from pyVmomi import vim

from imageport.disks.convert import hash_disk
from imageport.disks.local_files import LOCAL
from imageport.errors import AlreadyExists
from imageport.platforms.vsphere.ce_host import attributes
from imageport.platforms.vsphere.inventory import describe_vm, find_vm, retrieve
from imageport.platforms.vsphere.upload import upload_to_datastore
from tests.core.disks.images import MiB, make_raw, qemu_convert

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def gpt_vhdx(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small image partitioned GPT -- a protective MBR and the header at LBA 1 -- so a VM made for it boots
    EFI, as a dynamic VHDX."""
    d = tmp_path_factory.mktemp("upload")
    raw = make_raw(d / "gold.raw", 8 * MiB, runs=4, seed=5, max_run=MiB)
    with open(raw, "r+b") as f:
        f.seek(446 + 4)
        f.write(b"\xee")  # the first partition entry's type: protective
        f.seek(510)
        f.write(b"\x55\xaa" + b"EFI PART")
    return raw, qemu_convert(raw, d / "gold.vhdx", "vhdx-dynamic")


def disk_files(session, vm: str) -> list[str]:  # type: ignore[no-untyped-def]
    ((_, props),) = retrieve(session.si, [find_vm(session.si, vm)], ["config.hardware.device"])
    return [d.backing.fileName for d in props["config.hardware.device"] if isinstance(d, vim.vm.device.VirtualDisk)]


def test_an_upload_is_a_verified_flat_disk_with_a_vm_and_an_existing_disk_is_refused(ce_session, gpt_vhdx) -> None:  # type: ignore[no-untyped-def]
    raw, vhdx = gpt_vhdx
    folder, vm = f"up-{uuid.uuid4().hex[:8]}", f"up-vm-{uuid.uuid4().hex[:8]}"
    result = upload_to_datastore(ce_session, str(vhdx), LOCAL, "LocalDS_0", f"{folder}/gold.vmdk", create_vm=vm,
                                 tags={"cost center": "vdi-7"})  # fmt: skip
    assert result.target == f"[LocalDS_0] {folder}/gold.vmdk" and result.verified
    assert result.files == [f"[LocalDS_0] {folder}/gold.vmdk", f"[LocalDS_0] {folder}/gold-flat.vmdk"]
    assert result.content_hash == hash_disk(raw).content_hash == hash_disk(vhdx).content_hash
    assert result.virtual_size == 8 * MiB and result.firmware == "efi"
    # Read back independently, through the datastore's files: the descriptor opens as the same disk.
    files = ce_session.datastore_files("LocalDS_0")
    try:
        assert hash_disk(f"{folder}/gold.vmdk", fs=files).content_hash == result.content_hash
    finally:
        files.close()
    assert result.vm is not None and result.vm.created and result.vm.name == vm
    info = describe_vm(ce_session.si, find_vm(ce_session.si, result.vm.moref))
    assert info.firmware == "efi" and disk_files(ce_session, vm) == [result.target]
    assert attributes(ce_session, find_vm(ce_session.si, result.vm.moref)) == {"cost center": "vdi-7"}

    with pytest.raises(AlreadyExists, match=rf"\[LocalDS_0\] {folder}/gold.vmdk exists"):
        upload_to_datastore(ce_session, str(vhdx), LOCAL, "LocalDS_0", f"{folder}/gold.vmdk")
    again = upload_to_datastore(ce_session, str(raw), LOCAL, "LocalDS_0", f"{folder}/gold.vmdk", overwrite=True)
    assert again.content_hash == result.content_hash and again.vm is None

    second = upload_to_datastore(ce_session, str(raw), LOCAL, "LocalDS_0", f"{folder}/data.vmdk", attach_to_vm=vm)
    assert second.vm is not None and not second.vm.created and second.vm.moref == result.vm.moref
    assert disk_files(ce_session, vm) == [result.target, second.target]
