"""Azure: connector check and managed-disk direct upload against the ARM stand-in (data in Azurite)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from imageport.disks.convert import convert, hash_disk
from imageport.disks.detect import open_disk
from imageport.errors import DiskExists, PlatformAccessDenied, PlatformError, PlatformNotFound
from imageport.models import DiskFormat
from imageport.platforms.azure.disks import revoke_upload_grant, upload_to_managed_disk
from imageport.platforms.azure.session import AzureConfig
from imageport.platforms.runs import process_run_id
from imageport.results import StageResult, UploadDetails, from_managed_disk_upload
from tests.core.disks.images import MiB, make_full, make_raw, qemu_compare

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
    typed = from_managed_disk_upload(done)  # the one converter to a StageResult
    assert (typed.stage, typed.target, typed.content_hash) == ("upload", done.disk_id, done.transfer.content_hash)
    assert typed.bytes_written == done.transfer.bytes_sent > 0 and typed.verified == "page-ranges"
    assert [r.describe() for r in typed.created] == [f"azure-disk {done.disk_id}"]
    assert isinstance(typed.details, UploadDetails) and typed.details.run_id == done.run_id
    assert typed.details.chunks_sent == done.transfer.chunks_sent and not typed.details.resumed_disk
    assert StageResult.model_validate_json(typed.model_dump_json()) == typed

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


KILLED_UPLOAD = """
import json, os, signal, sys
from pathlib import Path
from imageport.disks.detect import open_disk
from imageport.platforms.azure.disks import upload_to_managed_disk
from imageport.platforms.azure.session import AzureConfig
settings = json.loads(sys.stdin.readline())  # the connector's secret stays out of the process list
def progress(done, total):
    if done >= int(sys.argv[4]):
        os.kill(os.getpid(), signal.SIGKILL)  # the run dies mid-upload, its write grant still open
with open_disk(sys.argv[1]) as reader:
    upload_to_managed_disk(AzureConfig(**settings).build(), reader, "rg-vdi", sys.argv[2], threads=1,
                           checkpoint_dir=Path(sys.argv[3]), progress=progress)
"""


@pytest.fixture
def full(tmp_path: Path) -> Path:
    """40 MiB of data in every chunk: a killed upload has surely sent its first chunks."""
    return make_full(tmp_path / "full.raw", 40 * MiB)


def kill_mid_upload(azure_settings, source: Path, name: str, checkpoints: Path) -> None:  # type: ignore[no-untyped-def]
    import json
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", KILLED_UPLOAD, str(source), name, str(checkpoints), str(24 * MiB)],
        input=json.dumps(azure_settings) + "\n", capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == -9, done.stderr


def test_the_reaper_revokes_a_dead_runs_write_grant_and_lists_half_uploaded_disks(  # type: ignore[no-untyped-def]
    arm, azure_settings, full, tmp_path: Path
) -> None:
    from imageport.engine.azure import AzureBackend
    from imageport.engine.reaper import reap

    raw = full
    name = f"killed-{uuid.uuid4().hex[:6]}"
    kill_mid_upload(azure_settings, raw, name, tmp_path)
    key = f"rg-vdi/{name}"
    disk = arm.disks[key]
    dead_run = disk["tags"]["imageport-run"]
    assert disk["state"] == "ActiveUpload" and arm.sas_is_live("rg-vdi", name)  # the 24-hour grant outlived it
    assert dead_run.startswith("cli-") and disk["tags"]["imageport-stage"] == "upload"

    backend = AzureBackend(session(azure_settings))
    looked = reap([backend], is_live=lambda run: False, dry_run=True)
    (entry,) = [h for h in looked.half_uploaded if h["disk"] == key]
    assert entry == {"disk": key, "state": "ActiveUpload", "run": dead_run, "action": "would revoke its write grant"}
    assert arm.sas_is_live("rg-vdi", name)  # a dry run changes nothing

    report = reap([backend], is_live=lambda run: False)
    (entry,) = [h for h in report.half_uploaded if h["disk"] == key]
    assert entry["state"] == "ActiveUpload" and entry["run"] == dead_run
    assert entry["action"] == "write grant revoked (now ReadyToUpload)"
    assert f"half-uploaded disk {key} (ActiveUpload, run {dead_run}): write grant revoked" in "\n".join(report.lines())
    assert not arm.sas_is_live("rg-vdi", name) and arm.disks[key]["state"] == "ReadyToUpload"
    assert report.failed == [] and key in arm.disks  # the disk stays, for the next run to resume

    again = reap([backend], is_live=lambda run: False)  # still listed as half-uploaded, nothing left to revoke
    (entry,) = [h for h in again.half_uploaded if h["disk"] == key]
    assert entry["state"] == "ReadyToUpload" and "run the upload again" in entry["action"]

    with open_disk(raw) as reader:  # the next run finishes it
        finished = upload_to_managed_disk(session(azure_settings), reader, "rg-vdi", name, checkpoint_dir=tmp_path)
    assert finished.resumed_disk and arm.disks[key]["state"] == "Unattached"
    assert arm.disks[key]["tags"]["imageport-run"] == finished.run_id != dead_run
    assert qemu_compare(raw, "raw", download_disk(arm, "rg-vdi", name, tmp_path / "d.vhd"), "vpc").returncode == 0


def test_a_live_runs_grant_is_kept_by_the_reaper(arm, azure_settings) -> None:  # type: ignore[no-untyped-def]
    from azure.mgmt.compute.models import CreationData, Disk, GrantAccessData

    from imageport.engine.azure import AzureBackend
    from imageport.engine.reaper import reap

    name = f"live-{uuid.uuid4().hex[:6]}"
    compute = session(azure_settings).compute()
    body = Disk(
        location="westeurope",
        tags={"created-by": "imageport", "imageport-run": process_run_id(), "imageport-stage": "upload"},
        properties={"creationData": CreationData(create_option="Upload", upload_size_bytes=40 * MiB + 512)},
    )
    compute.disks.begin_create_or_update("rg-vdi", name, body).result()
    compute.disks.begin_grant_access("rg-vdi", name, GrantAccessData(access="Write", duration_in_seconds=600)).result()
    report = reap([AzureBackend(session(azure_settings))], is_live=lambda run: False)
    (entry,) = [h for h in report.half_uploaded if h["disk"] == f"rg-vdi/{name}"]
    assert entry["action"] == "run still live: write grant kept" and arm.sas_is_live("rg-vdi", name)
    assert revoke_upload_grant(compute, "rg-vdi", name) == "ReadyToUpload"  # no footer: the grant ends all the same


def test_the_next_run_revokes_the_grant_a_killed_upload_left_before_resuming(  # type: ignore[no-untyped-def]
    arm, azure_settings, full, tmp_path: Path
) -> None:
    raw = full
    name = f"next-{uuid.uuid4().hex[:6]}"
    kill_mid_upload(azure_settings, raw, name, tmp_path)
    key = f"rg-vdi/{name}"
    dead_run = arm.disks[key]["tags"]["imageport-run"]
    assert arm.sas_is_live("rg-vdi", name)
    with open_disk(raw) as reader:
        finished = upload_to_managed_disk(session(azure_settings), reader, "rg-vdi", name, checkpoint_dir=tmp_path)
    assert finished.resumed_disk and finished.revoked_leftover == dead_run
    events = [(action, state) for action, disk, state in arm.access_log if disk == key]
    # the killed run's grant, then: revoked by the next run *before* it asks for its own, which it revokes at the end
    assert events == [("grant", "Write"), ("revoke", "ActiveUpload"), ("grant", "Write"), ("revoke", "ActiveUpload")]
    assert arm.disks[key]["state"] == "Unattached" and not arm.sas_is_live("rg-vdi", name)
    assert finished.transfer.chunks_read_back > 0 and finished.transfer.content_hash == hash_disk(raw).content_hash
    assert qemu_compare(raw, "raw", download_disk(arm, "rg-vdi", name, tmp_path / "d.vhd"), "vpc").returncode == 0


def test_the_next_run_refuses_a_disk_a_live_upload_on_this_host_is_writing(  # type: ignore[no-untyped-def]
    arm, azure_settings, full, tmp_path: Path
) -> None:
    import socket
    import subprocess

    from azure.mgmt.compute.models import CreationData, Disk, GrantAccessData

    from imageport.platforms.runs import start_ticks

    other = subprocess.Popen(["sleep", "300"])  # another upload process, alive on this host
    try:
        live_run = f"cli-{socket.gethostname()}-{other.pid}-{start_ticks(other.pid)}"
        name = f"busy-{uuid.uuid4().hex[:6]}"
        compute = session(azure_settings).compute()
        body = Disk(
            location="westeurope",
            tags={"created-by": "imageport", "imageport-run": live_run, "imageport-stage": "upload"},
            properties={"creationData": CreationData(create_option="Upload", upload_size_bytes=40 * MiB + 512)},
        )
        compute.disks.begin_create_or_update("rg-vdi", name, body).result()
        grant = GrantAccessData(access="Write", duration_in_seconds=600)
        compute.disks.begin_grant_access("rg-vdi", name, grant).result()
        with open_disk(full) as reader, pytest.raises(DiskExists, match=f"being uploaded by run {live_run}"):
            upload_to_managed_disk(session(azure_settings), reader, "rg-vdi", name, checkpoint_dir=tmp_path)
        assert arm.sas_is_live("rg-vdi", name)  # its grant is left alone
    finally:
        other.kill()
        other.wait()
    with open_disk(full) as reader:  # that process is gone: its grant is revoked and the upload goes ahead
        done = upload_to_managed_disk(session(azure_settings), reader, "rg-vdi", name, checkpoint_dir=tmp_path)
    assert done.revoked_leftover == live_run and done.transfer.content_hash == hash_disk(full).content_hash
