"""A Prefect server, the ``imageport`` process work pool with deployments from prefect.yaml, and workers.

Plain local processes, as docs/operations.md's "Several machines" has them: ``prefect server start``
on a free 127.0.0.1 port (SQLite under its own ``PREFECT_HOME``), ``prefect work-pool create`` and
``prefect deploy`` from ``deployments/prefect.yaml`` run from the checkout, and ``prefect worker
start`` processes, each with its own ``PREFECT_HOME`` and working directory (another machine's).
What the machines share is passed in ``env`` (result storage, upload checkpoints).

Every process starts in a session of its own, so stopping one (``stop``, or ``kill_tree`` for a lost
machine: SIGKILL to it and every descendant, found through /proc from its PID -- never by name) never
signals the test runner or a colleague's process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.infra.services import ServiceUnavailable, free_port, wait_for_port

REPO = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).with_name("prefect"))
POOL = "imageport"


@dataclass
class Proc:
    """One process this module started, with its log."""

    proc: subprocess.Popen
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # its own session: the group is it and its children
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                kill_tree(self.proc.pid)
                self.proc.wait()


def _spawn(cmd: list[str], log: Path, env: dict[str, str], cwd: Path) -> Proc:
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                cwd=cwd, start_new_session=True)  # fmt: skip
    return Proc(proc, log)


def base_env(home: Path, api_url: str | None = None, **extra: str) -> dict[str, str]:
    """The environment of one "machine": its own PREFECT_HOME, the server's API, no analytics."""
    env = dict(os.environ, PREFECT_HOME=str(home), DO_NOT_TRACK="1", PREFECT_SERVER_ANALYTICS_ENABLED="false")
    env.pop("PREFECT_API_KEY", None)
    if api_url is not None:
        env["PREFECT_API_URL"] = api_url
    else:
        env.pop("PREFECT_API_URL", None)
    env.update(extra)
    return env


def start_server(root: Path, timeout: float = 120) -> tuple[Proc, str]:
    """``prefect server start`` on SQLite under ``root``; the process and its API URL, once healthy."""
    root = root.resolve()  # the server runs from root: a relative database path would not be found
    home = root / "server-home"
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = base_env(
        home,
        PREFECT_API_DATABASE_CONNECTION_URL=f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        PREFECT_UI_ENABLED="false",
    )
    server = _spawn([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)], root / "server.log",
                    env, root)  # fmt: skip
    url = f"http://127.0.0.1:{port}/api"
    try:
        wait_for_port(port, server.proc, server.log, timeout=timeout)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                    return server, url
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.proc.poll() is not None:
                raise ServiceUnavailable(f"the Prefect server did not answer /health; see {server.log}")
            time.sleep(0.5)
    except BaseException:
        server.stop()
        raise


def deploy(api_url: str, names: list[str], root: Path) -> None:
    """The process pool and the named deployments of prefect.yaml, as docs/operations.md says (from the checkout)."""
    # prefect.yaml's pull step names "{{ $PWD }}": the checkout, whatever directory the caller is in.
    env = base_env(root / "deployer-home", api_url, PWD=str(REPO))
    (root / "deployer-home").mkdir(parents=True, exist_ok=True)
    commands = [[PREFECT, "work-pool", "create", POOL, "--type", "process", "--overwrite"],
                [PREFECT, "--no-prompt", "deploy", "--prefect-file", "deployments/prefect.yaml",
                 *(arg for name in names for arg in ("--name", name))]]  # fmt: skip
    for command in commands:
        done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command[1:4])} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")


def start_worker(name: str, root: Path, api_url: str, env: dict[str, str] | None = None,
                 limit: int | None = None) -> Proc:  # fmt: skip
    """``prefect worker start`` on the pool from ``root`` (its working directory), with a PREFECT_HOME of its own;
    ``limit``: at most that many runs at once (``--limit``, as docs/operations.md starts workers)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "home").mkdir(exist_ok=True)
    # Polled every second (Prefect's default is 10 s): the test's runs start without waiting for the next poll.
    worker_env = base_env(root / "home", api_url, PREFECT_WORKER_QUERY_SECONDS="1", **(env or {}))
    command = [PREFECT, "worker", "start", "--pool", POOL, "--name", name, *(["--limit", str(limit)] if limit else [])]
    return _spawn(command, root / "worker.log", worker_env, root)


@contextmanager
def workers(names: list[str], root: Path, api_url: str, env: dict[str, str] | None = None,
            limit: int | None = None) -> Iterator[dict[str, Proc]]:  # fmt: skip
    """Workers by name, each under ``root/NAME``; stopped (those still alive) on the way out."""
    started: dict[str, Proc] = {}
    try:
        for name in names:
            started[name] = start_worker(name, root / name, api_url, env, limit)
        yield started
    finally:
        for proc in started.values():
            proc.stop()


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (children first found through /proc's parent links)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # the command name may hold spaces and parentheses
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and its descendants now (what one machine's worker holds)."""
    total = 0
    for member in [pid, *descendants(pid)]:
        try:
            status = Path(f"/proc/{member}/status").read_text()
        except OSError:
            continue
        total += next((int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return total


def kill_tree(pid: int) -> list[int]:
    """SIGKILL ``pid`` and every descendant at once (a machine lost: nothing gets to clean up); the PIDs killed.

    The tree is stopped first (SIGSTOP) so no process can fork a child that escapes the kill."""
    tree = [pid, *descendants(pid)]
    for member in tree:
        _signal(member, signal.SIGSTOP)
    tree = [pid, *descendants(pid)]  # what forked before it stopped
    for member in tree:
        _signal(member, signal.SIGKILL)
    return tree


def _signal(pid: int, sig: signal.Signals) -> None:
    with suppress(ProcessLookupError):  # ended meanwhile
        os.kill(pid, sig)
