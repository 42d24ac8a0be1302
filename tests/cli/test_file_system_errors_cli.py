"""When the file system says no (ENOSPC, EROFS, EFBIG, a directory, a device, a FIFO, an empty
file): one line naming the file, the operation and the errno, and nothing left behind. Real
mounts (tmpfs, remounted read-only) and a real RLIMIT_FSIZE; the suite runs as root."""

from __future__ import annotations

import os
import resource
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.core.disks.images import MiB, make_raw, qemu_compare


@pytest.fixture()
def raw(tmp_path: Path) -> Path:
    return make_raw(tmp_path / "gold.raw", 16 * MiB, runs=4, seed=41, max_run=2 * MiB)  # 8 MiB of data


@pytest.fixture()
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs, unmounted afterwards."""
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def cli(imageport_bin: str, *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([imageport_bin, *args], capture_output=True, text=True, timeout=120, **kw)  # type: ignore[call-overload, no-any-return]


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if not line.startswith(("convert ", "copy "))]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_a_full_file_system_is_one_line_and_leaves_nothing(imageport_bin: str, raw: Path, small_fs: Path) -> None:
    out = small_fs / "out.vhdx"
    for command in (["disk", "convert", str(raw), str(out), "--to", "vhdx"], ["copy", str(raw), str(out)]):
        result = cli(imageport_bin, *command)
        assert result.returncode == 1
        line = one_line(result)
        assert line.startswith(f"error: {out}") and "failed: No space left on device (ENOSPC)" in line
        assert os.listdir(small_fs) == []  # partial, sidecar and lock removed


def test_a_read_only_file_system_is_one_line(imageport_bin: str, raw: Path, small_fs: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    result = cli(imageport_bin, "copy", str(raw), str(small_fs / "out.vhdx"))
    assert result.returncode == 1
    line = one_line(result)
    assert str(small_fs / "out.vhdx") in line and "Read-only file system (EROFS)" in line


def test_a_file_size_limit_is_one_line_and_leaves_nothing(imageport_bin: str, raw: Path, tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (4 * MiB, 4 * MiB))

    result = cli(imageport_bin, "disk", "convert", str(raw), str(out_dir / "o.raw"), "--to", "raw", preexec_fn=limit)
    assert result.returncode == 1
    assert "failed: File too large (EFBIG)" in one_line(result)
    assert os.listdir(out_dir) == []


def test_a_directory_as_output_is_refused_even_with_force(imageport_bin: str, raw: Path, tmp_path: Path) -> None:
    (tmp_path / "dir.vhdx").mkdir()
    result = cli(imageport_bin, "copy", str(raw), str(tmp_path / "dir.vhdx"), "--force")
    assert result.returncode == 1
    assert "(EISDIR)" in one_line(result) and (tmp_path / "dir.vhdx").is_dir()
    assert sorted(os.listdir(tmp_path)) == ["dir.vhdx", "gold.raw"]


@pytest.mark.parametrize("kind", ["character device", "FIFO"])
def test_a_device_or_fifo_as_output_is_refused_even_with_force(
    imageport_bin: str, raw: Path, tmp_path: Path, kind: str
) -> None:
    target = tmp_path / "target"
    if kind == "FIFO":
        os.mkfifo(target)
    else:
        os.mknod(target, stat.S_IFCHR | 0o600, os.makedev(1, 3))  # what /dev/null is
    mode = os.stat(target).st_mode
    result = cli(imageport_bin, "disk", "convert", str(raw), str(target), "--to", "vhdx", "--force")
    assert result.returncode == 2
    assert f"is a {kind}, not a regular file" in one_line(result)
    assert os.stat(target).st_mode == mode  # still the device / FIFO
    assert sorted(os.listdir(tmp_path)) == ["gold.raw", "target"]


def test_a_fifo_as_input_is_refused_instead_of_hanging(imageport_bin: str, tmp_path: Path) -> None:
    fifo = tmp_path / "in.vhdx"
    os.mkfifo(fifo)
    for command in (["disk", "info", str(fifo)], ["copy", str(fifo), str(tmp_path / "o.vhdx")]):
        result = cli(imageport_bin, *command)
        assert result.returncode == 2
        assert one_line(result) == f"error: {fifo}: is a FIFO, not a disk image"


def test_an_empty_file_is_not_a_disk_image(imageport_bin: str, tmp_path: Path) -> None:
    empty = tmp_path / "empty.vhdx"
    empty.touch()
    for command in ("check", "hash", "info"):
        result = cli(imageport_bin, "disk", command, str(empty))
        assert result.returncode == 1
        assert one_line(result) == f"error: {empty}: file at offset 0: empty (0 bytes): not a disk image"


def test_a_size_no_container_holds_leaves_no_orphan(imageport_bin: str, raw: Path, tmp_path: Path) -> None:
    result = cli(imageport_bin, "disk", "convert", str(raw), str(tmp_path / "o.vhdx"), "--to", "vhdx",
                 "--size", "99999999T")  # fmt: skip
    assert result.returncode == 2 and "outside 1 byte" in one_line(result)
    assert sorted(os.listdir(tmp_path)) == ["gold.raw"]


def test_two_copies_to_one_destination(imageport_bin: str, raw: Path, tmp_path: Path) -> None:
    """The second fails at once naming the first; the first's output is the source."""
    out = tmp_path / "out.vhdx"
    script = (
        "import sys, time\nfrom imageport.disks.convert import convert\nfrom imageport.models import DiskFormat\n"
        "def slow(done, total):\n    print('writing', flush=True); sys.stdin.readline()\n"
        "convert(sys.argv[1], sys.argv[2], DiskFormat.VHDX, progress=slow, resumable=True)\n"
    )
    python = str(Path(imageport_bin).parent / "python")
    first = subprocess.Popen([python, "-c", script, str(raw), str(out)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert first.stdout is not None and first.stdin is not None
        assert first.stdout.readline() == "writing\n"  # the first run holds the lock, mid-copy
        second = cli(imageport_bin, "copy", str(raw), str(out))
        assert second.returncode == 1
        assert f"{out} is being written by another run (" in one_line(second)
        assert f"pid {first.pid}, since " in one_line(second)
        first.stdin.write("\n" * 10000)
        first.stdin.close()
        assert first.wait(timeout=120) == 0
    finally:
        first.kill()
    assert qemu_compare(raw, "raw", out, "vhdx").returncode == 0


def test_clean_lists_then_removes_what_a_killed_run_left(imageport_bin: str, raw: Path, tmp_path: Path) -> None:
    (tmp_path / "a.vhdx.imageport-partial").write_bytes(b"x" * 4096)
    (tmp_path / "a.vhdx.imageport-partial.json").write_text("{}")
    (tmp_path / "a.vhdx.imageport-lock").write_text('{"owner": {"host": "h", "pid": 1, "since": "t", "run": "r"}}')
    listed = cli(imageport_bin, "clean", str(tmp_path), "--dry-run", "--json")
    assert listed.returncode == 0, listed.stderr
    assert '"state": "stale"' in listed.stdout and len(os.listdir(tmp_path)) == 4
    cleaned = cli(imageport_bin, "clean", str(tmp_path))
    assert cleaned.returncode == 0 and "removed" in cleaned.stdout
    assert os.listdir(tmp_path) == ["gold.raw"]
    missing = cli(imageport_bin, "clean", str(tmp_path / "nope"))
    assert missing.returncode == 2 and one_line(missing) == f"error: {tmp_path / 'nope'}: no such directory"
