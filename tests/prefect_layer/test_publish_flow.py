"""The publish-vdisk flow against the test Prefect server and the suite's Samba share."""

from __future__ import annotations

from pathlib import Path

import pytest
from prefect.client.orchestration import get_client

from blocks.registry import delete_connector, save_connector
from flows.publish_vdisk import publish_vdisk_flow
from imageport.models import PublishSpec
from imageport.results import PublishDetails, StageResult
from tests.core.disks.images import MiB, make_raw, qemu_compare

pytestmark = pytest.mark.integration


@pytest.fixture()
def connectors(prefect_api: str, samba, tmp_path: Path):  # type: ignore[no-untyped-def]
    save_connector("local", "flow-prepared", {"root": str(tmp_path)}, overwrite=True)
    settings = {
        "server": "127.0.0.1",
        "port": samba.port,
        "share": "share",
        "username": samba.info["username"],
        "password": samba.info["password"],
        "base_path": "flow-pvs",
    }
    share = save_connector("fileshare", "flow-store", settings, overwrite=True).build()
    share.check()
    with share:
        share.makedirs("Store")
    store = Path(samba.info["share_dir"]) / "flow-pvs" / "Store"
    yield tmp_path, store
    delete_connector("flow-prepared")
    delete_connector("flow-store")


def test_flow_publishes_and_shows_the_registration(connectors) -> None:  # type: ignore[no-untyped-def]
    images, store = connectors
    raw = make_raw(images / "prepared.raw", 40 * MiB, runs=5, seed=14)
    spec = PublishSpec.model_validate(
        {
            "source": {"kind": "local", "connector": "flow-prepared", "path": "prepared.raw"},
            "store": {"kind": "share", "connector": "flow-store", "path": "Store"},
            "name": "FlowGold",
            "pvs_site": "Site1",
            "pvs_store": "Store1",
        }
    )
    state = publish_vdisk_flow(spec, return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    assert isinstance(result, StageResult) and isinstance(result.details, PublishDetails)
    assert result.details.file == "FlowGold.vhdx" and result.target == "FlowGold.vhdx"
    assert result.details.version == 0 and {r.id for r in result.created} >= {"FlowGold.vhdx"}
    assert qemu_compare(raw, "raw", store / "FlowGold.vhdx", "vhdx").returncode == 0
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts()
    published = [a for a in artifacts if a.key == "publish-vdisk"]
    assert published and "Import-PvsDisk" in str(published[-1].data)

    again = publish_vdisk_flow(spec, return_state=True)  # exists: a final error, not retried
    assert again.is_failed() and "exists already" in str(again.message)
