"""Managed disks: direct upload (create with ``Upload``, grant write, stream, revoke), reading a
disk or snapshot as a source (grant read, stream, revoke), and snapshots (a full copy of a disk).

The disk is created with ``uploadSizeBytes`` = the image as a fixed VHD (N MiB
+ 512), its Hyper-V generation and OS type fixed at creation; the image is
converted on the fly into the grant's page blob by the transfer engine; revoke
is where Azure checks the footer. An existing disk is refused unless
``overwrite`` -- except a disk still in an upload state with the same size,
which is this upload's own half-finished disk: it is resumed, not recreated.

A write grant must not outlive its run: an uploaded disk is tagged at
creation with the run that uploads it (``imageport-run``, ``imageport-stage:
upload``), and a run that finds a disk still in ActiveUpload -- a killed
upload's grant, valid for 24 hours -- revokes that grant before its own (and
refuses while the recorded run is a live process on this host).
``half_uploaded`` lists disks left in an upload state and the run that left
them, for the reaper, which revokes the grants of dead runs
(``revoke_upload_grant``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imageport.disks.convert import Progress, output_size
from imageport.disks.formats import DiskReader
from imageport.errors import DiskExists, ImageportError, PlatformError, PlatformNotFound
from imageport.models import AzureSku, DiskFormat, HyperVGeneration, OsType
from imageport.platforms.azure.errors import translate_azure_errors
from imageport.platforms.azure.session import AzureSession
from imageport.platforms.runs import RUN_TAG, STAGE_TAG, process_run_id, process_run_is_live
from imageport.storage.page_blob import PageBlob, PageBlobFileSystem
from imageport.transfer.pages import UploadResult, upload_to_page_blob

UPLOAD_STATES = ("ReadyToUpload", "ActiveUpload")
GRANT_SECONDS = 86400

log = logging.getLogger("imageport.azure")


@dataclass
class ManagedDiskUpload:
    disk_id: str
    resumed_disk: bool
    transfer: UploadResult
    run_id: str = ""
    revoked_leftover: str | None = None  # the run whose leftover write grant this upload revoked first


@dataclass
class HalfUpload:
    """A managed disk left in an upload state, and the run that left it ("" when untagged)."""

    resource_group: str
    name: str
    state: str
    run_id: str


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
    run_id: str | None = None,
    verify: str = "auto",
) -> ManagedDiskUpload:
    """``run_id`` names this run on the disk's tags (default: this process, ``platforms.runs``)."""
    from azure.mgmt.compute.models import CreationData, Disk, DiskSku, GrantAccessData

    compute = session.compute()
    run = run_id or process_run_id()
    where = f"disk {resource_group}/{name}"
    revoked_leftover = None
    upload_size = output_size(DiskFormat.VHD, reader.virtual_size) + 512
    existing = get_or_none(compute.disks, "disk", resource_group, name)
    resumed = False
    if existing is not None:
        state = disk_state(existing)
        same_upload = state in UPLOAD_STATES and existing.properties.creation_data.upload_size_bytes == upload_size
        if same_upload and not overwrite:
            resumed = True
            revoked_leftover = _take_over(compute, resource_group, name, existing, run)
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
            tags={**(tags or {}), "created-by": "imageport", RUN_TAG: run, STAGE_TAG: "upload"},
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
            verify=verify,
        )
    except BaseException:
        # Always revoke: a write SAS must not outlive the upload. Half a VHD has no footer, so Azure
        # refuses to finish it (the grant still ends); the upload's own error is the one to report.
        try:
            revoke_upload_grant(compute, resource_group, name)
        except ImageportError as exc:
            log.warning("%s: revoking the write grant after a failed upload failed too: %s", where, exc)
        raise
    with translate_azure_errors(f"revoke access to {where} (Azure validates the VHD footer here)"):
        compute.disks.begin_revoke_access(resource_group, name).result()
    return ManagedDiskUpload(existing.id, resumed, transfer, run, revoked_leftover)


def _take_over(compute: Any, resource_group: str, name: str, disk: Any, run: str) -> str | None:
    """Before resuming a half-uploaded disk: revoke the write grant a dead run left on it; tag it with ``run``.

    Returns the run whose grant was revoked (None when the disk had none)."""
    from azure.mgmt.compute.models import DiskUpdate

    where = f"disk {resource_group}/{name}"
    tags = dict(disk.tags or {})
    earlier = tags.get(RUN_TAG, "")
    revoked = None
    if disk_state(disk) == "ActiveUpload":
        if earlier and earlier != run and process_run_is_live(earlier):
            raise DiskExists(f"{where} is being uploaded by run {earlier} (a live process on this host)")
        revoke_upload_grant(compute, resource_group, name)
        revoked = earlier or "an untagged run"
        log.warning("%s: revoked the write grant left by run %s before resuming", where, revoked)
    if earlier != run:
        with translate_azure_errors(f"tag {where} with run {run}"):
            compute.disks.begin_update(resource_group, name, DiskUpdate(tags={**tags, RUN_TAG: run})).result()
    return revoked


def revoke_upload_grant(compute: Any, resource_group: str, name: str) -> str:
    """End a disk's write grant. Azure refuses to *finish* an upload without a valid footer (``InvalidVhd``)
    but the grant still ends, leaving the disk ReadyToUpload; returns the state it is left in."""
    where = f"disk {resource_group}/{name}"
    try:
        with translate_azure_errors(f"revoke the write grant on {where}"):
            compute.disks.begin_revoke_access(resource_group, name).result()
    except PlatformError:
        disk = get_or_none(compute.disks, "disk", resource_group, name)
        if disk is None or disk_state(disk) == "ActiveUpload":
            raise
        return disk_state(disk)
    disk = get_or_none(compute.disks, "disk", resource_group, name)
    return disk_state(disk) if disk is not None else "deleted"


def half_uploaded(session: AzureSession) -> list[HalfUpload]:
    """Every disk of the connector's resource group still in an upload state, with the run that left it."""
    compute = session.compute()
    rg = session.config.resource_group
    with translate_azure_errors(f"list disks in {rg}"):
        disks = list(compute.disks.list_by_resource_group(rg))
    return [
        HalfUpload(rg, d.name, disk_state(d), (d.tags or {}).get(RUN_TAG, ""))
        for d in disks
        if disk_state(d) in UPLOAD_STATES
    ]


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
