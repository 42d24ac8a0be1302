"""Proof from the target: after every stage, ``imageport disk hash TARGET`` equals the source's hash.

Each stage runs through the real console script, resuming where an interrupted
first attempt stopped, with ``--verify full`` (the target re-read in full).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imageport.disks.convert import convert
from imageport.disks.detect import open_disk
from imageport.disks.local_files import LOCAL
from imageport.models import DiskFormat
from imageport.platforms.azure.session import AzureConfig
from imageport.storage.smb_files import SmbFileSystem
from imageport.transfer.copy import copy_image
from tests.conftest import azure_cli_args
from tests.core.disks.images import Interrupted, MiB, interrupt_after, make_full, make_raw
from tests.infra.configs import samba_share

pytestmark = pytest.mark.integration


def disk_hash(run_cli, image: str) -> str:  # type: ignore[no-untyped-def]
    done = run_cli("disk", "hash", image, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["content_hash"]


def full_vhdx(tmp_path: Path, size: int) -> Path:
    raw = make_full(tmp_path / "src.raw", size)
    vhdx = tmp_path / "src.vhdx"
    convert(raw, vhdx, DiskFormat.VHDX)
    return vhdx


def test_a_resumed_upload_to_azure_holds_the_source(azure_settings, arm, run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from imageport.platforms.azure.disks import upload_to_managed_disk

    settings = azure_cli_args(azure_settings)
    secret = azure_settings["client_secret"] + "\n"
    created = run_cli("connector", "create", "azure", "az-proof", *settings, stdin=secret)
    assert created.returncode == 0, created.stderr
    source = full_vhdx(tmp_path, 40 * MiB)  # a whole number of MiB: the disk Azure holds is the same size
    cp = tmp_path / "cp"
    with open_disk(source) as reader, pytest.raises(Interrupted):
        upload_to_managed_disk(AzureConfig(**azure_settings).build(), reader, "rg-vdi", "proof", threads=2,
                               checkpoint_dir=cp, progress=interrupt_after(20 * MiB))  # fmt: skip
    assert arm.disks["rg-vdi/proof"]["state"] == "ReadyToUpload"  # half uploaded; the grant was revoked

    up = run_cli("upload", str(source), "azure-disk://az-proof/rg-vdi/proof", "--checkpoint-dir", str(cp),
                 "--verify", "full", "--json")  # fmt: skip
    assert up.returncode == 0, up.stderr
    result = json.loads(up.stdout)
    assert result["details"]["resumed_disk"] and result["details"]["chunks_read_back"] > 0
    assert result["verified"] == "full" and result["resumed"]
    assert result["content_hash"] == disk_hash(run_cli, str(source))
    assert disk_hash(run_cli, "azure-disk://az-proof/rg-vdi/proof") == result["content_hash"]


def test_a_resumed_copy_to_a_share_holds_the_source(run_cli, samba, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    name = "proof-share"
    created = run_cli(
        "connector", "create", "fileshare", name, "server=127.0.0.1", f"port={samba.port}", "share=share",
        f"username={samba.info['username']}", f"base_path=cli-{name}", stdin=samba.info["password"] + "\n",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert run_cli("connector", "test", name).returncode == 0  # creates the base folder
    source = make_raw(tmp_path / "src.raw", 48 * MiB, runs=10, seed=71, max_run=6 * MiB)
    fs = SmbFileSystem(samba_share(samba, f"cli-{name}").build())
    try:  # the first attempt dies half-way, leaving a checkpointed partial file on the share
        with pytest.raises(Interrupted):
            copy_image(str(source), LOCAL, "out.raw", fs, DiskFormat.RAW, checkpoint_seconds=0,
                       progress=interrupt_after(16 * MiB))  # fmt: skip
        assert fs.isfile("out.raw.imageport-partial")
    finally:
        fs.close()

    copied = run_cli("copy", str(source), f"smb://{name}/out.raw", "--verify", "full", "--json")
    assert copied.returncode == 0, copied.stderr
    result = json.loads(copied.stdout)
    assert result["resumed"] and result["verified"] == "full" and result["restarted"] is None
    assert result["content_hash"] == disk_hash(run_cli, str(source)) == disk_hash(run_cli, f"smb://{name}/out.raw")


def test_a_plain_local_copy_holds_the_source(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    source = make_raw(tmp_path / "src.raw", 24 * MiB, runs=6, seed=72, max_run=3 * MiB)
    vhdx = tmp_path / "src.vhdx"
    convert(source, vhdx, DiskFormat.VHDX)
    copied = run_cli("copy", str(vhdx), str(tmp_path / "out.vhd"), "--to", "vhd-dynamic", "--verify", "full")
    assert copied.returncode == 0, copied.stderr
    assert "the result was re-read and verified" in copied.stdout
    shown = next(line for line in copied.stdout.splitlines() if line.startswith("content "))
    assert shown.split()[1] == disk_hash(run_cli, str(vhdx)) == disk_hash(run_cli, str(tmp_path / "out.vhd"))
    plain = run_cli("copy", str(vhdx), str(tmp_path / "plain.vhdx"), "--json")
    assert plain.returncode == 0, plain.stderr
    assert json.loads(plain.stdout)["verified"] == "written"  # nothing skipped: the hash of what it wrote
    assert disk_hash(run_cli, str(tmp_path / "plain.vhdx")) == disk_hash(run_cli, str(vhdx))


def test_reap_lists_a_killed_uploads_disk_and_revokes_its_grant(azure_settings, arm, run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tests.core.platforms.test_azure_disks import kill_mid_upload

    settings = azure_cli_args(azure_settings)
    secret = azure_settings["client_secret"] + "\n"
    created = run_cli("connector", "create", "azure", "az-reap", *settings, stdin=secret)
    assert created.returncode == 0, created.stderr
    source = make_full(tmp_path / "full.raw", 40 * MiB)
    kill_mid_upload(azure_settings, source, "reap-me", tmp_path)
    run = arm.disks["rg-vdi/reap-me"]["tags"]["imageport-run"]
    assert arm.sas_is_live("rg-vdi", "reap-me")

    looked = run_cli("reap", "--dry-run", "--connector", "az-reap")
    assert looked.returncode == 0, looked.stderr
    assert f"half-uploaded disk rg-vdi/reap-me (ActiveUpload, run {run}): would revoke its write grant" in looked.stdout
    assert arm.sas_is_live("rg-vdi", "reap-me")

    reaped = run_cli("reap", "--connector", "az-reap", "--json")
    assert reaped.returncode == 0, reaped.stderr
    (entry,) = [h for h in json.loads(reaped.stdout)["half_uploaded"] if h["disk"] == "rg-vdi/reap-me"]
    assert entry == {"disk": "rg-vdi/reap-me", "state": "ActiveUpload", "run": run,
                     "action": "write grant revoked (now ReadyToUpload)"}  # fmt: skip
    assert not arm.sas_is_live("rg-vdi", "reap-me")
