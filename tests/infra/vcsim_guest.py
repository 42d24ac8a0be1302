"""The inside of a vSphere helper VM, for the simulator: runs the template's real boot service.

vcsim runs no guest code, so when a marked helper VM is powered on this plays
the machine, not the boot service: it lays the template out with the recipe
(``scripts/build-vsphere-ce-template.sh --root DIR --no-packages``) and runs the
command its ``imageport-ce.service`` starts -- ``imageport/engine/ce_boot/imageport-ce.sh``
as written, with ``sh`` -- in the clean machine of ``tests/infra/ce_sandbox.py`` -- only a stock
interpreter as ``python3`` on PATH (no venv, no PYTHONPATH), its own
HOME/TMPDIR, and no network at all (``unshare -n``: no package index, nor
anything else, is reachable, as a CE without a NIC). Stand-ins exist only for
what the simulator cannot give, each in the guest's ``bin`` directory:

- ``vmware-rpctool``: open-vm-tools' ``info-get guestinfo.KEY`` (prints the
  value; ``No value found`` and status 1 when unset) and
  ``info-set guestinfo.KEY VALUE``, backed by the VM's extraConfig through the
  vSphere API (over a Unix socket to this process: the guest has no network,
  as the real tool talks to the VMX, not to vCenter);
- ``systemctl poweroff``: powers the VM off through the API;
- ``mount -o ro DEV DIR`` / ``umount DIR``: presents the ISO 9660 image behind
  ``/dev/sr0`` (the CD-ROM's ISO file in the datastore directory) as its Rock
  Ridge files, read-only; ``umount`` takes them away again;
- ``lsblk -dno NAME,HCTL,TYPE``: the VM's SCSI disks by unit (HCTL ``0:0:UNIT:0``)
  and the CD-ROM, with ``ROOT/dev/sdX`` linked to each disk's flat file
  (vcsim datastores are local directories) and ``ROOT/dev/sr0`` to the ISO.

The machine's console: the unit sends the boot service's output to the journal and the console
(``StandardOutput=journal+console``, the template's kernel on ``console=ttyS0``), so when the VM has a serial
port backed by a datastore file (boot diagnostics), that output is appended to the file, as the VMX does.

The script runs with ``IMAGEPORT_CE_ROOT`` naming that scratch root. If the VM
is powered off or destroyed while it runs, the script and the agent are
killed, as they would die with their VM.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from pyVmomi import vim

from imageport.engine.vsphere import JOB_KEY
from imageport.platforms.vsphere import ce_host
from imageport.platforms.vsphere.inventory import find_vm, retrieve, split_datastore_path
from imageport.platforms.vsphere.waiting import wait_for_task
from tests.infra.ce_sandbox import Sandbox

RECIPE = Path(__file__).resolve().parents[2] / "scripts/build-vsphere-ce-template.sh"
UNIT = "etc/systemd/system/imageport-ce.service"
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, the only one python3-guestfs is built for
PYENV = Path.home() / ".pyenv/versions"

_CLIENT = """#!{python} -I
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect({sock!r})
s.sendall(json.dumps({{"tool": {tool!r}, "args": sys.argv[1:]}}).encode() + b"\\n")
reply = json.loads(s.makefile().readline())
sys.stdout.write(reply.get("out", ""))
sys.stderr.write(reply.get("err", ""))
sys.exit(reply["status"])
"""

_MOUNT = """#!{python} -I
# mount -o ro DEV DIR: the ISO 9660 image behind DEV, as its Rock Ridge files, read-only.
import os, sys, pycdlib
dev, target = [a for a in sys.argv[1:] if not a.startswith("-") and a != "ro"][-2:]
iso = pycdlib.PyCdlib()
iso.open(os.path.realpath(dev))
for parent, _dirs, files in iso.walk(rr_path="/"):
    os.makedirs(target + parent, exist_ok=True)
    for name in files:
        out = os.path.join(target + parent, name)
        iso.get_file_from_iso(out, rr_path=os.path.join(parent, name))
        os.chmod(out, 0o444)
iso.close()
"""

_UMOUNT = """#!/bin/sh
# umount DIR: what the CD showed is gone again.
find "$1" -mindepth 1 -delete
"""


def template_boot_command(template: Path) -> list[str]:
    """Lay the template out with the recipe (files only) and return its unit's ExecStart, under ``template``."""
    subprocess.run(["sh", str(RECIPE), "--root", str(template), "--no-packages"], check=True, capture_output=True)
    (line,) = [ln for ln in (template / UNIT).read_text().splitlines() if ln.startswith("ExecStart=")]
    command = line.removeprefix("ExecStart=").split()
    return [
        command[0].rsplit("/", 1)[1],
        *(str(template) + arg if arg.startswith("/usr/") else arg for arg in command[1:]),
    ]


def interpreter(version: str) -> str:
    """A stock interpreter: ``system`` (Debian's /usr/bin/python3) or a pyenv build such as ``3.10.13``."""
    return SYSTEM_PYTHON if version == "system" else str(PYENV / version / "bin/python3")


def _copy_console(stream: Any, console: Path | None) -> None:
    """Drain one output stream of the boot service; with a serial port, append it to the port's file."""
    lock = _CONSOLE_LOCK
    for line in iter(stream.readline, b""):
        if console is not None:
            with lock, open(console, "ab") as f:
                f.write(line)


_CONSOLE_LOCK = threading.Lock()


class _Vmx(socketserver.ThreadingUnixStreamServer):
    """What the guest tools reach: guestinfo and power, for one VM, through the vSphere API."""

    daemon_threads = True

    def __init__(self, path: str, guest: GuestStandIn, vm: Any) -> None:
        self.guest, self.vm = guest, vm
        super().__init__(path, _Request)


class _Request(socketserver.StreamRequestHandler):
    server: _Vmx

    def handle(self) -> None:
        request = json.loads(self.rfile.readline())
        try:
            reply = self.server.guest.tool(self.server.vm, request["tool"], request["args"])
        except Exception as exc:  # the tool reports it, as a failing RPC would
            reply = {"status": 1, "err": f"{type(exc).__name__}: {exc}\n"}
        self.wfile.write(json.dumps(reply).encode() + b"\n")


class GuestStandIn:
    def __init__(self, session: Any, python: str = "system") -> None:
        self.session = session
        self.si = session.si or session.connect()
        self.python = interpreter(python)
        self.lock = threading.Lock()  # one vSphere call at a time on this session
        self.handled: set[str] = set()
        self.stopped = threading.Event()
        self.agents: list[subprocess.Popen[bytes]] = []  # the boot scripts run (the agent is their child)
        self.roots: list[Path] = [Path(tempfile.mkdtemp(prefix="vcsim-template-"))]
        self.boot_command = template_boot_command(self.roots[0])  # what the template's unit starts
        self.rpc_log: list[tuple[str, list[str]]] = []  # every guest tool call, for the tests
        self.sandbox = Sandbox()  # the clean machine the ARM stand-in's run-command uses too
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def use(self, python: str) -> None:
        """Boot the next helper VMs with this stock interpreter as python3 (``system`` or a pyenv version)."""
        self.python = interpreter(python)

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(10)
        self.sandbox.close()
        for root in self.roots:
            shutil.rmtree(root, ignore_errors=True)

    def _call(self, action: Any) -> Any:
        with self.lock:
            return action()

    def _datastore_dirs(self) -> dict[str, str]:
        return {p["name"]: p["info.url"] for _, p in retrieve(self.si, None, ["name", "info.url"], vim.Datastore)}

    def _local(self, datastore_path: str, dirs: dict[str, str]) -> Path:
        datastore, path = split_datastore_path(datastore_path)
        return Path(dirs[datastore]) / path

    def _watch(self) -> None:
        while not self.stopped.wait(0.3):
            try:
                for ce in self._call(lambda: ce_host.list_ce_vms(self.session)):
                    if ce.moref in self.handled:
                        continue
                    vm = self._call(lambda ce=ce: find_vm(self.si, ce.moref))
                    ((_, props),) = self._call(
                        lambda vm=vm: retrieve(self.si, [vm], ["config.extraConfig", "runtime.powerState"])
                    )
                    extra = {o.key: o.value for o in props.get("config.extraConfig") or []}
                    if str(props.get("runtime.powerState")) == "poweredOn" and extra.get(JOB_KEY):
                        self.handled.add(ce.moref)
                        threading.Thread(target=self._boot, args=(vm,), daemon=True).start()
            except Exception:  # a VM vanishing between two calls: look again next round
                continue

    # --- the machine ---------------------------------------------------------------------

    def _machine(self, vm: Any) -> Path:
        """The guest's scratch root: dev links, the stand-in tools, a stock python3, HOME and TMPDIR."""
        root = Path(tempfile.mkdtemp(prefix="vcsim-guest-"))
        self.roots.append(root)
        for d in ("dev", "bin", "tmp", "home", "run"):
            (root / d).mkdir()
        dirs = self._call(self._datastore_dirs)
        ((_, props),) = self._call(lambda: retrieve(self.si, [vm], ["config.hardware.device"]))
        rows = []
        devices = list(props.get("config.hardware.device") or [])
        disks = sorted((d for d in devices if isinstance(d, vim.vm.device.VirtualDisk)), key=lambda d: d.unitNumber)
        for n, device in enumerate(disks):
            local = self._local(device.backing.fileName, dirs)
            flat = local.with_name(local.stem + "-flat.vmdk")
            name = "sd" + "abcdefghijklmnop"[n]
            (root / "dev" / name).symlink_to(flat if flat.exists() else local)
            rows.append(f"{name} 0:0:{device.unitNumber}:0 disk")
        for device in devices:
            if isinstance(device, vim.vm.device.VirtualCdrom) and isinstance(
                device.backing, vim.vm.device.VirtualCdrom.IsoBackingInfo
            ):
                (root / "dev" / "sr0").symlink_to(self._local(device.backing.fileName, dirs))
                rows.append("sr0 1:0:0:0 rom")
        sock = str(root / "vmx.sock")
        tools = {
            "vmware-rpctool": _CLIENT.format(python=sys.executable, sock=sock, tool="vmware-rpctool"),
            "systemctl": _CLIENT.format(python=sys.executable, sock=sock, tool="systemctl"),
            "mount": _MOUNT.format(python=sys.executable),
            "umount": _UMOUNT,
            "lsblk": "#!/bin/sh\ncat <<'EOF'\n" + "\n".join(rows) + "\nEOF\n",
        }
        for name, text in tools.items():
            (root / "bin" / name).write_text(text)
            (root / "bin" / name).chmod(0o755)
        (root / "bin" / "python3").symlink_to(self.python)
        return root

    def _boot(self, vm: Any) -> None:
        root = self._machine(vm)
        vmx = _Vmx(str(root / "vmx.sock"), self, vm)
        threading.Thread(target=vmx.serve_forever, daemon=True).start()
        env = {"HOME": str(root / "home"), "TMPDIR": str(root / "tmp"), "IMAGEPORT_CE_ROOT": str(root)}
        # No port forwarded: the helper VM has no NIC, so nothing at all is reachable from inside.
        script = self.sandbox.popen(shlex.join(["exec", *self.boot_command]), root / "bin", env, root)
        self.agents.append(script)
        console = self._console(vm)
        for stream in (script.stdout, script.stderr):  # the unit's output goes to the journal and the console
            threading.Thread(target=_copy_console, args=(stream, console), daemon=True).start()
        try:
            while script.poll() is None:
                time.sleep(0.5)
                try:
                    ((_, state),) = self._call(lambda: retrieve(self.si, [vm], ["runtime.powerState"]))
                    alive = str(state.get("runtime.powerState")) == "poweredOn"
                except Exception:
                    alive = False
                if not alive:  # the VM was powered off or destroyed under the script
                    os.killpg(script.pid, signal.SIGKILL)
                    script.wait()
        finally:
            vmx.shutdown()
            vmx.server_close()

    def _console(self, vm: Any) -> Path | None:
        """The local file behind the VM's serial port, if it has one backed by a datastore file (its console)."""
        ((_, props),) = self._call(lambda: retrieve(self.si, [vm], ["config.hardware.device"]))
        for device in props.get("config.hardware.device") or []:
            if isinstance(device, vim.vm.device.VirtualSerialPort) and isinstance(
                device.backing, vim.vm.device.VirtualSerialPort.FileBackingInfo
            ):
                return self._local(device.backing.fileName, self._call(self._datastore_dirs))
        return None

    # --- the guest tools' backend -----------------------------------------------------------

    def tool(self, vm: Any, tool: str, args: list[str]) -> dict[str, Any]:
        self.rpc_log.append((tool, args))
        if tool == "systemctl":
            if args != ["poweroff"]:
                return {"status": 1, "err": f"systemctl stand-in: only 'poweroff', not {args}\n"}
            self._call(lambda: wait_for_task(self.si, vm.PowerOffVM_Task(), "power off"))
            return {"status": 0}
        command = " ".join(args)
        verb, _, rest = command.partition(" ")
        if verb == "info-get":
            key = rest.strip()
            if not key.startswith("guestinfo."):
                return {"status": 1, "err": "Permission denied\n"}
            ((_, props),) = self._call(lambda: retrieve(self.si, [vm], ["config.extraConfig"]))
            values = [o.value for o in props.get("config.extraConfig") or [] if o.key == key and o.value]
            if not values:
                return {"status": 1, "err": "No value found\n"}
            return {"status": 0, "out": f"{values[-1]}\n"}
        if verb == "info-set":
            key, _, value = rest.partition(" ")
            if not key.startswith("guestinfo."):
                return {"status": 1, "err": "Permission denied\n"}
            spec = vim.vm.ConfigSpec(extraConfig=[vim.option.OptionValue(key=key, value=value)])
            self._call(lambda: wait_for_task(self.si, vm.ReconfigVM_Task(spec=spec), "set guestinfo"))
            return {"status": 0}
        return {"status": 1, "err": f"Unknown command: {verb}\n"}
