"""Typed stage and port results, and the one place a core result becomes a ``StageResult``.

Every stage of a workflow (export, upload, prepare, publish) returns a :class:`StageResult`;
a port returns a :class:`PortResult`. They are pydantic models, JSON round-trippable: Prefect
persists them as JSON, so a cached stage comes back typed, and the artifacts, the CLI tables
and ``--json`` render from them (``--json`` is ``model_dump(mode="json")``).

The core keeps its own result dataclasses (``ConvertResult``, ``UploadResult``,
``ManagedDiskUpload``, ``VsphereExport``, ``XenServerExport``, ``VsphereImport``, ``PublishResult``, the agent's
prepare result); one converter per type below turns each into a ``StageResult``. Nothing else
builds a ``StageResult`` from a core result. The converters read the core results' fields
only: the core types are imported for type checking, so importing this module (the CLI does)
loads no SDK.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field

from imageport.models import Stage, Workflow
from imageport.models.installers import StagedInstaller
from imageport.models.vocabulary import _Model

if TYPE_CHECKING:
    from imageport.disks.convert import ConvertResult
    from imageport.engine.finalize import Finalized
    from imageport.engine.job import AgentResult
    from imageport.engine.lifecycle import Outcome
    from imageport.guest.diagnostics import Diagnostics
    from imageport.platforms.ahv.export import AhvExport
    from imageport.platforms.azure.disks import ManagedDiskUpload
    from imageport.platforms.pvs.publish import PublishResult
    from imageport.platforms.vsphere.export import VsphereExport
    from imageport.platforms.vsphere.imports import VsphereImport
    from imageport.platforms.vsphere.upload import DatastoreUpload, PlacedVm
    from imageport.platforms.xenserver.export import XenServerExport
    from imageport.transfer.pages import UploadResult


class CreatedResource(_Model):
    """Something a stage created: left in place as its output, or a temporary it removed."""

    kind: str = Field(description="e.g. 'file', 'azure-disk', 'vsphere-snapshot', 'azure-vm'.")
    id: str = Field(description="Platform id or path; never carries a secret.")

    def describe(self) -> str:
        return f"{self.kind} {self.id}"


# --- per-stage details: the stage-specific facts that are user-facing ----------------------------


class UploadDetails(_Model):
    """An upload onto a page blob or an Azure managed disk."""

    kind: Literal["upload"] = "upload"
    disk_id: str | None = Field(default=None, description="The Azure managed disk's resource id.")
    resumed_disk: bool = Field(default=False, description="The disk an interrupted run left was resumed.")
    run_id: str | None = None
    revoked_leftover: str | None = Field(default=None, description="The run whose leftover write grant was revoked.")
    chunks_planned: int = 0
    chunks_sent: int = 0
    chunks_resumed: int = 0
    zero_chunks: int = 0
    chunks_read_back: int = 0
    chunks_repaired: int = 0


class ExportDetails(_Model):
    """An export of a vSphere VM's disk."""

    kind: Literal["vsphere-export"] = "vsphere-export"
    vm: str = Field(description="The VM, as it was named.")
    disk: str = Field(description="The disk's label ('Hard disk 1').")
    source_file: str = Field(description="The disk's file: '[datastore] folder/name.vmdk'.")
    snapshot: str = Field(description="The snapshot read: the run's own or a named one (kept).")
    snapshot_created: bool = Field(description="This run took the snapshot (and removed it).")
    read_path: str = Field(description="datastore (ranged HTTPS) or nfc (export lease).")


class XenServerExportDetails(_Model):
    """An export of a XenServer VM's disk (its snapshot's VDI over ``/export_raw_vdi``)."""

    kind: Literal["xenserver-export"] = "xenserver-export"
    vm: str = Field(description="The VM, as it is named (name label).")
    vm_uuid: str = Field(description="The VM's uuid.")
    disk: str = Field(description="The disk: 'userdevice 0 (xvda)'.")
    vdi_uuid: str = Field(description="The snapshot VDI read.")
    snapshot: str = Field(description="The snapshot read: the run's own or a named one (kept).")
    snapshot_created: bool = Field(description="This run took the snapshot (and destroyed it with its VDIs).")
    passes: int = Field(description="Export streams it took (more than one after a dropped stream).")


class ImportDetails(_Model):
    """An image written onto a vSphere datastore as a disk ESXi runs."""

    kind: Literal["vsphere-import"] = "vsphere-import"
    disk: str = Field(description="'[datastore] folder/name.vmdk': what a VM's disk backing names.")
    files: list[str] = Field(default_factory=list)
    disk_kind: str
    vm: str | None = None


class PendingAction(_Model):
    """A startup action the prepare left in the image: it runs at the image's next boot."""

    name: str = Field(description="The action's script, e.g. 20-install-pvs.cmd.")
    what: str = Field(description="What it does.")
    installer: StagedInstaller | None = Field(default=None, description="The installer it runs, as checked.")


class PrepareDetails(_Model):
    """What a compositing engine changed in the image."""

    kind: Literal["prepare"] = "prepare"
    platform: str = Field(description="What the image was prepared to run on.")
    generation: str = Field(description="Hyper-V generation (V1: BIOS, V2: UEFI).")
    provisioning: str = Field(description="mcs or pvs.")
    dry_run: bool = False
    changes: list[str] = Field(default_factory=list, description="Each change, old -> new.")
    applied: int = Field(default=0, description="How many of the changes were written.")
    firmware: str | None = None
    launch_s: float = 0.0
    work_s: float = 0.0
    launches: int = 0
    output_id: str | None = Field(default=None, description="The kept output's final id (path, Azure disk...).")
    agent_version: str | None = None
    boot_log: str | None = Field(default=None, description="The CE's console (boot_diagnostics).")
    pending: list[PendingAction] = Field(default_factory=list, description="Startup actions left in the image.")
    next_step: str = Field(default="", description="What the admin must do about them ('' when none).")


class FinishedAction(_Model):
    """A startup action the finalize boot ran, as ``firstboot.log`` records it."""

    name: str = Field(description="The action's script, e.g. 20-install-pvs.cmd.")
    exit_code: int | None = Field(description="Its exit code (None: started, never ended -- it rebooted or hung).")


class FinalizeDetails(_Model):
    """A prepared image booted once in a helper VM until its startup actions reported done."""

    kind: Literal["finalize"] = "finalize"
    platform: str = Field(description="Where it booted (azure, vsphere).")
    vm: str = Field(description="The helper VM (deleted).")
    image: str = Field(description="The image, left in place, stopped, its actions run.")
    done: list[FinishedAction] = Field(default_factory=list, description="Each action the runner ran.")
    failed: list[str] = Field(default_factory=list, description="Actions that exited non-zero.")
    log: str = Field(default="", description="The end of firstboot.log, through its 'all actions done' line.")


class PublishDetails(_Model):
    """A vDisk written into a PVS store."""

    kind: Literal["publish"] = "publish"
    vdisk: str
    store: str
    file: str
    version: int
    format: str
    registration_file: str
    manifest_file: str
    registration: str = Field(description="The PowerShell that registers the vDisk.")


Details = Annotated[
    UploadDetails | ExportDetails | XenServerExportDetails | ImportDetails | PrepareDetails | FinalizeDetails
    | PublishDetails,
    Field(discriminator="kind"),
]


class StageResult(_Model):
    """One stage's outcome: what it read and wrote, the proof, what it left and removed."""

    stage: Stage
    source: str = Field(description="The reference the stage read (as `describe_ref` prints it).")
    target: str = Field(description="The reference the stage wrote.")
    virtual_size: int | None = Field(default=None, ge=0)
    bytes_read: int | None = Field(default=None, ge=0, description="Data bytes read from the source.")
    bytes_written: int | None = Field(default=None, ge=0, description="Data bytes written to the target.")
    content_hash: str | None = Field(default=None, description="Content hash of the output, as verified.")
    verified: str | None = Field(
        default=None, description="What the hash rests on: written, re-read, full, page-ranges; prepare: re-read."
    )
    sha256: str | None = None
    md5: str | None = None
    seconds: float = Field(default=0.0, ge=0, description="This run's time for the stage (near 0 when reused).")
    created: list[CreatedResource] = Field(default_factory=list, description="Left in place as the output.")
    removed: list[CreatedResource] = Field(default_factory=list, description="Temporaries created and removed.")
    reused: bool = Field(default=False, description="An earlier run's verified result was reused.")
    streamed: bool = Field(default=False, description="Export: its source was streamed into the targets' uploads "
                           "as it was copied (one read). Upload: written from that stream, not the staging file.")
    resumed: bool = Field(default=False, description="An interrupted earlier run's work was resumed.")
    restarted: str | None = Field(default=None, description="Why an interrupted run's work was discarded.")
    warnings: list[str] = Field(default_factory=list)
    pending_first_boot: list[str] = Field(default_factory=list, description="First-boot actions left to run.")
    details: Details | None = None

    def kept(self) -> list[str]:
        """What the stage left in place, for a reader: its outputs, or its target."""
        return [r.id for r in self.created] or [self.target]


class PortResult(_Model):
    """A workflow's outcome: every completed stage (all of them unless ``error``)."""

    workflow: Workflow
    stages: list[StageResult] = Field(default_factory=list)
    wall_seconds: float = Field(default=0.0, ge=0)
    stage_seconds: float = Field(default=0.0, ge=0, description="The sum of the stages' seconds.")
    error: str | None = Field(default=None, description="Why the port stopped; the stages are what completed.")


def port_result(workflow: Workflow, stages: list[StageResult], wall: float, error: str | None = None) -> PortResult:
    return PortResult(workflow=workflow, stages=stages, wall_seconds=wall,
                      stage_seconds=sum(s.seconds for s in stages), error=error)  # fmt: skip


# --- the converters: one per core result type ---------------------------------------------------


def _file(path: str | None) -> list[CreatedResource]:
    return [CreatedResource(kind="file", id=path)] if path else []


def from_convert(result: ConvertResult, stage: Stage) -> StageResult:
    """A conversion or copy (``disks.convert`` / ``transfer.copy.copy_image``): an export or a local upload."""
    return StageResult(
        stage=stage, source=result.source, target=result.output or "", virtual_size=result.virtual_size,
        bytes_read=result.source_allocated, bytes_written=result.data_written, content_hash=result.content_hash,
        verified=result.verified, sha256=result.sha256, md5=result.md5, seconds=result.seconds,
        created=_file(result.output), resumed=result.resumed, restarted=result.restarted,
    )  # fmt: skip


def from_page_upload(result: UploadResult, details: UploadDetails | None = None) -> StageResult:
    """An upload onto a page blob (``transfer.pages``)."""
    details = details or UploadDetails()
    counts = {k: getattr(result, k) for k in ("chunks_planned", "chunks_sent", "chunks_resumed", "zero_chunks",
                                               "chunks_read_back", "chunks_repaired")}  # fmt: skip
    return StageResult(
        stage=Stage.UPLOAD, source="", target=details.disk_id or result.target, virtual_size=result.virtual_size,
        bytes_written=result.bytes_sent, content_hash=result.content_hash, verified=result.verified,
        seconds=result.seconds, created=[CreatedResource(kind="azure-disk", id=details.disk_id)] if details.disk_id
        else [], resumed=result.chunks_resumed > 0, restarted=result.restarted,
        details=details.model_copy(update=counts),
    )  # fmt: skip


def from_managed_disk_upload(outcome: ManagedDiskUpload) -> StageResult:
    """An upload onto an Azure managed disk (``platforms.azure.disks.upload_to_managed_disk``)."""
    details = UploadDetails(disk_id=outcome.disk_id, resumed_disk=outcome.resumed_disk, run_id=outcome.run_id or None,
                            revoked_leftover=outcome.revoked_leftover)  # fmt: skip
    return from_page_upload(outcome.transfer, details)


def from_vsphere_export(result: VsphereExport) -> StageResult:
    """A vSphere VM's disk exported through a snapshot (``platforms.vsphere.export``)."""
    snapshot = [CreatedResource(kind="vsphere-snapshot", id=f"{result.vm}/{result.snapshot}")]
    return StageResult(
        stage=Stage.EXPORT, source=f"{result.vm} {result.disk}", target=result.output,
        virtual_size=result.virtual_size, bytes_written=result.data_written,
        content_hash=result.content_hash, verified=result.verified, sha256=result.sha256,
        md5=result.md5, seconds=result.seconds, created=_file(result.output),
        removed=snapshot if result.snapshot_created else [],
        details=ExportDetails(vm=result.vm, disk=result.disk, source_file=result.source_file,
                              snapshot=result.snapshot, snapshot_created=result.snapshot_created,
                              read_path=result.read_path),
    )  # fmt: skip


def from_xenserver_export(result: XenServerExport) -> StageResult:
    """A XenServer VM's disk exported through a snapshot (``platforms.xenserver.export``)."""
    removed = [CreatedResource(kind="xenserver-snapshot", id=f"{result.vm}/{result.snapshot}")]
    return StageResult(
        stage=Stage.EXPORT, source=f"{result.vm} {result.disk}", target=result.output,
        virtual_size=result.virtual_size, bytes_written=result.data_written,
        content_hash=result.content_hash, verified=result.verified, sha256=result.sha256,
        md5=result.md5, seconds=result.seconds, created=_file(result.output),
        removed=removed if result.snapshot_created else [],
        restarted=f"the export stream dropped: {result.attempts} passes" if result.attempts > 1 else None,
        details=XenServerExportDetails(vm=result.vm, vm_uuid=result.vm_uuid, disk=result.disk,
                                       vdi_uuid=result.vdi_uuid, snapshot=result.snapshot,
                                       snapshot_created=result.snapshot_created, passes=result.attempts),
    )  # fmt: skip


def from_ahv_export(result: AhvExport) -> StageResult:
    """An AHV VM's disk exported through a temporary image (``platforms.ahv.export``), which it deleted."""
    return StageResult(
        stage=Stage.EXPORT, source=f"{result.vm} {result.disk}", target=result.output,
        virtual_size=result.virtual_size, bytes_written=result.data_written, content_hash=result.content_hash,
        verified=result.verified, sha256=result.sha256, md5=result.md5, seconds=result.seconds,
        created=_file(result.output), removed=[CreatedResource(kind="ahv-image", id=result.image)],
        warnings=[f"{result.resumed_streams} dropped download stream(s) resumed"] if result.resumed_streams else [],
    )  # fmt: skip


def from_vsphere_import(result: VsphereImport, source: str = "") -> StageResult:
    """An image written onto a datastore as a disk ESXi runs (``platforms.vsphere.imports``)."""
    created = [CreatedResource(kind="vsphere-disk", id=result.disk)]
    if result.vm:
        created.append(CreatedResource(kind="vsphere-vm", id=result.vm))
    return StageResult(
        stage=Stage.UPLOAD, source=source, target=result.disk, virtual_size=result.virtual_size,
        content_hash=result.content_hash, verified="written", seconds=result.seconds, created=created,
        details=ImportDetails(disk=result.disk, files=list(result.files), disk_kind=result.kind, vm=result.vm),
    )  # fmt: skip


def placed_vm(vm: PlacedVm | None) -> list[CreatedResource]:
    """The VM a vSphere disk was given: created (an output left in place) or attached to (named the same way)."""
    return [] if vm is None else [CreatedResource(kind="vsphere-vm" if vm.created else "vsphere-vm-attached",
                                                  id=f"{vm.name} ({vm.moref})")]  # fmt: skip


def from_datastore_upload(result: DatastoreUpload, source: str = "") -> StageResult:
    """An image written onto a datastore as a flat VMDK ESXi runs, read back (``platforms.vsphere.upload``)."""
    files = [CreatedResource(kind="vsphere-disk", id=result.target)]
    return StageResult(
        stage=Stage.UPLOAD, source=source, target=result.target, virtual_size=result.virtual_size,
        bytes_written=result.bytes_written, content_hash=result.content_hash,
        verified="re-read" if result.verified else None, seconds=result.seconds,
        created=files + placed_vm(result.vm),
        details=ImportDetails(disk=result.target, files=list(result.files), disk_kind="flat",
                              vm=result.vm.name if result.vm else None),
    )  # fmt: skip


def from_publish(result: PublishResult, source: str = "") -> StageResult:
    """A vDisk written into a PVS store (``platforms.pvs.publish``)."""
    return StageResult(
        stage=Stage.PUBLISH, source=source, target=result.file, virtual_size=result.virtual_size,
        bytes_written=result.data_written, content_hash=result.content_hash, verified=result.verified,
        seconds=result.seconds, resumed=result.resumed, restarted=result.restarted,
        created=_file(result.file) + _file(result.registration_file) + _file(result.manifest_file),
        details=PublishDetails(vdisk=result.vdisk, store=result.store, file=result.file, version=result.version,
                               format=result.format, registration_file=result.registration_file,
                               manifest_file=result.manifest_file, registration=result.registration),
    )  # fmt: skip


def from_prepare(agent: AgentResult, outcome: Outcome, output: str) -> StageResult:
    """A prepare on a compositing engine: the agent's result (``guest.prepare.PrepareResult`` as it reports it)
    and what the CE run left (``engine.lifecycle.Outcome``: the kept output, every resource it created)."""
    done: dict[str, Any] = agent.result
    kept = [CreatedResource(kind=r.kind, id=outcome.output or r.final or r.id) for r in outcome.created if r.keep]
    removed = [CreatedResource(kind=r.kind, id=r.id) for r in outcome.created if not r.keep]
    from imageport.guest.firstboot import next_step

    facts = done.get("facts") or {}
    pending = [PendingAction.model_validate(a) for a in done.get("pending_actions", [])]
    return StageResult(
        stage=Stage.PREPARE, source=str(done.get("image", "")), target=outcome.output or output,
        verified="re-read" if done.get("verified") else None, seconds=float(done.get("seconds", 0.0)),
        created=kept, removed=removed, warnings=list(done.get("warnings", [])),
        pending_first_boot=list(done.get("firstboot_actions", [])),
        details=PrepareDetails(
            platform=str(done.get("platform", "")), generation=str(done.get("generation", "")),
            provisioning=str(done.get("provisioning", "")), dry_run=bool(done.get("dry_run", False)),
            changes=list(done.get("changes", [])), applied=int(done.get("applied", 0)),
            firmware=facts.get("firmware") if isinstance(facts, dict) else None,
            launch_s=float(done.get("launch_s", 0.0)), work_s=float(done.get("work_s", 0.0)),
            launches=int(done.get("launches", 0)), output_id=outcome.output, agent_version=agent.agent_version,
            boot_log=outcome.boot_log,
            pending=pending, next_step=next_step([a.name for a in pending]),
        ),
    )  # fmt: skip


def from_finalize(done: Finalized, source: str) -> StageResult:
    """A finalize (``engine.finalize.Finalized``): the image it left ready, the actions its log says ran, the
    helper's resources (all removed)."""
    log = done.log
    ran = [FinishedAction(name=name, exit_code=log.ended.get(name)) for name in log.started]
    failed = log.failed()
    warnings = [f"startup action {name} exited {log.ended[name]}: see its lines in firstboot.log" for name in failed]
    return StageResult(
        stage=Stage.FINALIZE, source=source, target=source, seconds=done.seconds,
        removed=[CreatedResource(kind=r.kind, id=r.id) for r in done.removed], warnings=warnings,
        details=FinalizeDetails(platform=done.platform, vm=done.vm, image=done.image, done=ran, failed=failed,
                                log=done.log_text),
    )  # fmt: skip


class DiagnosticsResult(_Model):
    """A read-only report on an image: where it was read, what it says, where it was saved."""

    disk: str = Field(description="The disk reported on, as its reference text.")
    engine: str | None = Field(default=None, description="The compositing engine's platform (None: read in place).")
    report: dict[str, Any] = Field(description="The report as JSON (guest.diagnostics.Diagnostics.as_dict).")
    markdown: str = Field(description="The report for people (the run's artifact).")
    problems: list[str] = Field(default_factory=list, description="What would stop a prepare or a boot.")
    saved: list[str] = Field(default_factory=list, description="Where the JSON and Markdown files were written.")
    removed: list[CreatedResource] = Field(default_factory=list, description="The CE's resources, all removed.")


def from_diagnostics(report: Diagnostics, saved: list[str], outcome: Outcome | None) -> DiagnosticsResult:
    """A diagnostics run: the guest's report and, when a CE read the disk, what that CE created (and removed)."""
    removed = [CreatedResource(kind=r.kind, id=r.id) for r in outcome.created] if outcome is not None else []
    return DiagnosticsResult(disk=report.image, engine=report.engine or None, report=report.as_dict(),
                             markdown=report.markdown(), problems=list(report.problems), saved=saved,
                             removed=removed)  # fmt: skip
