"""The pure prepare plan, on facts and registry values alone (no appliance): what each target platform changes."""

from __future__ import annotations

from typing import Any

from imageport.guest.facts import GuestFacts
from imageport.guest.plan import PrepareTarget, RegChange, plan_registry
from imageport.guest.registry import REG_DWORD, RegValue
from imageport.models import HyperVGeneration, PrepareOptions, TargetPlatform

CS = "ControlSet001"


def facts(drivers: list[str], components: dict[str, str] | None = None) -> GuestFacts:
    return GuestFacts(
        root="/dev/sda2", product="Windows Server 2022", major=10, minor=0, build="20348", arch="x86_64",
        installation_type="Server", systemroot="/Windows", system_hive="SYSTEM", software_hive="SOFTWARE",
        control_sets=[CS], current_control_set=CS, partition_style="mbr", firmware="bios", hibernated=False,
        fast_startup=False, bitlocker=[], dirty_hives=[], components=components or {}, driver_files=drivers,
    )  # fmt: skip


def services(**starts: int) -> dict[str, dict[str, RegValue]]:
    """SYSTEM keys: each service's Start, plus what every image has."""
    keys = {f"{CS}\\Services\\{name}": {"Start": RegValue(REG_DWORD, start)} for name, start in starts.items()}
    keys[f"{CS}\\Services\\partmgr\\Parameters"] = {"SanPolicy": RegValue(REG_DWORD, 1)}
    keys[f"{CS}\\Services\\Tcpip\\Parameters\\Interfaces\\{{nic}}"] = {"EnableDHCP": RegValue(REG_DWORD, 0)}
    return keys


def plan(platform: TargetPlatform, image: GuestFacts, keys: dict[str, Any], **options: Any) -> dict[str, Any]:
    def read(hive: str, key: str) -> dict[str, RegValue] | None:
        return keys.get(key) if hive == "SYSTEM" else None

    def children(hive: str, key: str) -> list[str]:
        return [k[len(key) + 1 :] for k in keys if k.startswith(key + "\\") and "\\" not in k[len(key) + 1 :]]

    target = PrepareTarget(platform, HyperVGeneration.V1, PrepareOptions.model_validate(options))
    result = plan_registry(image, target, read, children)
    return {"changes": {_short(c): c.new for c in result.registry}, "warnings": result.warnings}


def _short(change: RegChange) -> str:
    return f"{change.key.removeprefix(CS + chr(92) + 'Services' + chr(92))}\\{change.name}"


# A Windows that ran on Azure before: Hyper-V drivers boot-start, VMware Tools disabled by that prepare, Azure's
# agent installed; PVSCSI's and LSI SAS's drivers are there, LSI Parallel's key exists but its driver does not.
AZURE_BEFORE = services(vmbus=0, storvsc=0, pvscsi=3, LSI_SAS=3, LSI_SCSI=3, VMTools=4, Dhcp=2,
                        WindowsAzureGuestAgent=2, RdAgent=2, vmicheartbeat=3)  # fmt: skip
DRIVERS = ["lsi_sas", "pvscsi", "storvsc", "vmbus"]


def test_a_vsphere_target_boot_starts_its_storage_drivers_turns_azure_agents_off_and_vmware_tools_back_on() -> None:
    found = plan(TargetPlatform.VSPHERE, facts(DRIVERS, {"azure_vm_agent": "2.7"}), AZURE_BEFORE)
    assert found["changes"] == {
        "pvscsi\\Start": 0,
        "LSI_SAS\\Start": 0,
        "WindowsAzureGuestAgent\\Start": 4,
        "RdAgent\\Start": 4,
        "VMTools\\Start": 2,  # re-enabled: the Azure prepare had disabled it
    }  # LSI_SCSI: no driver file; the telemetry service: no key; Hyper-V's drivers and vmic*: left; no DHCP change
    assert found["warnings"] == [
        "the Azure VM Agent is installed: its services are disabled offline; uninstall it after the first boot"
    ]


def test_a_vsphere_image_already_as_wanted_plans_nothing_and_nothing_is_invented() -> None:
    prepared = services(pvscsi=0, LSI_SAS=0, VMTools=2, Dhcp=2)
    assert plan(TargetPlatform.VSPHERE, facts(DRIVERS), prepared)["changes"] == {}
    bare = services(Dhcp=2)  # no VMware driver, VMware Tools or Azure agent keys at all
    assert plan(TargetPlatform.VSPHERE, facts([]), bare)["changes"] == {}


def test_rdp_is_asked_for_the_same_way_on_vsphere_and_dhcp_stays_azure_only() -> None:
    keys = services(Dhcp=2, TermService=4)
    vsphere = plan(TargetPlatform.VSPHERE, facts([]), keys, enable_rdp=True)["changes"]
    assert vsphere["TermService\\Start"] == 3 and f"{CS}\\Control\\Terminal Server\\fDenyTSConnections" in vsphere
    assert not any("EnableDHCP" in change for change in vsphere)
    azure = plan(TargetPlatform.AZURE, facts(DRIVERS), keys)["changes"]
    assert azure["Tcpip\\Parameters\\Interfaces\\{nic}\\EnableDHCP"] == 1


def test_an_azure_target_still_disables_vmware_tools_and_leaves_vmware_drivers() -> None:
    before = services(vmbus=3, storvsc=3, pvscsi=0, VMTools=2, Dhcp=2)
    changes = plan(TargetPlatform.AZURE, facts(DRIVERS), before)["changes"]
    assert changes["VMTools\\Start"] == 4 and changes["vmbus\\Start"] == 0 and changes["storvsc\\Start"] == 0
    assert "pvscsi\\Start" not in changes
