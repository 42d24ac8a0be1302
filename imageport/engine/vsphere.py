"""The vSphere backend: the CE is a helper VM cloned from the connector's template, with a disk copy attached.

Provisioning (each recorded in the ledger before it is created): the helper VM
(``ce_host.create_ce_vm``, marked in its annotation with run and expiry), a
work folder ``[datastore] NAME-work`` and in it a copy of the source disk
(VirtualDiskManager copy, so the source file is only read), attached as a
persistent disk. The agent is started by the CE's boot image: the job is put
in the VM's ``guestinfo.imageport.job`` key and the VM powered on; the boot
service (``imageport/engine/ce_boot/``) runs the agent on the attached disk,
writes its compressed result to ``guestinfo.imageport.result`` and powers the
VM off. Teardown: detach, move the copy to its output name (prepare) or
delete it, delete the work folder, destroy the VM. The reaper finds helper
VMs by their mark and removes the VM and its work folder.
"""

from __future__ import annotations

import base64
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pyVmomi import vim

from imageport.engine.backend import Ledger, Provisioned, Resource
from imageport.engine.job import AgentDisk, AgentJob, AgentResult, parse_result
from imageport.engine.tags import CeTags
from imageport.errors import EngineError, InputError, NotFound
from imageport.platforms.vsphere import ce_host
from imageport.platforms.vsphere.errors import translate_vsphere_errors
from imageport.platforms.vsphere.inventory import find_vm, retrieve
from imageport.platforms.vsphere.session import VsphereSession
from imageport.platforms.vsphere.waiting import wait_for_task

JOB_KEY = "guestinfo.imageport.job"
RESULT_KEY = "guestinfo.imageport.result"
# Where the boot service links the attached disks by SCSI unit (lunN), see ce_boot/imageport-ce.sh.
GUEST_DEVICE_ROOT = "/run/imageport/luns"
POLL_S = 1.0
ATTACH, DISK, FOLDER, VM = "vsphere-attachment", "vsphere-disk", "vsphere-folder", "vsphere-vm"
ORDER = {ATTACH: 5, DISK: 10, FOLDER: 15, VM: 20}


@dataclass(frozen=True)
class VsphereSource:
    """A disk file on a datastore (``[DS] dir/disk.vmdk``) and, for prepare, where the prepared copy goes."""

    disk: str
    output: str | None = None
    overwrite: bool = False


@dataclass
class VsphereEngine:
    moref: str
    name: str


class VsphereBackend:
    platform = "vsphere"

    def __init__(self, session: VsphereSession) -> None:
        self.session = session

    @property
    def si(self) -> Any:
        return self.session.si or self.session.connect()

    def _work_folder(self, ce: str) -> str:
        return f"[{self.session.config.datastore}] {ce}-work"

    def provision(self, source: VsphereSource, ledger: Ledger, *, keep_copy: bool) -> Provisioned:
        cfg = self.session.config
        if not cfg.ce_template or not cfg.datastore:
            raise InputError(f"{self.session.display}: a compositing engine needs ce_template and datastore set")
        if keep_copy and not source.output:
            raise InputError("a prepare on a vSphere CE needs the output datastore path")
        dc = self.session.datacenter()
        ce = f"imageport-ce-{ledger.tags.stage}-{uuid.uuid4().hex[:8]}"
        assert ledger.tags.expires is not None
        ttl = (ledger.tags.expires - datetime.now(UTC)).total_seconds()
        ledger.creating(VM, ce, order=ORDER[VM])
        vm = ce_host.create_ce_vm(self.session, ce, ledger.tags.run_id, ttl_s=int(ttl), stage=ledger.tags.stage)
        folder = self._work_folder(ce)
        ledger.creating(FOLDER, folder, order=ORDER[FOLDER])
        with translate_vsphere_errors(f"create {folder}"):
            self.si.content.fileManager.MakeDirectory(name=folder, datacenter=dc, createParentDirectories=True)
        copy = f"{folder}/{ce}-disk.vmdk"
        output = ledger.creating(DISK, copy, order=ORDER[DISK], keep=keep_copy,
                                 final=source.output if keep_copy else None, overwrite=source.overwrite)  # fmt: skip
        manager = self.si.content.virtualDiskManager
        with translate_vsphere_errors(f"copy {source.disk} to {copy}"):
            task = manager.CopyVirtualDisk_Task(sourceName=source.disk, sourceDatacenter=dc, destName=copy,
                                                destDatacenter=dc)  # fmt: skip
        wait_for_task(self.si, task, f"copy {source.disk} to {copy}")
        ledger.creating(ATTACH, copy, order=ORDER[ATTACH], parent=ce)
        key = ce_host.attach_disk(self.session, vm.moref, copy, "persistent")
        unit = self._unit(vm.moref, key)
        return Provisioned(VsphereEngine(vm.moref, ce), AgentDisk(lun=unit, device_root=GUEST_DEVICE_ROOT),
                           output if keep_copy else None)  # fmt: skip

    def _unit(self, moref: str, key: int) -> int:
        ((_, props),) = retrieve(self.si, [find_vm(self.si, moref)], ["config.hardware.device"])
        return next(int(d.unitNumber) for d in props["config.hardware.device"] if d.key == key)

    # --- the agent, through the boot image --------------------------------------------------

    def run_agent(self, engine: VsphereEngine, job: AgentJob, timeout_s: float) -> AgentResult:
        from imageport.engine.lifecycle import EngineTimeout

        where = f"vSphere CE {engine.name}"
        vm = find_vm(self.si, engine.moref)
        encoded = base64.b64encode(job.model_dump_json().encode()).decode()
        spec = vim.vm.ConfigSpec(extraConfig=[vim.option.OptionValue(key=JOB_KEY, value=encoded)])
        with translate_vsphere_errors(f"{where}: hand over the job"):
            task = vm.ReconfigVM_Task(spec=spec)
        wait_for_task(self.si, task, f"{where}: hand over the job")
        with translate_vsphere_errors(f"{where}: power on"):
            task = vm.PowerOnVM_Task()
        wait_for_task(self.si, task, f"{where}: power on")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            result, powered = self._guest_state(vm)
            if result:
                return parse_result(result, where)
            if powered == "poweredOff":
                raise EngineError(f"{where}: the CE powered off without a result (the agent crashed?)")
            time.sleep(POLL_S)
        raise EngineTimeout(
            f"{where}: the {job.mode.value} job outlived its {timeout_s:.0f} s timeout; the helper VM was destroyed"
        )

    def _guest_state(self, vm: Any) -> tuple[str | None, str]:
        with translate_vsphere_errors("read the CE's state"):
            ((_, props),) = retrieve(self.si, [vm], ["config.extraConfig", "runtime.powerState"])
        values = [o.value for o in props.get("config.extraConfig") or [] if o.key == RESULT_KEY and o.value]
        return (str(values[-1]) if values else None), str(props.get("runtime.powerState"))

    # --- teardown ------------------------------------------------------------------------------

    def delete(self, resource: Resource) -> None:
        try:
            if resource.kind == ATTACH:
                assert resource.parent is not None  # an attachment always names its VM
                ce_host.detach_disk(self.session, resource.parent, resource.id)
            elif resource.kind == VM:
                vm = find_vm(self.si, resource.id)
                ce_host.destroy_ce_vm(self.session, vm._moId)
                self._delete_file(self._work_folder(resource.id))  # a reaped VM's work folder goes with it
            elif resource.kind in (DISK, FOLDER):
                self._delete_file(resource.id, disk=resource.kind == DISK)
            else:
                raise InputError(f"the vSphere CE backend does not know resource kind {resource.kind!r}")
        except NotFound:
            return

    def _delete_file(self, path: str, disk: bool = False) -> None:
        """Delete a datastore file or folder; a missing one raises ``NotFound`` (``delete`` treats it as done)."""
        dc = self.session.datacenter()
        content = self.si.content
        with translate_vsphere_errors(f"delete {path}"):
            if disk:
                task = content.virtualDiskManager.DeleteVirtualDisk_Task(name=path, datacenter=dc)
            else:
                task = content.fileManager.DeleteDatastoreFile_Task(name=path, datacenter=dc)
        wait_for_task(self.si, task, f"delete {path}")

    def finalize(self, resource: Resource) -> str:
        copy, output = resource.id, resource.final
        assert output is not None  # a kept copy always names where it goes
        dc = self.session.datacenter()
        with translate_vsphere_errors(f"move {copy} to {output}"):
            task = self.si.content.virtualDiskManager.MoveVirtualDisk_Task(
                sourceName=copy, sourceDatacenter=dc, destName=output, destDatacenter=dc, force=resource.overwrite
            )
        wait_for_task(self.si, task, f"move {copy} to {output}")
        return output

    def list_resources(self) -> list[Resource]:
        return [
            Resource(VM, vm.name, CeTags(vm.run_id, vm.stage, vm.expires), ORDER[VM])
            for vm in ce_host.list_ce_vms(self.session)
        ]
