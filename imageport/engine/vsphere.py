"""The vSphere backend: the CE is a helper VM cloned from the connector's template, with a disk copy attached.

Provisioning (each recorded in the ledger before it is created): the helper VM
(``ce_host.create_ce_vm``: marked in its annotation with run, stage and
expiry, every network card removed), a work folder ``[datastore] NAME-work``
and in it a copy of the source disk (VirtualDiskManager copy, so the source
file is only read) attached persistent, and a small thin result disk
(``ce_result``); each installer a prepare stages, a read-only disk of its own (``deliver``).
Running the agent: the job CD (``ce_delivery``: the agent
bundle and the job) is uploaded into the work folder and attached as a
CD-ROM, the envelope (boot protocol, bundle and job sha256, result disk unit)
is put in ``guestinfo.imageport.job``, and the VM powered on. The template's
boot service (``imageport/engine/ce_boot/``) checks the digests, runs the
bundle on the attached disk, writes the result to the result disk, puts its
digest in ``guestinfo.imageport.result`` and powers the VM off; the
orchestrator then reads the result disk's flat file from the datastore.
Teardown: eject and delete the CD, detach and delete the result and installer disks, detach
the copy, move it to its output name (prepare) or delete it, delete the work
folder, destroy the VM. The reaper finds helper VMs by their mark and removes
the VM and its work folder (with the CD, result and installer disks in it).
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pyVmomi import vim

from imageport.disks.io import ByteSource
from imageport.engine.backend import Ledger, Provisioned, Resource
from imageport.engine.ce_delivery import BOOT_PROTOCOL, Envelope, job_iso, sha256_hex
from imageport.engine.ce_result import REFUSED, RESULT_DISK_MB, agent_result, read_result_disk
from imageport.engine.job import LUN_FETCH, AgentDisk, AgentJob, AgentResult, BundleStamp
from imageport.engine.tags import CeTags
from imageport.errors import EngineError, InputError, NotFound
from imageport.platforms.vsphere import ce_host
from imageport.platforms.vsphere.errors import translate_vsphere_errors
from imageport.platforms.vsphere.imports import upload_file_disk
from imageport.platforms.vsphere.inventory import find_vm, retrieve, split_datastore_path
from imageport.platforms.vsphere.session import VsphereSession
from imageport.platforms.vsphere.waiting import wait_for_task

if TYPE_CHECKING:
    from imageport.engine.bundle import AgentBundle

JOB_KEY = "guestinfo.imageport.job"
RESULT_KEY = "guestinfo.imageport.result"
# Where the boot service links the attached disks by SCSI unit (lunN), see ce_boot/imageport-ce.sh.
GUEST_DEVICE_ROOT = "/run/imageport/luns"
POLL_S = 1.0
ATTACH, DISK, FOLDER, VM = "vsphere-attachment", "vsphere-disk", "vsphere-folder", "vsphere-vm"
JOB_CD, RESULT_DISK, INSTALLER_DISK = "vsphere-job-cd", "vsphere-result-disk", "vsphere-installer-disk"
ORDER = {ATTACH: 5, JOB_CD: 6, RESULT_DISK: 7, INSTALLER_DISK: 8, DISK: 10, FOLDER: 15, VM: 20}


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
    job_cd: str  # datastore path of the job CD (uploaded when the agent runs)
    result_disk: str  # datastore path of the result disk
    result_lun: int  # its SCSI unit
    console: str | None = None  # datastore path of the serial console's file (boot diagnostics)
    ledger: Ledger | None = None  # what ``deliver`` records its installer disks in
    installer_disks: int = 0


def _default_bundle() -> AgentBundle:
    from imageport.engine.bundle import agent_bundle

    return agent_bundle()


class VsphereBackend:
    platform = "vsphere"

    def __init__(self, session: VsphereSession, bundle: Callable[[], AgentBundle] = _default_bundle) -> None:
        self.session = session
        self.bundle = bundle  # the agent bundle every job ships with (built or reused)

    @property
    def si(self) -> Any:
        return self.session.si or self.session.connect()

    def _work_folder(self, ce: str) -> str:
        return f"[{self.session.config.datastore}] {ce}-work"

    def provision(self, source: VsphereSource, ledger: Ledger, *, keep_copy: bool,
                  boot_diagnostics: bool = False) -> Provisioned:  # fmt: skip
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
        vm = ce_host.create_ce_vm(self.session, ce, ledger.tags.run_id, ttl_s=int(ttl), stage=ledger.tags.stage,
                                  tags=ledger.tags.as_dict())  # fmt: skip
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
        result_disk = f"{folder}/{ce}-result.vmdk"
        ledger.creating(RESULT_DISK, result_disk, order=ORDER[RESULT_DISK], parent=ce)
        result_lun = self._unit(vm.moref, ce_host.create_disk(self.session, vm.moref, result_disk, RESULT_DISK_MB))
        job_cd = f"{folder}/{ce}-job.iso"
        ledger.creating(JOB_CD, job_cd, order=ORDER[JOB_CD], parent=ce)  # uploaded when the agent runs
        console = None
        if boot_diagnostics:  # in the work folder: deleted with it
            console = f"{folder}/{ce}-console.log"
            ce_host.attach_console_file(self.session, vm.moref, console)
        engine = VsphereEngine(vm.moref, ce, job_cd, result_disk, result_lun, console, ledger)
        return Provisioned(engine, AgentDisk(lun=unit, device_root=GUEST_DEVICE_ROOT), output if keep_copy else None)

    def boot_log(self, engine: VsphereEngine) -> str:
        if engine.console is None:
            return ""
        datastore, path = split_datastore_path(engine.console)
        files = self.session.datastore_files(datastore)
        try:
            size = files.size(path) if files.isfile(path) else 0
            if size == 0:
                return ""  # the VM never wrote to its console (it did not boot)
            return files.get_range(path, 0, size).decode(errors="replace")
        finally:
            files.close()

    def reaches(self, url: str) -> bool:
        """A vSphere CE has no NIC: it reads only its attached devices."""
        return False

    def deliver(self, engine: VsphereEngine, name: str, source: ByteSource) -> str:
        """An installer on a disk of its own in the work folder, attached read-only: a CE without a NIC reads
        nothing else. Uploaded over the datastore's ``/folder`` (streamed), ledgered before, deleted with the CE
        (and its work folder by the reaper); the agent reads it by SCSI unit (``lun:N``) and checks it again."""
        assert engine.ledger is not None  # provision hands it over
        engine.installer_disks += 1
        disk = f"{self._work_folder(engine.name)}/{engine.name}-installer-{engine.installer_disks}.vmdk"
        engine.ledger.creating(INSTALLER_DISK, disk, order=ORDER[INSTALLER_DISK], parent=engine.name)
        datastore, path = split_datastore_path(disk)
        with translate_vsphere_errors(f"upload installer {name} to {disk}"):
            upload_file_disk(self.session, datastore, path, source)
        # Independent-nonpersistent: the guest's writes are discarded, the uploaded bytes stay as checked.
        key = ce_host.attach_disk(self.session, engine.moref, disk, "independent_nonpersistent")
        return f"{LUN_FETCH}{self._unit(engine.moref, key)}"

    def _unit(self, moref: str, key: int) -> int:
        ((_, props),) = retrieve(self.si, [find_vm(self.si, moref)], ["config.hardware.device"])
        return next(int(d.unitNumber) for d in props["config.hardware.device"] if d.key == key)

    # --- the agent, through the boot image --------------------------------------------------

    def run_agent(self, engine: VsphereEngine, job: AgentJob, timeout_s: float) -> AgentResult:
        from imageport.errors import EngineTimeout

        where = f"vSphere CE {engine.name}"
        vm = find_vm(self.si, engine.moref)
        envelope = self._deliver(engine, job, where)
        spec = vim.vm.ConfigSpec(extraConfig=[vim.option.OptionValue(key=JOB_KEY, value=envelope.line()),
                                              vim.option.OptionValue(key=RESULT_KEY, value="")])  # fmt: skip
        with translate_vsphere_errors(f"{where}: hand over the job"):
            task = vm.ReconfigVM_Task(spec=spec)
        wait_for_task(self.si, task, f"{where}: hand over the job")
        with translate_vsphere_errors(f"{where}: power on"):
            task = vm.PowerOnVM_Task()
        wait_for_task(self.si, task, f"{where}: power on")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            digest, powered = self._guest_state(vm)
            if powered == "poweredOff":
                return self._collect(engine, digest, where)
            time.sleep(POLL_S)
        raise EngineTimeout(
            f"{where}: the {job.mode.value} job outlived its {timeout_s:.0f} s timeout; the helper VM was destroyed"
        )

    def _deliver(self, engine: VsphereEngine, job: AgentJob, where: str) -> Envelope:
        """Upload the job CD into the work folder and insert it; the envelope says what the CE must find on it."""
        bundle = self.bundle()
        data = bundle.path.read_bytes()
        if sha256_hex(data) != bundle.sha256:
            raise EngineError(f"{where}: the agent bundle {bundle.path} changed since it was built; rebuild it")
        job = job.model_copy(update={"bundle": BundleStamp(version=bundle.version, sha256=bundle.sha256)})
        job_bytes = job.model_dump_json().encode()
        datastore, path = split_datastore_path(engine.job_cd)
        files = self.session.datastore_files(datastore)
        try:
            files.put(path, job_iso(data, job_bytes))
        finally:
            files.close()
        ce_host.attach_iso(self.session, engine.moref, engine.job_cd)
        return Envelope(bundle.protocol, bundle.sha256, sha256_hex(job_bytes), engine.result_lun, BOOT_PROTOCOL)

    def _collect(self, engine: VsphereEngine, digest: str | None, where: str) -> AgentResult:
        """The result of a CE that powered off: from the result disk, checked against the guestinfo digest."""
        if not digest:
            raise EngineError(f"{where}: the CE powered off without a result (its boot service never ran the job?)")
        if digest.startswith(REFUSED):
            raise EngineError(f"{where}: the CE's boot service {digest}")
        datastore, path = split_datastore_path(engine.result_disk)
        files = self.session.datastore_files(datastore)
        flat = path.removesuffix(".vmdk") + "-flat.vmdk"
        try:
            found = read_result_disk(lambda offset, length: files.get_range(flat, offset, length), digest, where)
        finally:
            files.close()
        return agent_result(found, where)

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
            elif resource.kind == JOB_CD:
                assert resource.parent is not None
                with contextlib.suppress(NotFound):  # the VM may be gone already: the file is still deleted
                    ce_host.detach_iso(self.session, resource.parent, resource.id)
                self._delete_file(resource.id)
            elif resource.kind in (RESULT_DISK, INSTALLER_DISK):
                assert resource.parent is not None
                with contextlib.suppress(NotFound):
                    ce_host.detach_disk(self.session, resource.parent, resource.id)
                self._delete_file(resource.id, disk=True)
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
