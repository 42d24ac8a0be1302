"""One writer per output: the lock, the no-replace rename, and what dead runs leave behind (local files)."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imageport.disks.convert import convert, hash_disk
from imageport.disks.leftovers import clean_folder
from imageport.disks.local_files import LOCAL, LocalFileSink
from imageport.disks.local_lock import LocalOutputStore
from imageport.disks.staged import PARTIAL_SUFFIX
from imageport.errors import OutputBusy, StorageAlreadyExists, StorageError
from imageport.models import DiskFormat
from imageport.transfer.copy import copy_image
from tests.core.disks.images import MiB, commit_or_abort, make_raw, qemu_compare

# A run that dies without any cleanup, as SIGKILL would (at its first progress report).
KILLED_RUN = """
import os, signal, sys
from imageport.disks.convert import convert
from imageport.models import DiskFormat
def die(done, total):
    if done:
        os.kill(os.getpid(), signal.SIGKILL)
convert(sys.argv[1], sys.argv[2], DiskFormat.VHDX, progress=die, resumable=sys.argv[3] == "resumable",
        checkpoint_seconds=0)
"""


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return make_raw(tmp_path / "src.raw", 16 * MiB, runs=6, seed=5, max_run=2 * MiB)


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def killed_run(source: Path, output: Path, mode: str) -> None:
    done = subprocess.run([sys.executable, "-c", KILLED_RUN, str(source), str(output), mode], timeout=120)
    assert done.returncode == -signal.SIGKILL


def test_a_second_writer_fails_at_once_naming_the_first(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.vhdx"
    first = LocalFileSink(out, resume={"source": "first"})
    first.pwrite(0, b"first run's bytes" * 100)
    first.checkpoint()
    try:
        slept: list[float] = []
        with pytest.raises(OutputBusy) as caught:
            copy_image(str(source), LOCAL, str(out), LOCAL, DiskFormat.VHDX, sleep=slept.append)
        assert f"{out} is being written by another run ({socket.gethostname()}, pid {os.getpid()}, since" in str(
            caught.value
        )
        assert slept == []  # not retried: another run's lock is not a transient failure
        assert (tmp_path / f"out.vhdx{PARTIAL_SUFFIX}").read_bytes().startswith(b"first run's bytes")  # untouched
    finally:
        first.abort()


def test_a_waiting_writer_takes_over_when_the_first_lets_go(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.vhdx"
    first = LocalFileSink(out)
    waiter = subprocess.Popen(
        [sys.executable, "-c", "import sys; from imageport.disks.convert import convert; "
         "from imageport.models import DiskFormat; "
         "convert(sys.argv[1], sys.argv[2], DiskFormat.VHDX, wait_lock=True)", str(source), str(out)]
    )  # fmt: skip
    try:
        # The waiter is blocked in flock() on the lock file: /proc/locks lists it as a waiter ("->").
        while not any(
            line.split()[1] == "->" and line.split()[5] == str(waiter.pid)
            for line in Path("/proc/locks").read_text().splitlines()
        ):
            assert waiter.poll() is None, "the second writer exited instead of waiting"
            time.sleep(0.05)
        first.abort()
        assert waiter.wait(timeout=120) == 0
    finally:
        waiter.kill()
    assert qemu_compare(source, "raw", out, "vhdx").returncode == 0
    assert names(tmp_path) == ["out.vhdx", "src.raw"]


def test_the_final_rename_never_replaces_a_file_that_appeared_meanwhile(tmp_path: Path) -> None:
    out = tmp_path / "out.bin"
    sink = LocalFileSink(out)
    sink.pwrite(0, b"new")
    out.write_bytes(b"someone else's file")
    with pytest.raises(StorageAlreadyExists, match="appeared while this run was writing it"):
        commit_or_abort(sink)
    assert out.read_bytes() == b"someone else's file"
    assert names(tmp_path) == ["out.bin"]

    forced = LocalFileSink(out, overwrite=True)
    forced.pwrite(0, b"new")
    forced.commit()
    assert out.read_bytes() == b"new" and names(tmp_path) == ["out.bin"]


@pytest.mark.parametrize("mode", ["plain", "resumable"])
def test_the_next_run_removes_what_a_killed_run_left(source: Path, tmp_path: Path, mode: str) -> None:
    out = tmp_path / "out.vhdx"
    killed_run(source, out, mode)
    left = [n for n in names(tmp_path) if n.startswith("out.vhdx")]
    assert "out.vhdx.imageport-lock" in left and len(left) >= 2
    owner = json.loads((tmp_path / "out.vhdx.imageport-lock").read_text())["owner"]
    assert owner["host"] == socket.gethostname() and owner["pid"] > 0 and owner["since"]

    done = convert(source, out, DiskFormat.VHDX)  # a plain run on the same output
    assert names(tmp_path) == ["out.vhdx", "src.raw"]
    assert done.content_hash == hash_disk(source).content_hash


def test_clean_removes_dead_runs_files_and_keeps_a_live_ones(source: Path, tmp_path: Path) -> None:
    killed_run(source, tmp_path / "dead.vhdx", "resumable")
    (tmp_path / "old.vhdx.partial-0123abcd").write_bytes(b"from a version without locks")
    live = LocalFileSink(tmp_path / "live.vhdx", resume={"source": "live"})
    try:
        store = LocalOutputStore()
        listed = clean_folder(store, str(tmp_path), dry_run=True)
        states = {f.name: f.state for f in listed.files}
        assert states == {
            "dead.vhdx.imageport-lock": "stale",
            "dead.vhdx.imageport-partial": "stale",
            "dead.vhdx.imageport-partial.json": "stale",
            "old.vhdx.partial-0123abcd": "stale",
            "live.vhdx.imageport-lock": "in use",
            "live.vhdx.imageport-partial": "in use",
        }
        assert len(names(tmp_path)) == 7  # a dry run removes nothing

        cleaned = clean_folder(store, str(tmp_path))
        assert {f.name for f in cleaned.files if f.state == "removed"} == {
            "dead.vhdx.imageport-lock",
            "dead.vhdx.imageport-partial",
            "dead.vhdx.imageport-partial.json",
            "old.vhdx.partial-0123abcd",
        }
        in_use = [f for f in cleaned.files if f.state == "in use"]
        assert {f.name for f in in_use} == {"live.vhdx.imageport-lock", "live.vhdx.imageport-partial"}
        assert all(f.owner and f"pid {os.getpid()}" in f.owner for f in in_use)
        assert names(tmp_path) == ["live.vhdx.imageport-lock", "live.vhdx.imageport-partial", "src.raw"]
    finally:
        live.abort()
    assert names(tmp_path) == ["src.raw"]


def test_a_size_no_container_holds_leaves_nothing(source: Path, tmp_path: Path) -> None:
    with pytest.raises(Exception, match="outside 1 byte"):
        convert(source, tmp_path / "out.vhdx", DiskFormat.VHDX, size=99999999 * 2**40)
    assert names(tmp_path) == ["src.raw"]


def test_a_read_error_names_the_file_the_operation_and_the_errno(source: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """EIO simulated at the system-call seam (no device-mapper in the test machine)."""

    def failing(fd: int, buffers: list[memoryview], offset: int) -> int:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "preadv", failing)
    with pytest.raises(StorageError, match=rf"^{source}: read of \d+ bytes at offset \d+ failed: .* \(EIO\)$"):
        hash_disk(source)


class Interrupted(Exception):
    pass


def failing_after(limit: int, error: BaseException):  # type: ignore[no-untyped-def]
    def progress(done: int, total: int) -> None:
        if done >= limit:
            raise error

    return progress


def test_an_interrupted_resumable_run_keeps_its_partial_with_the_owner_record(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.vhdx"
    with pytest.raises(Interrupted):
        convert(source, out, DiskFormat.VHDX, resumable=True, checkpoint_seconds=0,
                progress=failing_after(4 * MiB, Interrupted()))  # fmt: skip
    assert names(tmp_path) == [
        "out.vhdx.imageport-lock", "out.vhdx.imageport-partial", "out.vhdx.imageport-partial.json", "src.raw"
    ]  # fmt: skip
    listed = clean_folder(LocalOutputStore(), str(tmp_path), dry_run=True)
    assert {f.state for f in listed.files} == {"stale"}
    assert all(f.owner and f"pid {os.getpid()}" in f.owner for f in listed.files)
    assert convert(source, out, DiskFormat.VHDX, resumable=True).resumed
    assert names(tmp_path) == ["out.vhdx", "src.raw"]


def test_an_error_the_run_handled_removes_even_a_checkpointed_partial(source: Path, tmp_path: Path) -> None:
    full = StorageError(f"{tmp_path}/out.vhdx.imageport-partial: write failed: No space left on device (ENOSPC)")
    with pytest.raises(StorageError, match="ENOSPC"):
        convert(source, tmp_path / "out.vhdx", DiskFormat.VHDX, resumable=True, checkpoint_seconds=0,
                progress=failing_after(4 * MiB, full))  # fmt: skip
    assert names(tmp_path) == ["src.raw"]
