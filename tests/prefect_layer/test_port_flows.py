"""The four workflows end to end on real services: vCenter simulator -> Samba -> Azure stand-in / vCenter
simulator / local platform, Samba PVS stores; content hashes at each hop, an independent registry reader for what
prepare changed."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pytest
from pyVmomi import vim
from typer.testing import CliRunner

from blocks.registry import delete_connector, save_connector
from cli.main import app
from flows.ports import PORT_FLOWS
from imageport.disks.convert import hash_disk
from imageport.disks.local_files import LOCAL
from imageport.models import DiskFormat, PortSpec, Workflow
from imageport.platforms.vsphere import ce_host
from imageport.platforms.vsphere.imports import create_vm_for_disk, import_to_datastore
from imageport.platforms.vsphere.inventory import find_vm, retrieve
from imageport.platforms.vsphere.waiting import wait_for_task
from imageport.results import ExportDetails, FinalizeDetails, ImportDetails, PortResult, PrepareDetails, StageResult
from imageport.transfer.copy import copy_image
from tasks.artifacts import port_table
from tests.core.disks.images import MiB, make_raw
from tests.infra import services
from tests.infra.configs import samba_share, vcsim_vsphere
from tests.infra.windows_image import registry_dump

pytestmark = [pytest.mark.integration, pytest.mark.guestfs]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def two_datacenters(tmp_path_factory):  # type: ignore[no-untyped-def]
    """This module's own simulator, with a second datacenter DC1 (a host, datastore DS_DC1 and a CE template
    there) added at run time: a vSphere -> vSphere port crosses datacenters, and no other test sees DC1."""
    service = services.start_vcsim()
    try:
        with vcsim_vsphere(service, datacenter="DC0").build() as session:
            si = session.si
            dc1 = si.RetrieveContent().rootFolder.CreateDatacenter(name="DC1")
            connect = vim.host.ConnectSpec(hostName="esx-dc1", userName="root", password="x", force=True)
            host = wait_for_task(si, dc1.hostFolder.AddStandaloneHost_Task(spec=connect, addConnected=True), "host")
            host.configManager.datastoreSystem.CreateLocalDatastore(
                name="DS_DC1", path=str(tmp_path_factory.mktemp("ds-dc1"))
            )
        template_disk = make_raw(tmp_path_factory.mktemp("ce") / "ce.raw", MiB, runs=1, seed=3, max_run=4096)
        with vcsim_vsphere(service, datacenter="DC1").build() as session:
            disk = import_to_datastore(session, str(template_disk), LOCAL, "DS_DC1", "ce-template", "ce").disk
            create_vm_for_disk(session, "dc1-ce-template", disk, capacity_bytes=MiB, firmware="bios")
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="module")
def lab(prefect_api, two_datacenters, samba, arm, windows_disks, tmp_path_factory):  # type: ignore[no-untyped-def]
    """Connectors for every platform, a master VM on the simulator (DC0) and a vDisk on the share."""
    from tests.conftest import ARM_CLIENT, ARM_SECRET, ARM_SUBSCRIPTION, ARM_TENANT, ce_storage_settings

    vcsim = two_datacenters
    root = tmp_path_factory.mktemp("ports")
    gold = windows_disks["gpt"]
    source = vcsim_vsphere(vcsim, datacenter="DC0")
    with vcsim_vsphere(vcsim, datacenter="DC0", datastore="LocalDS_0").build() as session:
        disk = import_to_datastore(session, str(gold), LOCAL, "LocalDS_0", "port-gold", "gold").disk
        create_vm_for_disk(session, "port-gold-vm", disk, capacity_bytes=gold.stat().st_size, firmware="efi")
    save_connector("vsphere", "port-vc", {**source.model_dump(), "password": vcsim.info["password"]},
                   overwrite=True)  # fmt: skip
    # A vSphere target in the other datacenter: its datastore and the template compositing engines are cloned from.
    target = vcsim_vsphere(vcsim, datacenter="DC1", datastore="DS_DC1", ce_template="dc1-ce-template")
    save_connector("vsphere", "port-vc-ce", {**target.model_dump(), "password": vcsim.info["password"]},
                   overwrite=True)  # fmt: skip
    share = samba_share(samba, base_path="ports")
    save_connector("fileshare", "port-share", {**share.model_dump(), "password": samba.info["password"]},
                   overwrite=True)  # fmt: skip
    with share.build() as smb:
        smb.makedirs("staging")
        smb.makedirs("Store")
        smb.makedirs("vdisks")
    from imageport.storage.smb_files import SmbFileSystem

    smb_fs = SmbFileSystem(share.build())
    copy_image(str(gold), LOCAL, "vdisks/gold.vhdx", smb_fs, DiskFormat.VHDX)
    smb_fs.close()
    save_connector("local", "port-local", {"root": str(root)}, overwrite=True)
    save_connector("azure", "port-az", {
        "tenant_id": ARM_TENANT, "client_id": ARM_CLIENT, "client_secret": ARM_SECRET,
        "subscription_id": ARM_SUBSCRIPTION, "resource_group": "rg-vdi", "location": "westeurope",
        "arm_endpoint": arm.url, "authority_host": arm.url, "vnet": "vnet-ce", "subnet": "default",
        **ce_storage_settings(arm),
    }, overwrite=True)  # fmt: skip
    share_dir = Path(samba.info["share_dir"]) / "ports"
    yield {"root": root, "share": share_dir, "gold_sha": sha256(gold), "arm": arm, "vc": target}
    for name in ("port-vc", "port-vc-ce", "port-share", "port-local", "port-az"):
        delete_connector(name)


VM = {"kind": "vsphere", "connector": "port-vc", "vm": "port-gold-vm"}
VDISK = {"kind": "share", "connector": "port-share", "path": "vdisks/gold.vhdx"}
STORE = {"kind": "share", "connector": "port-share", "path": "Store"}


def azure(name: str) -> dict[str, str]:
    return {"kind": "azure-disk", "connector": "port-az", "resource_group": "rg-vdi", "name": name}


def local(path: str) -> dict[str, str]:
    return {"kind": "local", "connector": "port-local", "path": path}


@pytest.fixture()
def vsphere_session(lab):  # type: ignore[no-untyped-def]
    with lab["vc"].build() as session:
        yield session


@pytest.fixture()
def vsphere_guest(vsphere_session):  # type: ignore[no-untyped-def]
    """What runs inside a vSphere helper VM (the simulator runs no guest code): the template's boot service."""
    from tests.infra.vcsim_guest import GuestStandIn

    stand_in = GuestStandIn(vsphere_session.config.build())
    yield stand_in
    stand_in.close()


def datastore_file(session, datastore_path: str) -> Path:  # type: ignore[no-untyped-def]
    """The simulator's local file behind a datastore path (its datastores are local directories)."""
    datastore, path = datastore_path[1:].split("] ", 1)
    dirs = {p["name"]: p["info.url"] for _, p in retrieve(session.si, None, ["name", "info.url"], vim.Datastore)}
    return Path(dirs[datastore]) / path


def run(workflow: Workflow, prepare: dict[str, Any] | None = None, **fields: Any) -> PortResult:
    provisioning = "pvs" if workflow.value.endswith("pvs") else "mcs"
    prepare = {"enable_rdp": True, "provisioning_type": provisioning, **(prepare or {})}
    spec = PortSpec.model_validate({"workflow": workflow.value, "prepare": prepare, **fields})
    state = PORT_FLOWS[workflow](spec, return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    assert isinstance(result, PortResult) and all(isinstance(s, StageResult) for s in result.stages), result
    return result


def stage(result: PortResult, name: str, to: str = "") -> StageResult:
    (found,) = [s for s in result.stages if s.stage == name and to in s.target]
    return found


def cli_info(location: str) -> dict[str, Any]:
    """``imageport disk info --json`` on a location a port's result printed: the CLI reads it back as it is."""
    done = CliRunner().invoke(app, ["disk", "info", location, "--json"])
    assert done.exit_code == 0, done.output
    return json.loads(done.output)


def assert_hops_chain(result: PortResult) -> None:
    """Each stage reads what the stage before it wrote, and a copying stage's output has the hash it read."""
    written = {s.target: s for s in result.stages}
    for s in result.stages:
        before = written.get(s.source)
        if s.stage in ("upload", "export") and before is not None:
            assert s.content_hash == before.content_hash, (s, before)
        if s.stage == "publish":  # the prepared copy, published unchanged
            assert s.content_hash and s.source in written, s


def persisted_stage_results(since: float) -> list[dict[str, Any]]:
    """The stage results Prefect persisted since then (one file per cache key), as their JSON."""
    from prefect.settings import PREFECT_LOCAL_STORAGE_PATH

    files = sorted(Path(PREFECT_LOCAL_STORAGE_PATH.value()).glob("imageport-*"))
    return [json.loads(f.read_text()) for f in files if f.stat().st_mtime >= since]


def azure_disk_file(arm, name: str, to: Path, kind: str = "disks") -> Path:  # type: ignore[no-untyped-def]
    blob = arm.container.get_blob_client(arm._blob_name("rg-vdi", name, kind))
    with open(to, "wb") as f:
        blob.download_blob().readinto(f)
    return to


def rdp_enabled(image: Path, tmp_path: Path) -> bool:
    hives = registry_dump(image, tmp_path)
    return hives["SYSTEM\\ControlSet001\\Control\\Terminal Server"]["fDenyTSConnections"] == 0


def test_mcs_to_mcs_vsphere_to_samba_fans_out_to_an_azure_snapshot_and_a_vm_in_another_datacenter(  # type: ignore[no-untyped-def]
    lab, vsphere_session, vsphere_guest, tmp_path: Path
) -> None:
    vsphere_target = {"kind": "datastore", "connector": "port-vc-ce", "datastore": "DS_DC1",
                      "path": "port-mcs/gold.vmdk", "create_vm": "port-mcs-vm"}  # fmt: skip
    result = run(Workflow.MCS_TO_MCS, source=VM, staging={**VDISK, "path": "staging/mcs.vhdx"},
                 targets=[{"disk": azure("port-mcs")}, {"disk": vsphere_target}],
                 prepare={"output_snapshot_name": "port-mcs-snap"})  # fmt: skip
    assert_hops_chain(result)
    export = stage(result, "export")
    assert export.sha256 == lab["gold_sha"]  # the VM's disk, read through a snapshot
    assert export.removed[0].kind == "vsphere-snapshot" and isinstance(export.details, ExportDetails)
    assert hash_disk(lab["share"] / "staging/mcs.vhdx", sha256=True).sha256 == lab["gold_sha"]
    # Azure: the upload carries the export's bytes; the prepared copy is a snapshot, as asked.
    upload = stage(result, "upload", "azure-disk://")
    assert upload.content_hash == export.content_hash and upload.source == export.target
    on_azure = stage(result, "prepare", "azure-snapshot://port-az/rg-vdi/port-mcs-snap")
    assert on_azure.verified and on_azure.source == upload.target
    assert isinstance(on_azure.details, PrepareDetails) and on_azure.details.output_id.endswith("port-mcs-snap")
    assert [r.describe() for r in on_azure.created] == ["azure-snapshot azure-snapshot://port-az/rg-vdi/port-mcs-snap"]
    assert {r.kind for r in on_azure.removed} >= {"azure-vm", "azure-nic"}  # the CE's temporaries, gone
    assert (export.target, upload.target) == ("smb://port-share/staging/mcs.vhdx", "azure-disk://port-az/rg-vdi/port-mcs")
    assert cli_info(export.target)["virtual_size"] == cli_info(upload.target)["virtual_size"] == export.virtual_size
    assert cli_info(on_azure.target)["format"] == "vhd"  # the prepared snapshot, read through a grant, as printed
    assert rdp_enabled(azure_disk_file(lab["arm"], "port-mcs-snap", tmp_path / "p.raw", "snapshots"), tmp_path)
    assert lab["arm"].vms.vms == {} and lab["arm"].vms.nics == {}
    # vSphere, DC0 -> DC1: a flat disk on DC1's datastore, read back equal to the export; prepared on a vSphere
    # CE in DC1 by the vSphere plan; the prepared copy next to it, in a new VM there.
    upload = stage(result, "upload", "datastore://")
    assert upload.content_hash == export.content_hash and upload.verified
    assert isinstance(upload.details, ImportDetails) and upload.details.disk == "[DS_DC1] port-mcs/gold.vmdk"
    assert upload.details.vm is None and upload.target == "datastore://port-vc-ce/DS_DC1/port-mcs/gold.vmdk"
    uploaded = datastore_file(vsphere_session, upload.details.disk).with_name("gold-flat.vmdk")
    assert hash_disk(uploaded, source_format=DiskFormat.RAW).content_hash == export.content_hash  # untouched
    on_vsphere = stage(result, "prepare", "datastore://port-vc-ce/DS_DC1/port-mcs/gold-prepared.vmdk")
    assert isinstance(on_vsphere.details, PrepareDetails)
    assert on_vsphere.verified and on_vsphere.details.platform == "vsphere"
    assert on_vsphere.details.output_id == "[DS_DC1] port-mcs/gold-prepared.vmdk"
    changes = "\n".join(on_vsphere.details.changes)
    assert "SanPolicy" in changes and "fDenyTSConnections" in changes
    assert not any(azure_only in changes for azure_only in ("vmbus", "EnableDHCP", "VMTools", "RealTimeIsUniversal"))
    prepared = datastore_file(vsphere_session, on_vsphere.details.output_id).with_name("gold-prepared-flat.vmdk")
    assert hash_disk(prepared, source_format=DiskFormat.RAW).content_hash != export.content_hash
    assert [r.id.split(" ")[0] for r in on_vsphere.created if r.kind == "vsphere-vm"] == ["port-mcs-vm"]
    ((_, props),) = retrieve(vsphere_session.si, [find_vm(vsphere_session.si, "port-mcs-vm")],
                             ["config.hardware.device", "config.firmware", "parent"])  # fmt: skip
    disks = [d.backing.fileName for d in props["config.hardware.device"] if isinstance(d, vim.vm.device.VirtualDisk)]
    assert disks == [on_vsphere.details.output_id] and props["config.firmware"] == "efi"  # a GPT image boots EFI
    assert props["parent"] == vsphere_session.datacenter().vmFolder  # DC1's
    assert ce_host.list_ce_vms(vsphere_session) == []  # the helper VM is gone


def test_mcs_to_pvs_fans_out_to_two_targets_and_a_rerun_reuses_every_stage(lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fields = {
        "source": VM,
        "staging": {**VDISK, "path": "staging/m2p.vhdx"},
        "targets": [
            {"disk": local("m2p/gold.vhdx"), "store": STORE, "vdisk_name": "gold-local"},
            {"disk": azure("port-m2p"), "store": STORE, "vdisk_name": "gold-azure"},
        ],
    }
    started = time.time()
    result = run(Workflow.MCS_TO_PVS, **fields)
    assert [s.stage for s in result.stages].count("publish") == 2
    assert_hops_chain(result)
    for name in ("gold-local", "gold-azure"):
        published = lab["share"] / "Store" / f"{name}.vhdx"
        assert published.is_file() and (lab["share"] / "Store" / f"{name}.register.txt").is_file()
    assert rdp_enabled(_raw(lab["share"] / "Store" / "gold-local.vhdx", tmp_path), tmp_path)
    assert not any(s.reused for s in result.stages)
    assert all(s.bytes_written for s in result.stages if s.stage != "prepare"), result.stages
    again = run(Workflow.MCS_TO_PVS, **fields)
    assert all(s.reused for s in again.stages), [(s.stage, s.reused) for s in again.stages]
    # Reused stages come back typed from the JSON Prefect persisted: the same results, named the same way.
    first = {(s.stage, s.target): s.model_dump(exclude={"seconds", "reused"}) for s in result.stages}
    assert {(s.stage, s.target): s.model_dump(exclude={"seconds", "reused"}) for s in again.stages} == first
    persisted = persisted_stage_results(started)
    assert len(persisted) == len(result.stages), persisted
    assert all(p["metadata"]["serializer"]["type"] == "json" for p in persisted)
    assert {"imageport.results.StageResult"} == {json.loads(p["result"])["__class__"] for p in persisted}


def _raw(vhdx: Path, tmp_path: Path) -> Path:
    out = tmp_path / (vhdx.stem + ".raw")
    copy_image(str(vhdx), LOCAL, str(out), LOCAL, DiskFormat.RAW)
    return out


def test_pvs_to_mcs_vdisk_on_samba_to_azure(lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Also issue 16's done-when: the prepare leaves a startup action, so the port finalizes the Azure disk
    (finalize auto): the disk it leaves says, in its own firstboot.log, that its actions ran."""
    from tests.infra.windows_guest import read_file

    result = run(Workflow.PVS_TO_MCS, source=VDISK, staging={**VDISK, "path": "staging/unused.vhdx"},
                 targets=[{"disk": azure("port-p2m")}], prepare={"domain_unjoin": True})  # fmt: skip
    assert [s.stage for s in result.stages] == ["upload", "prepare", "finalize"]
    assert stage(result, "upload").content_hash == hash_disk(lab["share"] / "vdisks/gold.vhdx").content_hash
    assert stage(result, "prepare").pending_first_boot == ["30-domain-unjoin.cmd"]
    finalized = stage(result, "finalize")
    assert finalized.source == finalized.target == "azure-disk://port-az/rg-vdi/port-p2m-prepared"
    assert isinstance(finalized.details, FinalizeDetails)
    assert [(a.name, a.exit_code) for a in finalized.details.done] == [("30-domain-unjoin.cmd", 0)]
    assert "**Next, for" not in port_table(result)  # the actions ran: no step is left for the admin
    image = azure_disk_file(lab["arm"], "port-p2m-prepared", tmp_path / "p.raw")
    assert rdp_enabled(image, tmp_path)
    log = read_file(image, "/ProgramData/imageport/firstboot/firstboot.log", tmp_path / "log")
    assert log is not None and log.decode().rstrip().endswith("all actions done; startup script removed")
    assert lab["arm"].vms.vms == {} and lab["arm"].disks["rg-vdi/port-p2m-prepared"]["state"] == "Unattached"


def test_pvs_to_pvs_vdisk_to_local_ce_to_store(lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = run(Workflow.PVS_TO_PVS, source=VDISK, staging={**VDISK, "path": "staging/unused.vhdx"},
                 targets=[{"disk": local("p2p/gold.vhdx"), "store": STORE, "vdisk_name": "gold-p2p"}])  # fmt: skip
    assert [s.stage for s in result.stages] == ["upload", "prepare", "publish"]
    prepared = lab["root"] / "p2p" / "gold-prepared.vhdx"
    assert stage(result, "prepare").target == "local://port-local/p2p/gold-prepared.vhdx"
    assert cli_info(stage(result, "publish").target)["format"] == cli_info(stage(result, "prepare").target)["format"]
    published = lab["share"] / "Store" / "gold-p2p.vhdx"
    assert hash_disk(published).content_hash == hash_disk(prepared).content_hash
    assert hash_disk(prepared).content_hash != hash_disk(lab["share"] / "vdisks/gold.vhdx").content_hash
    assert rdp_enabled(_raw(published, tmp_path), tmp_path)


def test_a_target_kind_the_adapter_table_refuses_is_refused_before_any_stage() -> None:
    """No connector, no service: the refusal comes from the adapter table before the export would start."""
    from flows.ports import port_plan
    from tasks.checks.run import _roles

    snapshot = {**azure("port-snap"), "kind": "azure-snapshot"}
    spec = PortSpec.model_validate({"workflow": "mcs-to-mcs", "source": VM, "staging": {**VDISK, "path": "s.vhdx"},
                                    "targets": [{"disk": azure("ok")}, {"disk": snapshot}]})  # fmt: skip
    plan = port_plan(spec)
    _roles(plan, plan.checks)
    problems = [p.line for p in plan.checks.report().problems]
    assert problems == ["targets[1].disk: a azure-snapshot reference cannot be the target of upload "
                        "(it can be: datastore, azure-disk, local)"], problems


def test_finalize_on_is_refused_up_front_where_the_prepared_image_boots_no_helper_vm() -> None:
    """finalize.enabled on: a target whose prepared copy no platform boots here (a local file, a snapshot, a
    datastore disk) is refused by the checks, naming where its actions run instead; auto refuses nothing."""
    from flows.ports import port_plan

    local = {"kind": "local", "connector": "port-local", "path": "p/gold.vhdx"}
    datastore = {"kind": "datastore", "connector": "port-vc", "datastore": "DS", "path": "p/gold.vmdk"}
    fields = {"workflow": "mcs-to-mcs", "source": VM, "staging": {**VDISK, "path": "s.vhdx"},
              "targets": [{"disk": azure("ok")}, {"disk": local}, {"disk": datastore}],
              "prepare": {"output_snapshot_name": "snap"}}  # fmt: skip
    auto = port_plan(PortSpec.model_validate(fields))
    assert not [p for p in auto.checks.report().problems if p.field == "finalize.enabled"]
    plan = port_plan(PortSpec.model_validate({**fields, "finalize": {"enabled": "on"}}))
    problems = [p.line for p in plan.checks.report().problems if p.field == "finalize.enabled"]
    assert len(problems) == 3, problems
    assert problems[0].startswith("finalize.enabled: finalize: an Azure snapshot -- a snapshot does not boot")
    assert "a local image has no hypervisor here" in problems[1]
    assert "does not boot helper VMs on vSphere yet" in problems[2]
