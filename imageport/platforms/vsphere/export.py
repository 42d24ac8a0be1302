"""Export a VM's disk to a share without touching the VM.

1. Take a snapshot named and described for the run (no memory, no quiesce),
   or use the one the caller names. The disk as it was at that snapshot is
   what gets read; the live delta the VM writes into is never read.
2. Read it by one of two paths (``auto`` picks):
   - **datastore**: the snapshot's disk file over HTTPS ``/folder`` with
     parallel ranged GETs, through the disk engine (descriptor + flat extent,
     or a sparse VMDK). Needs a disk without deltas at that snapshot, i.e. the
     file is the base.
   - **nfc**: an export lease (``ExportVm`` for a powered-off VM,
     ``ExportSnapshot`` otherwise) streaming a flattened streamOptimized VMDK
     in one pass; used when the disk has a delta chain.
3. Remove the snapshot this run created -- and only that one -- also when
   the export fails.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from pyVmomi import vim

from imageport.disks.convert import ConvertResult, Progress
from imageport.disks.io import FileSystem
from imageport.errors import InputError, PlatformNotFound
from imageport.models import DiskFormat
from imageport.platforms.vsphere.errors import translate_vsphere_errors
from imageport.platforms.vsphere.inventory import (
    describe_vm,
    disks_of,
    find_vm,
    retrieve,
    select_disk,
    snapshot_nodes,
    split_datastore_path,
)
from imageport.platforms.vsphere.nfc import export_from_lease
from imageport.platforms.vsphere.session import VsphereSession
from imageport.platforms.vsphere.waiting import wait_for_task
from imageport.transfer.copy import copy_image

READ_PATHS = ("auto", "datastore", "nfc")
LeaseFactory = Callable[[Any, Any, Any], Any]
"""lease_factory(si, vm, snapshot or None) -> an HttpNfcLease (or a stand-in with its members)."""


@dataclass
class VsphereExport:
    vm: str
    disk: str
    source_file: str
    snapshot: str
    snapshot_created: bool
    read_path: str
    output: str
    content_hash: str | None
    sha256: str | None
    md5: str | None
    virtual_size: int
    data_written: int
    seconds: float
    verified: str | None = None  # what the content hash rests on (``ConvertResult.verified``)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _default_lease(si: Any, vm: Any, snapshot: Any) -> Any:
    with translate_vsphere_errors("open an NFC export lease"):
        return snapshot.ExportSnapshot() if snapshot is not None else vm.ExportVm()


def snapshot_description(run_id: str, tags: dict[str, str] | None) -> str:
    """What the snapshot an export takes says: its run, and the user's tags (JSON: names may hold spaces)."""
    text = f"Taken by imageport export run {run_id}; removed when the export ends."
    return f"{text} Tags: {json.dumps(tags, ensure_ascii=False, sort_keys=True)}" if tags else text


def find_snapshot(si: Any, vm: Any, name: str) -> Any:
    ((_, props),) = retrieve(si, [vm], ["snapshot"])
    for node in snapshot_nodes(props.get("snapshot")):
        if node.name == name:
            return node.snapshot
    raise PlatformNotFound(f"VM has no snapshot named {name!r}")


def export_vm_disk(
    session: VsphereSession,
    vm_ident: str,
    output: str,
    output_fs: FileSystem,
    fmt: DiskFormat = DiskFormat.VHDX,
    *,
    disk: str | None = None,
    snapshot: str | None = None,
    run_id: str | None = None,
    tags: dict[str, str] | None = None,
    read_path: str = "auto",
    overwrite: bool = False,
    progress: Progress | None = None,
    lease_factory: LeaseFactory = _default_lease,
    digests: bool = False,
    wait_lock: bool = False,
    verify: str = "auto",
    copy: Callable[..., ConvertResult] = copy_image,
) -> VsphereExport:
    """See the module docstring. ``digests`` adds the plain SHA-256 and MD5 (Citrix -HashDisk). ``copy`` copies
    the datastore path's base file (``copy_image``, or a ``transfer.fanout.StreamCopier``). ``tags`` go in the
    description of the snapshot this run takes (a snapshot is no managed entity: no custom attributes)."""
    if read_path not in READ_PATHS:
        raise InputError(f"read path {read_path!r}: use one of {', '.join(READ_PATHS)}")
    si = session.si or session.connect()
    vm = find_vm(si, vm_ident)
    info = describe_vm(si, vm)
    target = select_disk(info, disk)
    index = info.disks.index(target)
    run_id = run_id or uuid.uuid4().hex[:8]
    created = None
    if snapshot is None:
        name = f"imageport-export-{run_id}"
        task = vm.CreateSnapshot_Task(
            name=name,
            description=snapshot_description(run_id, tags),
            memory=False,
            quiesce=False,
        )
        snap = created = wait_for_task(si, task, f"snapshot VM {info.name}")
    else:
        name = snapshot
        snap = find_snapshot(si, vm, snapshot)
    try:
        ((_, props),) = retrieve(si, [snap], ["config.hardware.device"], type(snap))
        at_snapshot = next(d for d in disks_of(list(props["config.hardware.device"])) if d.key == target.key)
        path = read_path
        if path == "auto":
            path = "datastore" if len(at_snapshot.chain) == 1 else "nfc"
        if path == "datastore":
            if len(at_snapshot.chain) > 1:
                raise InputError(
                    f"{info.name} {target.label}: at snapshot {name} the disk is a chain of "
                    f"{len(at_snapshot.chain)} files; the datastore path reads a single base file. "
                    "Use the NFC path (--read-path nfc) or consolidate the VM's snapshots"
                )
            datastore, file_path = split_datastore_path(at_snapshot.file)
            source_fs = session.datastore_files(datastore)
            try:
                result: ConvertResult = copy(
                    file_path,
                    source_fs,
                    output,
                    output_fs,
                    fmt,
                    overwrite=overwrite,
                    progress=progress,
                    sha256=digests,
                    md5=digests,
                    wait_lock=wait_lock,
                    verify=verify,
                )
            finally:
                source_fs.close()
        else:
            powered_off = info.power_state == "poweredOff"
            lease = lease_factory(si, vm, None if powered_off else snap)
            location = session.datastore_location(at_snapshot.datastore)
            result = export_from_lease(
                lease,
                index,
                output,
                output_fs,
                fmt,
                host=f"{session.config.host}:{session.config.port}",
                cookie=location.cookie,
                verify=location.verify,
                expected_size=target.capacity_bytes or None,
                overwrite=overwrite,
                progress=progress,
                digests=digests,
                wait_lock=wait_lock,
                verify_target=verify,
            )
    finally:
        if created is not None:  # ours alone, also after a failure -- and after a long read outlived the session
            snapshot_id = created._moId

            def remove_snapshot(si: Any) -> None:
                with translate_vsphere_errors(f"remove snapshot {name} of VM {info.name}"):
                    task = vim.vm.Snapshot(snapshot_id, si._stub).RemoveSnapshot_Task(
                        removeChildren=False, consolidate=True
                    )
                wait_for_task(si, task, f"remove snapshot {name} of VM {info.name}")

            session.call(remove_snapshot)
    return VsphereExport(
        info.name,
        target.label,
        at_snapshot.file,
        name,
        created is not None,
        path,
        output,
        result.content_hash,
        result.sha256,
        result.md5,
        result.virtual_size,
        result.data_written,
        result.seconds,
        verified=result.verified,
    )
