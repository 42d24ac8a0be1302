"""The prepare task: a prepared copy of an image made by a compositing engine on the disk's platform.

A local image is prepared by the local CE (the agent in its own process, on a
copy renamed into place only when verified); an Azure managed disk or
snapshot by an Azure CE (a VM with a copy of the disk, kept as the output
disk or snapshot). The source is never written; the CE always goes away;
each CE holds one of its connector's slots while it exists.
"""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Any

from prefect import task

from blocks.resolve import connector_adapter, located
from imageport.disks.local_files import LOCAL
from imageport.engine.job import AgentMode
from imageport.engine.lifecycle import Outcome, compositing_engine
from imageport.errors import InputError
from imageport.models import AzureDiskRef, AzureSnapshotRef, LocalRef, PrepareOptions, PrepareSpec
from tasks.engine import ce_slot, current_run_id
from tasks.policy import RETRY_TRANSIENT


def _output_ref(spec: PrepareSpec) -> LocalRef:
    if spec.output is not None:
        return spec.output
    assert isinstance(spec.disk, LocalRef)
    stem, ext = posixpath.splitext(spec.disk.path)
    return LocalRef(connector=spec.disk.connector, path=f"{stem}-prepared{ext}")


def _installers_dir(spec: PrepareSpec) -> str | None:
    if spec.installers is None:
        return None
    if not isinstance(spec.disk, LocalRef):
        raise InputError("installers: staging installers is supported on the local CE only (prepare a local image)")
    with located(spec.installers) as (fs, path):
        if fs is not LOCAL:
            raise InputError("installers: stage them from a local folder (a local connector path)")
        return str(Path(path))


def _source(spec: PrepareSpec) -> tuple[Any, str]:
    """The backend-specific source and the id of where the output will be."""
    if isinstance(spec.disk, LocalRef):
        from imageport.engine.local import LocalSource

        output = _output_ref(spec)
        source = connector_adapter(spec.disk.connector, "local", f"disk {spec.disk.path}").path(spec.disk.path)
        target = connector_adapter(output.connector, "local", f"output {output.path}").path(output.path)
        return LocalSource(LOCAL, str(source), str(target), spec.overwrite, spec.disk.format), output.path
    if isinstance(spec.disk, AzureDiskRef):
        from imageport.engine.azure import AzureSource

        snapshot = isinstance(spec.disk, AzureSnapshotRef)
        source = AzureSource(spec.disk.resource_group, spec.disk.name, snapshot, spec.output_disk_name,
                             spec.output_snapshot_name, spec.overwrite)  # fmt: skip
        return source, spec.output_snapshot_name or spec.output_disk_name or f"{spec.disk.name}-prepared"
    raise InputError(
        f"a {spec.disk.kind} disk is prepared where it will run: upload it to the local platform or Azure first"
    )


@task(name="prepare_image", task_run_name="prepare {spec.disk.kind} disk for {spec.target_platform.value}",
      **RETRY_TRANSIENT)  # fmt: skip
def prepare_disk(spec: PrepareSpec) -> dict[str, Any]:
    """Copy the image into a CE, prepare it there (one appliance launch), verify, keep the copy."""
    source, output_name = _source(spec)
    installers = _installers_dir(spec)
    options = PrepareOptions.model_validate(spec.model_dump(include=set(PrepareOptions.model_fields)))
    outcome = Outcome()
    with (
        ce_slot(spec.disk.connector) as backend,
        compositing_engine(
            backend,
            source,
            AgentMode.PREPARE,
            current_run_id(),
            timeout_s=spec.timeout_s,
            keep_on_failure=spec.keep_on_failure,
            outcome=outcome,
        ) as ce,
    ):
        job = ce.job(target_platform=spec.target_platform, hyper_v_generation=spec.hyper_v_generation,
                     prepare=options, installers_dir=installers)  # fmt: skip
        result = ce.run(job).result
    created = [r.describe() for r in outcome.created]
    return {**result, "output": output_name, "output_id": outcome.output, "ce_resources": created}
