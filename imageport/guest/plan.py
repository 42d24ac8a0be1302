"""The prepare plan: every registry value and file a prepare will change, computed before any write.

Pure: it takes the image's facts, its current values (through ``read``) and
the request, and returns only real changes -- a value already as wanted is
not in the plan, so a second prepare of a prepared image plans nothing.

Registry rules (sources in the reference doc, ``prepare-windows.md`` §2-§5):
``CS\\`` means every ``ControlSet00N``; services and drivers are changed only
where their key exists (a driver only when its ``.sys`` file is there), so
nothing is invented for a Windows that lacks it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from imageport.errors import GuestRefused
from imageport.guest.facts import GuestFacts
from imageport.guest.registry import REG_DWORD, REG_EXPAND_SZ, TYPE_NAMES, RegValue, Value
from imageport.models import HyperVGeneration, PrepareOptions, ProvisioningType, TargetPlatform

CS = "CS\\"
SYSTEM, SOFTWARE = "SYSTEM", "SOFTWARE"
DELETE = object()  # a wanted "value": remove it

# (service key, driver file) that must be boot-start (0) on Hyper-V based platforms
HYPERV_BOOT = {
    "vmbus": "vmbus",
    "storvsc": "storvsc",
    "intelide": "intelide",
    "atapi": "atapi",
    "storflt": "vmstorfl",
}
VMWARE_SERVICES = ("VMTools",)
# (service key, driver file) of the storage controllers a vSphere VM boots from: PVSCSI, LSI Logic SAS and
# Parallel. Boot-start only where both are in the image (PVSCSI's driver comes with VMware Tools).
VSPHERE_BOOT = {"pvscsi": "pvscsi", "LSI_SAS": "lsi_sas", "LSI_SCSI": "lsi_scsi"}
# Azure's agent services: off VMware's network they retry the wire server (168.63.129.16) forever and fail.
AZURE_AGENTS = ("WindowsAzureGuestAgent", "RdAgent", "WindowsAzureTelemetryService")


@dataclass(frozen=True)
class PrepareTarget:
    platform: TargetPlatform
    generation: HyperVGeneration = HyperVGeneration.V2
    options: PrepareOptions = field(default_factory=PrepareOptions)


@dataclass(frozen=True)
class RegChange:
    hive: str  # SYSTEM or SOFTWARE
    key: str
    name: str
    kind: int
    old: Value | None  # None: absent
    new: Value | None  # None: delete
    why: str

    def describe(self) -> str:
        where = f"{self.hive}\\{self.key}\\{self.name}"
        old = "(absent)" if self.old is None else repr(self.old)
        new = "(deleted)" if self.new is None else f"{self.new!r} {TYPE_NAMES.get(self.kind, self.kind)}"
        return f"{where}: {old} -> {new}  [{self.why}]"


@dataclass(frozen=True)
class FileChange:
    path: str  # in the guest, e.g. /ProgramData/imageport/firstboot/10-reconfigure.cmd
    content: bytes | None  # small files are written from memory...
    source: str | None  # ...large ones (installers) uploaded from a local path
    size: int
    old_sha256: str | None
    new_sha256: str
    why: str

    def describe(self) -> str:
        old = "(absent)" if self.old_sha256 is None else f"sha256 {self.old_sha256[:12]}"
        return f"{self.path}: {old} -> {self.size:,} bytes sha256 {self.new_sha256[:12]}  [{self.why}]"


@dataclass
class Plan:
    registry: list[RegChange] = field(default_factory=list)
    files: list[FileChange] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)  # first-boot actions staged, by file name
    pending: list[dict[str, Any]] = field(default_factory=list)  # the same, described (PrepareResult.pending_actions)

    @property
    def empty(self) -> bool:
        return not self.registry and not self.files

    def lines(self) -> list[str]:
        return [c.describe() for c in self.registry] + [f.describe() for f in self.files]

    def as_dict(self) -> dict[str, Any]:
        return {"changes": self.lines(), "warnings": self.warnings, "empty": self.empty}


Reader = Callable[[str, str], "dict[str, RegValue] | None"]
"""read(hive, key) -> the key's current values, or None when the key does not exist."""
Children = Callable[[str, str], list[str]]
"""children(hive, key) -> names of the key's subkeys."""


def boot_refusal(
    platform: TargetPlatform, generation: HyperVGeneration, firmware: str, provisioning: ProvisioningType
) -> str | None:
    """Why an image whose firmware is ``firmware`` ("bios" or "uefi") cannot boot on the target, or None.

    The one rule: prepare refuses with it inside the image, the checks before a port (``imageport.preflight``)
    from the source VM's configuration or the disk's first sectors."""
    if platform is not TargetPlatform.AZURE:
        return None
    if generation is HyperVGeneration.V1 and firmware == "uefi":
        return "a UEFI (GPT + ESP) image cannot boot as an Azure Gen1 VM; target Gen2 (V2)"
    if generation is HyperVGeneration.V2 and firmware == "bios":
        return (
            "a BIOS (MBR) image cannot boot as an Azure Gen2 VM: target Gen1 (V1), or convert it to UEFI "
            "first (mbr2gpt on the source)"
        )
    if provisioning is ProvisioningType.PVS and firmware != "uefi":
        return "PVS on Azure boots Gen2/UEFI only (no PXE): convert the vDisk to UEFI first"
    return None


def check_target(facts: GuestFacts, target: PrepareTarget) -> None:
    """Refuse combinations that cannot boot, before planning anything."""
    reason = boot_refusal(target.platform, target.generation, facts.firmware, target.options.provisioning_type)
    if reason is not None:
        raise GuestRefused(reason)


def _wanted(facts: GuestFacts, target: PrepareTarget) -> list[tuple[str, str, str, int, Any, str, bool]]:
    """(hive, key, name, kind, value or DELETE, why, only_if_key_exists)."""
    wanted: list[tuple[str, str, str, int, Any, str, bool]] = []
    hyperv = target.platform in (TargetPlatform.AZURE, TargetPlatform.LOCAL)
    if hyperv:
        wanted += _services(facts, HYPERV_BOOT, 0, "Hyper-V boot driver")
        wanted += _services(facts, VMWARE_SERVICES, 4, "VMware service off")
    if target.platform is TargetPlatform.VSPHERE:
        wanted += _vsphere(facts)
    wanted += [
        (SYSTEM, f"{CS}Services\\partmgr\\Parameters", "SanPolicy", REG_DWORD, 1, "SAN policy OnlineAll", False),
        (SYSTEM, f"{CS}Services\\Dhcp", "Start", REG_DWORD, 2, "DHCP client automatic", True),
    ]
    if target.platform is TargetPlatform.AZURE:
        crash = f"{CS}Control\\CrashControl"
        wanted += [
            (SYSTEM, f"{CS}Control\\TimeZoneInformation", "RealTimeIsUniversal", REG_DWORD, 1, "UTC clock", False),
            (SYSTEM, crash, "CrashDumpEnabled", REG_DWORD, 2, "kernel dump", False),
            (SYSTEM, crash, "NMICrashDump", REG_DWORD, 1, "dump via NMI", False),
            (SYSTEM, crash, "DumpFile", REG_EXPAND_SZ, "%SystemRoot%\\MEMORY.DMP", "dump", False),
            (SYSTEM, f"{CS}Services\\Tcpip\\Parameters\\PersistentRoutes", "*", REG_DWORD, DELETE, "stale route", True),
            # Azure hands out addresses by DHCP: a static address from the old network would cut the VM off
            (SYSTEM, f"{CS}Services\\Tcpip\\Parameters\\Interfaces\\*", "EnableDHCP", REG_DWORD, 1, "DHCP", True),
        ]
    if target.options.enable_rdp:
        rdp = f"{CS}Control\\Terminal Server"
        wanted += [
            (SYSTEM, rdp, "fDenyTSConnections", REG_DWORD, 0, "enable RDP", False),
            (SYSTEM, f"{rdp}\\WinStations\\RDP-Tcp", "PortNumber", REG_DWORD, 3389, "enable RDP", False),
            (SYSTEM, f"{rdp}\\WinStations\\RDP-Tcp", "LanAdapter", REG_DWORD, 0, "enable RDP", False),
            (SYSTEM, f"{CS}Services\\TermService", "Start", REG_DWORD, 3, "enable RDP", True),
        ]
    return wanted


def _services(
    facts: GuestFacts, services: dict[str, str] | tuple[str, ...], start: int, why: str
) -> list[tuple[str, str, str, int, Any, str, bool]]:
    """``Start`` of each service whose key exists; a driver (a dict: service -> driver file) only where its
    ``.sys`` file is in the image."""
    drivers = services if isinstance(services, dict) else dict.fromkeys(services)
    return [
        (SYSTEM, f"{CS}Services\\{service}", "Start", REG_DWORD, start, why, True)
        for service, driver in drivers.items()
        if driver is None or driver.lower() in facts.driver_files
    ]


def _vsphere(facts: GuestFacts) -> list[tuple[str, str, str, int, Any, str, bool]]:
    """A vSphere target: its storage drivers boot-start, Azure's agents off, VMware Tools (back) on.

    Hyper-V's own drivers and integration services (vmbus, storvsc, vmic*) are left as they are: they are
    started by Hyper-V's devices only, so on VMware they never start and never fail. A static address is
    kept (no per-interface DHCP, unlike Azure: nothing in the spec asks for it).
    """
    return (
        _services(facts, VSPHERE_BOOT, 0, "vSphere boot driver")
        + _services(facts, AZURE_AGENTS, 4, "Azure agent off")
        + _services(facts, VMWARE_SERVICES, 2, "VMware Tools on")
    )


def plan_registry(
    facts: GuestFacts, target: PrepareTarget, read: Reader, children: Children = lambda hive, key: []
) -> Plan:
    check_target(facts, target)
    plan = Plan()
    for hive, key, name, kind, value, why, only_existing in _wanted(facts, target):
        keys = [key.replace(CS, f"{cs}\\", 1) for cs in facts.control_sets] if key.startswith(CS) else [key]
        if key.endswith("\\*"):  # every subkey (e.g. each network interface); only values that exist change
            keys = [f"{k[:-2]}\\{child}" for k in keys for child in children(hive, k[:-2])]
        for concrete in keys:
            found = read(hive, concrete)
            if found is None and only_existing:
                continue  # nothing is invented for a Windows that lacks this service or key
            current = found or {}
            if key.endswith("\\*") and not any(n.lower() == name.lower() for n in current):
                continue
            if value is DELETE:
                for existing, old in sorted(current.items()):
                    plan.registry.append(RegChange(hive, concrete, existing, old.kind, old.value, None, why))
                continue
            old = next((v for n, v in current.items() if n.lower() == name.lower()), None)
            if old is not None and old.kind == kind and old.value == value:
                continue
            plan.registry.append(RegChange(hive, concrete, name, kind, None if old is None else old.value, value, why))
    if target.platform is TargetPlatform.AZURE and "vmware_tools" in facts.components:
        plan.warnings.append(
            "VMware Tools is installed: its service is disabled offline; uninstall it after the first boot "
            "(it usually fails off VMware with MSI error 1603; see Broadcom KB 315629)"
        )
    if target.platform is TargetPlatform.VSPHERE and "azure_vm_agent" in facts.components:
        plan.warnings.append(
            "the Azure VM Agent is installed: its services are disabled offline; uninstall it after the first boot"
        )
    return plan
