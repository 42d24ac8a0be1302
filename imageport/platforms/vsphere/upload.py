"""vSphere as an upload target: an image onto a datastore as a disk ESXi runs, optionally with a VM.

The disk is a flat VMDK (``NAME.vmdk`` descriptor + ``NAME-flat.vmdk``), written
by ``imports.import_to_datastore``: to a partial file, read back and checked
against the content hash of the source as it was read, moved into place, the
descriptor last. An existing disk is refused unless ``overwrite``. The
datastore's HTTP endpoint takes a file only whole (no ranged writes), so a
retry starts the file again; what a failed attempt sent is deleted.

Then, if asked, the disk gets a VM (``place_vm``): a new powered-off VM around
it (firmware from the image's partition style: GPT is EFI, MBR is BIOS) or an
existing VM it is attached to. The prepare of a vSphere disk uses ``place_vm``
too, for the prepared copy.
"""

from __future__ import annotations

import posixpath
import time
from dataclasses import asdict, dataclass
from typing import Any

from imageport.disks.convert import Progress
from imageport.disks.detect import open_disk
from imageport.disks.io import FileSystem
from imageport.disks.partitions import PartitionStyle, partition_style
from imageport.errors import InputError
from imageport.models import DiskFormat
from imageport.platforms.vsphere import ce_host
from imageport.platforms.vsphere.imports import create_vm_for_disk, import_to_datastore
from imageport.platforms.vsphere.inventory import find_vm
from imageport.platforms.vsphere.session import VsphereSession


@dataclass
class PlacedVm:
    moref: str
    name: str
    created: bool  # False: the disk was attached to an existing VM


@dataclass
class DatastoreUpload:
    target: str  # "[ds] folder/NAME.vmdk": what a VM's disk backing names
    files: list[str]
    virtual_size: int
    content_hash: str  # of the source as read; the datastore copy read back equal to it
    bytes_written: int  # the flat file is written whole: holes are sent as zeros
    firmware: str  # "efi" (GPT) or "bios" (MBR), as read from the image
    seconds: float
    verified: bool = True
    vm: PlacedVm | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def firmware_of(path: str, fs: FileSystem, source_format: DiskFormat | None = None) -> str:
    """vSphere's ``config.firmware`` for the image: ``efi`` when it is partitioned GPT, else ``bios``."""
    with open_disk(path, source_format, fs=fs) as reader:
        return "efi" if partition_style(reader) is PartitionStyle.GPT else "bios"


def split_vmdk_path(path: str) -> tuple[str, str]:
    """``folder/NAME.vmdk`` -> (folder, NAME)."""
    folder, file = posixpath.split(path)
    if not file.lower().endswith(".vmdk") or len(file) <= len(".vmdk"):
        raise InputError(f"{path}: a disk on a datastore is named by its descriptor, NAME.vmdk")
    return folder, file[: -len(".vmdk")]


def place_vm(
    session: VsphereSession,
    disk: str,
    virtual_size: int,
    *,
    create_vm: str | None = None,
    attach_to_vm: str | None = None,
    firmware: str = "efi",
    tags: dict[str, str] | None = None,
) -> PlacedVm | None:
    """Give ``disk`` (``[ds] folder/NAME.vmdk``) a VM: create one around it, or attach it to an existing one.
    ``tags``: the custom attributes of a VM it creates (an existing VM is not ours to mark)."""
    if create_vm:
        moref = create_vm_for_disk(session, create_vm, disk, capacity_bytes=virtual_size, firmware=firmware)
        if tags:
            ce_host.set_attributes(session, find_vm(session.si or session.connect(), moref), tags)
        return PlacedVm(moref, create_vm, created=True)
    if attach_to_vm:
        si = session.si or session.connect()
        vm = find_vm(si, attach_to_vm)
        ce_host.attach_disk(session, vm._moId, disk, "persistent")
        return PlacedVm(str(vm._moId), str(vm.name), created=False)
    return None


def upload_to_datastore(
    session: VsphereSession,
    source: str,
    source_fs: FileSystem,
    datastore: str,
    path: str,
    *,
    overwrite: bool = False,
    create_vm: str | None = None,
    attach_to_vm: str | None = None,
    source_format: DiskFormat | None = None,
    progress: Progress | None = None,
    tags: dict[str, str] | None = None,
) -> DatastoreUpload:
    """Put the image ``source`` on ``[datastore] path`` (``folder/NAME.vmdk``) as a verified flat disk; ``tags``
    go on a VM it creates (custom attributes)."""
    started = time.monotonic()
    folder, name = split_vmdk_path(path)
    firmware = firmware_of(source, source_fs, source_format)
    imported = import_to_datastore(session, source, source_fs, datastore, folder, name, overwrite=overwrite,
                                   progress=progress, source_format=source_format)  # fmt: skip
    vm = place_vm(session, imported.disk, imported.virtual_size, create_vm=create_vm, attach_to_vm=attach_to_vm,
                  firmware=firmware, tags=tags)  # fmt: skip
    return DatastoreUpload(imported.disk, imported.files, imported.virtual_size, imported.content_hash,
                           imported.virtual_size, firmware, time.monotonic() - started, vm=vm)  # fmt: skip
