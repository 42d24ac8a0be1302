"""Nutanix AHV as the source of the two MCS workflows, end to end on real services: the Prism stand-in (driven by
the vendor's SDKs) -> Samba -> the Azure stand-in (MCS -> MCS) and -> the local platform + a Samba PVS store
(MCS -> PVS); the content hash equal at every hop, no image left on Prism."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from blocks.registry import delete_connector, save_connector
from flows.ports import PORT_FLOWS
from imageport.disks.convert import hash_disk
from imageport.models import PortSpec, Workflow
from imageport.platforms.ahv.export import tags_of, user_tags_of
from imageport.results import PortResult, StageResult
from tests.infra.configs import samba_share
from tests.infra.prism_standin import PrismStandIn, StandInDisk, StandInVm

pytestmark = [pytest.mark.integration, pytest.mark.guestfs]


@pytest.fixture(scope="module")
def lab(prefect_api, samba, arm, windows_disks, tmp_path_factory):  # type: ignore[no-untyped-def]
    from tests.conftest import ARM_CLIENT, ARM_SECRET, ARM_SUBSCRIPTION, ARM_TENANT, ce_storage_settings

    directory = tmp_path_factory.mktemp("ahv-ports")
    gold = shutil.copyfile(windows_disks["gpt"], directory / "gold.raw")  # the stand-in's VM disk, raw
    prism = PrismStandIn(directory)
    prism.add_vm(StandInVm("ahv-gold", [StandInDisk("SCSI", 0, Path(gold))], uefi=True))
    save_connector("ahv", "ahv-pc", {"host": "127.0.0.1", "port": prism.port, "username": prism.username,
                                     "password": prism.password, "ca_pem": prism.cert.read_text()},
                   overwrite=True)  # fmt: skip
    share = samba_share(samba, base_path="ahv-ports")
    save_connector("fileshare", "ahv-share", {**share.model_dump(), "password": samba.info["password"]},
                   overwrite=True)  # fmt: skip
    with share.build() as smb:
        smb.makedirs("staging")
        smb.makedirs("Store")
    save_connector("local", "ahv-local", {"root": str(directory / "local")}, overwrite=True)
    save_connector("azure", "ahv-az", {
        "tenant_id": ARM_TENANT, "client_id": ARM_CLIENT, "client_secret": ARM_SECRET,
        "subscription_id": ARM_SUBSCRIPTION, "resource_group": "rg-vdi", "location": "westeurope",
        "arm_endpoint": arm.url, "authority_host": arm.url, "vnet": "vnet-ce", "subnet": "default",
        **ce_storage_settings(arm),
    }, overwrite=True)  # fmt: skip
    yield {"prism": prism, "gold_hash": hash_disk(Path(gold)).content_hash,
           "share": Path(samba.info["share_dir"]) / "ahv-ports", "local": directory / "local"}  # fmt: skip
    for name in ("ahv-pc", "ahv-share", "ahv-local", "ahv-az"):
        delete_connector(name)
    prism.close()


SOURCE = {"kind": "ahv", "connector": "ahv-pc", "vm": "ahv-gold", "disk": "scsi.0"}


def run(workflow: Workflow, **fields: Any) -> PortResult:
    return run_port(workflow, **fields)[0]


def run_port(workflow: Workflow, **fields: Any) -> tuple[PortResult, str]:
    """The port's result and its Prefect flow run's id."""
    provisioning = "pvs" if workflow.value.endswith("pvs") else "mcs"
    prepare = {"enable_rdp": True, "provisioning_type": provisioning}
    spec = PortSpec.model_validate({"workflow": workflow.value, "source": SOURCE, "prepare": prepare, **fields})
    state = PORT_FLOWS[workflow](spec, return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    assert isinstance(result, PortResult) and all(isinstance(s, StageResult) for s in result.stages), result
    return result, str(state.state_details.flow_run_id)


def assert_export_then_same_hash(result: PortResult, lab: dict[str, Any], staging: str) -> None:
    """The export read the VM disk's content, and every copying hop after it kept that content hash."""
    (export,) = [s for s in result.stages if s.stage == "export"]
    assert export.content_hash == lab["gold_hash"] and export.target.endswith(staging)
    assert [r.kind for r in export.removed] == ["ahv-image"] and export.source == "ahv://ahv-pc/ahv-gold?disk=scsi.0"
    assert hash_disk(lab["share"] / staging).content_hash == lab["gold_hash"]
    uploads = [s for s in result.stages if s.stage == "upload"]
    assert uploads and all(s.content_hash == lab["gold_hash"] for s in uploads), uploads
    assert lab["prism"].images == {} and not list(lab["prism"].directory.glob("image-*"))  # nothing left on Prism


def test_mcs_to_mcs_ahv_to_azure(lab) -> None:  # type: ignore[no-untyped-def]
    target = {"kind": "azure-disk", "connector": "ahv-az", "resource_group": "rg-vdi", "name": "ahv-mcs"}
    made_before = len(lab["prism"].created_images)
    result, run_id = run_port(Workflow.MCS_TO_MCS, export={"tags": {"cost center": "vdi-7"}},
                              staging={"kind": "share", "connector": "ahv-share", "path": "staging/m2m.vhdx"},
                              targets=[{"disk": target}])  # fmt: skip
    assert [s.stage for s in result.stages] == ["export", "upload", "prepare"]
    # The export's image, as Prism was asked to make it: named and marked with the Prefect flow run (what the
    # reaper asks Prefect about), the export's tags in its description beside imageport's marks.
    ((name, description),) = lab["prism"].created_images[made_before:]
    assert name == f"imageport-export-{run_id}"
    assert tags_of(description)["imageport-run"] == run_id and "cost center" not in tags_of(description)
    assert user_tags_of(description) == {"cost center": "vdi-7"}
    assert_export_then_same_hash(result, lab, "staging/m2m.vhdx")
    (prepare,) = [s for s in result.stages if s.stage == "prepare"]
    assert prepare.verified and "ahv-mcs-prepared" in prepare.target


def test_mcs_to_pvs_ahv_to_a_samba_store(lab) -> None:  # type: ignore[no-untyped-def]
    store = {"kind": "share", "connector": "ahv-share", "path": "Store"}
    result = run(Workflow.MCS_TO_PVS, staging={"kind": "share", "connector": "ahv-share", "path": "staging/m2p.vhdx"},
                 targets=[{"disk": {"kind": "local", "connector": "ahv-local", "path": "m2p/gold.vhdx"},
                           "store": store, "vdisk_name": "ahv-gold"}])  # fmt: skip
    assert [s.stage for s in result.stages] == ["export", "upload", "prepare", "publish"]
    assert_export_then_same_hash(result, lab, "staging/m2p.vhdx")
    (prepare,) = [s for s in result.stages if s.stage == "prepare"]
    (publish,) = [s for s in result.stages if s.stage == "publish"]
    published = lab["share"] / "Store" / "ahv-gold.vhdx"
    assert published.is_file() and (lab["share"] / "Store" / "ahv-gold.register.txt").is_file()
    assert publish.content_hash == hash_disk(published).content_hash == hash_disk(lab["local"] / "m2p" /
                                                                                   "gold-prepared.vhdx").content_hash
    assert prepare.verified
