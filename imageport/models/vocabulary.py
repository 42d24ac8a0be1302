"""The shared vocabulary: formats, platforms, workflows and stages; the strict base model."""

from __future__ import annotations

from pydantic import (
    BaseModel,
    ConfigDict,
)

from imageport.compat import StrEnum
from imageport.forms import shape_model

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


# What an export or a publish writes when neither its options nor a share connector say (Citrix's default).
DEFAULT_DISK_FORMAT = ShareDiskFormat.VHDX


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
    FINALIZE = "finalize"
    PUBLISH = "publish"
    DIAGNOSTICS = "diagnostics"


class FinalizeMode(StrEnum):
    """Whether a port boots its prepared image once to run the startup actions prepare left in it."""

    AUTO = "auto"  # when actions are pending and the target's platform can boot it; else they stay pending
    ON = "on"  # always; a target that cannot boot a helper VM (a local file, a store) is refused up front
    OFF = "off"  # never: the actions run at the image's next boot, wherever that is


# Which stages each workflow runs (DESIGN.md, "The four workflows"). Finalize (optional, FinalizeMode) runs
# right after prepare, before publish: a published vDisk is then one whose startup actions have run.
WORKFLOW_STAGES: dict[Workflow, tuple[Stage, ...]] = {
    Workflow.MCS_TO_MCS: (Stage.EXPORT, Stage.UPLOAD, Stage.PREPARE, Stage.FINALIZE),
    Workflow.PVS_TO_MCS: (Stage.UPLOAD, Stage.PREPARE, Stage.FINALIZE),
    Workflow.PVS_TO_PVS: (Stage.UPLOAD, Stage.PREPARE, Stage.FINALIZE, Stage.PUBLISH),
    Workflow.MCS_TO_PVS: (Stage.EXPORT, Stage.UPLOAD, Stage.PREPARE, Stage.FINALIZE, Stage.PUBLISH),
}


class _Model(BaseModel):
    """Strict about unknown fields: a typo in a spec must not be silently ignored."""

    # json_schema_extra: the schema shaped for the Prefect UI's forms (imageport/forms.py).
    model_config = ConfigDict(extra="forbid", frozen=True, use_enum_values=False, json_schema_extra=shape_model)


def _titled(title: str) -> ConfigDict:
    """A model's title in the UI (a union's choice label; pydantic would use the class name)."""
    return ConfigDict(title=title)


def refuse_retired(data: object, retired: dict[str, str]) -> object:
    """A ``mode="before"`` check for fields that were accepted once and are gone: a value set for one is refused
    with what to do instead (never accepted and ignored). A retired field left at its old default (``False`` or
    ``None``, e.g. in a connector saved by an earlier release) is dropped silently: it asked for nothing."""
    if not isinstance(data, dict):
        return data
    for name, advice in retired.items():
        if name in data and data[name] not in (None, False, ""):
            raise ValueError(f"{name} is not supported: {advice}")
    return {k: v for k, v in data.items() if k not in retired}
