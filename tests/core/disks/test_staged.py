"""Staged outputs: nothing under the final name until complete; resumable writes reuse durable work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imageport.disks.convert import convert
from imageport.disks.local_files import LocalFileSink
from imageport.disks.staged import PARTIAL_SUFFIX
from imageport.errors import InputError, TransferError
from imageport.models import DiskFormat
from tests.core.disks.images import Interrupted, MiB, interrupt_after, make_raw, qemu_compare


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return make_raw(tmp_path / "src.raw", 64 * MiB, runs=40, seed=11, max_run=2 * MiB)


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if "partial" in p.name)


def test_a_plain_sink_leaves_nothing_when_aborted(tmp_path: Path) -> None:
    sink = LocalFileSink(tmp_path / "out.bin")
    sink.pwrite(0, b"x" * 4096)
    sink.checkpoint()  # plain sinks keep no checkpoints
    sink.abort()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", [DiskFormat.VHDX, DiskFormat.VHD_DYNAMIC, DiskFormat.VHD])
def test_an_interrupted_resumable_convert_resumes_and_matches(source: Path, tmp_path: Path, fmt: DiskFormat) -> None:
    out = tmp_path / "out.img"
    with pytest.raises(Interrupted):
        convert(source, out, fmt, resumable=True, checkpoint_seconds=0, progress=interrupt_after(16 * MiB))
    assert not out.exists()
    assert leftovers(tmp_path) == [f"out.img{PARTIAL_SUFFIX}", f"out.img{PARTIAL_SUFFIX}.json"]
    state = json.loads((tmp_path / f"out.img{PARTIAL_SUFFIX}.json").read_text())
    assert state["writes"] > 0 and state["identity"]["source"]["links"][0]["path"] == str(source)

    done = convert(source, out, fmt, resumable=True, checkpoint_seconds=0)
    assert done.resumed
    assert leftovers(tmp_path) == []
    fresh = convert(source, tmp_path / "fresh.img", fmt)
    assert done.content_hash == fresh.content_hash
    assert qemu_compare(source, "raw", out, "vhdx" if fmt is DiskFormat.VHDX else "vpc").returncode == 0


def test_a_changed_source_starts_afresh(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.vhdx"
    with pytest.raises(Interrupted):
        convert(source, out, DiskFormat.VHDX, resumable=True, checkpoint_seconds=0, progress=interrupt_after(16 * MiB))
    with open(source, "ab") as f:  # another size: another source
        f.write(bytes(512))
    done = convert(source, out, DiskFormat.VHDX, resumable=True, checkpoint_seconds=0)
    assert not done.resumed
    assert qemu_compare(source, "raw", out, "vhdx").returncode == 0


def test_a_damaged_partial_file_is_caught_discarded_and_rewritten(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.vhdx"
    with pytest.raises(Interrupted):
        convert(source, out, DiskFormat.VHDX, resumable=True, checkpoint_seconds=0, progress=interrupt_after(32 * MiB))
    partial = tmp_path / f"out.vhdx{PARTIAL_SUFFIX}"
    with open(partial, "r+b") as f:  # damage payload the resumed run will skip
        f.seek(8 * MiB + 4096)
        f.write(b"\xa5" * 4096)
    with pytest.raises(TransferError, match="does not match the source"):
        convert(source, out, DiskFormat.VHDX, resumable=True, checkpoint_seconds=0)
    assert not out.exists() and leftovers(tmp_path) == []
    done = convert(source, out, DiskFormat.VHDX, resumable=True, checkpoint_seconds=0)
    assert not done.resumed
    assert qemu_compare(source, "raw", out, "vhdx").returncode == 0


def test_formats_with_nondeterministic_writers_are_not_resumable(source: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot be resumed"):
        convert(source, tmp_path / "out.vmdk", DiskFormat.VMDK_STREAM, resumable=True)
    assert list(tmp_path.glob("out.vmdk*")) == []
