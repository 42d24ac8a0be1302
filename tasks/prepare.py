"""The prepare task: a prepared copy of an image made by a compositing engine on the disk's platform.

A local image is prepared by the local CE (the agent in its own process, on a
copy renamed into place only when verified); an Azure managed disk or
snapshot by an Azure CE (a VM with a copy of the disk, kept as the output
disk or snapshot); a disk on a vSphere datastore by a vSphere CE (a helper VM
cloned from the connector's ``ce_template``, kept as ``NAME-prepared.vmdk``
beside the input, which may then get a VM). The source is never written; the CE always goes away;
each CE holds one of its connector's slots while it exists.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from prefect import task

from blocks.resolve import CONNECTORS
from imageport.adapters.registry import adapter_for, format_ref
from imageport.disks.io import FileSystem
from imageport.engine.installer_delivery import deliver_installers
from imageport.engine.job import AgentMode
from imageport.engine.lifecycle import Outcome, compositing_engine
from imageport.errors import InputError
from imageport.guest.installers import FoundInstaller, inspect_folder, wanted
from imageport.models import PrepareOptions, PrepareSpec
from imageport.results import StageResult, from_prepare
from tasks.engine import ce_slot, current_run_id
from tasks.policy import RETRY_TRANSIENT
from tasks.progress import phase_progress

# What a prepare does, in order: the phases its progress reports.
PHASES = ("copy the disk into a compositing engine", "prepare the copy (agent)", "keep the output, remove the CE")


def _options(spec: PrepareSpec) -> PrepareOptions:
    return PrepareOptions.model_validate(spec.model_dump(include=set(PrepareOptions.model_fields)))


@contextlib.contextmanager
def checked_installers(spec: PrepareSpec) -> Iterator[tuple[FileSystem | None, list[FoundInstaller]]]:
    """The installers the spec stages, chosen and checked (before any CE exists), with their folder's file
    system open for the block (the CE receives them from it). The checks run the same function."""
    options = _options(spec)
    if spec.installers is None or not wanted(options):
        yield None, []
        return
    adapter = adapter_for(spec.disk)
    if not adapter.stages_installers:
        raise InputError(f"installers: the compositing engine that prepares {adapter.title} cannot receive "
                         "installers (a local image's, an Azure disk's or a datastore disk's can)")  # fmt: skip
    with adapter_for(spec.installers).installer_folder(spec.installers, CONNECTORS) as folder:
        yield folder.fs, inspect_folder(folder, options, format_ref(spec.installers))


@task(name="prepare_image", task_run_name="prepare {spec.disk.kind} disk for {spec.target_platform.value}",
      **RETRY_TRANSIENT)  # fmt: skip
def prepare_disk(spec: PrepareSpec) -> StageResult:
    """Copy the image into a CE, prepare it there (one appliance launch), verify, keep the copy."""
    source, output_name = adapter_for(spec.disk).prepare_source(spec, CONNECTORS)
    outcome = Outcome()
    phase = phase_progress(f"prepare {adapter_for(spec.disk).name(spec.disk)} for {spec.target_platform.value}",
                           PHASES)  # fmt: skip
    phase(PHASES[0])
    with (
        checked_installers(spec) as (folder_fs, installers),
        ce_slot(spec.disk.connector) as backend,
        compositing_engine(
            backend,
            source,
            AgentMode.PREPARE,
            current_run_id(),
            timeout_s=spec.timeout_s,
            keep_on_failure=spec.keep_on_failure,
            boot_diagnostics=spec.boot_diagnostics,
            tags=spec.tags,  # on every resource the CE creates, and on the kept output
            outcome=outcome,
        ) as ce,
    ):
        phase(PHASES[1])
        delivered = deliver_installers(ce, folder_fs, installers) if folder_fs else []
        job = ce.job(target_platform=spec.target_platform, hyper_v_generation=spec.hyper_v_generation,
                     prepare=_options(spec), installers=delivered)  # fmt: skip
        result = ce.run(job)
        phase(PHASES[2])
    made = adapter_for(spec.disk).finish_prepare(spec, CONNECTORS)  # e.g. a VM for a vSphere disk
    prepared = from_prepare(result, outcome, output_name)
    phase("done")
    return prepared.model_copy(update={"created": prepared.created + made})
