"""XenServer as a port's source, end to end: the pool stand-in (driven through the XenAPI SDK) -> Samba ->
the Azure stand-in / the local CE and a Samba PVS store; content hashes at every hop, nothing left on the pool.
The CLI's connector test, listing and the reaper against the same pool."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from blocks.registry import delete_connector, save_connector
from cli.main import app
from flows.ports import PORT_FLOWS
from imageport.disks.convert import hash_disk
from imageport.models import DiskFormat, PortSpec, Workflow
from imageport.platforms.xenserver.inventory import list_vms
from imageport.platforms.xenserver.snapshots import take_snapshot
from imageport.results import PortResult, XenServerExportDetails
from tests.infra.configs import samba_share, xapi_xenserver

pytestmark = [pytest.mark.integration, pytest.mark.guestfs]

EXPIRED = {"created-by": "imageport", "imageport-run": "cli-gone-1-1", "imageport-stage": "export",
           "imageport-expires": "2000-01-01T00:00:00+00:00"}  # fmt: skip



@pytest.fixture(scope="module")
def lab(prefect_api, xapi, samba, arm, windows_disks, tmp_path_factory):  # type: ignore[no-untyped-def]
    """Connectors for the pool, the share, Azure and the local platform; a UEFI master VM on the pool whose
    first disk is the suite's Windows image (a second, small disk so the port must pick by ``disk=``)."""
    from tests.conftest import ARM_CLIENT, ARM_SECRET, ARM_SUBSCRIPTION, ARM_TENANT, ce_storage_settings

    gold = windows_disks["gpt"]
    scratch = tmp_path_factory.mktemp("xen-port") / "scratch.raw"
    scratch.write_bytes(b"\x01" * 1024 * 1024)
    xapi.add_vm("xen-port-gold", [gold, scratch], firmware="uefi")
    pool = xapi_xenserver(xapi)
    save_connector("xenserver", "xen-pool", {**pool.model_dump(), "password": xapi.password}, overwrite=True)
    share = samba_share(samba, base_path="xen-ports")
    save_connector("fileshare", "xen-share", {**share.model_dump(), "password": samba.info["password"]},
                   overwrite=True)  # fmt: skip
    with share.build() as smb:
        smb.makedirs("staging")
        smb.makedirs("Store")
    root = tmp_path_factory.mktemp("xen-local")
    save_connector("local", "xen-local", {"root": str(root)}, overwrite=True)
    save_connector("azure", "xen-az", {
        "tenant_id": ARM_TENANT, "client_id": ARM_CLIENT, "client_secret": ARM_SECRET,
        "subscription_id": ARM_SUBSCRIPTION, "resource_group": "rg-vdi", "location": "westeurope",
        "arm_endpoint": arm.url, "authority_host": arm.url, "vnet": "vnet-ce", "subnet": "default",
        **ce_storage_settings(arm),
    }, overwrite=True)  # fmt: skip
    yield {"share": Path(samba.info["share_dir"]) / "xen-ports", "root": root, "arm": arm,
           "gold_sha": hashlib.sha256(gold.read_bytes()).hexdigest(),
           "gold_hash": hash_disk(gold, source_format=DiskFormat.RAW).content_hash,
           "scratch_hash": hash_disk(scratch, source_format=DiskFormat.RAW).content_hash}  # fmt: skip
    for name in ("xen-pool", "xen-share", "xen-local", "xen-az"):
        delete_connector(name)


VM = {"kind": "xenserver", "connector": "xen-pool", "vm": "xen-port-gold", "disk": "xvda"}
STAGING = {"kind": "share", "connector": "xen-share"}
STORE = {"kind": "share", "connector": "xen-share", "path": "Store"}


def run(workflow: Workflow, **fields: Any) -> PortResult:
    return run_port(workflow, **fields)[0]


def run_port(workflow: Workflow, prepare: dict[str, Any] | None = None, **fields: Any) -> tuple[PortResult, str]:
    """The port's result and its Prefect flow run's id."""
    provisioning = "pvs" if workflow.value.endswith("pvs") else "mcs"
    spec = PortSpec.model_validate({"workflow": workflow.value,
                                    "prepare": {"provisioning_type": provisioning, **(prepare or {})},
                                    **fields})  # fmt: skip
    state = PORT_FLOWS[workflow](spec, return_state=True)
    assert state.is_completed(), state.message
    return state.result(), str(state.state_details.flow_run_id)


def snapshot_marks(xapi, name: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """The other_config the pool saw written on snapshot VM ``name`` (destroyed since)."""
    return {key: value for cls, label, key, value in xapi.other_config_written if cls == "VM" and label == name}


def nothing_left_on_the_pool(xapi) -> None:  # type: ignore[no-untyped-def]
    """No snapshot VM, no snapshot VDI, no task: the export took and destroyed its own."""
    assert [r["name_label"] for r in xapi.of_class("VM").values() if r["is_a_snapshot"]] == []
    assert [r["name_label"] for r in xapi.of_class("VDI").values() if r["is_a_snapshot"]] == []
    assert xapi.of_class("task") == {}


def test_mcs_to_mcs_xenserver_to_azure(lab, xapi) -> None:  # type: ignore[no-untyped-def]
    created_before = len(lab["arm"].created)
    result, run_id = run_port(Workflow.MCS_TO_MCS, source=VM, staging={**STAGING, "path": "staging/m2m.vhdx"},
                              export={"tags": {"cost center": "vdi-7"}}, prepare={"tags": {"owner": "team a"}},
                              targets=[{"disk": {"kind": "azure-disk", "connector": "xen-az",
                                                 "resource_group": "rg-vdi", "name": "xen-m2m"}}])  # fmt: skip
    # The export's snapshot was marked with the Prefect flow run's id (what the reaper asks Prefect about) and
    # carried the export's tags; every resource the Azure CE made carried the prepare's.
    marks = snapshot_marks(xapi, f"imageport-export-{run_id}")
    assert marks["imageport-run"] == run_id and marks["cost center"] == "vdi-7", marks
    ce_made = [(kind, tags) for kind, name, tags in lab["arm"].created[created_before:] if "imageport-ce" in name]
    assert {kind for kind, _ in ce_made} == {"disk", "nic", "vm"}
    assert all(tags["owner"] == "team a" and tags["imageport-run"] == run_id for _, tags in ce_made), ce_made
    assert lab["arm"].disks["rg-vdi/xen-m2m-prepared"]["tags"]["owner"] == "team a"  # the kept output too
    export, upload, prepare = result.stages
    assert (export.stage, upload.stage, prepare.stage) == ("export", "upload", "prepare")
    assert export.source == "xenserver://xen-pool/xen-port-gold?disk=xvda"
    assert export.content_hash == lab["gold_hash"] and export.sha256 == lab["gold_sha"]  # the VM's disk, as it was
    assert hash_disk(lab["share"] / "staging/m2m.vhdx", sha256=True).sha256 == lab["gold_sha"]
    assert isinstance(export.details, XenServerExportDetails) and export.details.snapshot_created
    assert export.details.disk == "userdevice 0 (xvda)" and [r.kind for r in export.removed] == ["xenserver-snapshot"]
    assert upload.source == export.target and upload.content_hash == export.content_hash
    assert prepare.source == upload.target and prepare.verified
    assert lab["arm"].vms.vms == {} and lab["arm"].vms.nics == {}
    nothing_left_on_the_pool(xapi)
    # A snapshot such an export leaked, past its expiry: kept while its flow run is live, reaped once it is not.
    assert_reaped_only_once_the_run_ends(xapi, marks)


def assert_reaped_only_once_the_run_ends(xapi, marks: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    from prefect import flow, get_client
    from prefect.states import Completed, Running

    from tasks.engine import reap_all

    @flow(name="xen-live-run")
    def live() -> None: ...

    with get_client(sync_client=True) as client:
        running = client.create_flow_run(live, state=Running())
        leaked = {**marks, "imageport-run": str(running.id), "imageport-expires": "2000-01-01T00:00:00+00:00"}
        with xapi_xenserver(xapi).build() as session:
            (vm,) = [v for v in list_vms(session.api) if v.name == "xen-port-gold"]
            take_snapshot(session.api, vm.ref, f"imageport-export-{running.id}", leaked)
        report = reap_all(connectors=["xen-pool"])
        assert report.deleted == [] and len(report.kept_live) == 3, report  # the snapshot VM and its two VDIs
        client.set_flow_run_state(running.id, Completed(), force=True)
    report = reap_all(connectors=["xen-pool"])
    assert len(report.deleted) == 3 and report.kept_live == [], report
    nothing_left_on_the_pool(xapi)


def test_mcs_to_pvs_xenserver_to_a_samba_store(lab, xapi) -> None:  # type: ignore[no-untyped-def]
    result = run(Workflow.MCS_TO_PVS, source=VM, staging={**STAGING, "path": "staging/m2p.vhdx"},
                 targets=[{"disk": {"kind": "local", "connector": "xen-local", "path": "m2p/gold.vhdx"},
                           "store": STORE, "vdisk_name": "xen-gold"}])  # fmt: skip
    export, upload, prepare, publish = result.stages
    assert export.content_hash == lab["gold_hash"] == upload.content_hash
    assert hash_disk(lab["root"] / "m2p/gold.vhdx").content_hash == lab["gold_hash"]  # the upload, untouched
    prepared = hash_disk(lab["root"] / "m2p/gold-prepared.vhdx").content_hash
    assert prepare.verified and prepared != lab["gold_hash"] and publish.content_hash == prepared
    assert hash_disk(lab["share"] / "Store" / "xen-gold.vhdx").content_hash == prepared
    assert (lab["share"] / "Store" / "xen-gold.register.txt").is_file()
    nothing_left_on_the_pool(xapi)


def test_cli_lists_exports_and_the_reaper_destroys_a_leaked_snapshot(lab, xapi, tmp_path) -> None:  # type: ignore[no-untyped-def]
    runner = CliRunner()
    out = tmp_path / "scratch.vhdx"
    exported = runner.invoke(app, ["xenserver", "export", "xen-port-gold", str(out), "-c", "xen-pool", "--disk", "1",
                                   "--json"])  # fmt: skip
    assert exported.exit_code == 0, exported.output
    shown = json.loads(exported.stdout[exported.stdout.index("{"):])  # after any progress line
    assert shown["content_hash"] == hash_disk(out).content_hash == lab["scratch_hash"]
    assert shown["details"]["disk"] == "userdevice 1 (xvdb)" and shown["target"] == str(out)
    nothing_left_on_the_pool(xapi)
    listed = runner.invoke(app, ["xenserver", "vms", "-c", "xen-pool", "--json"])
    assert listed.exit_code == 0, listed.output
    (gold,) = [v for v in json.loads(listed.output) if v["name"] == "xen-port-gold"]
    assert (gold["power_state"], gold["firmware"]) == ("Running", "uefi")
    assert [(d["userdevice"], d["device"]) for d in gold["disks"]] == [("0", "xvda"), ("1", "xvdb")]
    # A run killed after its snapshot: marked, expired, its process gone -> the reaper destroys it and its VDIs.
    with xapi_xenserver(xapi).build() as session:
        (vm,) = [v for v in list_vms(session.api) if v.name == "xen-port-gold"]
        take_snapshot(session.api, vm.ref, "imageport-export-cli-gone-1-1", EXPIRED)
        take_snapshot(session.api, vm.ref, "an admin's own", {})  # unmarked: never touched
    dry = runner.invoke(app, ["reap", "--dry-run", "-c", "xen-pool"])
    assert dry.exit_code == 0 and dry.output.count("would delete xenserver") == 3, dry.output
    reaped = runner.invoke(app, ["reap", "-c", "xen-pool"])
    assert reaped.exit_code == 0 and reaped.output.count("deleted xenserver") == 3, reaped.output
    left = [r["name_label"] for r in xapi.of_class("VM").values() if r["is_a_snapshot"]]
    assert left == ["an admin's own"]
    with xapi_xenserver(xapi).build() as session:
        from imageport.platforms.xenserver.snapshots import destroy_snapshot

        (snap,) = [ref for ref, r in xapi.of_class("VM").items() if r["is_a_snapshot"]]
        destroy_snapshot(session.api, snap)
    nothing_left_on_the_pool(xapi)


def test_connector_test_logs_in_for_real_and_a_wrong_password_is_one_line(run_cli, xapi) -> None:  # type: ignore[no-untyped-def]
    # A pool member's address with the certificate pinned: the login follows HOST_IS_SLAVE to the master.
    settings = ["host=localhost", f"port={xapi.port}", "username=root", f"fingerprint={xapi.fingerprint()}"]
    assert run_cli("connector", "create", "xenserver", "xen-cli", *settings, stdin=xapi.password + "\n").returncode == 0
    try:
        ok = run_cli("connector", "test", "xen-cli")
        created = run_cli("connector", "create", "xenserver", "xen-cli", *settings, "--overwrite",
                          stdin="Wrong-Xen-77\n")  # fmt: skip
        bad = run_cli("connector", "test", "xen-cli")
    finally:  # the server is the worker's: a connector left behind would be walked by every later reap
        delete_connector("xen-cli")
    assert ok.returncode == 0, ok.stderr
    assert "logged in to pool imageport-lab" in ok.stdout and "the master is 127.0.0.1" in ok.stdout
    assert created.returncode == 0, created.stderr
    assert bad.returncode == 1 and "XenServer refused the user name or password" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and "Wrong-Xen-77" not in bad.stdout + bad.stderr
    assert xapi.sessions == set()
