"""The export task: a disk off its platform onto shared storage, read-only for the source."""

from __future__ import annotations

from prefect import task

from blocks.resolve import connector_adapter, located
from imageport.models import ExportSpec, Stage, VsphereDiskRef
from imageport.results import StageResult, from_convert, from_vsphere_export
from imageport.transfer.copy import copy_image
from tasks.policy import RETRY_TRANSIENT
from tasks.progress import prefect_progress


def _source_name(spec: ExportSpec) -> str:
    return getattr(spec.source, "vm", None) or getattr(spec.source, "name", None) or getattr(spec.source, "path", "?")


@task(name="export_disk", task_run_name="export {spec.destination.path}", **RETRY_TRANSIENT)
def export_disk(spec: ExportSpec) -> StageResult:
    """Export ``spec.source`` to ``spec.destination`` as VHDX/VHD with its content hash.

    A vSphere VM's disk is read as of a snapshot this run takes and removes; a managed disk
    or snapshot through a read grant that is always revoked; a local disk directly.
    """
    progress = prefect_progress(f"export {_source_name(spec)} to {spec.destination.path}")
    fmt = spec.disk_format.writes
    source = spec.source
    with located(spec.destination) as (output_fs, output):
        if isinstance(source, VsphereDiskRef):
            from imageport.platforms.vsphere.export import export_vm_disk

            with connector_adapter(source.connector, "vsphere", f"vsphere://{source.connector}") as session:
                result = export_vm_disk(
                    session,
                    source.vm,
                    output,
                    output_fs,
                    fmt,
                    disk=source.disk,
                    snapshot=source.snapshot,
                    progress=progress,
                    digests=spec.hash_disk,
                    wait_lock=spec.wait_lock,
                    verify=spec.verify.value,
                )
            return from_vsphere_export(result)
        with located(source) as (source_fs, path):
            copied = copy_image(
                path, source_fs, output, output_fs, fmt, progress=progress, sha256=spec.hash_disk,
                md5=spec.hash_disk, wait_lock=spec.wait_lock, verify=spec.verify.value,
                source_format=getattr(source, "format", None),  # a local disk may state its format
            )  # fmt: skip
        return from_convert(copied, Stage.EXPORT)
