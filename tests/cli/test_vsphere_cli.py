"""``imageport vsphere ...`` end to end against the suite's vCenter simulator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imageport.disks.convert import hash_disk
from tests.core.disks.images import MiB, make_raw, qemu_compare, qemu_convert
from tests.infra.configs import vcsim_vsphere

pytestmark = pytest.mark.integration


def test_list_export_and_import_by_connector(run_cli, vcsim, samba, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    raw = make_raw(tmp_path / "seed.raw", 24 * MiB, runs=4, seed=29)
    sparse = qemu_convert(raw, tmp_path / "seed.vmdk", "vmdk-sparse")
    with vcsim_vsphere(vcsim).build() as session:
        files = session.datastore_files("LocalDS_0")
        files.put("DC0_C0_RP0_VM0/disk1.vmdk", sparse.read_bytes())
        files.close()
    created = run_cli(
        "connector", "create", "vsphere", "cli-vc", "host=127.0.0.1", f"port={vcsim.port}",
        f"username={vcsim.info['username']}", "verify_tls=false", stdin=vcsim.info["password"] + "\n",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr

    vms = run_cli("vsphere", "vms", "-c", "cli-vc", "--json")
    assert vms.returncode == 0, vms.stderr
    names = {v["name"]: v for v in json.loads(vms.stdout)}
    assert "DC0_C0_RP0_VM0" in names and names["DC0_C0_RP0_VM0"]["power_state"] == "poweredOn"
    disks = run_cli("vsphere", "disks", "DC0_C0_RP0_VM0", "-c", "cli-vc", "--json")
    assert disks.returncode == 0, disks.stderr
    assert json.loads(disks.stdout)[0]["file"] == "[LocalDS_0] DC0_C0_RP0_VM0/disk1.vmdk"

    out = tmp_path / "exported.vhdx"
    export = run_cli("vsphere", "export", "DC0_C0_RP0_VM0", str(out), "-c", "cli-vc", "--json")
    assert export.returncode == 0, export.stderr
    assert json.loads(export.stdout)["content_hash"] == hash_disk(raw).content_hash
    assert qemu_compare(raw, "raw", out, "vhdx").returncode == 0
    # To a share whose connector says VHD (Citrix's "Disk Format"): a dynamic VHD, with no --to.
    share = run_cli(
        "connector", "create", "fileshare", "cli-vhd-share", "server=127.0.0.1", f"port={samba.port}",
        "share=share", f"username={samba.info['username']}", "base_path=cli-vhd-exports", "disk_format=vhd",
        stdin=samba.info["password"] + "\n",
    )  # fmt: skip
    assert share.returncode == 0 and run_cli("connector", "test", "cli-vhd-share").returncode == 0, share.stderr
    to_share = run_cli("vsphere", "export", "DC0_C0_RP0_VM0", "smb://cli-vhd-share/vm0.img", "-c", "cli-vc")
    assert to_share.returncode == 0, to_share.stderr
    assert qemu_compare(raw, "raw", Path(samba.info["share_dir"]) / "cli-vhd-exports/vm0.img", "vpc").returncode == 0

    imported = run_cli(
        "vsphere", "import", str(out), "-c", "cli-vc", "--datastore", "LocalDS_0", "--folder", "back",
        "--name", "gold", "--create-vm", "gold-onprem", "--json",
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    result = json.loads(imported.stdout)
    assert result["stage"] == "upload" and result["target"] == "[LocalDS_0] back/gold.vmdk"
    assert result["details"]["vm"].startswith("vm-") and result["source"] == str(out)
    assert result["content_hash"] == hash_disk(raw).content_hash
    missing = run_cli("vsphere", "export", "no-such-vm", str(tmp_path / "x.vhdx"), "-c", "cli-vc")
    assert missing.returncode == 1 and "no VM 'no-such-vm'" in missing.stderr
