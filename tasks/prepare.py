"""The prepare task: a prepared copy of an image made by a compositing engine on the disk's platform.

A local image is prepared by the local CE (the agent in its own process, on a
copy renamed into place only when verified); an Azure managed disk or
snapshot by an Azure CE (a VM with a copy of the disk, kept as the output
disk or snapshot); a disk on a vSphere datastore by a vSphere CE (a helper VM
cloned from the connector's ``ce_template``, its copy on the connector's
``datastore``, kept as ``NAME-prepared.vmdk`` next to the input, which may then
get a VM). The source is never written; the CE always goes away;
each CE holds one of its connector's slots while it exists.
"""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Any

from prefect import task

from blocks.resolve import connector_adapter, located
from imageport.disks.base import LOCAL
from imageport.disks.detect import open_disk
from imageport.engine.job import AgentMode
from imageport.engine.lifecycle import Outcome, compositing_engine
from imageport.errors import InputError
from imageport.models import AzureDiskRef, AzureSnapshotRef, DatastoreFileRef, LocalRef, PrepareOptions, PrepareSpec
from tasks.engine import ce_slot, current_run_id
from tasks.policy import RETRY_TRANSIENT


def _output_ref(spec: PrepareSpec) -> LocalRef:
    assert isinstance(spec.disk, LocalRef)
    if isinstance(spec.output, DatastoreFileRef):
        raise InputError("output: a local image is prepared into a local file; a datastore output needs a vSphere disk")
    if spec.output is not None:
        return spec.output
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
    if isinstance(spec.disk, DatastoreFileRef):
        from imageport.engine.vsphere import VsphereSource

        output = vsphere_output(spec)
        return VsphereSource(spec.disk.datastore_path, output.datastore_path, spec.overwrite), output.datastore_path
    raise InputError(
        f"a {spec.disk.kind} disk is prepared where it will run: upload it to the local platform, Azure or a "
        "vSphere datastore first"
    )


# --- vSphere (the vSphere adapter's prepare: output naming, and the VM the prepared disk may get) -------------


def vsphere_output(spec: PrepareSpec) -> DatastoreFileRef:
    """Where the prepared copy of a datastore disk goes: ``output``, or ``output_disk_name``.vmdk, or
    ``NAME-prepared.vmdk``, next to the input."""
    disk = spec.disk
    assert isinstance(disk, DatastoreFileRef)
    if spec.output_snapshot_name:
        raise InputError("output_snapshot_name: an Azure snapshot is the output of an Azure disk's prepare")
    if isinstance(spec.output, LocalRef):
        raise InputError("output: a vSphere disk is prepared onto a datastore; name a datastore output")
    if spec.output is not None:
        if spec.output.connector != disk.connector:
            raise InputError(f"output: the prepared copy stays on the CE's vCenter (connector {disk.connector!r})")
        return spec.output
    folder = posixpath.dirname(disk.path)
    stem = posixpath.splitext(posixpath.basename(disk.path))[0]
    name = f"{spec.output_disk_name}.vmdk" if spec.output_disk_name else f"{stem}-prepared.vmdk"
    return DatastoreFileRef(connector=disk.connector, datastore=disk.datastore, path=posixpath.join(folder, name))


def _place_prepared_vm(spec: PrepareSpec) -> dict[str, Any]:
    """The VM the prepared datastore disk was asked to get (``create_vm``/``attach_to_vm`` on the output)."""
    output = spec.output
    if not isinstance(output, DatastoreFileRef) or not (output.create_vm or output.attach_to_vm):
        return {}
    from imageport.platforms.vsphere.upload import firmware_of, place_vm

    with connector_adapter(output.connector, "vsphere", f"datastore://{output.connector}") as session:
        files = session.datastore_files(output.datastore)
        try:
            firmware = firmware_of(output.path, files)
            with open_disk(output.path, fs=files) as reader:
                size = reader.virtual_size
        finally:
            files.close()
        vm = place_vm(session, output.datastore_path, size, create_vm=output.create_vm,
                      attach_to_vm=output.attach_to_vm, firmware=firmware)  # fmt: skip
    return {"vm": None if vm is None else vm.__dict__}


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
    placed = _place_prepared_vm(spec)
    return {**result, "output": output_name, "output_id": outcome.output, "ce_resources": created, **placed}
