"""Find VMs and describe them: disks (controller, unit, size, backing, thin, datastore), firmware,
guest OS, power state, snapshots.

Properties are fetched with one ``RetrieveContents`` call per question and
explicit property paths, never attribute by attribute: that is a round trip
per attribute on a real vCenter, and some simulators cannot serve partial
accessors at all.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from pyVmomi import vim, vmodl

from imageport.errors import InputError, PlatformNotFound
from imageport.platforms.vsphere.errors import translate_vsphere_errors

VM_PATHS = ["name", "runtime.powerState", "config.guestId", "config.firmware", "config.hardware.device", "snapshot"]
CONTROLLERS = {
    vim.vm.device.ParaVirtualSCSIController: "pvscsi",
    vim.vm.device.VirtualLsiLogicSASController: "lsilogic-sas",
    vim.vm.device.VirtualLsiLogicController: "lsilogic",
    vim.vm.device.VirtualBusLogicController: "buslogic",
    vim.vm.device.VirtualAHCIController: "sata",
    vim.vm.device.VirtualNVMEController: "nvme",
    vim.vm.device.VirtualIDEController: "ide",
}
_DS_PATH = re.compile(r"^\[([^\]]+)\]\s*(.+)$")
_MOREF = re.compile(r"^vm-\d+$")


def split_datastore_path(text: str) -> tuple[str, str]:
    """``[datastore] folder/disk.vmdk`` -> (``datastore``, ``folder/disk.vmdk``)."""
    match = _DS_PATH.match(text.strip())
    if not match:
        raise InputError(f"{text!r} is not a datastore path like '[datastore] folder/disk.vmdk'")
    return match.group(1), match.group(2).strip()


@dataclass
class VmDisk:
    label: str
    key: int
    controller: str
    bus: int
    unit: int
    capacity_bytes: int
    file: str  # current backing, "[ds] dir/disk.vmdk" (a delta while a snapshot exists)
    base_file: str  # the chain's base (deepest parent)
    chain: list[str]  # current backing first, base last
    datastore: str
    thin: bool
    mode: str  # persistent, independent_persistent, independent_nonpersistent


@dataclass
class VmInfo:
    name: str
    moref: str
    power_state: str
    guest_id: str | None
    firmware: str | None
    disks: list[VmDisk] = field(default_factory=list)
    snapshots: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def retrieve(si: Any, objects: list[Any] | None, paths: list[str], kind: type = vim.VirtualMachine) -> list[Any]:
    """(object, {path: value}) for the given objects, or every object of ``kind`` in the inventory."""
    content = si.RetrieveContent()
    collector = content.propertyCollector
    query = vmodl.query.PropertyCollector
    view = None
    if objects is None:
        view = content.viewManager.CreateContainerView(content.rootFolder, [kind], True)
        traversal = query.TraversalSpec(name="view", path="view", skip=False, type=vim.view.ContainerView)
        object_set = [query.ObjectSpec(obj=view, skip=True, selectSet=[traversal])]
    else:
        object_set = [query.ObjectSpec(obj=o, skip=False) for o in objects]
    spec = query.FilterSpec(objectSet=object_set, propSet=[query.PropertySpec(type=kind, pathSet=paths)])
    try:
        return [(oc.obj, {p.name: p.val for p in oc.propSet or []}) for oc in collector.RetrieveContents([spec])]
    finally:
        if view is not None:
            view.Destroy()


def snapshot_nodes(tree: Any) -> Iterator[Any]:
    """The nodes of a VM's snapshot tree (its ``snapshot`` property), breadth first."""
    queue = list(getattr(tree, "rootSnapshotList", None) or [])
    while queue:
        node = queue.pop(0)
        yield node
        queue.extend(node.childSnapshotList or [])


def disks_of(devices: list[Any]) -> list[VmDisk]:
    controllers = {d.key: d for d in devices if isinstance(d, vim.vm.device.VirtualController)}
    disks = []
    for d in devices:
        if not isinstance(d, vim.vm.device.VirtualDisk):
            continue
        backing = d.backing
        chain = []
        node = backing
        while node is not None and getattr(node, "fileName", None):
            chain.append(node.fileName)
            node = getattr(node, "parent", None)
        controller = controllers.get(d.controllerKey)
        kind = next((name for cls, name in CONTROLLERS.items() if isinstance(controller, cls)), "other")
        capacity = d.capacityInBytes or (d.capacityInKB or 0) * 1024
        disks.append(
            VmDisk(
                label=d.deviceInfo.label if d.deviceInfo else f"disk {d.key}",
                key=d.key,
                controller=kind,
                bus=getattr(controller, "busNumber", 0) or 0,
                unit=d.unitNumber or 0,
                capacity_bytes=capacity,
                file=chain[0] if chain else "",
                base_file=chain[-1] if chain else "",
                chain=chain,
                datastore=split_datastore_path(chain[0])[0] if chain else "",
                thin=bool(getattr(backing, "thinProvisioned", False)),
                mode=getattr(backing, "diskMode", "persistent") or "persistent",
            )
        )
    return disks


def _info(vm: Any, props: dict[str, Any]) -> VmInfo:
    return VmInfo(
        name=props.get("name", ""),
        moref=vm._moId,
        power_state=str(props.get("runtime.powerState", "")),
        guest_id=props.get("config.guestId"),
        firmware=props.get("config.firmware"),
        disks=disks_of(list(props.get("config.hardware.device") or [])),
        snapshots=[node.name for node in snapshot_nodes(props.get("snapshot"))],
    )


def list_vms(si: Any) -> list[VmInfo]:
    with translate_vsphere_errors("list VMs"):
        return sorted((_info(vm, p) for vm, p in retrieve(si, None, VM_PATHS)), key=lambda v: v.name)


def find_vm(si: Any, ident: str) -> Any:
    """A VM by MoRef (``vm-123``), inventory path (``DC/vm/folder/name``) or unique name."""
    with translate_vsphere_errors(f"find VM {ident}"):
        if _MOREF.match(ident):
            vm = vim.VirtualMachine(ident, si._stub)
            found = retrieve(si, [vm], ["name"])
            if found:
                return vm
        elif "/" in ident:
            vm = si.RetrieveContent().searchIndex.FindByInventoryPath(ident)
            if isinstance(vm, vim.VirtualMachine):
                return vm
        else:
            matches = [vm for vm, p in retrieve(si, None, ["name"]) if p.get("name") == ident]
            if len(matches) > 1:
                raise InputError(f"{len(matches)} VMs are named {ident!r}; name one by inventory path or MoRef")
            if matches:
                return matches[0]
    raise PlatformNotFound(f"no VM {ident!r} (give a name, an inventory path DC/vm/folder/name, or a MoRef vm-123)")


def describe_vm(si: Any, vm: Any) -> VmInfo:
    with translate_vsphere_errors(f"describe VM {vm._moId}"):
        found = retrieve(si, [vm], VM_PATHS)
    if not found:
        raise PlatformNotFound(f"VM {vm._moId} is gone")
    return _info(*found[0])


def select_disk(info: VmInfo, which: str | None) -> VmDisk:
    """The disk named by label ('Hard disk 1'), datastore path, or the first one."""
    if not info.disks:
        raise InputError(f"VM {info.name} has no virtual disks")
    if which is None:
        return info.disks[0]
    for disk in info.disks:
        if which in (disk.label, disk.file, disk.base_file) or which in disk.chain:
            return disk
    labels = ", ".join(f"{d.label} ({d.file})" for d in info.disks)
    raise InputError(f"VM {info.name} has no disk {which!r}; it has: {labels}")
