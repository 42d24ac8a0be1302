"""The export task: a disk off its platform onto shared storage, read-only for the source."""

from __future__ import annotations

from prefect import task

from blocks.resolve import CONNECTORS, writable
from imageport.adapters.registry import adapter_for, disk_format_for
from imageport.models import ExportSpec
from imageport.results import StageResult
from imageport.transfer.copy import copy_image
from tasks.engine import current_run_id
from tasks.policy import RETRY_TRANSIENT
from tasks.progress import prefect_progress
from tasks.streaming import StreamedUploads


@task(name="export_disk", task_run_name="export {spec.destination.path}", **RETRY_TRANSIENT)
def export_disk(spec: ExportSpec, streams: StreamedUploads | None = None) -> StageResult:
    """Export ``spec.source`` to ``spec.destination`` as VHDX/VHD with its content hash.

    A vSphere VM's disk is read as of a snapshot this run takes and removes; a managed disk
    or snapshot through a read grant that is always revoked; a local disk directly. ``streams``:
    the port's uploads the source is streamed into as it is copied (``tasks/streaming.py``).
    """
    spec = disk_format_for(spec, spec.destination, CONNECTORS)  # unset: the share connector's container
    adapter = adapter_for(spec.source)
    # Streaming, the export lasts as long as the slowest upload it feeds: the longest of their deadlines.
    timeout = max([spec.timeout_s, *(u.timeout_s for u in streams.uploads.values())]) if streams else spec.timeout_s
    progress = prefect_progress(f"export {adapter.name(spec.source)} to {spec.destination.path}", timeout_s=timeout)
    copy = streams.start() if streams else copy_image
    with writable(spec.destination) as (output_fs, output):
        result = adapter.export(spec, CONNECTORS, output_fs, output, progress=progress, run_id=current_run_id(),
                                copy=copy)  # fmt: skip
    if streams and streams.stats is not None:
        result = result.model_copy(update={"streamed": True})
    return result
