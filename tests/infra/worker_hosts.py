"""Worker "hosts": each a network namespace of its own, joined to this machine by a veth pair, as another
machine on the network would be.

A host gets ``ip netns add``, a veth pair (``GATEWAY/30`` on this side, ``ADDRESS/30`` inside), its own
``PREFECT_HOME`` and working directory. What it reaches goes over the veth: the Prefect server at
``http://GATEWAY:PORT/api`` (the "prefect-host" of docs/operations.md), and each test service at the same
``127.0.0.1:PORT`` the connectors name -- a relay inside the namespace forwards those ports across the veth
to a relay on this side bound to the gateway address, which forwards to the service's loopback port
(tests/infra/tcp_relay.py). Nothing listens on an address outside this machine's loopback and these veths.

Everything a host started is stopped on ``close()`` (also when setting up failed halfway): the processes
inside its namespace (``ip netns pids``: exactly ours), its relays, then the namespace and the veth.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.infra.services import REPO, ServiceUnavailable, _tail

# 10.231.0.0/16 cut into /30s: the gateway is .1 of a block, the host .2. A block in use on this machine (another
# session's host) is skipped.
SUBNET = ipaddress.ip_network("10.231.0.0/16")


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise ServiceUnavailable(f"ip {' '.join(args)}: {done.stderr.strip()}")


def _used_addresses() -> set[ipaddress.IPv4Address]:
    out = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, check=True).stdout
    return {ipaddress.ip_interface(line.split()[3]).ip for line in out.splitlines()}


def _free_block(index: int) -> ipaddress.IPv4Network:
    used = _used_addresses()
    blocks = list(SUBNET.subnets(new_prefix=30))
    start = (os.getpid() * 8 + index * 2) % len(blocks)
    for i in range(len(blocks)):
        block = blocks[(start + i) % len(blocks)]
        if not used & set(block):
            return block
    raise ServiceUnavailable(f"no free /30 left in {SUBNET}")




@dataclass
class WorkerHost:
    """One worker machine: ``run``/``popen`` start commands inside its namespace, with its own home and cwd."""

    name: str
    root: Path
    netns: str
    veth: str
    gateway: str
    address: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def home(self) -> Path:
        return self.root / "prefect-home"

    @property
    def workdir(self) -> Path:
        return self.root / "work"

    def env(self, api_port: int, **extra: str) -> dict[str, str]:
        """The environment of a process on this host: the server at the gateway, this host's own PREFECT_HOME."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "PYTEST_"))}
        return {**env, "PREFECT_HOME": str(self.home), "PREFECT_API_URL": f"http://{self.gateway}:{api_port}/api",
                "DO_NOT_TRACK": "1", "PATH": f"{REPO / '.venv/bin'}:{os.environ['PATH']}", **extra}  # fmt: skip

    def popen(self, command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        with open(log, "ab") as out:
            proc = subprocess.Popen(["ip", "netns", "exec", self.netns, *command], cwd=self.workdir, env=env,
                                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)  # fmt: skip
        self.processes.append(proc)
        return proc

    def run(self, command: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", self.netns, *command], cwd=self.workdir, env=env,
                              capture_output=True, text=True, timeout=timeout)  # fmt: skip

    def open(self, ports: list[int], api_port: int) -> None:
        """Bring the namespace up and relay the services' ports (and the server's, on the gateway) through it."""
        self.home.mkdir(parents=True)
        self.workdir.mkdir(parents=True)
        peer = f"{self.veth}p"
        _ip("netns", "add", self.netns)
        _ip("link", "add", self.veth, "type", "veth", "peer", "name", peer, "netns", self.netns)
        _ip("addr", "add", f"{self.gateway}/30", "dev", self.veth)
        _ip("link", "set", self.veth, "up")
        _ip("-n", self.netns, "addr", "add", f"{self.address}/30", "dev", peer)
        _ip("-n", self.netns, "link", "set", peer, "up")
        _ip("-n", self.netns, "link", "set", "lo", "up")
        log = self.root / "relays.log"
        outside = [f"{self.gateway}:{p}=127.0.0.1:{p}" for p in [api_port, *ports]]
        inside = [f"127.0.0.1:{p}={self.gateway}:{p}" for p in ports]
        self.processes.append(_relay_with(outside, [], log))
        self.processes.append(_relay_with(inside, ["ip", "netns", "exec", self.netns], log))

    def stop_processes(self) -> None:
        """Everything running in the namespace (workers, their flow runs, the relay), then the host-side relay."""
        pids = subprocess.run(["ip", "netns", "pids", self.netns], capture_output=True, text=True).stdout.split()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for proc in self.processes:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, sig)
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), sig)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and any(p.poll() is None for p in self.processes):
                time.sleep(0.1)
        for proc in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        self.processes.clear()

    def close(self) -> None:
        self.stop_processes()
        subprocess.run(["ip", "netns", "del", self.netns], capture_output=True)  # takes the veth's inner end
        subprocess.run(["ip", "link", "del", self.veth], capture_output=True)  # gone with it, unless setup broke


def _relay_with(pairs: list[str], prefix: list[str], log: Path) -> subprocess.Popen[bytes]:
    out = open(log, "ab")  # noqa: SIM115 -- the relay keeps writing to it
    proc = subprocess.Popen([*prefix, sys.executable, "-m", "tests.infra.tcp_relay", *pairs], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=out, stdin=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    out.close()
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != b"ready":
        proc.kill()
        proc.wait()
        raise ServiceUnavailable(f"a relay did not start: {' '.join(pairs)}; see {log}:\n{_tail(log)}")
    return proc


@contextlib.contextmanager
def worker_hosts(count: int, root: Path, *, api_port: int, ports: list[int]) -> Iterator[list[WorkerHost]]:
    """``count`` hosts (``host-a``, ``host-b``, ...) reaching the server on ``api_port`` and the services on
    ``ports``; all of it removed afterwards, also on failure."""
    hosts: list[WorkerHost] = []
    try:
        for i in range(count):
            block = _free_block(i)
            letter = "abcdefgh"[i]
            tag = f"{os.getpid() % 100000}{letter}"
            host = WorkerHost(name=f"host-{letter}", root=root / f"host-{letter}", netns=f"imageport-{tag}",
                              veth=f"ipw{tag}", gateway=str(block[1]), address=str(block[2]))  # fmt: skip
            hosts.append(host)
            host.open(ports, api_port)
        yield hosts
    finally:
        for host in hosts:
            host.close()
