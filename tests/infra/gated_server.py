"""``imageport server`` as an operator runs it: Prefect behind the gateway, with one user per role.

A subprocess of the real console script on a free 127.0.0.1 port, its own ``PREFECT_HOME`` (SQLite)
and users file under the test's directory; stopped by its own process group. ``served`` adds
``imageport serve`` running as the worker user, so runs started through the gateway really run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from imageport.access import users
from imageport.access.roles import Role
from tests.infra.services import free_port

NAMES = {Role.ADMINISTRATOR: "ada", Role.PORTER: "pat", Role.WORKER: "wes"}


@dataclass
class GatedServer:
    url: str
    root: Path
    log: Path
    imageport: str
    passwords: dict[Role, str] = field(default_factory=dict)

    @property
    def api(self) -> str:
        return f"{self.url}/api"

    def auth_string(self, role: Role) -> str:
        return f"{NAMES[role]}:{self.passwords[role]}"

    def env(self, role: Role | None, home: Path) -> dict[str, str]:
        """Environment of a CLI or worker process as ROLE (None: no credential at all)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "PREFECT_UI"))}
        env.update(PREFECT_API_URL=self.api, PREFECT_HOME=str(home))
        if role is not None:
            env["PREFECT_API_AUTH_STRING"] = self.auth_string(role)
        return env

    def call(self, role: Role | None, method: str, path: str, **kwargs: Any) -> httpx.Response:
        auth = (NAMES[role], self.passwords[role]) if role is not None else None
        for attempt in range(6):  # the server's SQLite busy (503): retried, as Prefect's client does
            response = httpx.request(method, f"{self.api}{path}", auth=auth, timeout=60, **kwargs)
            if response.status_code != 503:
                return response
            time.sleep(2**attempt)
        return response


def _wait_healthy(url: str, process: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/api/health", timeout=5).status_code == 200:
                return
        assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(1)


@contextmanager
def gated_server(root: Path, imageport_bin: str) -> Iterator[GatedServer]:
    root.mkdir(parents=True, exist_ok=True)
    users_file = root / "users.json"
    server = GatedServer(f"http://127.0.0.1:{free_port()}", root, root / "server.log", imageport_bin)
    for role, name in NAMES.items():
        server.passwords[role] = f"pw-{uuid.uuid4().hex[:12]}"
        users.add(users_file, name, role, server.passwords[role])
    port = server.url.rsplit(":", 1)[1]
    env = server.env(None, root / "server-home")
    with open(server.log, "wb") as log:
        process = subprocess.Popen([imageport_bin, "server", "--port", port, "--file", str(users_file)], env=env,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        try:
            _wait_healthy(server.url, process, server.log)
            yield server
        finally:
            with contextlib.suppress(ProcessLookupError):  # it may have died: the assertion above says why
                os.killpg(process.pid, signal.SIGTERM)
            process.wait(60)


@contextmanager
def served(server: GatedServer, imageport_bin: str, deployment: str) -> Iterator[subprocess.Popen]:
    """``imageport serve`` as the worker user, until DEPLOYMENT (``flow/name``) is registered."""
    env = {**server.env(Role.WORKER, server.root / "worker-home"), "PREFECT_RUNNER_POLL_FREQUENCY": "2"}
    log_path = server.root / "serve.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([imageport_bin, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # fmt: skip
        try:
            deadline = time.monotonic() + 180
            while server.call(Role.PORTER, "GET", f"/deployments/name/{deployment}").status_code != 200:
                assert process.poll() is None, log_path.read_text()[-3000:]
                assert time.monotonic() < deadline, log_path.read_text()[-3000:]
                time.sleep(1)
            yield process
        finally:
            with contextlib.suppress(ProcessLookupError):  # it may have died: the assertion above says why
                os.killpg(process.pid, signal.SIGTERM)
            process.wait(60)
