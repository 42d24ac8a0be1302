"""Azure: connector check and managed-disk direct upload against the ARM stand-in (data in Azurite)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from imageport.disks.convert import convert
from imageport.disks.detect import open_disk
from imageport.errors import PlatformAccessDenied, PlatformError, PlatformNotFound
from imageport.models import DiskFormat
from imageport.platforms.azure.disks import DiskExists, upload_to_managed_disk
from imageport.platforms.azure.session import AzureConfig
from imageport.platforms.runs import process_run_id
from tests.core.disks.images import MiB, make_raw, qemu_compare

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("azdisk")
    raw = make_raw(d / "src.raw", 40 * MiB, runs=5, seed=51, max_run=3 * MiB)
    vhdx = d / "src.vhdx"
    convert(raw, vhdx, DiskFormat.VHDX)
    return raw, vhdx


def session(settings: dict[str, str], **overrides: str):  # type: ignore[no-untyped-def]
    return AzureConfig(**{**settings, **overrides}).build()


def test_connector_check_gets_a_token_and_reads_the_resource_group(azure_settings) -> None:  # type: ignore[no-untyped-def]
    facts = session(azure_settings).check()
    assert "resource group rg-vdi readable (westeurope)" in facts
    with pytest.raises(PlatformAccessDenied, match="refused"):
        session(azure_settings, client_secret="wrong").check()
    with pytest.raises(PlatformNotFound, match="rg-missing"):
        session(azure_settings, resource_group="rg-missing").check()


def download_disk(arm, rg: str, name: str, path: Path) -> Path:  # type: ignore[no-untyped-def]
    blob = arm.container.get_blob_client(arm._blob_name(rg, name))
    with open(path, "wb") as f:
        blob.download_blob().readinto(f)
    return path


def test_upload_creates_grants_uploads_and_revokes(arm, azure_settings, image, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    raw, vhdx = image
    name = f"gold-{uuid.uuid4().hex[:6]}"
    with open_disk(vhdx) as reader:
        done = upload_to_managed_disk(
            session(azure_settings), reader, "rg-vdi", name, tags={"image": "gold"}, checkpoint_dir=tmp_path
        )
    assert done.disk_id.endswith(f"/disks/{name}") and not done.resumed_disk
    disk = arm.disks[f"rg-vdi/{name}"]
    assert disk["state"] == "Unattached" and disk["upload_size"] == 40 * MiB + 512
    # tagged at creation with the run that uploads it (this process), so a dead run's grant can be found
    assert done.run_id == process_run_id()
    assert disk["tags"] == {"image": "gold", "created-by": "imageport", "imageport-run": done.run_id,
                            "imageport-stage": "upload"}  # fmt: skip
    assert disk["hyper_v_generation"] == "V2"
    assert disk["sku"] == "Premium_LRS" and not arm.sas_is_live("rg-vdi", name)  # the write SAS was revoked
    assert qemu_compare(raw, "raw", download_disk(arm, "rg-vdi", name, tmp_path / "d.vhd"), "vpc").returncode == 0

    with open_disk(vhdx) as reader, pytest.raises(DiskExists, match="--force"):
        upload_to_managed_disk(session(azure_settings), reader, "rg-vdi", name, checkpoint_dir=tmp_path)
    with open_disk(vhdx) as reader:
        upload_to_managed_disk(session(azure_settings), reader, "rg-vdi", name, overwrite=True, checkpoint_dir=tmp_path)
    assert arm.disks[f"rg-vdi/{name}"]["state"] == "Unattached"


def test_the_stand_in_refuses_what_azure_refuses(arm, azure_settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from azure.core.exceptions import HttpResponseError
    from azure.mgmt.compute.models import CreationData, Disk, GrantAccessData

    compute = session(azure_settings).compute()
    name = f"raw-{uuid.uuid4().hex[:6]}"
    bad_size = Disk(
        location="westeurope",
        properties={"creationData": CreationData(create_option="Upload", upload_size_bytes=40 * MiB)},
    )
    with pytest.raises(HttpResponseError, match="N MiB \\+ 512"):
        compute.disks.begin_create_or_update("rg-vdi", name, bad_size).result()
    ok = Disk(
        location="westeurope",
        properties={"creationData": CreationData(create_option="Upload", upload_size_bytes=40 * MiB + 512)},
    )
    compute.disks.begin_create_or_update("rg-vdi", name, ok).result()
    access = compute.disks.begin_grant_access(
        "rg-vdi", name, GrantAccessData(access="Write", duration_in_seconds=600)
    ).result()
    from azure.storage.blob import BlobClient

    BlobClient.from_blob_url(access.access_sas).upload_page(b"vhdxfile".ljust(512, b"\0"), offset=0, length=512)
    with pytest.raises(HttpResponseError, match="InvalidVhd"):  # VHDX bytes uploaded as-is: no footer
        compute.disks.begin_revoke_access("rg-vdi", name).result()
    assert not arm.sas_is_live("rg-vdi", name)


def test_upload_failure_still_revokes_the_write_access(arm, azure_settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.vmdk"
    good = make_raw(tmp_path / "g.raw", 24 * MiB, runs=2, seed=3, max_run=MiB)
    convert(good, bad, DiskFormat.VMDK_STREAM)
    with open(bad, "r+b") as f:  # corrupt every grain after the header
        f.seek(70 * 1024)
        f.write(b"\xff" * 4096)
    name = f"broken-{uuid.uuid4().hex[:6]}"
    with open_disk(bad) as reader, pytest.raises((PlatformError, Exception)):
        upload_to_managed_disk(session(azure_settings), reader, "rg-vdi", name, checkpoint_dir=tmp_path)
    assert not arm.sas_is_live("rg-vdi", name)


def test_a_managed_disk_is_read_as_a_source_and_exported(arm, azure_settings, image, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from imageport.platforms.azure.disks import read_managed_disk

    raw, vhdx = image
    name = f"src-{uuid.uuid4().hex[:6]}"
    with open_disk(vhdx) as reader:
        uploaded = upload_to_managed_disk(session(azure_settings), reader, "rg-vdi", name, checkpoint_dir=tmp_path)
    with read_managed_disk(session(azure_settings), "rg-vdi", name) as disk_fs:
        assert arm.disks[f"rg-vdi/{name}"]["state"] == "ActiveSAS"
        with pytest.raises(Exception, match="never written"):
            disk_fs.open_sink("x")
        exported = convert("disk", tmp_path / "exported.vhdx", DiskFormat.VHDX, source_fs=disk_fs)
    assert arm.disks[f"rg-vdi/{name}"]["state"] == "Unattached" and not arm.sas_is_live("rg-vdi", name)
    assert exported.content_hash == uploaded.transfer.content_hash
    assert exported.source_format is DiskFormat.VHD and exported.source_allocated < 20 * MiB  # page ranges only
    assert qemu_compare(raw, "raw", tmp_path / "exported.vhdx", "vhdx").returncode == 0
    with pytest.raises(PlatformNotFound), read_managed_disk(session(azure_settings), "rg-vdi", "no-such-disk"):
        pass


def test_a_snapshot_is_a_point_in_time_copy_read_as_a_source(arm, azure_settings, image, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from imageport.platforms.azure.disks import create_snapshot, read_managed_disk

    raw, vhdx = image
    name = f"snapsrc-{uuid.uuid4().hex[:6]}"
    with open_disk(vhdx) as reader:
        uploaded = upload_to_managed_disk(session(azure_settings), reader, "rg-vdi", name, checkpoint_dir=tmp_path)
    made = create_snapshot(session(azure_settings), "rg-vdi", name, f"{name}-snap", tags={"why": "before-prepare"})
    assert made.snapshot_id.endswith(f"/snapshots/{name}-snap") and made.source_disk_id == uploaded.disk_id
    snap = arm.snapshots[f"rg-vdi/{name}-snap"]
    assert snap["tags"] == {"why": "before-prepare", "created-by": "imageport", "source-disk": name}
    # the disk changes afterwards (a later upload over it); the snapshot keeps the old contents
    other = make_raw(tmp_path / "other.raw", 40 * MiB, runs=2, seed=99)
    with open_disk(other) as reader:
        upload_to_managed_disk(session(azure_settings), reader, "rg-vdi", name, checkpoint_dir=tmp_path, overwrite=True)
    with read_managed_disk(session(azure_settings), "rg-vdi", f"{name}-snap", snapshot=True) as snap_fs:
        assert arm.snapshots[f"rg-vdi/{name}-snap"]["state"] == "ActiveSAS"
        exported = convert("snap", tmp_path / "from-snap.vhdx", DiskFormat.VHDX, source_fs=snap_fs)
    assert arm.snapshots[f"rg-vdi/{name}-snap"]["state"] == "Unattached"
    assert exported.content_hash == uploaded.transfer.content_hash
    assert qemu_compare(raw, "raw", tmp_path / "from-snap.vhdx", "vhdx").returncode == 0

    with pytest.raises(DiskExists, match="--force"):
        create_snapshot(session(azure_settings), "rg-vdi", name, f"{name}-snap")
    create_snapshot(session(azure_settings), "rg-vdi", name, f"{name}-snap", overwrite=True)
    with pytest.raises(PlatformNotFound):
        create_snapshot(session(azure_settings), "rg-vdi", "no-such-disk", "x-snap")


def test_a_disk_mid_upload_cannot_be_snapshotted(arm, azure_settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from azure.mgmt.compute.models import CreationData, Disk

    from imageport.platforms.azure.disks import create_snapshot

    name = f"half-{uuid.uuid4().hex[:6]}"
    compute = session(azure_settings).compute()
    compute.disks.begin_create_or_update(
        "rg-vdi",
        name,
        Disk(
            location="westeurope",
            properties={"creationData": CreationData(create_option="Upload", upload_size_bytes=32 * MiB + 512)},
        ),
    ).result()
    with pytest.raises(PlatformError, match="ReadyToUpload: finish"):
        create_snapshot(session(azure_settings), "rg-vdi", name, f"{name}-snap")
    assert f"rg-vdi/{name}-snap" not in arm.snapshots
