"""The upload-image flow: to a managed disk (ARM stand-in, data in Azurite), to a vSphere datastore (the
simulator) and to the local platform."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from blocks.registry import delete_connector, save_connector
from flows.upload_image import upload_image_flow
from imageport.disks.convert import hash_disk
from imageport.models import UploadSpec
from imageport.results import ImportDetails, StageResult, UploadDetails
from tests.core.disks.images import MiB, make_raw, qemu_compare
from tests.infra.configs import vcsim_vsphere

pytestmark = pytest.mark.integration


@pytest.fixture()
def connectors(prefect_api: str, azure_settings, tmp_path: Path):  # type: ignore[no-untyped-def]
    save_connector("local", "flow-staging", {"root": str(tmp_path)}, overwrite=True)
    save_connector("azure", "flow-azure", azure_settings, overwrite=True)
    yield tmp_path
    delete_connector("flow-staging")
    delete_connector("flow-azure")


def test_flow_uploads_to_a_managed_disk_a_datastore_and_the_local_platform(arm, vcsim, connectors) -> None:  # type: ignore[no-untyped-def]
    staging = connectors
    raw = make_raw(staging / "gold.raw", 30 * MiB, runs=4, seed=61)
    source = {"kind": "local", "connector": "flow-staging", "path": "gold.raw"}
    spec = UploadSpec.model_validate(
        {
            "source": source,
            "target": {"kind": "azure-disk", "connector": "flow-azure", "resource_group": "rg-vdi", "name": "flowdisk"},
            "tags": {"stage": "upload"},
        }
    )
    state = upload_image_flow(spec, return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    assert isinstance(result, StageResult) and isinstance(result.details, UploadDetails)
    assert result.details.disk_id.endswith("/disks/flowdisk")  # type: ignore[union-attr]
    assert result.target == "azure-disk://flow-azure/rg-vdi/flowdisk" and result.source == "local://flow-staging/gold.raw"
    assert result.content_hash == hash_disk(raw).content_hash  # 30 MiB: already a whole MiB
    assert result.bytes_written and result.verified == "page-ranges" and result.created[0].kind == "azure-disk"
    disk = arm.disks["rg-vdi/flowdisk"]
    run_id = result.details.run_id  # type: ignore[union-attr]
    assert run_id == str(state.state_details.flow_run_id)  # tagged with the flow run that uploads it
    assert disk["state"] == "Unattached" and disk["tags"] == {
        "stage": "upload", "created-by": "imageport", "imageport-run": run_id, "imageport-stage": "upload"
    }  # fmt: skip

    again = upload_image_flow(spec, return_state=True)  # exists, no overwrite: final, not retried
    assert again.is_failed() and "set spec.overwrite" in str(again.message)  # the flow names the spec field

    local = UploadSpec.model_validate(
        {"source": source, "target": {"kind": "local", "connector": "flow-staging", "path": "platform/gold.vhd"}}
    )
    (staging / "platform").mkdir()
    state = upload_image_flow(local, return_state=True)
    assert state.is_completed(), state.message
    assert qemu_compare(raw, "raw", staging / "platform/gold.vhd", "vpc").returncode == 0

    small = make_raw(staging / "small.raw", 4 * MiB, runs=2, seed=62, max_run=MiB)
    save_connector("vsphere", "flow-vc", {**vcsim_vsphere(vcsim).model_dump(), "password": vcsim.info["password"]},
                   overwrite=True)  # fmt: skip
    folder = f"flow-{uuid.uuid4().hex[:8]}"
    target = {"kind": "datastore", "connector": "flow-vc", "datastore": "LocalDS_0", "path": f"{folder}/gold.vmdk",
              "create_vm": folder}  # fmt: skip
    on_vsphere = UploadSpec.model_validate({"source": {**source, "path": "small.raw"}, "target": target})
    try:
        state = upload_image_flow(on_vsphere, return_state=True)
        assert state.is_completed(), state.message
        result = state.result()
        assert isinstance(result.details, ImportDetails) and result.details.disk == f"[LocalDS_0] {folder}/gold.vmdk"
        assert result.verified and result.content_hash == hash_disk(small).content_hash  # the read-back matched it
        assert [r.id.split(" ")[0] for r in result.created if r.kind == "vsphere-vm"] == [folder]
        again = upload_image_flow(on_vsphere, return_state=True)
        assert again.is_failed() and "set spec.overwrite" in str(again.message)
    finally:
        delete_connector("flow-vc")


def test_a_source_format_stated_in_the_spec_is_checked(connectors) -> None:  # type: ignore[no-untyped-def]
    staging = connectors
    make_raw(staging / "plain.raw", 4 * MiB, runs=2, seed=62, max_run=MiB)
    (staging / "platform").mkdir()

    def spec(fmt: str) -> UploadSpec:
        return UploadSpec.model_validate(
            {
                "source": {"kind": "local", "connector": "flow-staging", "path": "plain.raw", "format": fmt},
                "target": {"kind": "local", "connector": "flow-staging", "path": f"platform/{fmt}.vhd"},
            }
        )

    refused = upload_image_flow(spec("vhdx"), return_state=True)
    assert refused.is_failed() and "expected vhdx (as stated), but the content is raw" in str(refused.message)
    assert not (staging / "platform/vhdx.vhd").exists()
    assert upload_image_flow(spec("raw"), return_state=True).is_completed()
