"""Per-stage options mirroring Citrix's switches (shared by the stage and the workflow specs)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from imageport.compat import StrEnum
from imageport.models.fields import AzureName, CreatedTags, PvsText, Tags
from imageport.models.refs import InstallersRef
from imageport.models.vocabulary import (
    AzureSku,
    FinalizeMode,
    HyperVGeneration,
    InstallType,
    OsType,
    ProvisioningType,
    ShareDiskFormat,
    VerifyMode,
    _Model,
    refuse_retired,
)

# App Layering's user-layer switches: a user layer is attached at logon by App Layering's or the UPL's own
# service, configured by policy; an offline change to the image cannot honour them faithfully.
RETIRED_PREPARE = {
    "install_upl": "imageport does not install the User Personalization Layer; install it with the VDA in the "
    "master image before the port (the VDA installer's 'User personalization layer' component)",
    "update_layer_repo": "imageport does not rewrite an App Layering user-layer repository; set it by Citrix "
    "policy ('User Layer Repository Path') or in the App Layering image template",
}

# --- stage options (shared by the stage specs and the workflow specs) ---------


class ExportOptions(_Model):
    disk_format: ShareDiskFormat | None = Field(
        default=None,
        description="Container written (VHDX or VHD); unset: the share connector's disk_format, else VHDX.",
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
    tags: Annotated[
        CreatedTags,
        Field(description="Put on the snapshot or image an export takes of a VM (vSphere, XenServer, AHV)."),
    ]


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
    installers: InstallersRef | None = Field(
        default=None,
        description="Folder holding the installers to stage (PVS, MCS I/O, MISA): on a share, local, or a datastore.",
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
    boot_diagnostics: bool = Field(
        default=False,
        description="Citrix's DebugSettings: capture the compositing engine's console (Azure boot diagnostics; a "
        "vSphere serial port file) into the result; logged when the CE fails. Not for the local CE (a process).",
    )
    keep_on_failure: bool = Field(
        default=False, description="Keep the compositing engine after a failure, for debugging (costs money)."
    )
    tags: Annotated[
        CreatedTags,
        Field(description="Put on every resource the compositing engine creates (Azure: VM, NIC, disks, "
              "blobs; vSphere: the helper VM's custom attributes) and on the prepared output."),
    ]

    @model_validator(mode="before")
    @classmethod
    def _retired(cls, data: object) -> object:
        return refuse_retired(data, RETIRED_PREPARE)

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


class FinalizeOptions(_Model):
    """Boot the prepared image once, in a helper VM on its platform, until its startup actions report done."""

    enabled: FinalizeMode = Field(
        default=FinalizeMode.AUTO,
        description="auto: when the prepare left startup actions and the target can boot a helper VM; on: always "
        "(refused for a target that cannot); off: never (the actions run at the image's next boot).",
    )
    timeout_s: int = Field(
        default=3600, gt=0, le=86400,
        description="Give up waiting for 'all actions done' after this; the helper VM is deleted either way.",
    )  # fmt: skip
    vm_size: str | None = Field(
        default=None, pattern=r"^[A-Za-z][A-Za-z0-9_]{2,63}$",
        description="Azure: the helper VM's size, e.g. Standard_D4s_v5 (default: the connector's ce_vm_size).",
    )  # fmt: skip


class PublishOptions(_Model):
    disk_format: ShareDiskFormat | None = Field(
        default=None, description="vDisk container (VHDX or VHD); unset: the share connector's disk_format, else VHDX."
    )
    overwrite: bool = Field(default=False, description="Replace an existing vDisk of that name (never one in use).")
    new_version: bool = Field(
        default=False, description="Add the image as the next version of an existing vDisk instead of failing."
    )
    pvs_site: PvsText | None = Field(default=None, description="PVS site name, for the registration instructions.")
    pvs_store: PvsText | None = Field(default=None, description="PVS store name, for the registration instructions.")
    timeout_s: int = Field(default=7200, gt=0, le=7 * 86400, description="Publish timeout in seconds.")
    wait_lock: bool = Field(
        default=False, description="Wait while another run writes the same vDisk file, instead of failing at once."
    )
    verify: VerifyMode = Field(
        default=VerifyMode.AUTO,
        description="full: re-read the whole target after writing (one read of its data) and compare content hashes.",
    )
