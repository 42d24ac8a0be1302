"""Virtual machines, NICs and run-command for the ARM stand-in: enough Azure to host a compositing engine.

Azure VMs have no emulator, so this plays the part of the hypervisor for what
a CE needs, enforcing the documented rules imageport depends on:
- a NIC needs an existing subnet id and cannot be deleted while a VM uses it;
- a VM needs existing NICs and data disks; a data disk attached to one VM
  cannot be attached to another, nor deleted, until the VM is gone;
- the OS disk (``createOption: FromImage``) becomes a managed disk of its own,
  deleted with the VM only when ``deleteOption`` is ``Delete``; or an existing managed disk is
  booted (``createOption: Attach``, its ``osType``, no image, no ``osProfile``): a Windows one's guest is
  played by tests/infra/arm_windows.py (its startup script, ``RunPowerShellScript``, ``deallocate``);
- ``osProfile.customData`` is base64 of at most 65535 bytes; a ``#cloud-config``
  in it is "run at first boot": its ``packages`` are installed if this machine
  has them (dpkg) and the mirrors are reachable (``mirrors_reachable``); the
  VM's ``cloud-init status`` then reports how that went. A gallery image
  (``imageReference.id``) counts as having every package;
- ``runCommand`` (``RunShellScript``) runs the exact script in a clean machine
  (tests/infra/ce_sandbox.py): its own network namespace where only Azurite
  (and ``reachable_ports``) can be reached -- no package index --, an
  environment cleared as a VM's, ``python3`` the stock ``interpreter`` chosen
  for the VM (without the distribution's site-packages when cloud-init did not
  install python3-guestfs), each data disk materialized as ``lunN`` in a
  directory named by ``IMAGEPORT_DEVICE_ROOT`` (as Azure's udev links do under
  /dev/disk/azure/scsi1); changed pages are written back to the disk's page
  blob, and only the last 4096 bytes of stdout and stderr are returned, as
  Azure does. Deleting the VM kills a script still running;
- managed boot diagnostics (``diagnosticsProfile.bootDiagnostics.enabled`` without a ``storageUri``): the
  VM's serial console -- its kernel's and cloud-init's first-boot messages, as the first boot went -- is a
  blob Azure keeps; ``retrieveBootDiagnosticsData`` (a synchronous POST) answers SAS URIs to it, and refuses
  with 409 ``OperationNotAllowed`` when boot diagnostics are off;
- the posture rules of tests/infra/arm_policy.py (403 RequestDisallowedByPolicy).

Faults for the tests: ``fail_vm_create`` (the VM is left in ``Failed`` state, as
Azure does) and ``fail_deletes[name] = n`` (the next n deletes of that
resource fail as a failed long-running operation).
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from tests.infra import arm_policy
from tests.infra.arm_policy import Refusal
from tests.infra.arm_windows import WindowsGuest
from tests.infra.ce_sandbox import Sandbox

MiB = 1024 * 1024
OUTPUT_LIMIT = 4096
CHUNK = 4 * MiB

# groups: subscription, resource group, provider/type, name, action
ITEM = re.compile(
    r"^/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/"
    r"(Microsoft\.Compute/virtualMachines|Microsoft\.Network/networkInterfaces)/([^/]+)"
    r"(/runCommand|/retrieveBootDiagnosticsData|/deallocate)?$",
    re.IGNORECASE,
)
COLLECTION = re.compile(
    r"^/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/"
    r"(Microsoft\.Compute/(?:virtualMachines|disks|snapshots)|Microsoft\.Network/networkInterfaces)$",
    re.IGNORECASE,
)
Reply = tuple[int, dict[str, Any], str | None]


class VmHost:
    def __init__(self, arm: Any) -> None:
        self.arm = arm
        self.vms: dict[str, dict[str, Any]] = {}
        self.nics: dict[str, dict[str, Any]] = {}
        self.fail_vm_create: str | None = None
        self.fail_deletes: dict[str, int] = {}
        self.exit_codes: dict[str, int] = {}  # startup actions a Windows guest's boot ends with this exit code
        self.booted: list[tuple[str, list[str]]] = []  # (VM, actions its first boot ran) of each Windows boot
        self.scripts: list[str] = []  # every script run, for the tests to inspect
        self.console_reads: list[str] = []  # VMs whose boot diagnostics were retrieved
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        # The stock interpreter a new VM's image has as python3 (Debian's: the one with python3-guestfs).
        self.interpreter = "/usr/bin/python3"
        self.mirrors_reachable = True
        # Subnets a CE's NIC may join (the policy's allowed list); tests add the connector's.
        self.allowed_subnets: set[str] = set()
        self.sandbox = Sandbox()
        self.sandbox.allow(urlsplit(arm.blobs.url).port or 80)  # the storage account: the CE's one way out

    # --- routing ---------------------------------------------------------------------

    def handle(self, method: str, path: str, body: dict[str, Any]) -> Reply | None:
        if method == "GET" and (m := COLLECTION.match(path)):
            return 200, {"value": self._list(m.group(2), m.group(3).lower())}, None
        m = ITEM.match(path)
        if not m:
            return None
        rg, kind, name, action = m.group(2), m.group(3).lower(), m.group(4), m.group(5)
        key = f"{rg.lower()}/{name.lower()}"
        table = self.vms if kind.endswith("virtualmachines") else self.nics
        if method == "GET":
            if key not in table:
                return 404, _err("ResourceNotFound", f"{name} not found"), None
            return 200, table[key]["doc"], None
        if method == "PUT":
            return self._create_vm(rg, name, body) if table is self.vms else self._create_nic(rg, name, body)
        if method == "POST" and action and action.lower() == "/retrievebootdiagnosticsdata":
            return self._boot_diagnostics(key, name)
        if method == "POST" and action and action.lower() == "/deallocate":
            return self._deallocate(key, name)
        if method == "POST" and action:
            return self._run_command(key, body)
        if method == "DELETE":
            return self._delete(table, key, name)
        return None

    def _list(self, rg: str, kind: str) -> list[dict[str, Any]]:
        if kind.endswith("virtualmachines"):
            return [v["doc"] for k, v in self.vms.items() if k.startswith(rg.lower() + "/")]
        if kind.endswith("networkinterfaces"):
            return [v["doc"] for k, v in self.nics.items() if k.startswith(rg.lower() + "/")]
        table = "disks" if kind.endswith("disks") else "snapshots"
        render = self.arm._disk_json if table == "disks" else self.arm._snapshot_json
        return [render(k.split("/")[0], v.get("name", k.split("/")[1])) for k, v in self.arm.table(table).items()
                if k.startswith(rg.lower() + "/")]  # fmt: skip

    # --- NICs ------------------------------------------------------------------------

    def _create_nic(self, rg: str, name: str, body: dict[str, Any]) -> Reply:
        configs = body.get("properties", {}).get("ipConfigurations") or []
        subnet = (configs[0].get("properties", {}).get("subnet") or {}).get("id", "") if configs else ""
        if not re.search(r"/virtualNetworks/[^/]+/subnets/[^/]+$", subnet):
            return 400, _err("InvalidRequestFormat", "ipConfigurations[0].subnet.id must be a subnet id"), None
        try:
            arm_policy.check_nic(name, body, {s.lower() for s in self.allowed_subnets})
        except Refusal as refusal:
            return refusal.reply
        doc = {
            "id": self._id(rg, "Microsoft.Network/networkInterfaces", name),
            "name": name,
            "location": body.get("location"),
            "tags": body.get("tags") or {},
            "properties": {"provisioningState": "Succeeded", "ipConfigurations": configs},
        }
        self.nics[f"{rg.lower()}/{name.lower()}"] = {"doc": doc, "vm": None}
        self.arm.created.append(("nic", name, dict(doc["tags"])))
        return 201, doc, self.arm._operation()

    # --- VMs -------------------------------------------------------------------------

    def _create_vm(self, rg: str, name: str, body: dict[str, Any]) -> Reply:
        props = body.get("properties", {})
        key = f"{rg.lower()}/{name.lower()}"
        if key in self.vms:
            return 409, _err("Conflict", f"VM {name} exists"), None
        try:
            arm_policy.check_vm(name, body)
            first_boot = self._first_boot(name, props)
        except Refusal as refusal:
            return refusal.reply
        nic_ids = [n["id"] for n in props.get("networkProfile", {}).get("networkInterfaces", [])]
        nics = [self.nics.get(self._key(i)) for i in nic_ids]
        if not nic_ids or any(n is None for n in nics):
            return 400, _err("NotFound", "networkProfile names a NIC that does not exist"), None
        storage = props.get("storageProfile", {})
        data = []
        for d in storage.get("dataDisks", []):
            disk = self.arm.disks.get(self._key(d.get("managedDisk", {}).get("id", "")))
            if disk is None:
                return 400, _err("NotFound", f"data disk lun {d.get('lun')} does not exist"), None
            if disk["state"] != "Unattached":
                return 409, _err("OperationNotAllowed", f"data disk lun {d.get('lun')} is {disk['state']}"), None
            data.append((int(d["lun"]), self._key(d["managedDisk"]["id"])))
        os_disk = storage.get("osDisk", {})
        self.arm.created.append(("vm", name, dict(body.get("tags") or {})))
        if os_disk.get("createOption") == "Attach":
            attached = self._attach_os_disk(props, os_disk)
            if isinstance(attached, tuple):
                return attached
            os_key, os_delete = attached, os_disk.get("deleteOption", "Detach") == "Delete"
        else:
            made = self._os_disk_from_image(rg, name, body, storage, os_disk)
            if isinstance(made, tuple):
                return made
            os_key, os_delete = made, os_disk.get("deleteOption") == "Delete"
            if storage["imageReference"].get("id"):  # a prebuilt gallery image carries the packages
                first_boot = {"status": "done", "installed": "*", "log": "image: " + storage["imageReference"]["id"]}
        state = "Failed" if self.fail_vm_create else "Succeeded"
        doc = {
            "id": self._id(rg, "Microsoft.Compute/virtualMachines", name),
            "name": name,
            "location": body.get("location"),
            "tags": body.get("tags") or {},
            "properties": {**props, "provisioningState": state},
        }
        self.vms[key] = {"doc": doc, "data": data, "nics": nic_ids, "os_disk": os_key, "os_delete": os_delete,
                         "first_boot": first_boot, "interpreter": self.interpreter}  # fmt: skip
        if (props.get("diagnosticsProfile") or {}).get("bootDiagnostics", {}).get("enabled"):
            self._write_console(key, name, first_boot)
        for nic in nics:
            assert nic is not None
            nic["vm"] = key
        for _, disk_key in data:
            self.arm.disks[disk_key]["state"] = "Attached"
        if os_disk.get("createOption") == "Attach":
            self.arm.disks[os_key]["state"] = "Attached"
            if str(os_disk.get("osType")).lower() == "windows" and not self.fail_vm_create:
                self.vms[key]["windows"] = WindowsGuest(self, key, os_key)  # it boots as it is created
        if self.fail_vm_create:
            message, self.fail_vm_create = self.fail_vm_create, None
            return 201, doc, self.arm._operation(error={"code": "AllocationFailed", "message": message})
        return 201, doc, self.arm._operation()

    def _os_disk_from_image(self, rg: str, name: str, body: dict[str, Any], storage: dict[str, Any],
                            os_disk: dict[str, Any]) -> str | Reply:  # fmt: skip
        """``createOption: FromImage``: the image's OS disk, a managed disk of its own; its key."""
        if os_disk.get("createOption") != "FromImage" or not storage.get("imageReference"):
            return 400, _err("InvalidParameter", "osDisk must be createOption FromImage with an imageReference, "
                             "or Attach with a managed disk"), None  # fmt: skip
        image = storage["imageReference"]
        if not image.get("id") and not all(image.get(k) for k in ("publisher", "offer", "sku", "version")):
            return 400, _err("InvalidParameter", "imageReference needs an id or publisher/offer/sku/version"), None
        os_name = os_disk.get("name") or f"{name}_OsDisk"
        # The OS disk exists as soon as the VM starts deploying, even if the deployment then fails.
        self.arm.created.append(("disk", os_name, dict(body.get("tags") or {})))
        self.arm.disks[f"{rg.lower()}/{os_name.lower()}"] = {
            "name": os_name, "location": body.get("location"), "tags": body.get("tags") or {},
            "sku": "Premium_LRS", "upload_size": 32 * MiB + 512, "state": "Attached",
            "hyper_v_generation": "V2", "os_type": "Linux", "no_blob": True,
        }  # fmt: skip
        return f"{rg.lower()}/{os_name.lower()}"

    def _attach_os_disk(self, props: dict[str, Any], os_disk: dict[str, Any]) -> str | Reply:
        """``createOption: Attach``: an existing, unattached managed disk boots; no image, no osProfile."""
        if props.get("storageProfile", {}).get("imageReference"):
            return 400, _err("InvalidParameter", "imageReference is not allowed with an attached OS disk"), None
        if props.get("osProfile"):
            return 400, _err("InvalidParameter", "Parameter 'osProfile' is not allowed."), None
        if str(os_disk.get("osType", "")).lower() not in ("windows", "linux"):
            return 400, _err("InvalidParameter", "osDisk.osType must be Windows or Linux for an attached disk"), None
        disk_key = self._key((os_disk.get("managedDisk") or {}).get("id", ""))
        disk = self.arm.disks.get(disk_key)
        if disk is None:
            return 404, _err("NotFound", "the OS disk to attach does not exist"), None
        if disk["state"] != "Unattached":
            return 409, _err("OperationNotAllowed", f"the OS disk is {disk['state']}"), None
        return disk_key

    def _first_boot(self, name: str, props: dict[str, Any]) -> dict[str, Any]:
        """What cloud-init does with the custom data at first boot: which packages end up installed."""
        raw = (props.get("osProfile") or {}).get("customData")
        if raw is None:
            return {"status": "done", "installed": "", "log": "no custom data"}
        try:
            data = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise Refusal(400, "InvalidParameter", "osProfile.customData must be base64") from None
        if len(data) > 65535:
            raise Refusal(400, "InvalidParameter", "osProfile.customData decodes to more than 65535 bytes")
        if not data.startswith(b"#cloud-config"):
            return {"status": "done", "installed": "", "log": "custom data is not a cloud-config"}
        packages = [str(p) for p in (yaml.safe_load(data) or {}).get("packages") or []]
        if not self.mirrors_reachable:
            log = ("E: Failed to fetch http://azure.archive.ubuntu.com/ubuntu/dists/jammy/InRelease  "
                   "Temporary failure resolving 'azure.archive.ubuntu.com'\n"
                   f"E: Unable to locate package {packages[0] if packages else '?'}")  # fmt: skip
            return {"status": "error", "installed": "", "log": log, "module": "package_update_upgrade_install"}
        absent = [p for p in packages if not _dpkg_installed(p)]
        if absent:
            log = f"E: Unable to locate package {absent[0]}"
            return {"status": "error", "installed": " ".join(packages), "log": log,
                    "module": "package_update_upgrade_install"}  # fmt: skip
        return {"status": "done", "installed": " ".join(packages), "log": f"installed: {' '.join(packages)}"}

    # --- boot diagnostics --------------------------------------------------------------------

    def _write_console(self, key: str, name: str, boot: dict[str, Any]) -> None:
        """The serial console of the VM's first boot: the kernel's banner and cloud-init's run, as it went."""
        lines = [
            "[    0.000000] Linux version 5.15.0-1057-azure (buildd@lcy02-amd64-001) #65-Ubuntu SMP",
            f"[    2.104311] systemd[1]: Hostname set to <{name[:15]}>.",
            "cloud-init[612]: Cloud-init v. 23.4.4-0ubuntu0~22.04.1 running 'modules:final'",
            *(f"cloud-init[612]: {line}" for line in str(boot.get("log", "")).splitlines()),
            f"cloud-init[612]: Cloud-init v. 23.4.4-0ubuntu0~22.04.1 finished, status: {boot['status']}",
        ]
        blob = self.console_container().get_blob_client(f"{key.replace('/', '-')}.serialconsole.log")
        blob.upload_blob(("\n".join(lines) + "\n").encode(), overwrite=True)

    def console_container(self) -> Any:
        container = self.arm.blobs.get_container_client("bootdiagnostics-standin")
        if not container.exists():
            container.create_container()
        return container

    def _boot_diagnostics(self, key: str, name: str) -> Reply:
        from azure.storage.blob import BlobSasPermissions, generate_blob_sas

        vm = self.vms.get(key)
        if vm is None:
            return 404, _err("ResourceNotFound", f"VM {name} not found"), None
        if not (vm["doc"]["properties"].get("diagnosticsProfile") or {}).get("bootDiagnostics", {}).get("enabled"):
            return 409, _err("OperationNotAllowed", f"boot diagnostics are not enabled on VM {name}"), None
        container = self.console_container()
        blob = f"{key.replace('/', '-')}.serialconsole.log"
        expiry = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=10)
        sas = generate_blob_sas(self.arm.blobs.account_name, container.container_name, blob,
                                account_key=self.arm.blobs.credential.account_key,
                                permission=BlobSasPermissions(read=True), expiry=expiry)  # fmt: skip
        self.console_reads.append(key)
        return 200, {"serialConsoleLogBlobUri": f"{container.url}/{blob}?{sas}"}, None

    def _deallocate(self, key: str, name: str) -> Reply:
        vm = self.vms.get(key)
        if vm is None:
            return 404, _err("ResourceNotFound", f"VM {name} not found"), None
        if "windows" in vm:
            vm["windows"].shut_down()  # the guest's writes are on its disk's blob
            self.booted.append((key, list(vm["windows"].ran)))
        vm["deallocated"] = True
        return 202, {}, self.arm._operation()

    def injected_delete_failure(self, name: str) -> Reply | None:
        """A failed delete operation while ``fail_deletes[name]`` lasts (VMs, NICs and disks alike)."""
        if self.fail_deletes.get(name, 0) <= 0:
            return None
        self.fail_deletes[name] -= 1
        return 202, {}, self.arm._operation(error={"code": "InternalServerError", "message": f"simulated: {name}"})

    def _delete(self, table: dict[str, dict[str, Any]], key: str, name: str) -> Reply:
        if (failed := self.injected_delete_failure(name)) is not None:
            return failed
        if key not in table:
            return 204, {}, None
        if table is self.nics and table[key]["vm"] in self.vms:
            return 400, _err("NicInUse", f"NIC {name} is attached to a VM"), None
        entry = table.pop(key)
        if table is self.vms and "windows" in entry:
            entry["windows"].discard()
        if table is self.vms:
            process = self.processes.pop(key, None)
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            for _, disk_key in entry["data"]:
                if disk_key in self.arm.disks:
                    self.arm.disks[disk_key]["state"] = "Unattached"
            if entry["os_disk"] in self.arm.disks:
                if entry["os_delete"]:
                    self.arm.disks.pop(entry["os_disk"])
                else:
                    self.arm.disks[entry["os_disk"]]["state"] = "Unattached"
            for nic in self.nics.values():
                if nic["vm"] == key:
                    nic["vm"] = None
        return 202, {}, self.arm._operation()

    # --- run-command -------------------------------------------------------------------

    def _run_command(self, key: str, body: dict[str, Any]) -> Reply:
        vm = self.vms.get(key)
        if vm is None:
            return 404, _err("ResourceNotFound", "VM not found"), None
        if vm["doc"]["properties"]["provisioningState"] != "Succeeded":
            return 409, _err("OperationNotAllowed", "the VM is not running"), None
        if vm.get("deallocated"):
            return 409, _err("OperationNotAllowed", "the VM is deallocated"), None
        if "windows" in vm:
            return self._run_powershell(vm["windows"], body)
        if body.get("commandId") != "RunShellScript":
            return 400, _err("InvalidParameter", "only RunShellScript is implemented by the stand-in"), None
        script = "\n".join(body.get("script") or [])
        self.scripts.append(script)
        op_id = self.arm._operation()
        op = self.arm.operations[op_id]
        op["pending"] = threading.Event()
        threading.Thread(target=self._execute, args=(key, vm, script, op), daemon=True).start()
        return 202, {}, op_id

    def _run_powershell(self, guest: WindowsGuest, body: dict[str, Any]) -> Reply:
        if body.get("commandId") != "RunPowerShellScript":
            return 400, _err("InvalidParameter", f"{body.get('commandId')} does not run on a Windows VM"), None
        script = "\n".join(body.get("script") or [])
        self.scripts.append(script)
        op_id = self.arm._operation()
        op = self.arm.operations[op_id]
        op["pending"] = threading.Event()

        def run() -> None:
            try:
                op["result"] = guest.run_powershell(script)
            finally:
                op["pending"].set()

        threading.Thread(target=run, daemon=True).start()
        return 202, {}, op_id

    def _vm_bin(self, vm: dict[str, Any], where: Path) -> Path:
        """The VM's own bin directory: python3 (its stock interpreter) and cloud-init (its first boot's status)."""
        where.mkdir()
        boot = vm["first_boot"]
        python3 = where / "python3"
        if boot["installed"] == "*" or "python3-guestfs" in boot["installed"].split():
            python3.symlink_to(vm["interpreter"])
        else:  # the distribution's python3-guestfs/hivex were not installed: its site-packages are not there
            python3.write_text(f'#!/bin/sh\nexec {vm["interpreter"]} -S "$@"\n')
            python3.chmod(0o755)
        failed = boot["status"] != "done"
        status = f"status: {boot['status']}\n" + (
            f"errors:\n\t('{boot.get('module')}', ProcessExecutionError('Unexpected error while running apt'))\n"
            if failed else ""
        )  # fmt: skip
        cloud_init = where / "cloud-init"
        cloud_init.write_text("#!/bin/sh\n[ \"$1\" = status ] || exit 2\ncat <<'EOF'\n" + status + boot["log"]
                              + "\nEOF\n" + f"exit {1 if failed else 0}\n")  # fmt: skip
        cloud_init.chmod(0o755)
        return where

    def _execute(self, key: str, vm: dict[str, Any], script: str, op: dict[str, Any]) -> None:
        devices = Path(tempfile.mkdtemp(prefix="arm-vm-"))
        try:
            before = {lun: self._materialize(disk_key, devices / f"lun{lun}") for lun, disk_key in vm["data"]}
            vm_bin = self._vm_bin(vm, devices / "bin")
            cwd = devices / "run-command"  # as waagent's download directory
            cwd.mkdir()
            with self.arm.lock:  # atomic with a delete: a VM deleted while its disks were copied runs nothing
                if key not in self.vms:
                    op["result"] = {"value": []}
                    return
                process = self.sandbox.popen(script, vm_bin, {"IMAGEPORT_DEVICE_ROOT": str(devices)}, cwd)
                self.processes[key] = process
            out, err = process.communicate()
            if key in self.vms:  # a deleted VM's disks are not written back
                for lun, disk_key in vm["data"]:
                    self._write_back(disk_key, devices / f"lun{lun}", before[lun])
            message = f"Enable succeeded: \n[stdout]\n{out.decode(errors='replace')[-OUTPUT_LIMIT:]}\n" \
                      f"[stderr]\n{err.decode(errors='replace')[-OUTPUT_LIMIT:]}\n"  # fmt: skip
            op["result"] = {"value": [{"code": "ProvisioningState/succeeded", "level": "Info", "message": message}]}
        finally:
            shutil.rmtree(devices, ignore_errors=True)
            op["pending"].set()

    def _materialize(self, disk_key: str, path: Path) -> dict[int, str]:
        """The disk's page blob as a sparse local file; returns the digest of each written chunk."""
        blob = self.arm.container.get_blob_client(self.arm._blob_name(*disk_key.split("/")))
        size = self.arm.disks[disk_key]["upload_size"] - 512
        digests: dict[int, str] = {}
        with open(path, "wb") as f:
            f.truncate(size)
            for r in blob.list_page_ranges():
                start = r.start
                while start <= min(r.end, size - 1):
                    n = min(CHUNK, min(r.end, size - 1) + 1 - start)
                    data = blob.download_blob(offset=start, length=n).readall()
                    f.seek(start)
                    f.write(data)
                    start += n
        with open(path, "rb") as f:
            for offset in range(0, size, CHUNK):
                digests[offset] = hashlib.sha256(f.read(CHUNK)).hexdigest()
        return digests

    def _write_back(self, disk_key: str, path: Path, before: dict[int, str]) -> None:
        blob = self.arm.container.get_blob_client(self.arm._blob_name(*disk_key.split("/")))
        with open(path, "rb") as f:
            for offset, digest in before.items():
                data = f.read(CHUNK)
                if hashlib.sha256(data).hexdigest() != digest:
                    blob.upload_page(data, offset=offset, length=len(data))

    # --- helpers -------------------------------------------------------------------------

    def _id(self, rg: str, kind: str, name: str) -> str:
        return f"/subscriptions/{self.arm.subscription}/resourceGroups/{rg}/providers/{kind}/{name}"

    @staticmethod
    def _key(resource_id: str) -> str:
        parts = resource_id.strip("/").split("/")
        return f"{parts[3].lower()}/{parts[-1].lower()}" if len(parts) >= 8 else ""


def _err(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def _dpkg_installed(package: str) -> bool:
    done = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True, check=False)
    return done.returncode == 0 and done.stdout.strip().endswith("installed")
