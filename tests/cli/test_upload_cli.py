"""``imageport connector test`` for Azure and ``imageport upload ... azure-disk://`` through the console
script, against the ARM stand-in (HTTPS, real token flow) with the data in Azurite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imageport.disks.convert import convert
from imageport.models import DiskFormat
from tests.core.disks.images import MiB, make_raw, qemu_compare

pytestmark = pytest.mark.integration


def test_azure_connector_and_managed_disk_upload(azure_settings, arm, run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings = [f"{k}={v}" for k, v in azure_settings.items() if k != "client_secret"]
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
    result = json.loads(up.stdout)
    assert result["disk_id"].endswith("/disks/cli-gold")
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
