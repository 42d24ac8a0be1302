"""Typed models: where disks are, what each stage is asked to do, what it did.

Everything that crosses a layer or a process boundary (flow parameters, agent
job files, CLI specs, results) is one of these pydantic v2 models, so the
Prefect UI renders them as forms and bad input fails before anything is
created. Option names follow Citrix Image Portability (see
docs/architecture.md and the Citrix reference) in snake_case.

``parse_model`` is the one entry point for untrusted input: it turns a pydantic
``ValidationError`` into an ``InputError`` whose lines each start with the
dotted path of the offending field.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal, Optional, TypeVar, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
    model_validator,
)

from imageport import names
from imageport.compat import StrEnum
from imageport.errors import InputError
from imageport.forms import KindForm, NameValuePairs, shape_model

# --- shared vocabulary ------------------------------------------------------


class DiskFormat(StrEnum):
    """Container formats a stage can be asked to write."""

    VHD = "vhd"  # fixed VHD: what Azure accepts
    VHD_DYNAMIC = "vhd-dynamic"
    VHDX = "vhdx"
    RAW = "raw"
    VMDK_STREAM = "vmdk-stream"
    VMDK_SPARSE = "vmdk-sparse"


class ShareDiskFormat(StrEnum):
    """Formats Citrix writes to a share (Windows File Share connector 'Disk Format')."""

    VHD = "vhd"
    VHDX = "vhdx"

    @property
    def writes(self) -> DiskFormat:
        """The container written: a VHD on a share is dynamic (sparse), as Hyper-V and PVS make them."""
        return DiskFormat.VHDX if self is ShareDiskFormat.VHDX else DiskFormat.VHD_DYNAMIC


class VerifyMode(StrEnum):
    """How a stage that writes proves what the target holds."""

    AUTO = "auto"  # digests of what this run wrote, plus a read-back of anything it skipped or resumed
    FULL = "full"  # and re-read the whole target afterwards (one read of its allocated data)


class ProvisioningType(StrEnum):
    MCS = "mcs"
    PVS = "pvs"


class InstallType(StrEnum):
    """Citrix ``IpsInstallType``: install if missing, force a reinstall, or leave alone."""

    INSTALL = "install"
    FORCE = "force"
    SKIP = "skip"


class TargetPlatform(StrEnum):
    AZURE = "azure"
    VSPHERE = "vsphere"
    LOCAL = "local"


class AzureSku(StrEnum):
    """Managed-disk SKUs accepted by direct upload (Citrix's -StorageType list)."""

    STANDARD_LRS = "Standard_LRS"
    PREMIUM_LRS = "Premium_LRS"
    STANDARD_SSD_LRS = "StandardSSD_LRS"
    PREMIUM_ZRS = "Premium_ZRS"
    STANDARD_SSD_ZRS = "StandardSSD_ZRS"


class HyperVGeneration(StrEnum):
    V1 = "V1"
    V2 = "V2"


class OsType(StrEnum):
    WINDOWS = "Windows"
    LINUX = "Linux"


class Workflow(StrEnum):
    MCS_TO_MCS = "mcs-to-mcs"
    PVS_TO_MCS = "pvs-to-mcs"
    PVS_TO_PVS = "pvs-to-pvs"
    MCS_TO_PVS = "mcs-to-pvs"


class Stage(StrEnum):
    EXPORT = "export"
    UPLOAD = "upload"
    PREPARE = "prepare"
    PUBLISH = "publish"
    DIAGNOSTICS = "diagnostics"


# Which stages each workflow runs (DESIGN.md, "The four workflows").
WORKFLOW_STAGES: dict[Workflow, tuple[Stage, ...]] = {
    Workflow.MCS_TO_MCS: (Stage.EXPORT, Stage.UPLOAD, Stage.PREPARE),
    Workflow.PVS_TO_MCS: (Stage.UPLOAD, Stage.PREPARE),
    Workflow.PVS_TO_PVS: (Stage.UPLOAD, Stage.PREPARE, Stage.PUBLISH),
    Workflow.MCS_TO_PVS: (Stage.EXPORT, Stage.UPLOAD, Stage.PREPARE, Stage.PUBLISH),
}


class _Model(BaseModel):
    """Strict about unknown fields: a typo in a spec must not be silently ignored."""

    # json_schema_extra: the schema shaped for the Prefect UI's forms (imageport/forms.py).
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False, json_schema_extra=shape_model)


def _titled(title: str) -> ConfigDict:
    """A model's title in the UI (a union's choice label; pydantic would use the class name)."""
    return ConfigDict(title=title)


# --- names the platforms accept ----------------------------------------------

# Azure managed disk / snapshot names: 1-80 chars, letters, digits, '_', '.', '-';
# must start with a letter or digit and end with a letter, digit or '_'.
_AZURE_DISK_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,78}[A-Za-z0-9_])?$")
# Azure resource group names: 1-90 chars of letters, digits, '_', '-', '.', '(' ,')'; not ending in '.'.
_AZURE_RG_NAME = re.compile(r"^[\w().-]{0,89}[\w()-]$")
_CONNECTOR_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def azure_disk_name(value: str) -> str:
    if not _AZURE_DISK_NAME.match(value):
        raise ValueError(
            f"{value!r} is not a valid Azure disk/snapshot name: use 1-80 letters, digits, "
            "'_', '.' or '-', starting with a letter or digit and ending with a letter, digit or '_'"
        )
    return value


def azure_resource_group(value: str) -> str:
    if not _AZURE_RG_NAME.match(value):
        raise ValueError(
            f"{value!r} is not a valid Azure resource group name: use 1-90 letters, digits, "
            "'_', '-', '.', '(' or ')', not ending with '.'"
        )
    return value


def connector_name(value: str) -> str:
    """Connector names are Prefect block document names: lowercase slugs."""
    if not _CONNECTOR_NAME.match(value):
        raise ValueError(
            f"{value!r} is not a valid connector name: use lowercase letters, digits and '-', "
            "1-63 characters, not starting or ending with '-'"
        )
    return value


AzureName = Annotated[str, AfterValidator(azure_disk_name), Field(description="Azure disk or snapshot name.")]
AzureResourceGroup = Annotated[str, AfterValidator(azure_resource_group), Field(description="Azure resource group.")]
ConnectorName = Annotated[
    str,
    AfterValidator(connector_name),
    Field(description="Name of a saved connector (Prefect block document name)."),
]
# The rules themselves live in imageport/names.py, shared with the CLI and the publish code.
RelativePath = Annotated[str, AfterValidator(names.store_path)]
VDiskName = Annotated[
    str, AfterValidator(names.vdisk_name), Field(description="vDisk name without extension (PVS's rules).")
]
PvsText = Annotated[str, AfterValidator(names.free_text)]


def _check_tags(tags: dict[str, str]) -> dict[str, str]:
    # Azure's limits are the tightest of the platforms: 50 tags, 512-char names, 256-char values.
    if len(tags) > 50:
        raise ValueError("at most 50 tags are allowed (Azure's limit)")
    for key, val in tags.items():
        if not key or len(key) > 512 or any(c in key for c in "<>%&\\?/"):
            raise ValueError(f"tag name {key!r} is empty, too long or contains one of <>%&\\?/")
        if len(val) > 256:
            raise ValueError(f"tag {key!r}: values may be at most 256 characters")
    return tags


Tags = Annotated[
    dict[str, str],
    BeforeValidator(NameValuePairs.parse),
    AfterValidator(_check_tags),
    PlainSerializer(NameValuePairs.dump, when_used="json"),
    NameValuePairs(),
    Field(default_factory=dict, description="Tags/labels put on every resource created."),
]


# --- disk references ---------------------------------------------------------

# What an image file must be when read (refused when its content says otherwise); see disks/detect.py.
# Aliases are evaluated at import, so they spell unions as Optional/Union: the agent runs on 3.9 too.
InputFormat = Annotated[
    Optional[DiskFormat],  # noqa: UP045
    Field(
        description="Format the image must be when read (default: detected; a different content is refused). "
        "'raw' also reads a file whose damaged signatures would otherwise be refused."
    ),
]


class VsphereDiskRef(_Model):
    """A virtual disk of a vSphere VM."""

    model_config = _titled("vSphere VM disk")

    kind: Literal["vsphere"] = "vsphere"
    connector: ConnectorName
    vm: str = Field(min_length=1, description="VM name, inventory path (DC/vm/folder/name) or MoRef (vm-123).")
    disk: str | None = Field(
        default=None,
        description="Disk label ('Hard disk 1') or datastore path ('[DS] dir/disk.vmdk'); default: the first disk.",
    )
    snapshot: str | None = Field(
        default=None, description="Read this existing snapshot instead of taking one for the run."
    )


class DatastoreFileRef(_Model):
    """A disk file on a vSphere datastore, read over HTTPS; as an upload target, a new disk ESXi runs.

    Written (an upload target) ``path`` is the ``.vmdk`` descriptor of a flat disk (``NAME.vmdk`` +
    ``NAME-flat.vmdk``), and the upload may also put a VM around it (``create_vm``) or attach it to an
    existing VM (``attach_to_vm``); both are upload options of a written reference only.
    """

    model_config = _titled("vSphere datastore file")

    kind: Literal["datastore"] = "datastore"
    connector: ConnectorName
    datastore: str = Field(min_length=1, description="Datastore name, e.g. 'LocalDS_0'.")
    path: RelativePath = Field(description="Path on the datastore, e.g. 'gold/gold.vmdk'.")
    create_vm: str | None = Field(
        default=None, min_length=1, max_length=80,
        description="Upload target only: also create a powered-off VM of this name with the disk as its first disk.",
    )  # fmt: skip
    attach_to_vm: str | None = Field(
        default=None, min_length=1,
        description="Upload target only: attach the disk to this existing VM (name, inventory path or MoRef).",
    )  # fmt: skip

    @model_validator(mode="after")
    def _one_vm_choice(self) -> DatastoreFileRef:
        if self.create_vm and self.attach_to_vm:
            raise ValueError("give create_vm or attach_to_vm, not both")
        return self

    @property
    def datastore_path(self) -> str:
        """``[datastore] path``, as vSphere names the file."""
        return f"[{self.datastore}] {self.path}"


class AzureDiskRef(_Model):
    """An Azure managed disk."""

    model_config = _titled("Azure managed disk")

    kind: Literal["azure-disk"] = "azure-disk"
    connector: ConnectorName
    resource_group: AzureResourceGroup
    name: AzureName


class AzureSnapshotRef(AzureDiskRef):
    """An Azure managed-disk snapshot."""

    model_config = _titled("Azure snapshot")

    kind: Literal["azure-snapshot"] = "azure-snapshot"  # type: ignore[assignment]


class ShareRef(_Model):
    """A file on an SMB share connector (also a PVS store)."""

    model_config = _titled("File on a share")

    kind: Literal["share"] = "share"
    connector: ConnectorName
    path: RelativePath = Field(description="Path inside the connector's base path, e.g. 'images/gold.vhdx'.")
    format: InputFormat = None


class LocalRef(_Model):
    """A file under a local-directory connector (the embedded default platform)."""

    model_config = _titled("Local file")

    kind: Literal["local"] = "local"
    connector: ConnectorName = "local"
    path: RelativePath = Field(description="Path inside the local connector's directory.")
    format: InputFormat = None


def _read(ref: Any) -> Any:
    """A reference a stage reads: the VM options of an upload target would be accepted there and ignored."""
    if getattr(ref, "create_vm", None) or getattr(ref, "attach_to_vm", None):
        raise ValueError("create_vm/attach_to_vm are options of an upload target; this reference is read: remove them")
    return ref


# Unions are validated by ``kind``; KindForm shows each as one form with a kind select (imageport/forms.py).
DiskRef = Annotated[
    Union[VsphereDiskRef, AzureDiskRef, AzureSnapshotRef, ShareRef, LocalRef, DatastoreFileRef],  # noqa: UP007
    Field(discriminator="kind"),
    KindForm(),
    AfterValidator(_read),
]
# Where an image file can sit between stages (export output, upload input).
FileRef = Annotated[Union[ShareRef, LocalRef], Field(discriminator="kind"), KindForm()]  # noqa: UP007
# Disks that live on a platform (export sources, upload targets, prepare inputs).
_PlatformDisk = Annotated[
    Union[VsphereDiskRef, AzureDiskRef, AzureSnapshotRef, LocalRef, DatastoreFileRef],  # noqa: UP007
    Field(discriminator="kind"),
    KindForm(),
]
PlatformDiskRef = Annotated[_PlatformDisk, AfterValidator(_read)]


def _written(ref: Any) -> Any:
    """A reference a stage writes: ``format`` (what an input must be) would be accepted there and ignored."""
    if getattr(ref, "format", None) is not None:
        raise ValueError(
            "format states what an image read must be; this reference is written (its container comes from "
            "disk_format): remove format here"
        )
    if isinstance(ref, DatastoreFileRef) and not ref.path.lower().endswith(".vmdk"):
        raise ValueError("a disk written to a datastore is a VMDK: name its descriptor NAME.vmdk")
    return ref


# The same references where a stage writes them.
WrittenFileRef = Annotated[FileRef, AfterValidator(_written)]
WrittenStoreRef = Annotated[FileRef, AfterValidator(_written)]
WrittenPlatformDiskRef = Annotated[_PlatformDisk, AfterValidator(_written)]
WrittenLocalRef = Annotated[LocalRef, AfterValidator(_written)]
# Where a prepare can put its output by name: a local file, or a disk on a datastore.
WrittenPreparedRef = Annotated[
    Union[LocalRef, DatastoreFileRef],  # noqa: UP007
    Field(discriminator="kind"),
    KindForm(),
    AfterValidator(_written),
]


# --- stage options (shared by the stage specs and the workflow specs) ---------


class ExportOptions(_Model):
    disk_format: ShareDiskFormat = Field(
        default=ShareDiskFormat.VHDX, description="Container written to the share (Citrix default VHDX)."
    )
    hash_disk: bool = Field(
        default=True, description="Compute the virtual-disk SHA-256 and MD5 while exporting (Citrix -HashDisk)."
    )
    timeout_s: int = Field(default=7200, gt=0, le=7 * 86400, description="Export timeout in seconds.")
    wait_lock: bool = Field(
        default=False, description="Wait while another run writes the same destination file, instead of failing."
    )
    verify: VerifyMode = Field(
        default=VerifyMode.AUTO,
        description="full: re-read the whole target after writing (one read of its data) and compare content hashes.",
    )
    tags: Tags


class UploadOptions(_Model):
    sku: AzureSku = Field(default=AzureSku.PREMIUM_LRS, description="Managed-disk SKU (Citrix default Premium_LRS).")
    threads: int = Field(default=5, ge=1, le=64, description="Parallel writes in flight (Citrix default 5).")
    timeout_s: int = Field(default=36000, gt=0, le=7 * 86400, description="Upload timeout in seconds.")
    overwrite: bool = Field(default=False, description="Replace an existing target disk (Citrix -Force).")
    hyper_v_generation: HyperVGeneration = Field(
        default=HyperVGeneration.V2, description="Azure Hyper-V generation; fixed at disk creation."
    )
    os_type: OsType = Field(default=OsType.WINDOWS, description="OS type recorded on the Azure disk.")
    verify: VerifyMode = Field(
        default=VerifyMode.AUTO,
        description="full: re-read the whole target after writing (one read of its data) and compare content hashes.",
    )
    tags: Tags


class ReconfigureSwitch(StrEnum):
    """The only switches Citrix allows for ``XenDesktopVdaSetup.exe /reconfigure``."""

    CONTROLLERS = "/controllers"
    PORTNUMBER = "/portnumber"
    ENABLE_HDX_PORTS = "/enable_hdx_ports"


_FQDN = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9-]{1,63})*$")


class InstallerParameter(_Model):
    """One ``XenDesktopVdaSetup.exe /reconfigure`` switch (Citrix ``InstallerParameter``)."""

    name: ReconfigureSwitch = Field(
        description="One of /controllers, /portnumber, /enable_hdx_ports (the only switches Citrix allows)."
    )
    value: str | None = Field(default=None, description="Switch value, if the switch takes one.")

    @model_validator(mode="after")
    def _value_fits_switch(self) -> InstallerParameter:
        if self.name is ReconfigureSwitch.ENABLE_HDX_PORTS:
            if self.value not in (None, ""):
                raise ValueError("/enable_hdx_ports takes no value")
        elif self.name is ReconfigureSwitch.PORTNUMBER:
            if not (self.value and self.value.isdigit() and 1 <= int(self.value) <= 65535):
                raise ValueError("/portnumber needs a TCP port from 1 to 65535")
        else:
            hosts = (self.value or "").replace(",", " ").split()
            if not hosts or not all(_FQDN.match(h) for h in hosts):
                raise ValueError("/controllers needs one or more controller FQDNs separated by spaces")
        return self

    def render(self) -> str:
        """The switch as it goes on the command line."""
        if self.name is ReconfigureSwitch.ENABLE_HDX_PORTS:
            return self.name.value
        if self.name is ReconfigureSwitch.CONTROLLERS:
            hosts = " ".join((self.value or "").replace(",", " ").split())
            return f'{self.name.value} "{hosts}"'
        return f"{self.name.value} {self.value}"


class PrepareOptions(_Model):
    """Citrix ``Start-AlIpsPrepare`` switches, one field each."""

    provisioning_type: ProvisioningType = Field(
        default=ProvisioningType.MCS, description="Provisioning stack to prepare for (Citrix -ProvisioningType)."
    )
    domain_unjoin: bool = Field(default=False, description="Remove the image from its AD domain at first boot.")
    chkdsk: bool = Field(default=False, description="Run chkdsk at first boot.")
    defrag: bool = Field(default=False, description="Run defrag at first boot.")
    enable_rdp: bool = Field(default=False, description="Enable Remote Desktop in the image.")
    misa: InstallType = Field(default=InstallType.SKIP, description="MCS security agent: install, force or skip.")
    mcsio: InstallType = Field(default=InstallType.SKIP, description="MCS I/O driver: install, force or skip.")
    pvs_install_version: str | None = Field(
        default=None,
        pattern=r"^\d{4}(\.\d+){0,3}$",
        description="PVS target-device software version to stage, e.g. '2402.0.0' (PVS provisioning only).",
    )
    install_upl: bool = Field(default=False, description="Install the User Personalization Layer.")
    update_layer_repo: str | None = Field(
        default=None, description="New App Layering repository URL (\\\\server\\share or https://...)."
    )
    installers: FileRef | None = Field(
        default=None, description="Folder holding the installers to stage (PVS, MCS I/O, MISA)."
    )
    xd_reconfigure: list[InstallerParameter] = Field(
        default_factory=list, description="Run XenDesktopVdaSetup.exe /reconfigure with these switches."
    )
    expected_md5: str | None = Field(
        default=None,
        pattern=r"^[0-9a-fA-F]{32}$",
        description="MD5 the input disk must have before prepare starts (Citrix -Md5Hash).",
    )
    output_disk_name: AzureName | None = Field(default=None, description="Name of the prepared output disk.")
    output_snapshot_name: AzureName | None = Field(
        default=None, description="Write the prepared output as a snapshot with this name instead."
    )
    overwrite: bool = Field(default=False, description="Replace an existing output disk (Citrix -Force).")
    timeout_s: int = Field(default=3600, gt=0, le=7 * 86400, description="Prepare timeout in seconds.")
    boot_diagnostics: bool = Field(default=False, description="Enable boot diagnostics on the CE (debug).")
    keep_on_failure: bool = Field(
        default=False, description="Keep the compositing engine after a failure, for debugging (costs money)."
    )
    tags: Tags

    @field_validator("xd_reconfigure")
    @classmethod
    def _each_switch_once(cls, value: list[InstallerParameter]) -> list[InstallerParameter]:
        names = [p.name for p in value]
        if len(names) != len(set(names)):
            raise ValueError("each /reconfigure switch may be given only once")
        return value

    @model_validator(mode="after")
    def _coherent(self) -> PrepareOptions:
        if self.output_disk_name and self.output_snapshot_name:
            raise ValueError("give output_disk_name or output_snapshot_name, not both")
        if self.pvs_install_version and self.provisioning_type is not ProvisioningType.PVS:
            raise ValueError("pvs_install_version needs provisioning_type 'pvs'")
        staged = bool(self.pvs_install_version) or any(
            choice is not InstallType.SKIP for choice in (self.misa, self.mcsio)
        )
        if staged and self.installers is None:
            raise ValueError("installers (a folder with the PVS/MCS installers) is needed to stage software")
        return self


class PublishOptions(_Model):
    disk_format: ShareDiskFormat = Field(default=ShareDiskFormat.VHDX, description="vDisk container in the store.")
    overwrite: bool = Field(default=False, description="Replace an existing vDisk of that name (never one in use).")
    new_version: bool = Field(
        default=False, description="Add the image as the next version of an existing vDisk instead of failing."
    )
    pvs_site: PvsText | None = Field(default=None, description="PVS site name, for the registration instructions.")
    pvs_store: PvsText | None = Field(default=None, description="PVS store name, for the registration instructions.")
    wait_lock: bool = Field(
        default=False, description="Wait while another run writes the same vDisk file, instead of failing at once."
    )
    verify: VerifyMode = Field(
        default=VerifyMode.AUTO,
        description="full: re-read the whole target after writing (one read of its data) and compare content hashes.",
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


class PublishSpec(PublishOptions):
    """Write a prepared image into a PVS store share as a ready-to-register vDisk."""

    source: DiskRef = Field(description="The prepared image to publish.")
    store: WrittenStoreRef = Field(description="Store folder (a share connector path).")
    name: VDiskName


class DiagnosticsSpec(_Model):
    """Read-only report on an image: OS, Citrix components, drivers, previous prepare logs."""

    disk: DiskRef = Field(description="The image to report on (read only).")
    output: WrittenFileRef | None = Field(default=None, description="Where to write the report (JSON + Markdown).")
    ce_logs: bool = Field(default=False, description="Also collect the compositing engine's own logs.")


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


# --- results ---------------------------------------------------------------------------


class CreatedResource(_Model):
    """Something a stage created and left in place as its output (not temporaries)."""

    kind: str = Field(description="e.g. 'azure-disk', 'share-file', 'vsphere-snapshot'.")
    id: str = Field(description="Platform id or path; never carries a secret.")


class DiskFacts(_Model):
    format: DiskFormat
    virtual_size: int = Field(ge=0)
    allocated_bytes: int = Field(ge=0)
    sha256: str | None = Field(default=None, description="SHA-256 of the virtual disk's logical bytes.")
    md5: str | None = Field(default=None, description="MD5 of the virtual disk's logical bytes.")


class StageResult(_Model):
    stage: Stage
    source: str
    target: str
    started: datetime
    finished: datetime
    input: DiskFacts | None = None
    output: DiskFacts | None = None
    bytes_moved: int = Field(default=0, ge=0, description="Bytes actually written to the target.")
    reused: bool = Field(default=False, description="True when a verified earlier result was reused.")
    created: list[CreatedResource] = Field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return (self.finished - self.started).total_seconds()


class PortResult(_Model):
    workflow: Workflow
    stages: list[StageResult]


# --- parsing untrusted input -------------------------------------------------------------

M = TypeVar("M", bound=BaseModel)


_PLAIN_KEY = re.compile(r"[\w-]{1,64}")


def _loc_part(part: int | str) -> str:
    """A field path step; an unknown key that is not a plain word is quoted, so it cannot break the line."""
    text = str(part)
    return text if _PLAIN_KEY.fullmatch(text) else names.shown(text)


def describe_validation_error(exc: ValidationError, what: str) -> str:
    lines = [f"invalid {what}:"]
    for err in exc.errors():
        loc = ".".join(_loc_part(p) for p in err["loc"]) or "(top level)"
        msg = names.one_line(err["msg"].removeprefix("Value error, "))  # pydantic may quote the input
        lines.append(f"  {loc}: {msg}")
    return "\n".join(lines)


def parse_model(model: type[M], data: Any, what: str | None = None) -> M:
    """Validate ``data`` as ``model``; raise ``InputError`` naming each bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InputError(describe_validation_error(exc, what or model.__name__)) from None
