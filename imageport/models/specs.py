"""Stage specs (options plus inputs and outputs) and the workflow spec with its fan-out."""

from __future__ import annotations

from pydantic import (
    Field,
    model_validator,
)

from imageport.models.fields import VDiskName
from imageport.models.options import ExportOptions, FinalizeOptions, PrepareOptions, PublishOptions, UploadOptions
from imageport.models.refs import (
    AzureDiskRef,
    DiskRef,
    FileRef,
    LocalRef,
    PlatformDiskRef,
    ShareRef,
    WrittenFileRef,
    WrittenPlatformDiskRef,
    WrittenPreparedRef,
    WrittenStoreRef,
)
from imageport.models.vocabulary import (
    WORKFLOW_STAGES,
    HyperVGeneration,
    ProvisioningType,
    Stage,
    TargetPlatform,
    Workflow,
    _Model,
)

# --- stage specs ---------------------------------------------------------------


class ExportSpec(ExportOptions):
    """Copy a disk off its platform onto shared storage, read-only for the source."""

    source: PlatformDiskRef = Field(description="The disk to export: a VM's disk, a managed disk or snapshot, a file.")
    destination: WrittenFileRef = Field(description="Where the exported image file is written (share or local).")


class UploadSpec(UploadOptions):
    """Put an image from shared storage onto the target platform."""

    source: FileRef = Field(description="The image file to upload (share or local).")
    target: WrittenPlatformDiskRef = Field(description="The disk to create on the target platform.")


class PrepareSpec(PrepareOptions):
    """Make an image boot and work on its target, on a copy (the compositing engine's job)."""

    disk: DiskRef = Field(description="The image to prepare (it is copied first unless told otherwise).")
    target_platform: TargetPlatform = Field(description="Platform the prepared image must boot on.")
    hyper_v_generation: HyperVGeneration = Field(
        default=HyperVGeneration.V2, description="Azure VM generation the image must boot as (V1 BIOS, V2 UEFI)."
    )
    output: WrittenPreparedRef | None = Field(
        default=None,
        description="Where the prepared copy goes: a local file, or (a vSphere disk) a VMDK on a datastore, which "
        "may get a VM (default: NAME-prepared.EXT next to the input).",
    )


class FinalizeSpec(FinalizeOptions):
    """Boot a prepared image once on its platform until the startup actions its prepare left report done."""

    disk: DiskRef = Field(description="The prepared image (an Azure managed disk, a datastore disk).")


class PublishSpec(PublishOptions):
    """Write a prepared image into a PVS store share as a ready-to-register vDisk."""

    source: DiskRef = Field(description="The prepared image to publish.")
    store: WrittenStoreRef = Field(description="Store folder (a share connector path).")
    name: VDiskName


class DiagnosticsSpec(_Model):
    """Read-only report on an image: OS, Citrix components, drivers, previous prepare logs."""

    disk: DiskRef = Field(description="The image to report on (read only).")
    output: WrittenFileRef | None = Field(
        default=None, description="Where to write the report: BASE.json and BASE.md on a share or a local folder."
    )
    ce_logs: bool = Field(
        default=False, description="Put the compositing engine's own log in the report (Azure and vSphere disks)."
    )
    boot_diagnostics: bool = Field(
        default=False,
        description="Capture the compositing engine's console (Azure boot diagnostics; a vSphere serial port "
        "file) and put it in the report (Azure and vSphere disks).",
    )
    timeout_s: int | None = Field(
        default=None, ge=60, le=86400, description="Give up on the compositing engine after this (default 3600 s)."
    )


# --- workflows --------------------------------------------------------------------


class PortTarget(_Model):
    """One destination of a port. A workflow may fan one export out to several targets."""

    disk: WrittenPlatformDiskRef | None = Field(
        default=None, description="Target disk (MCS targets, and the upload step of PVS targets)."
    )
    store: WrittenStoreRef | None = Field(default=None, description="PVS store folder (PVS targets).")
    vdisk_name: VDiskName | None = Field(default=None, description="vDisk name in the store (PVS targets).")


class PortSpec(_Model):
    """A whole port: which workflow, from where, through which share, to which targets."""

    workflow: Workflow = Field(description="Which of the four workflows this port is.")
    source: DiskRef = Field(description="MCS: the master image's disk on its platform; PVS: the vDisk file.")
    staging: WrittenFileRef = Field(description="Share path (file) where the exported image is written.")
    targets: list[PortTarget] = Field(
        min_length=1, max_length=16, description="Where the image goes: one or more targets, ported in parallel."
    )
    export: ExportOptions = Field(default_factory=ExportOptions, description="Export options (MCS sources).")
    upload: UploadOptions = Field(default_factory=UploadOptions, description="Upload options, for every target.")
    prepare: PrepareOptions = Field(default_factory=PrepareOptions, description="Prepare options, for every target.")
    finalize: FinalizeOptions = Field(
        default_factory=FinalizeOptions, description="Finalize: boot each prepared target once to run its actions."
    )
    publish: PublishOptions = Field(default_factory=PublishOptions, description="Publish options (PVS targets).")

    @property
    def stages(self) -> tuple[Stage, ...]:
        return WORKFLOW_STAGES[self.workflow]

    @model_validator(mode="after")
    def _fits_workflow(self) -> PortSpec:
        from_pvs = self.workflow in (Workflow.PVS_TO_MCS, Workflow.PVS_TO_PVS)
        to_pvs = self.workflow in (Workflow.PVS_TO_PVS, Workflow.MCS_TO_PVS)
        file_source = isinstance(self.source, ShareRef | LocalRef)
        if from_pvs and not file_source:
            raise ValueError(f"{self.workflow.value}: the source must be a vDisk file (kind 'share' or 'local')")
        if not from_pvs and isinstance(self.source, ShareRef):
            raise ValueError(f"{self.workflow.value}: the source must be a disk on a platform, not a share file")
        for i, target in enumerate(self.targets):
            if target.disk is None:
                raise ValueError(f"targets[{i}].disk is required: every workflow uploads to a platform disk")
            if to_pvs and (target.store is None or target.vdisk_name is None):
                raise ValueError(f"targets[{i}]: {self.workflow.value} needs store and vdisk_name")
            if not to_pvs and (target.store or target.vdisk_name):
                raise ValueError(f"targets[{i}]: store/vdisk_name only apply to PVS targets")
        if self.prepare.output_snapshot_name and not any(type(t.disk) is AzureDiskRef for t in self.targets):
            raise ValueError("prepare.output_snapshot_name: an Azure snapshot is the output of an Azure target; none")
        if self.prepare.provisioning_type is not (ProvisioningType.PVS if to_pvs else ProvisioningType.MCS):
            expected = "pvs" if to_pvs else "mcs"
            raise ValueError(f"prepare.provisioning_type must be '{expected}' for {self.workflow.value}")
        return self
