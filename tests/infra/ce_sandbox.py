"""A clean machine for the ARM stand-in's run-command: what a fresh CE VM gives a script, and no more.

- Its own network namespace (``unshare``): loopback only, so no package index,
  no DNS, nothing on the host is reachable -- except the ports the stand-in
  forwards (Azurite's blob endpoint, a test's Samba share), relayed through
  unix sockets, which cross namespaces because they are files
  (tests/infra/netns_relay.py listens on the same 127.0.0.1 ports inside).
- An environment cleared the way a VM's is: PATH holds the VM's own bin
  directory (``python3`` -> the chosen stock interpreter, a ``cloud-init`` that
  reports how first boot went) and the system directories; no venv, no
  PYTHONPATH, no pip configuration, HOME=/root, a fresh working directory.
"""

from __future__ import annotations

import os
import shutil
import socket
import socketserver
import subprocess
import tempfile
import threading
from pathlib import Path

from tests.infra.netns_relay import pipe

RELAY = Path(__file__).with_name("netns_relay.py")
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
# Properties of the stand-in's "hardware", not of the script: no KVM here, and the appliance cache is shared.
MACHINE_ENV = ("LIBGUESTFS_BACKEND_SETTINGS", "LIBGUESTFS_CACHEDIR")


class _Forward(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str, port: int) -> None:
        self.port = port
        super().__init__(path, _ForwardHandler)


class _ForwardHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        assert isinstance(self.server, _Forward)
        upstream = socket.create_connection(("127.0.0.1", self.server.port))
        threading.Thread(target=pipe, args=(upstream, self.request), daemon=True).start()
        pipe(self.request, upstream)


class Sandbox:
    """Host side: unix sockets forwarding to the allowed host ports; ``popen`` starts a script inside."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="ce-sandbox-"))
        self.forwards: dict[int, _Forward] = {}

    def allow(self, port: int) -> None:
        if port in self.forwards:
            return
        server = _Forward(str(self.dir / f"{port}.sock"), port)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.forwards[port] = server

    def close(self) -> None:
        for server in self.forwards.values():
            server.shutdown()
            server.server_close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def popen(self, script: str, vm_bin: Path, extra_env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
        env = {
            "PATH": f"{vm_bin}:{SYSTEM_PATH}", "HOME": "/root", "LANG": "C.UTF-8", "SHELL": "/bin/sh",
            "USER": "root", "LOGNAME": "root",
            # This machine's /etc/pip.conf points at local wheel mirrors; a VM has no such configuration.
            "PIP_CONFIG_FILE": os.devnull,
            **{k: os.environ[k] for k in MACHINE_ENV if k in os.environ}, **extra_env,
        }  # fmt: skip
        unshare = ["unshare", "--net"] if os.geteuid() == 0 else ["unshare", "--net", "--map-root-user"]
        forwards = [f"{port}={self.dir / f'{port}.sock'}" for port in self.forwards]
        command = [*unshare, "/usr/bin/python3", "-I", "-S", str(RELAY), *forwards, "--", "/bin/bash", "-c", script]
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd,
                                start_new_session=True)  # fmt: skip
