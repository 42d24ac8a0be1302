"""Windows VMs of the ARM stand-in: a VM that boots an attached managed disk (``osDisk.createOption: Attach``).

Azure's contract for such a VM (Virtual Machines - Create Or Update; Run Command): the OS disk is an existing,
unattached managed disk named by ``managedDisk.id``, with its ``osType``; there is no ``imageReference`` and no
``osProfile`` (the guest is what the disk holds); ``deleteOption`` ``Detach`` (the default) leaves the disk when
the VM goes. The VM boots as it is created. ``runCommand`` on a Windows VM takes ``RunPowerShellScript`` (not
``RunShellScript``) and answers two statuses, ``ComponentStatus/StdOut/succeeded`` and
``ComponentStatus/StdErr/succeeded``, each message the last 4096 bytes of that stream; it waits for the VM
agent, i.e. until the guest has booted. ``deallocate`` (POST, long-running) shuts the guest down; a deallocated
VM runs no command (409 ``OperationNotAllowed``).

The guest is played by ``tests/infra/windows_guest.py``: at boot, the disk (its page blob) is materialized,
the image's startup script "runs" (the actions staged on the disk are read from it, and firstboot.log and its
closing line written into it), and the changed pages go back to the blob. PowerShell is not run: a script's
lines may only be ``Get-Content -LiteralPath 'C:\\...' [-Raw] [-ErrorAction SilentlyContinue]``, answered from
the running guest's disk; any other line fails as PowerShell fails a command it does not know (on StdErr).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

from tests.infra import windows_guest

OUTPUT_LIMIT = 4096
GET_CONTENT = re.compile(
    r"^Get-Content\s+-LiteralPath\s+'([^']+)'((?:\s+-Raw|\s+-ErrorAction\s+(?:SilentlyContinue|Stop|Continue))*)\s*$",
    re.IGNORECASE,
)


class WindowsGuest:
    """One running Windows VM's guest: its disk (materialized), its boot, its answers to run-command."""

    def __init__(self, host: Any, key: str, os_disk: str) -> None:
        self.host, self.key, self.os_disk = host, key, os_disk
        self.root = Path(tempfile.mkdtemp(prefix="arm-windows-"))
        self.disk = self.root / "os.img"
        self.booted = threading.Event()
        self.running = True
        self.ran: list[str] = []  # the startup actions its first boot ran
        threading.Thread(target=self._boot, daemon=True).start()

    def _boot(self) -> None:
        try:
            before = self.host._materialize(self.os_disk, self.disk)
            self.ran = windows_guest.first_boot(self.disk, self.root / "boot", self.host.exit_codes)
            if self.running:  # a VM deleted while it booted writes nothing back (its disk went with the power)
                self.host._write_back(self.os_disk, self.disk, before)
        except (OSError, subprocess.CalledProcessError):
            if self.running:
                raise
        finally:
            self.booted.set()

    def run_powershell(self, script: str) -> dict[str, Any]:
        """The run-command result of ``script``, once the guest is up."""
        self.booted.wait(600)
        out, err = [], []
        for line in (raw.strip() for raw in script.splitlines()):
            if not line:
                continue
            m = GET_CONTENT.match(line)
            if m is None:
                err.append(f"{line.split()[0]} : The term '{line.split()[0]}' is not recognized as the name of a "
                           "cmdlet, function, script file, or operable program.")  # fmt: skip
                continue
            data = windows_guest.read_file(self.disk, windows_guest.windows_path(m.group(1)), self.root / "read")
            if data is not None:
                out.append(data.decode("utf-8", errors="replace"))
            elif "silentlycontinue" not in m.group(2).lower():
                err.append(f"Get-Content : Cannot find path '{m.group(1)}' because it does not exist.")
        stdout, stderr = "".join(out)[-OUTPUT_LIMIT:], "\n".join(err)[-OUTPUT_LIMIT:]
        return {"value": [
            {"code": "ComponentStatus/StdOut/succeeded", "level": "Info", "displayStatus": "Provisioning succeeded",
             "message": stdout},
            {"code": "ComponentStatus/StdErr/succeeded", "level": "Info", "displayStatus": "Provisioning succeeded",
             "message": stderr},
        ]}  # fmt: skip

    def shut_down(self) -> None:
        self.booted.wait(600)
        self.running = False

    def discard(self) -> None:
        self.running = False
        shutil.rmtree(self.root, ignore_errors=True)
