"""Virtual machines, NICs and run-command for the ARM stand-in: enough Azure to host a compositing engine.

Azure VMs have no emulator, so this plays the part of the hypervisor for what
a CE needs, enforcing the documented rules imageport depends on:
- a NIC needs an existing subnet id and cannot be deleted while a VM uses it;
- a VM needs existing NICs and data disks; a data disk attached to one VM
  cannot be attached to another, nor deleted, until the VM is gone;
- the OS disk (``createOption: FromImage``) becomes a managed disk of its own,
  deleted with the VM only when ``deleteOption`` is ``Delete``;
- ``runCommand`` (``RunShellScript``) runs the script with bash on this machine
  with each data disk materialized as ``lunN`` in a directory named by
  ``IMAGEPORT_DEVICE_ROOT`` (as Azure's udev links do under
  /dev/disk/azure/scsi1), writes changed pages back to the disk's page blob,
  and returns only the last 4096 bytes of stdout and stderr, as Azure does.
  Deleting the VM kills a script still running.

Faults for the tests: ``fail_vm_create`` (the VM is left in ``Failed`` state, as
Azure does) and ``fail_deletes[name] = n`` (the next n deletes of that
resource fail as a failed long-running operation).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

MiB = 1024 * 1024
OUTPUT_LIMIT = 4096
CHUNK = 4 * MiB

# groups: subscription, resource group, provider/type, name, action
ITEM = re.compile(
    r"^/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/"
    r"(Microsoft\.Compute/virtualMachines|Microsoft\.Network/networkInterfaces)/([^/]+)(/runCommand)?$",
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
        self.scripts: list[str] = []  # every script run, for the tests to inspect
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.python_dir = str(Path(sys.executable).parent)

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
        if any(c.get("properties", {}).get("publicIPAddress") for c in configs):
            return 400, _err("InvalidParameter", "the stand-in has no public IPs"), None
        doc = {
            "id": self._id(rg, "Microsoft.Network/networkInterfaces", name),
            "name": name,
            "location": body.get("location"),
            "tags": body.get("tags") or {},
            "properties": {"provisioningState": "Succeeded", "ipConfigurations": configs},
        }
        self.nics[f"{rg.lower()}/{name.lower()}"] = {"doc": doc, "vm": None}
        return 201, doc, self.arm._operation()

    # --- VMs -------------------------------------------------------------------------

    def _create_vm(self, rg: str, name: str, body: dict[str, Any]) -> Reply:
        props = body.get("properties", {})
        key = f"{rg.lower()}/{name.lower()}"
        if key in self.vms:
            return 409, _err("Conflict", f"VM {name} exists"), None
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
        if os_disk.get("createOption") != "FromImage" or not storage.get("imageReference"):
            return 400, _err("InvalidParameter", "osDisk must be createOption FromImage with an imageReference"), None
        os_name = os_disk.get("name") or f"{name}_OsDisk"
        # The OS disk exists as soon as the VM starts deploying, even if the deployment then fails.
        self.arm.disks[f"{rg.lower()}/{os_name.lower()}"] = {
            "name": os_name, "location": body.get("location"), "tags": body.get("tags") or {},
            "sku": "Premium_LRS", "upload_size": 32 * MiB + 512, "state": "Attached",
            "hyper_v_generation": "V2", "os_type": "Linux", "no_blob": True,
        }  # fmt: skip
        state = "Failed" if self.fail_vm_create else "Succeeded"
        doc = {
            "id": self._id(rg, "Microsoft.Compute/virtualMachines", name),
            "name": name,
            "location": body.get("location"),
            "tags": body.get("tags") or {},
            "properties": {**props, "provisioningState": state},
        }
        self.vms[key] = {"doc": doc, "data": data, "nics": nic_ids, "os_disk": f"{rg.lower()}/{os_name.lower()}",
                         "os_delete": os_disk.get("deleteOption") == "Delete"}  # fmt: skip
        for nic in nics:
            assert nic is not None
            nic["vm"] = key
        for _, disk_key in data:
            self.arm.disks[disk_key]["state"] = "Attached"
        if self.fail_vm_create:
            message, self.fail_vm_create = self.fail_vm_create, None
            return 201, doc, self.arm._operation(error={"code": "AllocationFailed", "message": message})
        return 201, doc, self.arm._operation()

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
        if body.get("commandId") != "RunShellScript":
            return 400, _err("InvalidParameter", "only RunShellScript is implemented by the stand-in"), None
        script = "\n".join(body.get("script") or [])
        self.scripts.append(script)
        op_id = self.arm._operation()
        op = self.arm.operations[op_id]
        op["pending"] = threading.Event()
        threading.Thread(target=self._execute, args=(key, vm, script, op), daemon=True).start()
        return 202, {}, op_id

    def _execute(self, key: str, vm: dict[str, Any], script: str, op: dict[str, Any]) -> None:
        devices = Path(tempfile.mkdtemp(prefix="arm-luns-"))
        try:
            before = {lun: self._materialize(disk_key, devices / f"lun{lun}") for lun, disk_key in vm["data"]}
            env = {**os.environ, "IMAGEPORT_DEVICE_ROOT": str(devices),
                   "PATH": self.python_dir + os.pathsep + os.environ.get("PATH", "")}  # fmt: skip
            process = subprocess.Popen(["bash", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       env=env, start_new_session=True)  # fmt: skip
            with self.arm.lock:  # a VM deleted while its disks were materialized runs nothing
                deleted = self.vms.get(key) is not vm
                if not deleted:
                    self.processes[key] = process
            if deleted:
                os.killpg(process.pid, signal.SIGKILL)
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
