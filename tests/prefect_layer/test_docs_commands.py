"""The commands README.md and docs/operations.md give for deploying, run as written (from the repo root),
against the suite's Prefect server; the deployments they make have forms with no JSON box.

Only the placeholder server address (``http://prefect-host:4200/api``) is replaced by the test server's.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from deployments.catalog import CATALOG
from tests.infra.doc_commands import block_with
from tests.infra.scale_out import CHECKOUT, WORKER_STEP, script
from tests.infra.services import REPO
from tests.infra.ui_forms import form_problems

pytestmark = pytest.mark.integration

PLACEHOLDER = "http://prefect-host:4200/api"
DEPLOY = re.compile(r"prefect deploy [^`\n]*")


def test_the_deploy_commands_of_the_docs_run_as_written(prefect_api: str, tmp_path: Path) -> None:
    operations = REPO / "docs/operations.md"
    # Every place that tells how to deploy says the same command.
    said = {m.strip() for p in (REPO / "README.md", operations, REPO / "deployments/prefect.yaml")
            for m in DEPLOY.findall(p.read_text())}  # fmt: skip
    assert said == {"prefect deploy --all --prefect-file deployments/prefect.yaml"}
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "home"), "PATH": f"{REPO / '.venv/bin'}:{os.environ['PATH']}"}
    env.pop("PREFECT_API_URL", None)
    deploy = "set -e\n" + "\n".join(block_with(operations, "prefect deploy")).replace(PLACEHOLDER, prefect_api)
    done = subprocess.run(["bash", "-c", deploy], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with urllib.request.urlopen(urllib.request.Request(
        f"{prefect_api}/deployments/filter", data=b"{}", headers={"Content-Type": "application/json"}
    )) as response:  # fmt: skip
        deployed = {d["name"]: d for d in json.loads(response.read())}
    assert set(CATALOG) | {"patch-day"} <= set(deployed)
    for name, deployment in deployed.items():
        assert form_problems(deployment["parameter_openapi_schema"]) == [], name
    # The worker command starts a worker on that pool (stopped once it polls).
    worker = [line.replace(PLACEHOLDER, prefect_api).replace(CHECKOUT, str(REPO))
              for line in block_with(operations, WORKER_STEP)]  # fmt: skip
    process = subprocess.Popen(["bash", "-c", script(worker)], cwd=REPO,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        seen = ""
        assert process.stdout is not None
        while "started" not in seen.lower():
            assert time.monotonic() < deadline and process.poll() is None, seen
            seen += process.stdout.readline()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:  # a worker winding down slowly on a busy machine: it is ours, stop it
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
