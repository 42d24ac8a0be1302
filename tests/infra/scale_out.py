"""The scale-out topology of docs/operations.md, built from its own commands: PostgreSQL, the Prefect server
on it, the ``imageport`` process work pool with every deployment, a shared result-storage block, and process
workers on separate hosts (tests/infra/worker_hosts.py).

Each numbered step of the docs' "Several machines" section is run as written, its placeholders filled in
(``PLACEHOLDERS``): so the docs stay exactly what the test does. ``scale_out()`` yields a ``ScaleOut`` whose
``start_run`` starts a deployment run through the REST API (optionally pinned to one host's queue) and whose
``wait`` follows runs to their end; everything is stopped and removed afterwards, also on failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.infra.doc_commands import block_with
from tests.infra.postgres import DB_PASSWORD, start_postgres, start_prefect_server
from tests.infra.prefect_client import pointed_at
from tests.infra.services import REPO, Service, ServiceUnavailable, _tail
from tests.infra.worker_hosts import WorkerHost, worker_hosts

OPERATIONS = REPO / "docs/operations.md"
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
# The docs' placeholders (and what the test puts in their place).
DB, PASSWORD, SERVER, WORKER = "db-host:5432", "PASSWORD", "prefect-host:4200", "worker-a"
RESULTS, CHECKOUT = "/srv/imageport-results", "/opt/imageport"
WORKER_STEP = "worker start --pool imageport "  # the process workers' block (not the Kubernetes one)


def docs_step(needle: str, **fill: str) -> list[str]:
    """The command lines of the docs' ``sh`` block containing ``needle``, with placeholders replaced."""
    lines = block_with(OPERATIONS, needle)
    for placeholder, value in fill.items():
        lines = [line.replace(placeholder, value) for line in lines]
    return lines


def script(lines: list[str]) -> str:
    """A bash script of ``lines`` whose last command replaces the shell (so a signal reaches it)."""
    return "set -e\n" + "\n".join([*lines[:-1], f"exec {lines[-1]}"])


def _sql(lines: list[str]) -> list[str]:
    """The SQL of the docs' ``psql -c "..."`` lines."""
    return [m for line in lines for m in re.findall(r'-c "([^"]+)"', line)]


def _api(url: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"},
                                     method="GET" if body is None else "POST")  # fmt: skip
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.loads(answer.read())


@dataclass
class ScaleOut:
    postgres: Service
    server: Service
    hosts: list[WorkerHost]
    results: Path
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def api(self) -> str:
        """The server's API URL from this (the test's) machine."""
        return str(self.server.info["url"])

    def settings(self) -> Any:
        """Prefect's client settings of this process pointed at the scale-out server (blocks, results)."""
        return pointed_at(self.api)

    def start_run(self, flow: str, deployment: str, parameters: dict[str, Any], queue: str | None = None) -> str:
        """A run of a deployment, created through the REST API as docs/operations.md shows; its id."""
        deployment_id = _api(f"{self.api}/deployments/name/{flow}/{deployment}")["id"]
        body: dict[str, Any] = {"parameters": parameters}
        if queue is not None:
            body["work_queue_name"] = queue
        return str(_api(f"{self.api}/deployments/{deployment_id}/create_flow_run", body)["id"])

    def flow_run(self, run_id: str) -> dict[str, Any]:
        return dict(_api(f"{self.api}/flow_runs/{run_id}"))

    def wait(self, run_ids: list[str], timeout: float = 600) -> dict[str, dict[str, Any]]:
        """Each run once it has ended (completed or not); fails naming the runs still going at ``timeout``."""
        deadline = time.monotonic() + timeout
        ended: dict[str, dict[str, Any]] = {}
        while len(ended) < len(run_ids):
            for run_id in set(run_ids) - set(ended):
                run = self.flow_run(run_id)
                if run["state_type"] in FINAL:
                    ended[run_id] = run
            if time.monotonic() > deadline:
                logs = "\n".join(f"{h.name}: {_tail(h.root / 'worker.log', 30)}" for h in self.hosts)
                raise AssertionError(f"runs not ended after {timeout}s: {set(run_ids) - set(ended)}\n{logs}")
            time.sleep(1)
        return ended

    def start_worker(self, host: WorkerHost) -> subprocess.Popen[bytes]:
        """The docs' worker command on ``host``, named for it; returns once the worker says it started."""
        at = {SERVER: f"{host.gateway}:{self.server.port}", WORKER: host.name, CHECKOUT: str(REPO)}
        lines = docs_step(WORKER_STEP, **at)
        log = host.root / "worker.log"
        # Polling every 2 s instead of Prefect's 10: the runs start sooner; nothing else depends on it.
        env = host.env(self.server.port, PREFECT_WORKER_QUERY_SECONDS="2")
        proc = host.popen(["bash", "-c", script(lines)], env, log)
        deadline = time.monotonic() + 120
        while "started" not in log.read_text(errors="replace").lower():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise ServiceUnavailable(f"the worker on {host.name} did not start; see {log}:\n{_tail(log)}")
            time.sleep(0.2)
        self.workers[host.name] = proc
        return proc


def _run_here(lines: list[str], home: Path) -> None:
    """Docs commands run on this machine from the repo root, as an administrator would."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(home), PATH=f"{REPO / '.venv/bin'}:{os.environ['PATH']}")
    done = subprocess.run(["bash", "-c", "set -e\n" + "\n".join(lines)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    if done.returncode != 0:
        raise ServiceUnavailable(f"{lines}: exit {done.returncode}\n{done.stdout[-2000:]}{done.stderr[-2000:]}")


@contextlib.contextmanager
def scale_out(root: Path, ports: list[int], hosts: int = 2) -> Iterator[ScaleOut]:
    """The whole topology (steps 1-5 of the docs), with ``hosts`` workers started; ``ports``: the services the
    workers must reach (Samba, Azurite, the ARM stand-in...)."""
    statements = _sql(docs_step("CREATE DATABASE"))
    postgres = start_postgres([s.replace(f"'{PASSWORD}'", f"'{DB_PASSWORD}'") for s in statements])
    try:
        db = f"127.0.0.1:{postgres.port}"
        server_lines = docs_step("prefect server start", **{DB: db, PASSWORD: DB_PASSWORD})
        # The one change: loopback, at a free port (worker hosts reach it through their veth's relay).
        server_lines[-1] = server_lines[-1].replace("--host 0.0.0.0", "--host 127.0.0.1").replace("4200", "$PORT")
        server = start_prefect_server(postgres.info["url"], script(server_lines))
        try:
            local = f"127.0.0.1:{server.port}"
            _run_here(docs_step("prefect deploy", **{SERVER: local}), root / "admin-home")
            results = root / "results"
            _run_here(docs_step("LocalFileSystem", **{SERVER: local, RESULTS: str(results)}), root / "admin-home")
            with worker_hosts(hosts, root, api_port=server.port, ports=ports) as machines:
                topology = ScaleOut(postgres, server, machines, results)
                for host in machines:
                    topology.start_worker(host)
                yield topology
        finally:
            server.stop()
    finally:
        postgres.stop()
