"""One writer per output on the suite's real Samba share: the share mode is the lock, renames
never replace, and a replace killed half-way is rolled back."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from imageport.disks.convert import convert, hash_disk
from imageport.disks.leftovers import clean_folder
from imageport.disks.local_files import LOCAL
from imageport.errors import InputError, OutputBusy, StorageAlreadyExists
from imageport.models import DiskFormat
from imageport.storage import smb_lock
from imageport.storage.smb_files import SmbFileSystem
from imageport.transfer.copy import copy_image
from tests.core.disks.images import MiB, commit_or_abort, make_raw
from tests.infra.configs import samba_share

pytestmark = pytest.mark.integration

# Replace OUT on the share with --force, and die (SIGKILL) between the two renames of the replace.
KILLED_BETWEEN_RENAMES = """
import json, os, signal, sys
from imageport.disks.convert import convert
from imageport.models import DiskFormat
from imageport.storage.smb import SmbShare, SmbShareConfig
from imageport.storage import smb_lock
from imageport.storage.smb_files import SmbFileSystem
rename = SmbShare.rename
def dying(self, source, target):
    if target.endswith(".imageport-replaced"):
        rename(self, source, target)
        os.kill(os.getpid(), signal.SIGKILL)
    rename(self, source, target)
SmbShare.rename = dying
fs = SmbFileSystem(SmbShareConfig(**json.loads(sys.argv[1])).build())
convert(sys.argv[2], "out.vhdx", DiskFormat.VHDX, overwrite=True, output_fs=fs)
"""


@pytest.fixture()
def shares(samba, request):  # type: ignore[no-untyped-def]
    """Two independent sessions on one folder of the share (two runs); and the folder on the server's disk."""
    folder = request.node.name
    config = samba_share(samba, f"locks/{folder}")
    config.build().check()
    first, second = SmbFileSystem(config.build()), SmbFileSystem(config.build())
    yield first, second, Path(samba.info["share_dir"]) / "locks" / folder, config
    first.close()
    second.close()


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_raw(tmp_path_factory.mktemp("locksrc") / "src.raw", 8 * MiB, runs=4, seed=17, max_run=MiB)


def test_a_second_writer_on_a_share_fails_at_once_naming_the_first(shares, source: Path) -> None:  # type: ignore[no-untyped-def]
    first_fs, second_fs, on_disk, _ = shares
    first = first_fs.open_sink("out.vhdx", resume={"source": "first"})
    try:
        slept: list[float] = []
        with pytest.raises(OutputBusy) as caught:
            copy_image(str(source), LOCAL, "out.vhdx", second_fs, DiskFormat.VHDX, sleep=slept.append)
        message = str(caught.value)
        assert "/out.vhdx is being written by another run (" in message
        assert f"{socket.gethostname()}, pid {os.getpid()}, since " in message
        assert slept == []  # refused at once, not retried as a transient sharing violation
    finally:
        first.abort()
    assert os.listdir(on_disk) == []
    done = copy_image(str(source), LOCAL, "out.vhdx", second_fs, DiskFormat.VHDX)
    assert done.content_hash == hash_disk(source).content_hash
    assert sorted(os.listdir(on_disk)) == ["out.vhdx"]


def test_the_final_rename_on_a_share_never_replaces_a_file_that_appeared(shares) -> None:  # type: ignore[no-untyped-def]
    fs, other_fs, on_disk, _ = shares
    sink = fs.open_sink("out.bin")
    sink.pwrite(0, b"new")
    other_fs.share.write_bytes("out.bin", b"someone else's file")  # another client, meanwhile
    with pytest.raises(StorageAlreadyExists, match="appeared while this run was writing it"):
        commit_or_abort(sink)
    assert (on_disk / "out.bin").read_bytes() == b"someone else's file"
    assert os.listdir(on_disk) == ["out.bin"]


def _replace_killed_between_renames(shares, source: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    """An existing out.vhdx, then a replace of it SIGKILLed between its two renames (in a subprocess)."""
    fs, other_fs, on_disk, config = shares
    old = make_raw(tmp_path / "old.raw", 4 * MiB, runs=2, seed=3, max_run=MiB)
    convert(old, "out.vhdx", DiskFormat.VHDX, output_fs=fs)
    old_bytes = (on_disk / "out.vhdx").read_bytes()
    settings = config.model_dump(mode="json") | {"password": config.password.get_secret_value()}
    killed = subprocess.run([sys.executable, "-c", KILLED_BETWEEN_RENAMES, json.dumps(settings), str(source)],
                            timeout=120)  # fmt: skip
    return other_fs, on_disk, old_bytes, killed


def test_a_replace_killed_between_its_renames_is_rolled_back(shares, source: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    other_fs, on_disk, old_bytes, killed = _replace_killed_between_renames(shares, source, tmp_path)
    assert killed.returncode == -signal.SIGKILL
    left = sorted(os.listdir(on_disk))
    assert "out.vhdx" not in left and "out.vhdx.imageport-replaced" in left and "out.vhdx.imageport-lock" in left

    listed = clean_folder(other_fs.output_store(), "", dry_run=True)
    assert {f.name: f.state for f in listed.files}["out.vhdx.imageport-replaced"] == "would restore"
    cleaned = clean_folder(other_fs.output_store(), "")
    assert {f.name: f.state for f in cleaned.files}["out.vhdx.imageport-replaced"] == "restored"
    assert sorted(os.listdir(on_disk)) == ["out.vhdx"]
    assert (on_disk / "out.vhdx").read_bytes() == old_bytes


def test_clean_on_a_share_keeps_a_live_runs_partial(shares, source: Path) -> None:  # type: ignore[no-untyped-def]
    first_fs, second_fs, on_disk, _ = shares
    live = first_fs.open_sink("live.vhdx", resume={"source": "live"})
    second_fs.share.write_bytes("dead.vhdx.partial-0123abcd", b"left by a killed run")
    try:
        report = clean_folder(second_fs.output_store(), "")
        states = {f.name: f.state for f in report.files}
        assert states == {
            "dead.vhdx.partial-0123abcd": "removed",
            "live.vhdx.imageport-lock": "in use",
            "live.vhdx.imageport-partial": "in use",
        }
        assert all(f"pid {os.getpid()}" in (f.owner or "") for f in report.files if f.state == "in use")
    finally:
        live.abort()
    assert os.listdir(on_disk) == []


def test_a_waiting_writer_on_a_share_proceeds_once_the_first_lets_go(shares, source: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    first_fs, second_fs, on_disk, _ = shares
    first = first_fs.open_sink("out.vhdx")
    waits: list[float] = []

    def first_finishes(seconds: float) -> None:  # instead of sleeping: the first run aborts meanwhile
        waits.append(seconds)
        first.abort()

    monkeypatch.setattr(smb_lock.time, "sleep", first_finishes)
    done = copy_image(str(source), LOCAL, "out.vhdx", second_fs, DiskFormat.VHDX, wait_lock=True)
    assert waits == [smb_lock.WAIT_POLL_SECONDS]  # it was refused once, waited, then took the lock
    assert done.content_hash == hash_disk(source).content_hash
    assert sorted(os.listdir(on_disk)) == ["out.vhdx"]


def test_the_next_run_rolls_back_a_replace_killed_between_its_renames(shares, source: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    other_fs, on_disk, old_bytes, killed = _replace_killed_between_renames(shares, source, tmp_path)
    assert killed.returncode == -signal.SIGKILL and not (on_disk / "out.vhdx").exists()

    with pytest.raises(InputError, match="exists already"):  # the old file is back: not replaced without --force
        convert(source, "out.vhdx", DiskFormat.VHDX, output_fs=other_fs)
    assert sorted(os.listdir(on_disk)) == ["out.vhdx"] and (on_disk / "out.vhdx").read_bytes() == old_bytes
    done = convert(source, "out.vhdx", DiskFormat.VHDX, output_fs=other_fs, overwrite=True)
    assert done.content_hash == hash_disk(source).content_hash and sorted(os.listdir(on_disk)) == ["out.vhdx"]
