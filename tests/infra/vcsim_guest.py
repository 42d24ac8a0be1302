"""The guest side of a vSphere compositing engine, for the simulator (which runs no guest code without Docker).

It does what the CE template's boot service (imageport/engine/ce_boot/imageport-ce.sh)
does inside a real helper VM, through the same vSphere API the orchestrator uses:
when a marked helper VM is powered on with ``guestinfo.imageport.job`` set, it
links each attached disk's local flat file (vcsim datastores are local
directories) as ``lunN`` by SCSI unit, runs the real agent, writes the
compressed result to ``guestinfo.imageport.result`` and powers the VM off. If
the VM is powered off or destroyed meanwhile, the agent is killed, as it would
die with its VM.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from pyVmomi import vim

from imageport.engine.vsphere import JOB_KEY, RESULT_KEY
from imageport.platforms.vsphere import ce_host
from imageport.platforms.vsphere.inventory import find_vm, retrieve, split_datastore_path
from imageport.platforms.vsphere.waiting import wait_for_task


class GuestStandIn:
    def __init__(self, session: Any) -> None:
        self.session = session
        self.si = session.si or session.connect()
        self.handled: set[str] = set()
        self.stopped = threading.Event()
        self.agents: list[subprocess.Popen[bytes]] = []
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(10)

    def _datastore_dirs(self) -> dict[str, str]:
        return {p["name"]: p["info.url"] for _, p in retrieve(self.si, None, ["name", "info.url"], vim.Datastore)}

    def _watch(self) -> None:
        while not self.stopped.wait(0.3):
            try:
                for ce in ce_host.list_ce_vms(self.session):
                    if ce.moref in self.handled:
                        continue
                    ((vm, props),) = retrieve(self.si, [find_vm(self.si, ce.moref)],
                                              ["config.extraConfig", "runtime.powerState"])  # fmt: skip
                    extra = {o.key: o.value for o in props.get("config.extraConfig") or []}
                    if str(props.get("runtime.powerState")) == "poweredOn" and extra.get(JOB_KEY):
                        self.handled.add(ce.moref)
                        threading.Thread(target=self._boot, args=(vm, extra[JOB_KEY]), daemon=True).start()
            except Exception:  # a VM vanishing between two calls: look again next round
                continue

    def _boot(self, vm: Any, job: str) -> None:
        work = Path(tempfile.mkdtemp(prefix="vcsim-guest-"))
        luns = work / "luns"
        luns.mkdir()
        dirs = self._datastore_dirs()
        ((_, props),) = retrieve(self.si, [vm], ["config.hardware.device"])
        for device in props.get("config.hardware.device") or []:
            if isinstance(device, vim.vm.device.VirtualDisk):
                datastore, path = split_datastore_path(device.backing.fileName)
                local = Path(dirs[datastore]) / path
                flat = local.with_name(local.stem + "-flat.vmdk")
                (luns / f"lun{device.unitNumber}").symlink_to(flat if flat.exists() else local)
        (work / "job.json").write_bytes(base64.b64decode(job))
        env = {**os.environ, "IMAGEPORT_DEVICE_ROOT": str(luns), "IMAGEPORT_RESULT_ENCODING": "zlib"}
        agent = subprocess.Popen([sys.executable, "-m", "imageport.engine.agent", str(work / "job.json")],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
                                 start_new_session=True)  # fmt: skip
        self.agents.append(agent)
        while agent.poll() is None:
            time.sleep(0.5)
            try:
                ((_, state),) = retrieve(self.si, [vm], ["runtime.powerState"])
                alive = str(state.get("runtime.powerState")) == "poweredOn"
            except Exception:
                alive = False
            if not alive:  # the VM was powered off or destroyed under the agent
                os.killpg(agent.pid, signal.SIGKILL)
                agent.wait()
                return
        assert agent.stdout is not None
        lines = agent.stdout.read().decode(errors="replace").strip().splitlines()
        if lines and lines[-1].startswith("IMAGEPORT-RESULT"):
            spec = vim.vm.ConfigSpec(extraConfig=[vim.option.OptionValue(key=RESULT_KEY, value=lines[-1])])
            wait_for_task(self.si, vm.ReconfigVM_Task(spec=spec), "set the result")
        wait_for_task(self.si, vm.PowerOffVM_Task(), "power off")
