"""Real services for tests and benchmarks, each on a free 127.0.0.1 port.

Every service is a child process we started, with its state under
``.cache/test-run/<name>`` and its log beside it; ``stop()`` kills exactly
that PID. A missing tool is an error that names the make target installing
it -- never a skip: a suite that skips a missing service proves nothing.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache"
RUN_DIR = CACHE / "test-run"

SMB_USER = "imgtest"
SMB_PASSWORD = "Test-Pass-123"
VCSIM_USER = "user"
VCSIM_PASSWORD = "pass"
# The public, documented Azurite development account (not a secret).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


class ServiceUnavailable(RuntimeError):
    """A service could not be installed or started: the test run must fail, loudly."""


def require_tool(path_or_name: str, make_target: str) -> str:
    found = shutil.which(path_or_name) if os.sep not in path_or_name else path_or_name
    if not found or not os.access(found, os.X_OK):
        raise ServiceUnavailable(f"{path_or_name} is missing: run `make {make_target}` first")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServiceUnavailable(f"process exited with {proc.returncode}; see {log}:\n{_tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise ServiceUnavailable(f"nothing listening on 127.0.0.1:{port} after {timeout}s; see {log}")


def _tail(log: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@dataclass
class Service:
    name: str
    proc: subprocess.Popen
    port: int
    root: Path
    log: Path
    info: dict[str, str] = field(default_factory=dict)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _fresh_dir(name: str) -> Path:
    root = RUN_DIR / f"{name}-{os.getpid()}"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    return root


def _spawn(cmd: list[str], log: Path, **kwargs: object) -> subprocess.Popen:
    # Own session: smbd answers SIGTERM by signalling its whole process group,
    # which would otherwise include the test runner itself.
    with open(log, "wb") as out:
        return subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, **kwargs
        )


# --- Samba ------------------------------------------------------------------------


def start_samba() -> Service:
    """A private smbd on 127.0.0.1 with one share and one user (imgtest)."""
    smbd = require_tool("smbd", "test-deps")
    require_tool("smbpasswd", "test-deps")
    root = _fresh_dir("samba")
    for sub in ("private", "lock", "state", "cache", "pid", "log", "ncalrpc", "share"):
        (root / sub).mkdir()
    port = free_port()
    conf = root / "smb.conf"
    template = (REPO / "tests/infra/smb.conf.in").read_text()
    conf.write_text(template.replace("@ROOT@", str(root)).replace("@PORT@", str(port)).replace("@USER@", SMB_USER))
    try:
        user = pwd.getpwnam(SMB_USER)
    except KeyError:
        subprocess.run(["useradd", "-M", "-d", "/nonexistent", "-s", "/usr/sbin/nologin", SMB_USER], check=True)
        user = pwd.getpwnam(SMB_USER)
    os.chown(root / "share", user.pw_uid, user.pw_gid)
    subprocess.run(
        ["smbpasswd", "-c", str(conf), "-s", "-a", SMB_USER],
        input=f"{SMB_PASSWORD}\n{SMB_PASSWORD}\n",
        text=True,
        check=True,
        capture_output=True,
    )
    log = root / "log" / "smbd.out"
    proc = _spawn([smbd, "--foreground", "--no-process-group", "--debug-stdout", "-s", str(conf)], log)
    wait_for_port(port, proc, log)
    return Service(
        "samba",
        proc,
        port,
        root,
        log,
        {
            "server": "127.0.0.1",
            "share": "share",
            "username": SMB_USER,
            "password": SMB_PASSWORD,
            "conf": str(conf),
            "share_dir": str(root / "share"),
        },
    )


# --- Azurite ---------------------------------------------------------------------


def start_azurite(in_memory: bool = True) -> Service:
    """Azurite's blob service, in memory by default (restarted per run: it never gives memory back);
    ``in_memory=False`` keeps the data under its run folder instead (benchmarks with GiBs of pages)."""
    binary = require_tool(str(CACHE / "azurite/node_modules/.bin/azurite-blob"), "test-services")
    root = _fresh_dir("azurite")
    port = free_port()
    log = root / "azurite.log"
    storage = ["--inMemoryPersistence", "--extentMemoryLimit", "4096"] if in_memory else ["--location", str(root)]
    command = [binary, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--loose", "--skipApiVersionCheck"]
    proc = _spawn([*command, "--disableTelemetry", *storage, "--silent"], log, cwd=root)
    wait_for_port(port, proc, log)
    endpoint = f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"
    conn = (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};BlobEndpoint={endpoint};"
    )
    return Service("azurite", proc, port, root, log, {"endpoint": endpoint, "connection_string": conn})


# --- vCenter simulator ----------------------------------------------------------------


def start_vcsim() -> Service:
    """govmomi's vCenter simulator; it prints its SDK URL once it listens."""
    binary = require_tool(str(CACHE / "vcsim"), "test-services")
    root = _fresh_dir("vcsim")
    log = root / "vcsim.log"
    env = dict(os.environ, TMPDIR=str(root))  # its datastore directory lands here
    proc = _spawn([binary, "-l", "127.0.0.1:0", "-username", VCSIM_USER, "-password", VCSIM_PASSWORD], log, env=env)
    deadline = time.monotonic() + 30
    url = ""
    while time.monotonic() < deadline and not url:
        if proc.poll() is not None:
            raise ServiceUnavailable(f"vcsim exited with {proc.returncode}:\n{_tail(log)}")
        first = log.read_text().strip().splitlines()[:1]
        url = first[0] if first and first[0].startswith("https://") else ""
        time.sleep(0.05)
    if not url:
        raise ServiceUnavailable(f"vcsim printed no URL within 30s; see {log}")
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    return Service(
        "vcsim",
        proc,
        port,
        root,
        log,
        {"host": "127.0.0.1", "username": VCSIM_USER, "password": VCSIM_PASSWORD, "url": url},
    )
