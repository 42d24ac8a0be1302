"""``imageport connector test`` for Azure and ``imageport upload ... azure-disk://`` through the console
script, against the ARM stand-in (HTTPS, real token flow) with the data in Azurite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imageport.disks.convert import convert
from imageport.models import DiskFormat
from imageport.results import StageResult, UploadDetails
from tests.conftest import azure_cli_args
from tests.core.disks.images import MiB, make_raw, qemu_compare

pytestmark = pytest.mark.integration


def test_azure_connector_and_managed_disk_upload(azure_settings, arm, run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings = azure_cli_args(azure_settings)
    created = run_cli("connector", "create", "azure", "az-lab", *settings, stdin=azure_settings["client_secret"] + "\n")
    assert created.returncode == 0, created.stderr
    tested = run_cli("connector", "test", "az-lab")
    assert tested.returncode == 0, tested.stderr
    assert "resource group rg-vdi readable (westeurope)" in tested.stdout

    raw = make_raw(tmp_path / "gold.raw", 30 * MiB, runs=3, seed=61, max_run=2 * MiB)
    vhdx = tmp_path / "gold.vhdx"
    convert(raw, vhdx, DiskFormat.VHDX)
    up = run_cli(
        "upload",
        str(vhdx),
        "azure-disk://az-lab/rg-vdi/cli-gold",
        "--tags",
        "env=test",
        "--sku",
        "StandardSSD_LRS",
        "--checkpoint-dir",
        str(tmp_path / "cp"),
        "--json",
    )
    assert up.returncode == 0, up.stderr
    result = StageResult.model_validate_json(up.stdout)  # --json is the typed stage result
    assert isinstance(result.details, UploadDetails) and result.details.disk_id.endswith("/disks/cli-gold")
    assert result.source == str(vhdx) and result.bytes_written and result.verified == "page-ranges"
    disk = arm.disks["rg-vdi/cli-gold"]
    assert disk["state"] == "Unattached" and disk["sku"] == "StandardSSD_LRS" and disk["tags"]["env"] == "test"
    blob = arm.container.get_blob_client(arm._blob_name("rg-vdi", "cli-gold"))
    with open(tmp_path / "d.vhd", "wb") as f:
        blob.download_blob().readinto(f)
    assert qemu_compare(raw, "raw", tmp_path / "d.vhd", "vpc").returncode == 0
    assert azure_settings["client_secret"] not in up.stdout + up.stderr + tested.stdout

    again = run_cli("upload", str(vhdx), "azure-disk://az-lab/rg-vdi/cli-gold", "--checkpoint-dir", str(tmp_path))
    assert again.returncode == 1 and "exists" in again.stderr and "--force" in again.stderr
    wrong = run_cli("upload", str(vhdx), "azure-disk://az-lab/only-two")
    assert wrong.returncode == 2 and "azure-disk://CONNECTOR/RESOURCE_GROUP/DISK" in wrong.stderr


def test_export_a_managed_disk_to_a_share_by_name(azure_settings, arm, samba, run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings = azure_cli_args(azure_settings)
    assert (
        run_cli(
            "connector", "create", "azure", "az-src", *settings, stdin=azure_settings["client_secret"] + "\n"
        ).returncode
        == 0
    )
    assert (
        run_cli(
            "connector",
            "create",
            "fileshare",
            "exports",
            "server=127.0.0.1",
            f"port={samba.port}",
            "share=share",
            f"username={samba.info['username']}",
            stdin=samba.info["password"] + "\n",
        ).returncode
        == 0
    )
    raw = make_raw(tmp_path / "src.raw", 24 * MiB, runs=3, seed=71, max_run=MiB)
    up = run_cli("upload", str(raw), "azure-disk://az-src/rg-vdi/exportme", "--checkpoint-dir", str(tmp_path), "--json")
    assert up.returncode == 0, up.stderr
    out = run_cli(
        "disk",
        "convert",
        "azure-disk://az-src/rg-vdi/exportme",
        "smb://exports/exportme.vhdx",
        "--to",
        "vhdx",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["content_hash"] == json.loads(up.stdout)["content_hash"]
    assert qemu_compare(raw, "raw", Path(samba.info["share_dir"]) / "exportme.vhdx", "vhdx").returncode == 0
    assert arm.disks["rg-vdi/exportme"]["state"] == "Unattached"  # the read grant was revoked
    # PVS -> PVS: the prepared managed disk published straight into a store at the share's root
    published = run_cli("publish", "azure-disk://az-src/rg-vdi/exportme", "smb://exports/", "--name", "FromAzure")
    assert published.returncode == 0, published.stderr
    assert qemu_compare(raw, "raw", Path(samba.info["share_dir"]) / "FromAzure.vhdx", "vhdx").returncode == 0
    assert arm.disks["rg-vdi/exportme"]["state"] == "Unattached"
    # a snapshot, read as a source like a disk
    snap = run_cli("snapshot", "azure-disk://az-src/rg-vdi/exportme", "exportme-snap", "--tags", "stage=exported")
    assert snap.returncode == 0, snap.stderr
    assert "azure-snapshot://az-src/rg-vdi/exportme-snap" in snap.stdout
    copied = run_cli(
        "copy", "azure-snapshot://az-src/rg-vdi/exportme-snap", "smb://exports/fromsnap.vhdx", "--to", "vhdx", "--json"
    )
    assert copied.returncode == 0, copied.stderr
    assert json.loads(copied.stdout)["content_hash"] == json.loads(up.stdout)["content_hash"]
    assert arm.snapshots["rg-vdi/exportme-snap"]["state"] == "Unattached"
    again = run_cli("snapshot", "azure-disk://az-src/rg-vdi/exportme", "exportme-snap")
    assert again.returncode == 1 and "--force" in again.stderr
