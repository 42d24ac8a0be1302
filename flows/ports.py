"""The four workflows as Prefect DAGs: ``mcs-to-mcs``, ``pvs-to-mcs``, ``pvs-to-pvs``, ``mcs-to-pvs``.

One export (MCS sources) feeds every target in parallel -- it streams the
source into the targets' uploads as it copies it to staging (one read of the
source; ``tasks/streaming.py``); each target then runs its own chain -- upload
(completed from that stream), prepare on a compositing engine where the disk
now lives, and (PVS targets) publish into the store::

    export ─┬─ upload → prepare → publish     (target 1)
            └─ upload → prepare → publish     (target 2) ...

Every stage is cached by its spec and the identity of its input
(``tasks/caching.py``), so re-running a failed port with the same parameters
reuses what completed and resumes the rest. The result is a Markdown table
artifact: stage, source, target, sizes, bytes moved, hashes, durations,
resources created.
"""

from __future__ import annotations

import posixpath
import time
from typing import Annotated, Any

from prefect import flow, task
from prefect.futures import wait
from pydantic import BeforeValidator, ValidationError

from blocks.resolve import CONNECTORS, describe_ref
from imageport.adapters.registry import adapter_for, disk_format_for
from imageport.errors import ImageportError, InputError
from imageport.forms import FixedField
from imageport.models import (
    ExportSpec,
    FinalizeMode,
    FinalizeSpec,
    PortSpec,
    PortTarget,
    PrepareSpec,
    PublishSpec,
    Stage,
    UploadSpec,
    Workflow,
    describe_validation_error,
)
from imageport.preflight.report import CheckReport
from imageport.results import PortResult, StageResult, port_result
from tasks.artifacts import create_markdown_artifact, port_table
from tasks.caching import run_stage
from tasks.checks.plan import CheckPlan, Planned, boot_target, finalizable
from tasks.checks.run import run_checks
from tasks.engine import current_run_id, reap_run_resources
from tasks.export import export_disk
from tasks.finalize import finalize_disk
from tasks.prepare import prepare_disk
from tasks.publish import publish_vdisk
from tasks.refusals import in_spec_terms, refusals_as_state
from tasks.streaming import StreamedUploads
from tasks.upload import upload_image


def _prepared(target: PortTarget, spec: PortSpec) -> tuple[PrepareSpec, Any]:
    """The prepare spec of one target and the reference of its prepared copy (the target kind's adapter).

    A name asked for in ``prepare`` (``output_disk_name``; ``output_snapshot_name``, which keeps an Azure
    target's copy as a snapshot) is used as given when the port has one target of that kind; with several,
    each target's own: ``OUTPUT-NAME``, ``SNAPSHOT-NAME`` (``NAME``: the target disk's name).
    """
    disk = target.disk
    assert disk is not None  # PortSpec guarantees every target has a disk
    adapter = adapter_for(disk)
    fields = spec.prepare.model_dump(exclude={"output_disk_name", "output_snapshot_name"})
    alone = sum(adapter_for(t.disk).kind == adapter.kind for t in spec.targets) == 1
    name, snapshot = spec.prepare.output_disk_name, spec.prepare.output_snapshot_name
    if not alone:  # one name for several outputs of a kind: each target's own, NAME-TARGET
        name = f"{name}-{adapter.name(disk)}" if name else None
        snapshot = f"{snapshot}-{adapter.name(disk)}" if snapshot else None
    try:
        output = adapter.prepared(disk, name, snapshot=snapshot)  # with what the target asks of it (a VM)
        prepared = PrepareSpec(disk=adapter.plain(disk), target_platform=adapter.target_platform,
                               hyper_v_generation=spec.upload.hyper_v_generation,
                               **adapter.prepare_outputs(output), **fields)  # fmt: skip
    except ValidationError as exc:
        raise InputError(describe_validation_error(exc, "prepare of a target")) from None
    return prepared, adapter.plain(output)


@task(name="port_target", task_run_name="target {index}: {target_name}")
def port_target(spec: PortSpec, index: int, target_name: str, image: Any, refresh: bool,
                streams: StreamedUploads | None = None) -> list[StageResult]:  # fmt: skip
    """One target's chain: upload (completed from the export's stream where it streamed), prepare, and publish
    for PVS targets."""
    done: list[StageResult] = []
    try:
        _target_chain(spec, index, image, refresh, done, streams)
    except ImageportError as exc:
        exc.partial = done  # type: ignore[attr-defined]  -- for the run's partial result table
        raise
    return done


def _export_spec(spec: PortSpec) -> ExportSpec:
    """The export's spec, its container decided (the staging share connector's, unless the port names one), so
    the stage's cache key names the format it writes."""
    exported = ExportSpec(source=spec.source, destination=spec.staging, **spec.export.model_dump())
    return disk_format_for(exported, spec.staging, CONNECTORS)


def _upload_spec(spec: PortSpec, target: PortTarget, image: Any) -> UploadSpec:
    """What a target's upload writes: its disk, without what the target asks of its prepared copy (a VM)."""
    assert target.disk is not None  # PortSpec guarantees every target has a disk
    disk = adapter_for(target.disk).plain(target.disk)
    return UploadSpec(source=image, target=disk, **spec.upload.model_dump())


def _publish_spec(spec: PortSpec, target: PortTarget, prepared: Any) -> tuple[PublishSpec, Any]:
    """The publish spec of one PVS target and the reference of the vDisk file it writes."""
    assert target.store is not None and target.vdisk_name is not None
    publish = PublishSpec(source=prepared, store=target.store, name=target.vdisk_name, **spec.publish.model_dump())
    publish = disk_format_for(publish, target.store, CONNECTORS)  # the vDisk's extension: the store's default
    assert publish.disk_format is not None
    file = posixpath.join(target.store.path, f"{target.vdisk_name}.{publish.disk_format.value}")
    vdisk = target.store.model_validate({**target.store.model_dump(), "path": file})  # validated, root or not
    return publish, vdisk


def _target_chain(spec: PortSpec, index: int, image: Any, refresh: bool, done: list[StageResult],
                  streams: StreamedUploads | None = None) -> None:  # fmt: skip
    target = spec.targets[index]
    upload = _run_upload(spec, index, image, refresh, streams)
    done.append(upload)
    disk = _upload_spec(spec, target, image).target
    prepare, prepared = _prepared(target, spec)
    made = run_stage(prepare_disk, prepare, stage="prepare", reads=disk, writes=prepared, refresh=refresh)
    done.append(made)
    if _finalizes(spec, prepared, made):  # before publish: the vDisk published is one whose actions have run
        finalize = FinalizeSpec(disk=prepared, **spec.finalize.model_dump())
        done.append(run_stage(finalize_disk, finalize, stage="finalize", reads=prepared, writes=prepared,
                              refresh=refresh))  # fmt: skip
    if Stage.PUBLISH in spec.stages:
        publish, vdisk = _publish_spec(spec, target, prepared)
        done.append(run_stage(publish_vdisk, publish, stage="publish", reads=prepared, writes=vdisk, refresh=refresh))


def _finalizes(spec: PortSpec, prepared: Any, made: StageResult) -> bool:
    """Whether a target's finalize runs: ``on`` always (refused up front where its platform cannot boot the
    image); ``auto`` when the prepare left startup actions and the prepared copy's platform boots helper VMs --
    otherwise they stay pending, and the prepare's result says what to do."""
    mode = spec.finalize.enabled
    if mode is FinalizeMode.OFF:
        return False
    return mode is FinalizeMode.ON or (bool(made.pending_first_boot) and adapter_for(prepared).finalizes)


def _run_export(spec: PortSpec, refresh: bool) -> tuple[StageResult, StreamedUploads]:
    """The export stage, streaming the source into every target whose upload takes a stream as it copies
    (``tasks/streaming.py``); its deadline is then the longest of the export's and the uploads' (tasks/export.py)."""
    uploads = {i: _upload_spec(spec, target, spec.staging) for i, target in enumerate(spec.targets)}
    streams = StreamedUploads(uploads, current_run_id())
    result = run_stage(export_disk, _export_spec(spec), stage="export", reads=spec.source, writes=spec.staging,
                       refresh=refresh, inputs={"streams": streams})  # fmt: skip
    return result, streams


def _run_upload(spec: PortSpec, index: int, image: Any, refresh: bool,
                streams: StreamedUploads | None) -> StageResult:  # fmt: skip
    """Target ``index``'s upload stage: from the export's stream where the export streamed into it, else from
    ``image`` (the staging file, or a PVS source)."""
    upload = _upload_spec(spec, spec.targets[index], image)
    streamed = streams.outcome(index) if streams is not None else None
    return run_stage(upload_image, upload, stage="upload", reads=image, writes=upload.target,
                     refresh=refresh, inputs={"streamed": streamed})  # fmt: skip


def port_plan(spec: PortSpec, refresh: bool = False) -> CheckPlan:
    """What the checks before a port look at: the very stage specs ``_run_stages`` runs, by spec field."""
    refs: list[tuple[str, Any]] = [("source", spec.source)]
    if Stage.EXPORT in spec.stages:
        refs.append(("staging", spec.staging))
    if spec.prepare.installers is not None:
        refs.append(("prepare.installers", spec.prepare.installers))
    plan = CheckPlan(spec.workflow.value, refs, source=("source", spec.source), refresh=refresh)
    image: Any = spec.source
    if Stage.EXPORT in spec.stages:
        with plan.checks.of("staging", "the container the export writes (the share connector's disk_format)"):
            plan.stages.append(Planned(Stage.EXPORT, _export_spec(spec), spec.source, spec.staging, "source",
                                       "staging", "export", None, task=export_disk))  # fmt: skip
        image = spec.staging
    for i, target in enumerate(spec.targets):
        field = f"targets[{i}]"
        refs += [(f"{field}.disk", target.disk)] + ([(f"{field}.store", target.store)] if target.store else [])
        plan.stages.append(Planned(Stage.UPLOAD, _upload_spec(spec, target, image), image, target.disk,
                                   "staging" if image is spec.staging else "source", f"{field}.disk", "upload",
                                   spec.upload.overwrite, task=upload_image))  # fmt: skip
        plan.boots += boot_target(f"{field}.disk", target.disk, spec.upload.hyper_v_generation,
                                  "upload.hyper_v_generation", spec.prepare.provisioning_type)  # fmt: skip
        with plan.checks.of(f"{field}.disk", "the target can be prepared where it will run"):
            prepare, prepared = _prepared(target, spec)
            plan.stages.append(Planned(Stage.PREPARE, prepare, target.disk, prepared, f"{field}.disk",
                                       f"{field}.disk", "prepare", spec.prepare.overwrite,
                                       task=prepare_disk))  # fmt: skip
            if spec.finalize.enabled is FinalizeMode.ON:
                with plan.checks.of("finalize.enabled", f"the prepared image of {field} boots in a helper VM"):
                    finalizable(prepared)
            if Stage.PUBLISH in spec.stages:
                publish, _ = _publish_spec(spec, target, prepared)
                plan.stages.append(Planned(Stage.PUBLISH, publish, prepared, target.store, f"{field}.disk",
                                           f"{field}.store", "publish", spec.publish.overwrite,
                                           f"{field}.vdisk_name", task=publish_vdisk))  # fmt: skip
    return plan


def check_port(spec: PortSpec, refresh: bool = False) -> CheckReport:
    """Every check before the port (``tasks/checks``): connectors, kinds, output names, stores, boot, sizes."""
    return run_checks(port_plan(spec, refresh))


def run_port(spec: PortSpec, workflow: Workflow, refresh: bool = False) -> PortResult:
    """The DAG of one workflow; returns every stage's result."""
    if spec.workflow is not workflow:
        raise InputError(f"workflow: this is the {workflow.value} flow; the spec asks for {spec.workflow.value}")
    started = time.monotonic()
    stages: list[StageResult] = []
    try:
        check_port(spec, refresh).raise_problems(workflow.value)  # before any snapshot, export or upload
        _run_stages(spec, refresh, stages)
    except ImageportError as exc:
        where = getattr(exc, "spec_where", None) or "spec"
        _report(port_result(workflow, stages, time.monotonic() - started, in_spec_terms(str(exc), where)))
        raise
    result = port_result(workflow, stages, time.monotonic() - started)
    _report(result)
    return result


def _run_stages(spec: PortSpec, refresh: bool, stages: list[StageResult]) -> None:
    """Export once, then every target's chain in parallel; ``stages`` gets each completed stage, even when one
    fails (the first failure is raised once every target has ended)."""
    image: Any = spec.source
    streams = None
    if Stage.EXPORT in spec.stages:
        exported, streams = _run_export(spec, refresh)
        stages.append(exported)
        image = spec.staging
    futures = [port_target.submit(spec, i, describe_ref(t.disk), image, refresh, streams)
               for i, t in enumerate(spec.targets)]  # fmt: skip
    wait(futures)
    failures = []
    for future in futures:
        outcome = future.result(raise_on_failure=False)
        if isinstance(outcome, BaseException):
            failures.append(outcome)
            stages += getattr(outcome, "partial", [])
        else:
            stages += outcome
    if failures:
        raise failures[0]


def _report(result: PortResult) -> None:
    create_markdown_artifact(
        key=result.workflow.value,
        markdown=port_table(result),
        description=f"Result of the {result.workflow.value} port" + (" (failed: partial)" if result.error else ""),
    )


HOOKS: dict[str, Any] = {"on_cancellation": [reap_run_resources], "on_crashed": [reap_run_resources]}


def _spec_of(workflow: Workflow) -> Any:
    """The ``spec`` parameter of one port flow: a PortSpec whose workflow the deployment fixes (pre-set in the
    UI's form, filled in when a caller leaves it out)."""
    fixed = FixedField("workflow", workflow, f"Fixed by this deployment: {workflow.value}.")
    return Annotated[PortSpec, BeforeValidator(fixed.fill), fixed]


McsToMcsSpec = _spec_of(Workflow.MCS_TO_MCS)
PvsToMcsSpec = _spec_of(Workflow.PVS_TO_MCS)
PvsToPvsSpec = _spec_of(Workflow.PVS_TO_PVS)
McsToPvsSpec = _spec_of(Workflow.MCS_TO_PVS)


def _documented(summary: str) -> Any:
    """One ``Args:`` text for the four port flows (Prefect reads the form's descriptions from it)."""

    def apply(fn: Any) -> Any:
        fn.__doc__ = f"""{summary}

        Args:
            spec: The port: its source, the staging file, the targets, and each stage's options.
            refresh: Redo every stage even when an earlier run's verified result could be reused.
        """
        return fn

    return apply


@flow(name="mcs-to-mcs", log_prints=True, **HOOKS)
@_documented("Export a master image's disk, upload it to each MCS target, prepare it there.")
@refusals_as_state("spec")
def mcs_to_mcs(spec: McsToMcsSpec, refresh: bool = False) -> PortResult:
    return run_port(spec, Workflow.MCS_TO_MCS, refresh)


@flow(name="pvs-to-mcs", log_prints=True, **HOOKS)
@_documented("Upload a PVS vDisk to each MCS target and prepare it there.")
@refusals_as_state("spec")
def pvs_to_mcs(spec: PvsToMcsSpec, refresh: bool = False) -> PortResult:
    return run_port(spec, Workflow.PVS_TO_MCS, refresh)


@flow(name="pvs-to-pvs", log_prints=True, **HOOKS)
@_documented("Upload a PVS vDisk to where it will be prepared, prepare it, publish it into each target store.")
@refusals_as_state("spec")
def pvs_to_pvs(spec: PvsToPvsSpec, refresh: bool = False) -> PortResult:
    return run_port(spec, Workflow.PVS_TO_PVS, refresh)


@flow(name="mcs-to-pvs", log_prints=True, **HOOKS)
@_documented("Export a master image's disk, upload, prepare, and publish it into each target PVS store.")
@refusals_as_state("spec")
def mcs_to_pvs(spec: McsToPvsSpec, refresh: bool = False) -> PortResult:
    return run_port(spec, Workflow.MCS_TO_PVS, refresh)


PORT_FLOWS = {
    Workflow.MCS_TO_MCS: mcs_to_mcs,
    Workflow.PVS_TO_MCS: pvs_to_mcs,
    Workflow.PVS_TO_PVS: pvs_to_pvs,
    Workflow.MCS_TO_PVS: mcs_to_pvs,
}
