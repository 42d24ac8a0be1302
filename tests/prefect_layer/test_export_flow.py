"""The export-disk flow: a simulator VM's disk onto a local connector, with Citrix's -HashDisk digests."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from blocks.registry import delete_connector, save_connector
from flows.export_disk import export_disk_flow
from imageport.disks.convert import hash_disk
from imageport.models import ExportSpec
from imageport.results import ExportDetails, StageResult
from tests.core.disks.images import MiB, make_raw, qemu_compare, qemu_convert
from tests.infra.configs import vcsim_vsphere

pytestmark = pytest.mark.integration


def test_flow_exports_a_vm_disk_with_its_digests(prefect_api: str, vcsim, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    raw = make_raw(tmp_path / "seed.raw", 16 * MiB, runs=3, seed=37)
    with vcsim_vsphere(vcsim).build() as session:
        files = session.datastore_files("LocalDS_0")
        files.put("DC0_C0_RP0_VM1/disk1.vmdk", qemu_convert(raw, tmp_path / "seed.vmdk", "vmdk-sparse").read_bytes())
        files.close()
    config = vcsim_vsphere(vcsim)
    save_connector("vsphere", "flow-vc", {**config.model_dump(), "password": vcsim.info["password"]}, overwrite=True)
    (tmp_path / "exports").mkdir()
    save_connector("local", "flow-exports", {"root": str(tmp_path / "exports")}, overwrite=True)
    try:
        spec = ExportSpec.model_validate(
            {
                "source": {"kind": "vsphere", "connector": "flow-vc", "vm": "DC0_C0_RP0_VM1"},
                "destination": {"kind": "local", "connector": "flow-exports", "path": "vm1.vhdx"},
            }
        )
        state = export_disk_flow(spec, return_state=True)
        assert state.is_completed(), state.message
        result = state.result()
    finally:
        delete_connector("flow-vc")
        delete_connector("flow-exports")
    assert isinstance(result, StageResult) and isinstance(result.details, ExportDetails)
    assert result.content_hash == hash_disk(raw).content_hash
    assert result.md5 == hashlib.md5(raw.read_bytes()).hexdigest()  # the whole virtual disk, as Citrix's
    assert result.details.snapshot_created and result.details.read_path == "datastore"
    assert result.removed[0].kind == "vsphere-snapshot" and result.target == "local://flow-exports/vm1.vhdx"
    assert [r.describe() for r in result.created] == ["local local://flow-exports/vm1.vhdx"]
    assert qemu_compare(raw, "raw", tmp_path / "exports/vm1.vhdx", "vhdx").returncode == 0
