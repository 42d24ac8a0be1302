"""vSphere calls the compositing engine needs: a small helper VM that always goes away.

Every helper VM is cloned from the configured template, powered off, and
marked in its annotation with ``imageport-ce run=<id> expires=<UTC ISO time>``,
so a reaper can find leftovers by listing (``list_ce_vms``) even when the run
that made them died. Disks are attached by file: a copy read-write, or the
source's base disk as ``independent_nonpersistent`` (writes are discarded, the
file is never modified). Detaching never deletes the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pyVmomi import vim

from imageport.errors import InputError, PlatformError
from imageport.platforms.vsphere.errors import translate_vsphere_errors
from imageport.platforms.vsphere.inventory import find_vm, retrieve
from imageport.platforms.vsphere.session import VsphereSession
from imageport.platforms.vsphere.waiting import wait_for_task

MARK = "imageport-ce"
_MARK = re.compile(rf"{MARK} run=(\S+) expires=(\S+)(?: stage=(\S+))?")
DISK_MODES = ("persistent", "independent_nonpersistent", "independent_persistent")


@dataclass
class CeVm:
    moref: str
    name: str
    run_id: str
    expires: datetime
    stage: str = "?"

    @property
    def expired(self) -> bool:
        return datetime.now(UTC) >= self.expires


def annotation(run_id: str, expires: datetime, stage: str | None = None) -> str:
    mark = f"{MARK} run={run_id} expires={expires.astimezone(UTC).isoformat(timespec='seconds')}"
    return f"{mark} stage={stage}" if stage else mark


def create_ce_vm(
    session: VsphereSession,
    name: str,
    run_id: str,
    ttl_s: int = 3 * 3600,
    stage: str | None = None,
    tags: dict[str, str] | None = None,
) -> CeVm:
    """Clone the configured CE template into a powered-off, marked helper VM; ``tags`` become its custom
    attributes (``set_attributes``)."""
    cfg = session.config
    if not cfg.ce_template:
        raise InputError(f"{session.display}: the connector names no ce_template to clone helper VMs from")
    si = session.si or session.connect()
    template = find_vm(si, cfg.ce_template)
    dc = session.datacenter()
    expires = datetime.now(UTC) + timedelta(seconds=ttl_s)
    relocate = vim.vm.RelocateSpec()
    if cfg.ce_resource_pool:
        relocate.pool = _named(si, vim.ResourcePool, cfg.ce_resource_pool)
    if cfg.datastore:
        relocate.datastore = next((ds for ds in dc.datastore if ds.name == cfg.datastore), None)
    spec = vim.vm.CloneSpec(
        location=relocate,
        powerOn=False,
        template=False,
        config=vim.vm.ConfigSpec(annotation=annotation(run_id, expires, stage)),
    )
    with translate_vsphere_errors(f"clone {cfg.ce_template} into {name}"):
        task = template.CloneVM_Task(folder=dc.vmFolder, name=name, spec=spec)
    vm = wait_for_task(si, task, f"clone {cfg.ce_template} into {name}")
    # Marked again by a reconfigure: not every vCenter (nor the simulator) applies a clone's config spec.
    # The same reconfigure removes every network card the template has: a CE reads and writes only
    # through the datastore and guestinfo, so it gets no network at all.
    ((_, props),) = retrieve(si, [vm], ["config.hardware.device"])
    nics = [d for d in props.get("config.hardware.device") or [] if isinstance(d, vim.vm.device.VirtualEthernetCard)]
    spec = vim.vm.ConfigSpec(
        annotation=annotation(run_id, expires, stage),
        deviceChange=[vim.vm.device.VirtualDeviceSpec(operation="remove", device=nic) for nic in nics],
    )
    with translate_vsphere_errors(f"mark helper VM {name}"):
        task = vm.ReconfigVM_Task(spec=spec)
    wait_for_task(si, task, f"mark helper VM {name}")
    if tags:
        set_attributes(session, vm, tags)
    return CeVm(vm._moId, name, run_id, expires, stage or "?")


def set_attributes(session: VsphereSession, vm: Any, tags: dict[str, str]) -> None:
    """Put ``tags`` on ``vm`` as custom attributes (CustomFieldsManager), defining the missing ones for VMs.

    Decision: custom attributes, not vSphere tags -- tags are served by the vAPI REST endpoint only (no pyVmomi
    call; a separate SDK and session), take one category per name, and have no value; a custom attribute is a
    name with a value per VM, set through the same SOAP session. A snapshot is no managed entity and cannot
    carry either: an export's snapshot has the tags in its description.
    """
    si = session.si or session.connect()
    manager = si.content.customFieldsManager
    with translate_vsphere_errors("set the helper VM's custom attributes"):
        known = {f.name: f.key for f in manager.field or [] if f.managedObjectType in (None, vim.VirtualMachine)}
        for name, value in tags.items():
            if name not in known:
                try:
                    known[name] = manager.AddCustomFieldDef(name=name, moType=vim.VirtualMachine).key
                except vim.fault.DuplicateName:  # another run defined it just now
                    known[name] = next(f.key for f in manager.field if f.name == name)
            manager.SetField(entity=vm, key=known[name], value=value)


def attributes(session: VsphereSession, vm: Any) -> dict[str, str]:
    """A VM's custom attributes by name (what ``set_attributes`` wrote)."""
    si = session.si or session.connect()
    with translate_vsphere_errors("read custom attributes"):
        names = {f.key: f.name for f in si.content.customFieldsManager.field or []}
        ((_, props),) = retrieve(si, [vm], ["customValue"])
    return {names.get(v.key, str(v.key)): v.value for v in props.get("customValue") or []}


def _named(si: Any, kind: type, name: str) -> Any:
    for obj, props in retrieve(si, None, ["name"], kind):
        if props.get("name") == name:
            return obj
    raise PlatformError(f"no {kind.__name__} named {name!r}")


def list_ce_vms(session: VsphereSession) -> list[CeVm]:
    """Every helper VM imageport made that still exists, found by its annotation."""
    si = session.si or session.connect()
    found = []
    with translate_vsphere_errors("list helper VMs"):
        for vm, props in retrieve(si, None, ["name", "config.annotation"]):
            match = _MARK.search(props.get("config.annotation") or "")
            if match:
                expires = datetime.fromisoformat(match.group(2))
                found.append(CeVm(vm._moId, props.get("name", ""), match.group(1), expires, match.group(3) or "?"))
    return sorted(found, key=lambda v: v.name)


def attach_disk(session: VsphereSession, moref: str, disk_file: str, mode: str = "persistent") -> int:
    """Attach an existing disk file to the helper VM; returns the new device's key."""
    return _add_disk(session, moref, disk_file, mode)


def create_disk(session: VsphereSession, moref: str, disk_file: str, capacity_mb: int) -> int:
    """Create a new thin disk file ``disk_file`` attached (persistent) to the helper VM; returns its key."""
    return _add_disk(session, moref, disk_file, "persistent", capacity_kb=capacity_mb * 1024)


def _add_disk(session: VsphereSession, moref: str, disk_file: str, mode: str, capacity_kb: int | None = None) -> int:
    if mode not in DISK_MODES:
        raise InputError(f"disk mode {mode!r}: use one of {', '.join(DISK_MODES)}")
    si = session.si or session.connect()
    vm = find_vm(si, moref)
    ((_, props),) = retrieve(si, [vm], ["config.hardware.device"])
    devices = list(props.get("config.hardware.device") or [])
    controller = next((d for d in devices if isinstance(d, vim.vm.device.VirtualSCSIController)), None)
    if controller is None:
        raise PlatformError(f"helper VM {moref} has no SCSI controller to attach {disk_file} to")
    used = {d.unitNumber for d in devices if getattr(d, "controllerKey", None) == controller.key}
    unit = next(u for u in range(16) if u not in used and u != 7)  # 7 is the controller itself
    backing = vim.vm.device.VirtualDisk.FlatVer2BackingInfo(fileName=disk_file, diskMode=mode)
    disk = vim.vm.device.VirtualDisk(key=-100, controllerKey=controller.key, unitNumber=unit, backing=backing)
    change = vim.vm.device.VirtualDeviceSpec(operation="add", device=disk)
    if capacity_kb is not None:
        backing.thinProvisioned = True
        disk.capacityInKB = capacity_kb
        change.fileOperation = "create"
    with translate_vsphere_errors(f"attach {disk_file} to {moref}"):
        task = vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(deviceChange=[change]))
    wait_for_task(si, task, f"attach {disk_file} to {moref}")
    attached = _disk_device(si, vm, disk_file)
    if attached is None:
        raise PlatformError(f"{disk_file} did not appear on {moref} after attaching it")
    return int(attached.key)


def _disk_device(si: Any, vm: Any, disk_file: str) -> Any:
    """The VM's disk device backed by ``disk_file``, or None."""
    ((_, props),) = retrieve(si, [vm], ["config.hardware.device"])
    for device in props.get("config.hardware.device") or []:
        if isinstance(device, vim.vm.device.VirtualDisk) and getattr(device.backing, "fileName", None) == disk_file:
            return device
    return None


def detach_disk(session: VsphereSession, moref: str, disk_file: str) -> None:
    """Remove the disk device from the VM; the file stays where it is."""
    si = session.si or session.connect()
    vm = find_vm(si, moref)
    device = _disk_device(si, vm, disk_file)
    if device is None:
        return  # already detached
    _remove_devices(si, vm, [device], f"detach {disk_file} from {moref}")


def _remove_devices(si: Any, vm: Any, devices: list[Any], what: str) -> None:
    """Remove ``devices`` from the VM in one reconfigure; no fileOperation, so their backing files stay."""
    changes = [vim.vm.device.VirtualDeviceSpec(operation="remove", device=d) for d in devices]
    with translate_vsphere_errors(what):
        task = vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(deviceChange=changes))
    wait_for_task(si, task, what)


def attach_iso(session: VsphereSession, moref: str, iso_file: str) -> None:
    """Insert the datastore ISO ``iso_file`` into a new CD-ROM drive of the helper VM, connected at power-on."""
    si = session.si or session.connect()
    vm = find_vm(si, moref)
    ((_, props),) = retrieve(si, [vm], ["config.hardware.device"])
    devices = list(props.get("config.hardware.device") or [])
    used = {d.key: 0 for d in devices if isinstance(d, vim.vm.device.VirtualIDEController)}
    for d in devices:
        if getattr(d, "controllerKey", None) in used:
            used[d.controllerKey] += 1
    controller = next((key for key, n in sorted(used.items()) if n < 2), None)  # two drives per IDE channel
    if controller is None:
        raise PlatformError(f"helper VM {moref} has no free IDE slot for a CD-ROM drive (the job CD)")
    drive = vim.vm.device.VirtualCdrom(
        key=-101,
        controllerKey=controller,
        backing=vim.vm.device.VirtualCdrom.IsoBackingInfo(fileName=iso_file),
        connectable=vim.vm.device.VirtualDevice.ConnectInfo(
            startConnected=True, connected=True, allowGuestControl=False
        ),
    )
    change = vim.vm.device.VirtualDeviceSpec(operation="add", device=drive)
    with translate_vsphere_errors(f"attach {iso_file} to {moref}"):
        task = vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(deviceChange=[change]))
    wait_for_task(si, task, f"attach {iso_file} to {moref}")


def attach_console_file(session: VsphereSession, moref: str, log_file: str) -> None:
    """Give the helper VM a serial port written to the datastore file ``log_file``: its console (the template's
    kernel logs to ttyS0 and its boot service to the console), kept even when the VM never reports back."""
    si = session.si or session.connect()
    vm = find_vm(si, moref)
    port = vim.vm.device.VirtualSerialPort(
        key=-201,
        backing=vim.vm.device.VirtualSerialPort.FileBackingInfo(fileName=log_file),
        yieldOnPoll=True,
        connectable=vim.vm.device.VirtualDevice.ConnectInfo(
            startConnected=True, connected=True, allowGuestControl=False
        ),
    )
    change = vim.vm.device.VirtualDeviceSpec(operation="add", device=port)
    with translate_vsphere_errors(f"attach the console file {log_file} to {moref}"):
        task = vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(deviceChange=[change]))
    wait_for_task(si, task, f"attach the console file {log_file} to {moref}")


def detach_iso(session: VsphereSession, moref: str, iso_file: str) -> None:
    """Remove the CD-ROM drive holding ``iso_file``; the ISO file stays where it is."""
    si = session.si or session.connect()
    vm = find_vm(si, moref)
    ((_, props),) = retrieve(si, [vm], ["config.hardware.device"])
    drives = [
        d for d in props.get("config.hardware.device") or []
        if isinstance(d, vim.vm.device.VirtualCdrom) and getattr(d.backing, "fileName", None) == iso_file
    ]  # fmt: skip
    if not drives:
        return
    _remove_devices(si, vm, drives, f"detach {iso_file} from {moref}")


def destroy_ce_vm(session: VsphereSession, moref: str) -> None:
    """Power off (if on) and delete the helper VM. Attach disks you want to keep as copies or detach first."""
    si = session.si or session.connect()
    vm = find_vm(si, moref)
    ((_, props),) = retrieve(si, [vm], ["runtime.powerState", "config.annotation"])
    if MARK not in (props.get("config.annotation") or ""):
        raise InputError(f"VM {moref} is not an imageport helper VM; refusing to destroy it")
    if str(props.get("runtime.powerState")) == "poweredOn":
        with translate_vsphere_errors(f"power off {moref}"):
            task = vm.PowerOffVM_Task()
        wait_for_task(si, task, f"power off {moref}")
    with translate_vsphere_errors(f"destroy {moref}"):
        task = vm.Destroy_Task()
    wait_for_task(si, task, f"destroy {moref}")
