"""The export task: a disk off its platform onto shared storage, read-only for the source."""

from __future__ import annotations

from typing import Any

from prefect import task

from blocks.resolve import CONNECTORS, writable
from imageport.adapters.registry import adapter_for
from imageport.disks.convert import ConvertResult
from imageport.models import ExportSpec
from tasks.policy import RETRY_TRANSIENT
from tasks.progress import prefect_progress


def _as_dict(spec: ExportSpec, result: Any) -> dict[str, Any]:
    """The task's result: a copied file's ``ConvertResult`` (with its output) or a platform export's."""
    extra = {"output": spec.destination.path} if isinstance(result, ConvertResult) else {}
    return {**result.as_dict(), **extra}


@task(name="export_disk", task_run_name="export {spec.destination.path}", **RETRY_TRANSIENT)
def export_disk(spec: ExportSpec) -> dict[str, Any]:
    """Export ``spec.source`` to ``spec.destination`` as VHDX/VHD with its content hash.

    A vSphere VM's disk is read as of a snapshot this run takes and removes; a managed disk
    or snapshot through a read grant that is always revoked; a local disk directly.
    """
    adapter = adapter_for(spec.source)
    progress = prefect_progress(f"export {adapter.name(spec.source)} to {spec.destination.path}")
    with writable(spec.destination) as (output_fs, output):
        result = adapter.export(spec, CONNECTORS, output_fs, output, progress=progress)
    return _as_dict(spec, result)
