"""What the checks before a run look at: the stages it will run and the references it names, by spec field.

A port's plan is made by ``flows/ports.py`` from the very stage specs it runs (``port_plan``); a
single-stage flow's by ``stage_plan`` here. Field names are the spec's own (``targets[0].disk``,
``upload.hyper_v_generation``; a single stage's ``target``, ``hyper_v_generation``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from imageport.adapters.registry import adapter_for
from imageport.errors import ImageportError
from imageport.models import (
    DiagnosticsSpec,
    ExportSpec,
    FinalizeMode,
    FinalizeSpec,
    HyperVGeneration,
    PrepareSpec,
    ProvisioningType,
    PublishSpec,
    Stage,
    TargetPlatform,
    UploadSpec,
)
from imageport.preflight.report import Checks

# Why ce_logs/boot_diagnostics are refused for a local image (the checks' and the task's one sentence).
IN_PLACE_ONLY = ("a local image is read in place, without a compositing engine, so there is no CE log or console: "
                 "ce_logs and boot_diagnostics apply to Azure and vSphere disks")  # fmt: skip


@dataclass(frozen=True)
class Planned:
    """One stage the run will start: its spec (the cache key's), what it reads and writes, and where the spec
    names them."""

    stage: Stage
    spec: BaseModel
    reads: Any
    writes: Any
    reads_field: str
    writes_field: str
    options: str  # where the stage's options are named: "upload" in a port, "spec" in a single-stage flow
    overwrite: bool | None  # the stage's overwrite option (None: it has none)
    name_field: str = ""  # where the output's name is given, when not in ``writes_field`` (a vDisk name)
    task: Any = None  # the stage task ``run_stage`` caches (a port's stages), to tell a result it will reuse


@dataclass(frozen=True)
class BootTarget:
    """A target the source must boot on, as the requested Hyper-V generation says."""

    field: str  # the target disk's field
    platform: TargetPlatform
    generation: HyperVGeneration
    generation_field: str
    provisioning: ProvisioningType


@dataclass
class CheckPlan:
    what: str  # "mcs-to-mcs", "upload"...: the run, for the report's first line
    refs: list[tuple[str, Any]]  # every reference the spec names, by field (their connectors are checked)
    stages: list[Planned] = field(default_factory=list)
    source: tuple[str, Any] | None = None  # the image whose firmware and size are checked
    boots: list[BootTarget] = field(default_factory=list)
    refresh: bool = False  # stages are redone: an earlier run's output is not reused
    report: tuple[str, Any] | None = None  # where a report's files go (diagnostics): its folder is probed
    checks: Checks = field(default_factory=Checks)  # problems found while planning go in here first


def field_of(options: str, name: str) -> str:
    """``upload.overwrite`` in a port, ``spec.overwrite`` in a single-stage flow (as its refusals say)."""
    return f"{options}.{name}" if options else name


def boot_target(
    field: str,
    ref: Any,
    generation: HyperVGeneration,
    generation_field: str,
    provisioning: ProvisioningType,
    platform: TargetPlatform | None = None,
) -> list[BootTarget]:
    """The boot check of one target disk, on the platform its kind is prepared for (the adapter's)."""
    platform = platform or adapter_for(ref).target_platform
    return [BootTarget(field, platform, generation, generation_field, provisioning)] if platform else []


def stage_plan(spec: BaseModel) -> CheckPlan:
    """The plan of a single-stage flow's spec."""
    if isinstance(spec, ExportSpec):
        planned = Planned(Stage.EXPORT, spec, spec.source, spec.destination, "source", "destination", "spec", None)
        return CheckPlan("export", [("source", spec.source), ("destination", spec.destination)], [planned],
                         source=("source", spec.source))  # fmt: skip
    if isinstance(spec, UploadSpec):
        planned = Planned(Stage.UPLOAD, spec, spec.source, spec.target, "source", "target", "spec", spec.overwrite)
        boots = boot_target("target", spec.target, spec.hyper_v_generation, "hyper_v_generation", ProvisioningType.MCS)
        return CheckPlan("upload", [("source", spec.source), ("target", spec.target)], [planned],
                         source=("source", spec.source), boots=boots)  # fmt: skip
    if isinstance(spec, PrepareSpec):
        planned = Planned(Stage.PREPARE, spec, spec.disk, prepared_output(spec), "disk", "disk", "spec", spec.overwrite)
        refs = [("disk", spec.disk)] + ([("installers", spec.installers)] if spec.installers else [])
        boots = boot_target("disk", spec.disk, spec.hyper_v_generation, "hyper_v_generation",
                            spec.provisioning_type, spec.target_platform)  # fmt: skip
        return CheckPlan("prepare", refs, [planned], source=("disk", spec.disk), boots=boots)
    if isinstance(spec, PublishSpec):
        planned = Planned(Stage.PUBLISH, spec, spec.source, spec.store, "source", "store", "spec", spec.overwrite,
                          "name")  # fmt: skip
        return CheckPlan("publish", [("source", spec.source), ("store", spec.store)], [planned])
    if isinstance(spec, DiagnosticsSpec):
        plan = CheckPlan("diagnostics", [("disk", spec.disk)] + ([("output", spec.output)] if spec.output else []),
                         report=("output", spec.output) if spec.output else None)  # fmt: skip
        _check_diagnostics_reader(spec, plan.checks)
        return plan
    if isinstance(spec, FinalizeSpec):
        plan = CheckPlan("finalize", [("disk", spec.disk)])
        with plan.checks.of("disk", "its platform boots it in a helper VM"):
            finalizable(spec.disk)
        if spec.enabled is FinalizeMode.OFF:  # auto and on both boot it: the stage alone was asked for
            plan.checks.problem("enabled", "asks for a finalize", "off asks for no finalize: run it with auto or on")
        return plan
    raise TypeError(f"no checks for a {type(spec).__name__}")


def finalizable(ref: Any) -> None:
    """Refuse (``InputError``) a disk whose platform boots no helper VM; reaches no connector."""
    adapter_for(ref).finalize_source(ref, _NO_CONNECTORS)


def _check_diagnostics_reader(spec: DiagnosticsSpec, checks: Checks) -> None:
    """Who reads the disk for the report (in place, or a CE of its platform), and what that reader can give."""
    try:  # building the CE's source reaches no connector
        on_engine = adapter_for(spec.disk).diagnostics_source(spec.disk, _NO_CONNECTORS) is not None
    except ImageportError as exc:
        checks.problem("disk", "read for a report", str(exc))
        return
    checks.passed("disk", "read for a report")
    if not on_engine:
        for name in ("ce_logs", "boot_diagnostics"):
            if getattr(spec, name):
                checks.problem(name, "has a compositing engine", IN_PLACE_ONLY)


class _NoConnectors:
    def build(self, name: str, connector_kind: str, where: str) -> Any:
        raise AssertionError("a diagnostics or finalize source is built without reaching a connector")


_NO_CONNECTORS = _NoConnectors()


def prepared_output(spec: PrepareSpec) -> Any:
    """The reference of the copy prepare leaves (its kind's adapter names it), None where prepare refuses the
    kind (the role check says so). Decision: an output snapshot (``output_snapshot_name``) is checked under
    the disk name's rule for now; the snapshot output per target is issue 15 part 3's."""
    if spec.output is not None:
        return spec.output
    try:
        return adapter_for(spec.disk).prepared(spec.disk, spec.output_disk_name)
    except ImageportError:
        return None
