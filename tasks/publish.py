"""The publish task: a prepared image into a PVS store as a ready-to-register vDisk."""

from __future__ import annotations

from prefect import task

from blocks.resolve import CONNECTORS, located, store_folder
from imageport.adapters.registry import disk_format_for
from imageport.models import PublishSpec
from imageport.platforms.pvs.publish import publish
from imageport.results import StageResult, from_publish
from tasks.policy import RETRY_TRANSIENT
from tasks.progress import prefect_progress


@task(name="publish_vdisk", task_run_name="publish {spec.name} to {spec.store.path}", **RETRY_TRANSIENT)
def publish_vdisk(spec: PublishSpec) -> StageResult:
    """Write ``spec.source`` into ``spec.store`` as vDisk ``spec.name``; resumes after a retry."""
    spec = disk_format_for(spec, spec.store, CONNECTORS)  # unset: the share connector's container
    progress = prefect_progress(f"publish {spec.name}", timeout_s=spec.timeout_s)
    with located(spec.source) as (source_fs, source), store_folder(spec.store) as folder:
        stated = getattr(spec.source, "format", None)  # file references can state their format
        done = publish(source, source_fs, folder, spec.name, spec, progress=progress, source_format=stated)
    return from_publish(done)
