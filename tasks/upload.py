"""The upload task: an image from shared storage onto the target platform."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task

from blocks.resolve import connector_adapter, located
from imageport.disks.detect import open_disk
from imageport.errors import InputError
from imageport.models import AzureDiskRef, AzureSnapshotRef, DatastoreFileRef, DiskFormat, LocalRef, UploadSpec
from imageport.platforms.azure.disks import upload_to_managed_disk
from imageport.transfer.copy import copy_image
from imageport.transfer.pages import DEFAULT_CHECKPOINTS
from tasks.engine import current_run_id
from tasks.policy import RETRY_TRANSIENT
from tasks.progress import prefect_progress

# The local platform keeps disks as files; the extension says which container.
LOCAL_FORMATS = {".vhd": DiskFormat.VHD, ".vhdx": DiskFormat.VHDX, ".raw": DiskFormat.RAW, ".img": DiskFormat.RAW}


def _target_name(spec: UploadSpec) -> str:
    return getattr(spec.target, "name", None) or getattr(spec.target, "path", "?")


# --- vSphere target (one function: the vSphere adapter's upload) ---------------------------------------------


def _upload_to_vsphere(spec: UploadSpec, target: DatastoreFileRef, progress: Any) -> dict[str, Any]:
    """A flat VMDK on the datastore, read back and checked against the source's content hash; a VM if asked."""
    from imageport.platforms.vsphere.upload import upload_to_datastore

    with (
        connector_adapter(target.connector, "vsphere", f"datastore://{target.connector}") as session,
        located(spec.source) as (fs, path),
    ):
        outcome = upload_to_datastore(session, path, fs, target.datastore, target.path, overwrite=spec.overwrite,
                                      create_vm=target.create_vm, attach_to_vm=target.attach_to_vm,
                                      source_format=spec.source.format, progress=progress)  # fmt: skip
    return outcome.as_dict()


@task(name="upload_image", task_run_name="upload {spec.source.path}", **RETRY_TRANSIENT)
def upload_image(spec: UploadSpec) -> dict[str, Any]:
    """Upload ``spec.source`` to ``spec.target``: sparse, parallel, resumable, verified.

    A retry resumes: the managed disk keeps what arrived (its page ranges say so) and a local
    target keeps its checkpointed partial file.
    """
    progress = prefect_progress(f"upload {spec.source.path} to {_target_name(spec)}")
    target = spec.target
    if isinstance(target, AzureDiskRef) and not isinstance(target, AzureSnapshotRef):
        session = connector_adapter(target.connector, "azure", f"azure-disk://{target.connector}")
        with located(spec.source) as (fs, path), open_disk(path, spec.source.format, fs=fs) as reader:
            outcome = upload_to_managed_disk(
                session,
                reader,
                target.resource_group,
                target.name,
                sku=spec.sku,
                tags=spec.tags,
                hyper_v_generation=spec.hyper_v_generation,
                os_type=spec.os_type,
                overwrite=spec.overwrite,
                threads=spec.threads,
                checkpoint_dir=DEFAULT_CHECKPOINTS,
                progress=progress,
                run_id=current_run_id(),
                verify=spec.verify.value,
            )
        return {**outcome.transfer.__dict__, "disk_id": outcome.disk_id, "resumed_disk": outcome.resumed_disk,
                "run_id": outcome.run_id, "revoked_leftover": outcome.revoked_leftover}  # fmt: skip
    if isinstance(target, LocalRef):
        fmt = LOCAL_FORMATS.get("." + target.path.rsplit(".", 1)[-1].lower())
        if fmt is None:
            raise InputError(f"target {target.path}: name it .vhd, .vhdx, .raw or .img to say which format to write")
        with located(spec.source) as (source_fs, src), located(target) as (output_fs, dst):
            Path(dst).parent.mkdir(parents=True, exist_ok=True)  # a platform makes its own folders
            result = copy_image(
                src, source_fs, dst, output_fs, fmt, overwrite=spec.overwrite, progress=progress,
                source_format=spec.source.format,
                verify=spec.verify.value,
            )  # fmt: skip
        return {**result.as_dict(), "target": target.path}
    if isinstance(target, DatastoreFileRef):
        return _upload_to_vsphere(spec, target, progress)
    raise InputError(
        f"target kind {target.kind}: uploads go to an Azure managed disk, a vSphere datastore or the local platform"
    )
