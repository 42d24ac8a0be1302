"""The Prefect UI as a new user meets it: ``make serve PORT=N`` as written, then headless Chromium fills the
``publish`` and ``mcs-to-mcs`` run forms with keyboard and mouse, submits them, and the runs complete.

One browser launch, small data (a 96 MiB sparse Windows-like disk, an 8 MiB raw file). The port's prepare is
one appliance launch: the run cannot complete without it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from imageport.disks.convert import hash_disk
from tests.core.disks.images import MiB, make_raw
from tests.infra.browser import Form, chromium
from tests.infra.services import REPO, free_port

pytestmark = [pytest.mark.integration, pytest.mark.guestfs]


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture()
def make_serve(tmp_path: Path, imageport_bin: str):  # type: ignore[no-untyped-def]
    """``make serve PORT=N`` (the venv is this one: ``-o venv``), with its own server state."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), PREFECT_RUNNER_POLL_FREQUENCY="2")
    log = open(tmp_path / "make-serve.log", "wb")  # noqa: SIM115 -- closed below
    make = subprocess.Popen(["make", "--no-print-directory", "-o", "venv", "serve", f"PORT={port}"], cwd=REPO,
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    api = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                _get(f"{api}/deployments/name/publish-vdisk/publish")
                _get(f"{api}/deployments/name/mcs-to-mcs/mcs-to-mcs")
                break
            except (urllib.error.URLError, ConnectionError):
                assert make.poll() is None and time.monotonic() < deadline, (tmp_path / "make-serve.log").read_text()
                time.sleep(1)
        cli = {**env, "PREFECT_API_URL": api}
        done = subprocess.run([imageport_bin, "connector", "create", "local", "ui-lab", f"root={tmp_path}"],
                              env=cli, capture_output=True, text=True, timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stderr
        yield f"http://127.0.0.1:{port}", api, tmp_path
    finally:
        os.killpg(make.pid, signal.SIGTERM)
        make.wait(60)
        log.close()


def _post(url: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _submit(driver, ui: str, api: str, flow: str, deployment: str, fill) -> str:  # type: ignore[no-untyped-def]
    """Open the deployment's run form, fill it, press Submit; the id of the run the form created."""
    found = _get(f"{api}/deployments/name/{flow}/{deployment}")
    query = {"deployments": {"id": {"any_": [found["id"]]}}}
    driver.get(f"{ui}/deployments/deployment/{found['id']}/run")
    form = Form(driver)
    fill(form)
    form.button("Submit")
    deadline = time.monotonic() + 60
    while not (runs := _post(f"{api}/flow_runs/filter", {"flow_runs": {}, **query})):
        assert time.monotonic() < deadline, driver.current_url
        time.sleep(0.5)
    (run,) = runs
    return run["id"]


def _final(api: str, run_id: str, timeout: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run = _get(f"{api}/flow_runs/{run_id}")
        if run["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return run
        assert time.monotonic() < deadline, run["state"]
        time.sleep(2)


def test_publish_and_mcs_to_mcs_forms_filled_in_chromium_complete(make_serve, windows_disks) -> None:  # type: ignore[no-untyped-def]
    ui, api, root = make_serve
    make_raw(root / "prepared.raw", 8 * MiB, runs=2, seed=23)
    for folder in ("store", "staging", "target"):
        (root / folder).mkdir()
    shutil.copy(windows_disks["gpt"], root / "gold.raw")

    def publish(form: Form) -> None:
        form.reference("local", "ui-lab", "prepared.raw", "spec", "Source")
        form.reference("local", "ui-lab", "store", "spec", "Store")
        form.type("gold-ui", "spec", "Name")

    def port(form: Form) -> None:
        form.reference("local", "ui-lab", "gold.raw", "spec", "Source")
        form.reference("local", "ui-lab", "staging/gold.vhdx", "spec", "Staging")
        form.button("Add item", "spec", "Targets")
        form.reference("local", "ui-lab", "target/gold.vhd", "spec", "Targets", "Disk")

    with chromium() as driver:
        published = _submit(driver, ui, api, "publish-vdisk", "publish", publish)
        ported = _submit(driver, ui, api, "mcs-to-mcs", "mcs-to-mcs", port)
    runs = {name: _final(api, run_id) for name, run_id in (("publish", published), ("port", ported))}
    states = {n: (r["state"]["type"], r["state"]["message"]) for n, r in runs.items()}
    assert {n: s[0] for n, s in states.items()} == {"publish": "COMPLETED", "port": "COMPLETED"}, states
    assert runs["port"]["parameters"]["spec"]["workflow"] == "mcs-to-mcs"  # pre-set by the form
    expected = hash_disk(root / "prepared.raw").content_hash
    assert hash_disk(root / "store/gold-ui.vhdx").content_hash == expected
    assert hash_disk(root / "target/gold.vhd").content_hash == hash_disk(root / "gold.raw").content_hash
    assert (root / "target/gold-prepared.vhd").exists()
    # The result artifact: one hash kind, the hop's match stated, prepare's real size, only what is left.
    (artifact,) = _post(f"{api}/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [ported]},
                                                                   "type": {"any_": ["markdown"]}}})  # fmt: skip
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in artifact["data"].splitlines() if re.match(r"\| (export|upload|prepare) ", line)}  # fmt: skip
    assert set(rows) == {"export", "upload", "prepare"}, artifact["data"]
    assert rows["upload"][3] == rows["export"][3] and re.fullmatch(r"`[0-9a-f]{12}`", rows["upload"][3])
    assert rows["upload"][4] == "yes" and rows["prepare"][1] == rows["upload"][1] == "96 MiB", rows
    assert ".imageport-ce" not in artifact["data"] and "gold-prepared.vhd" in artifact["data"]
