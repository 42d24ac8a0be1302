"""A worker lost mid-upload (issue 20, part 4), on a Prefect server with the ``imageport`` process pool.

Two ``prefect worker start`` processes, each with its own PREFECT_HOME and working directory, sharing
only what docs/operations.md says machines share (upload checkpoints). The upload deployment from
prefect.yaml writes a managed disk on the ARM stand-in (data in Azurite, the disk's SAS host behind a
gate that holds every page write from the ninth on), so the kill lands mid-upload whatever the timing.
The worker that took the run is SIGKILLed with its whole process tree; then:

- the project's automation (deployments/automations.py) marks the run CRASHED once its heartbeats stop;
- the reaper keeps the disk's write grant while the run is still RUNNING, and revokes it once it is
  over (the disk stays, for the re-run to resume);
- a CE slot whose holder was killed at the same moment comes back when its lease runs out;
- the re-run lands on the surviving worker and resumes: fewer page writes reach the disk than the
  image has chunks, and the disk holds exactly the image.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from blocks.registry import save_connector
from deployments.automations import HEARTBEAT_SECONDS, MISSED_HEARTBEATS, crash_automation, ensure_crash_automation
from imageport.disks.extents import Extent
from imageport.transfer.plan import CHUNK, covered
from tasks.engine import CE_SLOT_LEASE_S
from tests.infra.fault_proxy import FaultProxy
from tests.infra.prefect_client import pointed_at
from tests.infra.workers import REPO, Proc, base_env, deploy, kill_tree, start_server, workers

pytestmark = pytest.mark.integration
MiB = 1024 * 1024
CHUNKS = 12  # 48 MiB of data: one page write per 4 MiB chunk, plus the footer
GATE = 7  # page writes 1..6 land; the 7th and every later one of the first run are held, then dropped
# A guard against a hang, not a speed claim: the trigger's 90 s window is asserted structurally (the test
# below); how long detection takes on a real host is for docs/operations.md, not for a test to time.
HANG_GUARD_S = 600

HOLD_A_CE_SLOT = """
import sys, time
from tasks.engine import ce_slot
with ce_slot(sys.argv[1]):
    print("HELD", flush=True)
    time.sleep(3600)
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A Prefect server, the crash automation as ``make automations`` makes it, the upload deployment."""
    root = tmp_path_factory.mktemp("cluster")
    server, api = start_server(root)
    try:
        automation = subprocess.run([sys.executable, "-m", "deployments.automations"], env=base_env(root, api),
                                    cwd=REPO, capture_output=True, text=True)  # fmt: skip
        assert automation.returncode == 0, automation.stderr[-2000:]
        deploy(api, ["upload"], root)
        yield root, api
    finally:
        server.stop()


def test_a_worker_lost_mid_upload_crashes_its_run_and_the_rerun_resumes_on_the_other(  # type: ignore[no-untyped-def]
    cluster, arm, azurite, azure_settings, tmp_path: Path
) -> None:
    from prefect import get_client

    root, api = cluster
    rng = random.Random(20)
    image = tmp_path / "gold.raw"
    image.write_bytes(b"".join(rng.randbytes(CHUNK) for _ in range(CHUNKS)))
    gate = FaultProxy(azurite.info["endpoint"], {n: "hold" for n in range(GATE, GATE + 64)})
    arm.sas_base = gate.url_for(arm.container.url)
    shared = {"IMAGEPORT_CHECKPOINTS": str(root / "shared" / "checkpoints")}  # what any worker resumes from
    holder: subprocess.Popen | None = None
    try:
        with pointed_at(api), get_client(sync_client=True) as client:
            ensure_crash_automation()  # idempotent: a second call finds it as it should be and writes nothing
            (saved,) = [a for a in client.read_automations() if a.name == "imageport-crash-lost-runs"]
            assert saved.trigger.model_dump() == crash_automation().trigger.model_dump()
            save_connector("local", "wl-lab", {"root": str(tmp_path)}, overwrite=True)
            save_connector("azure", "wl-az", {**azure_settings, "vnet": "vnet-ce", "subnet": "default"}, overwrite=True)
            spec = {"source": {"kind": "local", "connector": "wl-lab", "path": "gold.raw"},
                    "target": {"kind": "azure-disk", "connector": "wl-az", "resource_group": "rg-vdi",
                               "name": "wl-gold"},
                    "threads": 2, "hyper_v_generation": "V1"}  # fmt: skip
            deployment = client.read_deployment_by_name("upload-image/upload")
            with workers(["alpha", "beta"], root / "machines", api, shared) as machines:
                first = client.create_flow_run_from_deployment(deployment.id, parameters={"spec": spec})
                assert gate.held.wait(240), _logs(machines)  # the upload got to its 7th page write
                blob = arm.container.get_blob_client(arm._blob_name("rg-vdi", "wl-gold"))
                landed = _landed(blob, GATE - 1)
                lost, survivor = _taker(machines, str(first.id))
                # A CE slot held by another process, killed at the same moment (no renewal, no release).
                holder = subprocess.Popen([sys.executable, "-c", HOLD_A_CE_SLOT, "wl-lab"], env=base_env(tmp_path, api),
                                          stdout=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
                assert holder.stdout is not None and holder.stdout.readline().strip() == "HELD"
                assert _active_slots(client, "imageport-ce-wl-lab") == 1

                killed = kill_tree(machines[lost].pid)  # the machine is gone: worker, runner, flow-run process
                assert len(killed) >= 2, killed  # the worker and the flow run's process under it
                kill_tree(holder.pid)
                gate.release()  # what the dead run had in flight is dropped, never written

                from tasks.engine import reap_all

                assert client.read_flow_run(first.id).state.type.value == "RUNNING"  # nothing told Prefect yet
                kept = reap_all(connectors=["wl-az"])  # the scheduled reaper while the run still looks live
                assert [h["action"] for h in _ours(kept)] == ["run still live: write grant kept"]
                assert arm.disks["rg-vdi/wl-gold"]["state"] == "ActiveUpload"

                crashed = _wait_for(lambda: client.read_flow_run(first.id).state, lambda s: s.is_crashed(),
                                    HANG_GUARD_S, "the lost run to be marked CRASHED")  # fmt: skip
                assert "heartbeat" in (crashed.message or "")

                reaped = reap_all(connectors=["wl-az"])  # now Prefect says the run is over
                (half,) = _ours(reaped)
                assert half["run"] == str(first.id) and half["action"].startswith("write grant revoked"), half
                assert arm.disks["rg-vdi/wl-gold"]["state"] == "ReadyToUpload"  # kept, for the re-run to resume

                _wait_for(lambda: _active_slots(client, "imageport-ce-wl-lab"), lambda n: n == 0,
                          CE_SLOT_LEASE_S + 90, "the killed holder's CE slot to come back")  # fmt: skip

                writes_before = gate.page_writes
                again = client.create_flow_run_from_deployment(deployment.id, parameters={"spec": spec})
                done = _wait_for(lambda: client.read_flow_run(again.id).state, lambda s: s.is_final(), 300,
                                 "the re-run to end")  # fmt: skip
                assert done.is_completed(), f"{done.message}\n{_logs(machines)}"
                assert _taker(machines, str(again.id))[0] == survivor
            sent = gate.page_writes - writes_before
    finally:
        arm.sas_base = None
        gate.close()
        if holder is not None and holder.poll() is None:
            kill_tree(holder.pid)
    # Resumed: only the chunks that had not landed, and the footer, were written again.
    assert sent == CHUNKS - len(landed) + 1 < CHUNKS, (sent, sorted(landed))
    disk = arm.disks["rg-vdi/wl-gold"]
    assert disk["state"] == "Unattached"
    assert blob.download_blob(offset=0, length=CHUNKS * CHUNK).readall() == image.read_bytes()
    assert blob.download_blob(offset=CHUNKS * CHUNK, length=512).readall()[:8] == b"conectix"  # the VHD footer


def _landed(blob, count: int) -> set[int]:  # type: ignore[no-untyped-def]
    """The chunks the blob holds once ``count`` page writes have landed (the later ones are held)."""
    size = CHUNKS * CHUNK + 512

    def chunks() -> set[int]:
        return covered([Extent(r.start, r.end + 1 - r.start) for r in blob.list_page_ranges()], size)

    return _wait_for(chunks, lambda c: len(c) >= count, 60, f"{count} chunks to land")


def test_every_deployment_sends_the_heartbeats_the_crash_automation_waits_for() -> None:
    import yaml

    from deployments.automations import HEARTBEAT_TAG
    from deployments.serve import deployments

    config = yaml.safe_load((REPO / "deployments/prefect.yaml").read_text())
    for entry in config["deployments"]:  # the one pool definition, shared through its YAML anchor
        assert entry["work_pool"]["name"] == "imageport", entry["name"]
        assert entry["work_pool"]["job_variables"]["env"]["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] == str(HEARTBEAT_SECONDS)
        assert HEARTBEAT_TAG in entry["tags"], entry["name"]  # the automation watches only runs so tagged
    served = {d.name: d.tags for d in deployments()}  # `imageport serve` registers them with the same tags
    assert all(HEARTBEAT_TAG in tags for tags in served.values()) and len(served) == len(config["deployments"])
    automation = crash_automation()
    trigger, (action,) = automation.trigger, automation.actions
    assert trigger.posture.value == "Proactive" and trigger.after == {"prefect.flow-run.heartbeat"}
    assert trigger.within.total_seconds() == HEARTBEAT_SECONDS * MISSED_HEARTBEATS > HEARTBEAT_SECONDS
    assert "prefect.flow-run.Completed" in trigger.expect and trigger.for_each == {"prefect.resource.id"}
    assert trigger.match_related.root == {"prefect.resource.role": "tag",
                                          "prefect.resource.id": f"prefect.tag.{HEARTBEAT_TAG}"}  # fmt: skip
    assert action.type == "change-flow-run-state" and action.state.value == "CRASHED"


def _ours(report) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    return [h for h in report.half_uploaded if h["disk"] == "rg-vdi/wl-gold"]  # other tests' disks share rg-vdi


def _taker(machines: dict[str, Proc], run_id: str) -> tuple[str, str]:
    """(the worker that ran ``run_id``, the other one), from the workers' own logs: the run's process writes its
    own lines there ("View at .../flow-run/ID"); both workers may log *submitting* it, the server lets one."""
    for _ in range(100):
        took = [name for name, proc in machines.items() if f"flow-run/{run_id}" in proc.log.read_text()]
        if took:
            (name,) = took
            (other,) = set(machines) - {name}
            return name, other
        time.sleep(0.2)
    raise AssertionError(f"no worker logged taking {run_id}:\n{_logs(machines)}")


def _active_slots(client, name: str) -> int:  # type: ignore[no-untyped-def]
    return client.read_global_concurrency_limit_by_name(name).active_slots


def _wait_for(read, done, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value):
            return value
        assert time.monotonic() < deadline, f"waited {timeout:.0f} s for {what}; last: {value!r}"
        time.sleep(1)


def _logs(machines: dict[str, Proc]) -> str:
    return "\n".join(f"--- {name}\n{proc.tail()}" for name, proc in machines.items()) + os.linesep
