"""Managed disks: direct upload (create with ``Upload``, grant write, stream, revoke), reading a
disk or snapshot as a source (grant read, stream, revoke), and snapshots (a full copy of a disk).

The disk is created with ``uploadSizeBytes`` = the image as a fixed VHD (N MiB
+ 512), its Hyper-V generation and OS type fixed at creation; the image is
converted on the fly into the grant's page blob by the transfer engine; revoke
is where Azure checks the footer. An existing disk is refused unless
``overwrite`` -- except a disk still in an upload state with the same size,
which is this upload's own half-finished disk: it is resumed, not recreated.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imageport.disks.base import DiskReader
from imageport.disks.convert import Progress, output_size
from imageport.errors import AlreadyExists, PlatformError, PlatformNotFound
from imageport.models import AzureSku, DiskFormat, HyperVGeneration, OsType
from imageport.platforms.azure.errors import translate_azure_errors
from imageport.platforms.azure.session import AzureSession
from imageport.storage.page_blob import PageBlob, PageBlobFileSystem
from imageport.transfer.pages import UploadResult, upload_to_page_blob

UPLOAD_STATES = ("ReadyToUpload", "ActiveUpload")
GRANT_SECONDS = 86400


class DiskExists(PlatformError, AlreadyExists):
    pass


@dataclass
class ManagedDiskUpload:
    disk_id: str
    resumed_disk: bool
    transfer: UploadResult


def upload_to_managed_disk(
    session: AzureSession,
    reader: DiskReader,
    resource_group: str,
    name: str,
    *,
    sku: AzureSku = AzureSku.PREMIUM_LRS,
    tags: dict[str, str] | None = None,
    hyper_v_generation: HyperVGeneration = HyperVGeneration.V2,
    os_type: OsType = OsType.WINDOWS,
    overwrite: bool = False,
    threads: int = 5,
    checkpoint_dir: Path,
    progress: Progress | None = None,
) -> ManagedDiskUpload:
    from azure.mgmt.compute.models import CreationData, Disk, DiskSku, GrantAccessData

    compute = session.compute()
    where = f"disk {resource_group}/{name}"
    upload_size = output_size(DiskFormat.VHD, reader.virtual_size) + 512
    existing = get_or_none(compute.disks, "disk", resource_group, name)
    resumed = False
    if existing is not None:
        state = disk_state(existing)
        same_upload = state in UPLOAD_STATES and existing.properties.creation_data.upload_size_bytes == upload_size
        if same_upload and not overwrite:
            resumed = True
        elif not overwrite:
            raise DiskExists(f"{where} exists ({state}); use --force to replace it")
        else:
            with translate_azure_errors(f"delete {where}"):
                compute.disks.begin_delete(resource_group, name).result()
            existing = None
    if existing is None:
        disk = Disk(
            location=session.config.location,
            sku=DiskSku(name=sku.value),
            tags={**(tags or {}), "created-by": "imageport"},
            properties={
                "creationData": CreationData(create_option="Upload", upload_size_bytes=upload_size),
                "hyperVGeneration": hyper_v_generation.value,
                "osType": os_type.value,
            },
        )
        with translate_azure_errors(f"create {where} for upload ({upload_size} bytes)"):
            existing = compute.disks.begin_create_or_update(resource_group, name, disk).result()
    with translate_azure_errors(f"grant write access to {where}"):
        access = compute.disks.begin_grant_access(
            resource_group, name, GrantAccessData(access="Write", duration_in_seconds=GRANT_SECONDS)
        ).result()
    try:
        transfer = upload_to_page_blob(
            reader,
            PageBlob(access.access_sas),
            threads=threads,
            checkpoint_dir=checkpoint_dir,
            overwrite=not resumed,
            progress=progress,
        )
    finally:
        # Always revoke: a write SAS must not outlive the upload, and the disk stays billed meanwhile.
        with translate_azure_errors(f"revoke access to {where} (Azure validates the VHD footer here)"):
            compute.disks.begin_revoke_access(resource_group, name).result()
    return ManagedDiskUpload(existing.id, resumed, transfer)


@contextlib.contextmanager
def read_managed_disk(
    session: AzureSession, resource_group: str, name: str, seconds: int = GRANT_SECONDS, snapshot: bool = False
) -> Iterator[PageBlobFileSystem]:
    """Grant Read on a managed disk (or a snapshot) for as long as the block runs; revoke afterwards, always.

    Yields a file system whose one file is the disk as a fixed VHD (open it with any path).
    """
    from azure.mgmt.compute.models import GrantAccessData

    compute = session.compute()
    kind = "snapshot" if snapshot else "disk"
    operations = compute.snapshots if snapshot else compute.disks
    where = f"{kind} {resource_group}/{name}"
    if get_or_none(operations, kind, resource_group, name) is None:
        raise PlatformNotFound(f"{where} not found")
    with translate_azure_errors(f"grant read access to {where}"):
        access = operations.begin_grant_access(
            resource_group, name, GrantAccessData(access="Read", duration_in_seconds=seconds)
        ).result()
    try:
        yield PageBlobFileSystem(access.access_sas)
    finally:
        with translate_azure_errors(f"revoke read access to {where}"):
            operations.begin_revoke_access(resource_group, name).result()


@dataclass
class SnapshotResult:
    snapshot_id: str
    source_disk_id: str
    size_bytes: int


def create_snapshot(
    session: AzureSession,
    resource_group: str,
    disk: str,
    name: str,
    *,
    tags: dict[str, str] | None = None,
    overwrite: bool = False,
) -> SnapshotResult:
    """A full (not incremental) snapshot of a managed disk: a point-in-time copy readable as a source.

    Refuses a disk whose upload has not finished (there is nothing consistent to copy) and an
    existing snapshot of that name unless ``overwrite``.
    """
    from azure.mgmt.compute.models import CreationData, Snapshot, SnapshotProperties, SnapshotSku

    compute = session.compute()
    source = get_or_none(compute.disks, "disk", resource_group, disk)
    if source is None:
        raise PlatformNotFound(f"disk {resource_group}/{disk} not found")
    state = disk_state(source)
    if state in UPLOAD_STATES:
        raise PlatformError(f"disk {resource_group}/{disk} is {state}: finish (or redo) its upload first")
    where = f"snapshot {resource_group}/{name}"
    make_room(compute.snapshots, "snapshot", resource_group, name, overwrite)
    snapshot = Snapshot(
        location=source.location,
        sku=SnapshotSku(name="Standard_LRS"),  # snapshots are read rarely: the cheapest tier
        tags={**(tags or {}), "created-by": "imageport", "source-disk": disk},
        properties=SnapshotProperties(
            creation_data=CreationData(create_option="Copy", source_resource_id=source.id), incremental=False
        ),
    )
    with translate_azure_errors(f"create {where} of disk {disk}"):
        made = compute.snapshots.begin_create_or_update(resource_group, name, snapshot).result()
    return SnapshotResult(made.id, source.id, made.properties.disk_size_bytes or 0)


def disk_state(resource: object) -> str:
    state = resource.properties.disk_state  # type: ignore[attr-defined]
    return str(getattr(state, "value", state))  # an enum from the SDK, a string from older payloads


def make_room(operations: object, kind: str, resource_group: str, name: str, overwrite: bool) -> None:
    """Refuse an existing disk or snapshot of that name unless ``overwrite``; then delete it."""
    if get_or_none(operations, kind, resource_group, name) is None:
        return
    where = f"{kind} {resource_group}/{name}"
    if not overwrite:
        raise DiskExists(f"{where} exists; use --force to replace it")
    with translate_azure_errors(f"delete {where}"):
        operations.begin_delete(resource_group, name).result()  # type: ignore[attr-defined]


def get_or_none(operations: object, kind: str, resource_group: str, name: str) -> Any:
    """The disk or snapshot, or None when it does not exist."""
    try:
        with translate_azure_errors(f"read {kind} {resource_group}/{name}"):
            return operations.get(resource_group, name)  # type: ignore[attr-defined]
    except PlatformNotFound:
        return None
