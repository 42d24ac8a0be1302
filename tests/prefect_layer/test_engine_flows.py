"""The compositing engine from flows: prepare on an Azure CE, CE slots, the reap flow and the crash hook."""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest

from blocks.registry import delete_connector, save_connector
from flows.finalize_image import finalize_image_flow
from flows.prepare_image import prepare_image_flow
from flows.reap import reap_flow
from imageport.disks.detect import open_disk
from imageport.engine.local import CE_DIR
from imageport.models import FinalizeSpec, PrepareSpec
from imageport.platforms.azure.disks import upload_to_managed_disk
from imageport.platforms.azure.session import AzureConfig
from imageport.results import FinalizeDetails, PrepareDetails
from tasks.engine import reap_run_resources
from tests.infra.configs import samba_share
from tests.infra.signed_pe import build_pe

pytestmark = [pytest.mark.integration, pytest.mark.guestfs]


def gold_on_an_azure_ce(settings: dict[str, object], disk: Path, name: str, connector: str, tmp_path: Path) -> None:
    """The Windows test disk as managed disk ``rg-vdi/NAME`` and an Azure connector that hosts CEs."""
    with open_disk(disk) as reader:
        upload_to_managed_disk(AzureConfig(**settings).build(), reader, "rg-vdi", name,
                               checkpoint_dir=tmp_path, overwrite=True)  # fmt: skip
    save_connector("azure", connector, settings, overwrite=True)


def pvs_installer(tmp_path: Path, padding: int) -> Path:
    return build_pe(tmp_path / "PVS_Device_x64.exe", version="2402.0.0.1129", product="PVS", signer="Citrix",
                    padding=padding)  # fmt: skip


def assert_pvs_pending(result, installer: Path) -> None:  # type: ignore[no-untyped-def]
    """The prepare staged the checked PVS installer as its one pending first-boot action."""
    assert isinstance(result.details, PrepareDetails)
    (pending,) = result.details.pending
    assert pending.name == "20-install-pvs.cmd" and result.pending_first_boot == ["20-install-pvs.cmd"]
    assert pending.installer is not None and pending.installer.version == "2402.0.0.1129"
    assert pending.installer.signer == "CN=Citrix,O=Test Systems" and pending.installer.size == installer.stat().st_size
    assert pending.installer.sha256 == hashlib.sha256(installer.read_bytes()).hexdigest()
    assert "/ProgramData/imageport/installers/PVS_Device_x64.exe" in " ".join(result.details.changes)


def test_prepare_flow_on_an_azure_ce_keeps_only_the_output(
    prefect_api, arm, azure_settings, samba, windows_disks, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Also issue 16's done-when: the PVS target-device installer comes from a share, is checked, reaches the
    Azure CE as a blob, is staged, and the result lists it pending with what the admin must do next."""
    from prefect import get_client

    settings = {**azure_settings, "vnet": "vnet-ce", "subnet": "default", "ce_max_concurrent": 1}
    gold_on_an_azure_ce(settings, windows_disks["gpt"], "flow-gold", "flow-az-ce", tmp_path)
    installer = pvs_installer(tmp_path, 3 << 20)
    share = samba_share(samba, base_path="flow-installers")
    with share.build() as smb:
        smb.makedirs("citrix")
        smb.write_bytes("citrix/PVS_Device_x64.exe", installer.read_bytes())
    save_connector("fileshare", "flow-citrix", {**share.model_dump(), "password": samba.info["password"]},
                   overwrite=True)  # fmt: skip
    try:
        fields = {
            "disk": {"kind": "azure-disk", "connector": "flow-az-ce", "resource_group": "rg-vdi", "name": "flow-gold"},
            "target_platform": "azure", "output_disk_name": "flow-gold-ready", "enable_rdp": True,
            "boot_diagnostics": True, "provisioning_type": "pvs", "pvs_install_version": "2402.0",
            "installers": {"kind": "share", "connector": "flow-citrix", "path": "citrix"},
        }  # fmt: skip
        # A version mismatch is refused by the checks, before any CE exists.
        mismatch = prepare_image_flow(PrepareSpec.model_validate({**fields, "pvs_install_version": "2311"}),
                                      return_state=True)  # fmt: skip
        assert mismatch.is_failed() and arm.vms.vms == {}
        state = prepare_image_flow(PrepareSpec.model_validate(fields), return_state=True)
        assert state.is_completed(), state.message
        result = state.result()
        with get_client(sync_client=True) as client:
            limit = client.read_global_concurrency_limit_by_name("imageport-ce-flow-az-ce")
        # Finalize (issue 16 part 3): the prepared disk itself boots once in a helper VM; its guest runs the
        # startup script, and Run Command reads firstboot.log until its last line says every action ran.
        ready_disk = {**fields["disk"], "name": "flow-gold-ready"}
        finalized = finalize_image_flow(FinalizeSpec.model_validate({"disk": ready_disk}), return_state=True)
        assert finalized.is_completed(), finalized.message
        with get_client(sync_client=True) as client:
            artifact = client.read_latest_artifacts()
        # The unprepared source registers no startup script: its log never ends, and finalize gives up at its
        # timeout (in its own wait, not a Prefect timeout), deleting the helper VM and keeping the disk.
        timed_out = finalize_image_flow(FinalizeSpec.model_validate({"disk": fields["disk"], "timeout_s": 1}),
                                        return_state=True)  # fmt: skip
    finally:
        delete_connector("flow-az-ce")
        delete_connector("flow-citrix")
    assert ("smb://flow-citrix/citrix/PVS_Device_x64.exe: is version 2402.0.0.1129, but pvs_install_version asks "
            "for 2311") in str(mismatch.message)  # fmt: skip
    assert_pvs_pending(result, installer)
    assert result.details.output_id == "rg-vdi/flow-gold-ready"
    assert "boot it once on its target platform" in result.details.next_step
    assert result.verified == "re-read" and result.target == "rg-vdi/flow-gold-ready"
    created = {r.kind for r in result.created + result.removed}
    assert created == {"azure-vm", "azure-nic", "azure-os-disk", "azure-disk", "azure-blob"}
    assert [r.kind for r in result.created] == ["azure-disk"]  # only the output is left in place
    assert limit.limit == 1 and limit.active_slots == 0
    assert arm.vms.vms == {} and arm.vms.nics == {}
    assert "imageport-expires" not in arm.disks["rg-vdi/flow-gold-ready"]["tags"]
    # Boot diagnostics (Citrix's DebugSettings): the CE VM had them on, and its console came back in the result.
    (ce_vm,) = {key for key in arm.vms.console_reads}
    assert ce_vm.startswith("rg-vdi/imageport-ce-prepare-")
    assert "Cloud-init v. 23.4.4-0ubuntu0~22.04.1 finished, status: done" in str(result.details.boot_log)
    # Finalized: the pending action is done (read back from the disk the helper booted), the helper VM and its
    # NIC are gone, the disk is kept -- unattached, without an expiry, its actions run.
    done = finalized.result()
    assert isinstance(done.details, FinalizeDetails) and done.stage.value == "finalize"
    assert [(a.name, a.exit_code) for a in done.details.done] == [("20-install-pvs.cmd", 0)]
    assert done.details.failed == [] and done.warnings == []
    assert done.details.log.rstrip().endswith("all actions done; startup script removed")
    assert "end 20-install-pvs.cmd exit 0" in done.details.log
    assert done.target == "azure-disk://flow-az-ce/rg-vdi/flow-gold-ready"
    assert done.details.image == "rg-vdi/flow-gold-ready"
    assert {r.kind for r in done.removed} == {"azure-vm", "azure-nic"} and done.created == []
    helper = done.details.vm
    assert helper.startswith("imageport-finalize-")
    assert arm.vms.booted[-1] == (f"rg-vdi/{helper}", ["20-install-pvs.cmd"])  # read from the disk at its boot
    assert arm.vms.scripts[-1] == "Get-Content -LiteralPath 'C:\\ProgramData\\imageport\\firstboot\\firstboot.log' " \
                                  "-Raw -ErrorAction SilentlyContinue"  # fmt: skip
    assert arm.vms.vms == {} and arm.vms.nics == {}
    ready = arm.disks["rg-vdi/flow-gold-ready"]
    assert ready["state"] == "Unattached" and "imageport-expires" not in ready["tags"]
    assert any(a.key == "finalize-image" and "`20-install-pvs.cmd`: exit 0" in str(a.data) for a in artifact)
    assert timed_out.is_failed() and "did not end with 'all actions done' within 1 s" in str(timed_out.message)
    assert arm.vms.vms == {} and arm.vms.nics == {} and arm.disks["rg-vdi/flow-gold"]["state"] == "Unattached"


def test_prepare_flow_on_an_azure_ce_fetches_installers_from_a_blob_container_by_its_sas(
    prefect_api, arm, azure_settings, windows_disks, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Issue 16 part 2: the installers folder is a blob container's folder behind a read+list SAS (a blob
    connector). The orchestrator lists and checks it with the SAS; the Azure CE fetches the blob itself by that
    SAS (nothing copied). A SAS Azure refuses is one line, naming the field, before any CE exists; the SAS is in
    no message."""
    from datetime import UTC, datetime, timedelta

    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    settings = {**azure_settings, "vnet": "vnet-ce", "subnet": "default"}
    gold_on_an_azure_ce(settings, windows_disks["gpt"], "blob-gold", "blob-az-ce", tmp_path)
    installer = pvs_installer(tmp_path, 1 << 20)
    container = arm.blobs.create_container(f"citrix-{uuid.uuid4().hex[:8]}")
    container.upload_blob("pvs/PVS_Device_x64.exe", installer.read_bytes())
    container.upload_blob("pvs/readme.txt", b"not an installer")
    sas = generate_container_sas(arm.blobs.account_name, container.container_name,
                                 account_key=arm.blobs.credential.account_key,
                                 permission=ContainerSasPermissions(read=True, list=True),
                                 expiry=datetime.now(UTC) + timedelta(hours=1))  # fmt: skip
    forged = sas.replace("sig=", "sig=AAAA")
    url = f"{arm.blobs.url.rstrip('/')}/{container.container_name}"
    save_connector("blob", "blob-citrix", {"container_url": url, "sas": sas}, overwrite=True)
    save_connector("blob", "blob-forged", {"container_url": url, "sas": forged}, overwrite=True)
    try:
        fields = {
            "disk": {"kind": "azure-disk", "connector": "blob-az-ce", "resource_group": "rg-vdi", "name": "blob-gold"},
            "target_platform": "azure", "output_disk_name": "blob-gold-ready", "provisioning_type": "pvs",
            "pvs_install_version": "2402.0", "installers": {"kind": "blob", "connector": "blob-citrix", "path": "pvs"},
        }  # fmt: skip
        bad = {**fields, "installers": {"kind": "blob", "connector": "blob-forged", "path": "pvs"}}
        refused = prepare_image_flow(PrepareSpec.model_validate(bad), return_state=True)
        assert refused.is_failed() and arm.vms.vms == {}
        state = prepare_image_flow(PrepareSpec.model_validate(fields), return_state=True)
        assert state.is_completed(), state.message
        result = state.result()
    finally:
        for name in ("blob-az-ce", "blob-citrix", "blob-forged"):
            delete_connector(name)
    (line,) = [ln for ln in str(refused.message).splitlines() if "installers" in ln]
    assert ("forbidden" in line or "access refused" in line) and container.container_name in line, refused.message
    assert sas.split("sig=")[1][:12] not in str(refused.message) and "AAAA" not in str(refused.message)
    assert_pvs_pending(result, installer)
    assert result.details.output_id == "rg-vdi/blob-gold-ready"
    # Fetched by the CE from the container itself: no installer blob was copied for it.
    blobs = [r.id for r in result.removed if r.kind == "azure-blob"]
    assert blobs and not [b for b in blobs if "/installers/" in b], blobs
    assert arm.vms.vms == {} and arm.vms.nics == {}


def test_prepare_flow_on_a_vsphere_ce_stages_a_pvs_installer_from_a_datastore_folder(
    prefect_api, vcsim, windows_disks, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Issue 16 part 2: the installers folder is on a datastore; checked by the orchestrator (listed by the
    datastore browser, read over /folder), each delivered on a read-only disk of its own in the CE's work folder,
    checked again by the agent in the guest (which has no network), staged; the result lists it pending. A
    missing folder is one line, before any helper VM exists."""
    from pyVmomi import vim

    from imageport.disks.local_files import LOCAL
    from imageport.platforms.vsphere import ce_host
    from imageport.platforms.vsphere.imports import import_to_datastore
    from imageport.platforms.vsphere.inventory import retrieve
    from tests.infra.configs import vcsim_vsphere
    from tests.infra.vcsim_guest import GuestStandIn

    config = vcsim_vsphere(vcsim, datastore="LocalDS_0", ce_template="DC0_H0_VM1")
    installer = pvs_installer(tmp_path, (1 << 20) + 77)  # not a whole sector: its disk pads it
    with config.build() as session:
        import_to_datastore(session, str(windows_disks["gpt"]), LOCAL, "LocalDS_0", "inst-gold", "gold")
        dirs = {p["name"]: p["info.url"] for _, p in retrieve(session.si, None, ["name", "info.url"], vim.Datastore)}
        (Path(dirs["LocalDS_0"]) / "citrix-installers").mkdir(exist_ok=True)
        shutil.copy(installer, Path(dirs["LocalDS_0"]) / "citrix-installers/PVS_Device_x64.exe")
    save_connector("vsphere", "inst-vc", {**config.model_dump(), "password": vcsim.info["password"]}, overwrite=True)
    guest = GuestStandIn(config.build())
    try:
        fields = {
            "disk": {"kind": "datastore", "connector": "inst-vc", "datastore": "LocalDS_0",
                     "path": "inst-gold/gold.vmdk"},
            "target_platform": "vsphere", "provisioning_type": "pvs", "pvs_install_version": "2402.0",
            "installers": {"kind": "datastore", "connector": "inst-vc", "datastore": "LocalDS_0",
                           "path": "citrix-installers"},
        }  # fmt: skip
        missing = {**fields, "installers": {**fields["installers"], "path": "no-such-folder"}}
        refused = prepare_image_flow(PrepareSpec.model_validate(missing), return_state=True)
        with config.build() as session:
            assert refused.is_failed() and ce_host.list_ce_vms(session) == []
        state = prepare_image_flow(PrepareSpec.model_validate(fields), return_state=True)
        assert state.is_completed(), state.message
        result = state.result()
        with config.build() as session:
            assert ce_host.list_ce_vms(session) == []
    finally:
        guest.close()
        delete_connector("inst-vc")
    (line,) = [ln for ln in str(refused.message).splitlines() if "no-such-folder" in ln]
    assert "prepare.installers" in line or "installers" in line, refused.message
    assert_pvs_pending(result, installer)
    assert result.details.output_id == "[LocalDS_0] inst-gold/gold-prepared.vmdk"
    # The installer went on a disk of its own, removed with the CE (its work folder is gone too).
    assert "vsphere-installer-disk" in {r.kind for r in result.removed}
    ce_vm = next(r.id for r in result.removed if r.kind == "vsphere-vm")
    assert not (Path(dirs["LocalDS_0"]) / f"{ce_vm}-work").exists()


def test_diagnostics_of_an_azure_disk_on_a_ce_with_its_logs_saved_on_the_share(
    prefect_api, arm, azure_settings, samba, windows_disks, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """A disk a failed port left on Azure is read there: a CE's scratch copy, the CE's log and console in the
    report, JSON + Markdown on the share and as the run's artifact; nothing left on Azure, the disk untouched."""
    from prefect import get_client

    from flows.diagnostics import diagnostics_flow
    from imageport.models import DiagnosticsSpec
    from imageport.results import DiagnosticsResult
    from tests.infra.configs import samba_share

    settings = {**azure_settings, "vnet": "vnet-ce", "subnet": "default"}
    with open_disk(windows_disks["hibernated"]) as reader:
        upload_to_managed_disk(AzureConfig(**settings).build(), reader, "rg-vdi", "diag-gold",
                               checkpoint_dir=tmp_path, overwrite=True)  # fmt: skip
    before = dict(arm.disks["rg-vdi/diag-gold"])
    save_connector("azure", "diag-az", settings, overwrite=True)
    share = samba_share(samba, base_path="diag-reports")
    save_connector("fileshare", "diag-share", {**share.model_dump(), "password": samba.info["password"]},
                   overwrite=True)  # fmt: skip
    with share.build() as smb:
        smb.makedirs("reports")
    reads_before = len(arm.vms.console_reads)
    try:
        spec = DiagnosticsSpec.model_validate({
            "disk": {"kind": "azure-disk", "connector": "diag-az", "resource_group": "rg-vdi", "name": "diag-gold"},
            "output": {"kind": "share", "connector": "diag-share", "path": "reports/diag-gold"},
            "ce_logs": True, "boot_diagnostics": True,
        })  # fmt: skip
        state = diagnostics_flow(spec, return_state=True)
        assert state.is_completed(), state.message
        result = state.result()
        with get_client(sync_client=True) as client:
            artifact = client.read_latest_artifacts()
    finally:
        delete_connector("diag-az")
        delete_connector("diag-share")
    assert isinstance(result, DiagnosticsResult)
    assert result.disk == "azure-disk://diag-az/rg-vdi/diag-gold" and result.engine == "azure"
    assert "hibernated (hiberfil.sys holds a session)" in result.problems  # read from the disk's own hives
    assert "diagnostics job for run" in result.report["ce_log"]  # the agent's own log, from the CE
    assert "Cloud-init v. 23.4.4-0ubuntu0~22.04.1 finished" in result.report["boot_log"]
    assert len(arm.vms.console_reads) == reads_before + 1
    saved = Path(samba.info["share_dir"]) / "diag-reports" / "reports"
    assert result.saved == ["smb://diag-share/reports/diag-gold.json", "smb://diag-share/reports/diag-gold.md"]
    assert json.loads((saved / "diag-gold.json").read_text())["problems"] == result.problems
    markdown = (saved / "diag-gold.md").read_text()
    assert "## Console of the azure compositing engine (boot diagnostics)" in markdown
    assert "## Log of the azure compositing engine" in markdown and markdown == result.markdown
    assert sorted(p.name for p in saved.iterdir()) == ["diag-gold.json", "diag-gold.md"]  # no temporary left
    assert any(a.key == "diagnostics" and "Diagnostics: azure-disk://diag-az" in str(a.data) for a in artifact)
    # Read on a scratch copy, which went with the CE: nothing is left on Azure; the disk is as it was.
    assert {r.kind for r in result.removed} == {"azure-vm", "azure-nic", "azure-os-disk", "azure-disk", "azure-blob"}
    assert arm.vms.vms == {} and arm.vms.nics == {}
    assert not [k for k in arm.disks if k.startswith("rg-vdi/imageport-ce-")]
    assert arm.disks["rg-vdi/diag-gold"]["state"] == before["state"] == "Unattached"


def test_reap_flow_and_crash_hook_remove_a_kept_ce(prefect_api, windows_disks, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    shutil.copyfile(windows_disks["hibernated"], tmp_path / "hib.img")
    save_connector("local", "flow-reap", {"root": str(tmp_path)}, overwrite=True)
    ce_root = tmp_path / CE_DIR
    try:
        spec = PrepareSpec.model_validate({
            "disk": {"kind": "local", "connector": "flow-reap", "path": "hib.img"},
            "target_platform": "azure", "hyper_v_generation": "V1", "keep_on_failure": True,
        })  # fmt: skip  (the image is MBR: V1, or the checks refuse it before any CE exists)
        failed = prepare_image_flow(spec, return_state=True)
        assert failed.is_failed() and "hibernat" in str(failed.message)
        assert len(list(ce_root.iterdir())) == 1  # kept for debugging, as asked
        # The scheduled reaper leaves it until it expires...
        report = reap_flow(dry_run=False)
        assert report["deleted"] == [] and len(report["kept_unexpired"]) == 1
        # ...the run's own clean-up takes it now (the run has ended).
        run_id = str(failed.state_details.flow_run_id)
        report = reap_flow(run_id=run_id)
        assert len(report["deleted"]) == 1 and list(ce_root.iterdir()) == []
        # The crash/cancellation hook does the same for its own run.
        again = prepare_image_flow(spec, return_state=True)
        assert again.is_failed() and len(list(ce_root.iterdir())) == 1
        flow_run = SimpleNamespace(id=again.state_details.flow_run_id)
        reap_run_resources(None, flow_run, SimpleNamespace(type=SimpleNamespace(value="CRASHED")))
        assert list(ce_root.iterdir()) == []
    finally:
        delete_connector("flow-reap")
    assert (tmp_path / "hib.img").exists() and not (tmp_path / "hib-prepared.img").exists()
