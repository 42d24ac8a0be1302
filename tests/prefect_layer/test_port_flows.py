"""The four workflows end to end on real services: vCenter simulator -> Samba -> Azure stand-in / local platform,
Samba PVS stores; content hashes at each hop, an independent registry reader for what prepare changed."""

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
from imageport.disks.base import LOCAL
from imageport.disks.convert import hash_disk
from imageport.models import DiskFormat, PortSpec, Workflow
from imageport.platforms.vsphere.imports import create_vm_for_disk, import_to_datastore
from imageport.transfer.copy import copy_image
from tests.infra.configs import samba_share, vcsim_vsphere
from tests.infra.windows_image import registry_dump

pytestmark = [pytest.mark.integration, pytest.mark.guestfs]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def lab(prefect_api, vcsim, samba, arm, windows_disks, tmp_path_factory):  # type: ignore[no-untyped-def]
    """Connectors for every platform, a master VM on the simulator and a vDisk on the share."""
    from tests.conftest import ARM_CLIENT, ARM_SECRET, ARM_SUBSCRIPTION, ARM_TENANT, ce_storage_settings

    root = tmp_path_factory.mktemp("ports")
    gold = windows_disks["gpt"]
    with vcsim_vsphere(vcsim, datastore="LocalDS_0").build() as session:
        disk = import_to_datastore(session, str(gold), LOCAL, "LocalDS_0", "port-gold", "gold").disk
        create_vm_for_disk(session, "port-gold-vm", disk, capacity_bytes=gold.stat().st_size, firmware="efi")
    save_connector("vsphere", "port-vc", {**vcsim_vsphere(vcsim).model_dump(), "password": vcsim.info["password"]},
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
    yield {"root": root, "share": share_dir, "gold_sha": sha256(gold), "arm": arm}
    for name in ("port-vc", "port-share", "port-local", "port-az"):
        delete_connector(name)


VM = {"kind": "vsphere", "connector": "port-vc", "vm": "port-gold-vm"}
VDISK = {"kind": "share", "connector": "port-share", "path": "vdisks/gold.vhdx"}
STORE = {"kind": "share", "connector": "port-share", "path": "Store"}


def azure(name: str) -> dict[str, str]:
    return {"kind": "azure-disk", "connector": "port-az", "resource_group": "rg-vdi", "name": name}


def local(path: str) -> dict[str, str]:
    return {"kind": "local", "connector": "port-local", "path": path}


def run(workflow: Workflow, **fields: Any) -> dict[str, Any]:
    provisioning = "pvs" if workflow.value.endswith("pvs") else "mcs"
    prepare = {"enable_rdp": True, "provisioning_type": provisioning}
    spec = PortSpec.model_validate({"workflow": workflow.value, "prepare": prepare, **fields})
    state = PORT_FLOWS[workflow](spec, return_state=True)
    assert state.is_completed(), state.message
    return state.result()


def stage(result: dict[str, Any], name: str, to: str = "") -> dict[str, Any]:
    (found,) = [s for s in result["stages"] if s["stage"] == name and to in s["to"]]
    return found


def cli_info(location: str) -> dict[str, Any]:
    """``imageport disk info --json`` on a location a port's result printed: the CLI reads it back as it is."""
    done = CliRunner().invoke(app, ["disk", "info", location, "--json"])
    assert done.exit_code == 0, done.output
    return json.loads(done.output)


def azure_disk_file(arm, name: str, to: Path) -> Path:  # type: ignore[no-untyped-def]
    blob = arm.container.get_blob_client(arm._blob_name("rg-vdi", name))
    with open(to, "wb") as f:
        blob.download_blob().readinto(f)
    return to


def rdp_enabled(image: Path, tmp_path: Path) -> bool:
    hives = registry_dump(image, tmp_path)
    return hives["SYSTEM\\ControlSet001\\Control\\Terminal Server"]["fDenyTSConnections"] == 0


def test_mcs_to_mcs_vsphere_to_samba_to_azure(lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = run(Workflow.MCS_TO_MCS, source=VM, staging={**VDISK, "path": "staging/mcs.vhdx"},
                 targets=[{"disk": azure("port-mcs")}])  # fmt: skip
    export, upload, prepare = (stage(result, s) for s in ("export", "upload", "prepare"))
    assert export["sha256"] == lab["gold_sha"]  # the VM's disk, read through a snapshot
    assert hash_disk(lab["share"] / "staging/mcs.vhdx", sha256=True).sha256 == lab["gold_sha"]
    assert upload["content_hash"] == export["content_hash"]
    assert prepare["verified"] and prepare["output_id"] == "rg-vdi/port-mcs-prepared"
    assert (export["to"], upload["to"]) == ("smb://port-share/staging/mcs.vhdx", "azure-disk://port-az/rg-vdi/port-mcs")
    assert cli_info(export["to"])["virtual_size"] == cli_info(upload["to"])["virtual_size"] == export["virtual_size"]
    assert cli_info(prepare["to"])["format"] == "vhd"  # the prepared disk, read through a grant, by what was printed
    assert rdp_enabled(azure_disk_file(lab["arm"], "port-mcs-prepared", tmp_path / "p.raw"), tmp_path)
    assert lab["arm"].vms.vms == {} and lab["arm"].vms.nics == {}


def test_mcs_to_pvs_fans_out_to_two_targets_and_a_rerun_reuses_every_stage(lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fields = {
        "source": VM,
        "staging": {**VDISK, "path": "staging/m2p.vhdx"},
        "targets": [
            {"disk": local("m2p/gold.vhdx"), "store": STORE, "vdisk_name": "gold-local"},
            {"disk": azure("port-m2p"), "store": STORE, "vdisk_name": "gold-azure"},
        ],
    }
    result = run(Workflow.MCS_TO_PVS, **fields)
    assert [s["stage"] for s in result["stages"]].count("publish") == 2
    for name in ("gold-local", "gold-azure"):
        published = lab["share"] / "Store" / f"{name}.vhdx"
        assert published.is_file() and (lab["share"] / "Store" / f"{name}.register.txt").is_file()
    assert rdp_enabled(_raw(lab["share"] / "Store" / "gold-local.vhdx", tmp_path), tmp_path)
    assert not any(s["reused"] for s in result["stages"])
    again = run(Workflow.MCS_TO_PVS, **fields)
    assert all(s["reused"] for s in again["stages"]), [(s["stage"], s["reused"]) for s in again["stages"]]


def _raw(vhdx: Path, tmp_path: Path) -> Path:
    out = tmp_path / (vhdx.stem + ".raw")
    copy_image(str(vhdx), LOCAL, str(out), LOCAL, DiskFormat.RAW)
    return out


def test_pvs_to_mcs_vdisk_on_samba_to_azure(lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = run(Workflow.PVS_TO_MCS, source=VDISK, staging={**VDISK, "path": "staging/unused.vhdx"},
                 targets=[{"disk": azure("port-p2m")}])  # fmt: skip
    assert [s["stage"] for s in result["stages"]] == ["upload", "prepare"]
    assert stage(result, "upload")["content_hash"] == hash_disk(lab["share"] / "vdisks/gold.vhdx").content_hash
    assert rdp_enabled(azure_disk_file(lab["arm"], "port-p2m-prepared", tmp_path / "p.raw"), tmp_path)


def test_pvs_to_pvs_vdisk_to_local_ce_to_store(lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = run(Workflow.PVS_TO_PVS, source=VDISK, staging={**VDISK, "path": "staging/unused.vhdx"},
                 targets=[{"disk": local("p2p/gold.vhdx"), "store": STORE, "vdisk_name": "gold-p2p"}])  # fmt: skip
    assert [s["stage"] for s in result["stages"]] == ["upload", "prepare", "publish"]
    prepared = lab["root"] / "p2p" / "gold-prepared.vhdx"
    assert stage(result, "prepare")["to"] == "local://port-local/p2p/gold-prepared.vhdx"
    assert cli_info(stage(result, "publish")["to"])["format"] == cli_info(stage(result, "prepare")["to"])["format"]
    published = lab["share"] / "Store" / "gold-p2p.vhdx"
    assert hash_disk(published).content_hash == hash_disk(prepared).content_hash
    assert hash_disk(prepared).content_hash != hash_disk(lab["share"] / "vdisks/gold.vhdx").content_hash
    assert rdp_enabled(_raw(published, tmp_path), tmp_path)


def test_a_target_kind_the_adapter_table_refuses_is_refused_before_any_stage() -> None:
    """No connector, no service: the refusal comes from the adapter table before the export would start."""
    from flows.ports import _refuse_unfit_kinds
    from imageport.errors import InputError

    snapshot = {**azure("port-snap"), "kind": "azure-snapshot"}
    spec = PortSpec.model_validate({"workflow": "mcs-to-mcs", "source": VM, "staging": {**VDISK, "path": "s.vhdx"},
                                    "targets": [{"disk": azure("ok")}, {"disk": snapshot}]})  # fmt: skip
    with pytest.raises(InputError, match=r"targets\[1\]\.disk: an Azure snapshot \(azure-snapshot\) cannot be the "
                                         r"target of upload"):  # fmt: skip
        _refuse_unfit_kinds(spec)
