"""Import an image to a datastore (vSphere as a target), optionally with a VM around it.

Two disk layouts, both written front to back in one streaming PUT (the
datastore's HTTP endpoint has no ranged writes):

- ``flat`` (default): ``NAME-flat.vmdk`` holding the whole virtual disk, and
  a ``NAME.vmdk`` descriptor with ``createType="vmfs"`` -- the layout ESXi
  runs VMs from. Holes are sent as zeros: the flat file is full size.
- ``stream``: one streamOptimized ``NAME.vmdk`` (compressed, compact), the
  format vSphere imports and archives.

Nothing looks complete early: the data goes to ``...imageport-partial``, is
read back and checked against the source's content hash, then moved into
place with the FileManager; the flat descriptor is written last. A failure
deletes the partial file.
"""

from __future__ import annotations

import posixpath
import time
from dataclasses import asdict, dataclass
from typing import Any

from pyVmomi import vim

from imageport.disks.convert import Progress, convert, hash_disk
from imageport.disks.extents import SECTOR
from imageport.disks.io import ByteSource, FileSystem, pieces
from imageport.disks.vmdk import descriptor_text
from imageport.errors import DatastoreFileExists, InputError, PlatformError, TransferError
from imageport.models import DiskFormat
from imageport.platforms.vsphere.errors import translate_vsphere_errors
from imageport.platforms.vsphere.inventory import CONTROLLERS
from imageport.platforms.vsphere.session import VsphereSession
from imageport.platforms.vsphere.waiting import wait_for_task
from imageport.storage.datastore import DatastoreFileSystem

KINDS = {"flat": DiskFormat.RAW, "stream": DiskFormat.VMDK_STREAM}
PARTIAL = ".imageport-partial"


@dataclass
class VsphereImport:
    disk: str  # "[ds] folder/name.vmdk": what a VM's disk backing names
    files: list[str]
    kind: str
    virtual_size: int
    content_hash: str
    seconds: float
    vm: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def datastore_writer(session: VsphereSession, datastore: str) -> DatastoreFileSystem:
    """Datastore files with sinks enabled: a failed upload is deleted through the FileManager."""
    si = session.si or session.connect()
    dc = session.datacenter()
    location = session.datastore_location(datastore)

    def remove(path: str) -> None:
        manager = si.RetrieveContent().fileManager
        try:
            task = manager.DeleteDatastoreFile_Task(name=f"[{datastore}] {path}", datacenter=dc)
            wait_for_task(si, task, f"delete [{datastore}] {path}")
        except PlatformError:
            pass  # nothing arrived, or it is gone already: the partial name says what it was

    return DatastoreFileSystem(location, remove=remove)


def import_to_datastore(
    session: VsphereSession,
    source: str,
    source_fs: FileSystem,
    datastore: str,
    folder: str,
    name: str,
    *,
    kind: str = "flat",
    overwrite: bool = False,
    progress: Progress | None = None,
    source_format: DiskFormat | None = None,
) -> VsphereImport:
    if kind not in KINDS:
        raise InputError(f"disk layout {kind!r}: use flat or stream")
    started = time.monotonic()
    fs = datastore_writer(session, datastore)  # logs in if needed
    folder = folder.strip("/")
    descriptor = posixpath.join(folder, f"{name}.vmdk")
    data_file = posixpath.join(folder, f"{name}-flat.vmdk" if kind == "flat" else f"{name}.vmdk")
    temp = data_file + PARTIAL
    try:
        if fs.isfile(descriptor) and not overwrite:
            raise DatastoreFileExists(f"[{datastore}] {descriptor} exists; use --force to replace it")
        _make_folder(session, datastore, folder)
        options = {"extent_name": posixpath.basename(data_file)} if kind == "stream" else {}
        result = convert(
            source, temp, KINDS[kind], overwrite=True, progress=progress, source_fs=source_fs, output_fs=fs,
            source_format=source_format, **options,
        )  # fmt: skip
        try:
            check = hash_disk(temp, source_format=KINDS[kind], fs=fs).content_hash
            if check != result.content_hash:
                raise TransferError(f"[{datastore}] {temp}: read back {check}, sent {result.content_hash}")
            _move(session, datastore, temp, data_file)
        except BaseException:
            assert fs.remove is not None
            fs.remove(temp)
            raise
        files = [f"[{datastore}] {data_file}"]
        if kind == "flat":
            sectors = result.virtual_size // SECTOR
            extent = f'RW {sectors} VMFS "{posixpath.basename(data_file)}"'
            fs.put(descriptor, descriptor_text("vmfs", sectors, extent).encode())  # last: now it is a disk
            files.insert(0, f"[{datastore}] {descriptor}")
    finally:
        fs.close()
    assert result.content_hash is not None
    return VsphereImport(
        f"[{datastore}] {descriptor}", files, kind, result.virtual_size, result.content_hash, time.monotonic() - started
    )


def _make_folder(session: VsphereSession, datastore: str, folder: str) -> None:
    if not folder:
        return
    manager = session.si.RetrieveContent().fileManager
    try:
        with translate_vsphere_errors(f"create folder [{datastore}] {folder}"):
            manager.MakeDirectory(
                name=f"[{datastore}] {folder}", datacenter=session.datacenter(), createParentDirectories=True
            )
    except PlatformError as exc:
        if "FileAlreadyExists" not in str(exc):
            raise


def _move(session: VsphereSession, datastore: str, source: str, target: str) -> None:
    manager = session.si.RetrieveContent().fileManager
    dc = session.datacenter()
    with translate_vsphere_errors(f"move [{datastore}] {source}"):
        task = manager.MoveDatastoreFile_Task(
            sourceName=f"[{datastore}] {source}",
            sourceDatacenter=dc,
            destinationName=f"[{datastore}] {target}",
            destinationDatacenter=dc,
            force=True,
        )
    wait_for_task(session.si, task, f"move [{datastore}] {source} to {target}")


def create_vm_for_disk(
    session: VsphereSession,
    name: str,
    disk: str,
    *,
    capacity_bytes: int,
    guest_id: str = "windows9Server64Guest",
    firmware: str = "efi",
    controller: str = "pvscsi",
    memory_mb: int = 4096,
    cpus: int = 2,
    resource_pool: Any = None,
) -> str:
    """A powered-off VM whose first disk is the imported ``[ds] folder/name.vmdk``; returns its MoRef."""
    si = session.si or session.connect()
    dc = session.datacenter()
    controller_cls = next((cls for cls, n in CONTROLLERS.items() if n == controller), None)
    if controller_cls is None:
        raise InputError(f"controller {controller!r}: use one of {', '.join(CONTROLLERS.values())}")
    datastore = disk.split("]", 1)[0].lstrip("[")
    ctrl = controller_cls(key=1000, busNumber=0)
    if isinstance(ctrl, vim.vm.device.VirtualSCSIController):
        ctrl.sharedBus = vim.vm.device.VirtualSCSIController.Sharing.noSharing
    backing = vim.vm.device.VirtualDisk.FlatVer2BackingInfo(fileName=disk, diskMode="persistent")
    device = vim.vm.device.VirtualDisk(key=2000, controllerKey=1000, unitNumber=0, backing=backing)
    device.capacityInKB = capacity_bytes // 1024
    spec = vim.vm.ConfigSpec(
        name=name,
        guestId=guest_id,
        firmware=firmware,
        memoryMB=memory_mb,
        numCPUs=cpus,
        files=vim.vm.FileInfo(vmPathName=f"[{datastore}] {name}"),
        deviceChange=[
            vim.vm.device.VirtualDeviceSpec(operation="add", device=ctrl),
            vim.vm.device.VirtualDeviceSpec(operation="add", device=device),
        ],
    )
    with translate_vsphere_errors(f"create VM {name}"):
        pool = resource_pool or _first_resource_pool(si, dc)
        task = dc.vmFolder.CreateVM_Task(config=spec, pool=pool)
    vm = wait_for_task(si, task, f"create VM {name}")
    return str(vm._moId)


def _first_resource_pool(si: Any, dc: Any) -> Any:
    view = si.RetrieveContent().viewManager.CreateContainerView(dc.hostFolder, [vim.ResourcePool], True)
    try:
        pools = list(view.view)
    finally:
        view.Destroy()
    if not pools:
        raise PlatformError(f"datacenter {dc.name} has no resource pool to place a VM in")
    return pools[0]


def upload_file_disk(session: VsphereSession, datastore: str, descriptor: str, source: ByteSource) -> None:
    """A flat disk ``descriptor`` (``NAME.vmdk`` + ``NAME-flat.vmdk``) whose first bytes are ``source``'s,
    zero-padded to a whole sector: how a file reaches a VM that has no network (a CE's installers).
    Streamed in one PUT (never whole in memory); a failed upload deletes what arrived."""
    flat = descriptor.removesuffix(".vmdk") + "-flat.vmdk"
    sectors = max(1, -(-source.size // SECTOR))
    fs = datastore_writer(session, datastore)
    try:
        sink = fs.open_sink(flat, overwrite=True)
        try:
            offset = 0
            for data in pieces(source):
                sink.pwrite(offset, data)
                offset += len(data)
            sink.truncate(sectors * SECTOR)
            sink.commit()
        except BaseException:
            sink.abort()
            raise
        extent = f'RW {sectors} VMFS "{posixpath.basename(flat)}"'
        fs.put(descriptor, descriptor_text("vmfs", sectors, extent).encode())  # last: now it is a disk
    finally:
        fs.close()
