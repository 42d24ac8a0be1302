"""VMs of a XenServer pool as imageport needs them: disks (VBD → VDI), power state, firmware, snapshots.

Records come from the datamodel's own getters (``VM.get_all_records``, ``VBD.get_record``,
``VDI.get_record``); int64 fields (``virtual_size``) arrive as strings on XML-RPC. A VM is named by
its uuid or by a unique ``name_label``; a disk by its ``userdevice`` ("0") or ``device`` ("xvda"),
as the vSphere source's ``disk=``; default: the disk with the lowest userdevice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from imageport.errors import InputError, PlatformNotFound
from imageport.platforms.xenserver.errors import translate_xenapi_errors

NULL = "OpaqueRef:NULL"


@dataclass
class XenDisk:
    userdevice: str
    device: str
    vbd: str
    vdi: str
    vdi_uuid: str
    name: str
    virtual_size: int

    @property
    def label(self) -> str:
        return f"userdevice {self.userdevice} ({self.device})" if self.device else f"userdevice {self.userdevice}"


@dataclass
class XenVm:
    ref: str
    uuid: str
    name: str
    power_state: str
    firmware: str  # "uefi" or "bios" (HVM-boot-params firmware; absent: bios, as xapi defaults)
    disks: list[XenDisk] = field(default_factory=list)
    snapshots: list[tuple[str, str]] = field(default_factory=list)  # (name_label, uuid)
    other_config: dict[str, str] = field(default_factory=dict)


def _is_vm(record: dict[str, Any]) -> bool:
    return not (record.get("is_a_template") or record.get("is_a_snapshot") or record.get("is_control_domain"))


def describe(api: Any, ref: str, record: dict[str, Any] | None = None) -> XenVm:
    """A VM (or snapshot) with its disks in userdevice order and its snapshots' names."""
    with translate_xenapi_errors(f"read VM {ref}"):
        record = record or api.VM.get_record(ref)
        disks = []
        for vbd_ref in record["VBDs"]:
            vbd = api.VBD.get_record(vbd_ref)
            if vbd["type"] != "Disk" or vbd["VDI"] == NULL:
                continue
            vdi = api.VDI.get_record(vbd["VDI"])
            disks.append(XenDisk(vbd["userdevice"], vbd.get("device", ""), vbd_ref, vbd["VDI"], vdi["uuid"],
                                 vdi["name_label"], int(vdi["virtual_size"])))  # fmt: skip
        snapshots = [(api.VM.get_name_label(s), api.VM.get_uuid(s)) for s in record.get("snapshots", [])]
    disks.sort(key=lambda d: int(d.userdevice) if d.userdevice.isdigit() else 1 << 30)
    firmware = (record.get("HVM_boot_params") or {}).get("firmware", "bios")
    return XenVm(ref, record["uuid"], record["name_label"], record["power_state"], firmware, disks, snapshots,
                 dict(record.get("other_config") or {}))  # fmt: skip


def list_vms(api: Any) -> list[XenVm]:
    """Every guest VM of the pool (no templates, snapshots or control domains), by name."""
    with translate_xenapi_errors("list VMs"):
        records = api.VM.get_all_records()
    vms = [describe(api, ref, rec) for ref, rec in records.items() if _is_vm(rec)]
    return sorted(vms, key=lambda vm: (vm.name, vm.uuid))


def find_vm(api: Any, ident: str) -> str:
    """The VM ``ident`` names: its uuid, or its name_label when exactly one guest VM has it."""
    with translate_xenapi_errors(f"find VM {ident!r}"):
        records = api.VM.get_all_records()
    matches = [ref for ref, rec in records.items() if _is_vm(rec) and ident in (rec["uuid"], rec["name_label"])]
    if not matches:
        raise PlatformNotFound(f"no VM named {ident!r} (name or uuid)")
    if len(matches) > 1:
        raise InputError(f"vm {ident!r}: {len(matches)} VMs have this name; name one by its uuid")
    return matches[0]


def select_disk(vm: XenVm, disk: str | None) -> XenDisk:
    """The disk ``disk`` names (userdevice or device), or the first one."""
    if not vm.disks:
        raise PlatformNotFound(f"VM {vm.name} has no disk")
    if disk is None:
        return vm.disks[0]
    for candidate in vm.disks:
        if disk in (candidate.userdevice, candidate.device):
            return candidate
    known = ", ".join(f"{d.userdevice} ({d.device})" for d in vm.disks)
    raise InputError(f"disk {disk!r}: VM {vm.name} has no such disk; its disks: {known}")


def find_snapshot(api: Any, vm: XenVm, name: str) -> str:
    """A snapshot of the VM by name_label or uuid."""
    with translate_xenapi_errors(f"find snapshot {name!r} of VM {vm.name}"):
        refs = api.VM.get_snapshots(vm.ref)
        found = [ref for ref in refs if name in (api.VM.get_name_label(ref), api.VM.get_uuid(ref))]
    if len(found) != 1:
        raise PlatformNotFound(f"VM {vm.name} has {'no' if not found else 'more than one'} snapshot named {name!r}")
    return found[0]
