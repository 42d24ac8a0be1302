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
from tests.infra.configs import samba_share, vcsim_vsphere

pytestmark = pytest.mark.integration


def test_flow_exports_a_vm_disk_with_its_digests(prefect_api: str, vcsim, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    raw = make_raw(tmp_path / "seed.raw", 16 * MiB, runs=3, seed=37)
    config = _vm_disk_from(raw, vcsim, tmp_path)
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


def test_an_export_to_a_share_writes_the_connectors_disk_format_unless_the_stage_names_one(  # type: ignore[no-untyped-def]
    prefect_api: str, vcsim, samba, tmp_path: Path
) -> None:
    """Citrix's Windows File Share "Disk Format": the default container of what is exported to that share."""
    raw = make_raw(tmp_path / "seed.raw", 8 * MiB, runs=2, seed=41)
    config = _vm_disk_from(raw, vcsim, tmp_path)
    save_connector("vsphere", "fmt-vc", {**config.model_dump(), "password": vcsim.info["password"]}, overwrite=True)
    share = samba_share(samba, base_path="fmt-exports", disk_format="vhd")
    save_connector("fileshare", "fmt-share", {**share.model_dump(), "password": samba.info["password"]},
                   overwrite=True)  # fmt: skip
    with share.build() as smb:
        smb.makedirs("out")
    on_disk = Path(samba.info["share_dir"]) / "fmt-exports" / "out"
    try:
        for path, options, written in (("by-share.img", {}, "vpc"), ("by-stage.img", {"disk_format": "vhdx"}, "vhdx")):
            spec = ExportSpec.model_validate({
                "source": {"kind": "vsphere", "connector": "fmt-vc", "vm": "DC0_C0_RP0_VM1"},
                "destination": {"kind": "share", "connector": "fmt-share", "path": f"out/{path}"}, **options,
            })  # fmt: skip
            state = export_disk_flow(spec, return_state=True)
            assert state.is_completed(), state.message
            # qemu-img reads it only as the container it is: a dynamic VHD (vpc) by the share, VHDX by the stage.
            assert qemu_compare(raw, "raw", on_disk / path, written).returncode == 0, path
    finally:
        delete_connector("fmt-vc")
        delete_connector("fmt-share")


def _vm_disk_from(raw: Path, vcsim, tmp_path: Path):  # type: ignore[no-untyped-def]
    """The simulator's VM1 disk made a sparse VMDK of ``raw``; the simulator's vSphere config."""
    with vcsim_vsphere(vcsim).build() as session:
        files = session.datastore_files("LocalDS_0")
        files.put("DC0_C0_RP0_VM1/disk1.vmdk", qemu_convert(raw, tmp_path / "seed.vmdk", "vmdk-sparse").read_bytes())
        files.close()
    return vcsim_vsphere(vcsim)
