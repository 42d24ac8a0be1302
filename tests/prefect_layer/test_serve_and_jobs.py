"""Deployments served by ``imageport serve``, triggered through the Prefect REST API (not the Python client),
and followed with ``imageport jobs``: exit codes for success, failure and cancellation."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from deployments.serve import yaml_deployment, yaml_deployments
from imageport.disks.convert import hash_disk
from imageport.engine.local import agent_pids
from imageport.results import StageResult
from tests.core.disks.images import MiB, make_raw

pytestmark = pytest.mark.integration


def rest(api: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """One Prefect REST call; a 503 (the server's database busy) is retried, as Prefect's own client does."""
    if body is not None and path.endswith("/create_flow_run"):
        body = {"idempotency_key": uuid.uuid4().hex, **body}  # a retried create makes one run, not two
    for attempt in range(6):
        request = urllib.request.Request(
            f"{api}{path}", method=method, data=json.dumps(body).encode() if body is not None else None,
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            if exc.code != 503 or attempt == 5:
                raise
            time.sleep(2**attempt)
    raise AssertionError("unreachable")


@pytest.fixture()
def served(imageport_bin: str, cli_env: dict[str, str], prefect_api: str, run_cli, tmp_path: Path):  # type: ignore[no-untyped-def]
    done = run_cli("connector", "create", "local", "serve-lab", f"root={tmp_path}", "--overwrite")
    assert done.returncode == 0, done.stderr
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115 -- closed below, after the server stops
    env = {**cli_env, "PREFECT_RUNNER_POLL_FREQUENCY": "2"}  # notice cancellations quickly
    started = datetime.now(UTC)
    server = subprocess.Popen([imageport_bin, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(urllib.error.HTTPError):  # registered one by one: wait for all, by this serve
                found = rest(prefect_api, "POST", "/deployments/filter", {})
                registered = {d["name"] for d in found if datetime.fromisoformat(d["updated"]) >= started}
                if registered >= {d["name"] for d in yaml_deployments()}:
                    break
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()[-3000:]
            time.sleep(1)
        deployment = rest(prefect_api, "GET", "/deployments/name/convert-disk/convert")
        yield deployment, tmp_path
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
        log.close()
        run_cli("connector", "delete", "serve-lab")


def test_rest_triggered_runs_and_jobs_wait_exit_codes(served, prefect_api: str, run_cli) -> None:  # type: ignore[no-untyped-def]
    deployment, root = served
    make_raw(root / "gold.raw", 24 * MiB, runs=3, seed=5)
    source = {"kind": "local", "connector": "serve-lab", "path": "gold.raw"}
    # Every prefect.yaml deployment is served with its schedules (reap active; patch-day and hourly paused).
    patch_day = rest(prefect_api, "GET", "/deployments/name/mcs-to-mcs/patch-day")
    assert patch_day["parameters"] == yaml_deployment("patch-day")["parameters"]
    served = {d["name"]: d for d in rest(prefect_api, "POST", "/deployments/filter", {})}
    for entry in yaml_deployments():
        registered = [
            (s["schedule"]["cron"], s["schedule"]["day_or"], s["active"]) for s in served[entry["name"]]["schedules"]
        ]
        wanted = [(s["cron"], s.get("day_or", True), s.get("active", True)) for s in entry.get("schedules") or []]
        assert registered == wanted, entry["name"]
    assert [s["active"] for s in served["reap"]["schedules"]] == [True]
    # Success, triggered by REST.
    create = f"/deployments/{deployment['id']}/create_flow_run"
    ok = rest(
        prefect_api, "POST", create, {"parameters": {"source": source, "output": {**source, "path": "gold.vhdx"}}}
    )
    waited = run_cli("jobs", "wait", ok["id"], "--timeout", "240", timeout=300)
    assert waited.returncode == 0, waited.stdout + waited.stderr
    assert hash_disk(root / "gold.vhdx").content_hash == hash_disk(root / "gold.raw").content_hash
    shown = run_cli("jobs", "show", ok["id"])
    assert shown.returncode == 0 and "COMPLETED" in shown.stdout and "convert" in shown.stdout
    items = run_cli("jobs", "items", ok["id"], "--json")
    assert items.returncode == 0 and all(i["state"] == "COMPLETED" for i in json.loads(items.stdout))
    listed = run_cli("jobs", "list", "--json")
    assert ok["id"] in [r["id"] for r in json.loads(listed.stdout)]
    table = run_cli("jobs", "list")  # 80 columns (not a terminal): the ids are still whole, to copy
    assert table.returncode == 0 and ok["id"] in table.stdout, table.stdout
    # Failure: a source that does not exist.
    missing = {**source, "path": "missing.raw"}
    bad = rest(prefect_api, "POST", create, {"parameters": {"source": missing, "output": {**source, "path": "x.vhdx"}}})
    failed = run_cli("jobs", "wait", bad["id"], "--timeout", "240", timeout=300)
    assert failed.returncode == 1 and "FAILED" in failed.stdout
    # Cancellation of a run scheduled for later.
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    pending = rest(prefect_api, "POST", create, {
        "parameters": {"source": source, "output": {**source, "path": "y.vhdx"}},
        "state": {"type": "SCHEDULED", "state_details": {"scheduled_time": later}}})  # fmt: skip
    stopped = run_cli("jobs", "stop", pending["id"])
    assert stopped.returncode == 0, stopped.stderr
    cancelled = run_cli("jobs", "wait", pending["id"], "--timeout", "60", timeout=120)
    assert cancelled.returncode == 3 and "CANCELLED" in cancelled.stdout
    again = run_cli("jobs", "stop", pending["id"])
    assert again.returncode == 2 and "already ended" in again.stderr


def test_port_command_checks_the_spec_before_starting(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    spec = tmp_path / "port.yaml"
    spec.write_text(
        "source: {kind: vsphere, connector: vc, vm: gold}\n"
        "staging: {kind: share, connector: s, path: x.vhdx}\n"
        "targets: [{disk: {kind: azure-disk, connector: az, resource_group: rg, name: 'bad name!'}}]\n"
    )
    done = run_cli("port", "mcs-to-mcs", "--spec", str(spec))
    assert done.returncode == 2 and "targets.0.disk" in done.stderr and "bad name!" in done.stderr
    for command in ("wait", "show", "items", "stop"):
        refused = run_cli("jobs", command, "not-a-uuid")
        assert refused.returncode == 2 and "is not a run id" in refused.stderr, command


def test_run_local_executes_a_stage_flow_in_process(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    make_raw(tmp_path / "vm.raw", 16 * MiB, runs=2, seed=9)
    (tmp_path / "share").mkdir()
    assert run_cli("connector", "create", "local", "run-lab", f"root={tmp_path}").returncode == 0
    spec = tmp_path / "export.yaml"
    spec.write_text(
        "source: {kind: local, connector: run-lab, path: vm.raw}\n"
        "destination: {kind: local, connector: run-lab, path: share/vm.vhdx}\n"
    )
    done = run_cli("run", "export", "--spec", str(spec), "--local", "--json", timeout=300)
    assert done.returncode == 0 and "COMPLETED" in done.stderr, done.stdout + done.stderr
    result = StageResult.model_validate_json(done.stdout)  # --json: the stage's typed result, as it reads back
    assert result.content_hash == hash_disk(tmp_path / "share/vm.vhdx").content_hash
    assert result.content_hash == hash_disk(tmp_path / "vm.raw").content_hash and result.bytes_written
    assert (result.stage, result.source, result.target) == ("export", "local://run-lab/vm.raw",
                                                            "local://run-lab/share/vm.vhdx")  # fmt: skip
    reaped = run_cli("run", "reap", "--local", timeout=300)
    assert reaped.returncode == 0 and "COMPLETED" in reaped.stdout
    missing = run_cli("run", "export", "--local")
    assert missing.returncode == 2 and "--spec" in missing.stderr


@pytest.mark.guestfs
def test_stopping_a_running_prepare_removes_its_compositing_engine(served, prefect_api, run_cli, windows_disks) -> None:  # type: ignore[no-untyped-def]
    import hashlib
    import shutil

    _, root = served
    shutil.copyfile(windows_disks["mbr"], root / "gold.img")
    before = hashlib.sha256((root / "gold.img").read_bytes()).hexdigest()
    prepare = rest(prefect_api, "GET", "/deployments/name/prepare-image/prepare")
    spec = {"disk": {"kind": "local", "connector": "serve-lab", "path": "gold.img"}, "target_platform": "azure",
            "hyper_v_generation": "V1"}  # fmt: skip
    run = rest(prefect_api, "POST", f"/deployments/{prepare['id']}/create_flow_run", {"parameters": {"spec": spec}})
    ce_root = root / ".imageport-ce"
    deadline = time.monotonic() + 180
    while not any(json.loads(p.read_text()).get("pid") for p in ce_root.glob("*/ce.json")):
        assert time.monotonic() < deadline, "the compositing engine never started its agent"
        time.sleep(0.2)
    stopped = run_cli("jobs", "stop", run["id"])
    assert stopped.returncode == 0 and "cancelling" in stopped.stdout, stopped.stdout + stopped.stderr
    waited = run_cli("jobs", "wait", run["id"], "--timeout", "120", timeout=180)
    assert waited.returncode == 3, waited.stdout
    deadline = time.monotonic() + 60
    while list(ce_root.iterdir()):  # the cancellation hook reaps the run's CE
        assert time.monotonic() < deadline, [p.name for p in ce_root.iterdir()]
        time.sleep(0.5)
    assert not (root / "gold-prepared.img").exists()
    assert hashlib.sha256((root / "gold.img").read_bytes()).hexdigest() == before
    assert agent_pids(root) == []


def test_a_refused_port_names_the_spec_field_keeps_a_partial_table_and_prints_no_traceback(served, prefect_api):  # type: ignore[no-untyped-def]
    _, root = served
    make_raw(root / "gold.raw", 8 * MiB, runs=2, seed=31)
    (root / "target").mkdir()
    (root / "staging").mkdir()
    (root / "target/gold-prepared.vhd").write_bytes(b"an earlier prepare's output")
    local = {"kind": "local", "connector": "serve-lab"}
    spec = {
        "source": {**local, "path": "gold.raw"},
        "staging": {**local, "path": "staging/gold.vhdx"},
        "targets": [{"disk": {**local, "path": "target/gold.vhd"}}],
    }  # fmt: skip (no workflow: fixed)
    deployment = rest(prefect_api, "GET", "/deployments/name/mcs-to-mcs/mcs-to-mcs")
    run = rest(prefect_api, "POST", f"/deployments/{deployment['id']}/create_flow_run", {"parameters": {"spec": spec}})
    deadline = time.monotonic() + 300
    while (state := rest(prefect_api, "GET", f"/flow_runs/{run['id']}")["state"])["type"] not in (
        "FAILED",
        "COMPLETED",
    ):
        assert time.monotonic() < deadline, state
        time.sleep(1)
    assert state["type"] == "FAILED" and "prepare.overwrite" in state["message"], state
    assert "--force" not in state["message"]
    (artifact,) = rest(
        prefect_api,
        "POST",
        "/artifacts/filter",
        {"artifacts": {"flow_run_id": {"any_": [run["id"]]}, "type": {"any_": ["markdown"]}}},
    )
    table = artifact["data"]
    assert "failed after 0 stage(s)" in table and "prepare.overwrite" in table, table  # the checks refused it first
    assert "before anything was created" in table and "| export |" not in table, table  # nothing ran
    assert not (root / "staging/gold.vhdx").exists()
    time.sleep(2)  # the served process writes the run's last log lines
    assert "Traceback" not in (root / "serve.log").read_text()
    assert (root / "target/gold-prepared.vhd").read_bytes() == b"an earlier prepare's output"
